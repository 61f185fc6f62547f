"""How the project reads a CSV file: one set of rules for the pre-flight
checks (pipeline/runners/preflight/) and for the ExampleGen that turns the
rows into tf.Examples (components/csv_example_gen.py), so that what
`validate` accepts is what the pipeline reads.

- UTF-8 text (a byte-order mark is skipped), a header row, RFC 4180 quoting
  (quoted commas and line breaks), CRLF or LF line ends.
- A cell is *missing* when, stripped of surrounding spaces, it is empty or
  one of the null tokens (`data.null_values`, e.g. NA). A missing cell
  becomes an absent value in the tf.Example, never a string; a float NaN
  ("nan") is missing too.
- A column's kind is INT, FLOAT or STRING: declared (by the schema) or
  inferred over its present cells: INT when every one is an integer, FLOAT
  when every one is a number, STRING otherwise (a column with no present
  cell is STRING).
- A STRING column is a *date* column when every present cell is ISO-8601
  date text (`is_date_text`): a date (2012-01-31) or a date and time
  (2012-01-31 13:05, 2012-01-31T13:05:59.25+01:00).
- A time split (`CsvFormat.split_by`, `eval_from`) sends a row to `eval`
  when its value is at or after `eval_from`, else to `train` (`is_eval`).

No TensorFlow here: the pre-flight imports it.
"""

import csv
import io
import math
import re
from typing import (
  Any,
  Callable,
  Dict,
  Iterable,
  Iterator,
  List,
  Literal,
  Optional,
  Sequence,
  Tuple,
  Union,
)

from pydantic import BaseModel, ConfigDict, model_validator

INT, FLOAT, STRING = 'INT', 'FLOAT', 'STRING'
Kind = Literal['INT', 'FLOAT', 'STRING']
# The empty cell is always missing; these are the spec's default tokens.
DEFAULT_NULL_VALUES = ('',)


class CsvFormat(BaseModel):
  """What the ExampleGen needs to know to read the CSV files: the null
  tokens, and the kind of each column that is declared (by the schema, or
  inferred by the runner before the run); other columns are inferred.

  `split_by` and `eval_from` (both or neither) split the rows by time
  rather than by hash: a row whose `split_by` value is >= `eval_from`
  (`is_eval`) goes to the eval split, every other row to train."""

  model_config = ConfigDict(extra='forbid', frozen=True)

  null_values: Tuple[str, ...] = DEFAULT_NULL_VALUES
  columns: Dict[str, Kind] = {}
  # Columns whose cells name files (relative to the CSV file's folder):
  # the files' bytes are the values (images, features.image).
  files: Tuple[str, ...] = ()
  split_by: Optional[str] = None
  eval_from: Optional[str] = None

  @model_validator(mode='after')
  def _split_needs_both(self) -> 'CsvFormat':
    if (self.split_by is None) != (self.eval_from is None):
      raise ValueError(
        'split_by and eval_from go together: set both (a '
        'column and its first eval value) or neither'
      )
    return self


class CellError(ValueError):
  """A present cell that does not parse as its column's kind."""


def is_missing(cell: str, null_values: Iterable[str]) -> bool:
  text = cell.strip()
  return not text or text in null_values


def parse(cell: str, kind: str):
  """A present cell's value as `kind` wants it (int, float or str).

  Raises:
    CellError: the text is not an integer (INT) or a number (FLOAT).
  """
  text = cell.strip()
  if kind == INT:
    try:
      return int(text)
    except ValueError:
      # "3.0" in an INT column is 3; "3.5" is not an integer.
      try:
        number = float(text)
      except ValueError:
        raise CellError(f'{text!r} is not an integer') from None
      if math.isfinite(number) and number == int(number):
        return int(number)
      raise CellError(f'{text!r} is not an integer') from None
  if kind == FLOAT:
    try:
      return float(text)
    except ValueError:
      raise CellError(f'{text!r} is not a number') from None
  return cell


def value_of(cell: str, kind: str, null_values: Iterable[str]):
  """The cell's value, or None when it is missing (NaN included)."""
  if is_missing(cell, null_values):
    return None
  value = parse(cell, kind)
  if kind == FLOAT and math.isnan(value):
    return None
  return value


def _parses_as(cast: Callable[[str], Any], text: str) -> bool:
  try:
    cast(text)
  except ValueError:
    return False
  return True


def cell_kind(cell: str) -> str:
  """The narrowest kind one present cell fits."""
  text = cell.strip()
  if _parses_as(int, text):
    return INT
  return FLOAT if _parses_as(float, text) else STRING


def widen(current: Optional[str], kind: str) -> str:
  """The kind of a column holding cells of `current` and `kind`."""
  if current is None or current == kind:
    return kind
  if STRING in (current, kind):
    return STRING
  return FLOAT  # INT and FLOAT


