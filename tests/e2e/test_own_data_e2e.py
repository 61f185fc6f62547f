"""Bring your own data, end to end through the command line:

- the cars example (NA gaps, a STRING label, a date as text, an id column
  excluded): `schema` infers a schema, the run with the curated one blesses
  and pushes, and the pushed model, served by `serve` in a new process,
  answers a row that leaves values out with a class name;
- the breast-cancer data with NA and empty cells in numeric and
  categorical columns and no schema (SchemaGen infers it): the imputed
  values are the train split's (compared with pandas on that split), a
  one-class slice's AUC is reported undefined rather than blocking, and
  gated on purpose it is named as the reason;
- TFX's own penguin module file, unchanged, through a spec.
"""

import csv
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline.runners import preflight
from tests.conftest import DATA_CSV, REPO, cli, pipeline_fixture
from tests.unit.serving.test_serving import Server

pytestmark = pytest.mark.e2e

SPECS = os.path.join(REPO, 'pipeline', 'specs')
BUDGET = ['tuner.max_trials=4', 'tuner.max_epochs=4', 'training.epochs=40']


def _sets(base, *extra):
  values = [
    f'runner.pipeline_root={base}/root',
    f'runner.metadata={base}/metadata.sqlite',
    f'push.destination={base}/serving',
    *extra,
  ]
  return [a for v in values for a in ('--set', v)]


def _run(base, spec, name, *extra):
  summary_path = os.path.join(base, f'{name}.json')
  proc = cli('run', spec, *_sets(base, *extra), '--summary-json', summary_path)
  assert proc.returncode in (0, 1), proc.stderr[-3000:]
  with open(summary_path) as f:
    return proc, json.load(f)


# --- cars: inferred, curated schema; string label; serving -----------------


@pipeline_fixture(scope='session')
def cars(tmp_path_factory):
  base = str(tmp_path_factory.mktemp('cars'))
  inferred = os.path.join(base, 'inferred.pbtxt')
  schema = cli(
    'schema',
    os.path.join(SPECS, 'cars.yaml'),
    *_sets(base, 'schema=null'),
    '--output',
    inferred,
  )
  assert schema.returncode == 0, schema.stderr[-3000:]
  # Accuracy above the majority class (USA: 254 of 406, 0.63) with the
  # reduced tuning budget of the tests.
  proc, summary = _run(
    base,
    os.path.join(SPECS, 'cars.yaml'),
    'cars',
    *BUDGET,
    'evaluation.thresholds={accuracy: 0.65}',
  )
  return base, schema, inferred, proc, summary


def test_schema_command_infers_a_schema_to_curate(cars):
  base, schema, inferred, _, _ = cars
  assert (
    f'wrote {inferred}: 9 features, optional (may be missing): '
    'horsepower, miles_per_gallon.' in schema.stdout
  )
  loaded = preflight.load_schema(inferred)
  by_name = {f.name: f for f in loaded.feature}
  assert list(loaded.default_environment) == ['TRAINING', 'SERVING']
  for kept_out in ('origin', 'name'):  # the label, the excluded id
    assert list(by_name[kept_out].not_in_environment) == ['SERVING']
  assert {n for n, f in by_name.items() if preflight.is_optional(f)} == {
    'horsepower',
    'miles_per_gallon',
  }
  assert by_name['weight_in_lbs'].type == schema_pb2.INT
  assert by_name['horsepower'].type == schema_pb2.FLOAT
  # The committed, curated schema is this one plus domains and comments.
  committed = preflight.load_schema(
    os.path.join(REPO, 'schemas', 'cars', 'schema.pbtxt')
  )
  assert sorted(f.name for f in committed.feature) == sorted(by_name)
  assert os.path.exists(os.path.join(base, 'metadata.sqlite'))


def test_cars_with_a_string_label_blesses_and_pushes(cars):
  _, _, _, proc, summary = cars
  assert proc.returncode == 0, proc.stderr[-2000:]
  states = {c['id']: c['state'] for c in summary['components']}
  # The schema run's ExampleGen and StatisticsGen were reused.
  assert states['CsvExampleGen'] == states['StatisticsGen'] == 'cached'
  assert summary['blessed'] is True and summary['pushed'] is True
  assert summary['metrics']['accuracy'] >= 0.65
  assert set(summary['slices']) >= {'cylinders=4', 'cylinders=8'}


