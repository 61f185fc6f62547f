"""The Evaluator: TFX's, loading the custom ops its models need first.

A gradient boosted trees model needs TF-DF's ops, a BERT-family text
encoder TensorFlow Text's (components/model_ops.py), in every process that
loads it. TFMA loads the model again in Beam's workers; a multi-process
direct runner starts fresh processes that never import those libraries, so
for such a model the Evaluator runs its Beam pipeline in this process
instead (`--direct_running_mode=in_memory`). Node id Evaluator, as
TFX's.
"""

from typing import Any, Dict, List

from tfx.components.evaluator import component as tfx_evaluator
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs
from tfx.utils import path_utils

from components import model_ops

_IN_PROCESS = '--direct_running_mode=in_memory'


def _models(input_dict: Dict[str, List[Any]]) -> List[str]:
  keys = (standard_component_specs.MODEL_KEY,
          standard_component_specs.BASELINE_MODEL_KEY)
  return [path_utils.serving_model_path(model.uri)
          for key in keys for model in input_dict.get(key) or []]


class Executor(evaluator_executor.Executor):
  """TFX's Evaluator executor, with the ops its models need."""

  def Do(self, input_dict, output_dict, exec_properties):
    custom = [model_ops.ensure_ops(path) for path in _models(input_dict)]
    if any(custom):
      self._beam_pipeline_args = [
          _IN_PROCESS if arg.startswith('--direct_running_mode') else arg
          for arg in self._beam_pipeline_args or []]
    return super().Do(input_dict, output_dict, exec_properties)


class Evaluator(tfx_evaluator.Evaluator):
  """TFX's Evaluator with `Executor` (node id Evaluator, as TFX's)."""
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
