"""CsvExampleGen: TFX's, reading CSV files by components/csv_format.py's rules.

TFX 1.16's CsvExampleGen infers every column's type from the data and knows
no null tokens, so a column whose cells are "NA" where a value is missing
becomes a string column, and a FLOAT column whose values happen to be whole
numbers becomes INT (and then fails ExampleValidator against a schema that
says FLOAT). This one reads the null tokens and the declared column kinds
from its custom config (`csv_format.CsvFormat`, as JSON) and infers only the
columns not declared, by the same rules the pre-flight checks use:

- a missing cell (empty, a null token, NaN) is an absent value: the feature
  is there with an empty value list;
- each file is read by its own header, so files may order their columns
  differently; features are written in name order;
- with `split_by` and `eval_from` in the format, the rows are split by that
  column's value (`csv_format.is_eval`) into the output config's `train`
  and `eval` splits, whose hash buckets are then not used.

How it stays fast (a million rows in seconds, not minutes): a big file
without quote characters is cut at line ends into units of about
`UNIT_BYTES`, each a Beam element, so that every worker reads a share;
pyarrow splits a unit into cells, and the rules run on whole columns
(pyarrow.compute, numpy), with Python only for the rare cells the
vectorised test cannot decide (non-ASCII text, "+5", "1_000"). The
tf.Examples are serialized column by column with numpy (`_encode`: the
bytes of `SerializeToString(deterministic=True)`, which TFX hashes, so each
row goes to the split it always went to), and the worker that read a unit
writes its rows, shuffled a slice at a time, as one gzipped TFRecord file
per split; `Do` then names the files as TFX's writer does. TFX's own Do
passes every row through Beam three times (serialize, shuffle, write), and
its shuffle keeps the input order on the DirectRunner anyway. Whatever
pyarrow refuses (a ragged row, bad UTF-8, NUL bytes) is read again by the
csv module, whole file, for the exact one-line error.

The component is TFX's FileBasedExampleGen with this executor; its node id
stays `CsvExampleGen`.
"""

import bisect
import codecs
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import struct
import uuid
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import apache_beam as beam
import google_crc32c
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from google.protobuf import any_pb2, wrappers_pb2
from pyarrow import csv as pa_csv
from tfx.components.example_gen import (
  base_example_gen_executor,
  component,
  write_split,
)
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.util import examples_utils
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components import csv_format

# The splits a time split writes, in the order of its route's indices.
TIME_SPLITS = ('train', 'eval')
# A file bigger than two units is read in units of about this many bytes
# (cut at line ends), one Beam element each, so workers share the file.
UNIT_BYTES = 16 << 20
# Rows converted and serialized at once: the arrays of a slice stay small.
SLICE_ROWS = 1 << 16
# A column of file names reads each file whole: fewer rows at once.
FILE_SLICE_ROWS = 256
# The csv module refuses a field this long; pyarrow has no limit, so a
# unit with one is read by the csv module for the same refusal.
_FIELD_LIMIT = csv.field_size_limit()
# What str.strip() strips from ASCII text, less \x1c-\x1f, which send a
# cell to the per-cell rules (as any non-ASCII cell goes).
_SPACE = ' \t\n\v\f\r'
_ODD_BYTES = re.compile(rb'[\x1c-\x1f]')
# Integer text pyarrow reads as Python's int() does (pyarrow refuses "+5",
# Python accepts it: that cell goes to Python).
_INT_TEXT = r'^-?[0-9]+$'
# Decimal text pyarrow reads as Python's float() does.
_FLOAT_TEXT = r'^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$'
_FLT_MAX = float(np.finfo(np.float32).max)
_DATA_FILE = write_split.DEFAULT_TF_RECORD_FILE_NAME


def custom_config(fmt: csv_format.CsvFormat) -> example_gen_pb2.CustomConfig:
  """The ExampleGen's custom_config proto carrying `fmt` as JSON, keys
  sorted: the same format is the same cache key, whatever order the
  columns were found in."""
  packed = any_pb2.Any()
  # Unset options are left out, so a format without a time split has the
  # cache key it would have had before the split options existed.
  packed.Pack(
    wrappers_pb2.StringValue(
      value=json.dumps(
        fmt.model_dump(mode='json', exclude_none=True), sort_keys=True
      )
    )
  )
  return example_gen_pb2.CustomConfig(custom_config=packed)


def read_format(exec_properties: Dict[str, Any]) -> csv_format.CsvFormat:
  """The CsvFormat in an execution's custom_config (defaults when none)."""
  raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
  if not raw:
    return csv_format.CsvFormat()
  config = example_gen_pb2.CustomConfig()
  if isinstance(raw, str):
    proto_utils.json_to_proto(raw, config)
  else:
    config.CopyFrom(raw)
  value = wrappers_pb2.StringValue()
  if not config.custom_config.Unpack(value):
    raise ValueError('CsvExampleGen: custom_config is not a CsvFormat')
  return csv_format.CsvFormat.model_validate(json.loads(value.value))


# --- The csv module's reading: the reference, and the exact errors ---------


def _read_file(path: str) -> Tuple[List[str], List[List[str]]]:
  with FileSystems.open(path) as f:
    data = f.read()
  records = csv_format.rows(csv_format.read_text(data, path))
  header = next(records, None)
  if not header:
    raise ValueError(f'{path}: empty file; expected a header row')
  return [name.strip() for name in header], list(records)


def _check_records(
  path: str, header: Sequence[str], records: Iterable[Sequence[str]]
) -> None:
  for line, record in enumerate(records, start=2):
    if len(record) != len(header):
      raise ValueError(
        f'{path}: record {line}: {len(record)} fields, expected {len(header)}'
      )


