"""One pass over the data's rows (the CSV files' or the tf.Examples'): each
value against the schema or with its kind inferred, presence, the label's
values, and what tells a column's kind (modules/kinds.py's ColumnFacts)."""

import collections
import csv
import dataclasses
import math
import os
from typing import Any, Counter, Dict, List, Optional, Tuple

from tensorflow_metadata.proto.v0 import schema_pb2

from components import csv_format
from modules import kinds as kinds_lib
from pipeline.runners.preflight.common import PreflightError
from pipeline.runners.preflight.files import _read
from pipeline.runners.preflight.schema import SCHEMA_KINDS, is_optional

# Distinct values are counted up to this many per column (then it is
# certainly id-like on data this size, and counting more costs memory).
DISTINCT_CAP = 1 << 20


@dataclasses.dataclass
class _Column:
  kind: Optional[str]  # declared, or None: inferred
  required: bool = False
  disallow_nan: bool = False
  schema_type: str = ''


# A tf.Example's value lists as column kinds, and back.
_LIST_KINDS = {
  'int64_list': csv_format.INT,
  'float_list': csv_format.FLOAT,
  'bytes_list': csv_format.STRING,
}
_LIST_NAMES = {kind: name for name, kind in _LIST_KINDS.items()}


def _names(names: List[str], shown: int = 3) -> str:
  """Column names for a one-line message: the first `shown`, then how many
  more (a header of another data set can name hundreds)."""
  listed = ', '.join(n[:40] for n in names[:shown])
  more = len(names) - shown
  return listed + (f' and {more} more' if more > 0 else '')


def _article(name: str) -> str:
  return f'{"an" if name[0] in "aeiou" else "a"} {name}'


