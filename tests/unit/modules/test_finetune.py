"""Fine-tuning strategies on a tiny model, without Beam: each does what it
says, read back from the weights, the trainable sets and the optimizers."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from modules import finetune, search_space, tasks
from modules import model as model_lib

NAMES = [f'x{i}_xf' for i in range(16)]
INPUTS = model_lib.ModelInputs(
  numeric=NAMES, categorical={}, task=tasks.MulticlassTask(3)
)
BASE_HP = dict(
  num_layers=2,
  units=4,
  dropout=0.0,
  l1=0.0,
  l2=0.0,
  batch_norm=True,
  optimizer='adam',
  learning_rate=0.01,
  batch_size=8,
)


def _data(rows=48, seed=0):
  rng = np.random.default_rng(seed)
  x = {k: rng.random((rows, 1)).astype('float32') for k in NAMES}
  y = rng.integers(0, 3, (rows, 1))
  return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


@pytest.fixture(scope='module')
def base_dir(tmp_path_factory):
  """A trained 4x4 'image' CNN with batch norm, saved as a SavedModel."""
  keras.utils.set_random_seed(1)
  base = model_lib.build_model(INPUTS, BASE_HP, 'cnn', (4, 4, 1))
  base.fit(_data(seed=1), epochs=2, verbose=0)
  path = str(tmp_path_factory.mktemp('base') / 'model')
  base.save(path, save_format='tf')
  return path


def _hp(strategy, **extra):
  hp = dict(
    strategy=strategy,
    unfreeze_blocks=3,
    head_units=5,
    backbone_lr_scale=0.1,
    lr_decay=0.5,
    epochs_per_stage=1,
    dropout=0.0,
    l1=0.0,
    l2=0.0,
    optimizer='adam',
    learning_rate=0.01,
    batch_size=8,
  )
  hp.update(extra)
  return hp


def _tuner(base_dir, strategy, **extra):
  keras.utils.set_random_seed(2)
  return finetune.Finetuner(
    finetune.load_base_model(base_dir), INPUTS, _hp(strategy, **extra)
  )


def test_blocks_follow_the_block_prefix_bottom_to_top(base_dir):
  backbone = finetune.split_backbone(finetune.load_base_model(base_dir))
  assert backbone.output.shape[-1] == 8  # the EMBEDDING: 2 x units
  assert [
    [layer.name for layer in block]
    for block in finetune.backbone_blocks(backbone)
  ] == [
    ['block1_conv', 'block1_bn'],
    ['block2_conv', 'block2_bn'],
    ['block3_dense'],
  ]


def test_feature_extraction_keeps_every_backbone_weight(base_dir):
  tuner = _tuner(base_dir, 'feature_extraction')
  base_weights = [
    w.numpy()
    for w in finetune.split_backbone(finetune.load_base_model(base_dir)).weights
  ]
  head_before = [
    w.numpy() for w in tuner.model.get_layer(model_lib.PROBABILITIES).weights
  ]
  tuner.fit(_data(), validation_data=_data(seed=3), epochs=3)
  after = [w.numpy() for w in tuner.backbone.weights]
  assert len(after) == len(base_weights) == 12  # incl. batch-norm statistics
  for before, now in zip(base_weights, after, strict=True):
    np.testing.assert_array_equal(before, now)
  head_after = tuner.model.get_layer(model_lib.PROBABILITIES).weights
  assert not np.array_equal(head_before[0], head_after[0].numpy())
  assert tuner.trainable_history == [4, 4, 4]  # head_dense + output only


def test_gradual_unfreezing_thaws_one_block_per_stage(base_dir):
  tuner = _tuner(
    base_dir, 'gradual_unfreezing', epochs_per_stage=2, unfreeze_blocks=2
  )
  history = tuner.fit(_data(), validation_data=_data(seed=3), epochs=7)
  # Head 4 weights; +block3_dense (2); +block2 conv kernel, bn gamma, beta (3).
  assert tuner.trainable_history == [4, 4, 6, 6, 9, 9, 9]
  assert history.epoch == list(range(7))
  assert len(history.history['loss']) == 7
  assert finetune.stages(
    'gradual_unfreezing', 3, {'unfreeze_blocks': 2, 'epochs_per_stage': 2}, 0, 7
  ) == [(0, 2, 0), (2, 4, 1), (4, 7, 2)]
  # What the run report shows: which blocks trained when, at which rates.
  schedule = tuner.schedule(7)
  assert schedule['strategy'] == 'gradual_unfreezing'
  assert schedule['blocks'] == 3
  assert [
    (
      s['first_epoch'],
      s['last_epoch'],
      s['thawed_blocks'],
      len(s['learning_rates']),
    )
    for s in schedule['stages']
  ] == [(1, 2, 0, 0), (3, 4, 1, 1), (5, 7, 2, 2)]
  # Resuming mid-schedule (as Hyperband does) starts at the right stage.
  assert finetune.stages(
    'gradual_unfreezing', 3, {'unfreeze_blocks': 3, 'epochs_per_stage': 2}, 3, 5
  ) == [(3, 4, 1), (4, 5, 2)]


def test_discriminative_rates_are_applied_per_group(base_dir):
  """One SGD step: each block's update is -its rate x its gradient."""
  tuner = _tuner(
    base_dir,
    'discriminative_lr',
    optimizer='sgd',
    learning_rate=0.1,
    backbone_lr_scale=0.5,
    lr_decay=0.5,
  )
  tuner.prepare(3)
  optimizers = [opt for opt, _ in tuner.model._holder.groups]  # pylint: disable=protected-access
  rates = [float(opt.learning_rate.numpy()) for opt in optimizers]
  np.testing.assert_allclose(rates, [0.1, 0.05, 0.025, 0.0125])
  x, y = next(iter(_data()))
  variables = {
    'head': tuner.model.get_layer(model_lib.PROBABILITIES).kernel,
    'block3': tuner.backbone.get_layer('block3_dense').kernel,
    'block2': tuner.backbone.get_layer('block2_conv').kernel,
    'block1': tuner.backbone.get_layer('block1_conv').kernel,
  }
  with tf.GradientTape() as tape:
    loss = tuner.model.compute_loss(x, y, tuner.model(x, training=True))
  grads = dict(
    zip(variables, tape.gradient(loss, list(variables.values())), strict=True)
  )
  before = {k: v.numpy() for k, v in variables.items()}
  tuner.model.train_on_batch(x, y)
  for name, rate in zip(variables, rates, strict=True):
    update = variables[name].numpy() - before[name]
    np.testing.assert_allclose(
      update, -rate * grads[name].numpy(), rtol=1e-3, atol=1e-7
    )


