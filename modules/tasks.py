"""The task registry: what the model predicts, and everything that follows.

A task (binary classification, multiclass classification, regression) is
the one place that knows how its label is read, what the model's head and
loss are, which Keras metrics training reports and which way each is
better, what TFMA computes, what "learned nothing" scores (the naive
baseline the Tuner and the default blessing compare against), what the
served model answers and which pictures the report draws. The rest of the
code asks the task; nothing else compares a task's name or a class count.

`task_for(features)` picks the task of a resolved `features` section. No
TensorFlow at import: the spec and the pre-flight checks read the tables;
the methods that build Keras objects import it when called.
"""

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

CLASSIFICATION = 'classification'
REGRESSION = 'regression'
TASK_KINDS = (CLASSIFICATION, REGRESSION)  # features.task
DEFAULT_MAX_CLASSES = 50  # features.max_classes

# The exported model's outputs (modules/train.py), read by the evaluation
# config and the serving tools.
PROBABILITY = 'probability'  # binary: P(class 1), [batch, 1]
PROBABILITIES = 'probabilities'  # multiclass: [batch, classes]
PREDICTION = 'prediction'  # regression: the predicted number, [batch, 1]
CLASS_ID = 'class_id'  # classification: the predicted class index
CLASS_NAME = 'class_name'  # a STRING label's name of the predicted class

LOSSES = ('mse', 'mae', 'huber')  # training.loss, regression
CLASS_WEIGHT_MODES = ('none', 'balanced')  # training.class_weight keywords


@dataclasses.dataclass(frozen=True)
class Metric:
  """A metric a spec may name: TFMA's class (in `module` when it is not
  TFMA's own), the name TFMA reports it by, and which way is better (None:
  neither, e.g. calibration, best at 1)."""

  tfma_class: str
  tfma_name: str
  better: Optional[str]
  module: Optional[str] = None


# This project's TFMA metrics (modules/tfma_metrics.py).
_OWN = 'modules.tfma_metrics'


@dataclasses.dataclass(frozen=True)
class LabelStats:
  """What the pre-flight scan saw of the label over all rows: each class's
  count (classification, by class index) or the mean and standard
  deviation (regression). The default blessing's naive baseline comes from
  them."""

  rows: int = 0
  class_counts: Tuple[int, ...] = ()
  mean: float = 0.0
  std: float = 0.0


class Task:
  """One kind of prediction. Subclasses fill in the tables and methods."""

  name: str = ''
  metrics: Mapping[str, Metric] = {}
  default_metrics: Tuple[str, ...] = ()
  main_metric: str = ''  # what the default blessing compares
  monitors: Mapping[str, str] = {}  # Keras monitor -> 'min' | 'max'
  prediction_key: str = ''
  losses: Tuple[str, ...] = ()  # training.loss choices
  plots: Tuple[str, ...] = ()  # TFMA plots for the report
  # Metrics that need both classes in a slice (undefined with one).
  two_class_metrics: Tuple[str, ...] = ()
  # Metrics that count predictions above evaluation.decision_threshold (a
  # task without them has no decision threshold).
  thresholded_metrics: Tuple[str, ...] = ()
  # The label is standardised for training (and restored when serving).
  standardises_label: bool = False
  classifies: bool = True
  # The label's tf.Transform graph: modules/preprocessing.py's
  # LABEL_TRANSFORMS entry ('class': class indices, 'number': a number).
  label_transform: str = 'class'
  # The Trainer writes eval rows' labels and predictions for the report's
  # predicted-against-actual and residual charts (modules/train.py).
  reports_predictions: bool = False

  def __init__(self, num_classes: Optional[int] = None):
    self.num_classes = num_classes

  def __repr__(self) -> str:
    return f'{type(self).__name__}({self.num_classes})'

  def __eq__(self, other) -> bool:
    return type(self) is type(other) and self.num_classes == other.num_classes

  def __hash__(self) -> int:
    return hash((type(self), self.num_classes))

  @property
  def description(self) -> str:
    """How validate and messages name the task."""
    return self.name

  def direction(self, metric: str) -> Optional[str]:
    return self.metrics[metric].better

  # Keras ---------------------------------------------------------------
  def head(self, x):
    """The output layer over the last hidden tensor `x`."""
    raise NotImplementedError

  def loss(self, name: Optional[str] = None):
    """The Keras loss (`name`: training.loss, for tasks that offer one)."""
    raise NotImplementedError

  def keras_metrics(self) -> List[Any]:
    """Keras metrics named as `monitors` names them, less the `val_`."""
    raise NotImplementedError

  def serving_outputs(
    self,
    output,
    class_names=None,
    decision_threshold: float = 0.5,
    label_scale: Tuple[float, float] = (0.0, 1.0),
  ) -> Dict[str, Any]:
    """What the served model answers for the model's `output` (in the
    serving graph): `class_names` (a STRING label's, by index) adds
    CLASS_NAME; `label_scale` (mean, std) restores a standardised label."""
    raise NotImplementedError

  # Naive baselines -----------------------------------------------------
  def naive_score(
    self,
    monitor: str,
    train_labels: Sequence[float],
    eval_labels: Sequence[float],
    loss: Optional[str] = None,
  ) -> float:
    """What predicting without the features scores on the eval split by
    Keras monitor `monitor` (the Tuner's "learned nothing" line)."""
    raise NotImplementedError

  def naive_thresholds(self, stats: LabelStats) -> Dict[str, float]:
    """The default blessing's absolute bounds: metric -> the value the
    model must beat (higher or lower by the metric's direction)."""
    raise NotImplementedError

  def naive_rule(self, stats: LabelStats) -> str:
    """The default blessing rule in words, for validate and the report."""
    bounds = self.naive_thresholds(stats)
    parts = [
      f'{m} {">" if self.direction(m) == "higher" else "<"} {v:.4g}'
      for m, v in bounds.items()
    ]
    return (
      f'{" and ".join(parts)} ({self.naive_words}), and '
      f"{self.main_metric} no worse than the last blessed model's"
    )

  naive_words = ''

  def label_stats(self, values: Mapping[Any, int]) -> LabelStats:
    """The label's statistics from `values` (value -> rows), for the
    default rule's naive baseline."""
    raise NotImplementedError


