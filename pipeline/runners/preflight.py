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
import os
from typing import Dict, List, Optional, Tuple

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline.definition.spec import PipelineSpec, is_uri
from pipeline.errors import PipelineError


class PreflightError(PipelineError):
  """Bad input found before running. The message is one line."""


class _Files:
  """Local paths through the standard library; URIs (gs://, s3://) through
  TensorFlow's file system layer, imported only when one is given."""

  def __init__(self, path: str):
    if is_uri(path):
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      gfile = tf.io.gfile
      self.exists, self.isdir, self.listdir = (gfile.exists, gfile.isdir,
                                               gfile.listdir)
      self.join = gfile.join
      self.open = gfile.GFile
    else:
      self.exists, self.isdir, self.listdir = (os.path.exists, os.path.isdir,
                                               os.listdir)
      self.join = os.path.join
      self.open = open

  def read_text(self, path: str) -> str:
    with self.open(path, 'r') as f:
      return f.read()


def csv_files(path: str) -> List[str]:
  """The CSV files ExampleGen will read for `data.csv` (a folder or a file)."""
  fs = _Files(path)
  if not fs.exists(path):
    raise PreflightError(f'{path}: data not found (data.csv in the spec); '
                         'point it at a folder of CSV files or one CSV file')
  if not fs.isdir(path):
    return [path]
  files = sorted(fs.join(path, n) for n in fs.listdir(path)
                 if not fs.isdir(fs.join(path, n)))
  if not files:
    raise PreflightError(f'{path}: the data folder holds no files (data.csv '
                         'in the spec)')
  return files


def load_schema(path: str) -> schema_pb2.Schema:
  fs = _Files(path)
  if not fs.exists(path):
    raise PreflightError(f'{path}: schema file not found (schema in the spec)')
  try:
    return text_format.Parse(fs.read_text(path), schema_pb2.Schema())
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
  reader = csv.reader(io.StringIO(_Files(path).read_text(path)))
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


def locate_base_model(spec: PipelineSpec) -> Optional[str]:
  """Fine-tuning: where the base model is, checked to load and to take the
  spec's transformed features. None when training from scratch.

  Raises:
    PreflightError: no such model, no blessed model of the named pipeline,
      or a model that does not load or fit (one line).
  """
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
          f'{name!r}; run that pipeline first')
    try:
      model = results.latest_blessed_model(lineage.open_store(metadata), name)
    except lineage.LineageError as e:
      raise PreflightError(f'{key}: {e}') from None
    except LookupError:
      raise PreflightError(
          f'{key}: pipeline {name!r} has never run against {metadata}; run its '
          'spec first (it must share runner.metadata)') from None
    if model is None:
      raise PreflightError(
          f'{key}: pipeline {name!r} has no blessed model in {metadata}; '
          'nothing to fine-tune from')
    location = model.uri
  check_base_model(spec, location)
  return location


def run_preflight(spec: PipelineSpec) -> int:
  """All checks; returns the number of data rows. Raises PreflightError."""
  schema = load_schema(spec.schema_file)
  check_features(spec, schema)
  return sum(check_csv(p, schema) for p in csv_files(spec.data.csv))
