"""Bring your own data, without running a pipeline: null tokens, TFX-written
schemas, every schema problem at once, classes and features decided by the
data, module files read without importing them, the ExampleGen reading a
messy CSV by the pre-flight's rules, and the client leaving values out."""

import csv
import json
import os
import re
import tempfile

import pytest
import tensorflow as tf
import yaml

from components import csv_example_gen, csv_format
from pipeline import datasets
from pipeline.definition import spec as spec_lib
from pipeline.runners import preflight
from pipeline.serving import client
from tests.conftest import REPO, cli

CARS_SPEC = os.path.join(REPO, 'pipeline', 'specs', 'cars.yaml')
PENGUIN_SPEC = os.path.join(REPO, 'pipeline', 'specs', 'penguin.yaml')


def _spec(tmp_path, raw, name='spec.yaml'):
  path = tmp_path / name
  path.write_text(yaml.safe_dump(raw))
  return spec_lib.load_spec(str(path))


def _minimal(csv_path, **extra):
  raw = {
    'name': 'own',
    'data': {'csv': str(csv_path)},
    'features': {'label': 'label'},
    'push': {'destination': 'serving', 'model_name': 'own'},
    'runner': {'pipeline_root': 'root', 'metadata': 'm.sqlite'},
  }
  for key, value in extra.items():
    node = raw
    *parents, last = key.split('.')
    for part in parents:
      node = node.setdefault(part, {})
    node[last] = value
  return raw


def _write(path, rows):
  with open(path, 'w', newline='') as f:
    csv.writer(f).writerows(rows)
  return str(path)


def test_committed_cars_and_penguin_data_are_the_packages_data():
  with open(datasets.CARS_CSV, newline='') as f:
    table = list(csv.reader(f))
  assert table[0] == datasets.cars_columns()
  assert table[1:] == [list(r) for r in datasets.cars_rows()]
  assert len(table) - 1 == 406
  column = table[0].index('horsepower')
  assert sum(r[column] == 'NA' for r in table[1:]) == 6
  with open(datasets.PENGUIN_CSV, newline='') as f:
    table = list(csv.reader(f))
  assert table[0] == datasets.PENGUIN_COLUMNS and len(table) - 1 == 334
  with (
    open(datasets.PENGUIN_SCHEMA, 'rb') as a,
    open(datasets.penguin_schema_source(), 'rb') as b,
  ):
    assert a.read() == b.read()  # TFX's schema, unchanged


def test_cars_resolves_classes_features_and_optional_columns_from_data():
  checked = preflight.run_preflight(spec_lib.load_spec(CARS_SPEC))
  spec = checked.spec
  assert spec.features.num_classes == 3
  assert checked.label_values == ('Europe', 'Japan', 'USA')
  assert spec.features.numeric == [
    'miles_per_gallon',
    'cylinders',
    'displacement',
    'horsepower',
    'weight_in_lbs',
    'acceleration',
  ]
  # ISO dates (1970-01-01): recognised as a date, not 12 categories.
  assert spec.features.date == ['year']
  assert spec.features.categorical == []
  assert 'name' not in spec.feature_keys  # excluded
  assert checked.column_kinds['horsepower'] == 'FLOAT'
  assert checked.column_kinds['weight_in_lbs'] == 'INT'
  schema = preflight.load_schema(spec.schema_file)
  optional = {f.name for f in schema.feature if preflight.is_optional(f)}
  assert optional == {'horsepower', 'miles_per_gallon'}
  # The default metrics follow the task.
  assert spec.evaluation.metric_names(spec.task) == [
    'example_count',
    'accuracy',
    'log_loss',
  ]


def test_tfx_written_schemas_are_accepted_unchanged(tmp_path):
  # TFX's own penguin schema (shape, presence 1.0) ...
  assert preflight.run_preflight(spec_lib.load_spec(PENGUIN_SPEC)).rows == 334
  # ... and one in TFX's other style: value_count, optional presence,
  # environments with the label kept out of SERVING.
  data = _write(
    tmp_path / 'd.csv',
    [
      ['x', 'color', 'label'],
      ['1.5', 'red', '0'],
      ['', 'blue', '1'],
      ['2.5', '', '1'],
    ],
  )
  (tmp_path / 'schema.pbtxt').write_text("""
    feature { name: "x" type: FLOAT value_count { min: 1 max: 1 }
              presence { min_fraction: 0.5 } }
    feature { name: "color" type: BYTES domain: "color"
              value_count { min: 1 max: 1 } presence { min_fraction: 0.5 } }
    feature { name: "label" type: INT presence { min_fraction: 1.0 }
              not_in_environment: "SERVING" shape { dim { size: 1 } } }
    string_domain { name: "color" value: "red" value: "blue" }
    default_environment: "TRAINING" default_environment: "SERVING"
  """)
  spec = _spec(
    tmp_path,
    _minimal(
      data,
      schema=str(tmp_path / 'schema.pbtxt'),
      **{'features.numeric': ['x'], 'features.categorical': ['color']},
    ),
  )
  checked = preflight.run_preflight(spec)
  assert checked.rows == 3 and checked.spec.features.num_classes == 2


