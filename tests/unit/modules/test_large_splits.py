"""Large splits. The Tuner's and the Trainer's (modules/data.py's `Split`,
on hand-made gzipped TFRecord files): held in memory when their parsed
columns fit CACHE_MAX_PARSED_BYTES, streamed from their files every epoch
when not, and the same batches in the same order either way. The
Evaluator's (components/evaluator.py): the features no slice or metric
reads are left out of TFMA's per-example work, and TFMA calls the model's
signatures by keyword."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow.python.eager.polymorphic_function import function_type_utils
from tensorflow_transform.tf_metadata import schema_utils
from tfx_bsl.public import tfxio

from components import evaluator
from modules import data as data_lib
from tests.conftest import resolved_spec

LABEL = 'label_xf'
SPEC = {
  'a_xf': tf.io.FixedLenFeature([1], tf.float32),
  'b_xf': tf.io.FixedLenFeature([1], tf.float32),
  'id_xf': tf.io.FixedLenFeature([1], tf.int64),
  'scalar_xf': tf.io.FixedLenFeature([], tf.float32),
  'pair_xf': tf.io.FixedLenFeature([2], tf.float32),
  LABEL: tf.io.FixedLenFeature([1], tf.int64),
}
ROWS_PER_FILE = (2000, 1500, 3000)  # from GATHER_MIN_ROWS on: gathered


@pytest.fixture(autouse=True)
def _nothing_shared(monkeypatch):
  """Each test parses its splits itself (no split held by another test)."""
  monkeypatch.setattr(data_lib, '_SHARED', type(data_lib._SHARED)())


def _floats(values):
  return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _ints(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


@pytest.fixture(params=['threads', 'eager'])
def load(request, monkeypatch):
  """Either way of reading a split into memory: files in parallel on
  tf.data's threads, or (small files) eagerly."""
  if request.param == 'threads':
    monkeypatch.setattr(data_lib, 'SMALL_FILE_BYTES', 0)
  return request.param


def _example(rng, row: int) -> bytes:
  floats, ints = _floats, _ints
  return tf.train.Example(
    features=tf.train.Features(
      feature={
        'a_xf': floats([rng.normal()]),
        'b_xf': floats([float(row)]),
        'id_xf': ints([int(rng.integers(0, 50))]),
        'scalar_xf': floats([rng.normal()]),
        'pair_xf': floats(rng.normal(size=2).tolist()),
        LABEL: ints([int(rng.integers(0, 2))]),
      }
    )
  ).SerializeToString()


def _write_split(folder, rows_per_file=ROWS_PER_FILE):
  """Gzipped files of tf.Examples whose b_xf numbers the rows in file
  order; their pattern."""
  folder.mkdir()
  rng = np.random.default_rng(0)
  row = 0
  options = tf.io.TFRecordOptions(compression_type='GZIP')
  for index, count in enumerate(rows_per_file):
    path = folder / f'part-{index:05d}-of-{len(rows_per_file):05d}.gz'
    with tf.io.TFRecordWriter(str(path), options) as writer:
      for _ in range(count):
        writer.write(_example(rng, row))
        row += 1
  return [str(folder / '*')]


def _batches(dataset):
  """Every batch of `dataset` as plain lists: features by name, labels."""
  return [
    (
      {k: v.numpy().tolist() for k, v in features.items()},
      labels.numpy().tolist(),
    )
    for features, labels in dataset
  ]


def _row_numbers(batches):
  return [int(b[0]) for features, _ in batches for b in features['b_xf']]


def _parsed_size(files):
  """The split's parsed bytes, as `Split` counts them."""
  return data_lib.Split(files, SPEC, LABEL).held.nbytes


def test_a_split_under_the_budget_is_held_and_served_from_memory(
  tmp_path, load
):
  del load
  files = _write_split(tmp_path / 'split')
  split = data_lib.Split(files, SPEC, LABEL)
  assert split.held is not None
  assert split.held.count == sum(ROWS_PER_FILE)
  assert split.held.nbytes <= data_lib.CACHE_MAX_PARSED_BYTES
  expected = _batches(split.batches(100, True, 7))
  for path in tf.io.gfile.glob(files[0]):
    tf.io.gfile.remove(path)
  # No file left: every row still comes, from memory.
  again = _batches(split.batches(100, True, 7))
  assert again == expected
  assert sorted(_row_numbers(again)) == list(range(sum(ROWS_PER_FILE)))


