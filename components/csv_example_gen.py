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
  differently; features are written in name order;
- with `split_by` and `eval_from` in the format, the rows are split by that
  column's value (`csv_format.is_eval`) into the output config's `train`
  and `eval` splits, whose hash buckets are then not used.

The component is TFX's FileBasedExampleGen with this executor; its node id
stays `CsvExampleGen`.
"""

import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import apache_beam as beam
import numpy as np
import tensorflow as tf
from google.protobuf import any_pb2, wrappers_pb2
from tfx.components.example_gen import base_example_gen_executor, component
from tfx.components.example_gen import utils as example_gen_utils
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components import csv_format

Row = Tuple[str, ...]
# The splits a time split writes, in the order of beam.Partition's outputs.
TIME_SPLITS = ('train', 'eval')


def custom_config(fmt: csv_format.CsvFormat) -> example_gen_pb2.CustomConfig:
  """The ExampleGen's custom_config proto carrying `fmt` as JSON, keys
  sorted: the same format is the same cache key, whatever order the
  columns were found in."""
  packed = any_pb2.Any()
  # Unset options are left out, so a format without a time split has the
  # cache key it would have had before the split options existed.
  packed.Pack(wrappers_pb2.StringValue(value=json.dumps(
      fmt.model_dump(mode='json', exclude_none=True), sort_keys=True)))
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
  """Reads one CSV file; yields its data rows in `columns`' order, the
  cells of `files` columns (paths relative to the CSV file) made
  absolute."""

  def __init__(self, columns: Sequence[str], files: Sequence[str] = (),
               null_values: Sequence[str] = ()):
    self._columns = list(columns)
    self._files = [i for i, c in enumerate(self._columns) if c in files]
    self._nulls = tuple(null_values)

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
      row = [record[i] for i in order]
      for i in self._files:
        if not csv_format.is_missing(row[i], self._nulls):
          row[i] = beam.io.filesystems.FileSystems.join(
              os.path.dirname(path), row[i].strip())
      yield tuple(row)


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

  def __init__(self, columns: Sequence[str], null_values: Sequence[str],
               files: Sequence[str] = ()):
    self._columns = list(columns)
    self._nulls = tuple(null_values)
    self._files = frozenset(files)

  def _file(self, name: str, cell: str) -> tf.train.Feature:
    """A file column's feature: the bytes of the file its cell names."""
    values = []
    if not csv_format.is_missing(cell, self._nulls):
      try:
        with beam.io.filesystems.FileSystems.open(cell) as f:
          values.append(f.read())
      except Exception as e:  # pylint: disable=broad-except
        raise ValueError(f'column {name}: cannot read {cell}: '
                         f'{" ".join(str(e).split())[:200]}') from None
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

  def process(self, row: Row, kinds: Dict[str, str]
              ) -> Iterable[tf.train.Example]:
    features = {}
    for name, cell in sorted(zip(self._columns, row, strict=True)):
      if name in self._files:
        features[name] = self._file(name, cell)
        continue
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
    # Every file has the first one's columns (_ReadRows), so a split column
    # missing here is missing from the data.
    split_by = self._format.split_by
    if split_by is not None and split_by not in columns:
      raise ValueError(
          f'data.split.by names {split_by!r}, which is no column of '
          f'{files[0]}; name one of {", ".join(columns)}')
    rows = (pipeline
            | 'Files' >> beam.Create(files)
            | 'ReadRows' >> beam.ParDo(_ReadRows(
                columns, self._format.files, self._format.null_values)))
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
        _ToExample(columns, self._format.null_values, self._format.files),
        kinds)


def _split_value(example: tf.train.Example, column: str
                 ) -> Union[int, float, str, None]:
  """The example's `column` value as csv_format.value_of reads it."""
  feature = example.features.feature[column]
  kind = feature.WhichOneof('kind')
  values = getattr(feature, kind).value if kind else ()
  if not values:
    return None
  if kind == 'bytes_list':
    return values[0].decode('utf-8')
  if kind == 'float_list':
    # A float32 now: its shortest decimal is the number the CSV wrote (to
    # float32's precision), so a row holding eval_from itself is eval.
    return float(str(np.float32(values[0])))
  return values[0]