def infer_kinds(
  header: Sequence[str],
  rows: Iterable[Sequence[str]],
  null_values: Iterable[str],
) -> Dict[str, str]:
  """Each column's kind over its present cells (STRING when it has none)."""
  nulls = tuple(null_values)
  kinds: List[Optional[str]] = [None] * len(header)
  for row in rows:
    for i, cell in enumerate(row[: len(header)]):
      if kinds[i] != STRING and not is_missing(cell, nulls):
        kinds[i] = widen(kinds[i], cell_kind(cell))
  return {
    name: kind or STRING for name, kind in zip(header, kinds, strict=True)
  }


# ISO-8601 date text: a date, optionally a time (T or a space between) with
# optional seconds, fraction and UTC offset. The ranges of every field but
# the day are in the pattern; `date_key` checks the day against the month.
# The same text is RE2 syntax: modules/dates.py holds a copy for TensorFlow
# (modules/ may not import components/), and
# tests/unit/modules/test_dates.py checks the two are equal.
DATE_PATTERN = (
  r'([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])'
  r'(?:[T ]([01][0-9]|2[0-3]):([0-5][0-9])'
  r'(?::([0-5][0-9]|60)(?:\.([0-9]+))?)?'
  r'(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?'
)
_DATE = re.compile(DATE_PATTERN)
# What tf.strings.strip strips, so that TensorFlow reads the same text.
_ASCII_SPACE = ' \t\n\v\f\r'
DateKey = Tuple[int, int, int, int, int, int, float]


def _days_in_month(year: int, month: int) -> int:
  if month == 2:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 29 if leap else 28
  return 30 if month in (4, 6, 9, 11) else 31


def date_key(text: str) -> Optional[DateKey]:
  """ISO-8601 date text's (year, month, day, hour, minute, second,
  fraction) in wall-clock order, or None when `text` is no valid date.

  A date alone is its midnight, so dates and datetimes compare together.
  The UTC offset is left out: the wall-clock time written is what the
  model's date features see (modules/dates.py).
  """
  match = _DATE.fullmatch(text.strip(_ASCII_SPACE))
  if not match:
    return None
  year, month, day = (int(g) for g in match.groups()[:3])
  if year < 1 or day > _days_in_month(year, month):
    return None
  hour, minute, second = (int(g or 0) for g in match.groups()[3:6])
  fraction = float('0.' + match.group(7)) if match.group(7) else 0.0
  return year, month, day, hour, minute, second, fraction


def is_date_text(text: str) -> bool:
  """True for an ISO-8601 date or datetime on a valid calendar date."""
  return date_key(text) is not None


def column_is_date(
  values: Iterable[Optional[str]],
  null_values: Iterable[str] = DEFAULT_NULL_VALUES,
) -> bool:
  """True when the column has a present value and every one is date text
  (None and the null tokens are missing)."""
  nulls = tuple(null_values)
  found = False
  for value in values:
    if value is None or is_missing(value, nulls):
      continue
    if not is_date_text(value):
      return False
    found = True
  return found


def _number(text: str) -> Union[int, float]:
  try:
    return int(text)
  except ValueError:
    return float(text)


def split_order(value: Union[int, float, str]) -> Tuple[int, Any]:
  """A present value's place in a time split's order: numbers by value,
  date text by date (before any other text), other text by its characters."""
  if not isinstance(value, str):
    return 0, value
  key = date_key(value)
  return (1, key) if key else (2, value.strip())


def is_eval(value: Union[int, float, str, None], eval_from: str) -> bool:
  """Whether a row whose split column holds `value` (as `value_of` reads
  it; None when missing) belongs to the eval split: `value >= eval_from`,
  as numbers for a number, as dates when both are date text, else as text.
  A missing value trains.

  Raises:
    ValueError: `value` is a number and `eval_from` is not.
  """
  if value is None:
    return False
  if not isinstance(value, str):
    try:
      return value >= _number(eval_from)
    except ValueError:
      raise ValueError(
        f'eval_from {eval_from!r} is not a number, but the '
        'split column holds numbers'
      ) from None
  mine, theirs = date_key(value), date_key(eval_from)
  if mine and theirs:
    return mine >= theirs
  return value.strip() >= eval_from.strip()


def read_text(data: bytes, path: str) -> str:
  """A CSV file's bytes as text (UTF-8, an optional byte-order mark)."""
  if b'\x00' in data[:8192]:
    raise UnicodeError(f'{path}: a binary file, not CSV text')
  try:
    return data.decode('utf-8-sig')
  except UnicodeDecodeError as e:
    line = data[: e.start].count(b'\n') + 1
    raise UnicodeError(
      f'{path}: line {line}: not UTF-8 text (byte 0x{data[e.start]:02x}); '
      'save the file as UTF-8'
    ) from None


def rows(text: str) -> Iterator[List[str]]:
  """The CSV records of a file's text, header first (blank lines skipped)."""
  for record in csv.reader(io.StringIO(text, newline='')):
    if record:
      yield record
