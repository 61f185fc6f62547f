"""Checks that run before the pipeline: the data and schema the spec names.

Everything here is cheap, local and free of TensorFlow, so a wrong column, a
mistyped value or a missing required cell is reported as one line naming
the file, line and column before Beam starts, and long before anything
could be trained or pushed. The CSV is read by components/csv_format.py's
rules, the ones the pipeline's ExampleGen reads it by, so what passes here
is what the pipeline reads. `validate` runs exactly these checks.

TFRecord data (`data.tfrecord`) is read through TensorFlow, imported only
then (`tfrecord_examples`): each tf.Example's value lists give the column
kinds (int64 INT, float FLOAT, bytes STRING), and a bytes value that is an
encoded image (PNG, JPEG, GIF, BMP, by its first bytes) makes an image
column, recognised as the CSV's image paths are.

The data also decides what a spec may leave out: the number of classes (a
STRING label's distinct names; an INT label's largest index + 1) and, when
no feature is listed, the features (every other column: numbers numeric,
text categorical). `run_preflight` returns the spec with them filled in.

Distribution problems (values out of the schema's domain, drift) are left to
ExampleValidator and the AnomaliesGate inside the pipeline.
"""

import collections
import csv
import dataclasses
import io
import math
import os
import re
from typing import Any, Counter, Dict, Iterator, List, Optional, Tuple

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components import csv_format
from modules import features as features_lib
from modules import kinds as kinds_lib
from modules import tasks
from pipeline.definition.spec import (
  TFRECORD_FILE_ENDINGS,
  PipelineSpec,
  is_uri,
  resolve_spec,
)
from pipeline.engines import registry as engines
from pipeline.errors import PipelineError
from pipeline.metadata import store as metadata_lib
from pipeline.paths import folder_problem, special_kind

# The schema's feature types as CSV column kinds.
SCHEMA_KINDS = {
  schema_pb2.INT: csv_format.INT,
  schema_pb2.FLOAT: csv_format.FLOAT,
  schema_pb2.BYTES: csv_format.STRING,
}
_KIND_NAMES = {
  csv_format.INT: 'INT',
  csv_format.FLOAT: 'FLOAT',
  csv_format.STRING: 'BYTES',
}


class PreflightError(PipelineError):
  """Bad input found before running. The message is one line."""


# A column whose distinct values are at least this share of the rows is
# named by validate and schema: an id, free text or an unparsed date.
ID_LIKE_SHARE = 0.9
# Distinct values are counted up to this many per column (then it is
# certainly id-like on data this size, and counting more costs memory).
DISTINCT_CAP = 1 << 20


@dataclasses.dataclass(frozen=True)
class Preflight:
  """What the checks found: the spec resolved against the data, the number
  of rows, every column's kind (declared by the schema or inferred), the
  label's distinct values, and the features that look like ids (column ->
  distinct values)."""

  spec: PipelineSpec
  rows: int
  column_kinds: Dict[str, str]
  label_values: Tuple = ()
  id_like: Dict[str, int] = dataclasses.field(default_factory=dict)

  def warnings(self) -> List[str]:
    """One line per feature that looks like an id, with what to do."""
    lines = []
    for name, distinct in self.id_like.items():
      kind = kinds_lib.kind_of(self.spec.features, name)
      lines.append(
        f'column {name}: {distinct} distinct values in {self.rows} rows '
        f'({kind.name if kind else "feature"}): an id, free text or a '
        'date in another format? Add it to features.exclude if it '
        'identifies rows, or list it under features.date if it is a date'
      )
    return lines


class _Files:
  """Local paths through the standard library; URIs (gs://, s3://) through
  TensorFlow's file system layer, imported only when one is given."""

  def __init__(self, path: str):
    if is_uri(path):
      import tensorflow as tf  # pylint: disable=g-import-not-at-top

      gfile = tf.io.gfile
      self.exists, self.isdir, self.listdir = (
        gfile.exists,
        gfile.isdir,
        gfile.listdir,
      )
      self.join = gfile.join
      self.open = gfile.GFile
    else:
      self.exists, self.isdir, self.listdir = (
        os.path.exists,
        os.path.isdir,
        os.listdir,
      )
      self.join = os.path.join
      self.open = open

  def read_bytes(self, path: str) -> bytes:
    with self.open(path, 'rb') as f:
      return f.read()


def csv_files(path: str) -> List[str]:
  """The CSV files ExampleGen will read for `data.csv` (a folder or a file)."""
  return data_files(path, 'data.csv')


_DATA_WORDS = {
  'data.csv': 'CSV files or one CSV file',
  'data.tfrecord': 'TFRecord files of tf.Examples or one such file',
}


