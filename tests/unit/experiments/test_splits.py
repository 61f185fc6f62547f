"""Reading the pipeline's own train/eval split back (pipeline/experiments/
splits.py), on an ExampleGen output folder written here by hand: no
pipeline runs."""

import math
import os

import pytest
import tensorflow as tf

from pipeline.experiments import splits


def _feature(value):
  """A tf.train.Feature of one value, of a list, or empty (None)."""
  if value is None:
    return tf.train.Feature()  # no kind set: as good as absent
  values = value if isinstance(value, list) else [value]
  if isinstance(values[0], str):
    return tf.train.Feature(
      bytes_list=tf.train.BytesList(value=[v.encode('utf-8') for v in values])
    )
  if isinstance(values[0], int):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
  return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _write_split(root, execution, split, rows, shards=1):
  """Writes `rows` (dicts; a key left out is a missing cell) as gzipped
  TFRecord shards, as CsvExampleGen lays them out."""
  folder = os.path.join(
    root, 'CsvExampleGen', 'examples', str(execution), f'Split-{split}'
  )
  os.makedirs(folder)
  options = tf.io.TFRecordOptions(compression_type='GZIP')
  for shard in range(shards):
    path = os.path.join(folder, f'data_tfrecord-{shard:05d}-of-{shards:05d}.gz')
    with tf.io.TFRecordWriter(path, options) as writer:
      for row in rows[shard::shards]:
        example = tf.train.Example(
          features=tf.train.Features(
            feature={k: _feature(v) for k, v in row.items()}
          )
        )
        writer.write(example.SerializeToString())


TRAIN = [
  {'weight': 3504, 'mpg': 18.0, 'origin': 'USA'},
  {'weight': 2372, 'origin': 'Japan'},  # mpg missing: left out
  {'weight': 1835, 'mpg': 27.0, 'origin': 'Europe', 'name': 'vw 1131'},
  {'weight': 2130, 'mpg': None, 'origin': 'Japan'},  # missing: empty
]
EVAL = [{'weight': 2833, 'mpg': 21.0, 'origin': None}]


@pytest.fixture
def root(tmp_path):
  """A pipeline root with three ExampleGen executions; 12 is the newest
  (larger than 7 as a number, not as text)."""
  for execution in (1, 7):
    _write_split(tmp_path, execution, 'train', [{'stale': 1.0}])
    _write_split(tmp_path, execution, 'eval', [{'stale': 1.0}])
  _write_split(tmp_path, 12, 'train', TRAIN, shards=2)
  _write_split(tmp_path, 12, 'eval', EVAL)
  # ExampleGen's bookkeeping beside the artifacts is not an execution.
  os.makedirs(tmp_path / 'CsvExampleGen' / 'examples' / '.system')
  return str(tmp_path)


def test_reads_the_newest_execution_split_by_split(root):
  tables = splits.pipeline_split(root)
  assert sorted(tables) == ['eval', 'train']
  train = tables['train']
  assert list(train.columns) == ['mpg', 'name', 'origin', 'weight']
  assert len(train) == 4 and len(tables['eval']) == 1
  # Every row whatever its shard, each value its own type.
  assert sorted(train['weight']) == [1835, 2130, 2372, 3504]
  assert train['weight'].dtype.kind == 'i'
  by_weight = train.set_index('weight')
  assert by_weight.loc[1835, 'origin'] == 'Europe'
  assert by_weight.loc[1835, 'name'] == 'vw 1131'
  assert by_weight.loc[3504, 'mpg'] == 18.0


def test_a_missing_value_is_nan_or_none(root):
  train = splits.pipeline_split(root)['train'].set_index('weight')
  assert math.isnan(train.loc[2372, 'mpg'])  # left out of the example
  assert math.isnan(train.loc[2130, 'mpg'])  # present but empty
  assert train.loc[3504, 'name'] is None  # text: None, not 'nan'
  assert splits.pipeline_split(root)['eval'].loc[0, 'origin'] is None


def test_only_the_splits_asked_for(root):
  assert list(splits.pipeline_split(root, splits=['eval'])) == ['eval']
  with pytest.raises(splits.SplitError, match='no split test'):
    splits.pipeline_split(root, splits=['train', 'test'])


def test_no_example_gen_output_is_one_line(tmp_path):
  with pytest.raises(splits.SplitError, match='no ExampleGen output'):
    splits.pipeline_split(str(tmp_path))
  os.makedirs(tmp_path / 'CsvExampleGen' / 'examples' / '3')
  with pytest.raises(splits.SplitError, match='no execution folder'):
    splits.pipeline_split(str(tmp_path))