def _header(path: str) -> List[str]:
  """A file's header (names stripped), read from its first bytes."""
  decoder = codecs.getincrementaldecoder('utf-8-sig')()
  with FileSystems.open(path) as f:
    chunk, text = f.read(1 << 16), ''
    try:
      while b'\x00' not in chunk[:8192]:  # read_text's test for binary
        text += decoder.decode(chunk, final=not chunk)
        records = csv.reader(io.StringIO(text, newline=''))
        header = next((r for r in records if r), None)
        # The header is whole once a record follows it, or the file ends.
        if header and (not chunk or next(records, None) is not None):
          return [name.strip() for name in header]
        if not chunk:
          break
        chunk = f.read(1 << 16)
    except (UnicodeDecodeError, csv.Error):
      pass
  # Empty, binary, not UTF-8: reading the whole file says which, and where.
  return _read_file(path)[0]


def _lacks(path: str, header: Sequence[str], columns: Sequence[str]) -> None:
  missing = [c for c in columns if c not in header]
  if missing:
    raise ValueError(f'{path}: header lacks column(s) {", ".join(missing)}')


# --- Units: a file, or a part of one cut at a line end ---------------------


@dataclasses.dataclass(frozen=True)
class _Unit:
  """Bytes [start, end) of a CSV file (end None: to its end); `header` is
  the file's, stripped; `quoted` when a quoted cell may hold a line break."""

  path: str
  start: int
  end: Optional[int]
  header: Tuple[str, ...]
  quoted: bool
  # Names the unit's output files: sorted, they are in input order.
  key: str

  @property
  def whole(self) -> bool:
    return self.start == 0 and self.end is None


class _PlanUnits(beam.DoFn):
  """A CSV file's units. A file with a quote character anywhere is one
  unit: a quoted cell may hold a line break, so a line end is no safe cut
  (the file is then read whole, as before)."""

  def __init__(self, columns: Sequence[str]):
    self._columns = list(columns)

  def process(self, file: Tuple[int, str]) -> Iterable[_Unit]:
    index, path = file
    header = tuple(_header(path))
    _lacks(path, header, self._columns)
    size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    whole = _Unit(path, 0, None, header, True, f'{index:06d}-{0:015d}')
    if (
      size <= 2 * UNIT_BYTES
      or CompressionTypes.detect_compression_type(path)
      != CompressionTypes.UNCOMPRESSED
    ):
      yield whole
      return
    starts = [0]
    with FileSystems.open(
      path, compression_type=CompressionTypes.UNCOMPRESSED
    ) as f:
      offset = 0
      while chunk := f.read(UNIT_BYTES):
        if b'"' in chunk:
          yield whole
          return
        line_end = chunk.find(b'\n')
        if offset and line_end >= 0 and offset + line_end + 1 < size:
          starts.append(offset + line_end + 1)
        offset += len(chunk)
    for start, end in zip(starts, starts[1:] + [None], strict=True):
      yield _Unit(path, start, end, header, False, f'{index:06d}-{start:015d}')


def _unit_bytes(unit: _Unit) -> bytes:
  if unit.whole:  # a compressed file decompresses here
    with FileSystems.open(unit.path) as f:
      return f.read()
  with FileSystems.open(
    unit.path, compression_type=CompressionTypes.UNCOMPRESSED
  ) as f:
    f.seek(unit.start)
    return f.read() if unit.end is None else f.read(unit.end - unit.start)


def _arrow_cells(unit: _Unit, data: bytes) -> Optional[List[pa.ChunkedArray]]:
  """The unit's data cells by header position, split by pyarrow; None
  where the csv module must read it (pyarrow refused it, or it holds what
  the csv module refuses and pyarrow would not)."""
  if unit.start == 0 and data.startswith(codecs.BOM_UTF8):
    data = data[len(codecs.BOM_UTF8) :]
  if b'\x00' in data:
    return None
  width = len(unit.header)
  try:
    # open_csv, not read_csv: read_csv's signal handler walks the whole
    # heap (gc.get_referrers) on Python 3.10, seconds once TFX is loaded.
    table = pa_csv.open_csv(
      pa.py_buffer(data),
      read_options=pa_csv.ReadOptions(
        autogenerate_column_names=True,
        use_threads=False,
        block_size=max(1 << 20, min(len(data) + 1, 1 << 28)),
      ),
      parse_options=pa_csv.ParseOptions(newlines_in_values=unit.quoted),
      convert_options=pa_csv.ConvertOptions(
        column_types={f'f{i}': pa.string() for i in range(width)},
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
      ),
    ).read_all()
  except pa.ArrowException:
    return None
  if table.num_columns != width:
    return None
  if unit.start == 0:
    if not table.num_rows or [
      c[0].as_py().strip() for c in table.columns
    ] != list(unit.header):
      return None
    table = table.slice(1)
  for column in table.columns:
    if len(column) and pc.max(pc.binary_length(column)).as_py() >= (
      _FIELD_LIMIT - 1
    ):
      return None
  return table.columns


def _csv_cells(unit: _Unit, data: bytes) -> List[pa.Array]:
  """The unit's data cells by header position, split by the csv module:
  the whole file is checked first, so an error names its record."""
  header, records = _read_file(unit.path)
  _check_records(unit.path, header, records)
  if not unit.whole:  # an unquoted file: its lines are its records
    text = data.decode('utf-8-sig' if unit.start == 0 else 'utf-8')
    records = list(csv_format.rows(text))[1 if unit.start == 0 else 0 :]
  return [
    pa.array(list(cells), pa.string()) for cells in zip(*records, strict=True)
  ] or [pa.array([], pa.string()) for _ in header]


def _unit_columns(
  unit: _Unit, columns: Sequence[str]
) -> Tuple[List[pa.ChunkedArray], int, bool]:
  """The unit's cells of `columns`, in that order, its row count, and
  whether its text is plain: ASCII without \\x1c-\\x1f, so that the
  vectorised rules are exact for every cell."""
  data = _unit_bytes(unit)
  cells = _arrow_cells(unit, data)
  if cells is None:
    cells = _csv_cells(unit, data)
  picked = [cells[unit.header.index(c)] for c in columns]
  plain = data.isascii() and not _ODD_BYTES.search(data)
  return picked, len(picked[0]) if picked else 0, plain


# --- The cell rules over a column of cells ---------------------------------


def _take(array: pa.Array, mask: np.ndarray) -> List[Any]:
  return array.take(pa.array(np.flatnonzero(mask))).to_pylist()


