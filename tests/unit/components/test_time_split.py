"""The time-ordered train/eval split: csv_format's comparison rule, and the
project's CsvExampleGen executor run directly on small CSV files."""

import datetime
import os
import random

import pytest
import tensorflow as tf
from pydantic import ValidationError
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components import csv_example_gen, csv_format

EVAL_FROM = '2015-06-01'


def _write_csv(folder, header, rows, name='data.csv'):
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, name), 'w', encoding='utf-8') as f:
    f.write(','.join(header) + '\n')
    f.writelines(','.join(str(c) for c in row) + '\n' for row in rows)


def _output_config(names=('train', 'eval')):
  return example_gen_pb2.Output(
    split_config=example_gen_pb2.SplitConfig(
      splits=[
        example_gen_pb2.SplitConfig.Split(name=n, hash_buckets=b)
        for n, b in zip(names, (4, 1), strict=True)
      ]
    )
  )


def _run(tmp_path, fmt, output_config=None):
  """Runs the executor over tmp_path/data; split name -> tf.Examples."""
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / 'out')
  props = {
    standard_component_specs.INPUT_BASE_KEY: str(tmp_path / 'data'),
    standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(
      example_gen_pb2.Input(
        splits=[
          example_gen_pb2.Input.Split(name='single_split', pattern='*.csv')
        ]
      )
    ),
    standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(
      output_config or _output_config()
    ),
    standard_component_specs.CUSTOM_CONFIG_KEY: proto_utils.proto_to_json(
      csv_example_gen.custom_config(fmt)
    ),
  }
  csv_example_gen.Executor().Do(
    {}, {standard_component_specs.EXAMPLES_KEY: [examples]}, props
  )
  found = {}
  for name in ('train', 'eval'):
    folder = os.path.join(examples.uri, f'Split-{name}')
    files = tf.io.gfile.glob(os.path.join(folder, '*.gz'))
    found[name] = [
      tf.train.Example.FromString(r.numpy())
      for r in tf.data.TFRecordDataset(files, 'GZIP')
    ]
  return found


def _values(examples, column):
  """Each example's `column` value (None when missing)."""
  found = []
  for example in examples:
    feature = example.features.feature[column]
    kind = feature.WhichOneof('kind')
    values = list(getattr(feature, kind).value) if kind else []
    value = values[0] if values else None
    found.append(value.decode() if isinstance(value, bytes) else value)
  return found


def _date_rows(count=40):
  """Rows of (id, date, x): dates over 2014-2016, some with a time of day
  (written with a T or a space), two missing."""
  rng = random.Random(0)
  start = datetime.datetime(2014, 1, 1)
  rows = []
  for i in range(count):
    when = start + datetime.timedelta(minutes=rng.randrange(3 * 365 * 1440))
    text = (
      when.date().isoformat()
      if i % 3 == 0
      else when.isoformat(sep='T' if i % 2 else ' ', timespec='minutes')
    )
    rows.append((i, 'NA' if i in (5, 17) else text, rng.random()))
  # A value exactly at the boundary is eval, as a date and as a datetime.
  rows += [(count, EVAL_FROM, 0.5), (count + 1, EVAL_FROM + 'T00:00', 0.5)]
  return rows


def _key(text):
  return csv_format.date_key(text)


def test_rows_before_eval_from_train_and_the_rest_evaluate(tmp_path):
  rows = _date_rows()
  _write_csv(tmp_path / 'data', ('id', 'date', 'x'), rows)
  fmt = csv_format.CsvFormat(
    null_values=('NA',), split_by='date', eval_from=EVAL_FROM
  )
  found = _run(tmp_path, fmt)
  train, evals = _values(found['train'], 'date'), _values(found['eval'], 'date')
  assert len(train) + len(evals) == len(rows)
  assert sorted(_values(found['train'] + found['eval'], 'id')) == list(
    range(len(rows))
  )
  assert train.count(None) == 2  # a missing date trains
  assert all(_key(d) < _key(EVAL_FROM) for d in train if d is not None)
  assert all(_key(d) >= _key(EVAL_FROM) for d in evals)
  assert {EVAL_FROM, EVAL_FROM + 'T00:00'} <= set(evals)
  assert 8 < len(evals) < 30  # both sides well filled by this data


def test_a_numeric_column_splits_by_number(tmp_path):
  # 0.7 is stored as a float32 a little below 0.7: it must still be eval.
  rows = [(i, round(0.1 * i, 1)) for i in range(11)]
  _write_csv(tmp_path / 'data', ('id', 'score'), rows)
  fmt = csv_format.CsvFormat(split_by='score', eval_from='0.7')
  found = _run(tmp_path, fmt)
  assert sorted(_values(found['train'], 'id')) == list(range(7))
  assert sorted(_values(found['eval'], 'id')) == list(range(7, 11))


def test_an_int_column_compares_as_numbers_not_text(tmp_path):
  # As text '10' < '9'; as numbers 10 >= 9.
  _write_csv(
    tmp_path / 'data',
    ('id', 'year'),
    [(i, y) for i, y in enumerate((7, 8, 9, 10, 11))],
  )
  found = _run(tmp_path, csv_format.CsvFormat(split_by='year', eval_from='9'))
  assert sorted(_values(found['train'], 'year')) == [7, 8]
  assert sorted(_values(found['eval'], 'year')) == [9, 10, 11]