def test_three_schema_problems_come_in_one_message(tmp_path):
  data = _write(tmp_path / 'd.csv', [['x', 'y', 'label'], ['1', '2', '0']])
  (tmp_path / 'schema.pbtxt').write_text("""
    feature { name: "x" type: BYTES shape { dim { size: 1 } } }
    feature { name: "y" type: FLOAT shape { dim { size: 3 } } }
    feature { name: "label" type: FLOAT presence { min_fraction: 0.5 }
              shape { dim { size: 1 } } }
  """)
  spec = _spec(
    tmp_path,
    _minimal(
      data,
      schema=str(tmp_path / 'schema.pbtxt'),
      **{'features.numeric': ['x', 'y']},
    ),
  )
  with pytest.raises(preflight.PreflightError) as error:
    preflight.run_preflight(spec)
  message = str(error.value)
  assert '\n' not in message
  assert message.startswith(f'{tmp_path}/schema.pbtxt: 4 problems: (1) ')
  for problem in (
    "features.label: 'label' has type FLOAT in the schema; features.label "
    'needs INT or BYTES',
    "features.numeric: 'x' has type BYTES in the schema",
    "feature 'y' has shape [3]; a CSV column is one value",
    "feature 'label' has a fixed shape but presence min_fraction 0.5",
  ):
    assert problem in message, problem


def test_null_tokens_make_missing_values_and_are_named_when_unknown(tmp_path):
  data = _write(
    tmp_path / 'd.csv',
    [
      ['x', 'color', 'label'],
      ['1.5', 'red', 'a'],
      ['NA', '', 'b'],
      ['n/a', 'NA', 'a'],
    ],
  )
  raw = _minimal(
    data, **{'features.numeric': ['x'], 'features.categorical': ['color']}
  )
  with pytest.raises(preflight.PreflightError) as error:
    preflight.run_preflight(_spec(tmp_path, raw))
  assert str(error.value) == (
    f"{data}: line 3, column x: 'NA' is not a number, but features.numeric "
    'lists x; add the token to data.null_values if it means "missing", or '
    'make the column categorical'
  )
  raw['data']['null_values'] = ['NA', 'n/a']
  checked = preflight.run_preflight(_spec(tmp_path, raw))
  assert checked.column_kinds == {
    'x': 'FLOAT',
    'color': 'STRING',
    'label': 'STRING',
  }
  assert checked.spec.features.num_classes == 2


@pytest.mark.parametrize(
  'labels,expected',
  [
    (['0', '2', '1', '2'], 3),  # class indices: the largest + 1
    (['yes', 'no', 'maybe', 'no'], 3),  # class names: how many
  ],
)
def test_the_data_counts_the_classes(tmp_path, labels, expected):
  data = _write(
    tmp_path / 'd.csv',
    [['x', 'label']] + [[str(i), label] for i, label in enumerate(labels)],
  )
  checked = preflight.run_preflight(_spec(tmp_path, _minimal(data)))
  assert checked.spec.features.num_classes == expected
  assert checked.spec.features.numeric == ['x']  # every other column


@pytest.mark.parametrize(
  'labels,message',
  [
    (
      [str(1000 * i) for i in range(60)],
      '60 distinct numbers, more than features.max_classes (50): set '
      'features.task: regression',
    ),
    (['a', 'a'], 'only one class (a); a classifier needs two or more'),
    (['1', '-1'], 'class index -1 is negative'),
    (['a', ''], 'line 3, column label: the label is missing'),
  ],
)
def test_unusable_labels_are_refused_in_one_line(tmp_path, labels, message):
  data = _write(
    tmp_path / 'd.csv',
    [['x', 'label']] + [[str(i), label] for i, label in enumerate(labels)],
  )
  with pytest.raises(preflight.PreflightError, match=re.escape(message)):
    preflight.run_preflight(_spec(tmp_path, _minimal(data)))


