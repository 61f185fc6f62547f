"""The spec's `evaluation` section: the TFMA metrics, slices and the gates
that bless a model."""

from typing import Dict, List, Literal, Optional, Union

from pydantic import Field

from modules.config import DecisionSpec
from modules.config import Strict as _Strict
from modules.tasks import Task, metric_names

# Metric names a spec may use, whatever the task (modules/tasks.py says
# which each task computes and which way each is better).
METRICS = metric_names()


class Bounds(_Strict):
  lower: Optional[float] = Field(
    default=None, description='The least value the metric may take.'
  )
  upper: Optional[float] = Field(
    default=None, description='The largest value the metric may take.'
  )


Threshold = Union[float, Bounds]


class SliceThreshold(_Strict):
  """Bounds that gate named slices: `slice` is `{feature: value, ...}` (one
  slice) or `[feature, ...]` (every slice of those features)."""

  slice: Union[Dict[str, Union[str, int, float]], List[str]] = Field(
    description=(
      '{feature: value, ...} for one slice, or [feature, ...] for '
      'every slice of those features.'
    )
  )
  thresholds: Dict[Literal[METRICS], Threshold] = Field(  # type: ignore[valid-type]
    min_length=1,
    description=(
      'Metric to the bound the slice must meet: a number or {lower, upper}.'
    ),
  )

  @property
  def features(self) -> List[str]:
    return list(self.slice)


class EvaluationSpec(DecisionSpec):
  """TFMA settings.

  `metrics`: by default the task's (modules/tasks.py): for a binary label
  example_count, auc, auc_pr, accuracy, precision, recall and calibration;
  for more classes example_count, accuracy and log_loss; for regression
  example_count, rmse, mae and r2. `thresholds`: absolute bounds the
  candidate must meet on the whole eval split (the overall slice; a number
  is a lower bound where higher is better, an upper bound where lower is).
  `change_thresholds`: against the last blessed model, overall, the
  candidate must be better by at least this much in the metric's better
  direction (0.0: no worse; -0.01: at most 0.01 worse). `slice_thresholds`:
  bounds on named slices. With none of the three, the default rule
  blesses: the task's naive baseline beaten on its main metric, and no
  worse than the last blessed model there (`default_rule`).
  `decision_threshold` (binary): the probability from which a row is class
  1, for accuracy, precision, recall and the served class.
  """

  metrics: Optional[List[Literal[METRICS]]] = Field(  # type: ignore[valid-type]
    default=None,
    min_length=1,
    description="The TFMA metrics computed; by default the task's.",
  )
  slices: List[List[str]] = Field(
    default=[],
    description=(
      'Feature lists to slice the metrics by (the overall slice '
      'is always computed).'
    ),
  )
  thresholds: Dict[Literal[METRICS], Union[float, Bounds]] = Field(  # type: ignore[valid-type]
    default={},
    description=(
      'Absolute bounds the candidate must meet on the whole eval '
      'split to be blessed (a number is a lower bound where '
      'higher is better, an upper bound where lower is).'
    ),
  )
  change_thresholds: Dict[Literal[METRICS], float] = Field(  # type: ignore[valid-type]
    default={},
    description=(
      'How much better than the last blessed model the candidate '
      'must be, per metric (0.0: no worse; -0.01: at most 0.01 '
      'worse).'
    ),
  )
  slice_thresholds: List[SliceThreshold] = Field(
    default=[],
    description=(
      'Bounds that gate one slice, or every slice of some features.'
    ),
  )
  # The serving output TFMA reads; by default the project's model's
  # (probability / probabilities), or a module file model's only output.
  prediction_key: Optional[str] = Field(
    default=None,
    description=(
      "The serving output TFMA reads; by default the project's "
      "model's, or a module file model's only output."
    ),
  )

  def metric_names(self, task: Task) -> List[str]:
    """The metrics computed: the spec's, or the task's defaults (with the
    default rule, its main metric too)."""
    names = list(self.metrics or task.default_metrics)
    if self.uses_default_rule and task.main_metric not in names:
      names.append(task.main_metric)
    return names

  @property
  def uses_default_rule(self) -> bool:
    """Whether no threshold is written, so the default rule blesses."""
    return not (
      self.thresholds or self.change_thresholds or self.slice_thresholds
    )