def test_without_split_by_the_hash_buckets_split(tmp_path):
  rows = _date_rows()
  _write_csv(tmp_path / 'data', ('id', 'date', 'x'), rows)
  found = _run(tmp_path, csv_format.CsvFormat(null_values=('NA',)))
  assert len(found['train']) + len(found['eval']) == len(rows)
  assert found['train'] and found['eval']
  # The format's JSON (the cache key) leaves the unset options out.
  assert 'split_by' not in str(
    csv_example_gen.custom_config(csv_format.CsvFormat())
  )


@pytest.mark.parametrize(
  'eval_from, message',
  [
    (
      '2017-01-01',
      r'^data\.split: no row has date >= 2017-01-01 \(its values '
      r'run from 2014-.* to 2016-.*\); choose an eval_from inside'
      r" the data's range",
    ),
    # Rows without a date train, but make no train split on their own.
    (
      '2013-12-31 23:59',
      r'^data\.split: no row has date < 2013-12-31 23:59 '
      r'\(its values .*\), so none is left to train on; '
      r'choose an eval_from after 2014-',
    ),
  ],
)
def test_a_split_with_an_empty_side_fails_in_one_line(
  tmp_path, eval_from, message
):
  _write_csv(tmp_path / 'data', ('id', 'date', 'x'), _date_rows(20)[:20])
  fmt = csv_format.CsvFormat(
    null_values=('NA',), split_by='date', eval_from=eval_from
  )
  with pytest.raises(ValueError, match=message) as raised:
    _run(tmp_path, fmt)
  assert '\n' not in str(raised.value)


def test_a_split_column_without_values_fails(tmp_path):
  _write_csv(tmp_path / 'data', ('id', 'date'), [(1, 'NA'), (2, '')])
  fmt = csv_format.CsvFormat(
    null_values=('NA',), split_by='date', eval_from=EVAL_FROM
  )
  with pytest.raises(
    ValueError,
    match=(
      r'^data\.split: column date has no value to split by; name a column '
      r'with values in data\.split\.by'
    ),
  ):
    _run(tmp_path, fmt)


def test_a_split_column_not_in_the_data_fails_in_one_line(tmp_path):
  _write_csv(tmp_path / 'data', ('id', 'date'), [(1, '2015-01-01')])
  fmt = csv_format.CsvFormat(split_by='day', eval_from=EVAL_FROM)
  with pytest.raises(
    ValueError,
    match=(
      r"^data\.split\.by names 'day', which is no column of .*data.csv; "
      r'name one of id, date$'
    ),
  ):
    _run(tmp_path, fmt)


def test_a_text_eval_from_for_a_numeric_column_fails(tmp_path):
  _write_csv(tmp_path / 'data', ('id', 'year'), [(1, 2014), (2, 2016)])
  fmt = csv_format.CsvFormat(split_by='year', eval_from=EVAL_FROM)
  with pytest.raises(
    ValueError,
    match=(
      r"^data\.split: year: eval_from '2015-06-01' is not a number, but the "
      r'split column holds numbers; choose a numeric eval_from'
    ),
  ):
    _run(tmp_path, fmt)


def test_a_time_split_needs_the_train_and_eval_splits(tmp_path):
  _write_csv(tmp_path / 'data', ('id', 'date'), [(1, '2015-01-01')])
  fmt = csv_format.CsvFormat(split_by='date', eval_from=EVAL_FROM)
  with pytest.raises(
    ValueError,
    match=(
      r'writes the splits train and eval; .* the output splits train, test$'
    ),
  ):
    _run(tmp_path, fmt, _output_config(('train', 'test')))


def test_split_by_and_eval_from_go_together():
  with pytest.raises(ValidationError, match='go together'):
    csv_format.CsvFormat(split_by='date')
  with pytest.raises(ValidationError, match='go together'):
    csv_format.CsvFormat(eval_from=EVAL_FROM)


@pytest.mark.parametrize(
  'value, expected',
  [
    (None, False),  # missing: train
    (2015, True),
    (2014, False),
    (2015.5, True),
    (2014.99, False),
    ('2015-06-01', True),
    ('2015-05-31', False),
    ('2015-05-31T23:59:59.999', False),
    ('2015-06-01 00:00', True),
    ('2015-06-01T00:00:00+05:00', True),  # wall-clock time, offset ignored
    ('2016-01-01', True),
    ('999', True),  # text: compared as text
  ],
)
def test_is_eval_compares_numbers_dates_and_text(value, expected):
  eval_from = '2015' if not isinstance(value, str) else EVAL_FROM
  assert csv_format.is_eval(value, eval_from) is expected


def test_is_eval_compares_dates_of_mixed_form_by_date():
  # As text, '2015-06-01 00:00' < '2015-06-01T...' though they are equal.
  assert csv_format.is_eval('2015-06-01 00:00', '2015-06-01T00:00:00')
  assert not csv_format.is_eval('2015-06-01 09:00', '2015-06-01T10:00')
  assert csv_format.is_eval('2015-06-01T10:00:00.5', '2015-06-01 10:00:00.25')
  assert not csv_format.is_eval('apple', 'banana')
