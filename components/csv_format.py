"""How the project reads a CSV file: one set of rules for the pre-flight
checks (pipeline/runners/preflight.py) and for the ExampleGen that turns the
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

No TensorFlow here: the pre-flight imports it.
"""

import csv
import io
import math
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
)

from pydantic import BaseModel, ConfigDict

INT, FLOAT, STRING = 'INT', 'FLOAT', 'STRING'
Kind = Literal['INT', 'FLOAT', 'STRING']
# The empty cell is always missing; these are the spec's default tokens.
DEFAULT_NULL_VALUES = ('',)


class CsvFormat(BaseModel):
  """What the ExampleGen needs to know to read the CSV files: the null
  tokens, and the kind of each column that is declared (by the schema, or
  inferred by the runner before the run); other columns are inferred."""
  model_config = ConfigDict(extra='forbid', frozen=True)

  null_values: Tuple[str, ...] = DEFAULT_NULL_VALUES
  columns: Dict[str, Kind] = {}


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


def infer_kinds(header: Sequence[str], rows: Iterable[Sequence[str]],
                null_values: Iterable[str]) -> Dict[str, str]:
  """Each column's kind over its present cells (STRING when it has none)."""
  nulls = tuple(null_values)
  kinds: List[Optional[str]] = [None] * len(header)
  for row in rows:
    for i, cell in enumerate(row[:len(header)]):
      if kinds[i] != STRING and not is_missing(cell, nulls):
        kinds[i] = widen(kinds[i], cell_kind(cell))
  return {name: kind or STRING for name, kind in zip(header, kinds,
                                                      strict=True)}


def read_text(data: bytes, path: str) -> str:
  """A CSV file's bytes as text (UTF-8, an optional byte-order mark)."""
  if b'\x00' in data[:8192]:
    raise UnicodeError(f'{path}: a binary file, not CSV text')
  try:
    return data.decode('utf-8-sig')
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b'\n') + 1
    raise UnicodeError(
        f'{path}: line {line}: not UTF-8 text (byte 0x{data[e.start]:02x}); '
        'save the file as UTF-8') from None


def rows(text: str) -> Iterator[List[str]]:
  """The CSV records of a file's text, header first (blank lines skipped)."""
  for record in csv.reader(io.StringIO(text, newline='')):
    if record:
      yield record