class _TimeSplit:
  """Which split a row goes to by its split column's value (train 0,
  eval 1), as beam.Partition's function."""

  def __init__(self, column: str, eval_from: str):
    self.column = column
    self._eval_from = eval_from

  def value(self, example: tf.train.Example) -> Union[int, float, str, None]:
    return _split_value(example, self.column)

  def is_eval(self, value: Union[int, float, str, None]) -> bool:
    try:
      return csv_format.is_eval(value, self._eval_from)
    except ValueError as e:
      raise ValueError(f'data.split: {self.column}: {e}; choose a numeric '
                       'eval_from') from None

  def __call__(self, example: tf.train.Example, num_partitions: int) -> int:
    del num_partitions
    return int(self.is_eval(self.value(example)))


class _SplitSummary(beam.CombineFn):
  """Rows with a split value on each side, and the smallest and largest
  value, to refuse a split that leaves a side empty."""

  def __init__(self, time_split: _TimeSplit):
    self._split = time_split

  def create_accumulator(self):
    return [0, 0, None, None]  # train rows, eval rows, lowest, highest

  def add_input(self, summary, example: tf.train.Example):
    value = self._split.value(example)
    if value is None:
      return summary  # trains, but makes no train split on its own
    summary[int(self._split.is_eval(value))] += 1
    found = (csv_format.split_order(value), value)
    return self._widen(summary, found, found)

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
    raise ValueError(f'data.split: column {column} has no value to split by; '
                     'name a column with values in data.split.by')
  span = f'its values run from {low[1]} to {high[1]}'
  if not eval_:
    raise ValueError(f'data.split: no row has {column} >= {eval_from} '
                     f"({span}); choose an eval_from inside the data's range")
  if not train:
    raise ValueError(f'data.split: no row has {column} < {eval_from} '
                     f'({span}), so none is left to train on; choose an '
                     f'eval_from after {low[1]}')


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
  """ExampleGen executor over csv_format's rules."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return _CsvToExample

  def GenerateExamplesByBeam(
      self, pipeline: beam.Pipeline, exec_properties: Dict[str, Any]
  ) -> Dict[str, beam.pvalue.PCollection]:
    """TFX's hash-bucket splits, or the format's time split when it has one.

    Args:
      pipeline: the Beam pipeline.
      exec_properties: the ExampleGen's properties (input and output
        config, input base, custom_config with the CsvFormat).

    Returns:
      Split name -> its tf.Examples.

    Raises:
      ValueError: a time split with an output config that does not name
        the splits train and eval, or with more than one input split.
    """
    fmt = read_format(exec_properties)
    if fmt.split_by is None:
      return super().GenerateExamplesByBeam(pipeline, exec_properties)
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
        input_config)
    output_config = example_gen_pb2.Output()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY],
        output_config)
    # Do() names the output artifact's splits from the same configs.
    names = example_gen_utils.generate_output_split_names(
        input_config, output_config)
    if sorted(names) != sorted(TIME_SPLITS) or len(input_config.splits) != 1:
      raise ValueError(
          f'CsvExampleGen: a time split (split_by {fmt.split_by}) reads one '
          f'input split and writes the splits {" and ".join(TIME_SPLITS)}; '
          f'the configs give {len(input_config.splits)} input split(s) and '
          f'the output splits {", ".join(names)}')
    exec_properties['_beam_pipeline_args'] = self._beam_pipeline_args or []
    examples = pipeline | 'InputToRecord' >> _CsvToExample(
        exec_properties, input_config.splits[0].pattern)
    time_split = _TimeSplit(fmt.split_by, fmt.eval_from)
    _ = (examples
         | 'SummarizeSplit' >> beam.CombineGlobally(_SplitSummary(time_split))
         | 'CheckSplit' >> beam.Map(_check_time_split, fmt.split_by,
                                    fmt.eval_from))
    sides = examples | 'SplitData' >> beam.Partition(time_split,
                                                     len(TIME_SPLITS))
    return dict(zip(TIME_SPLITS, sides, strict=True))


class CsvExampleGen(component.FileBasedExampleGen):
  """TFX's FileBasedExampleGen reading CSV files with this Executor."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

  def __init__(self, fmt: csv_format.CsvFormat, **kwargs):
    super().__init__(custom_config=custom_config(fmt), **kwargs)
