"""Regression metrics TFMA lacks, computed in one pass by a Beam combiner:
`RootMeanSquaredError` (reported as `rmse`) and `R2`, the coefficient of
determination (1 - residual sum of squares / total sum of squares about the
eval split's mean label; TFMA's SquaredPearsonCorrelation is the squared
correlation, which forgives a biased model). The Evaluator finds them by
`MetricConfig(class_name=..., module='modules.tfma_metrics')`.
"""

import dataclasses
import math
from typing import Callable, Iterable, Optional

import apache_beam as beam
from tensorflow_model_analysis.metrics import metric_types, metric_util


@dataclasses.dataclass
class _Sums:
  weight: float = 0.0
  label: float = 0.0
  label_squared: float = 0.0
  residual_squared: float = 0.0


def _rmse(sums: _Sums) -> float:
  if not sums.weight:
    return float('nan')
  return math.sqrt(sums.residual_squared / sums.weight)


def _r2(sums: _Sums) -> float:
  if not sums.weight:
    return float('nan')
  total = sums.label_squared - sums.label**2 / sums.weight
  if total <= 0:  # every label the same: R2 is undefined
    return float('nan')
  return 1.0 - sums.residual_squared / total


class _Combiner(beam.CombineFn):
  """Sums of weights, labels, squared labels and squared residuals."""

  def __init__(
    self,
    key: metric_types.MetricKey,
    eval_config,
    example_weighted: bool,
    result: Callable[[_Sums], float],
  ):
    self._key = key
    self._eval_config = eval_config
    self._example_weighted = example_weighted
    self._result = result

  def create_accumulator(self) -> _Sums:
    return _Sums()

  def add_input(self, sums: _Sums, element) -> _Sums:
    for (
      label,
      prediction,
      weight,
    ) in metric_util.to_label_prediction_example_weight(
      element,
      eval_config=self._eval_config,
      model_name=self._key.model_name,
      output_name=self._key.output_name,
      example_weighted=self._example_weighted,
    ):
      label, prediction, weight = float(label), float(prediction), float(weight)
      sums.weight += weight
      sums.label += weight * label
      sums.label_squared += weight * label**2
      sums.residual_squared += weight * (label - prediction) ** 2
    return sums

  def merge_accumulators(self, accumulators: Iterable[_Sums]) -> _Sums:
    merged = _Sums()
    for sums in accumulators:
      merged.weight += sums.weight
      merged.label += sums.label
      merged.label_squared += sums.label_squared
      merged.residual_squared += sums.residual_squared
    return merged

  def extract_output(self, sums: _Sums):
    return {self._key: self._result(sums)}


def _computations(result: Callable[[_Sums], float]):
  def computations(
    name: str,
    eval_config=None,
    model_name: str = '',
    output_name: str = '',
    sub_key: Optional[metric_types.SubKey] = None,
    aggregation_type=None,
    class_weights=None,
    example_weighted: bool = False,
  ):
    del aggregation_type, class_weights  # one output, a number
    key = metric_types.MetricKey(
      name=name,
      model_name=model_name,
      output_name=output_name,
      sub_key=sub_key,
      example_weighted=example_weighted,
    )
    return [
      metric_types.MetricComputation(
        keys=[key],
        preprocessors=None,
        combiner=_Combiner(key, eval_config, example_weighted, result),
      )
    ]

  return computations


class RootMeanSquaredError(metric_types.Metric):
  """The square root of the mean squared error, as `rmse`."""

  def __init__(self, name: str = 'rmse'):
    super().__init__(
      metric_util.merge_per_key_computations(_computations(_rmse)), name=name
    )


class R2(metric_types.Metric):
  """The coefficient of determination, as `r2` (NaN when every label is
  the same)."""

  def __init__(self, name: str = 'r2'):
    super().__init__(
      metric_util.merge_per_key_computations(_computations(_r2)), name=name
    )


metric_types.register_metric(RootMeanSquaredError)
metric_types.register_metric(R2)
