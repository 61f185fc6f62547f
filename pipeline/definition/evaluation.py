"""The Evaluator's TFMA config, from a validated spec.

`eval_config(spec)` names the task's or the spec's metrics and slices and
the thresholds that bless a model: `thresholds` and `change_thresholds`
gate the overall slice, `slice_thresholds` the slices they name; with none
of them, the default rule (`PipelineSpec.default_thresholds`).
"""

import json
from typing import Dict, List, Optional, Tuple

import tensorflow_model_analysis as tfma

from modules.config import TRANSFORM_FEATURES_SIGNATURE
from pipeline.definition.spec import (
  Bounds,
  PipelineSpec,
  SliceThreshold,
  Threshold,
)


def _threshold(
  bound: Optional[Threshold], change: Optional[float], direction: Optional[str]
) -> Optional[tfma.MetricThreshold]:
  """A TFMA threshold: absolute bounds and/or a change against the
  baseline (in the metric's better direction)."""
  if bound is None and change is None:
    return None
  threshold = tfma.MetricThreshold()
  if bound is not None:
    if not isinstance(bound, Bounds):
      bound = (
        Bounds(lower=bound) if direction == 'higher' else Bounds(upper=bound)
      )
    value = tfma.GenericValueThreshold()
    if bound.lower is not None:
      value.lower_bound.value = bound.lower
    if bound.upper is not None:
      value.upper_bound.value = bound.upper
    threshold.value_threshold.CopyFrom(value)
  if change is not None:
    higher = direction == 'higher'
    threshold.change_threshold.CopyFrom(
      tfma.GenericChangeThreshold(
        direction=(
          tfma.MetricDirection.HIGHER_IS_BETTER
          if higher
          else tfma.MetricDirection.LOWER_IS_BETTER
        ),
        absolute={'value': change if higher else -change},
      )
    )
  return threshold


def slicing_spec(gate: SliceThreshold) -> tfma.SlicingSpec:
  """`[feature, ...]`: every slice of those features; `{feature: value}`:
  that one slice."""
  if isinstance(gate.slice, dict):
    return tfma.SlicingSpec(
      feature_values={k: str(v) for k, v in gate.slice.items()}
    )
  return tfma.SlicingSpec(feature_keys=list(gate.slice))


def _metric_config(spec: PipelineSpec, name: str) -> tfma.MetricConfig:
  """TFMA's config of the spec's metric `name`: the task's class (from its
  module when it is not TFMA's own), at the decision threshold for the
  metrics that count predicted classes."""
  task = spec.task
  metric = task.metrics[name]
  config = tfma.MetricConfig(
    class_name=metric.tfma_class, module=metric.module or ''
  )
  threshold = spec.evaluation.decision_threshold
  if name in task.thresholded_metrics and threshold != 0.5:
    key = 'threshold' if name == 'accuracy' else 'thresholds'
    config.config = json.dumps(
      {key: threshold if name == 'accuracy' else [threshold]}
    )
  return config


def _slicing_specs(spec: PipelineSpec) -> List[tfma.SlicingSpec]:
  """The overall slice, the spec's slices, then each gated slice not among
  them."""
  slicing_specs = [tfma.SlicingSpec()] + [
    tfma.SlicingSpec(feature_keys=keys) for keys in spec.evaluation.slices
  ]
  for gate in spec.evaluation.slice_thresholds:
    if slicing_spec(gate) not in slicing_specs:
      slicing_specs.append(slicing_spec(gate))
  return slicing_specs


def _overall_gates(
  spec: PipelineSpec,
) -> Tuple[Dict[str, Threshold], Dict[str, float]]:
  """The overall slice's bounds and changes by metric: the spec's, or the
  default rule's (the task's naive baseline beaten on its main metric, and
  no worse than the last blessed model there)."""
  thresholds = dict(spec.evaluation.thresholds)
  changes = dict(spec.evaluation.change_thresholds)
  if spec.evaluation.uses_default_rule:
    thresholds.update(spec.default_thresholds())
    changes[spec.task.main_metric] = 0.0
  return thresholds, changes


def _gated_metric(
  spec: PipelineSpec,
  name: str,
  bound: Optional[Threshold],
  change: Optional[float],
) -> tfma.MetricConfig:
  """Metric `name` with its gates: `bound` and `change` on the overall
  slice, then each slice threshold that names it."""
  config = _metric_config(spec, name)
  direction = spec.task.direction(name)
  overall = _threshold(bound, change, direction)
  if overall is not None:
    config.per_slice_thresholds.append(
      tfma.PerSliceMetricThreshold(
        slicing_specs=[tfma.SlicingSpec()], threshold=overall
      )
    )
  for gate in spec.evaluation.slice_thresholds:
    sliced = gate.thresholds.get(name)
    if sliced is not None:
      config.per_slice_thresholds.append(
        tfma.PerSliceMetricThreshold(
          slicing_specs=[slicing_spec(gate)],
          threshold=_threshold(sliced, None, direction),
        )
      )
  return config


def _model_spec(spec: PipelineSpec) -> tfma.ModelSpec:
  """The project's model is evaluated on the transformed label (its
  `transform_features` signature applies the Transform graph, so a STRING
  label is read through the same vocabulary the model was trained with); a
  module file's model on the raw label and its own output."""
  if spec.uses_module_file('run_fn'):
    return tfma.ModelSpec(
      signature_name='serving_default',
      label_key=spec.features.label,
      prediction_key=spec.evaluation.prediction_key or '',
    )
  # Named here, the model type spares TFMA a trial Keras load_model of the
  # SavedModel to find it out (about 6 s of reviving layers, then loaded
  # again).
  return tfma.ModelSpec(
    model_type='tf_generic',
    signature_name='serving_default',
    label_key=spec.features.transformed_label,
    prediction_key=(spec.evaluation.prediction_key or spec.task.prediction_key),
    preprocessing_function_names=[TRANSFORM_FEATURES_SIGNATURE],
  )


def eval_config(spec: PipelineSpec) -> tfma.EvalConfig:
  """TFMA config: the task's or the spec's metrics and slices; `thresholds`
  and `change_thresholds` gate the overall slice, `slice_thresholds` the
  slices they name. With none of them the default rule gates the overall
  slice: the task's naive baseline beaten on its main metric, and no worse
  than the last blessed model there (`PipelineSpec.default_thresholds`).

  The project's model is evaluated on the transformed label, a module
  file's model on the raw label (`_model_spec`).
  """
  task = spec.task
  names = spec.evaluation.metric_names(task)
  slicing_specs = _slicing_specs(spec)
  thresholds, changes = _overall_gates(spec)
  metrics = [
    _gated_metric(spec, name, thresholds.get(name), changes.get(name))
    for name in names
  ]
  # The run report's pictures: the task's (a confusion matrix, a
  # calibration plot for a binary model).
  metrics += [tfma.MetricConfig(class_name=plot) for plot in task.plots]
  if len(slicing_specs) > 1 and any(m in task.two_class_metrics for m in names):
    # Tells a one-class slice (mean label 0 or 1) from a bad model there.
    metrics.append(tfma.MetricConfig(class_name='MeanLabel'))
  return tfma.EvalConfig(
    model_specs=[_model_spec(spec)],
    slicing_specs=slicing_specs,
    metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
  )
