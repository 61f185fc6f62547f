"""A date column's model features, computed with TensorFlow ops.

A column of ISO-8601 date text (components/csv_format.py's `is_date_text`:
2012-01-31, 2012-01-31 13:05, 2012-01-31T13:05:59.25+01:00) becomes the
features DATE_PARTS: the year as a plain number (the caller scales it), and
the month, day of week, day of year and hour of day each as a point on a
circle (sin, cos), so that December lies next to January and 23:00 next to
midnight.

`date_parts` uses TensorFlow ops only: it runs inside tf.Transform's
preprocessing_fn and in the serving graph exported with it.
"""

import math
from typing import Dict, Tuple

import tensorflow as tf

# components/csv_format.py's DATE_PATTERN (RE2 reads it as Python's re
# does). modules/ may not import components/, so it is copied here, and
# tests/unit/modules/test_dates.py checks the two stay equal.
DATE_PATTERN = (
  r'([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])'
  r'(?:[T ]([01][0-9]|2[0-3]):([0-5][0-9])'
  r'(?::([0-5][0-9]|60)(?:\.([0-9]+))?)?'
  r'(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?'
)

# The features one date column becomes, in order.
DATE_PARTS = (
  'year',
  'month_sin',
  'month_cos',
  'day_of_week_sin',
  'day_of_week_cos',
  'day_of_year_sin',
  'day_of_year_cos',
  'hour_sin',
  'hour_cos',
)

# Each cycle's period, in the units of its value.
_PERIODS = {
  'month': 12.0,
  'day_of_week': 7.0,
  'day_of_year': 365.25,
  'hour': 24.0,
}
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DAYS_BEFORE_MONTH = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
# Stands in for text that is no date, so that every row parses; those rows'
# parts are zeroed afterwards.
_PLACEHOLDER = '1970-01-01'
# A date alone is read as its midnight: with this appended, the hour and
# minute sit at the same positions in every row's text.
_MIDNIGHT = ' 00:00'


def part_name(column: str, part: str) -> str:
  """The feature name of date column `column`'s `part` (one of DATE_PARTS)."""
  return f'{column}_{part}'


def _days_from_civil(
  year: tf.Tensor, month: tf.Tensor, day: tf.Tensor
) -> tf.Tensor:
  """Days since 1970-01-01 of a proleptic Gregorian date (int64 tensors):
  Howard Hinnant's days_from_civil, whose years start in March so that the
  leap day is the last day of a year."""
  year = year - tf.cast(month <= 2, tf.int64)
  era = tf.math.floordiv(year, 400)
  year_of_era = year - era * 400
  march_month = tf.where(month > 2, month - 3, month + 9)
  day_of_march_year = (153 * march_month + 2) // 5 + day - 1
  day_of_era = (
    year_of_era * 365
    + year_of_era // 4
    - year_of_era // 100
    + day_of_march_year
  )
  return era * 146097 + day_of_era - 719468


def date_parts(x: tf.Tensor) -> Tuple[Dict[str, tf.Tensor], tf.Tensor]:
  """The DATE_PARTS of date text.

  The UTC offset, when written, is ignored: the parts describe the local
  wall-clock time the row was recorded at (a Monday morning where it
  happened), which is what the cycles are for.

  Args:
    x: a string tensor [batch, 1] of ISO-8601 date text ('' where missing);
      surrounding spaces are ignored.

  Returns:
    (parts, missing): parts maps each name of DATE_PARTS to a float32
    tensor of x's shape: the year, and the sine and cosine of 2*pi*v/period
    for the month - 1 (period 12), the day of week (Monday 0; period 7), the
    day of year - 1 (period 365.25) and the hour + minute/60 (period 24).
    `missing` is a bool tensor of x's shape, True where the text is empty
    or no valid date; every part is 0 there.
  """
  text = tf.strings.strip(x)
  valid = tf.strings.regex_full_match(text, DATE_PATTERN)
  year, month, day, hour, minute = _fields(tf.where(valid, text, _PLACEHOLDER))
  leap = tf.logical_or(
    tf.logical_and(year % 4 == 0, year % 100 != 0), year % 400 == 0
  )
  month_index = month - 1  # 0..11: the pattern admits months 1..12 only
  days_in_month = tf.gather(
    tf.constant(_DAYS_IN_MONTH, tf.int64), month_index
  ) + tf.cast(tf.logical_and(leap, month == 2), tf.int64)
  # The pattern checks every field's range but the day's, and year 0.
  missing = tf.logical_not(
    tf.logical_and(valid, tf.logical_and(day <= days_in_month, year >= 1))
  )
  cycles = _cycles(year, month, day, leap, hour, minute)
  return _zeroed_where_missing(year, cycles, missing), missing


def _fields(text: tf.Tensor) -> Tuple[tf.Tensor, ...]:
  """The year, month, day, hour and minute (int64) of valid date text."""
  padded = tf.strings.join([text, _MIDNIGHT])

  def field(position: int, length: int) -> tf.Tensor:
    return tf.strings.to_number(
      tf.strings.substr(padded, position, length), tf.int64
    )

  return field(0, 4), field(5, 2), field(8, 2), field(11, 2), field(14, 2)


def _cycles(
  year: tf.Tensor,
  month: tf.Tensor,
  day: tf.Tensor,
  leap: tf.Tensor,
  hour: tf.Tensor,
  minute: tf.Tensor,
) -> Dict[str, tf.Tensor]:
  """Each cycle of _PERIODS: its value (float64) in the units of its
  period, counted from 0."""
  month_index = month - 1
  # 1970-01-01 was a Thursday: day 3 of a week starting on Monday.
  day_of_week = tf.math.floormod(_days_from_civil(year, month, day) + 3, 7)
  day_of_year = (
    tf.gather(tf.constant(_DAYS_BEFORE_MONTH, tf.int64), month_index)
    + day
    + tf.cast(tf.logical_and(leap, month > 2), tf.int64)
  )
  hours = tf.cast(hour, tf.float64) + tf.cast(minute, tf.float64) / 60.0
  return {
    'month': tf.cast(month_index, tf.float64),
    'day_of_week': tf.cast(day_of_week, tf.float64),
    'day_of_year': tf.cast(day_of_year - 1, tf.float64),
    'hour': hours,
  }


def _zeroed_where_missing(
  year: tf.Tensor, cycles: Dict[str, tf.Tensor], missing: tf.Tensor
) -> Dict[str, tf.Tensor]:
  """DATE_PARTS (float32): the year and each cycle's sine and cosine, 0
  where `missing`."""
  values = {'year': tf.cast(year, tf.float64)}
  for name, value in cycles.items():
    angle = 2.0 * math.pi * value / _PERIODS[name]
    values[f'{name}_sin'] = tf.sin(angle)
    values[f'{name}_cos'] = tf.cos(angle)
  parts = {}
  for name in DATE_PARTS:
    value = tf.cast(values[name], tf.float32)
    parts[name] = tf.where(missing, tf.zeros_like(value), value)
  return parts
