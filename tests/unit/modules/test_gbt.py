"""The gbt model builder (modules/gbt.py) on a few hundred hand-made rows:
its outputs match the networks' contract, categorical ids split as
categories, the seed decides the trees, `val_*` are the task's loss and
metrics on the validation data, and its SavedModel loads in a new process
through components/model_ops.py's `ensure_ops` (which leaves TF-DF unimported for a network)."""

import inspect
import json
import os
import subprocess
import sys
import textwrap

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components import model_ops
from modules import gbt, search_space, tasks
from modules.config import FloatRange, GbtSpace, IntRange
from modules.model import ModelInputs
from tests.conftest import REPO

ROWS, TRAIN = 300, 240  # the first TRAIN rows train, the rest validate
COLORS = 6  # categorical ids: 5 values + 1 OOV bucket
INPUTS = ModelInputs(numeric=['x'], categorical={'color': COLORS})
SEED = 7
# What TF-DF says unasked: its print on every fit, and Yggdrasil's C++ log
# lines as a forest trains and loads.
TFDF_NOISE = (
  'Num validation examples',
  'Loading model from path',
  'fast generic engine',
  'gradient_boosted_trees.cc',
)


def _defaults(**overrides):
  """The search space's defaults, with few trees (fast)."""
  values = search_space.sample_gbt(keras_tuner.HyperParameters(), GbtSpace())
  values.update(num_trees=20, **overrides)
  return values


def _features(rng):
  return {
    'x': rng.normal(size=(ROWS, 1)).astype(np.float32),
    'color': rng.integers(0, COLORS - 1, size=(ROWS, 1)).astype(np.int64),
  }


def _labels(kind, features, rng):
  """Labels of each task from the features, with noise."""
  x, color = features['x'][:, 0], features['color'][:, 0]
  noise = rng.normal(size=ROWS) * 0.5
  if kind == 'binary':
    return (x + 1.5 * np.isin(color, [1, 3]) + noise > 0.5).astype(np.int64)
  if kind == 'multiclass':
    return np.digitize(x + 0.5 * color + noise, [0.0, 1.0, 2.0]).astype(
      np.int64
    )
  y = 2.0 * x + color + noise
  return ((y - y.mean()) / y.std()).astype(np.float32)


TASKS = {
  'binary': tasks.BinaryTask(),
  'multiclass': tasks.MulticlassTask(4),
  'regression': tasks.RegressionTask(),
}


@pytest.fixture(scope='module')
def data():
  """kind -> (train, validation) datasets, batched as the Trainer does."""
  rng = np.random.default_rng(0)
  features = _features(rng)
  result = {}
  for kind in TASKS:
    labels = _labels(kind, features, rng)

    def split(rows, labels=labels):
      return tf.data.Dataset.from_tensor_slices(
        ({k: v[rows] for k, v in features.items()}, labels[rows])
      ).batch(64)

    result[kind] = (split(slice(0, TRAIN)), split(slice(TRAIN, ROWS)))
  return result


def _trained(kind, train, validation, hparams=None, seed=SEED):
  task = TASKS[kind]
  model = gbt.build_gbt(
    INPUTS,
    hparams or _defaults(),
    regression=not task.classifies,
    num_classes=task.num_classes or 0,
    seed=seed,
  )
  gbt.compile_gbt(model, task.keras_metrics(), task.loss())
  history = model.fit(train, validation_data=validation, epochs=1)
  return model, history


@pytest.fixture(scope='module')
def binary(data):
  """A forest trained on the binary rows, and its history."""
  return _trained('binary', *data['binary'])


def test_sample_registers_the_space_prefixed_and_returns_the_defaults():
  space = GbtSpace()
  hp = keras_tuner.HyperParameters()
  values = search_space.sample_gbt(hp, space)
  expected = {}
  for name in GbtSpace.model_fields:
    entry = getattr(space, name)
    expected[name] = (
      entry.min if isinstance(entry, (IntRange, FloatRange)) else entry[0]
    )
  assert values == expected
  assert set(hp.values) == {gbt.PREFIX + name for name in expected}
  hp.values[gbt.PREFIX + 'max_depth'] = 6  # a trial's value
  assert search_space.sample_gbt(hp, space)['max_depth'] == 6


def test_every_hyperparameter_is_a_tfdf_argument():
  import tensorflow_decision_forests as tfdf  # pylint: disable=g-import-not-at-top

  accepted = inspect.signature(
    tfdf.keras.GradientBoostedTreesModel.__init__
  ).parameters
  assert set(GbtSpace.model_fields) <= set(accepted)


