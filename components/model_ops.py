"""Custom TensorFlow ops a SavedModel may need before it loads.

A gradient boosted trees model (model.builder gbt, modules/gbt.py) is a
TensorFlow Decision Forests model: its graph runs TF-DF's inference ops,
which a process has only once `tensorflow_decision_forests` is imported.
`ensure_ops(dir)` imports it when the SavedModel in `dir` needs it, and
does nothing (and imports nothing) for any other model, so every loader
calls it: the Evaluator (`Evaluator` below), the model server, the tests.

`Evaluator` is TFX's with that call before it evaluates. TFMA loads the
model again in Beam's workers; a multi-process direct runner starts fresh
processes that never import TF-DF, so for a forest the Evaluator runs its
Beam pipeline in this process instead (`--direct_running_mode=in_memory`).
"""

import os
from typing import Any, Dict, List

from tfx.components.evaluator import component as tfx_evaluator
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs
from tfx.utils import path_utils

# The ops of TF-DF's inference library (tensorflow_decision_forests/
# tensorflow/ops/inference); a SavedModel of a forest names some of them.
FOREST_OPS = ('SimpleMLCreateModelResource', 'SimpleMLInferenceOp',
              'SimpleMLInferenceOpWithHandle',
              'SimpleMLInferenceLeafIndexOpWithHandle',
              'SimpleMLLoadModelFromPath',
              'SimpleMLLoadModelFromPathWithHandle')
_IN_PROCESS = '--direct_running_mode=in_memory'


def uses_forest_ops(saved_model_dir: str) -> bool:
  """Whether the SavedModel in `saved_model_dir` runs TF-DF's ops.

  Reads its saved_model.pb (or .pbtxt) for their names, without parsing
  it or importing TensorFlow (a path with a scheme, e.g. gs://, is read
  through TensorFlow's file system). False when neither file is there: the
  load then says what is wrong.
  """
  for file_name in ('saved_model.pb', 'saved_model.pbtxt'):
    path = os.path.join(saved_model_dir, file_name)
    if '://' in saved_model_dir:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      if not tf.io.gfile.exists(path):
        continue
      with tf.io.gfile.GFile(path, 'rb') as f:
        data = f.read()
    elif os.path.isfile(path):
      with open(path, 'rb') as f:
        data = f.read()
    else:
      continue
    # Every op a graph uses is named in its nodes (and in the op list).
    return any(op.encode() in data for op in FOREST_OPS)
  return False


def ensure_ops(saved_model_dir: str) -> bool:
  """Makes the SavedModel in `saved_model_dir` loadable in this process:
  imports TF-DF (which registers its ops) when the model uses them.
  Returns whether it did."""
  if not uses_forest_ops(saved_model_dir):
    return False
  import tensorflow_decision_forests  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  return True


def _models(input_dict: Dict[str, List[Any]]) -> List[str]:
  keys = (standard_component_specs.MODEL_KEY,
          standard_component_specs.BASELINE_MODEL_KEY)
  return [path_utils.serving_model_path(model.uri)
          for key in keys for model in input_dict.get(key) or []]


class Executor(evaluator_executor.Executor):
  """TFX's Evaluator executor, with the ops its models need."""

  def Do(self, input_dict, output_dict, exec_properties):
    forests = [ensure_ops(path) for path in _models(input_dict)
               if os.path.isdir(path) or '://' in path]
    if any(forests):
      self._beam_pipeline_args = [
          _IN_PROCESS if arg.startswith('--direct_running_mode') else arg
          for arg in self._beam_pipeline_args or []]
    return super().Do(input_dict, output_dict, exec_properties)


class Evaluator(tfx_evaluator.Evaluator):
  """TFX's Evaluator with `Executor` (node id Evaluator, as TFX's)."""
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