class _Classification(Task):
  losses = ()
  naive_words = 'the majority class'

  def label_stats(self, values: Mapping[Any, int]) -> LabelStats:
    """Each class's rows, by class index (`values`: index -> rows)."""
    counts = [0] * int(self.num_classes or 0)
    for index, count in values.items():
      if 0 <= int(index) < len(counts):
        counts[int(index)] += count
    return LabelStats(rows=sum(values.values()), class_counts=tuple(counts))

  def class_weights(
    self,
    setting: Union[str, Mapping[str, float]],
    train_labels: Sequence[int],
    class_names: Optional[Sequence[str]] = None,
  ) -> Optional[Dict[int, float]]:
    """Keras's class_weight for training.class_weight: 'none', 'balanced'
    (rows / (classes x the class's rows) over the train split), or weights
    by class name or index (a class not named weighs 1).

    Raises:
      ValueError: a named class that the label does not have.
    """
    if setting == 'none':
      return None
    if setting == 'balanced':
      counts = np.bincount(
        np.asarray(train_labels, np.int64).ravel(), minlength=self.num_classes
      )
      total = counts.sum()
      return {
        i: float(total / (self.num_classes * c)) if c else 1.0
        for i, c in enumerate(counts)
      }
    names = [str(n) for n in (class_names or range(self.num_classes))]
    weights = {i: 1.0 for i in range(self.num_classes)}
    for key, weight in dict(setting).items():
      if str(key) not in names:
        raise ValueError(
          f'training.class_weight: {key!r} is not a class of '
          f'the label (classes: {", ".join(names)})'
        )
      weights[names.index(str(key))] = float(weight)
    return weights


def _with_names(result: Dict[str, Any], class_names) -> Dict[str, Any]:
  if class_names is not None:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    result[CLASS_NAME] = tf.gather(
      tf.constant(list(class_names)), result[CLASS_ID]
    )
  return result