def test_the_pushed_model_answers_class_names_for_a_row_with_gaps(
  cars, tmp_path
):
  """`serve` (a new process) loads the pushed model; `predict` sends a row
  that leaves horsepower out (an empty cell) and one with NA, through
  serving_raw."""
  base, _, _, _, summary = cars
  with open(os.path.join(REPO, 'data', 'cars', 'cars.csv'), newline='') as f:
    rows = list(csv.DictReader(f))
  wanted = [
    dict(rows[0], horsepower=''),
    dict(rows[300], miles_per_gallon='NA'),
  ]
  path = tmp_path / 'rows.csv'
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(wanted)
  server = Server(os.path.join(base, 'serving'))
  try:
    proc = subprocess.run(
      [
        sys.executable,
        '-m',
        'pipeline',
        'predict',
        '--url',
        server.model('cars'),
        str(path),
        '--null',
        'NA',
      ],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=120,
      check=False,
    )
  finally:
    server.stop()
  assert proc.returncode == 0, proc.stderr
  assert proc.stderr.strip() == '2 rows scored through serving_raw'
  answers = [
    json.loads(line)['prediction'] for line in proc.stdout.strip().splitlines()
  ]
  for answer in answers:
    assert answer['class_name'] in ('USA', 'Japan', 'Europe')
    assert len(answer['probabilities']) == 3
    assert sum(answer['probabilities']) == pytest.approx(1.0, abs=1e-4)
  assert summary['pushed_path'].startswith(os.path.join(base, 'serving'))


# --- gaps in numeric and categorical columns, no schema, one-class slices ---

NA_COLUMN, EMPTY_COLUMN = 'mean_radius', 'worst_area'


def _gappy_csv(folder):
  """The breast-cancer data with NA and empty cells, and a categorical
  `group` with gaps whose slice `m` holds malignant rows only."""
  with open(DATA_CSV, newline='') as f:
    rows = list(csv.DictReader(f))
  for i, row in enumerate(rows):
    if i % 9 == 0:
      row[NA_COLUMN] = 'NA'
    if i % 11 == 0:
      row[EMPTY_COLUMN] = ''
    row['group'] = (
      ''
      if i % 10 == 3
      else 'm'
      if row['diagnosis'] == '1' and i % 4 == 0
      else 'x'
      if i % 3
      else 'y'
    )
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, 'gappy.csv')
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  return path


# No tuning: the search space's defaults train, with a learning rate that
# trains in 40 epochs (the default spec's minimum, 1e-4, is for the tuner).
GAPPY = [
  'schema=null',
  'data.null_values=[NA]',
  'features.categorical=[group]',
  'evaluation.slices=[[group]]',
  'tuner.enabled=false',
  'training.epochs=40',
  'model.search_space.learning_rate={min: 0.01, max: 0.03}',
  'preprocessing.impute={numeric: mean, categorical: most_frequent, '
  f'features: {{{EMPTY_COLUMN}: {{fill: median}}}}}}',
]


@pipeline_fixture(scope='session')
def gappy(tmp_path_factory):
  base = str(tmp_path_factory.mktemp('gappy'))
  data = _gappy_csv(os.path.join(base, 'data'))
  default_spec = os.path.join(SPECS, 'breast_cancer.yaml')
  first = _run(base, default_spec, 'first', f'data.csv={data}', *GAPPY)
  gated = _run(
    base,
    default_spec,
    'gated',
    f'data.csv={data}',
    *GAPPY,
    'evaluation.slice_thresholds=[{slice: {group: m}, thresholds: {auc: 0.5}}]',
  )
  return base, data, first, gated


def test_a_csv_with_gaps_trains_with_no_edit(gappy):
  _, _, (proc, summary), _ = gappy
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'SchemaGen' in [c['id'] for c in summary['components']]
  assert summary['blessed'] is True and summary['pushed'] is True


def _train_split(base):
  """The rows of the train split as ExampleGen wrote them."""
  files = glob.glob(
    os.path.join(
      base, 'root', 'CsvExampleGen', 'examples', '*', 'Split-train', '*.gz'
    )
  )
  rows = []
  for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    row = {}
    for name, value in feature.items():
      kind = value.WhichOneof('kind')
      values = list(getattr(value, kind).value) if kind else []
      row[name] = values[0] if values else None
    rows.append(row)
  return pd.DataFrame(rows)