def _matches(array: pa.Array, pattern: str) -> np.ndarray:
  return pc.match_substring_regex(array, pattern).to_numpy(zero_copy_only=False)


class _Cells:
  """One column's cells in a slice: which are present (csv_format's
  is_missing), and which only Python can judge (`odd`: non-ASCII, or
  holding \\x1c-\\x1f, which str.strip() strips)."""

  def __init__(
    self, name: str, cells: pa.Array, nulls: Sequence[str], plain: bool
  ):
    self.name = name
    self.cells = cells
    self.nulls = tuple(nulls)
    self.trimmed = pc.utf8_trim(cells, _SPACE)
    missing = pc.equal(pc.binary_length(self.trimmed), 0)
    tokens = [t for t in self.nulls if t]
    if tokens:
      missing = pc.or_(
        missing, pc.is_in(self.trimmed, value_set=pa.array(tokens, pa.string()))
      )
    self.present = ~missing.to_numpy(zero_copy_only=False)
    self.odd = np.zeros(len(cells), bool)
    if not plain:
      self.odd = ~pc.string_is_ascii(cells).to_numpy(zero_copy_only=False)
      self.odd |= _matches(cells, '[\\x1c-\\x1f]')
      if self.odd.any():
        self.present[self.odd] = [
          not csv_format.is_missing(c, self.nulls)
          for c in _take(cells, self.odd)
        ]

  def values(self, kind: str, mask: np.ndarray) -> List[Any]:
    """csv_format.value_of for the cells in `mask` (None: missing)."""
    try:
      return [
        csv_format.value_of(c, kind, self.nulls)
        for c in _take(self.cells, mask)
      ]
    except csv_format.CellError as e:
      raise ValueError(f'column {self.name}: {e}') from None

  def numbers(self, kind: str, mask: np.ndarray) -> np.ndarray:
    """The trimmed cells in `mask` cast by pyarrow; those it refuses are
    left out of `mask`, for Python to read."""
    arrow = pa.int64() if kind == csv_format.INT else pa.float64()
    fast = mask & ~self.odd
    if kind == csv_format.INT:
      # pyarrow reads "0x1F" as 31; int() refuses it.
      fast &= _matches(self.trimmed, _INT_TEXT)
    values = np.zeros(
      len(mask), np.int64 if arrow == pa.int64() else np.float64
    )
    for attempt in ('all', 'decimal'):
      try:
        values[fast] = pc.cast(
          self.trimmed.filter(pa.array(fast)), arrow
        ).to_numpy(zero_copy_only=False)
        break
      except pa.ArrowInvalid:
        if attempt == 'all' and kind == csv_format.FLOAT:
          fast &= _matches(self.trimmed, _FLOAT_TEXT)
        else:  # out of int64's range: Python names the cell
          fast[:] = False
    mask &= ~fast
    return values

  def kind(self) -> Optional[str]:
    """The column's kind over its present cells here (None: none)."""
    if not self.present.any():
      return None
    plain = self.present & ~self.odd
    try:
      # What pyarrow reads as a double, Python's float() reads too.
      numbers = pc.cast(
        self.trimmed.filter(pa.array(plain)), pa.float64()
      ).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
      numbers = None
    if numbers is None:  # Python judges the cells that are no integers
      ints = plain & _matches(self.trimmed, _INT_TEXT)
      kind = csv_format.INT if ints.any() else None
      rest = self.present & ~ints
    else:
      kind = None
      if len(numbers):
        # A fraction, inf or nan is no integer's text (so no need to look
        # further); a whole number is, unless written 3.0 or 1e5.
        whole = (
          np.isfinite(numbers).all() and (numbers == np.trunc(numbers)).all()
        )
        kind = (
          csv_format.INT
          if whole and _matches(self.trimmed, _INT_TEXT)[plain].all()
          else csv_format.FLOAT
        )
      rest = self.present & self.odd
    for cell in _take(self.cells, rest):
      kind = csv_format.widen(kind, csv_format.cell_kind(cell))
      if kind == csv_format.STRING:
        break
    return kind


@dataclasses.dataclass
class _Feature:
  """A column's values in a slice: int64 (INT), float32 (FLOAT) or bytes
  (BYTES, a large_binary array) per row, with which rows have one."""

  kind: str
  values: Any
  present: np.ndarray


_BYTES = 'BYTES'


def _ints(cells: _Cells) -> _Feature:
  present = cells.present.copy()
  slow = present.copy()
  values = cells.numbers(csv_format.INT, slow)
  for i, value in zip(
    np.flatnonzero(slow), cells.values(csv_format.INT, slow), strict=True
  ):
    if value is not None and not -(2**63) <= value < 2**63:
      raise ValueError(
        f'column {cells.name}: {value} is beyond a 64-bit '
        'integer; declare the column FLOAT or STRING'
      )
    values[i] = value or 0
    present[i] = value is not None
  return _Feature(csv_format.INT, values, present)


def _floats(cells: _Cells) -> _Feature:
  present = cells.present.copy()
  slow = present.copy()
  values = cells.numbers(csv_format.FLOAT, slow)
  for i, value in zip(
    np.flatnonzero(slow), cells.values(csv_format.FLOAT, slow), strict=True
  ):
    values[i] = math.nan if value is None else value
  present &= ~np.isnan(values)  # NaN, read by either, is missing
  with np.errstate(over='ignore'):
    narrow = values.astype(np.float32)
  big = np.isfinite(values) & (np.abs(values) >= _FLT_MAX)
  if big.any():  # FloatList rounds a double past FLT_MAX its own way
    narrow[big] = tf.train.FloatList(value=values[big].tolist()).value
  return _Feature(csv_format.FLOAT, narrow, present)


def _texts(cells: _Cells) -> _Feature:
  return _Feature(_BYTES, cells.cells.cast(pa.large_binary()), cells.present)


