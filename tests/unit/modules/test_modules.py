"""Module code on hand-made data: preprocessing_fn under tf.Transform's Beam
implementation, the model builder, the search space and the tuner factory."""

import tempfile

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from modules import model as model_lib
from modules import search_space, tasks
from modules import tuner as tuner_lib
from modules.config import TransformConfig, TunerConfig
from pipeline.definition import spec as spec_lib
from tests.conftest import DEFAULT_SPEC

SPACE = spec_lib.load_spec(DEFAULT_SPEC).model.search_space


def _config(numeric, categorical, scaling='z_score'):
  """A TransformConfig as preprocessing_fn receives it: JSON."""
  return TransformConfig(
    features={'label': 'label', 'numeric': numeric, 'categorical': categorical},
    preprocessing={'numeric': scaling},
  ).to_custom_config()


def _transform(rows, config):
  """Runs preprocessing_fn with tft_beam over `rows` (AnalyzeAndTransform)."""
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  import tensorflow_transform.beam as tft_beam  # pylint: disable=g-import-not-at-top
  from tensorflow_transform.tf_metadata import (
    dataset_metadata,  # pylint: disable=g-import-not-at-top
    schema_utils,  # pylint: disable=g-import-not-at-top
  )

  from modules.preprocessing import preprocessing_fn  # pylint: disable=g-import-not-at-top

  del tft
  spec = {
    'x': tf.io.FixedLenFeature([1], tf.float32),
    'y': tf.io.FixedLenFeature([1], tf.float32),
    'color': tf.io.FixedLenFeature([1], tf.string),
    'label': tf.io.FixedLenFeature([1], tf.int64),
  }
  metadata = dataset_metadata.DatasetMetadata(
    schema_utils.schema_from_feature_spec(spec)
  )
  with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
    (transformed, _), _ = (
      rows,
      metadata,
    ) | tft_beam.AnalyzeAndTransformDataset(
      lambda inputs: preprocessing_fn(inputs, config),
      output_record_batches=False,
    )
  return transformed


ROWS = [
  {'x': [float(v)], 'y': [10.0 * v], 'color': [c], 'label': [v % 2]}
  for v, c in zip(
    range(8),
    [b'red', b'red', b'red', b'blue', b'blue', b'green', b'red', b'blue'],
    strict=True,
  )
]


def test_preprocessing_scales_numbers_and_indexes_categories():
  out = _transform(ROWS, _config(['x', 'y'], ['color']))
  x = np.array([r['x_xf'] for r in out]).ravel()
  y = np.array([r['y_xf'] for r in out]).ravel()
  # z-score: centred and scaled to unit (population) variance.
  np.testing.assert_allclose(
    [x.mean(), x.std(), y.mean(), y.std()], [0, 1, 0, 1], atol=1e-5
  )
  np.testing.assert_allclose(x, y, atol=1e-5)  # scale-free
  colors = [int(np.ravel(r['color_xf'])[0]) for r in out]
  # The vocabulary is ordered by frequency: red (4) -> 0, blue (3) -> 1.
  assert colors == [0, 0, 0, 1, 1, 2, 0, 1]
  assert [int(np.ravel(r['label_xf'])[0]) for r in out] == [
    v % 2 for v in range(8)
  ]
  assert set(out[0]) == {'x_xf', 'y_xf', 'color_xf', 'label_xf'}


def test_preprocessing_min_max_option():
  out = _transform(ROWS, _config(['x'], [], scaling='min_max'))
  x = np.array([r['x_xf'] for r in out]).ravel()
  assert (x.min(), x.max()) == pytest.approx((0.0, 1.0))


def test_transformed_names_and_feature_lists():
  feats = TransformConfig.from_custom_config(
    _config(['a', 'b'], ['c'])
  ).features
  assert feats.keys == ['a', 'b', 'c']
  assert feats.transformed_keys == ['a_xf', 'b_xf', 'c_xf']
  assert feats.transformed_label == 'label_xf'
  assert len(feats.keys) == len(feats.transformed_keys)


HPARAMS = {
  'num_layers': 2,
  'units': 16,
  'dropout': 0.2,
  'l1': 0.0,
  'l2': 1e-3,
  'batch_norm': True,
  'optimizer': 'rmsprop',
  'learning_rate': 0.005,
  'batch_size': 8,
}
INPUTS = model_lib.ModelInputs(
  numeric=['a_xf', 'b_xf'], categorical={'c_xf': 4}
)