def data_files(path: str, key: str) -> List[str]:
  """The files ExampleGen will read for the spec's `key` (data.csv or
  data.tfrecord): the files of a folder, or the one file. Each is a
  regular file, and none is an editor's lock or backup file: ExampleGen
  reads every file of the folder, so one it cannot read is named here,
  unread."""
  fs = _Files(path)
  if not fs.exists(path):
    raise PreflightError(
      f'{path}: data not found ({key} in the spec); '
      f'point it at a folder of {_DATA_WORDS[key]}'
    )
  if not fs.isdir(path):
    _check_data_file(path, key)
    return [path]
  files = sorted(
    fs.join(path, n) for n in fs.listdir(path) if not fs.isdir(fs.join(path, n))
  )
  if not files:
    raise PreflightError(
      f'{path}: the data folder holds no files ({key} in the spec)'
    )
  for name in files:
    _check_data_file(name, key, in_folder=True)
  return files


# Files an editor leaves beside the one it has open: LibreOffice's and
# Emacs's locks, Emacs's and vim's backups and auto-saves, Office's owner
# file. ExampleGen would read each as data.
_EDITOR_FILES = re.compile(
  r'^(\.~lock\..*#|\.#.*|#.*#|.*~|\..*\.sw[a-p]|'
  r'~\$.*)$'
)


def _check_data_file(path: str, key: str, in_folder: bool = False) -> None:
  """One file of the data can be read to its end, without reading it: a
  regular file (not a FIFO, which blocks, nor a device such as /dev/zero,
  which never ends), and in a folder, no editor's lock or backup file.

  Raises:
    PreflightError: naming the file and what to do.
  """
  if is_uri(path):
    return
  name = os.path.basename(path)
  folder = os.path.dirname(path)
  if in_folder and _EDITOR_FILES.match(name):
    raise PreflightError(
      f"{folder}: {name[:60]!r} is an editor's lock or backup file, and "
      f'every file of the data folder is read as data ({key}); close the '
      'file in its editor, or move this one out of the folder'
    )
  if os.path.islink(path) and not os.path.exists(path):
    raise PreflightError(
      f'{path}: a broken symbolic link in the data ({key});'
      ' remove it, or point it at a file'
    )
  kind = special_kind(path)
  if kind:
    raise PreflightError(
      f'{path}: {kind} in the data folder ({key}), which ExampleGen would '
      'wait on or read without end; move it out of the folder'
      if in_folder
      else f'{path}: {kind}, not a data file ({key}); name a regular file '
      'or a folder of them'
    )


# A gzip stream's first bytes.
_GZIP_MAGIC = b'\x1f\x8b'


def _gzipped(path: str) -> Optional[bool]:
  """Whether the TFRecord file at `path` is gzipped, told by its first bytes
  and checked against its name; None for an empty file.

  Raises:
    PreflightError: the name does not say the compression.
  """
  fs = _Files(path)
  with fs.open(path, 'rb') as f:
    head = f.read(2)
  if not head:
    return None
  gzipped = head == _GZIP_MAGIC
  if gzipped != path.lower().endswith('.gz'):
    raise PreflightError(
      f'{path}: '
      + (
        'gzipped, but its name does not end in .gz'
        if gzipped
        else 'named .gz, but not gzipped'
      )
      + '; ImportExampleGen tells a gzipped TFRecord file by its name: '
      'rename it'
    )
  return gzipped


def _example(path: str, number: int, record: bytes) -> Any:
  """Record `number` of the file as a tf.Example.

  Raises:
    PreflightError: the record is no tf.Example.
  """
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from google.protobuf import message

  # pylint: enable=g-import-not-at-top
  try:
    example = tf.train.Example.FromString(record)
  except message.DecodeError:
    example = None
  # A record of another message can parse (a tf.SequenceExample's
  # context reads as features): it leaves fields an Example lacks.
  size = example.ByteSize() if example is not None else -1
  if example is not None:
    example.DiscardUnknownFields()
  if example is None or example.ByteSize() != size:
    raise PreflightError(
      f'{path}: record {number} is not a tf.Example; data.tfrecord '
      'names TFRecord files of serialized tf.train.Example protos'
    )
  return example