def test_full_trains_every_block_at_the_scaled_rate_and_keeps_bn_stats(
  base_dir,
):
  tuner = _tuner(base_dir, 'full', unfreeze_blocks=1)
  stats = tuner.backbone.get_layer('block1_bn').moving_mean.numpy()
  kernel = tuner.backbone.get_layer('block1_conv').kernel.numpy()
  tuner.fit(_data(), validation_data=_data(seed=3), epochs=2)
  assert tuner.trainable_history == [12, 12]  # every trainable weight
  rates = [
    float(opt.learning_rate.numpy()) for opt, _ in tuner.model._holder.groups
  ]  # pylint: disable=protected-access
  np.testing.assert_allclose(rates, [0.01] + [0.001] * 3)
  # Batch norm in inference mode: the statistics are the base model's.
  np.testing.assert_array_equal(
    stats, tuner.backbone.get_layer('block1_bn').moving_mean.numpy()
  )
  assert not np.array_equal(
    kernel, tuner.backbone.get_layer('block1_conv').kernel.numpy()
  )


def test_trainable_blocks_per_strategy():
  assert finetune.trainable_blocks('feature_extraction', 4, 2) == 0
  assert finetune.trainable_blocks('full', 4, 2) == 4
  assert finetune.trainable_blocks('discriminative_lr', 4, 2) == 2
  assert finetune.trainable_blocks('discriminative_lr', 4, 9) == 4
  assert [
    finetune.trainable_blocks('gradual_unfreezing', 4, 3, e, 2)
    for e in range(9)
  ] == [0, 0, 1, 1, 2, 2, 3, 3, 3]
  with pytest.raises(ValueError, match='unknown fine-tuning strategy'):
    finetune.trainable_blocks('freeze_all', 4, 2)