def test_model_shapes_dtypes_and_probabilities():
  model = model_lib.build_model(INPUTS, HPARAMS)
  assert sorted(model.input_names) == ['a_xf', 'b_xf', 'c_xf']
  dtypes = {t.name.split(':')[0]: t.dtype for t in model.inputs}
  assert dtypes == {'a_xf': tf.float32, 'b_xf': tf.float32, 'c_xf': tf.int64}
  batch = {
    'a_xf': tf.random.normal([5, 1]),
    'b_xf': tf.random.normal([5, 1]),
    'c_xf': tf.constant([[0], [1], [2], [3], [3]], tf.int64),
  }
  out = model(batch, training=False)
  assert out.shape == (5, 1) and out.dtype == tf.float32
  assert np.all((out.numpy() >= 0) & (out.numpy() <= 1))
  assert model.output_names == [model_lib.PROBABILITY]


def test_model_regularisers_follow_hparams():
  model = model_lib.build_model(INPUTS, HPARAMS)
  dense = [layer for layer in model.layers if layer.name.startswith('dense_')]
  assert len(dense) == 2 and all(layer.units == 16 for layer in dense)
  for layer in dense:
    assert isinstance(layer.kernel_regularizer, keras.regularizers.L1L2)
    assert layer.kernel_regularizer.l2 == pytest.approx(1e-3)
    assert not layer.use_bias  # batch norm supplies the shift
  assert (
    len(
      [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
      ]
    )
    == 2
  )
  drops = [
    layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)
  ]
  assert [d.rate for d in drops] == [pytest.approx(0.2)] * 2
  assert len(model.losses) == 2  # one L2 penalty per hidden layer
  assert isinstance(model.optimizer, keras.optimizers.RMSprop)
  assert model.optimizer.learning_rate.numpy() == pytest.approx(0.005)


def test_model_without_batch_norm_or_dropout():
  model = model_lib.build_model(
    INPUTS,
    {
      **HPARAMS,
      'batch_norm': False,
      'dropout': 0.0,
      'l2': 0.0,
      'optimizer': 'sgd',
    },
  )
  assert not [
    layer
    for layer in model.layers
    if isinstance(
      layer, (keras.layers.BatchNormalization, keras.layers.Dropout)
    )
  ]
  assert all(
    layer.use_bias for layer in model.layers if layer.name.startswith('dense_')
  )
  assert isinstance(model.optimizer, keras.optimizers.SGD)


def test_model_learns_a_separable_problem():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(256, 1)).astype('float32')
  b = rng.normal(size=(256, 1)).astype('float32')
  labels = (a + b > 0).astype('int64')
  model = model_lib.build_model(
    model_lib.ModelInputs(numeric=['a', 'b'], categorical={}),
    {
      **HPARAMS,
      'batch_norm': False,
      'optimizer': 'adam',
      'learning_rate': 0.01,
    },
  )
  model.fit({'a': a, 'b': b}, labels, epochs=30, batch_size=32, verbose=0)
  _, accuracy, _ = model.evaluate({'a': a, 'b': b}, labels, verbose=0)
  assert accuracy > 0.9


@pytest.mark.parametrize('optimizer', sorted(model_lib.OPTIMIZERS))
def test_a_training_step_is_traced_once_per_model(optimizer):
  # The optimizer's slots exist before the first step, so tf.function has
  # no variables to create in it and traces it once, not twice (a trace is
  # a good part of a one-second tuning trial).
  rng = np.random.default_rng(0)
  a = rng.normal(size=(64, 1)).astype('float32')
  labels = (a > 0).astype('int64')
  model = model_lib.build_model(
    model_lib.ModelInputs(numeric=['a'], categorical={}),
    {
      **HPARAMS,
      'batch_norm': True,
      'optimizer': optimizer,
      'learning_rate': 0.01,
    },
  )
  assert model.optimizer.variables  # built with the model
  model.fit(
    {'a': a},
    labels,
    epochs=2,
    batch_size=16,
    verbose=0,
    validation_data=({'a': a}, labels),
  )
  assert model.train_function.experimental_get_tracing_count() == 1


def test_unknown_optimizer_is_refused():
  with pytest.raises(ValueError, match="unknown optimizer 'adamw'"):
    model_lib.make_optimizer('adamw', 0.1)