class _Scan:
  """One pass over the CSV files (or the tf.Examples): types, presence and
  the label."""

  def __init__(
    self,
    schema: Optional[schema_pb2.Schema],
    null_values=csv_format.DEFAULT_NULL_VALUES,
    label: Optional[str] = None,
  ):
    self.label = label
    self.nulls = tuple(null_values)
    self.columns: Dict[str, _Column] = {}
    if schema is not None:
      for feature in schema.feature:
        self.columns[feature.name] = _Column(
          kind=SCHEMA_KINDS.get(feature.type, csv_format.STRING),
          required=not is_optional(feature),
          disallow_nan=feature.float_domain.disallow_nan,
          schema_type=schema_pb2.FeatureType.Name(feature.type),
        )
    self.schema = schema
    self.header: Optional[List[str]] = None
    self.header_file = ''  # the file the header was read from
    self.inferred: Dict[str, Optional[str]] = {}
    # The first cell that made an inferred column STRING: (where: the file,
    # line and column, text).
    self.first_text: Dict[str, Tuple[str, str]] = {}
    self.label_counts: Counter[str] = collections.Counter()
    # Where each label value is first seen (the file and line, or record).
    self.label_where: Dict[str, str] = {}
    # Per column: whether every value so far is ISO-8601 date text, and
    # its distinct values (not for FLOAT columns, where all-distinct is
    # what numbers are).
    self.dates: Dict[str, bool] = {}
    self.distinct: Dict[str, set] = collections.defaultdict(set)
    # Per text column: its values, their words, and whether every value
    # so far names an image file (what tells free text and images from
    # categories: modules/kinds.py).
    self.text_values: Counter[str] = collections.Counter()
    self.words: Counter[str] = collections.Counter()
    self.image_paths: Dict[str, bool] = {}
    # tf.Examples' bytes: per column, the values that are encoded images,
    # and where the first value that is neither an image nor UTF-8 text is.
    self.image_values: Counter[str] = collections.Counter()
    self.binary: Dict[str, str] = {}
    self.rows = 0

  def _check_header(self, path: str, header: List[str]) -> None:
    if not header:
      expected = (
        f'the {len(self.columns)} columns of the schema'
        if self.columns
        else 'the column names'
      )
      raise PreflightError(
        f'{path}: empty file; expected a header row naming {expected}'
      )
    if self.header is not None and sorted(header) != sorted(self.header):
      # Before the schema: a second file of other columns is the culprit
      # (another data set, or not data), whatever the schema says.
      theirs, mine = set(self.header), set(header)
      parts = [
        f'{what} {_names([n for n in names if n not in others])}'
        for what, names, others in (
          ('lacks', self.header, mine),
          ('adds', header, theirs),
        )
        if not set(names) <= others
      ]
      raise PreflightError(
        f'{path}: not the columns of {os.path.basename(self.header_file)} '
        f"({'; '.join(parts)}); the data folder's files are one table: "
        'move other files out'
      )
    if self.schema is not None:
      missing = [n for n in self.columns if n not in header]
      extra = [n for n in header if n not in self.columns]
      if missing or extra:
        parts = []
        if missing:
          parts.append(f'missing column(s) {_names(missing)}')
        if extra:
          parts.append(f'column(s) not in the schema {_names(extra)}')
        raise PreflightError(
          f'{path}: header does not match the schema: {"; ".join(parts)}'
        )
    if self.header is None:
      self.header, self.header_file = header, path
      for name in header:
        self.columns.setdefault(name, _Column(kind=None))

  def file(self, path: str) -> int:
    header, reader = _read(path)
    self._check_header(path, header)
    rows = 0
    while True:
      try:
        row = next(reader)
      except StopIteration:
        break
      except csv.Error as e:
        raise PreflightError(
          f'{path}: line {reader.line_num}: not CSV ({e})'
        ) from None
      if not row:
        continue
      rows += 1
      line = reader.line_num
      if len(row) != len(header):
        raise PreflightError(
          f'{path}: line {line}: {len(row)} fields, expected {len(header)}'
        )
      for name, cell in zip(header, row, strict=True):
        value = self._cell(path, line, name, cell)
        if value is None:
          continue
        if name == self.label:
          self.label_counts[cell.strip()] += 1
          self.label_where.setdefault(cell.strip(), f'{path}: line {line}')
        elif not isinstance(value, float):
          self._text_value(name, cell.strip())
    if rows == 0:
      raise PreflightError(f'{path}: no data rows after the header')
    self.rows += rows
    return rows

  def _cell(self, path: str, line: int, name: str, cell: str):
    column = self.columns[name]
    where = f'{path}: line {line}, column {name}'
    if csv_format.is_missing(cell, self.nulls):
      if column.required or name == self.label:
        what = (
          'the label is missing; every row needs one'
          if name == self.label
          else 'empty value, but the schema requires it (presence '
          'min_fraction 1.0); fill or drop the row'
        )
        raise PreflightError(f'{where}: {what}')
      return None
    if column.kind is None:  # inferred
      kind = csv_format.cell_kind(cell)
      before = self.inferred.get(name)
      self.inferred[name] = csv_format.widen(before, kind)
      if kind == csv_format.STRING and name not in self.first_text:
        self.first_text[name] = (where, cell.strip())
      return (
        cell.strip()
        if self.inferred[name] == csv_format.STRING
        else (csv_format.parse(cell, self.inferred[name]))
      )
    try:
      value = csv_format.parse(cell, column.kind)
    except csv_format.CellError:
      raise PreflightError(
        f'{where}: {cell.strip()!r} is not '
        f'{column.schema_type} as the schema says'
      ) from None
    if isinstance(value, float) and math.isnan(value):
      if column.required or column.disallow_nan:
        raise PreflightError(
          f'{where}: NaN, but the schema forbids missing '
          'values; fill or drop the row'
        )
      return None
    return value

  def example(self, path: str, number: int, example: Any) -> None:
    """One tf.Example (record `number` of a TFRecord file): the kinds of
    its value lists, presence, the label, and what recognition reads. A
    feature that is absent or holds no value is a missing value."""
    features = example.features.feature
    where = f'{path}: record {number}'
    if self.label is not None and self.label not in features:
      raise PreflightError(
        f'{where}: no feature {self.label!r} (features.label); its '
        f'features: {", ".join(sorted(features)) or "none"}'
      )
    for name in sorted(features):
      column = self.columns.get(name)
      if column is None:
        if self.schema is not None:
          raise PreflightError(
            f'{where}: feature {name!r} is not in the schema; add it to the '
            'schema or leave it out of the tf.Examples'
          )
        column = self.columns[name] = _Column(kind=None)
      feature = features[name]
      which = feature.WhichOneof('kind')
      self._record_value(
        f'{where}, feature {name}',
        name,
        column,
        which,
        getattr(feature, which).value if which else (),
      )
    for name, column in self.columns.items():
      if column.required and name not in features:
        raise PreflightError(
          f'{where}: feature {name!r} is missing, but the schema requires '
          'it (presence min_fraction 1.0); fill or drop the example'
        )
    self.rows += 1

  def _record_value(
    self, where: str, name: str, column: _Column, which: Optional[str], values
  ) -> None:
    if len(values) > 1:
      raise PreflightError(
        f'{where}: {len(values)} values; only one value per row is read '
        '(a feature is a column): write one value, or leave the feature '
        'out of the tf.Examples'
      )
    if not values:
      if column.required or name == self.label:
        what = (
          'the label is missing; every example needs one'
          if name == self.label
          else 'no value, but the schema requires one (presence '
          'min_fraction 1.0); fill or drop the example'
        )
        raise PreflightError(f'{where}: {what}')
      return
    kind = _LIST_KINDS[which]
    if column.kind is not None and kind != column.kind:
      raise PreflightError(
        f'{where}: {_article(which)}, but the schema says '
        f'{column.schema_type} ({_article(_LIST_NAMES[column.kind])})'
      )
    before = self.inferred.get(name)
    if column.kind is None and before not in (None, kind):
      raise PreflightError(
        f'{where}: {_article(which)}, but earlier examples hold '
        f'{_article(_LIST_NAMES[before])}; a feature keeps one type'
      )
    self.inferred[name] = kind
    value = values[0]
    if kind == csv_format.FLOAT and math.isnan(value):
      if name == self.label:
        raise PreflightError(
          f'{where}: the label is NaN; every example needs one'
        )
      if column.required or column.disallow_nan:
        raise PreflightError(
          f'{where}: NaN, but the schema forbids missing '
          'values; fill or drop the example'
        )
      return
    if name == self.label:
      text = self._label_text(where, kind, value)
      self.label_counts[text] += 1
      self.label_where.setdefault(text, where.rsplit(',', 1)[0])
    elif kind == csv_format.STRING:
      self._bytes_value(where, name, value)

  @staticmethod
  def _label_text(where: str, kind: str, value) -> str:
    """A label value as the CSV would write it (what `_task` reads)."""
    if kind != csv_format.STRING:
      return repr(value)
    try:
      return value.decode('utf-8').strip()
    except UnicodeDecodeError:
      raise PreflightError(
        f'{where}: the label is not UTF-8 text; give '
        'class names as text, or numbers'
      ) from None

  def _bytes_value(self, where: str, name: str, value: bytes) -> None:
    """A tf.Example's bytes: an encoded image, text, or other bytes."""
    if not value:
      return  # the empty value: a missing text, a blank image
    if kinds_lib.is_image_bytes(value):
      self.image_values[name] += 1
      return
    try:
      text = value.decode('utf-8').strip()
    except UnicodeDecodeError:
      self.binary.setdefault(name, where)
      return
    self.first_text.setdefault(name, (where, text))
    # A path in a tf.Example names no file the ExampleGen reads.
    self._text_value(name, text, paths=False)

  def records_done(self) -> None:
    """After the last tf.Example: the columns in name order (a tf.Example
    keeps none), each schema feature among them."""
    self.header = sorted(self.columns)

  def _text_value(self, name: str, text: str, paths: bool = True) -> None:
    if self.dates.get(name, True):
      self.dates[name] = csv_format.is_date_text(text)
    if self.image_paths.get(name, True):
      self.image_paths[name] = paths and text.lower().endswith(
        kinds_lib.IMAGE_EXTENSIONS
      )
    self.text_values[name] += 1
    self.words[name] += len(text.split())
    seen = self.distinct[name]
    if len(seen) < DISTINCT_CAP:
      seen.add(text)

  def looks_like_date(self, name: str) -> bool:
    return self.dates.get(name, False)

  def facts(self, name: str, csv_kind: str) -> kinds_lib.ColumnFacts:
    """What the scan saw of column `name` (kinds_lib.recognise's input)."""
    values = self.text_values.get(name, 0)
    return kinds_lib.ColumnFacts(
      csv_kind=csv_kind,
      looks_like_date=self.looks_like_date(name),
      distinct_share=(
        len(self.distinct.get(name, ())) / self.rows if self.rows else 0.0
      ),
      mean_words=self.words.get(name, 0) / values if values else 0.0,
      image_paths=bool(values) and self.image_paths.get(name, False),
      image_bytes=(
        bool(self.image_values.get(name))
        and not values
        and name not in self.binary
      ),
    )

  def kinds(self) -> Dict[str, str]:
    return {
      name: column.kind or self.inferred.get(name) or csv_format.STRING
      for name, column in self.columns.items()
    }


def check_csv(
  path: str,
  schema: schema_pb2.Schema,
  null_values=csv_format.DEFAULT_NULL_VALUES,
) -> int:
  """One CSV file against a schema (types, presence); returns its rows."""
  return _Scan(schema, null_values).file(path)