def test_a_module_file_is_read_without_importing_it(tmp_path):
  module = tmp_path / 'user_module.py'
  module.write_text(
    'import tensorflow_transform as tft\n'
    'from somewhere import run_fn\n'
    'def preprocessing_fn(inputs):\n  raise SystemExit(1)\n'
  )
  data = _write(tmp_path / 'd.csv', [['x', 'label'], ['1', '0'], ['2', '1']])
  spec = _spec(
    tmp_path,
    _minimal(data, module_file=str(module), **{'tuner.enabled': False}),
  )
  assert spec.module_functions == ('preprocessing_fn', 'run_fn')
  assert spec.uses_module_file('run_fn') and not spec.uses_module_file(
    'tuner_fn'
  )
  with pytest.raises(
    spec_lib.SpecError,
    match=('defines run_fn but not tuner_fn: with the Tuner on'),
  ):
    _spec(tmp_path, _minimal(data, module_file=str(module)))
  strings = _write(tmp_path / 's.csv', [['x', 'label'], ['1', 'a'], ['2', 'b']])
  with pytest.raises(
    preflight.PreflightError,
    match=("module_file: its run_fn's model is evaluated on the raw label"),
  ):
    preflight.run_preflight(
      _spec(
        tmp_path,
        _minimal(strings, module_file=str(module), **{'tuner.enabled': False}),
      )
    )
  module.write_text('def helper():\n  pass\n')
  with pytest.raises(spec_lib.SpecError, match='defines none of'):
    _spec(tmp_path, _minimal(data, module_file=str(module)))


def test_the_bundled_penguin_spec_names_tfx_s_module_file():
  spec = spec_lib.load_spec(PENGUIN_SPEC)
  import tfx  # pylint: disable=g-import-not-at-top

  assert os.path.samefile(
    spec.module_file,
    os.path.join(
      os.path.dirname(tfx.__file__),
      'examples',
      'penguin',
      'penguin_utils_keras.py',
    ),
  )
  assert spec.module_functions == ('preprocessing_fn', 'tuner_fn', 'run_fn')


def _examples(rows, fmt):
  """The ExampleGen's CSV-to-tf.Example transform over files of `rows`."""
  import apache_beam as beam  # pylint: disable=g-import-not-at-top

  folder = tempfile.mkdtemp()
  for name, (text, encoding) in rows.items():
    with open(
      os.path.join(folder, name), 'w', newline='', encoding=encoding
    ) as f:
      f.write(text)
  props = {'input_base': folder, 'custom_config': _format_json(fmt)}
  written = os.path.join(folder, 'examples.tfrecord')

  def write(examples):
    with tf.io.TFRecordWriter(written) as writer:
      for example in examples:
        writer.write(example.SerializeToString())

  with beam.Pipeline() as p:
    _ = (
      p
      | csv_example_gen._CsvToExample(props, '*.csv')  # pylint: disable=protected-access
      | beam.combiners.ToList()
      | beam.Map(write)
    )
  found = [
    tf.train.Example.FromString(r.numpy())
    for r in tf.data.TFRecordDataset([written])
  ]
  return sorted(
    found, key=lambda e: e.features.feature['id'].int64_list.value[0]
  )


def _format_json(fmt):
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top

  return json_format.MessageToJson(csv_example_gen.custom_config(fmt))


def _values(example, name):
  feature = example.features.feature[name]
  kind = feature.WhichOneof('kind')
  return kind, list(getattr(feature, kind).value) if kind else []


def test_the_example_gen_reads_csv_by_the_preflight_rules():
  """A BOM, CRLF, a quoted line break, NA and empty cells, a FLOAT column
  whose values are whole numbers, and a second file with its columns in
  another order."""
  first = (
    '\ufeffid,weight,note,label\r\n1,70,"two\r\nlines",a\r\n'
    '2,NA,,b\r\n3,82,x,a\r\n',
    'utf-8',
  )
  second = ('label,note,id,weight\nb,y,4,65.5\n', 'utf-8')
  fmt = csv_format.CsvFormat(null_values=('NA',), columns={'weight': 'FLOAT'})
  examples = _examples({'a.csv': first, 'b.csv': second}, fmt)
  assert [_values(e, 'id') for e in examples] == [
    ('int64_list', [i]) for i in (1, 2, 3, 4)
  ]
  # Declared FLOAT stays FLOAT though every value is whole.
  assert _values(examples[0], 'weight') == ('float_list', [70.0])
  assert _values(examples[1], 'weight') == ('float_list', [])  # NA: missing
  assert _values(examples[0], 'note') == ('bytes_list', [b'two\r\nlines'])
  assert _values(examples[1], 'note') == ('bytes_list', [])  # empty: missing
  assert _values(examples[3], 'weight') == ('float_list', [65.5])
  assert _values(examples[3], 'label') == ('bytes_list', [b'b'])