def test_search_space_defaults_are_first_values_and_minimums():
  defaults = search_space.resolve(None, SPACE)
  assert defaults == {
    'num_layers': SPACE.num_layers.min,
    'units': SPACE.units.min,
    'dropout': SPACE.dropout.min,
    'l1': SPACE.l1[0],
    'l2': SPACE.l2[0],
    'batch_norm': SPACE.batch_norm[0],
    'optimizer': SPACE.optimizer[0],
    'learning_rate': SPACE.learning_rate.min,
    'batch_size': SPACE.batch_size[0],
  }


def test_search_space_registers_the_spec_bounds():
  hp = keras_tuner.HyperParameters()
  search_space.sample(hp, SPACE)
  by_name = {p.name: p for p in hp.space}
  assert set(by_name) == set(search_space.NAMES)
  assert (
    by_name['units'].min_value,
    by_name['units'].max_value,
    by_name['units'].step,
  ) == (8, 64, 8)
  assert by_name['learning_rate'].sampling == 'log'
  assert list(by_name['optimizer'].values) == ['adam', 'rmsprop', 'sgd']
  assert list(by_name['batch_size'].values) == [32, 16, 64]


def test_tuned_values_override_defaults():
  hp = keras_tuner.HyperParameters()
  search_space.sample(hp, SPACE)
  hp.values.update({'units': 48, 'optimizer': 'sgd'})
  tuned = search_space.resolve(hp.get_config(), SPACE)
  assert (tuned['units'], tuned['optimizer']) == (48, 'sgd')


# The default spec's search, as tuner_fn reads it (a binary label).
CONFIG = spec_lib.load_spec(
  DEFAULT_SPEC, {'features.num_classes': 2}
).module_config(TunerConfig)


class _Inputs:
  """The part of TrainingData a hypermodel's build() and fit() read."""

  model_inputs = INPUTS
  mode = 'scratch'

  def new_model(self, hparams):
    return model_lib.build_model(INPUTS, hparams)

  def class_weight(self, setting):
    assert setting == 'none'
    return None


@pytest.mark.parametrize(
  'algorithm,cls,oracle_cls',
  [
    ('hyperband', keras_tuner.Hyperband, keras_tuner.oracles.HyperbandOracle),
    (
      'random',
      keras_tuner.RandomSearch,
      keras_tuner.oracles.RandomSearchOracle,
    ),
    (
      'bayesian',
      keras_tuner.BayesianOptimization,
      keras_tuner.oracles.BayesianOptimizationOracle,
    ),
    ('grid', keras_tuner.GridSearch, keras_tuner.oracles.GridSearchOracle),
  ],
)
def test_tuner_factory_builds_the_configured_algorithm(
  tmp_path, algorithm, cls, oracle_cls
):
  spec = spec_lib.load_spec(
    DEFAULT_SPEC,
    {
      'tuner.algorithm': algorithm,
      'tuner.max_trials': 5,
      'tuner.objective': 'val_auc',
    },
  )
  hypermodel = tuner_lib.SpecHyperModel(_Inputs(), CONFIG, seed=1)
  tuner = tuner_lib.make_tuner(spec.tuner, hypermodel, str(tmp_path))
  assert isinstance(tuner, cls)
  assert isinstance(tuner.oracle, oracle_cls)
  # TFX's Tuner writes results with get_best_trials(oracle.max_trials).
  assert tuner.oracle.max_trials == 5
  assert tuner.oracle.objective.name == 'val_auc'
  assert tuner.oracle.objective.direction == 'max'
  names = {p.name for p in tuner.oracle.hyperparameters.space}
  assert set(search_space.NAMES) <= names
  if algorithm == 'hyperband':
    assert (tuner.oracle.max_epochs, tuner.oracle.factor) == (6, 3)


def test_hypermodel_builds_a_model_per_trial():
  hypermodel = tuner_lib.SpecHyperModel(_Inputs(), CONFIG, seed=1)
  model = hypermodel.build(keras_tuner.HyperParameters())
  assert isinstance(model, keras.Model)
  assert model.optimizer is not None  # compiled, ready for fit


def test_legacy_keras_is_in_use():
  tuner_lib.require_legacy_keras()
  assert tf.keras.Model is keras.Model


