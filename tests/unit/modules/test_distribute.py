"""The Tuner's and Trainer's distribution strategy: every visible GPU through
MirroredStrategy, the CPU without one. MirroredStrategy itself is exercised
over two logical CPU devices, so no GPU is needed."""

import json
import os
import subprocess
import sys

import tensorflow as tf

from modules import distribute
from tests.conftest import REPO


def test_strategy_uses_every_visible_gpu_or_falls_back_to_the_cpu():
  gpus = tf.config.list_logical_devices('GPU')
  chosen = distribute.strategy()
  if gpus:
    assert isinstance(chosen, tf.distribute.MirroredStrategy)
    assert chosen.num_replicas_in_sync == len(gpus)
  else:
    assert chosen is tf.distribute.get_strategy()  # the default: no copies
    assert chosen.num_replicas_in_sync == 1


def test_models_train_and_fine_tune_under_mirrored_strategy(tmp_path):
  proc = subprocess.run(
    [
      sys.executable,
      os.path.join(REPO, 'tests', 'support', 'distribute_check.py'),
      str(tmp_path),
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['strategy'] == 'MirroredStrategy' and result['replicas'] == 2
  scratch = result['scratch']
  # One copy of each weight and optimizer slot per replica, and training
  # moves every weight.
  assert scratch['copies'] == scratch['optimizer_copies'] == 2
  assert scratch['changed']
  for name in ('discriminative_lr', 'gradual_unfreezing'):
    run = result[name]
    assert run['copies'] == 2 and run['optimizer_copies'] == [2], name
    assert run['backbone_changed'], name
    assert all(loss == loss for loss in run['loss']), name  # no NaN
  # Per-group optimizers survive the strategy: head + 3 blocks.
  assert result['discriminative_lr']['groups'] == 4
  assert result['gradual_unfreezing']['trainable_history'] == [4, 6]
