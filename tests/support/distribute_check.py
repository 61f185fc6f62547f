"""Trains a from-scratch model and fine-tunes a base model under
MirroredStrategy over two logical CPU devices, as modules/distribute.py sets
it up over GPUs. Run in its own process (the logical devices must be made
before TensorFlow starts). Prints one JSON object.

Usage: python tests/support/distribute_check.py WORK_DIR
"""

import json
import os
import sys

os.environ['TF_USE_LEGACY_KERAS'] = '1'
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

CPU = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(
  CPU, [tf.config.LogicalDeviceConfiguration()] * 2
)

# After the logical devices exist (TF refuses them once initialised).
import tf_keras as keras  # noqa: E402

from modules import distribute, finetune, tasks  # noqa: E402
from modules import model as model_lib  # noqa: E402

NAMES = [f'x{i}_xf' for i in range(16)]
INPUTS = model_lib.ModelInputs(
  numeric=NAMES, categorical={}, task=tasks.MulticlassTask(3)
)
HP = dict(
  num_layers=2,
  units=4,
  dropout=0.1,
  l1=0.0,
  l2=1e-4,
  batch_norm=True,
  optimizer='adam',
  learning_rate=0.01,
  batch_size=8,
)


def data(seed):
  rng = np.random.default_rng(seed)
  x = {k: rng.random((64, 1)).astype('float32') for k in NAMES}
  y = rng.integers(0, 3, (64, 1))
  return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


def mirrored(variable) -> int:
  """How many devices hold a copy of `variable`."""
  return len(getattr(variable, 'values', [variable]))


def main(work_dir):
  keras.utils.set_random_seed(0)
  result = {}
  strategy = distribute.strategy(
    [d.name for d in tf.config.list_logical_devices('CPU')]
  )
  result['strategy'] = type(strategy).__name__
  result['replicas'] = strategy.num_replicas_in_sync
  with strategy.scope():
    model = model_lib.build_model(INPUTS, HP, 'cnn', (4, 4, 1))
  before = [w.numpy() for w in model.trainable_weights]
  history = model.fit(data(1), validation_data=data(2), epochs=2, verbose=0)
  result['scratch'] = {
    'loss': history.history['loss'],
    'copies': mirrored(model.trainable_weights[0]),
    'optimizer_copies': mirrored(model.optimizer.variables()[-1]),
    'changed': all(
      not np.array_equal(b, w.numpy())
      for b, w in zip(before, model.trainable_weights, strict=True)
    ),
  }
  path = os.path.join(work_dir, 'base')
  model.save(path, save_format='tf')
  for name in ('discriminative_lr', 'gradual_unfreezing'):
    hp = dict(
      strategy=name,
      unfreeze_blocks=3,
      head_units=5,
      backbone_lr_scale=0.1,
      lr_decay=0.5,
      epochs_per_stage=1,
      dropout=0.0,
      l1=0.0,
      l2=0.0,
      optimizer='sgd',
      learning_rate=0.05,
      batch_size=8,
    )
    with strategy.scope():
      tuner = finetune.Finetuner(finetune.load_base_model(path), INPUTS, hp)
    backbone_before = [w.numpy() for w in tuner.backbone.trainable_weights]
    history = tuner.fit(data(3), validation_data=data(4), epochs=2)
    groups = tuner.model._holder.groups  # pylint: disable=protected-access
    result[name] = {
      'loss': history.history['loss'],
      'copies': mirrored(tuner.backbone.weights[0]),
      'groups': len(groups),
      'optimizer_copies': sorted(
        {mirrored(v) for optimizer, _ in groups for v in optimizer.variables()}
      ),
      'trainable_history': tuner.trainable_history,
      'backbone_changed': any(
        not np.array_equal(b, w.numpy())
        for b, w in zip(
          backbone_before, tuner.backbone.trainable_weights, strict=True
        )
      ),
    }
  print(json.dumps(result))


if __name__ == '__main__':
  main(sys.argv[1])