def test_cnn_builder_lays_pixels_out_as_an_image_with_named_blocks():
  pixels = model_lib.ModelInputs(
    numeric=[f'p{i}_xf' for i in range(64)],
    categorical={},
    task=tasks.MulticlassTask(5),
  )
  hparams = dict(
    num_layers=3,
    units=8,
    dropout=0.2,
    l1=0.0,
    l2=1e-4,
    batch_norm=True,
    optimizer='rmsprop',
    learning_rate=1e-3,
    batch_size=16,
  )
  model = model_lib.build_model(pixels, hparams, 'cnn', (8, 8, 1))
  names = [layer.name for layer in model.layers]
  assert model.get_layer('image').output.shape[1:] == (8, 8, 1)
  assert [model.get_layer(f'block{i}_conv').filters for i in (1, 2, 3)] == [
    8,
    16,
    32,
  ]
  # 8x8 -> 4x4 -> 2x2 -> 1x1: every block pools while the image is >= 2x2.
  assert (
    'block3_pool' in names and model.get_layer('flatten').output.shape[-1] == 32
  )
  assert model.get_layer(model_lib.EMBEDDING).output.shape[-1] == 16
  assert model.output_names == [model_lib.PROBABILITIES]
  assert model.output.shape[-1] == 5
  assert [m.name for m in model.compiled_metrics._user_metrics] == ['accuracy']  # pylint: disable=protected-access
  batch = {k: tf.random.uniform((4, 1)) for k in pixels.numeric}
  np.testing.assert_allclose(model(batch).numpy().sum(axis=1), 1.0, rtol=1e-5)
  with pytest.raises(ValueError, match='cnn builder needs an image shape'):
    model_lib.build_model(pixels, hparams, 'cnn')


def test_chance_level_is_what_predicting_without_features_scores():
  train, evaluated = [0, 0, 0, 1], [0, 1]
  # The train prior, smoothed by one count per class: P(1) = 2 / 6.
  prior = np.array([4, 2]) / 6
  binary = tasks.BinaryTask()
  assert binary.naive_score('val_loss', train, evaluated) == (
    pytest.approx(-np.mean(np.log(prior[[0, 1]])))
  )
  assert binary.naive_score('val_auc', train, evaluated) == 0.5
  assert (
    tasks.MulticlassTask(3).naive_score('val_accuracy', train, [0, 0, 1, 2])
    == 0.5
  )
  assert tuner_lib.beats_chance(0.3, 0.66, 'min')
  assert not tuner_lib.beats_chance(0.7, 0.66, 'min')
  assert tuner_lib.beats_chance(0.9, 0.5, 'max')


class _TinyHyperModel(keras_tuner.HyperModel):
  """A real search over hand-made data (no TFX)."""

  def build(self, hp):
    return model_lib.build_model(INPUTS, search_space.sample(hp, SPACE))

  def fit(self, hp, model, *args, **kwargs):
    del args
    rng = np.random.default_rng(0)
    x = {
      'a_xf': rng.normal(size=(64, 1)),
      'b_xf': rng.normal(size=(64, 1)),
      'c_xf': rng.integers(0, 4, size=(64, 1)),
    }
    y = rng.integers(0, 2, size=(64, 1))
    return model.fit(x, y, validation_data=(x, y), batch_size=16, **kwargs)


@pytest.mark.parametrize('chance,learned', [(0.0, False), (10.0, True)])
def test_a_search_that_learned_nothing_stops_the_run(tmp_path, chance, learned):
  spec = spec_lib.load_spec(
    DEFAULT_SPEC, {'tuner.algorithm': 'random', 'tuner.max_trials': 1}
  )
  tuner = tuner_lib.make_tuner(
    spec.tuner, _TinyHyperModel(), str(tmp_path), chance=lambda: chance
  )
  assert isinstance(tuner, keras_tuner.RandomSearch)
  if learned:
    tuner.search(epochs=1, verbose=0)
    return
  with pytest.raises(tuner_lib.NoTrialLearned) as error:
    tuner.search(epochs=1, verbose=0)
  message = str(error.value)
  assert message.startswith(
    'no tuning trial learned anything: the best val_loss '
  )
  assert 'is no better than predicting without the features (0.0000)' in (
    message
  )
  assert 'tuner.max_epochs' in message and '\n' not in message
  # A random search is no shorter for switching to random search.
  assert 'tuner.algorithm random' not in message


