"""CsvExampleGen: TFX's, reading CSV files by components/csv_format.py's rules.

TFX 1.16's CsvExampleGen infers every column's type from the data and knows
no null tokens, so a column whose cells are "NA" where a value is missing
becomes a string column, and a FLOAT column whose values happen to be whole
numbers becomes INT (and then fails ExampleValidator against a schema that
says FLOAT). This one reads the null tokens and the declared column kinds
from its custom config (`csv_format.CsvFormat`, as JSON) and infers only the
columns not declared, by the same rules the pre-flight checks use:

- a missing cell (empty, a null token, NaN) is an absent value;
- each file is read by its own header, so files may order their columns
  differently; features are written in name order.

The component is TFX's FileBasedExampleGen with this executor; its node id
stays `CsvExampleGen`.
"""

import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import tensorflow as tf
from google.protobuf import any_pb2, wrappers_pb2
from tfx.components.example_gen import base_example_gen_executor, component
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components import csv_format

Row = Tuple[str, ...]


def custom_config(fmt: csv_format.CsvFormat) -> example_gen_pb2.CustomConfig:
  """The ExampleGen's custom_config proto carrying `fmt` as JSON, keys
  sorted: the same format is the same cache key, whatever order the
  columns were found in."""
  packed = any_pb2.Any()
  packed.Pack(wrappers_pb2.StringValue(
      value=json.dumps(fmt.model_dump(mode='json'), sort_keys=True)))
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


def _read_file(path: str) -> Tuple[List[str], List[List[str]]]:
  with beam.io.filesystems.FileSystems.open(path) as f:
    data = f.read()
  records = csv_format.rows(csv_format.read_text(data, path))
  header = next(records, None)
  if not header:
    raise ValueError(f'{path}: empty file; expected a header row')
  return [name.strip() for name in header], list(records)


class _ReadRows(beam.DoFn):
  """Reads one CSV file; yields its data rows in `columns`' order."""

  def __init__(self, columns: Sequence[str]):
    self._columns = list(columns)

  def process(self, path: str) -> Iterable[Row]:
    header, records = _read_file(path)
    missing = [c for c in self._columns if c not in header]
    if missing:
      raise ValueError(f'{path}: header lacks column(s) {", ".join(missing)}')
    order = [header.index(c) for c in self._columns]
    for line, record in enumerate(records, start=2):
      if len(record) != len(header):
        raise ValueError(f'{path}: record {line}: {len(record)} fields, '
                         f'expected {len(header)}')
      yield tuple(record[i] for i in order)


class _InferKinds(beam.CombineFn):
  """Each column's kind over its present cells (csv_format's rules)."""

  def __init__(self, columns: Sequence[str], null_values: Sequence[str]):
    self._columns = list(columns)
    self._nulls = tuple(null_values)

  def create_accumulator(self) -> List[Optional[str]]:
    return [None] * len(self._columns)

  def add_input(self, kinds, row: Row):
    for i, cell in enumerate(row):
      if kinds[i] != csv_format.STRING and not csv_format.is_missing(
          cell, self._nulls):
        kinds[i] = csv_format.widen(kinds[i], csv_format.cell_kind(cell))
    return kinds

  def merge_accumulators(self, accumulators):
    merged = self.create_accumulator()
    for kinds in accumulators:
      merged = [k if m is None else csv_format.widen(m, k) if k else m
                for m, k in zip(merged, kinds, strict=True)]
    return merged

  def extract_output(self, kinds) -> Dict[str, str]:
    return {name: kind or csv_format.STRING
            for name, kind in zip(self._columns, kinds, strict=True)}


class _ToExample(beam.DoFn):
  """A row as a tf.Example: present cells typed, missing cells absent."""

  def __init__(self, columns: Sequence[str], null_values: Sequence[str]):
    self._columns = list(columns)
    self._nulls = tuple(null_values)

  def process(self, row: Row, kinds: Dict[str, str]
              ) -> Iterable[tf.train.Example]:
    features = {}
    for name, cell in sorted(zip(self._columns, row, strict=True)):
      kind = kinds[name]
      try:
        value = csv_format.value_of(cell, kind, self._nulls)
      except csv_format.CellError as e:
        raise ValueError(f'column {name}: {e}') from None
      values = [] if value is None else [value]
      if kind == csv_format.INT:
        feature = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
      elif kind == csv_format.FLOAT:
        feature = tf.train.Feature(float_list=tf.train.FloatList(value=values))
      else:
        feature = tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[v.encode('utf-8') for v in values]))
      features[name] = feature
    yield tf.train.Example(features=tf.train.Features(feature=features))


@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
class _CsvToExample(beam.PTransform):
  """The CSV files of one split as tf.Examples."""

  def __init__(self, exec_properties: Dict[str, Any], split_pattern: str):
    super().__init__()
    self._pattern = os.path.join(
        exec_properties[standard_component_specs.INPUT_BASE_KEY],
        split_pattern)
    self._format = read_format(exec_properties)

  def expand(self, pipeline: beam.Pipeline):
    files = sorted(fileio.glob(self._pattern))
    if not files:
      raise RuntimeError(f'Split pattern {self._pattern} does not match any '
                         'files.')
    columns = _read_file(files[0])[0]
    rows = (pipeline
            | 'Files' >> beam.Create(files)
            | 'ReadRows' >> beam.ParDo(_ReadRows(columns)))
    declared = {c: k for c, k in self._format.columns.items() if c in columns}
    if len(declared) == len(columns):
      kinds = beam.pvalue.AsSingleton(
          pipeline | 'DeclaredKinds' >> beam.Create([declared]))
    else:
      inferred = (rows | 'InferKinds' >> beam.CombineGlobally(
          _InferKinds(columns, self._format.null_values)))
      kinds = beam.pvalue.AsSingleton(
          inferred | 'WithDeclared' >> beam.Map(
              lambda found: {**found, **declared}))
    return rows | 'ToExample' >> beam.ParDo(
        _ToExample(columns, self._format.null_values), kinds)


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
  """ExampleGen executor over csv_format's rules."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return _CsvToExample


class CsvExampleGen(component.FileBasedExampleGen):
  """TFX's FileBasedExampleGen reading CSV files with this Executor."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

  def __init__(self, fmt: csv_format.CsvFormat, **kwargs):
    super().__init__(custom_config=custom_config(fmt), **kwargs)