class BinaryTask(_Classification):
  """Two classes: a sigmoid P(class 1); metrics at a decision threshold."""

  name = 'binary'
  metrics = {
    'example_count': Metric('ExampleCount', 'example_count', None),
    'auc': Metric('AUC', 'auc', 'higher'),
    'auc_pr': Metric('AUCPrecisionRecall', 'auc_precision_recall', 'higher'),
    'accuracy': Metric('BinaryAccuracy', 'binary_accuracy', 'higher'),
    'precision': Metric('Precision', 'precision', 'higher'),
    'recall': Metric('Recall', 'recall', 'higher'),
    'calibration': Metric('Calibration', 'calibration', None),
    'log_loss': Metric('BinaryCrossEntropy', 'binary_crossentropy', 'lower'),
  }
  default_metrics = (
    'example_count',
    'auc',
    'auc_pr',
    'accuracy',
    'precision',
    'recall',
    'calibration',
  )
  main_metric = 'auc'
  monitors = {'val_loss': 'min', 'val_auc': 'max', 'val_binary_accuracy': 'max'}
  prediction_key = PROBABILITY
  plots = ('ConfusionMatrixPlot', 'CalibrationPlot')
  two_class_metrics = ('auc', 'auc_pr', 'precision', 'recall')
  thresholded_metrics = ('accuracy', 'precision', 'recall')

  def __init__(self, num_classes: Optional[int] = 2):
    super().__init__(2)

  @property
  def description(self) -> str:
    return '2 classes'

  def head(self, x):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top

    return keras.layers.Dense(1, activation='sigmoid', name=PROBABILITY)(x)

  def loss(self, name=None):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top

    return keras.losses.BinaryCrossentropy()

  def keras_metrics(self):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top

    return [
      keras.metrics.BinaryAccuracy(name='binary_accuracy'),
      keras.metrics.AUC(name='auc'),
    ]

  def serving_outputs(
    self,
    output,
    class_names=None,
    decision_threshold=0.5,
    label_scale=(0.0, 1.0),
  ):
    """PROBABILITY [batch, 1] and CLASS_ID: 1 from `decision_threshold`."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    class_id = tf.cast(output[:, 0] >= decision_threshold, tf.int64)
    return _with_names({PROBABILITY: output, CLASS_ID: class_id}, class_names)

  def naive_score(self, monitor, train_labels, eval_labels, loss=None):
    if monitor == 'val_auc':
      return 0.5
    return _prior_score(monitor, train_labels, eval_labels, 2)

  def naive_thresholds(self, stats):
    return {'auc': 0.5}

  naive_words = 'better than a constant score'


class MulticlassTask(_Classification):
  """Three or more classes: a softmax over the class indices."""

  name = 'multiclass'
  metrics = {
    'example_count': Metric('ExampleCount', 'example_count', None),
    'accuracy': Metric(
      'SparseCategoricalAccuracy', 'sparse_categorical_accuracy', 'higher'
    ),
    'log_loss': Metric(
      'SparseCategoricalCrossentropy',
      'sparse_categorical_crossentropy',
      'lower',
    ),
  }
  default_metrics = ('example_count', 'accuracy', 'log_loss')
  main_metric = 'accuracy'
  monitors = {'val_loss': 'min', 'val_accuracy': 'max'}
  prediction_key = PROBABILITIES
  plots = ('MultiClassConfusionMatrixPlot',)

  @property
  def description(self) -> str:
    return f'{self.num_classes} classes'

  def head(self, x):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top

    return keras.layers.Dense(
      self.num_classes, activation='softmax', name=PROBABILITIES
    )(x)

  def loss(self, name=None):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top

    return keras.losses.SparseCategoricalCrossentropy()

  def keras_metrics(self):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top

    return [keras.metrics.SparseCategoricalAccuracy(name='accuracy')]

  def serving_outputs(
    self,
    output,
    class_names=None,
    decision_threshold=0.5,
    label_scale=(0.0, 1.0),
  ):
    """PROBABILITIES [batch, classes] and the most probable CLASS_ID."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    return _with_names(
      {PROBABILITIES: output, CLASS_ID: tf.argmax(output, axis=-1)}, class_names
    )

  def naive_score(self, monitor, train_labels, eval_labels, loss=None):
    return _prior_score(monitor, train_labels, eval_labels, self.num_classes)

  def naive_thresholds(self, stats):
    counts = stats.class_counts
    return {'accuracy': max(counts) / sum(counts) if sum(counts) else 0.0}


class RegressionTask(Task):
  """A number: a linear output on the standardised label, restored to the
  label's scale in the served model."""

  name = REGRESSION
  metrics = {
    'example_count': Metric('ExampleCount', 'example_count', None),
    'rmse': Metric('RootMeanSquaredError', 'rmse', 'lower', _OWN),
    'mse': Metric('MeanSquaredError', 'mean_squared_error', 'lower'),
    'mae': Metric('MeanAbsoluteError', 'mean_absolute_error', 'lower'),
    'r2': Metric('R2', 'r2', 'higher', _OWN),
  }
  default_metrics = ('example_count', 'rmse', 'mae', 'r2')
  main_metric = 'rmse'
  monitors = {'val_loss': 'min', 'val_rmse': 'min', 'val_mae': 'min'}
  prediction_key = PREDICTION
  plots = ()
  losses = LOSSES
  standardises_label = True
  classifies = False
  label_transform = 'number'
  reports_predictions = True
  naive_words = 'predicting the mean label'

  def head(self, x):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top

    return keras.layers.Dense(1, name=PREDICTION)(x)

  def loss(self, name=None):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top

    name = name or 'mse'
    if name not in LOSSES:
      raise ValueError(f'unknown loss {name!r}; allowed: {", ".join(LOSSES)}')
    return {
      'mse': keras.losses.MeanSquaredError,
      'mae': keras.losses.MeanAbsoluteError,
      'huber': keras.losses.Huber,
    }[name]()

  def keras_metrics(self):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top

    return [
      keras.metrics.RootMeanSquaredError(name='rmse'),
      keras.metrics.MeanAbsoluteError(name='mae'),
    ]

  def serving_outputs(
    self,
    output,
    class_names=None,
    decision_threshold=0.5,
    label_scale=(0.0, 1.0),
  ):
    """PREDICTION [batch, 1] on the label's own scale."""
    mean, std = label_scale
    return {PREDICTION: output * std + mean}

  def naive_score(self, monitor, train_labels, eval_labels, loss=None):
    """Predicting the train mean, on the standardised scale the model
    trains on (the Tuner's monitors are on that scale); val_loss by the
    trials' `loss`."""
    train = np.asarray(train_labels, np.float64).ravel()
    evaluated = np.asarray(eval_labels, np.float64).ravel()
    errors = np.abs(evaluated - train.mean()) / (float(train.std()) or 1.0)
    if monitor == 'val_loss':
      monitor = {'mae': 'val_mae', 'huber': 'huber'}.get(loss, 'mse')
    if monitor == 'val_mae':
      return float(np.mean(errors))
    if monitor == 'val_rmse':
      return float(np.sqrt(np.mean(errors**2)))
    if monitor == 'huber':  # Keras's Huber, delta 1
      return float(
        np.mean(np.where(errors <= 1, 0.5 * errors**2, errors - 0.5))
      )
    return float(np.mean(errors**2))

  def naive_thresholds(self, stats):
    return {'rmse': stats.std}

  def label_stats(self, values):
    numbers = np.asarray(
      [float(v) for v, c in values.items() for _ in range(c)], np.float64
    )
    return LabelStats(
      rows=len(numbers),
      mean=float(numbers.mean()) if len(numbers) else 0.0,
      std=float(numbers.std()) if len(numbers) else 0.0,
    )


