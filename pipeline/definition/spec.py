"""The declarative pipeline spec: one YAML file per pipeline.

The one import for the rest of the project; each job lives in its own
module beside this one:

- schema.py: `PipelineSpec`, the whole typed spec, and `SpecError`.
- sections.py: the spec's own sections (data, evaluation, push, runner,
  kubeflow); the others are modules/config's. One import for
  sections_data.py (data, split, base model), sections_evaluation.py (the
  TFMA gates) and sections_runner.py (push, runner, kubeflow, resources).
- loading.py: YAML, `--set` overrides, paths, `load_spec`, `resolve_spec`.
- checks.py: every cross-field rule, run in order; the rules are in
  checks_data.py (features, data, split, imputation, slices),
  checks_model.py (search space, builders, encoders, fine-tuning, module
  file), checks_evaluation.py (metrics, thresholds, monitors, losses) and
  checks_runner.py (engines, metadata), sharing checks_common.py.
- maxima.py: the largest value each count may take.
- module_file.py: what a module file defines and reads.
- kubeflow_nodes.py: the Kubeflow node ids a spec names.
- reference.py: docs/spec.md, written from the schema.
"""

from pipeline.definition.kubeflow_nodes import (
  GPU_COMPONENTS,
  KUBEFLOW_COMPONENTS,
  TUNER_WORKER,
  tuner_worker_ids,
)
from pipeline.definition.loading import (
  MAX_SPEC_BYTES,
  load_spec,
  parse_override,
  parse_yaml,
  read_yaml,
  resolve_spec,
  set_dotted,
  spec_from_dict,
)
from pipeline.definition.maxima import MAXIMA
from pipeline.definition.module_file import (
  MODULE_FUNCTIONS,
  STEP_ARGS,
  ModuleFile,
  read_module,
)
from pipeline.definition.schema import PipelineSpec, SpecError, is_uri
from pipeline.definition.sections import (
  KUBEFLOW_TARGETS,
  METRICS,
  TFRECORD_FILE_ENDINGS,
  BaseModelSpec,
  Bounds,
  DataSpec,
  EvaluationSpec,
  GpuSpec,
  KubeflowSpec,
  PushSpec,
  ResourceSpec,
  RunnerSpec,
  SliceThreshold,
  SpecTrainingSpec,
  Threshold,
  TimeSplit,
)

__all__ = [
  'GPU_COMPONENTS',
  'KUBEFLOW_COMPONENTS',
  'TUNER_WORKER',
  'tuner_worker_ids',
  'MAX_SPEC_BYTES',
  'load_spec',
  'parse_override',
  'parse_yaml',
  'read_yaml',
  'resolve_spec',
  'set_dotted',
  'spec_from_dict',
  'MAXIMA',
  'MODULE_FUNCTIONS',
  'STEP_ARGS',
  'ModuleFile',
  'read_module',
  'PipelineSpec',
  'SpecError',
  'is_uri',
  'KUBEFLOW_TARGETS',
  'METRICS',
  'TFRECORD_FILE_ENDINGS',
  'BaseModelSpec',
  'Bounds',
  'DataSpec',
  'EvaluationSpec',
  'GpuSpec',
  'KubeflowSpec',
  'PushSpec',
  'ResourceSpec',
  'RunnerSpec',
  'SliceThreshold',
  'SpecTrainingSpec',
  'Threshold',
  'TimeSplit',
]