def _file_bytes(cells: _Cells, folder: str) -> _Feature:
  """A files column: each present cell (a path relative to `folder`)
  becomes the bytes of the file it names."""
  values = []
  for cell, present in zip(cells.cells.to_pylist(), cells.present, strict=True):
    if not present:
      values.append(b'')
      continue
    path = FileSystems.join(folder, cell.strip())
    try:
      with FileSystems.open(path) as f:
        values.append(f.read())
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(
        f'column {cells.name}: cannot read {path}: '
        f'{" ".join(str(e).split())[:200]}'
      ) from None
  return _Feature(_BYTES, pa.array(values, pa.large_binary()), cells.present)


def _features(
  cells: Dict[str, _Cells],
  kinds: Dict[str, str],
  files: Sequence[str],
  folder: str,
) -> Dict[str, _Feature]:
  convert = {
    csv_format.INT: _ints,
    csv_format.FLOAT: _floats,
    csv_format.STRING: _texts,
  }
  return {
    name: _file_bytes(column, folder)
    if name in files
    else convert[kinds[name]](column)
    for name, column in cells.items()
  }


# --- Serialized tf.Examples, column by column ------------------------------
# An Example is field 1 (Features) holding field 1 (map<string, Feature>):
# one entry per feature, key then value; a Feature holds one list (bytes 1,
# float 2, int64 3) whose values are packed for numbers. A missing value is
# the list with no values, as tf.train.Feature(float_list=FloatList()) is.


def _varint(n: int) -> bytes:
  out = bytearray()
  while n >= 0x80:
    out.append(n & 0x7F | 0x80)
    n >>= 7
  out.append(n)
  return bytes(out)


def _varint_sizes(values: np.ndarray) -> np.ndarray:
  """Bytes each value takes as a varint (negative int64: 10)."""
  values = values.astype(np.int64).view(np.uint64)
  sizes = np.ones(len(values), np.int64)
  for shift in range(7, 64, 7):
    sizes += values >= (np.uint64(1) << np.uint64(shift))
  return sizes


