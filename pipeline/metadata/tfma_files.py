"""The Evaluator's output files, read without TensorFlow.

TFMA writes an evaluation as TFRecord files of its own protos
(`metrics-*`, `plots-*`, `validations-*`). `tfma.load_metrics` reads them,
but importing TFMA imports TensorFlow and Beam (about 6 s here), which the
commands that only read a store (`lineage`, `report`, `ui`) must not pay.
This module reads the TFRecord framing itself and decodes the records with
TFMA's generated proto modules, loaded without running TFMA's package
`__init__` (which is what imports TensorFlow). When TFMA is already
imported in the process (a run), its own modules are used.
"""

import glob
import importlib
import importlib.util
import os
import struct
import sys
import types
from typing import Any, Iterator, List, Optional

_PACKAGE = 'tensorflow_model_analysis'
_PROTOS = ('config_pb2', 'metrics_for_slice_pb2', 'validation_result_pb2')
_loaded: dict = {}


class EvaluationFileError(ValueError):
  """An evaluation file that is not a whole TFRecord file. One line."""


def _protos() -> dict:
  """TFMA's proto modules, by leaf name."""
  if _loaded:
    return _loaded
  if f'{_PACKAGE}.proto' in sys.modules or _PACKAGE in sys.modules:
    for leaf in _PROTOS:
      _loaded[leaf] = importlib.import_module(f'{_PACKAGE}.proto.{leaf}')
    return _loaded
  spec = importlib.util.find_spec(_PACKAGE)  # finds it; runs nothing
  root = os.path.dirname(spec.origin)
  # Package modules that only say where the files are, so that the generated
  # modules' own `from tensorflow_model_analysis.proto import ...` resolve;
  # removed again afterwards, so a later `import tensorflow_model_analysis`
  # loads the real package (protobuf accepts the same file descriptors
  # again).
  for name, path in (
    (_PACKAGE, root),
    (f'{_PACKAGE}.proto', os.path.join(root, 'proto')),
  ):
    hollow = types.ModuleType(name)
    hollow.__path__ = [path]
    sys.modules[name] = hollow
  try:
    for leaf in _PROTOS:
      _loaded[leaf] = importlib.import_module(f'{_PACKAGE}.proto.{leaf}')
  finally:
    for name in [n for n in sys.modules if n.split('.')[0] == _PACKAGE]:
      del sys.modules[name]
  return _loaded


def tfrecords(path: str) -> Iterator[bytes]:
  """The records of one uncompressed TFRecord file (CRCs not checked)."""
  with open(path, 'rb') as f:
    while True:
      header = f.read(12)  # uint64 length, uint32 masked CRC of it
      if not header:
        return
      if len(header) < 12:
        raise EvaluationFileError(
          f'{path}: cut short (a partial record header); re-run the Evaluator'
        )
      (length,) = struct.unpack('<Q', header[:8])
      data = f.read(length)
      if len(data) < length or len(f.read(4)) < 4:
        raise EvaluationFileError(
          f'{path}: cut short (a partial record); re-run the Evaluator'
        )
      yield data


def _files(evaluation_uri: str, prefix: str) -> List[str]:
  return sorted(glob.glob(os.path.join(evaluation_uri, prefix + '*')))


def _read(
  evaluation_uri: str, prefix: str, message: str, module: str
) -> List[Any]:
  cls = getattr(_protos()[module], message)
  result = []
  for path in _files(evaluation_uri, prefix):
    for record in tfrecords(path):
      result.append(cls.FromString(record))
  return result


def load_metrics(evaluation_uri: str) -> List[Any]:
  """Every slice's MetricsForSlice, as `tfma.load_metrics` gives them."""
  return _read(
    evaluation_uri, 'metrics', 'MetricsForSlice', 'metrics_for_slice_pb2'
  )


def load_plots(evaluation_uri: str) -> List[Any]:
  """Every slice's PlotsForSlice (confusion matrices, calibration)."""
  return _read(
    evaluation_uri, 'plots', 'PlotsForSlice', 'metrics_for_slice_pb2'
  )


def load_validation_result(evaluation_uri: str) -> Optional[Any]:
  """The ValidationResult (thresholds met or failed), None when absent."""
  found = _read(
    evaluation_uri, 'validations', 'ValidationResult', 'validation_result_pb2'
  )
  return found[0] if found else None
