"""Checks that run before the pipeline: the data and schema the spec names.

Everything here is cheap and local, so a wrong column, a mistyped value or an
empty cell is reported as one line naming the file, line and column before
Beam starts, and long before anything could be trained or pushed.
Distribution problems (values out of the schema's range, drift) are left to
ExampleValidator and the AnomaliesGate inside the pipeline.
"""

import csv
import io
import math
from typing import Dict, List, Tuple

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline.spec import PipelineSpec


class PreflightError(ValueError):
  """Bad input found before running. The message is one line."""


def csv_files(path: str) -> List[str]:
  """The CSV files ExampleGen will read for `data.csv` (a folder or a file)."""
  if not tf.io.gfile.exists(path):
    raise PreflightError(f'{path}: data not found (data.csv in the spec); '
                         'point it at a folder of CSV files or one CSV file')
  if not tf.io.gfile.isdir(path):
    return [path]
  files = sorted(tf.io.gfile.join(path, n) for n in tf.io.gfile.listdir(path)
                 if not tf.io.gfile.isdir(tf.io.gfile.join(path, n)))
  if not files:
    raise PreflightError(f'{path}: the data folder holds no files (data.csv '
                         'in the spec)')
  return files


def load_schema(path: str) -> schema_pb2.Schema:
  if not tf.io.gfile.exists(path):
    raise PreflightError(f'{path}: schema file not found (schema in the spec)')
  try:
    return text_format.Parse(tf.io.gfile.GFile(path).read(),
                             schema_pb2.Schema())
  except text_format.ParseError as e:
    raise PreflightError(f'{path}: not a valid schema text proto: {e}') from None


_NUMERIC = (schema_pb2.FLOAT, schema_pb2.INT)
_CATEGORICAL = (schema_pb2.BYTES, schema_pb2.INT)


def check_features(spec: PipelineSpec, schema: schema_pb2.Schema) -> None:
  """The spec's label and features exist in the schema with usable types."""
  by_name = {f.name: f for f in schema.feature}
  where = spec.schema_file
  wanted = [(spec.features.label, 'features.label', (schema_pb2.INT,))]
  wanted += [(k, 'features.numeric', _NUMERIC) for k in spec.features.numeric]
  wanted += [(k, 'features.categorical', _CATEGORICAL)
             for k in spec.features.categorical]
  for name, key, types in wanted:
    if name not in by_name:
      raise PreflightError(f'{where}: {key}: {name!r} is not a feature of the '
                           'schema; add it to the schema or fix the spec')
    if by_name[name].type not in types:
      allowed = ' or '.join(schema_pb2.FeatureType.Name(t) for t in types)
      raise PreflightError(
          f'{where}: {key}: {name!r} has type '
          f'{schema_pb2.FeatureType.Name(by_name[name].type)} in the schema; '
          f'{key} needs {allowed}')
    if not by_name[name].HasField('shape'):
      raise PreflightError(f'{where}: feature {name!r} needs a fixed shape '
                           '(shape { dim { size: 1 } }) for Transform')
  label = by_name[spec.features.label]
  classes = spec.features.num_classes
  if label.HasField('int_domain') and (label.int_domain.min < 0 or
                                       label.int_domain.max >= classes):
    raise PreflightError(
        f'{where}: label {label.name!r} ranges over '
        f'{label.int_domain.min}..{label.int_domain.max} in the schema but '
        f'features.num_classes is {classes} (class indices 0..{classes - 1})')


def _parse(value: str, ftype: int) -> Tuple[bool, float]:
  """(parses, numeric value) of a CSV cell under a schema type."""
  if ftype == schema_pb2.INT:
    try:
      return True, float(int(value))
    except ValueError:
      return False, 0.0
  if ftype == schema_pb2.FLOAT:
    try:
      return True, float(value)
    except ValueError:
      return False, 0.0
  return True, 0.0


def check_csv(path: str, schema: schema_pb2.Schema) -> int:
  """Header equals the schema's features; each cell parses as its type and
  is present (and not NaN) where the schema requires it. Returns row count."""
  features: Dict[str, schema_pb2.Feature] = {f.name: f for f in schema.feature}
  with tf.io.gfile.GFile(path) as f:
    reader = csv.reader(io.StringIO(f.read()))
  header = next(reader, None)
  if not header:
    raise PreflightError(f'{path}: empty file; expected a header row with '
                         f'{", ".join(features)}')
  missing = [n for n in features if n not in header]
  extra = [n for n in header if n not in features]
  if missing or extra:
    parts = []
    if missing:
      parts.append(f'missing column(s) {", ".join(missing)}')
    if extra:
      parts.append(f'column(s) not in the schema {", ".join(extra)}')
    raise PreflightError(f'{path}: header does not match the schema: '
                         f'{"; ".join(parts)}')
  columns = [(i, name, features[name]) for i, name in enumerate(header)]
  rows = 0
  for rows, row in enumerate(reader, start=1):
    line = rows + 1
    if len(row) != len(header):
      raise PreflightError(f'{path}: line {line}: {len(row)} fields, expected '
                           f'{len(header)}')
    for i, name, feature in columns:
      cell = row[i].strip()
      required = feature.presence.min_fraction >= 1.0
      if not cell:
        if required:
          raise PreflightError(
              f'{path}: line {line}, column {name}: empty value, but the '
              'schema requires it (presence min_fraction 1.0); fill or drop '
              'the row')
        continue
      ok, number = _parse(cell, feature.type)
      if not ok:
        raise PreflightError(
            f'{path}: line {line}, column {name}: {cell!r} is not '
            f'{schema_pb2.FeatureType.Name(feature.type)} as the schema says')
      if math.isnan(number) and (required or feature.float_domain.disallow_nan):
        raise PreflightError(
            f'{path}: line {line}, column {name}: NaN, but the schema forbids '
            'missing values; fill or drop the row')
  if rows == 0:
    raise PreflightError(f'{path}: no data rows after the header')
  return rows


def check_base_model(spec: PipelineSpec, location: str) -> None:
  """Fine-tuning: the base model at `location` loads as a Keras model and
  takes the spec's transformed features. Raises PreflightError (one line)."""
  # Imported here: only fine-tuning runs pay for loading Keras.
  from modules import features as features_lib  # pylint: disable=g-import-not-at-top
  from modules import finetune  # pylint: disable=g-import-not-at-top
  from modules import model as model_lib  # pylint: disable=g-import-not-at-top
  inputs = model_lib.ModelInputs(
      numeric=[features_lib.transformed_name(k) for k in spec.features.numeric],
      categorical={features_lib.transformed_name(k): 0
                   for k in spec.features.categorical},
      num_classes=spec.features.num_classes)
  try:
    finetune.load_checked(location, inputs)
  except finetune.BaseModelError as e:
    raise PreflightError(f'{spec.source}: training.base_model: {e}') from None


def run_preflight(spec: PipelineSpec) -> int:
  """All checks; returns the number of data rows. Raises PreflightError."""
  schema = load_schema(spec.schema_file)
  check_features(spec, schema)
  return sum(check_csv(p, schema) for p in csv_files(spec.data.csv))