def test_a_split_over_the_budget_is_streamed_not_held(
  tmp_path, monkeypatch, load
):
  del load
  files = _write_split(tmp_path / 'split')
  size = _parsed_size(files)
  # A budget that the first of the parsed batches passes, and one that
  # only the whole split passes: neither holds it.
  for budget in (1, size - 1):
    monkeypatch.setattr(data_lib, '_SHARED', type(data_lib._SHARED)())
    monkeypatch.setattr(data_lib, 'CACHE_MAX_PARSED_BYTES', budget)
    split = data_lib.Split(files, SPEC, LABEL)
    assert split.held is None
    assert sorted(_row_numbers(_batches(split.batches(256, True, 7)))) == (
      list(range(sum(ROWS_PER_FILE)))
    )
  # At the budget exactly it is held.
  monkeypatch.setattr(data_lib, '_SHARED', type(data_lib._SHARED)())
  monkeypatch.setattr(data_lib, 'CACHE_MAX_PARSED_BYTES', size)
  assert data_lib.Split(files, SPEC, LABEL).held is not None
  # Streamed: read from the files every epoch, so without them it fails.
  for path in tf.io.gfile.glob(files[0]):
    tf.io.gfile.remove(path)
  with pytest.raises((tf.errors.NotFoundError, tf.errors.InvalidArgumentError)):
    _batches(split.batches(256, True, 7))


def test_files_over_their_limit_are_streamed_without_parsing(
  tmp_path, monkeypatch
):
  files = _write_split(tmp_path / 'split')
  monkeypatch.setattr(data_lib, 'CACHE_MAX_FILE_BYTES', 0)
  monkeypatch.setattr(data_lib.Split, '_parse', None)  # never called
  assert data_lib.Split(files, SPEC, LABEL).held is None


@pytest.mark.parametrize(
  'gather_min_rows',
  [data_lib.GATHER_MIN_ROWS, 10**9],
  ids=['gathered', 'row_by_row'],
)
def test_held_and_streamed_give_the_same_batches_in_the_same_order(
  tmp_path, monkeypatch, gather_min_rows, load
):
  del load
  monkeypatch.setattr(data_lib, 'GATHER_MIN_ROWS', gather_min_rows)
  # A buffer smaller than the split, as TFXIO's 10k rows are at 1M rows.
  monkeypatch.setattr(data_lib, 'SHUFFLE_BUFFER', 1000)
  files = _write_split(tmp_path / 'split')
  held = data_lib.Split(files, SPEC, LABEL)
  assert held.held is not None
  orders = []
  for batch_size, shuffle, seed in (
    (100, True, 7),
    (64, True, 8),
    (100, False, 0),
  ):
    from_memory = held.batches(batch_size, shuffle, seed)
    from_files = held.stream(batch_size, shuffle, seed)
    # Two epochs of each dataset: Keras iterates one dataset per epoch, and
    # each epoch is shuffled anew, the same way from memory as from files.
    for _ in range(2):
      expected = _batches(from_files)
      assert _batches(from_memory) == expected
      assert [len(labels) for _, labels in expected][:2] == [batch_size] * 2
      orders.append(_row_numbers(expected))
  # Two seeds, two epochs each: four orders; unshuffled, file by file.
  assert len({tuple(order) for order in orders[:4]}) == 4
  assert orders[4] == orders[5] == list(range(sum(ROWS_PER_FILE)))


def test_a_split_of_one_file_is_batched_as_tfxio_batches_it(tmp_path):
  """The project's e2e tests compare against TFXIO (modules/data.input_fn)
  on the default data, whose splits are one file each."""
  files = _write_split(tmp_path / 'split', rows_per_file=(5000,))
  split = data_lib.Split(files, SPEC, LABEL)
  schema = schema_utils.schema_from_feature_spec(SPEC)
  by_tfxio = tfxio.TFExampleRecord(files, schema=schema).TensorFlowDataset(
    tfxio.TensorFlowDatasetOptions(
      batch_size=128,
      label_key=LABEL,
      num_epochs=1,
      shuffle=True,
      shuffle_seed=3,
    )
  )
  expected = _batches(by_tfxio)
  assert _batches(split.stream(128, True, 3)) == expected
  assert _batches(split.batches(128, True, 3)) == expected


