"""The schema the spec names: read, and checked against the spec (the
features it names, with types their keys take) and against what a CSV
column can be (one value of INT, FLOAT or BYTES)."""

from typing import Dict, List

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components import csv_format
from modules import kinds as kinds_lib
from modules import tasks
from pipeline.definition.spec import PipelineSpec, is_uri
from pipeline.paths import special_kind
from pipeline.runners.preflight.common import PreflightError, _Files

# The schema's feature types as CSV column kinds.
SCHEMA_KINDS = {
  schema_pb2.INT: csv_format.INT,
  schema_pb2.FLOAT: csv_format.FLOAT,
  schema_pb2.BYTES: csv_format.STRING,
}


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