@pytest.mark.parametrize(
  'kind,width', [('binary', 1), ('multiclass', 4), ('regression', 1)]
)
def test_outputs_have_the_networks_shapes(data, binary, kind, width):
  model, _ = binary if kind == 'binary' else _trained(kind, *data[kind])
  validation = data[kind][1]
  output = model.predict(validation, verbose=0)
  assert output.shape == (ROWS - TRAIN, width)
  assert output.dtype == np.float32
  if kind == 'binary':
    assert np.all((output >= 0) & (output <= 1))
    # P(class 1): high where the label is 1.
    labels = np.concatenate([y.numpy() for _, y in validation])
    assert output[labels == 1].mean() > output[labels == 0].mean() + 0.3
  if kind == 'multiclass':
    np.testing.assert_allclose(output.sum(axis=1), 1.0, atol=1e-5)


def test_a_class_missing_from_training_keeps_its_column(data):
  train, validation = data['multiclass']
  # The highest class never trains: the forest knows classes 0..2 only.
  train = train.map(lambda x, y: (x, tf.minimum(y, 2)))
  model, _ = _trained('multiclass', train, validation)
  output = model.predict(validation, verbose=0)
  assert output.shape == (ROWS - TRAIN, 4)
  np.testing.assert_array_equal(output[:, 3], 0.0)


def test_categorical_ids_split_as_categories(data):
  import tensorflow_decision_forests as tfdf  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(1)
  features = _features(rng)
  # Only the color matters, and not in the order of its ids: no threshold
  # on the id separates {1, 3} from {0, 2, 4}; one set split does.
  labels = np.isin(features['color'][:, 0], [1, 3]).astype(np.int64)
  dataset = tf.data.Dataset.from_tensor_slices((features, labels)).batch(64)
  model, history = _trained('binary', dataset, dataset, _defaults(max_depth=2))
  inspector = model.make_inspector()
  semantics = {f.name: f.type for f in inspector.features()}
  column = tfdf.py_tree.dataspec.ColumnType
  assert semantics == {'color': column.CATEGORICAL, 'x': column.NUMERICAL}
  root = inspector.extract_tree(0).root.condition
  assert isinstance(root, tfdf.py_tree.condition.CategoricalIsInCondition)
  assert root.feature.name == 'color'
  assert sorted(root.mask) in ([1, 3], [0, 2, 4])
  assert history.history['val_binary_accuracy'] == [1.0]


def test_the_seed_decides_the_trees(data):
  train, validation = data['binary']
  sampled = _defaults(subsample=0.8)  # each tree sees a random 80 %
  first, second, other = (
    _trained('binary', train, validation, sampled, seed)[0].predict(
      validation, verbose=0
    )
    for seed in (SEED, SEED, SEED + 1)
  )
  np.testing.assert_array_equal(first, second)
  assert not np.array_equal(first, other)


@pytest.mark.parametrize('kind', list(TASKS))
def test_val_metrics_are_the_task_loss_and_metrics_on_validation(
  data, binary, kind
):
  train, validation = data[kind]
  model, history = (
    binary if kind == 'binary' else _trained(kind, train, validation)
  )
  task = TASKS[kind]
  # The names the Tuner and early stopping monitor, as a network's.
  assert set(history.history) == set(task.monitors)
  assert history.epoch == [0]
  predicted = model.predict(validation, verbose=0)
  labels = np.concatenate([y.numpy() for _, y in validation])
  if predicted.shape[1] == 1:  # one column: a [batch, 1] label, as Keras
    labels = labels.reshape(-1, 1)  # aligns them in compiled losses
  assert history.history['val_loss'][0] == pytest.approx(
    float(task.loss()(labels, predicted)), abs=1e-5
  )
  for metric in task.keras_metrics():
    metric.update_state(labels, predicted)
    assert history.history[f'val_{metric.name}'][0] == pytest.approx(
      float(metric.result()), abs=1e-5
    )


def test_build_trains_on_the_trials_loss_and_prefixed_values(data):
  """`build`: what TrainingData.new_model calls with a trial's values."""
  train, validation = data['regression']
  inputs = ModelInputs(
    numeric=['x'], categorical={'color': COLORS}, task=TASKS['regression']
  )
  hparams = {gbt.PREFIX + k: v for k, v in _defaults().items()}
  hparams.update(builder='gbt', batch_size=64, loss='mae')
  model = gbt.build(inputs, hparams, SEED)
  assert model.learner_params['loss'] == 'MEAN_AVERAGE_ERROR'
  assert model.learner_params['num_trees'] == 20
  history = model.fit(train, validation_data=validation, epochs=1)
  labels = np.concatenate([y.numpy() for _, y in validation]).reshape(-1, 1)
  mae = keras.losses.MeanAbsoluteError()(
    labels, model.predict(validation, verbose=0)
  )
  assert history.history['val_loss'][0] == pytest.approx(float(mae), abs=1e-5)


def test_fit_is_quiet_and_takes_any_epochs(data, capfd):
  train, validation = data['binary']
  model = gbt.build_gbt(
    INPUTS, _defaults(), regression=False, num_classes=2, seed=SEED
  )
  gbt.compile_gbt(model, [], keras.losses.BinaryCrossentropy())
  capfd.readouterr()
  # A Trainer's epochs, a Hyperband round's start: the forest grows once.
  history = model.fit(
    train, validation_data=validation, epochs=5, initial_epoch=2, verbose=0
  )
  model.predict(validation, verbose=0)
  out, err = capfd.readouterr()
  assert history.epoch == [0]
  assert not [noise for noise in TFDF_NOISE if noise in out + err]