def test_the_trainer_finds_what_the_tuner_held(tmp_path, monkeypatch):
  """LocalDagRunner runs the Tuner and the Trainer in one process: the
  second Split over the same files holds the first's columns; other files
  (SHARED_SPLITS = 2 further) let them go."""
  files = _write_split(tmp_path / 'split')
  first = data_lib.Split(files, SPEC, LABEL)
  monkeypatch.setattr(data_lib.Split, '_parse', None)  # never called again
  assert data_lib.Split(files, SPEC, LABEL).held is first.held
  monkeypatch.undo()
  others = [_write_split(tmp_path / name, (10,)) for name in ('x', 'y')]
  for other in others:
    data_lib.Split(other, SPEC, LABEL)
  assert data_lib.Split(files, SPEC, LABEL).held is not first.held


def _eval_config(**overrides):
  from pipeline.definition import pipeline  # pylint: disable=g-import-not-at-top

  return pipeline.eval_config(resolved_spec(overrides=overrides or None))


def test_the_evaluator_keeps_only_the_features_a_slice_reads():
  # The default spec: metrics of labels and predictions, the overall slice.
  assert evaluator.features_read(_eval_config()) == frozenset()
  sliced = _eval_config(**{'evaluation.slices': [['mean_radius']]})
  assert evaluator.features_read(sliced) == {'mean_radius'}
  sql = _eval_config()
  sql.slicing_specs.add(slice_keys_sql='SELECT STRUCT(x) FROM example.x')
  assert evaluator.features_read(sql) is None  # cannot tell: keep all
  # A metric that reads a feature by name (its preprocessor says which).
  by_feature = _eval_config()
  by_feature.metrics_specs.add(
    metrics=[
      tfma.MetricConfig(
        class_name='MinLabelPosition', config='"label_key": "relevance"'
      )
    ],
    query_key='query',
  )
  assert evaluator.features_read(by_feature) == {'relevance'}

  batch = {
    'features': {'mean_radius': 1, 'mean_area': 2},
    'transformed_features': {'mean_radius_xf': 3},
    'labels': 4,
    'predictions': 5,
  }
  assert evaluator.drop_unread(batch, frozenset()) == {
    'labels': 4,
    'predictions': 5,
  }
  assert evaluator.drop_unread(batch, frozenset({'mean_radius'})) == {
    'features': {'mean_radius': 1},
    'labels': 4,
    'predictions': 5,
  }
  # A name that is not a raw feature: the transformed ones stay.
  assert evaluator.drop_unread(batch, frozenset({'mean_radius_xf'})) == {
    'transformed_features': {'mean_radius_xf': 3},
    'labels': 4,
    'predictions': 5,
  }


def test_the_evaluator_calls_signatures_by_keyword(tmp_path, monkeypatch):
  module = tf.Module()
  module.double = tf.function(
    lambda examples: {'out': tf.strings.join([examples, examples])},
    input_signature=[tf.TensorSpec([None], tf.string, name='examples')],
  )
  tf.saved_model.save(
    module,
    str(tmp_path),
    signatures={'serving_default': module.double.get_concrete_function()},
  )
  examples = tf.constant([b'a', b'bc'])
  loaded = tf.saved_model.load(str(tmp_path))
  signature = loaded.signatures['serving_default']
  # What TFMA does, and why it was slow: a loaded signature takes keywords
  # only, so a call by position fails to bind (its error prints the batch)
  # before the flat signature answers.
  with pytest.raises(TypeError, match='Received args'):
    signature._call_with_structured_signature((examples,), {})  # pylint: disable=protected-access
  model = evaluator._with_keyword_signatures(  # pylint: disable=protected-access
    lambda: tf.saved_model.load(str(tmp_path))
  )
  wrapped = model.signatures['serving_default']
  assert wrapped.structured_input_signature == (
    signature.structured_input_signature
  )
  failed_binds = []
  bind = function_type_utils.bind_function_inputs

  def counted(*args, **kwargs):
    try:
      return bind(*args, **kwargs)
    except TypeError:
      failed_binds.append(args)
      raise

  monkeypatch.setattr(function_type_utils, 'bind_function_inputs', counted)
  assert signature(examples)['out'].numpy().tolist() == [b'aa', b'bcbc']
  assert len(failed_binds) == 1  # the slow way, by position
  assert wrapped(examples)['out'].numpy().tolist() == [b'aa', b'bcbc']
  assert len(failed_binds) == 1  # by keyword: no failed bind
  assert wrapped(examples=examples)['out'].numpy().tolist() == [b'aa', b'bcbc']
  assert list(model.signatures) == ['serving_default']
