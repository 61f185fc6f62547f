"""The cross-field rules that depend on the task: the classes, the metrics
and their thresholds, the metrics the tuner and early stopping watch, and
the losses (checks.py runs them once the label decides the task)."""

from typing import Mapping

from pipeline.definition.checks_common import check
from pipeline.definition.schema import PipelineSpec
from pipeline.definition.sections import Bounds, Threshold


def check_num_classes(spec: PipelineSpec) -> None:
  check(
    spec.task.classifies or spec.features.num_classes is None,
    spec.source,
    'features.num_classes',
    'a regression label has no classes',
  )


def _check_thresholds(
  spec: PipelineSpec, key: str, thresholds: Mapping[str, Threshold]
) -> None:
  src, task = spec.source, spec.task
  metrics = spec.evaluation.metric_names(task)
  for metric, bound in thresholds.items():
    where = f'{key}.{metric}'
    check(
      metric in metrics,
      src,
      where,
      f'metric {metric!r} is not in evaluation.metrics '
      f'({", ".join(metrics)}); add it there first',
    )
    check(
      isinstance(bound, Bounds) or task.direction(metric) is not None,
      src,
      where,
      f'{metric} has no better direction: give {{lower: .., upper: ..}}',
    )
    if isinstance(bound, Bounds):
      check(
        bound.lower is not None or bound.upper is not None,
        src,
        where,
        'give lower, upper or both',
      )
      if bound.lower is not None and bound.upper is not None:
        check(
          bound.lower <= bound.upper, src, where, 'lower must not exceed upper'
        )


def check_metrics(spec: PipelineSpec) -> None:
  """The metrics, their thresholds and the decision threshold fit the
  task."""
  src, ev, task = spec.source, spec.evaluation, spec.task
  for metric in ev.metric_names(task):
    check(
      metric in task.metrics,
      src,
      'evaluation.metrics',
      f'{metric!r} is not a {task.description} metric; use: '
      f'{", ".join(task.metrics)}',
    )
  _check_thresholds(spec, 'evaluation.thresholds', ev.thresholds)
  for i, gate in enumerate(ev.slice_thresholds):
    _check_thresholds(
      spec, f'evaluation.slice_thresholds.{i}.thresholds', gate.thresholds
    )
  for metric, value in ev.change_thresholds.items():
    _check_thresholds(spec, 'evaluation.change_thresholds', {metric: value})
    check(
      task.direction(metric) is not None,
      src,
      f'evaluation.change_thresholds.{metric}',
      f'{metric} has no better direction; allowed: '
      + ', '.join(m for m in task.metrics if task.direction(m)),
    )
  check(
    ev.decision_threshold == 0.5 or bool(task.thresholded_metrics),
    src,
    'evaluation.decision_threshold',
    f'only a binary label has one (this is {task.description})',
  )


def check_monitors(spec: PipelineSpec) -> None:
  """The tuner's objective and early stopping watch a metric the task
  reports."""
  src, task = spec.source, spec.task
  monitors = task.monitors
  check(
    spec.tuner.objective in monitors,
    src,
    'tuner.objective',
    f'{spec.tuner.objective!r} is not reported for {task.description}; '
    f'allowed: {", ".join(monitors)}',
  )
  early = spec.training.early_stopping
  check(
    early is None or early.monitor in monitors,
    src,
    'training.early_stopping.monitor',
    f'{early and early.monitor!r} is not reported for '
    f'{task.description}; allowed: {", ".join(monitors)}',
  )


def check_losses(spec: PipelineSpec) -> None:
  """Only regression chooses a loss, one loss when the objective is
  val_loss, and only a classifier weighs classes."""
  src, task = spec.source, spec.task
  choices = spec.training.choices()
  check(
    task.losses != () or choices['loss'] == ['mse'],
    src,
    'training.loss',
    f'only regression chooses a loss ({task.description}'
    ' trains by cross-entropy)',
  )
  check(
    len(choices['loss']) == 1 or spec.tuner.objective != 'val_loss',
    src,
    'tuner.objective',
    'val_loss means another thing under each '
    'loss: with a searched training.loss use val_rmse or val_mae',
  )
  check(
    task.classifies or choices['class_weight'] == ['none'],
    src,
    'training.class_weight',
    'only a classification label has classes to weigh',
  )