class _DataInputs(_Inputs):
  """_Inputs with the one-epoch datasets SpecHyperModel.fit reads."""

  def _dataset(self, batch_size):
    rng = np.random.default_rng(0)
    x = {
      'a_xf': rng.normal(size=(64, 1)),
      'b_xf': rng.normal(size=(64, 1)),
      'c_xf': rng.integers(0, 4, size=(64, 1)),
    }
    y = (x['a_xf'] > 0).astype('int64')
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)

  def train(self, batch_size, seed):
    del seed
    return self._dataset(batch_size)

  def eval(self, batch_size):
    return self._dataset(batch_size)


def test_only_trials_hyperband_may_promote_write_a_checkpoint(tmp_path):
  """Keras Tuner's SaveBestEpoch wrote every trial's weights at every
  improving epoch; only a trial Hyperband may continue is read. With
  max_epochs 3, factor 3: bracket 1 runs 3 trials for 1 epoch (round 0,
  promotable) and continues the best for 3 (round 1), bracket 0 runs 2
  trials for 3 epochs. The continued trial loads its parent's weights."""
  spec = spec_lib.load_spec(
    DEFAULT_SPEC,
    {'tuner.max_epochs': 3, 'tuner.factor': 3, 'tuner.max_trials': 6},
  )
  tuner = tuner_lib.make_tuner(
    spec.tuner,
    tuner_lib.SpecHyperModel(_DataInputs(), CONFIG, seed=1),
    str(tmp_path),
  )
  saves = []
  save_weights = keras.Model.save_weights

  def counted(model, filepath, *args, **kwargs):
    saves.append(filepath)
    return save_weights(model, filepath, *args, **kwargs)

  keras.Model.save_weights = counted
  try:
    tuner.search(epochs=3, verbose=0)
  finally:
    keras.Model.save_weights = save_weights
  trials = list(tuner.oracle.trials.values())
  assert len(trials) == 6
  assert all(t.status == 'COMPLETED' for t in trials)
  promotable = {
    t.trial_id for t in trials if tuner_lib.promotable(t.hyperparameters)
  }
  continued = [t for t in trials if 'tuner/trial_id' in t.hyperparameters]
  assert len(promotable) == 3 and len(continued) == 1
  assert continued[0].hyperparameters.values['tuner/trial_id'] in promotable
  # One write per promotable trial, at its end, where Hyperband reads it.
  assert sorted(saves) == sorted(
    tuner._get_checkpoint_fname(t)  # pylint: disable=protected-access
    for t in promotable
  )


def test_a_promotion_checkpoint_holds_the_best_epochs_weights(tmp_path):
  model = model_lib.build_model(
    INPUTS, search_space.sample(keras_tuner.HyperParameters(), SPACE)
  )
  saver = tuner_lib.tuner_utils.SaveBestEpoch(
    keras_tuner.Objective('val_loss', 'min'), str(tmp_path / 'best')
  )
  seen = []
  record = keras.callbacks.LambdaCallback(
    on_epoch_end=lambda e, logs: seen.append(
      (logs['val_loss'], model.get_weights())
    )
  )
  data = _DataInputs()
  model.fit(
    data.train(16, 0),
    validation_data=data.eval(16),
    epochs=6,
    verbose=0,
    callbacks=[record, tuner_lib.PromotionCheckpoint(saver, write=True)],
  )
  best = min(seen, key=lambda s: s[0])[1]
  reloaded = keras.models.clone_model(model)
  reloaded.load_weights(str(tmp_path / 'best'))
  for got, want in zip(reloaded.get_weights(), best, strict=True):
    np.testing.assert_array_equal(got, want)
  # The model itself ends with its last epoch's weights, as it trained.
  for got, want in zip(model.get_weights(), seen[-1][1], strict=True):
    np.testing.assert_array_equal(got, want)
  # Not promotable: nothing written.
  saver = tuner_lib.tuner_utils.SaveBestEpoch(
    keras_tuner.Objective('val_loss', 'min'), str(tmp_path / 'none')
  )
  model.fit(
    data.train(16, 0),
    validation_data=data.eval(16),
    epochs=2,
    verbose=0,
    callbacks=[tuner_lib.PromotionCheckpoint(saver, write=False)],
  )
  assert not list(tmp_path.glob('none*'))


