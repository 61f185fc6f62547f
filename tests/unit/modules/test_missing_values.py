"""Missing values through preprocessing_fn, under tf.Transform's own Beam
implementation (no pipeline): each imputation rule fills with the
statistic of the rows it analysed (compared with pandas), indicators mark
what was missing, a STRING label gets a vocabulary, and the same graph
fills a serving request's gaps."""

import tempfile

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from modules import features as features_lib
from modules.config import TransformConfig

# Hand-made rows: `x` and `size` numeric with gaps (absent, and NaN),
# `color` categorical with gaps, `label` a class name.
ROWS = [
  {'x': [1.0], 'size': [3], 'color': [b'red'], 'label': [b'cat']},
  {'x': [], 'size': [5], 'color': [b'red'], 'label': [b'dog']},
  {'x': [4.0], 'size': [], 'color': [], 'label': [b'cat']},
  {'x': [10.0], 'size': [8], 'color': [b'blue'], 'label': [b'cat']},
  {'x': [float('nan')], 'size': [2], 'color': [b'red'], 'label': [b'dog']},
  {'x': [2.0], 'size': [], 'color': [b'blue'], 'label': [b'bird']},
  {'x': [7.0], 'size': [4], 'color': [], 'label': [b'cat']},
]
FRAME = pd.DataFrame(
  {
    'x': [1.0, None, 4.0, 10.0, None, 2.0, 7.0],
    'size': [3, 5, None, 8, 2, None, 4],
    'color': ['red', 'red', None, 'blue', 'red', 'blue', None],
  }
)
MISSING = {name: FRAME[name].isna().to_numpy() for name in FRAME}


def _config(impute=None, numeric='none', label='label'):
  return TransformConfig(
    features={
      'label': label,
      'numeric': ['x', 'size'],
      'categorical': ['color'],
    },
    preprocessing={'numeric': numeric, 'impute': impute or {}},
  )


def _feature_spec():
  return {
    'x': tf.io.VarLenFeature(tf.float32),
    'size': tf.io.VarLenFeature(tf.int64),
    'color': tf.io.VarLenFeature(tf.string),
    'label': tf.io.FixedLenFeature([1], tf.string),
  }


def transform(config, rows=ROWS):
  """AnalyzeAndTransform over `rows`: (transformed rows, TFTransformOutput)."""
  # pylint: disable=g-import-not-at-top
  import tensorflow_transform as tft
  import tensorflow_transform.beam as tft_beam
  from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

  from modules.preprocessing import preprocessing_fn

  # pylint: enable=g-import-not-at-top
  metadata = dataset_metadata.DatasetMetadata(
    schema_utils.schema_from_feature_spec(_feature_spec())
  )
  output_dir = tempfile.mkdtemp()
  custom = config.to_custom_config()
  with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
    (transformed, _), transform_fn = (
      rows,
      metadata,
    ) | tft_beam.AnalyzeAndTransformDataset(
      lambda inputs: preprocessing_fn(inputs, custom),
      output_record_batches=False,
    )
    _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
  return transformed, tft.TFTransformOutput(output_dir)


def column(rows, name):
  return np.array([np.ravel(r[name])[0] for r in rows])


def test_numeric_mean_and_median_are_the_analysed_rows_statistics():
  out, _ = transform(
    _config({'numeric': 'mean', 'features': {'size': {'fill': 'median'}}})
  )
  x, size = column(out, 'x_xf'), column(out, 'size_xf')
  assert np.allclose(x[MISSING['x']], FRAME['x'].mean())  # NaN counts missing
  assert np.allclose(x[~MISSING['x']], FRAME['x'].dropna())
  # tf.Transform's quantiles are approximate: the median lies between the
  # two middle values pandas averages.
  present = np.sort(FRAME['size'].dropna().to_numpy())
  low, high = present[(len(present) - 1) // 2], present[len(present) // 2]
  assert np.all(
    (size[MISSING['size']] >= low) & (size[MISSING['size']] <= high)
  )
  assert FRAME['size'].median() == pytest.approx(
    size[MISSING['size']][0], abs=high - low
  )


def test_zero_and_constant_fills_and_indicators():
  out, _ = transform(
    _config(
      {
        'numeric': 'zero',
        'indicator': True,
        'features': {'size': {'fill': -1.0}},
      }
    )
  )
  assert np.all(column(out, 'x_xf')[MISSING['x']] == 0.0)
  assert np.all(column(out, 'size_xf')[MISSING['size']] == -1.0)
  for name in ('x', 'size', 'color'):
    indicator = column(out, features_lib.indicator_name(name))
    assert indicator.tolist() == MISSING[name].astype(float).tolist(), name


def test_categorical_missing_bucket_most_frequent_and_constant():
  out, output = transform(_config())  # missing_bucket by default
  vocabulary = [v.decode() for v in output.vocabulary_by_name('color')]
  ids = column(out, 'color_xf')
  assert [vocabulary[i] for i in ids[MISSING['color']]] == ['__missing__'] * 2
  out, output = transform(_config({'categorical': 'most_frequent'}))
  vocabulary = [v.decode() for v in output.vocabulary_by_name('color')]
  most_frequent = FRAME['color'].mode()[0]
  assert vocabulary[0] == most_frequent == 'red'
  assert np.all(column(out, 'color_xf')[MISSING['color']] == 0)
  assert '__missing__' not in vocabulary
  out, output = transform(_config({'categorical': {'constant': 'unknown'}}))
  vocabulary = [v.decode() for v in output.vocabulary_by_name('color')]
  ids = column(out, 'color_xf')
  assert {vocabulary[i] for i in ids[MISSING['color']]} == {'unknown'}


def test_string_label_gets_a_vocabulary_most_frequent_first():
  out, output = transform(_config())
  names = [v.decode() for v in output.vocabulary_by_name('label_classes')]
  assert names == ['cat', 'dog', 'bird']
  labels = [names[i] for i in column(out, 'label_xf')]
  assert labels == [r['label'][0].decode() for r in ROWS]


def test_the_serving_graph_fills_gaps_with_the_training_statistics():
  """A request without `x` (and a NaN), through the saved Transform graph."""
  _, output = transform(_config({'numeric': 'mean'}))
  layer = output.transform_features_layer()
  request = {
    'x': tf.SparseTensor([[1, 0]], [3.0], [2, 1]),  # row 0 leaves x out
    'size': tf.SparseTensor(
      [[0, 0], [1, 0]], tf.constant([4, 6], tf.int64), [2, 1]
    ),
    'color': tf.SparseTensor([[0, 0]], [b'blue'], [2, 1]),
  }
  served = layer(request)
  x = served['x_xf'].numpy().ravel()
  assert x[0] == pytest.approx(FRAME['x'].mean())
  assert x[1] == pytest.approx(3.0)
  assert 'label_xf' not in served  # no label at serving


def test_filled_columns_are_scaled_each_by_its_own_statistics():
  """All numeric columns share one fill analyzer and one scaling analyzer
  (modules/preprocessing.py); each column still gets its own statistics."""
  out, _ = transform(_config({'numeric': 'mean'}, numeric='z_score'))
  for name in ('x', 'size'):
    filled = FRAME[name].fillna(FRAME[name].mean()).to_numpy()
    expected = (filled - filled.mean()) / filled.std()
    assert np.allclose(column(out, f'{name}_xf'), expected, atol=1e-5), name
