"""Every check in order (`run_preflight`), and what they found
(`Preflight`: the spec resolved against the data)."""

import dataclasses
from typing import Dict, List, Optional, Tuple

from tensorflow_metadata.proto.v0 import schema_pb2

from components import csv_format
from modules import kinds as kinds_lib
from pipeline.definition.spec import (
  TFRECORD_FILE_ENDINGS,
  PipelineSpec,
  resolve_spec,
)
from pipeline.runners.preflight.columns import (
  _check_bytes,
  _check_columns,
  _check_names,
  _feature_columns,
  _id_like,
)
from pipeline.runners.preflight.common import PreflightError, _Files
from pipeline.runners.preflight.files import (
  csv_files,
  data_files,
  tfrecord_examples,
)
from pipeline.runners.preflight.labels import _task
from pipeline.runners.preflight.places import check_local_engine, check_paths
from pipeline.runners.preflight.scan import _Scan
from pipeline.runners.preflight.schema import check_features, load_schema


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