def test_building_under_a_distribution_strategy_says_to_build_outside():
  # What run_fn and the Tuner enter when a GPU is visible; TF-DF would
  # refuse it only at the first fit.
  with tf.distribute.MirroredStrategy(['/cpu:0']).scope():
    with pytest.raises(ValueError, match='outside strategy.scope'):
      gbt.build_gbt(
        INPUTS, _defaults(), regression=False, num_classes=2, seed=SEED
      )


def _export(model, path):
  """Saves `model` as run_fn does: signatures over a Transform-like
  graph (here a vocabulary lookup and a reshape) tracked by the model."""
  model.vocabulary = tf.lookup.StaticHashTable(
    tf.lookup.KeyValueTensorInitializer(
      tf.constant([b'red', b'green', b'blue', b'cyan', b'pink']),
      tf.range(5, dtype=tf.int64),
    ),
    default_value=COLORS - 1,
  )

  @tf.function(
    input_signature=[
      tf.TensorSpec([None], tf.float32, name='x'),
      tf.TensorSpec([None], tf.string, name='color'),
    ]
  )
  def serve(x, color):
    transformed = {
      'x': tf.reshape(x, [-1, 1]),
      'color': tf.reshape(model.vocabulary.lookup(color), [-1, 1]),
    }
    return {'out': model({k: transformed[k] for k in model.input_names})}

  model.save(
    path,
    save_format='tf',
    signatures={'serving_default': serve.get_concrete_function()},
  )
  return serve


RAW = {'x': [0.3, -1.2, 2.0], 'color': ['blue', 'red', 'unseen']}


def _network(path):
  """A plain Keras network over the same inputs, saved."""
  inputs = INPUTS.input_layers()
  x = keras.layers.Concatenate()(
    [inputs['x'], tf.cast(inputs['color'], tf.float32)]
  )
  model = keras.Model(inputs, keras.layers.Dense(1, activation='sigmoid')(x))
  model.save(path, save_format='tf')


def test_a_new_process_loads_trees_through_ensure_ops_and_networks_without(
  binary, tmp_path
):
  trees, network = str(tmp_path / 'trees'), str(tmp_path / 'network')
  serve = _export(binary[0], trees)
  expected = serve(tf.constant(RAW['x']), tf.constant(RAW['color']))['out']
  _network(network)
  assert model_ops.uses_forest_ops(trees)
  assert not model_ops.uses_forest_ops(network)
  assert not model_ops.uses_forest_ops(
    str(tmp_path)
  )  # no SavedModel: the load says
  script = textwrap.dedent(f"""
      import json, sys
      import tensorflow as tf
      from components import model_ops
      model_ops.ensure_ops({network!r})
      assert 'tensorflow_decision_forests' not in sys.modules
      tf.saved_model.load({network!r})
      assert 'tensorflow_decision_forests' not in sys.modules
      model_ops.ensure_ops({trees!r})
      from modules import gbt
      gbt.load_ops()  # as the model server does: no engine logs
      assert 'tensorflow_decision_forests' in sys.modules
      loaded = tf.saved_model.load({trees!r})
      raw = json.loads({json.dumps(RAW)!r})
      out = loaded.signatures['serving_default'](
          x=tf.constant(raw['x']), color=tf.constant(raw['color']))['out']
      print(json.dumps(out.numpy().tolist()))
      """)
  env = dict(os.environ, TF_USE_LEGACY_KERAS='1', TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run(
    [sys.executable, '-c', script],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  answered = json.loads(proc.stdout.strip().splitlines()[-1])
  np.testing.assert_allclose(answered, expected.numpy(), atol=1e-6)
  assert not [noise for noise in TFDF_NOISE if noise in proc.stderr]


def test_the_model_server_loads_through_ensure_ops(
  binary, tmp_path, monkeypatch
):
  from pipeline.serving import server  # pylint: disable=g-import-not-at-top

  path = str(tmp_path / '1')
  _export(binary[0], path)
  called = []
  monkeypatch.setattr(gbt, 'load_ops', lambda: called.append('ops'))
  loaded = server.load_version('trees', 1, path)
  assert called == ['ops']
  out = loaded.signatures['serving_default'](
    x=tf.constant(RAW['x']), color=tf.constant(RAW['color'])
  )['out']
  assert out.shape == (3, 1)


def test_the_op_names_are_tfdfs():
  """FOREST_OPS, what ensure_ops looks for, are ops TF-DF registers."""
  import tensorflow_decision_forests  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  from tensorflow.python.framework import op_def_registry  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top

  assert all(op_def_registry.get(op) is not None for op in model_ops.FOREST_OPS)
