"""The Tuner's and the Trainer's datasets (modules/data.py) over the cold
run's Transform output: a small split is read from its files once and then
served from memory, with the same rows in the same order as from the files;
a split over the limit is read from its files every time."""

import glob
import os
import shutil

import pytest
import tensorflow as tf
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx.components.util import tfxio_utils
from tfx.types import artifact_utils, standard_artifacts

from modules import data as data_lib
from modules.config import TrainerConfig
from tests.conftest import resolved_spec

pytestmark = pytest.mark.e2e


def _training_data(base, into):
  """TrainingData over a copy (in `into`) of the cold run's transformed
  examples, as TFX's Trainer would give them."""
  transform = os.path.join(base, 'root', 'Transform')
  examples_uri = str(into / 'transformed_examples')
  shutil.copytree(
    glob.glob(os.path.join(transform, 'transformed_examples', '*'))[0],
    examples_uri,
  )
  examples = standard_artifacts.Examples()
  examples.uri = examples_uri
  examples.split_names = artifact_utils.encode_split_names(['train', 'eval'])
  fn_args = FnArgs(
    transform_graph_path=glob.glob(
      os.path.join(transform, 'transform_graph', '*')
    )[0],
    train_files=[os.path.join(examples_uri, 'Split-train', '*')],
    eval_files=[os.path.join(examples_uri, 'Split-eval', '*')],
    data_accessor=DataAccessor(
      tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact(
        [examples], []
      ),
      record_batch_factory=None,
      data_view_decode_fn=None,
    ),
  )
  spec = resolved_spec()
  return data_lib.TrainingData(fn_args, spec.module_config(TrainerConfig))


def _rows(dataset):
  """Every batch of `dataset` as plain lists: features by name, labels."""
  return [
    (
      {k: v.numpy().tolist() for k, v in features.items()},
      labels.numpy().tolist(),
    )
    for features, labels in dataset
  ]


def _from_files(data, files, batch_size, shuffle, seed=0):
  return data_lib.input_fn(
    files,
    data.fn_args.data_accessor,
    data.transform_output,
    data.features.transformed_label,
    batch_size,
    shuffle=shuffle,
    seed=seed,
  )


@pytest.mark.parametrize(
  'gather_min_rows',
  [data_lib.GATHER_MIN_ROWS, 0],
  ids=['row_by_row', 'gathered'],
)
def test_a_small_split_is_read_once_then_served_from_memory(
  base, cold, tmp_path, monkeypatch, gather_min_rows
):
  """Either way of batching rows in memory (the default data's few hundred
  rows are batched row by row; from GATHER_MIN_ROWS rows on, gathered)."""
  del cold
  monkeypatch.setattr(data_lib, 'GATHER_MIN_ROWS', gather_min_rows)
  data = _training_data(base, tmp_path)
  train_files, eval_files = data.fn_args.train_files, data.fn_args.eval_files
  assert data_lib.files_bytes(train_files) <= data_lib.CACHE_MAX_FILE_BYTES
  expected_train = _rows(_from_files(data, train_files, 32, True, seed=7))
  expected_eval = _rows(_from_files(data, eval_files, 16, False))
  assert len(expected_train) > 1 and len(expected_eval) > 1

  # The same batches as from the files: the same shuffle, the same order.
  assert _rows(data.train(32, seed=7)) == expected_train
  # Batched from memory without tf.data's autotuning or its graph
  # rewrites, which every epoch's iterator would pay for.
  options = data.train(32, seed=7).options()
  assert options.autotune.enabled is False
  assert options.experimental_optimization.apply_default_optimizations is False
  assert _rows(data.eval(16)) == expected_eval
  # Served from memory now: without the files, every batch size and seed
  # still gets every row.
  shutil.rmtree(tmp_path / 'transformed_examples')
  again = _rows(data.train(64, seed=3))
  assert sorted(label for _, labels in again for label in labels) == sorted(
    label for _, labels in expected_train for label in labels
  )
  assert _rows(data.eval(16)) == expected_eval
  assert data.labels('eval') == [
    label[0] for _, labels in expected_eval for label in labels
  ]


def test_a_split_with_a_sparse_feature_is_cached_from_tfxio(
  base, cold, tmp_path, monkeypatch
):
  """A transformed feature without a fixed shape is not parsed here:
  TFXIO's own dataset is read once and served from memory, with the same
  batches."""
  del cold
  data = _training_data(base, tmp_path)
  fixed = data.transform_output.transformed_feature_spec()
  sparse = dict(
    fixed,
    **{
      name: tf.io.VarLenFeature(feature.dtype)
      for name, feature in list(fixed.items())[:1]
    },
  )
  monkeypatch.setattr(
    data.transform_output, 'transformed_feature_spec', lambda: sparse
  )
  expected = _rows(_from_files(data, data.fn_args.eval_files, 16, False))
  # Dense, as TFXIO parses them by the schema (parsed here by the patched
  # spec, the first feature would be a SparseTensor, which has no .numpy()).
  assert _rows(data.eval(16)) == expected
  shutil.rmtree(tmp_path / 'transformed_examples')
  assert _rows(data.eval(16)) == expected


def test_a_split_over_the_limit_is_read_from_its_files_every_time(
  base, cold, tmp_path, monkeypatch
):
  del cold
  monkeypatch.setattr(data_lib, 'CACHE_MAX_FILE_BYTES', 0)
  data = _training_data(base, tmp_path)
  expected = _rows(_from_files(data, data.fn_args.train_files, 32, True, 7))
  assert _rows(data.train(32, seed=7)) == expected
  shutil.rmtree(tmp_path / 'transformed_examples')
  with pytest.raises((tf.errors.NotFoundError, tf.errors.InvalidArgumentError)):
    _rows(data.train(32, seed=7))