def test_a_trial_scores_the_same_whatever_its_process_ran_before(tmp_path):
  """Each trial is seeded from the search's seed and its id: in a process
  that built other models first (as a worker of a parallel search does, or
  the chief between its trials), the same trials score the same."""
  spec = spec_lib.load_spec(
    DEFAULT_SPEC, {'tuner.algorithm': 'random', 'tuner.max_trials': 3}
  )

  def scores(folder):
    tuner = tuner_lib.make_tuner(
      spec.tuner,
      tuner_lib.SpecHyperModel(_DataInputs(), CONFIG, seed=1),
      str(folder),
    )
    tuner.search(epochs=2, verbose=0)
    return {t.trial_id: t.score for t in tuner.oracle.trials.values()}

  alone = scores(tmp_path / 'alone')
  keras.Sequential([keras.layers.Dense(8)]).build((None, 4))  # draws weights
  tf.random.uniform((5,))
  np.random.rand(3)
  after_others = scores(tmp_path / 'after')
  assert len(alone) == 3 and len(set(alone.values())) == 3
  assert after_others == alone


def test_balanced_class_weights_raise_recall_on_an_imbalanced_label():
  """5 % positives that overlap the negatives: unweighted, the model leans
  to the majority; 'balanced' weighs each class by rows / (2 x its rows)."""
  rng = np.random.default_rng(0)
  y = (rng.random(2000) < 0.05).astype('int64')
  x = {
    'a_xf': (rng.normal(size=2000) + 1.2 * y).reshape(-1, 1).astype('float32'),
    'b_xf': rng.normal(size=(2000, 1)).astype('float32'),
    'c_xf': rng.integers(0, 4, size=(2000, 1)),
  }
  task = tasks.BinaryTask()
  weights = task.class_weights('balanced', y)
  assert weights[1] == pytest.approx(2000 / (2 * y.sum()))
  assert task.class_weights({'1': 3.0}, y) == {0: 1.0, 1: 3.0}
  with pytest.raises(ValueError, match="'2' is not a class"):
    task.class_weights({'2': 3.0}, y)
  hparams = dict(
    search_space.resolve(None, SPACE), learning_rate=0.01, optimizer='adam'
  )

  def recall(class_weight):
    keras.utils.set_random_seed(0)
    model = model_lib.build_model(INPUTS, hparams)
    data = tf.data.Dataset.from_tensor_slices((x, y.reshape(-1, 1))).batch(64)
    model.fit(data, epochs=5, verbose=0, class_weight=class_weight)
    predicted = model.predict(x, verbose=0)[:, 0] >= 0.5
    return float(predicted[y == 1].mean())

  assert recall(weights) > recall(None) + 0.2


def test_a_builder_list_makes_the_builder_a_searched_choice():
  """`model.builder: [dnn, gbt]`: the builder is a hyperparameter, and
  each builder's own hyperparameters vary only in its trials."""
  spec = spec_lib.load_spec(
    DEFAULT_SPEC, {'features.num_classes': 2, 'model.builder': ['dnn', 'gbt']}
  )
  config = spec.module_config(TunerConfig)
  hp = keras_tuner.HyperParameters()
  values = search_space.sample_config(hp, config)
  assert values['builder'] == 'dnn' and 'num_layers' in values
  assert not any(name.startswith('gbt_') for name in values)
  # A trial of trees, as the oracle hands it out: the builder chosen first.
  hp = keras_tuner.HyperParameters()
  hp.Choice('builder', ['dnn', 'gbt'])
  hp.values['builder'] = 'gbt'
  trees = search_space.sample_config(hp, config)
  assert trees['builder'] == 'gbt' and 'num_layers' not in trees
  assert trees['gbt_num_trees'] == config.model.search_space.gbt.num_trees.min
  assert 'batch_size' in trees  # paces the reading in both
  # Only the chosen builder's hyperparameters are active in a trial.
  assert hp.is_active('gbt_max_depth') and not hp.is_active('units')


def test_a_regression_search_offers_its_losses_and_no_class_weight():
  spec = spec_lib.load_spec(
    DEFAULT_SPEC,
    {
      'features.task': 'regression',
      'training.loss': ['mse', 'huber'],
      'tuner.objective': 'val_rmse',
      'evaluation.metrics': ['rmse'],
      'evaluation.thresholds': {},
      'evaluation.change_thresholds': {},
      'evaluation.slice_thresholds': [],
      'training.early_stopping.monitor': 'val_rmse',
    },
  )
  values = search_space.resolve(None, spec.module_config(TunerConfig))
  assert values['loss'] == 'mse' and 'class_weight' not in values