def _varint_matrix(values: np.ndarray) -> np.ndarray:
  """Each value's varint bytes, left-aligned in 10 columns."""
  values = values.astype(np.int64).view(np.uint64)
  shifts = np.arange(0, 70, 7, dtype=np.uint64)
  groups = ((values[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
  more = np.arange(10) < (_varint_sizes(values)[:, None] - 1)
  return groups | (more.astype(np.uint8) << 7)


def _binary(matrix: np.ndarray, sizes: Optional[np.ndarray] = None) -> pa.Array:
  """Rows of `matrix` (the first `sizes` bytes of each) as large_binary."""
  rows, width = matrix.shape
  if sizes is None:
    offsets = np.arange(rows + 1, dtype=np.int64) * width
    data = np.ascontiguousarray(matrix)
  else:
    offsets = np.zeros(rows + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    data = matrix[np.arange(width) < sizes[:, None]]
  return pa.Array.from_buffers(
    pa.large_binary(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
  )


def _varint_array(values: np.ndarray) -> pa.Array:
  if not len(values) or values.max() < 0x80 and values.min() >= 0:
    return _binary(values.astype(np.uint8)[:, None])
  return _binary(_varint_matrix(values), _varint_sizes(values))


def _scalar(data: bytes) -> pa.Scalar:
  return pa.scalar(data, pa.large_binary())


def _join(*parts: Union[bytes, pa.Array]) -> pa.Array:
  return pc.binary_join_element_wise(
    *[_scalar(p) if isinstance(p, bytes) else p for p in parts], _scalar(b'')
  )


def _entry(name: str, value_size: int) -> bytes:
  """A map entry's bytes up to its Feature, which is `value_size` long."""
  key = name.encode('utf-8')
  body = b'\x0a' + _varint(len(key)) + key + b'\x12' + _varint(value_size)
  return b'\x0a' + _varint(len(body) + value_size) + body


# A number list's Feature field, and the empty Feature of a missing value.
_LIST_TAG = {
  csv_format.FLOAT: b'\x12',
  csv_format.INT: b'\x1a',
  _BYTES: b'\x0a',
}


def _empty(name: str, kind: str) -> bytes:
  return _entry(name, 2) + _LIST_TAG[kind] + b'\x00'


def _numbers(
  name: str, feature: _Feature
) -> Union[Tuple[bytes, np.ndarray], pa.Array]:
  """A number column's map entries: (prefix, values' bytes) when every
  row's entry is that prefix then a value of the same width (no value
  missing; a float, or ints whose varints are as long), else one
  large_binary per row.

  A row's entry is one of a few shapes: missing, or present with a value
  of k bytes (a float 4; an int's varint 1 to 10), each a fixed prefix then
  the value's bytes."""
  rows = len(feature.present)
  if feature.kind == csv_format.FLOAT:
    tails = feature.values.astype('<f4').view(np.uint8).reshape(rows, 4)
    sizes = np.full(rows, 4)
  else:
    tails = _varint_matrix(feature.values)
    sizes = _varint_sizes(feature.values)
  tag = _LIST_TAG[feature.kind]
  shapes = {}
  for size in np.unique(sizes[feature.present]).tolist():
    packed = b'\x0a' + _varint(size)  # the packed values field
    shapes[size] = (
      _entry(name, 2 + len(packed) + size)
      + tag
      + _varint(len(packed) + size)
      + packed
    )
  if len(shapes) == 1 and feature.present.all():
    ((size, prefix),) = shapes.items()
    return prefix, tails[:, :size]
  missing = _empty(name, feature.kind)
  widths = np.full(rows, len(missing))
  for size, prefix in shapes.items():
    widths[feature.present & (sizes == size)] = len(prefix) + size
  matrix = np.zeros((rows, int(widths.max(initial=0))), np.uint8)
  for size, prefix in shapes.items():
    which = feature.present & (sizes == size)
    matrix[which, : len(prefix)] = np.frombuffer(prefix, np.uint8)
    matrix[which, len(prefix) : len(prefix) + size] = tails[which, :size]
  absent = ~feature.present
  matrix[absent, : len(missing)] = np.frombuffer(missing, np.uint8)
  return _binary(matrix, widths)


def _fixed(
  head: bytes, entries: Sequence[Tuple[bytes, np.ndarray]]
) -> np.ndarray:
  """`head` then the entries, each its prefix and its values' bytes, as
  one matrix: the prefixes are written once as a template row (a fresh
  matrix per column, then stacking, costs three times as long)."""
  rows = len(entries[0][1])
  template = [np.frombuffer(head, np.uint8)]
  for prefix, values in entries:
    template += [
      np.frombuffer(prefix, np.uint8),
      np.zeros(values.shape[1], np.uint8),
    ]
  template = np.concatenate(template)
  matrix = np.empty((rows, len(template)), np.uint8)
  matrix[:] = template
  offset = len(head)
  for prefix, values in entries:
    offset += len(prefix)
    matrix[:, offset : offset + values.shape[1]] = values
    offset += values.shape[1]
  return matrix


def _texts_entries(name: str, feature: _Feature) -> pa.Array:
  """A bytes column's map entries, one large_binary per row."""
  sizes = (
    pc.binary_length(feature.values)
    .to_numpy(zero_copy_only=False)
    .astype(np.int64)
  )
  list_size = 1 + _varint_sizes(sizes) + sizes
  value_size = 1 + _varint_sizes(list_size) + list_size
  key = name.encode('utf-8')
  key_field = b'\x0a' + _varint(len(key)) + key + b'\x12'
  entry_size = len(key_field) + _varint_sizes(value_size) + value_size
  present = _join(
    b'\x0a',
    _varint_array(entry_size),
    key_field,
    _varint_array(value_size),
    b'\x0a',
    _varint_array(list_size),
    b'\x0a',
    _varint_array(sizes),
    feature.values,
  )
  if feature.present.all():
    return present
  return pc.if_else(
    pa.array(feature.present), present, _scalar(_empty(name, _BYTES))
  )


def _encode(features: Dict[str, _Feature]) -> List[bytes]:
  """The rows as serialized tf.Examples, features in name order: the bytes
  of `SerializeToString(deterministic=True)`."""
  entries = [
    _texts_entries(name, feature)
    if feature.kind == _BYTES
    else _numbers(name, feature)
    for name, feature in sorted(features.items())
  ]
  if not entries:
    return []
  if all(isinstance(e, tuple) for e in entries):
    # Every row the same width (numbers, none missing): one matrix.
    width = sum(len(prefix) + values.shape[1] for prefix, values in entries)
    return _binary(_fixed(b'\x0a' + _varint(width), entries)).to_pylist()
  pieces, run = [], []  # run: neighbouring fixed-width entries
  for entry in entries + [None]:
    if isinstance(entry, tuple):
      run.append(entry)
      continue
    if run:
      pieces.append(_binary(_fixed(b'', run)))
      run = []
    if entry is not None:
      pieces.append(entry)
  sizes = sum(
    pc.binary_length(p).to_numpy(zero_copy_only=False).astype(np.int64)
    for p in pieces
  )
  return _join(b'\x0a', _varint_array(sizes), *pieces).to_pylist()


# --- Which split each row goes to ------------------------------------------


class _OneSplit:
  """Every row to one split (TFX's input splits, each its own pattern)."""

  def __init__(self, index: int):
    self._index = index

  def __call__(self, records: List[bytes], features) -> np.ndarray:
    del features
    return np.full(len(records), self._index)


class _HashSplit:
  """TFX's hash buckets (base_example_gen_executor._PartitionFn): the
  sha256 of the serialized example, or of a partition feature."""

  def __init__(self, output_config: example_gen_pb2.Output):
    self._config = output_config.split_config.SerializeToString()
    self._buckets = [
      int(b)
      for b in np.cumsum(
        [s.hash_buckets for s in output_config.split_config.splits]
      )
    ]

  def __call__(self, records: List[bytes], features) -> np.ndarray:
    del features
    config = example_gen_pb2.SplitConfig.FromString(self._config)
    if config.HasField('partition_feature_name'):
      return np.array(
        [
          base_example_gen_executor._PartitionFn(  # pylint: disable=protected-access
            tf.train.Example.FromString(r),
            len(self._buckets),
            self._buckets,
            config,
          )
          for r in records
        ],
        np.int64,
      )
    total, buckets = self._buckets[-1], self._buckets
    # int(hexdigest, 16), as TFX computes it, without the hex.
    return np.array(
      [
        bisect.bisect(
          buckets, int.from_bytes(hashlib.sha256(r).digest(), 'big') % total
        )
        for r in records
      ],
      np.int64,
    )


def _split_values(feature: _Feature) -> List[Union[int, float, str, None]]:
  """Each row's value as csv_format.value_of reads it (None: missing)."""
  if feature.kind == _BYTES:
    values = [v.decode('utf-8') for v in feature.values.to_pylist()]
  elif feature.kind == csv_format.FLOAT:
    # A float32 now: its shortest decimal is the number the CSV wrote (to
    # float32's precision), so a row holding eval_from itself is eval.
    values = [float(str(v)) for v in feature.values]
  else:
    values = feature.values.tolist()
  return [
    v if p else None for v, p in zip(values, feature.present, strict=True)
  ]


class _TimeSplit:
  """Which split a row goes to by its split column's value (train 0,
  eval 1)."""

  def __init__(self, column: str, eval_from: str):
    self.column = column
    self._eval_from = eval_from

  def is_eval(self, value: Union[int, float, str, None]) -> bool:
    try:
      return csv_format.is_eval(value, self._eval_from)
    except ValueError as e:
      raise ValueError(
        f'data.split: {self.column}: {e}; choose a numeric eval_from'
      ) from None

  def __call__(self, records, features: Dict[str, _Feature]) -> np.ndarray:
    del records
    found = {}
    return np.array(
      [
        found[v] if v in found else found.setdefault(v, int(self.is_eval(v)))
        for v in _split_values(features[self.column])
      ],
      np.int64,
    )


class _SplitSummary(beam.CombineFn):
  """Rows with a split value on each side, and the smallest and largest
  value, to refuse a split that leaves a side empty; its inputs are lists
  of split values."""

  def __init__(self, time_split: _TimeSplit):
    self._split = time_split

  def create_accumulator(self):
    return [0, 0, None, None]  # train rows, eval rows, lowest, highest

  def add_input(self, summary, values: List[Union[int, float, str, None]]):
    for value in values:
      if value is None:
        continue  # trains, but makes no train split on its own
      summary[int(self._split.is_eval(value))] += 1
      found = (csv_format.split_order(value), value)
      self._widen(summary, found, found)
    return summary

  @staticmethod
  def _widen(summary, low, high):
    if low is not None and (summary[2] is None or low[0] < summary[2][0]):
      summary[2] = low
    if high is not None and (summary[3] is None or high[0] > summary[3][0]):
      summary[3] = high
    return summary

  def merge_accumulators(self, summaries):
    merged = self.create_accumulator()
    for train, eval_, low, high in summaries:
      merged[0] += train
      merged[1] += eval_
      self._widen(merged, low, high)
    return merged

  def extract_output(self, summary):
    return summary


def _check_time_split(summary, column: str, eval_from: str) -> None:
  """Refuses a time split with an empty side.

  Args:
    summary: `_SplitSummary`'s output: the rows with a value below and at
      or above eval_from, and the lowest and highest value as (order,
      value), or None when no row has one.
    column: the split_by column.
    eval_from: the first value of the eval split.

  Raises:
    ValueError: the column has no value, or no row is on one side.
  """
  train, eval_, low, high = summary
  if low is None:
    raise ValueError(
      f'data.split: column {column} has no value to split by; '
      'name a column with values in data.split.by'
    )
  span = f'its values run from {low[1]} to {high[1]}'
  if not eval_:
    raise ValueError(
      f'data.split: no row has {column} >= {eval_from} '
      f"({span}); choose an eval_from inside the data's range"
    )
  if not train:
    raise ValueError(
      f'data.split: no row has {column} < {eval_from} '
      f'({span}), so none is left to train on; choose an '
      f'eval_from after {low[1]}'
    )


# --- The Beam transforms ---------------------------------------------------


def _slices(
  unit: _Unit, columns: Sequence[str], fmt: csv_format.CsvFormat
) -> Iterable[Tuple[int, Dict[str, _Cells]]]:
  """The unit's rows, a slice at a time: (first row, cells by column)."""
  picked, rows, plain = _unit_columns(unit, columns)
  step = FILE_SLICE_ROWS if set(fmt.files) & set(columns) else SLICE_ROWS
  for first in range(0, rows, step):
    cells = [c.slice(first, step) for c in picked]
    cells = [
      c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in cells
    ]
    yield (
      first,
      {
        name: _Cells(name, c, fmt.null_values, plain)
        for name, c in zip(columns, cells, strict=True)
      },
    )


class _UnitKinds(beam.DoFn):
  """The kinds of a unit's undeclared columns (None: no present cell)."""

  def __init__(self, columns: Sequence[str], fmt: csv_format.CsvFormat):
    self._columns = list(columns)
    self._format = fmt

  def process(self, unit: _Unit) -> Iterable[Dict[str, Optional[str]]]:
    kinds = dict.fromkeys(self._columns)
    for _, cells in _slices(unit, self._columns, self._format):
      for name, column in cells.items():
        if kinds[name] != csv_format.STRING:
          found = column.kind()
          kinds[name] = (
            found
            if kinds[name] is None
            else kinds[name]
            if found is None
            else csv_format.widen(kinds[name], found)
          )
    yield kinds


class _MergeKinds(beam.CombineFn):
  """Each column's kind over all units (STRING when no cell is present)."""

  def __init__(self, columns: Sequence[str]):
    self._columns = list(columns)

  def create_accumulator(self) -> Dict[str, Optional[str]]:
    return dict.fromkeys(self._columns)

  def add_input(self, kinds, found: Dict[str, Optional[str]]):
    return self.merge_accumulators([kinds, found])

  def merge_accumulators(self, accumulators):
    merged = self.create_accumulator()
    for kinds in accumulators:
      for name, kind in kinds.items():
        if kind is not None:
          merged[name] = (
            kind
            if merged[name] is None
            else csv_format.widen(merged[name], kind)
          )
    return merged

  def extract_output(self, kinds) -> Dict[str, str]:
    return {name: kind or csv_format.STRING for name, kind in kinds.items()}


SUMMARY = 'summary'


class _UnitToRecords(beam.DoFn):
  """A unit's rows as serialized tf.Examples by output split, each slice's
  shuffled (seeded by the unit: the same data, the same files).

  Without `temp` folders it yields (split, records) per slice; with them it
  writes each split's rows to one gzipped TFRecord file in that split's
  temp folder, named by the unit so that names sort in file order, and
  yields (split, path). With a time split, each slice's split values also
  go to `SUMMARY`."""

  def __init__(
    self,
    columns: Sequence[str],
    fmt: csv_format.CsvFormat,
    route,
    temp: Optional[Sequence[str]] = None,
  ):
    self._columns = list(columns)
    self._format = fmt
    self._route = route
    self._temp = None if temp is None else list(temp)

  def process(self, unit: _Unit, kinds: Dict[str, str]):
    folder = os.path.dirname(unit.path)
    files = {}
    try:
      for first, cells in _slices(unit, self._columns, self._format):
        features = _features(cells, kinds, self._format.files, folder)
        records = _encode(features)
        splits = self._route(records, features)
        if isinstance(self._route, _TimeSplit):
          yield beam.pvalue.TaggedOutput(
            SUMMARY, _split_values(features[self._route.column])
          )
        rng = np.random.default_rng(
          list(hashlib.sha256(f'{unit.key} {first}'.encode()).digest())
        )
        for split in np.unique(splits).tolist():
          batch = [
            records[i] for i in rng.permutation(np.flatnonzero(splits == split))
          ]
          if self._temp is None:
            yield split, batch
            continue
          if split not in files:
            path = FileSystems.join(self._temp[split], f'{unit.key}.gz')
            files[split] = (
              path,
              FileSystems.create(path, compression_type=CompressionTypes.GZIP),
            )
          files[split][1].write(_tfrecords(batch))
    finally:
      for _, f in files.values():
        f.close()
    for split, (path, _) in sorted(files.items()):
      yield split, path


def _glob(pattern: str) -> List[str]:
  files = sorted(fileio.glob(pattern))
  if not files:
    raise RuntimeError(f'Split pattern {pattern} does not match any files.')
  return files


class _CsvToRecords(beam.PTransform):
  """The CSV files matching `pattern` as _UnitToRecords' output (records,
  or with `temp`, written files); with a time split, also the summary of
  its split values (else None)."""

  def __init__(
    self,
    fmt: csv_format.CsvFormat,
    pattern: str,
    route,
    temp: Optional[Sequence[str]] = None,
  ):
    super().__init__()
    self._format = fmt
    self._pattern = pattern
    self._route = route
    self._temp = temp

  def expand(self, pipeline: beam.Pipeline):
    files = _glob(self._pattern)
    columns = _header(files[0])
    # Every file has the first one's columns (_PlanUnits), so a split column
    # missing here is missing from the data.
    split_by = self._format.split_by
    if split_by is not None and split_by not in columns:
      raise ValueError(
        f'data.split.by names {split_by!r}, which is no column of '
        f'{files[0]}; name one of {", ".join(columns)}'
      )
    units = (
      pipeline
      | 'Files' >> beam.Create(list(enumerate(files)))
      | 'PlanUnits' >> beam.ParDo(_PlanUnits(columns))
      | 'Spread' >> beam.Reshuffle()
    )
    declared = {c: k for c, k in self._format.columns.items() if c in columns}
    undeclared = [
      c for c in columns if c not in declared and c not in self._format.files
    ]
    if not undeclared:
      kinds = beam.pvalue.AsSingleton(
        pipeline | 'DeclaredKinds' >> beam.Create([declared])
      )
    else:
      inferred = (
        units
        | 'UnitKinds' >> beam.ParDo(_UnitKinds(undeclared, self._format))
        | 'InferKinds' >> beam.CombineGlobally(_MergeKinds(undeclared))
      )
      kinds = beam.pvalue.AsSingleton(
        inferred
        | 'WithDeclared' >> beam.Map(lambda found: {**found, **declared})
      )
    outputs = units | 'ToRecords' >> beam.ParDo(
      _UnitToRecords(columns, self._format, self._route, self._temp), kinds
    ).with_outputs(SUMMARY, main='records')
    summary = None
    if isinstance(self._route, _TimeSplit):
      summary = outputs[SUMMARY] | 'SummarizeSplit' >> beam.CombineGlobally(
        _SplitSummary(self._route)
      )
    return outputs.records, summary


@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
class _CsvToExample(beam.PTransform):
  """The CSV files of one split as tf.Examples (TFX's
  GetInputSourceToExamplePTransform; this executor's Do writes batches)."""

  def __init__(self, exec_properties: Dict[str, Any], split_pattern: str):
    super().__init__()
    self._pattern = os.path.join(
      exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern
    )
    self._format = read_format(exec_properties)

  def expand(self, pipeline: beam.Pipeline):
    records, _ = pipeline | 'Records' >> _CsvToRecords(
      self._format, self._pattern, _OneSplit(0)
    )
    return (
      records
      | 'Flatten' >> beam.FlatMap(lambda item: item[1])
      | 'Parse' >> beam.Map(tf.train.Example.FromString)
    )


# --- Writing ---------------------------------------------------------------


def _masked_crc(data: bytes) -> bytes:
  crc = google_crc32c.value(data)
  return struct.pack('<I', ((crc >> 15 | crc << 17) + 0xA282EAD8) & 0xFFFFFFFF)


def _tfrecords(records: Sequence[bytes]) -> bytes:
  """Records framed as a TFRecord file frames them (length, its masked
  crc32c, data, its masked crc32c)."""
  heads, parts = {}, []
  for record in records:
    head = heads.get(len(record))
    if head is None:
      length = struct.pack('<Q', len(record))
      head = heads[len(record)] = length + _masked_crc(length)
    parts += (head, record, _masked_crc(record))
  return b''.join(parts)


def _finalize(
  written: List[Tuple[int, str]], folders: Sequence[str], temp: Sequence[str]
) -> None:
  """Names each split's files as TFX's WriteToTFRecord does
  (data_tfrecord-SSSSS-of-NNNNN.gz, in file order), an empty split one
  empty file as TFX writes it, and removes the temp folders."""
  for split, folder in enumerate(folders):
    paths = sorted(p for s, p in written if s == split)
    names = [
      FileSystems.join(
        folder, f'{_DATA_FILE}-{i:05d}-of-{max(1, len(paths)):05d}.gz'
      )
      for i in range(max(1, len(paths)))
    ]
    if paths:
      FileSystems.rename(paths, names)
    else:
      FileSystems.create(
        names[0], compression_type=CompressionTypes.GZIP
      ).close()
  FileSystems.delete([t for t in temp if FileSystems.exists(t)])


# --- The executor ----------------------------------------------------------


def _configs(
  exec_properties: Dict[str, Any],
) -> Tuple[example_gen_pb2.Input, example_gen_pb2.Output]:
  input_config = example_gen_pb2.Input()
  proto_utils.json_to_proto(
    exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config
  )
  output_config = example_gen_pb2.Output()
  proto_utils.json_to_proto(
    exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config
  )
  return input_config, output_config


def _output_splits(
  fmt: csv_format.CsvFormat,
  input_config: example_gen_pb2.Input,
  output_config: example_gen_pb2.Output,
) -> List[str]:
  """The output splits, in the order of the routes' split indices.

  Raises:
    ValueError: a time split with an output config that does not name the
      splits train and eval, or with more than one input split.
  """
  names = example_gen_utils.generate_output_split_names(
    input_config, output_config
  )
  if fmt.split_by is None:
    return names
  if sorted(names) != sorted(TIME_SPLITS) or len(input_config.splits) != 1:
    raise ValueError(
      f'CsvExampleGen: a time split (split_by {fmt.split_by}) reads one '
      f'input split and writes the splits {" and ".join(TIME_SPLITS)}; '
      f'the configs give {len(input_config.splits)} input split(s) and '
      f'the output splits {", ".join(names)}'
    )
  return list(TIME_SPLITS)


def _output_formats(exec_properties: Dict[str, Any]) -> Tuple[Any, Any]:
  """(output_data_format, output_file_format) as the component was given
  them, checked to be what this ExampleGen writes: tf.Examples in gzipped
  TFRecords."""
  payload = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
  file_format = exec_properties.get(
    standard_component_specs.OUTPUT_FILE_FORMAT_KEY,
    example_gen_pb2.FILE_FORMAT_UNSPECIFIED,
  )
  if payload not in (None, example_gen_pb2.FORMAT_TF_EXAMPLE) or (
    file_format
    not in (
      example_gen_pb2.FILE_FORMAT_UNSPECIFIED,
      example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    )
  ):
    raise ValueError(
      f'CsvExampleGen: output_data_format {payload} and '
      f'output_file_format {file_format}: this ExampleGen writes '
      'tf.Examples in gzipped TFRecords; leave both unset'
    )
  return payload, file_format


def _record_formats(
  examples: List[Any], payload: Any, file_format: Any
) -> None:
  """Marks the Examples artifacts with each format the component was
  given; one not given leaves them unmarked."""
  if payload:
    for output in examples:
      examples_utils.set_payload_format(output, payload)
  if file_format:
    for output in examples:
      examples_utils.set_file_format(
        output, write_split.to_file_format_str(file_format)
      )


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
  """ExampleGen executor over csv_format's rules."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return _CsvToExample

  def _records(
    self,
    pipeline: beam.Pipeline,
    exec_properties: Dict[str, Any],
    temp: Optional[Sequence[str]] = None,
  ) -> Tuple[List[str], beam.pvalue.PCollection]:
    """The output splits' names (`_output_splits`), and `_UnitToRecords`'
    output over all input (`temp`: a folder per split, in that order)."""
    fmt = read_format(exec_properties)
    input_config, output_config = _configs(exec_properties)
    names = _output_splits(fmt, input_config, output_config)
    base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    exec_properties['_beam_pipeline_args'] = self._beam_pipeline_args or []
    patterns = [os.path.join(base, s.pattern) for s in input_config.splits]
    if fmt.split_by is not None:
      routes = [_TimeSplit(fmt.split_by, fmt.eval_from)]
    elif output_config.split_config.splits:
      routes = [_HashSplit(output_config)]
    else:  # each input split is an output split
      routes = [_OneSplit(i) for i in range(len(patterns))]
    outputs = []
    for index, route in enumerate(routes):
      label = f'[{names[index]}]' if len(routes) > 1 else ''
      records, summary = pipeline | f'InputToRecord{label}' >> _CsvToRecords(
        fmt, patterns[index], route, temp
      )
      outputs.append(records)
      if summary is not None:
        _ = summary | 'CheckSplit' >> beam.Map(
          _check_time_split, fmt.split_by, fmt.eval_from
        )
    if len(outputs) == 1:
      return names, outputs[0]
    return names, outputs | 'AllInputs' >> beam.Flatten()

  def GenerateExamplesByBeam(
    self, pipeline: beam.Pipeline, exec_properties: Dict[str, Any]
  ) -> Dict[str, beam.pvalue.PCollection]:
    """TFX's hash-bucket splits, the format's time split when it has one,
    or TFX's input splits.

    Args:
      pipeline: the Beam pipeline.
      exec_properties: the ExampleGen's properties (input and output
        config, input base, custom_config with the CsvFormat).

    Returns:
      Split name -> its serialized tf.Examples.
    """
    names, records = self._records(pipeline, exec_properties)
    sides = records | 'SplitData' >> beam.Partition(
      lambda item, count: item[0], len(names)
    )
    return {
      name: side | f'Records[{name}]' >> beam.FlatMap(lambda item: item[1])
      for name, side in zip(names, sides, strict=True)
    }

  def Do(self, input_dict, output_dict, exec_properties) -> None:
    """Writes each split as gzipped TFRecord files of serialized
    tf.Examples, in TFX's layout (Split-NAME/data_tfrecord-SSSSS-of-NNNNN.gz):
    one file per unit of input, written by the worker that read it.

    TFX's Do hands every row to Beam three times (serialize, shuffle,
    write); here only file names travel between workers.

    Raises:
      ValueError: an output format other than tf.Examples in gzipped
        TFRecord files.
    """
    self._log_startup(input_dict, output_dict, exec_properties)
    payload, file_format = _output_formats(exec_properties)
    input_config, output_config = _configs(exec_properties)
    examples = output_dict[standard_component_specs.EXAMPLES_KEY]
    artifact = artifact_utils.get_single_instance(examples)
    artifact.split_names = artifact_utils.encode_split_names(
      example_gen_utils.generate_output_split_names(input_config, output_config)
    )
    names = _output_splits(
      read_format(exec_properties), input_config, output_config
    )
    folders = [artifact_utils.get_split_uri(examples, n) for n in names]
    # Inside each split's folder, as Beam's file sinks keep theirs.
    temp = [
      FileSystems.join(f, f'beam-temp-{_DATA_FILE}-{uuid.uuid4().hex}')
      for f in folders
    ]
    with self._make_beam_pipeline() as pipeline:
      _, written = self._records(pipeline, exec_properties, temp)
      _ = (
        written
        | 'Written' >> beam.combiners.ToList()
        | 'NameFiles' >> beam.Map(_finalize, folders, temp)
      )
    _record_formats(examples, payload, file_format)


class CsvExampleGen(component.FileBasedExampleGen):
  """TFX's FileBasedExampleGen reading CSV files with this Executor."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

  def __init__(self, fmt: csv_format.CsvFormat, **kwargs):
    super().__init__(custom_config=custom_config(fmt), **kwargs)