def _transformed(base, rows):
  """Rows (dicts of raw values; None: missing) through the saved Transform
  graph, as the serving graph applies it."""
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top

  (graph,) = glob.glob(
    os.path.join(base, 'root', 'Transform', 'transform_graph', '*')
  )
  output = tft.TFTransformOutput(graph)
  spec = output.raw_feature_spec()
  spec.pop('diagnosis')  # no label at serving
  serialized = []
  for row in rows:
    example = tf.train.Example()
    for name, value in row.items():
      if value is None:
        continue
      feature = example.features.feature[name]
      if spec[name].dtype == tf.string:
        feature.bytes_list.value.append(value.encode())
      elif spec[name].dtype == tf.int64:
        feature.int64_list.value.append(int(value))
      else:
        feature.float_list.value.append(float(value))
    serialized.append(example.SerializeToString())
  parsed = tf.io.parse_example(tf.constant(serialized), spec)
  return {
    k: v.numpy().ravel()
    for k, v in output.transform_features_layer()(parsed).items()
  }


def test_imputed_values_are_the_train_split_statistics(gappy):
  base, data, _, _ = gappy
  train = _train_split(base)
  with open(data, newline='') as f:
    row = list(csv.DictReader(f))[1]  # a row without gaps
  row.pop('diagnosis')
  assert row[NA_COLUMN] and row[EMPTY_COLUMN] and row['group']
  mean = train[NA_COLUMN].dropna().mean()
  present = np.sort(train[EMPTY_COLUMN].dropna().to_numpy())
  low = present[(len(present) - 1) // 2]
  high = present[len(present) // 2]
  mode = train['group'].dropna().mode()
  rows = [
    dict(row, **{NA_COLUMN: None}),
    dict(row, **{NA_COLUMN: mean}),
    dict(row, **{EMPTY_COLUMN: None}),
    dict(row, **{EMPTY_COLUMN: low}),
    dict(row, **{EMPTY_COLUMN: high}),
    dict(row, group=None),
    dict(row, group=mode[0].decode()),
  ]
  out = _transformed(base, rows)
  radius = out[f'{NA_COLUMN}_xf']
  assert radius[0] == pytest.approx(radius[1], abs=1e-5)  # mean of the split
  area = out[f'{EMPTY_COLUMN}_xf']
  assert min(area[3], area[4]) - 1e-5 <= area[2] <= max(area[3], area[4]) + 1e-5
  group = out['group_xf']
  assert len(mode) == 1  # a clear most frequent value in this data
  assert group[5] == group[6]  # most frequent of the split


def test_a_one_class_slice_is_reported_undefined_not_blocking(gappy):
  _, _, (_, summary), _ = gappy
  one_class = summary['slices']['group=m']
  assert one_class['undefined'] == ['auc', 'precision', 'recall']
  assert one_class['reason'] == 'one class in the slice (mean label 1)'
  assert 'auc' not in one_class['metrics']
  assert summary['blessed'] is True  # overall thresholds only


def test_a_gated_one_class_slice_says_why_it_cannot_bless(gappy):
  _, _, _, (proc, summary) = gappy
  assert proc.returncode == 0
  states = {c['id']: c['state'] for c in summary['components']}
  assert states['Trainer'] == 'cached' and states['Evaluator'] == 'complete'
  assert summary['blessed'] is False
  assert (
    'auc is undefined (slice group=m): one class in the slice (mean label 1)'
  ) in summary['blessing_reason']
  assert summary['pushed'] is False


# --- TFX's own module file ----------------------------------------------------


@pipeline_fixture(scope='session')
def penguin(tmp_path_factory):
  import tfx  # pylint: disable=g-import-not-at-top

  module = os.path.join(
    os.path.dirname(tfx.__file__),
    'examples',
    'penguin',
    'penguin_utils_keras.py',
  )
  base = str(tmp_path_factory.mktemp('penguin'))
  return base, _run(
    base,
    os.path.join(SPECS, 'penguin.yaml'),
    'penguin',
    f'module_file={module}',
  )


def test_tfx_s_penguin_module_file_runs_unchanged_through_a_spec(penguin):
  base, (proc, summary) = penguin
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert summary['blessed'] is True and summary['pushed'] is True
  assert summary['metrics']['accuracy'] >= 0.6
  # The model is the module's: its run_fn's signatures answer `outputs`.
  model = tf.saved_model.load(summary['pushed_path'])
  assert set(model.signatures) == {'serving_default', 'transform_features'}
  assert list(model.signatures['serving_default'].structured_outputs) == [
    'outputs'
  ]
  del base
