"""Date columns: the recogniser (components/csv_format.py) and the date
features (modules/dates.py) against Python's datetime, eagerly, in a
serving-style tf.function and under tf.Transform."""

import datetime
import math
import random
import tempfile

import numpy as np
import pytest
import tensorflow as tf

from components import csv_format
from modules import dates

VALID = [
  '2012-01-31',
  '2020-02-29',
  '2000-02-29',
  '0001-01-01',
  '9999-12-31',
  '2012-01-31 13:05',
  '2012-01-31T13:05',
  '2012-01-31T13:05:59',
  '2012-01-31 23:59:60',  # a leap second
  '2012-01-31T13:05:59.123456',
  '2012-01-31T13:05:59.5Z',
  '2012-01-31T13:05Z',
  '2012-01-31T13:05:59+01:00',
  '2012-01-31 13:05:59.25-05:30',
  ' 2012-01-31 ',
  '2012-01-31\t',
]
INVALID = [
  '',
  ' ',
  'NA',
  '2021-02-29',
  '1900-02-29',
  '2021-13-01',
  '2021-00-10',
  '2021-04-31',
  '2021-01-32',
  '2021-01-00',
  '0000-01-01',
  '12/01/2020',
  '2020-1-5',
  '20200105',
  '2012-01-31T24:00',
  '2012-01-31T13:60',
  '2012-01-31T13:05:61',
  '2012-01-31T13',
  '2012-01-31T',
  '2012-01-31 13:5',
  '2012-01-31T13:05:59.',
  '2012-01-31T13:05+1:00',
  '2012-01-31T13:05+24:00',
  '2012-01-31Z',
  '2012-01-31t13:05',
  '2012-01-31T13:05:59 x',
  '۲۰۱۲-01-31',
]


@pytest.mark.parametrize('text', VALID)
def test_iso_dates_and_datetimes_are_date_text(text):
  assert csv_format.is_date_text(text)


@pytest.mark.parametrize('text', INVALID)
def test_other_text_is_not_date_text(text):
  assert not csv_format.is_date_text(text)


def test_a_column_is_date_when_every_present_value_is():
  assert csv_format.column_is_date(
    ['2012-01-31', '', 'NA', None, '2012-02-01 10:00'], ('', 'NA')
  )
  assert not csv_format.column_is_date(['2012-01-31', 'soon'])
  assert not csv_format.column_is_date(['', None])  # no value at all
  assert not csv_format.column_is_date([])


def test_the_tensorflow_pattern_is_the_recogniser_s():
  assert dates.DATE_PATTERN == csv_format.DATE_PATTERN


def test_part_names():
  assert dates.part_name('sold', 'month_sin') == 'sold_month_sin'
  assert dates.DATE_PARTS[0] == 'year'
  assert len(dates.DATE_PARTS) == len(set(dates.DATE_PARTS)) == 9


def _random_texts(count):
  """(text, datetime) pairs: dates and datetimes in every written form."""
  rng = random.Random(0)
  low = datetime.datetime(1, 1, 1).toordinal()
  high = datetime.datetime(9999, 12, 31).toordinal()
  found = []
  for i in range(count):
    # Most near today, some anywhere in years 1..9999.
    day = (
      rng.randint(low, high)
      if i % 5 == 0
      else rng.randint(
        datetime.date(1900, 1, 1).toordinal(),
        datetime.date(2100, 12, 31).toordinal(),
      )
    )
    when = datetime.datetime.fromordinal(day) + datetime.timedelta(
      seconds=rng.randrange(86400), microseconds=rng.randrange(10**6)
    )
    form = i % 6
    if form == 0:
      text, when = when.date().isoformat(), datetime.datetime.fromordinal(day)
    elif form == 1:
      text = when.isoformat(sep=' ', timespec='minutes')
    elif form == 2:
      text = when.isoformat(timespec='seconds')
    elif form == 3:
      text = when.isoformat(timespec='microseconds') + 'Z'
    elif form == 4:
      text = when.isoformat(timespec='milliseconds') + '+05:30'
    else:
      text = when.isoformat(sep=' ', timespec='seconds') + '-11:00'
    found.append((text, when))
  return found


def _expected(when):
  """The DATE_PARTS of a datetime, by Python's calendar."""
  hours = when.hour + when.minute / 60
  cycles = {
    'month': (when.month - 1, 12),
    'day_of_week': (when.weekday(), 7),
    'day_of_year': (when.timetuple().tm_yday - 1, 365.25),
    'hour': (hours, 24),
  }
  parts = {'year': float(when.year)}
  for name, (value, period) in cycles.items():
    parts[f'{name}_sin'] = math.sin(2 * math.pi * value / period)
    parts[f'{name}_cos'] = math.cos(2 * math.pi * value / period)
  return [parts[name] for name in dates.DATE_PARTS]


def _table(parts):
  return np.concatenate(
    [np.asarray(parts[name]) for name in dates.DATE_PARTS], axis=1
  )


