"""The spec's own sections: what modules/config/ does not define.

The data, where fine-tuning starts from, the TFMA gates, where models are
pushed, and where the pipeline runs (locally and on Kubeflow). The
sections the module callbacks read (features, preprocessing, model, tuner,
training) are modules/config's, so a callback parses the same types.

One import for the models, which live beside this module by subject:
sections_data.py (data, split, base model, the spec's training),
sections_evaluation.py (the TFMA metrics and gates) and sections_runner.py
(push, the local runner, Kubeflow and its resources).
"""

from pipeline.definition.sections_data import (
  NAME_PATTERN,
  TFRECORD_FILE_ENDINGS,
  BaseModelSpec,
  DataSpec,
  SpecTrainingSpec,
  TimeSplit,
)
from pipeline.definition.sections_evaluation import (
  METRICS,
  Bounds,
  EvaluationSpec,
  SliceThreshold,
  Threshold,
)
from pipeline.definition.sections_runner import (
  KUBEFLOW_TARGETS,
  GpuSpec,
  KubeflowSpec,
  PushSpec,
  ResourceSpec,
  RunnerSpec,
)

__all__ = [
  'NAME_PATTERN',
  'TFRECORD_FILE_ENDINGS',
  'BaseModelSpec',
  'DataSpec',
  'SpecTrainingSpec',
  'TimeSplit',
  'METRICS',
  'Bounds',
  'EvaluationSpec',
  'SliceThreshold',
  'Threshold',
  'KUBEFLOW_TARGETS',
  'GpuSpec',
  'KubeflowSpec',
  'PushSpec',
  'ResourceSpec',
  'RunnerSpec',
]
