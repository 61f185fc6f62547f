"""The training, tuner and evaluation sections: how a model trains, how
the Tuner searches, and where a binary model draws its class line."""

from typing import Annotated, Any, Dict, List, Literal, Optional, Union

from pydantic import Field

from modules import tasks
from modules.config.base import Strict

TUNER_ALGORITHMS = ('hyperband', 'random', 'bayesian', 'grid')
PARALLEL_AUTO = 'auto'  # tuner.parallel_trials: the cores available
# Keras metric names the Tuner objective and early stopping may monitor:
# every task's (modules/tasks.py says which each task reports, and which
# way is better).
MONITOR_DIRECTIONS = tasks.monitor_directions()
MONITORS = tuple(MONITOR_DIRECTIONS)


class TunerSpec(Strict):
  """Keras Tuner settings. `max_trials` caps every algorithm's trials."""

  enabled: bool = Field(
    default=True,
    description=(
      'Whether the Tuner runs (off: the Trainer takes the search '
      "space's defaults)."
    ),
  )
  algorithm: Literal[TUNER_ALGORITHMS] = Field(  # type: ignore[valid-type]
    default='hyperband', description='hyperband, random, bayesian or grid.'
  )
  objective: Literal[MONITORS] = Field(  # type: ignore[valid-type]
    default='val_loss',
    description=(
      'The Keras metric the Tuner optimises (one the task reports).'
    ),
  )
  max_trials: int = Field(
    default=10, ge=1, description='The most trials, whatever the algorithm.'
  )
  max_epochs: int = Field(
    default=6,
    ge=1,
    description=(
      'The most epochs a trial trains (random, bayesian and grid '
      'train each trial this many).'
    ),
  )
  factor: int = Field(
    default=3,
    ge=2,
    description="Hyperband's reduction factor between brackets.",
  )
  hyperband_iterations: int = Field(
    default=1,
    ge=1,
    description='How many times Hyperband runs its whole bracket schedule.',
  )
  seed: int = Field(default=42, description="The Tuner's random seed.")
  # Trials at once, each in its own process (components/parallel_search.py),
  # or on Kubeflow in its own pod; 'auto': the cores available where the
  # Tuner runs (local only).
  parallel_trials: Union[
    Annotated[int, Field(ge=1)], Literal[PARALLEL_AUTO]
  ] = Field(  # type: ignore[valid-type]
    default=1,
    description=(
      'Trials at once, each in its own process (on Kubeflow, its '
      'own pod), or auto for the cores available.'
    ),
  )

  @property
  def direction(self) -> str:
    """'min' or 'max': which way the objective improves."""
    return MONITOR_DIRECTIONS[self.objective]


class EarlyStoppingSpec(Strict):
  monitor: Literal[MONITORS] = Field(  # type: ignore[valid-type]
    default='val_loss',
    description='The Keras metric watched (one the task reports).',
  )
  patience: int = Field(
    default=5,
    ge=0,
    description='Epochs without improvement before training stops.',
  )
  min_delta: float = Field(
    default=0.0,
    ge=0,
    description='The least change that counts as an improvement.',
  )


Loss = Literal[tasks.LOSSES]  # type: ignore[valid-type]
ClassWeight = Union[
  Literal[tasks.CLASS_WEIGHT_MODES],  # type: ignore[valid-type]
  Dict[Union[str, int], Annotated[float, Field(gt=0)]],
]


class TrialTrainingSpec(Strict):
  """What a model trains by, in a tuning trial as in the Trainer.

  `loss` (regression): mse, mae or huber, on the standardised label; a
  list is searched by the Tuner. `class_weight` (classification): none,
  balanced (each class weighs rows / (classes x its rows) in the train
  split) or `{CLASS: weight}` by class name or index; a list is searched.
  """

  mode: Literal['scratch', 'finetune'] = Field(
    default='scratch',
    description=(
      'scratch trains a new model; finetune starts from a base '
      'model or a pretrained encoder.'
    ),
  )
  early_stopping: Optional[EarlyStoppingSpec] = Field(
    default=EarlyStoppingSpec(),
    description=(
      'Stop training when monitor stops improving; null: train every epoch.'
    ),
  )
  loss: Union[Loss, List[Loss]] = Field(
    default='mse',
    description=(
      "Regression's loss on the standardised label: mse, mae or "
      'huber, or a list the Tuner searches.'
    ),
  )
  class_weight: Union[ClassWeight, List[ClassWeight]] = Field(
    default='none',
    description=(
      "Classification's class weights: none, balanced or {CLASS: "
      'weight}, or a list the Tuner searches.'
    ),
  )

  def choices(self) -> Dict[str, List[Any]]:
    """The settings a search may vary, each as its list of choices (the
    first the default)."""
    return {
      name: (list(value) if isinstance(value, list) else [value])
      for name, value in (
        ('loss', self.loss),
        ('class_weight', self.class_weight),
      )
    }


class TrainingSpec(TrialTrainingSpec):
  """How the Trainer trains (the spec's `training` section adds where a
  fine-tuning base model comes from, which the runner resolves)."""

  epochs: int = Field(
    default=50, ge=1, description='Epochs the Trainer trains for.'
  )
  seed: int = Field(default=42, description="The Trainer's random seed.")


class DecisionSpec(Strict):
  """`decision_threshold` (binary): the probability from which a row is
  class 1, for the served class and for accuracy, precision and recall."""

  decision_threshold: float = Field(
    default=0.5,
    gt=0,
    lt=1,
    description=(
      'Binary: the probability from which a row is class 1, for '
      'accuracy, precision, recall and the served class.'
    ),
  )