def test_exported_model_is_plain_and_serves_as_a_later_base(base_dir, tmp_path):
  tuner = _tuner(base_dir, 'feature_extraction')
  tuner.fit(_data(), validation_data=_data(seed=3), epochs=1)
  exported = tuner.export_model()
  assert type(exported).__name__ == 'Functional'
  exported.save(str(tmp_path / 'again'), save_format='tf')
  again = finetune.load_base_model(str(tmp_path / 'again'))
  blocks = finetune.backbone_blocks(finetune.split_backbone(again))
  assert [b[0].name for b in blocks] == [
    'block1_conv',
    'block2_conv',
    'block3_dense',
  ]


def test_dnn_base_without_embedding_cuts_below_the_output(tmp_path):
  inputs = model_lib.ModelInputs(numeric=NAMES[:3], categorical={})
  dnn = model_lib.build_model(inputs, dict(BASE_HP, batch_norm=False))
  backbone = finetune.split_backbone(dnn)
  assert backbone.output.shape[-1] == 4
  assert [b[0].name for b in finetune.backbone_blocks(backbone)] == [
    'dense_0',
    'dense_1',
  ]


def test_locate_saved_model_accepts_artifact_and_model_dirs(base_dir, tmp_path):
  assert finetune.locate_saved_model(base_dir) == base_dir
  artifact = tmp_path / 'artifact'
  os.makedirs(artifact)
  os.symlink(base_dir, artifact / 'Format-Serving')
  assert finetune.locate_saved_model(str(artifact)) == str(
    artifact / 'Format-Serving'
  )
  # An imported SavedModel's artifact path as TFX hands it to the Trainer.
  assert (
    finetune.locate_saved_model(os.path.join(base_dir, 'serving_model_dir'))
    == base_dir
  )


@pytest.mark.parametrize(
  'make,expected',
  [
    (lambda p: None, 'no SavedModel there'),
    (
      lambda p: open(os.path.join(p, 'saved_model.pb'), 'wb').write(b'junk'),
      'does not load as a Keras model',
    ),
  ],
)
def test_bad_base_models_fail_with_one_line(tmp_path, make, expected):
  path = str(tmp_path / 'bad')
  os.makedirs(path)
  make(path)
  with pytest.raises(finetune.BaseModelError) as info:
    finetune.load_base_model(path)
  message = str(info.value)
  assert expected in message and path in message and '\n' not in message


def test_mismatched_inputs_name_the_base_and_the_features(base_dir):
  base = finetune.load_base_model(base_dir)
  other = model_lib.ModelInputs(
    numeric=NAMES[:15] + ['y_xf'], categorical={}, task=tasks.MulticlassTask(3)
  )
  with pytest.raises(finetune.BaseModelError) as info:
    finetune.check_inputs(base, other, base_dir)
  message = str(info.value)
  assert message.startswith(f'base model {base_dir}: its inputs do not match')
  assert 'missing y_xf' in message and 'unexpected x15_xf' in message
  with pytest.raises(finetune.BaseModelError, match='no base model reached'):
    finetune.load_checked(None, INPUTS)


def test_finetune_search_space_registers_its_own_names():
  from modules.config import SearchSpace  # pylint: disable=g-import-not-at-top

  space = SearchSpace()
  values = search_space.resolve(None, space, 'finetune')
  assert set(values) == set(search_space.names('finetune'))
  assert values['strategy'] == 'feature_extraction'
  assert values['unfreeze_blocks'] == 1
  assert 'num_layers' not in values
  assert set(search_space.resolve(None, space)) == set(search_space.NAMES)