def test_the_client_leaves_missing_values_out():
  metadata = {
    'metadata': {
      'signature_def': {
        'signature_def': {
          'serving_raw': {
            'inputs': {
              'horsepower': {'dtype': 'DT_FLOAT'},
              'year': {'dtype': 'DT_STRING'},
              'weight': {'dtype': 'DT_INT64'},
            }
          },
          'serving_default': {'inputs': {'examples': {'dtype': 'DT_STRING'}}},
        }
      }
    }
  }
  rows = [
    {'horsepower': '', 'year': 'NA', 'weight': '3000'},
    {'year': None, 'weight': 2000},
  ]  # horsepower absent
  (body,) = client.build_requests(rows, metadata, null_values=('', 'NA'))
  first, second = body['instances']
  assert first['year'] == second['year'] == ''
  assert str(first['horsepower']) == str(second['horsepower']) == 'nan'
  assert 'NaN' in json.dumps(body)  # TF Serving's JSON token for it
  with pytest.raises(
    client.PredictError,
    match=('row 1, weight: missing, but the model needs a value'),
  ):
    list(client.build_requests([{'horsepower': 1, 'year': 'x'}], metadata))
  (body,) = client.build_requests(
    rows, metadata, 'serving_default', null_values=('', 'NA')
  )
  example = tf.train.Example.FromString(
    __import__('base64').b64decode(body['instances'][0]['examples']['b64'])
  )
  assert sorted(example.features.feature) == ['weight']


def test_the_example_gen_config_does_not_depend_on_column_order():
  one = csv_format.CsvFormat(columns={'a': 'INT', 'b': 'STRING'})
  other = csv_format.CsvFormat(columns={'b': 'STRING', 'a': 'INT'})
  assert (
    csv_example_gen.custom_config(one).SerializeToString()
    == csv_example_gen.custom_config(other).SerializeToString()
  )
  assert (
    csv_example_gen.read_format({'custom_config': _format_json(other)}) == one
  )


def test_an_id_column_is_named_and_a_date_column_is_not(tmp_path):
  rows = [['order_id', 'day', 'amount', 'label']] + [
    [f'A{i:04d}', f'2020-01-{1 + i % 28:02d}', str(i % 7), str(i % 2)]
    for i in range(100)
  ]
  data = _write(tmp_path / 'd.csv', rows)
  checked = preflight.run_preflight(_spec(tmp_path, _minimal(data)))
  assert checked.spec.features.date == ['day']
  assert checked.spec.features.categorical == ['order_id']
  assert list(checked.id_like) == ['order_id']
  (warning,) = checked.warnings()
  assert warning.startswith('column order_id: 100 distinct values in 100 rows')
  assert 'features.exclude' in warning


def test_an_integer_amount_label_is_refused_naming_the_count(tmp_path):
  rows = [['x', 'loan_amount']] + [
    [str(i), str(1000 + 37 * i)] for i in range(80)
  ]
  data = _write(tmp_path / 'd.csv', rows)
  with pytest.raises(preflight.PreflightError) as error:
    preflight.run_preflight(
      _spec(tmp_path, _minimal(data, **{'features.label': 'loan_amount'}))
    )
  message = str(error.value)
  assert '80 distinct numbers, more than features.max_classes (50)' in message
  assert 'features.task: regression' in message and '\n' not in message
  # Saying which it is resolves it.
  checked = preflight.run_preflight(
    _spec(
      tmp_path,
      _minimal(
        data,
        **{
          'features.label': 'loan_amount',
          'features.task': 'regression',
          'evaluation.metrics': ['rmse', 'r2'],
        },
      ),
    )
  )
  assert checked.spec.task.name == 'regression'
  assert checked.spec.label_stats.mean == pytest.approx(1000 + 37 * 79 / 2)


@pytest.mark.parametrize('name', ['diabetes', 'weather', 'chicago_taxi'])
def test_committed_task_data_is_its_packages_data(name):
  """The regression, date and imbalanced examples' CSVs are what
  `python -m pipeline.datasets` writes from the installed packages."""
  path, columns, rows, _ = datasets.EXPORTS[name]
  with open(path, newline='') as f:
    table = list(csv.reader(f))
  assert table[0] == columns()
  assert table[1:] == [list(r) for r in rows()]


def test_validate_refuses_an_integer_amount_label_in_one_line(tmp_path):
  """What a user sees: exit 2 and one stderr line, before anything runs."""
  rows = [['x', 'loan_amount']] + [
    [str(i), str(1000 + 37 * i)] for i in range(80)
  ]
  data = _write(tmp_path / 'd.csv', rows)
  (tmp_path / 'spec.yaml').write_text(
    yaml.safe_dump(_minimal(data, **{'features.label': 'loan_amount'}))
  )
  proc = cli('validate', str(tmp_path / 'spec.yaml'))
  assert proc.returncode == 2
  (line,) = proc.stderr.strip().splitlines()
  assert line.startswith('error: ') and len(line) < 300
  assert '80 distinct numbers, more than features.max_classes (50)' in line
  assert not (tmp_path / 'root').exists()