def test_date_parts_match_python_s_calendar():
  pairs = _random_texts(400)
  x = tf.constant([[text] for text, _ in pairs])
  parts, missing = dates.date_parts(x)
  assert not np.asarray(missing).any()
  for name in dates.DATE_PARTS:
    assert parts[name].dtype == tf.float32
    assert parts[name].shape == (len(pairs), 1)
  np.testing.assert_allclose(
    _table(parts), [_expected(when) for _, when in pairs], atol=1e-5, rtol=1e-7
  )


def test_the_day_of_week_and_year_are_read_back_from_the_angles():
  pairs = _random_texts(60)
  parts, _ = dates.date_parts(tf.constant([[text] for text, _ in pairs]))

  def unwrap(name, period):
    angle = np.arctan2(
      np.asarray(parts[f'{name}_sin']), np.asarray(parts[f'{name}_cos'])
    ).ravel()
    return np.round(np.mod(angle, 2 * np.pi) * period / (2 * np.pi))

  assert list(unwrap('day_of_week', 7) % 7) == [w.weekday() for _, w in pairs]
  assert list(unwrap('month', 12) % 12 + 1) == [w.month for _, w in pairs]
  assert list(np.asarray(parts['year']).ravel()) == [w.year for _, w in pairs]


def test_the_offset_is_ignored_and_a_date_is_its_midnight():
  parts, _ = dates.date_parts(
    tf.constant(
      [
        ['2012-01-31'],
        ['2012-01-31T00:00'],
        ['2012-01-31T00:00+09:00'],
        ['2012-01-31T00:00:59.9Z'],
      ]
    )
  )
  table = _table(parts)
  np.testing.assert_array_equal(table, np.repeat(table[:1], 4, axis=0))


def test_invalid_and_empty_text_is_missing_with_zero_parts():
  texts = INVALID + VALID
  parts, missing = dates.date_parts(tf.constant([[t] for t in texts]))
  expected = [not csv_format.is_date_text(t) for t in texts]
  assert list(np.asarray(missing).ravel()) == expected
  table = _table(parts)
  assert not table[: len(INVALID)].any()
  assert table[len(INVALID) :, 0].min() >= 1  # the year of a valid date


def test_date_parts_in_a_serving_signature():
  @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.string)])
  def serve(x):
    parts, missing = dates.date_parts(x)
    return {**parts, 'missing': missing}

  concrete = serve.get_concrete_function()
  assert concrete.structured_outputs['year'].shape.as_list() == [None, 1]
  out = serve(tf.constant([['2024-03-04 18:30'], ['']]))
  # 2024-03-04 was a Monday, the 64th day of a leap year.
  assert float(out['year'][0, 0]) == 2024.0
  assert float(out['day_of_week_sin'][0, 0]) == pytest.approx(0.0, abs=1e-6)
  assert float(out['day_of_year_sin'][0, 0]) == pytest.approx(
    math.sin(2 * math.pi * 63 / 365.25), abs=1e-6
  )
  assert float(out['hour_cos'][0, 0]) == pytest.approx(
    math.cos(2 * math.pi * 18.5 / 24), abs=1e-6
  )
  assert list(np.asarray(out['missing']).ravel()) == [False, True]


def test_date_parts_under_tf_transform():
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  import tensorflow_transform.beam as tft_beam  # pylint: disable=g-import-not-at-top
  from tensorflow_transform.tf_metadata import (  # pylint: disable=g-import-not-at-top
    dataset_metadata,
    schema_utils,
  )

  def preprocessing_fn(inputs):
    parts, missing = dates.date_parts(tf.reshape(inputs['sold'], [-1, 1]))
    out = {
      dates.part_name('sold', name): value for name, value in parts.items()
    }
    # The caller's use of the year: scaled by statistics over the data.
    out['sold_year'] = tft.scale_to_z_score(parts['year'])
    out['sold_missing'] = tf.cast(missing, tf.float32)
    return out

  texts = [f'20{10 + i}-0{1 + i % 9}-1{i} 0{i}:30' for i in range(9)] + ['']
  rows = [{'sold': text.encode()} for text in texts]
  metadata = dataset_metadata.DatasetMetadata(
    schema_utils.schema_from_feature_spec(
      {'sold': tf.io.FixedLenFeature([], tf.string)}
    )
  )
  with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
    (transformed, _), _ = (
      rows,
      metadata,
    ) | tft_beam.AnalyzeAndTransformDataset(
      preprocessing_fn, output_record_batches=False
    )
  assert len(transformed) == len(texts)
  years = np.array([r['sold_year'] for r in transformed]).ravel()
  assert years[:9] == pytest.approx(np.sort(years[:9]))  # 2010..2018 rising
  assert [float(np.ravel(r['sold_missing'])[0]) for r in transformed] == [
    0.0
  ] * 9 + [1.0]
  eager, _ = dates.date_parts(tf.constant([[t] for t in texts]))
  for name in dates.DATE_PARTS[1:]:
    np.testing.assert_allclose(
      [np.ravel(r[dates.part_name('sold', name)])[0] for r in transformed],
      np.asarray(eager[name]).ravel(),
      atol=1e-6,
    )