def _prior_score(
  monitor: str, train_labels, eval_labels, num_classes: int
) -> float:
  """Predicting the train split's class prior (smoothed by one count per
  class): its log loss for val_loss, the majority class's accuracy for the
  accuracies."""
  train = np.asarray(train_labels, dtype=np.int64).ravel()
  evaluated = np.asarray(eval_labels, dtype=np.int64).ravel()
  counts = np.bincount(train, minlength=num_classes).astype(np.float64)
  if monitor == 'val_loss':
    prior = (counts + 1.0) / (counts.sum() + num_classes)
    return float(-np.mean(np.log(prior[evaluated])))
  return float(np.mean(evaluated == int(np.argmax(counts))))


TASKS = {
  task.name: task for task in (BinaryTask, MulticlassTask, RegressionTask)
}


def is_known(features) -> bool:
  """Whether a `features` section's task is decided: regression, or
  classification with its number of classes (a number of classes given
  says classification)."""
  return features.task == REGRESSION or features.num_classes is not None


def classes_problem(
  declared: Optional[int], found: int, indices: bool
) -> Optional[str]:
  """What is wrong when the label holds `found` classes (the largest index
  + 1, or the distinct names) and the spec declares `declared`: None when
  they fit."""
  if declared is None or found <= declared:
    return None
  if indices:
    return (
      f'class index {found - 1} is out of range for '
      f'features.num_classes {declared} (indices 0..{declared - 1})'
    )
  return f'{found} class names but features.num_classes is {declared}'


def too_many_classes(found: int, max_classes: int) -> bool:
  """Whether `found` classes exceed features.max_classes."""
  return found > max_classes


def task_for(features) -> Task:
  """The task of a `features` section whose task is known: regression, or
  classification with `num_classes` (2: binary)."""
  if features.task == REGRESSION:
    return RegressionTask()
  if features.num_classes is None:
    raise ValueError('features.num_classes is not resolved')
  if features.num_classes == 2:
    return BinaryTask()
  return MulticlassTask(features.num_classes)


def monitor_directions() -> Dict[str, str]:
  """Every task's Keras monitors and which way each is better ('min' or
  'max'; a name means the same direction in every task)."""
  return {
    monitor: direction
    for task in TASKS.values()
    for monitor, direction in task.monitors.items()
  }


def label_transform(features) -> str:
  """The label Transform of a `features` section (Task.label_transform),
  known before the classes are counted: a number for regression."""
  return (
    RegressionTask.label_transform
    if features.task == REGRESSION
    else (BinaryTask.label_transform)
  )


def metric_names() -> Tuple[str, ...]:
  """Every metric name a spec may use, whatever its task."""
  return tuple(
    dict.fromkeys(name for task in TASKS.values() for name in task.metrics)
  )


def spec_name(tfma_name: str) -> str:
  """The spec's name of a metric TFMA reported as `tfma_name`."""
  for task in TASKS.values():
    for name, metric in task.metrics.items():
      if metric.tfma_name == tfma_name:
        return name
  return tfma_name


def finite_or_none(value: Any) -> Optional[float]:
  """A metric value as strict JSON allows: None for NaN or infinity."""
  if value is None:
    return None
  number = float(value)
  return number if math.isfinite(number) else None