def tfrecord_examples(path: str) -> Iterator[Tuple[int, Any]]:
  """The tf.Examples of one TFRecord file, numbered from 1. Gzipped or not
  is told by the file's first bytes, and must agree with its name: TFX's
  ImportExampleGen (through Beam) reads a file named .gz as gzipped and
  any other as plain.

  TensorFlow is imported here, so only TFRecord data pays for it.

  Raises:
    PreflightError: a compression the name does not say, not a TFRecord
      file, or a record that is no tf.Example (one line naming the file).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  gzipped = _gzipped(path)
  if gzipped is None:
    return  # an empty shard: no records
  dataset = tf.data.TFRecordDataset(
    path, compression_type='GZIP' if gzipped else ''
  )
  number = 0
  try:
    for record in dataset.as_numpy_iterator():
      number += 1
      yield number, _example(path, number, record)
  except tf.errors.OpError as e:
    # TensorFlow's message without its op's name around it.
    detail = re.sub(r'\{\{.*?\}\}|\[Op:.*', '', str(e.message))
    detail = ' '.join(detail.split())[:200]
    raise PreflightError(
      f'{path}: not a TFRecord file (record {number + 1}: {detail}); '
      'data.tfrecord names TFRecord files of tf.Examples'
    ) from None


def load_schema(path: str) -> schema_pb2.Schema:
  fs = _Files(path)
  if not fs.exists(path):
    raise PreflightError(f'{path}: schema file not found (schema in the spec)')
  kind = None if is_uri(path) else special_kind(path)
  if kind:
    raise PreflightError(
      f'{path}: {kind}, not a schema file (schema in the '
      'spec); name the schema.pbtxt file'
    )
  try:
    text = fs.read_bytes(path).decode('utf-8')
    return text_format.Parse(text, schema_pb2.Schema())
  except (text_format.ParseError, UnicodeDecodeError) as e:
    detail = ' '.join(str(e).split())
    raise PreflightError(
      f'{path}: not a valid schema text proto: {detail}'
    ) from None


def is_optional(feature: schema_pb2.Feature) -> bool:
  """Whether a row may lack a value of `feature`, as TFDV and tf.Transform
  read the schema: a fixed shape means a value in every row; without one, a
  row may lack the feature (presence below 1) or hold an empty value list
  (no value_count minimum of 1), which is how a missing CSV cell arrives
  (components/csv_format.py, as TFX's own CsvExampleGen writes it)."""
  if feature.HasField('shape'):
    return False
  return feature.presence.min_fraction < 1.0 or feature.value_count.min < 1


_NUMERIC = (schema_pb2.FLOAT, schema_pb2.INT)
_LABEL = (schema_pb2.INT, schema_pb2.BYTES)


def _wanted_problems(
  spec: PipelineSpec, by_name: Dict[str, schema_pb2.Feature]
) -> List[str]:
  """The features the spec names that the schema lacks, or types as the
  spec's key cannot take."""
  f = spec.features
  problems = []
  label_types = _LABEL if f.task != tasks.REGRESSION else _NUMERIC
  wanted = [(f.label, 'features.label', label_types)]
  wanted += [
    (
      k,
      f'features.{kind.name}',
      tuple(schema_pb2.FeatureType.Value(t) for t in kind.schema_types),
    )
    for k, kind in kinds_lib.columns(f)
  ]
  wanted += [(k, 'features.exclude', None) for k in f.exclude]
  for name, key, types in wanted:
    if name not in by_name:
      problems.append(
        f'{key}: {name!r} is not a feature of the schema; add '
        'it to the schema or fix the spec'
      )
    elif types and by_name[name].type not in types:
      allowed = ' or '.join(schema_pb2.FeatureType.Name(t) for t in types)
      problems.append(
        f'{key}: {name!r} has type '
        f'{schema_pb2.FeatureType.Name(by_name[name].type)} in the schema; '
        f'{key} needs {allowed}'
      )
  return problems


def _feature_problems(feature: schema_pb2.Feature) -> List[str]:
  """What a schema feature declares that a CSV column cannot be: another
  type, more than one value, a fixed shape that is optional."""
  name = feature.name
  problems = []
  if feature.type not in SCHEMA_KINDS:
    problems.append(
      f'feature {name!r} has type '
      f'{schema_pb2.FeatureType.Name(feature.type)}; CSV data '
      'holds INT, FLOAT or BYTES'
    )
  if feature.HasField('shape') and [d.size for d in feature.shape.dim] != [1]:
    problems.append(
      f'feature {name!r} has shape '
      f'{[d.size for d in feature.shape.dim]}; a CSV column is '
      'one value: shape [1] or value_count {min: 1 max: 1}'
    )
  if feature.HasField('value_count') and feature.value_count.max > 1:
    problems.append(
      f'feature {name!r} has value_count max '
      f'{feature.value_count.max}; a CSV column is one value'
    )
  if (
    feature.HasField('shape')
    and feature.HasField('presence')
    and feature.presence.min_fraction < 1.0
  ):
    problems.append(
      f'feature {name!r} has a fixed shape but presence min_fraction '
      f'{feature.presence.min_fraction:g}: a shaped feature is in every '
      'row for TFDV and tf.Transform; for an optional feature give '
      'value_count {min: 1 max: 1} instead of shape'
    )
  return problems


def schema_problems(spec: PipelineSpec, schema: schema_pb2.Schema) -> List[str]:
  """Every problem of the schema for this spec, each as a short phrase."""
  by_name = {f.name: f for f in schema.feature}
  f = spec.features
  problems = _wanted_problems(spec, by_name)
  for feature in schema.feature:
    problems += _feature_problems(feature)
  label = by_name.get(f.label)
  classes = f.num_classes
  if (
    label is not None
    and classes is not None
    and label.HasField('int_domain')
    and (label.int_domain.min < 0 or label.int_domain.max >= classes)
  ):
    problems.append(
      f'label {label.name!r} ranges over '
      f'{label.int_domain.min}..{label.int_domain.max} in the schema but '
      f'features.num_classes is {classes} (class indices 0..{classes - 1})'
    )
  return problems


def check_features(spec: PipelineSpec, schema: schema_pb2.Schema) -> None:
  """The schema fits the spec: every problem, in one line.

  Raises:
    PreflightError: naming the schema and each problem.
  """
  problems = schema_problems(spec, schema)
  if len(problems) == 1:
    raise PreflightError(f'{spec.schema_file}: {problems[0]}')
  if problems:
    raise PreflightError(
      f'{spec.schema_file}: {len(problems)} problems: '
      + '; '.join(f'({i}) {p}' for i, p in enumerate(problems, start=1))
    )


@dataclasses.dataclass
class _Column:
  kind: Optional[str]  # declared, or None: inferred
  required: bool = False
  disallow_nan: bool = False
  schema_type: str = ''


def _read(path: str) -> Tuple[List[str], 'csv.reader']:
  try:
    text = csv_format.read_text(_Files(path).read_bytes(path), path)
  except UnicodeError as e:
    raise PreflightError(str(e)) from None
  reader = csv.reader(io.StringIO(text, newline=''))
  try:
    header = next(reader, None)
  except csv.Error as e:
    raise PreflightError(f'{path}: line 1: not CSV ({e})') from None
  return [name.strip() for name in header or []], reader


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


def _check_columns(spec: PipelineSpec, scan: _Scan) -> None:
  """Without a schema: the columns the spec names are in the data, with
  usable kinds (by the same inference the ExampleGen makes)."""
  f = spec.features
  kinds = scan.kinds()
  source = spec.data.path
  records = spec.data.format == 'tfrecord'
  named = (
    [(f.label, 'features.label')]
    + [(k, f'features.{kind.name}') for k, kind in kinds_lib.columns(f)]
    + [(k, 'features.exclude') for k in f.exclude]
  )
  for name, key in named:
    if name not in kinds:
      what = (
        'a feature of the tf.Examples (features'
        if records
        else 'a column of the data (columns'
      )
      raise PreflightError(
        f'{source}: {key}: {name!r} is not {what}: {", ".join(kinds)})'
      )
  for name in f.numeric:
    if kinds[name] == csv_format.STRING:
      where, text = scan.first_text.get(name, (f'{source}: column {name}', ''))
      todo = (
        'write it as an int64_list or a float_list'
        if records
        else 'add the token to data.null_values if it means "missing"'
      )
      raise PreflightError(
        f'{where}: {text!r} is not a number, but features.numeric lists '
        f'{name}; {todo}, or make the column categorical'
      )
  for name in f.date:
    if kinds[name] != csv_format.STRING or not scan.looks_like_date(name):
      raise PreflightError(
        f'{source}: features.date: column {name} holds values that are not '
        'ISO-8601 dates (YYYY-MM-DD, or with a time: YYYY-MM-DDTHH:MM:SS); '
        'write them so, or list the column as another kind'
      )


def _check_names(spec: PipelineSpec, source: str) -> None:
  """The label's and every feature's name can name TensorFlow ops and Keras
  inputs (modules/features.py, NAME_PATTERN), checked here because nothing
  else fails before the Transform or the Trainer does. Excluded columns
  are no op's name, so any name does for them.

  Raises:
    PreflightError: naming the file, the column and a name to rename it to.
  """
  f = spec.features
  for name in [f.label, *spec.feature_keys]:
    if features_lib.is_usable_name(name):
      continue
    kind = kinds_lib.kind_of(f, name)
    key = (
      f'features.{kind.name}'
      if name != f.label and kind
      else ('features.label')
    )
    instead = '' if name == f.label else ', or add it to features.exclude'
    raise PreflightError(
      f'{source}: column {name[:40]!r} ({key}): TensorFlow op and Keras '
      'input names take letters, digits, _ . - (not _ or - first): rename '
      f'it (e.g. {features_lib.usable_name(name)[:40]}){instead}'
    )


def _check_bytes(spec: PipelineSpec, scan: _Scan) -> None:
  """tf.Examples' bytes features hold one thing each: encoded images (an
  image column, listed or recognised), or text. Other binary values are
  refused unless excluded: no kind reads them."""
  f = spec.features
  for name in scan.header or []:
    if name == f.label or name in f.exclude:
      continue
    listed = kinds_lib.kind_of(f, name)
    images = scan.image_values.get(name, 0)
    if name in scan.binary:
      raise PreflightError(
        f'{scan.binary[name]}: bytes that are no PNG, JPEG, GIF or BMP '
        'image and no UTF-8 text; add the feature to features.exclude, or '
        'write images or text'
      )
    if images and name in scan.first_text:
      where, text = scan.first_text[name]
      raise PreflightError(
        f'{where}: text ({text[:40]!r}) in a feature that holds encoded '
        'images in other examples; a feature holds images or text'
      )
    if listed is not None and listed.name == 'image' and not images:
      where, text = scan.first_text.get(
        name, (f'{spec.data.path}: feature {name}', '')
      )
      raise PreflightError(
        f'{where}: features.image lists {name}, but it holds text '
        f'({text[:40]!r}), not encoded image bytes (PNG, JPEG, GIF or '
        "BMP); ImportExampleGen reads no files: write each image's bytes "
        'into its tf.Example'
      )
    if listed is not None and listed.name != 'image' and images:
      raise PreflightError(
        f'{spec.data.path}: features.{listed.name}: {name} holds encoded '
        'images; list it under features.image'
      )


def _is_whole(text: str) -> bool:
  return float(text).is_integer()


def _stray_class(
  spec: PipelineSpec, by_index: Counter[int], where: Dict[str, str]
) -> None:
  """Class indices run 0..n-1. One out of features.num_classes, or (with
  no num_classes) one past a class no row holds (0, 1 and a 7: a typo, or
  a code for "unknown"), is the row's fault: it names the first row
  holding it, not the metrics the class count would later upset.

  Raises:
    PreflightError: naming the file, line, column and value.
  """
  f = spec.features
  high = max(by_index)
  declared = f.num_classes
  if declared is not None:
    if high < declared:
      return
    stray = min(i for i in by_index if i >= declared)
    why = (
      f' is out of range for features.num_classes {declared} (indices '
      f'0..{declared - 1}); fix the row, or raise num_classes'
    )
  else:
    present = sorted(by_index)
    # The first class no row holds (indices are >= 0 and distinct), and
    # the one after it: the first past the gap.
    hole = next((i for i, index in enumerate(present) if index != i), None)
    if hole is None:
      return
    stray = present[hole]
    missing = high + 1 - len(present)
    more = missing - (stray - hole)
    gap = (f'{hole}' if stray == hole + 1 else f'{hole}..{stray - 1}') + (
      f' (and {more} more)' if more else ''
    )
    why = (
      f', but no row holds class {gap}, so it would make {high + 1} '
      'classes; fix the row, or set features.num_classes if those '
      'classes have no rows here'
    )
  first = next(
    (at for text, at in where.items() if int(float(text)) == stray),
    spec.data.path,
  )
  raise PreflightError(
    f'{first}, column {f.label} (features.label): class {stray}{why}'
  )


def _implied_task(
  key: str, max_classes: int, kind: str, counts: Counter[str]
) -> str:
  """The task the label's values imply when the spec names none: regression
  for numbers that are not all whole, else classification (refused for more
  distinct numbers than `max_classes`)."""
  if kind == csv_format.FLOAT and not all(map(_is_whole, counts)):
    return tasks.REGRESSION
  if kind in (csv_format.INT, csv_format.FLOAT) and tasks.too_many_classes(
    len(counts), max_classes
  ):
    raise PreflightError(
      f'{key}: {len(counts)} distinct numbers, more than '
      f'features.max_classes ({max_classes}): set features.task: '
      'regression (or raise max_classes if they are classes)'
    )
  return tasks.CLASSIFICATION


def _class_indices(
  spec: PipelineSpec,
  key: str,
  counts: Counter[str],
  where: Optional[Dict[str, str]],
) -> Counter[int]:
  """A numeric label's rows by class index, checked: no negative index, no
  stray class among the others."""
  by_index = collections.Counter()
  for text, count in counts.items():
    by_index[int(float(text))] += count
  low = min(by_index)
  if low < 0:
    raise PreflightError(
      f'{key}: class index {low} is negative; class indices run 0..n-1'
    )
  _stray_class(spec, by_index, where or {})
  return by_index


def _classification(
  spec: PipelineSpec,
  key: str,
  kind: str,
  counts: Counter[str],
  where: Optional[Dict[str, str]],
) -> Tuple[int, Counter[int]]:
  """The number of classes the label's values imply for classification,
  checked against the spec, and the label's rows by class index."""
  f = spec.features
  numbers = kind in (csv_format.INT, csv_format.FLOAT)
  if kind == csv_format.FLOAT and not all(map(_is_whole, counts)):
    raise PreflightError(
      f'{key}: holds numbers that are not whole, but '
      'features.task is classification: class indices are '
      'whole numbers (or set features.task: regression)'
    )
  if numbers:
    by_index = _class_indices(spec, key, counts, where)
    found = max(by_index) + 1
  else:
    found = len(counts)
  problem = tasks.classes_problem(f.num_classes, found, indices=numbers)
  if problem:
    raise PreflightError(f'{key}: {problem}')
  if not numbers:
    # Class ids are given by frequency (the Transform's vocabulary).
    by_index = collections.Counter(
      {i: c for i, (_, c) in enumerate(counts.most_common())}
    )
  classes = f.num_classes if f.num_classes is not None else found
  if classes < 2:
    raise PreflightError(
      f'{key}: only one class '
      f'({", ".join(map(str, sorted(counts)))}); a '
      'classifier needs two or more'
    )
  if tasks.too_many_classes(found, f.max_classes) and f.task is None:
    raise PreflightError(
      f'{key}: {found} classes, more than features.max_classes '
      f'({f.max_classes}): raise it, or set features.task'
    )
  return classes, by_index


def _task(
  spec: PipelineSpec,
  kind: str,
  counts: Counter[str],
  where: Optional[Dict[str, str]] = None,
) -> Tuple[str, Optional[int], tasks.LabelStats]:
  """The task, the number of classes and the label's statistics that the
  label's values imply (`where`: each value's first row), checked against
  what the spec says."""
  f, source = spec.features, spec.data.path
  key = f'{source}: column {f.label} (features.label)'
  task = f.task
  numbers = kind in (csv_format.INT, csv_format.FLOAT)
  if task is None:
    task = _implied_task(key, f.max_classes, kind, counts)
  if task == tasks.REGRESSION:
    if not numbers:
      first = next(iter(counts), '')
      raise PreflightError(
        f'{key}: {first!r} is not a number, but features.task is regression'
      )
    return (
      task,
      None,
      _label_stats(f, task, None, {float(v): c for v, c in counts.items()}),
    )
  classes, by_index = _classification(spec, key, kind, counts, where)
  return task, classes, _label_stats(f, task, classes, by_index)


def _label_stats(
  features, task: str, classes: Optional[int], values: Dict[Any, int]
) -> tasks.LabelStats:
  """The task's own statistics of the label's `values` (value or class
  index -> rows)."""
  resolved = features.model_copy(update={'task': task, 'num_classes': classes})
  return tasks.task_for(resolved).label_stats(values)


def _writable_folder(
  path: str, key: str, spec: PipelineSpec, named: Optional[str] = None
) -> None:
  """`path` is (or can be made) a folder this process can write in; `named`
  is the path the spec names, when it is a file inside `path`."""
  problem = folder_problem(path)
  if problem:
    raise PreflightError(f'{spec.source}: {key}: {named or path}: {problem}')


def check_paths(spec: PipelineSpec) -> None:
  """Every local path in the spec is what it must be, before anything runs:
  the schema a readable file; the pipeline root and the push destination
  folders that can be written; a SQLite store a file in such a folder.

  Raises:
    PreflightError: naming the key and the path.
  """
  if spec.schema_file and not is_uri(spec.schema_file):
    if os.path.isdir(spec.schema_file):
      raise PreflightError(
        f'{spec.source}: schema: {spec.schema_file} is a '
        'folder; name the schema.pbtxt file'
      )
    if os.path.exists(spec.schema_file) and not os.access(
      spec.schema_file, os.R_OK
    ):
      raise PreflightError(
        f'{spec.source}: schema: {spec.schema_file} cannot be read'
      )
  for key, path in (
    ('runner.pipeline_root', spec.runner.pipeline_root),
    ('push.destination', spec.push.destination),
  ):
    if not is_uri(path):
      _writable_folder(path, key, spec)
  metadata = spec.runner.metadata
  if not is_uri(metadata):
    if os.path.isdir(metadata):
      raise PreflightError(
        f'{spec.source}: runner.metadata: {metadata} is a '
        'folder; name the SQLite file inside it'
      )
    if os.path.exists(metadata) and not os.access(metadata, os.R_OK | os.W_OK):
      raise PreflightError(
        f'{spec.source}: runner.metadata: {metadata} is not '
        'writable; make it writable, or name another '
        'store'
      )
    _writable_folder(
      os.path.dirname(os.path.abspath(metadata)),
      'runner.metadata',
      spec,
      named=metadata,
    )
  check_store(spec)


def check_store(spec: PipelineSpec) -> None:
  """The store can take a run and records what the pipeline root holds:
  read, never written, so `validate` runs it as `run` does.

  TFX names an output folder `<root>/<component>/<output>/<execution id>`,
  with ids that the store hands out from 1. A root kept when its store was
  deleted or replaced holds folders of ids the store has not handed out
  yet: the next run would write its outputs over them, then fail. The run
  lock and the summaries folder hold no such folder.

  Raises:
    PreflightError: naming the store or the root, and what to do.
  """
  metadata = spec.runner.metadata
  try:
    newest = metadata_lib.check_writable(metadata)
  except metadata_lib.MetadataError as e:
    raise PreflightError(str(e)) from None
  root = spec.runner.pipeline_root
  if newest is None or is_uri(root):
    return
  unrecorded = sorted({i for i in _output_ids(root) if i > newest})
  if unrecorded:
    ids = (
      f'execution {unrecorded[0]}'
      if len(unrecorded) == 1
      else f'executions {unrecorded[0]} to {unrecorded[-1]}'
    )
    raise PreflightError(
      f'{root}: holds outputs of {ids}, which {metadata} does not record; '
      'restore that metadata store, or remove or rename the pipeline root'
    )


def _output_ids(root: str) -> List[int]:
  """The execution ids of the output folders under a local pipeline root
  (also `<component>/.system/executor_execution/<id>`)."""
  ids = []
  for component in _folders(root):
    for output in _folders(component):
      if os.path.basename(output) == '.system':
        output = os.path.join(output, 'executor_execution')
      ids.extend(
        int(os.path.basename(folder))
        for folder in _folders(output)
        if os.path.basename(folder).isdigit()
      )
  return ids


def _folders(path: str) -> List[str]:
  try:
    with os.scandir(path) as entries:
      return [e.path for e in entries if e.is_dir(follow_symlinks=False)]
  except (FileNotFoundError, NotADirectoryError):
    return []


def _scan_tfrecords(spec: PipelineSpec, scan: _Scan) -> None:
  """Every tf.Example of data.tfrecord into `scan`. The path names one file
  or a folder by its name (`DataSpec.single_file`: the pipeline decides so
  without reading it), which must agree with what it is."""
  path = spec.data.tfrecord
  key = f'{spec.source}: data.tfrecord: {path}'
  endings = ', '.join(TFRECORD_FILE_ENDINGS)
  files = data_files(path, 'data.tfrecord')
  folder = _Files(path).isdir(path)
  if spec.data.single_file and folder:
    raise PreflightError(
      f'{key}: a folder, but named as a file ({endings}); rename the folder'
    )
  if not spec.data.single_file and not folder:
    raise PreflightError(
      f'{key}: one file, but not named {endings}; rename it, or give its folder'
    )
  for name in files:
    for number, example in tfrecord_examples(name):
      scan.example(name, number, example)
  if not scan.rows:
    raise PreflightError(
      f'{path}: no tf.Example in the TFRecord files (data.tfrecord in the spec)'
    )
  scan.records_done()


def check_local_engine(spec: PipelineSpec) -> None:
  """The engine can take the Beam jobs now (Java, its jars, a master that
  answers): one line naming what to do, before anything runs."""
  problem = engines.get(spec.runner.engine).problem(spec.runner.options())
  if problem:
    raise PreflightError(
      f'{spec.source}: runner.engine {spec.runner.engine}: {problem}'
    )


def _scan_data(
  spec: PipelineSpec, schema: Optional[schema_pb2.Schema]
) -> _Scan:
  """Every row of the data through the checks (against the schema, when
  the spec gives one), then the checks of its columns as a whole."""
  scan = _Scan(schema, spec.data.null_values, spec.features.label)
  if spec.data.format == 'tfrecord':
    _scan_tfrecords(spec, scan)
  else:
    for path in csv_files(spec.data.csv):
      scan.file(path)
  if schema is None:
    _check_columns(spec, scan)
  if spec.data.format == 'tfrecord':
    _check_bytes(spec, scan)
  return scan


def _feature_columns(
  spec: PipelineSpec, scan: _Scan, kinds: Dict[str, str]
) -> Dict[str, List[str]]:
  """Each column but the label and the excluded, by the kind recognised
  from its values: kind name -> columns, in the data's order."""
  label = spec.features.label
  others = [
    c
    for c in scan.header or []
    if c != label and c not in spec.features.exclude
  ]
  columns: Dict[str, List[str]] = {}
  for name in others:
    kind = kinds_lib.recognise(scan.facts(name, kinds[name]))
    columns.setdefault(kind.name, []).append(name)
  return columns


def _id_like(resolved: PipelineSpec, scan: _Scan) -> Dict[str, int]:
  """The features with a distinct value in nearly every row (ID_LIKE_SHARE),
  as an id column has: name -> distinct values."""
  # A date, a text or an image is expected to take a value per row.
  expected_distinct = set(
    resolved.features.date + resolved.features.text + resolved.features.image
  )
  return {
    name: len(scan.distinct[name])
    for name in resolved.feature_keys
    if scan.rows
    and name not in expected_distinct
    and len(scan.distinct.get(name, ())) >= ID_LIKE_SHARE * scan.rows
  }


def run_preflight(spec: PipelineSpec, check_engine: bool = True) -> Preflight:
  """All checks, and the spec resolved against the data (`check_engine`:
  whether runner.engine must be reachable from here: not when compiling for
  a cluster that has its own).

  Raises:
    PreflightError: the first problem with the data, or every problem of the
      schema, in one line.
  """
  check_paths(spec)
  if check_engine:
    check_local_engine(spec)
  schema = None
  if spec.schema_file:
    schema = load_schema(spec.schema_file)
    check_features(spec, schema)
  scan = _scan_data(spec, schema)
  kinds = scan.kinds()
  label = spec.features.label
  if spec.uses_module_file('run_fn') and kinds[label] == csv_format.STRING:
    raise PreflightError(
      f"{spec.source}: module_file: its run_fn's model is evaluated on the "
      f'raw label, and {label} holds class names; give class indices (INT) '
      "or use the project's run_fn, which maps names through the Transform"
    )
  task, classes, stats = _task(
    spec, kinds[label], scan.label_counts, scan.label_where
  )
  columns = _feature_columns(spec, scan, kinds)
  resolved = resolve_spec(spec, task, classes, columns, stats)
  _check_names(resolved, scan.header_file or spec.data.path)
  if schema is not None:
    check_features(resolved, schema)
  return Preflight(
    spec=resolved,
    rows=scan.rows,
    column_kinds=kinds,
    label_values=tuple(sorted(scan.label_counts, key=str)),
    id_like=_id_like(resolved, scan),
  )


def check_csv(
  path: str,
  schema: schema_pb2.Schema,
  null_values=csv_format.DEFAULT_NULL_VALUES,
) -> int:
  """One CSV file against a schema (types, presence); returns its rows."""
  return _Scan(schema, null_values).file(path)


def check_base_model(spec: PipelineSpec, location: str) -> None:
  """Fine-tuning: the base model at `location` loads as a Keras model and
  takes the spec's transformed features. Raises PreflightError (one line)."""
  # Imported here: only fine-tuning runs pay for loading Keras.
  # pylint: disable=g-import-not-at-top
  from modules import finetune
  from modules import model as model_lib
  from modules.config import TransformConfig

  # pylint: enable=g-import-not-at-top
  config = spec.module_config(TransformConfig)
  inputs = model_lib.ModelInputs(
    numeric=config.numeric_inputs(),
    categorical={name: 0 for name in config.id_inputs()},
    task=config.task,
  )
  try:
    finetune.load_checked(location, inputs)
  except finetune.BaseModelError as e:
    raise PreflightError(f'{spec.source}: training.base_model: {e}') from None


def check_encoder(spec: PipelineSpec) -> Optional[str]:
  """The spec's pretrained encoder: located, loaded and checked to fit its
  column (model.encoders). Returns its location (None: Keras's imagenet
  download). Raises PreflightError (one line)."""
  # Imported here: only a spec with a pretrained encoder pays for Keras.
  # pylint: disable=g-import-not-at-top
  from modules import encoders
  from modules.config import TransformConfig

  # pylint: enable=g-import-not-at-top
  ((column, encoder),) = spec.model.pretrained().items()
  kind = kinds_lib.kind_of(spec.features, column)
  if kind is None or not kind.encoded:
    raise PreflightError(
      f'{spec.source}: model.encoders.{column}: {column!r} is no text or '
      'image column of the data; list it under features.text or '
      'features.image'
    )
  try:
    location = encoders.locate(column, kind.name, encoder)
    if location == 'imagenet':
      return None
    config = spec.module_config(TransformConfig)
    prep = config.preprocessing
    encoders.load(
      encoders.EncodedColumn(
        column=column,
        kind=kind.name,
        pretrained=encoder,
        location=location,
        image_size=encoders.image_size_for(prep.image_size, True),
      )
    )
  except encoders.EncoderError as e:
    raise PreflightError(f'{spec.source}: {e}') from None
  return location


def locate_base_model(spec: PipelineSpec) -> Optional[str]:
  """Fine-tuning: where the base model is, checked to load and to take the
  spec's transformed features. None when training from scratch.

  With a pretrained encoder (model.encoders), in either training mode:
  where the encoder is, checked to load and fit its column (the pipeline
  imports it through the same channel, so lineage reaches it); None for
  a tf_keras application's `imagenet` weights, which Keras downloads.

  Raises:
    PreflightError: no such model, no blessed model of the named pipeline,
      or a model that does not load or fit (one line).
  """
  if spec.model.pretrained():
    return check_encoder(spec)
  if spec.training.mode != 'finetune':
    return None
  # pylint: disable=g-import-not-at-top
  from pipeline.metadata import lineage, results
  from pipeline.metadata import store as metadata_lib

  # pylint: enable=g-import-not-at-top
  base = spec.training.base_model
  location = base.path
  if not location:
    key = f'{spec.source}: training.base_model.latest_blessed'
    name, metadata = base.latest_blessed, spec.runner.metadata
    if not metadata_lib.exists(metadata):
      raise PreflightError(
        f'{key}: no metadata store at {metadata} yet, so no blessed model of '
        f'{name!r}; run that pipeline first'
      )
    try:
      model = results.latest_blessed_model(lineage.open_store(metadata), name)
    except lineage.LineageError as e:
      raise PreflightError(f'{key}: {e}') from None
    except LookupError:
      raise PreflightError(
        f'{key}: pipeline {name!r} has never run against {metadata}; run its '
        'spec first (it must share runner.metadata)'
      ) from None
    if model is None:
      raise PreflightError(
        f'{key}: pipeline {name!r} has no blessed model in {metadata}; '
        'nothing to fine-tune from'
      )
    location = model.uri
  check_base_model(spec, location)
  return location
