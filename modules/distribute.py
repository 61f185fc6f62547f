"""The distribution strategy for the Tuner and the Trainer.

Every visible GPU is used through MirroredStrategy (one replica per GPU,
gradients all-reduced; the batch size is the global batch). With no GPU the
default strategy runs on the CPU, exactly as without a strategy.
"""

import logging
from typing import List, Optional

import tensorflow as tf

# Builders whose models train outside any distribution strategy: TF-DF's
# trees (modules/gbt.py) refuse one, even over a single device.
UNDISTRIBUTED_BUILDERS = ('gbt',)


def strategy_for(builders: List[str]) -> tf.distribute.Strategy:
  """`strategy()` when every builder in `builders` can be distributed,
  else TF's default strategy (a network among trees then trains on one
  device)."""
  if any(b in UNDISTRIBUTED_BUILDERS for b in builders):
    return tf.distribute.get_strategy()
  return strategy()


def strategy(devices: Optional[List[str]] = None) -> tf.distribute.Strategy:
  """MirroredStrategy over `devices` (default: every visible GPU), or TF's
  default strategy when there is no GPU and no `devices` are given."""
  if devices is None:
    devices = [d.name for d in tf.config.list_logical_devices('GPU')]
  if not devices:
    logging.info('distribution: no GPU visible, training on the CPU')
    return tf.distribute.get_strategy()
  chosen = tf.distribute.MirroredStrategy(devices)
  logging.info(
    'distribution: MirroredStrategy over %d device(s): %s',
    chosen.num_replicas_in_sync,
    ', '.join(devices),
  )
  return chosen
