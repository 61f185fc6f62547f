"""The shipped data, its curated schema and the spec agree; preflight refuses
bad CSVs with one line naming file, line and column."""

import csv
import os

import pytest

from pipeline import datasets
from pipeline.definition import spec as spec_lib
from pipeline.runners import preflight
from tests.conftest import DATA_CSV, DEFAULT_SPEC, SCHEMA


def test_committed_csv_is_the_scikit_learn_data():
  with open(DATA_CSV, newline='') as f:
    rows = list(csv.reader(f))
  assert rows[0] == datasets.breast_cancer_columns()
  assert rows[1:] == [list(r) for r in datasets.breast_cancer_rows()]
  assert len(rows) - 1 == 569
  labels = [r[-1] for r in rows[1:]]
  assert labels.count('1') == 212  # malignant, as in the UCI description


def test_schema_spec_and_csv_name_the_same_columns():
  spec = spec_lib.load_spec(DEFAULT_SPEC)
  schema = preflight.load_schema(SCHEMA)
  schema_names = [f.name for f in schema.feature]
  assert schema_names == datasets.breast_cancer_columns()
  assert sorted(spec.feature_keys + [spec.features.label]) == sorted(
    schema_names
  )
  preflight.check_features(spec, schema)


def test_preflight_passes_on_shipped_data():
  assert preflight.run_preflight(spec_lib.load_spec(DEFAULT_SPEC)).rows == 569


def _write(tmp_path, transform_rows, name='data.csv'):
  with open(DATA_CSV, newline='') as f:
    rows = list(csv.reader(f))
  rows = transform_rows(rows)
  path = tmp_path / name
  with open(path, 'w', newline='') as f:
    csv.writer(f).writerows(rows)
  return str(path)


def _check(path):
  with pytest.raises(preflight.PreflightError) as info:
    preflight.check_csv(path, preflight.load_schema(SCHEMA))
  assert '\n' not in str(info.value)
  return str(info.value)


def _cell(rows, line, column, value):
  rows[line - 1][rows[0].index(column)] = value
  return rows


def test_missing_column_is_named(tmp_path):
  path = _write(tmp_path, lambda rows: [r[1:] for r in rows])
  assert _check(path) == (
    f'{path}: header does not match the schema: missing column(s) mean_radius'
  )


def test_extra_column_is_named(tmp_path):
  path = _write(tmp_path, lambda rows: [r + ['x'] for r in rows])
  assert 'column(s) not in the schema x' in _check(path)


def test_empty_value_names_line_and_column(tmp_path):
  path = _write(tmp_path, lambda rows: _cell(rows, 7, 'mean_area', ''))
  assert _check(path).startswith(
    f'{path}: line 7, column mean_area: empty value'
  )


def test_nan_names_line_and_column(tmp_path):
  path = _write(tmp_path, lambda rows: _cell(rows, 3, 'worst_area', 'nan'))
  assert _check(path).startswith(f'{path}: line 3, column worst_area: NaN')


def test_wrong_type_names_line_and_column(tmp_path):
  path = _write(tmp_path, lambda rows: _cell(rows, 4, 'diagnosis', 'M'))
  assert _check(path) == (
    f"{path}: line 4, column diagnosis: 'M' is not INT as the schema says"
  )


def test_short_row_is_refused(tmp_path):
  path = _write(tmp_path, lambda rows: rows[:5] + [rows[5][:3]])
  assert _check(path) == f'{path}: line 6: 3 fields, expected 31'


def test_missing_data_and_schema(tmp_path):
  with pytest.raises(preflight.PreflightError, match='data not found'):
    preflight.csv_files(str(tmp_path / 'nothing'))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(preflight.PreflightError, match='holds no files'):
    preflight.csv_files(str(tmp_path / 'empty'))
  with pytest.raises(preflight.PreflightError, match='schema file not found'):
    preflight.load_schema(str(tmp_path / 'schema.pbtxt'))
  (tmp_path / 'bad.pbtxt').write_text('feature { nme: "x" }')
  with pytest.raises(preflight.PreflightError, match='not a valid schema'):
    preflight.load_schema(str(tmp_path / 'bad.pbtxt'))


def test_spec_feature_missing_from_schema():
  spec = spec_lib.load_spec(DEFAULT_SPEC, {'features.categorical': ['color']})
  with pytest.raises(
    preflight.PreflightError,
    match="features.categorical: 'color' is not a feature",
  ):
    preflight.check_features(spec, preflight.load_schema(SCHEMA))


def test_a_single_csv_file_is_accepted():
  assert preflight.csv_files(DATA_CSV) == [DATA_CSV]
  assert os.path.isfile(DATA_CSV)


@pytest.mark.parametrize(
  'task,rows,shown',
  [('digits_source', 901, range(0, 5)), ('digits_target', 896, range(5, 10))],
)
def test_committed_digits_csvs_are_the_scikit_learn_images(task, rows, shown):
  with open(datasets.digits_csv(task), newline='') as f:
    table = list(csv.reader(f))
  assert table[0] == datasets.digits_columns()
  assert table[1:] == [list(r) for r in datasets.digits_rows(task)]
  assert len(table) - 1 == rows
  assert {int(r[-1]) for r in table[1:]} == {d - shown[0] for d in shown}
  assert all(0.0 <= float(v) <= 1.0 for r in table[1:] for v in r[:-1])


def test_digits_schema_serves_both_tasks_and_bounds_the_label():
  schema = preflight.load_schema(
    os.path.join(os.path.dirname(SCHEMA), '..', 'digits', 'schema.pbtxt')
  )
  assert [f.name for f in schema.feature] == datasets.digits_columns()
  for name in ('digits_source', 'digits_target'):
    spec = spec_lib.load_spec(
      os.path.join(os.path.dirname(DEFAULT_SPEC), f'{name}.yaml')
    )
    preflight.check_features(spec, schema)
    assert preflight.run_preflight(spec).rows in (901, 896)
    wrong = spec_lib.load_spec(
      os.path.join(os.path.dirname(DEFAULT_SPEC), f'{name}.yaml'),
      {'features.num_classes': 3},
    )
    with pytest.raises(
      preflight.PreflightError,
      match=(
        r"label 'label' ranges over 0..4 in the schema but "
        r'features.num_classes is 3'
      ),
    ):
      preflight.check_features(wrong, schema)
