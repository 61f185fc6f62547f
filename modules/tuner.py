"""tuner_fn for TFX Tuner: the spec's Keras Tuner algorithm over the one
search space (modules/search_space.py).

A search whose best trial is no better than chance (the class prior's log
loss, an AUC of 0.5, the majority class's accuracy) learned nothing: its
"best" hyperparameters are noise, and a model trained with them is junk.
This happens when trials are too short for the configurations to learn
(e.g. inputs scaled to [0, 1] learn several times slower than z-scores at
the same learning rate). The Tuner then stops the run, saying so and what to
change, rather than hand the Trainer noise.
"""

import gc
import logging
import zlib
from typing import Any, Callable, Dict, Optional

import keras_tuner
import tf_keras as keras
from keras_tuner.distribute import utils as keras_tuner_workers
from keras_tuner.engine import tuner_utils
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.tuner.component import TunerFnResult

from modules import data as data_lib
from modules import distribute, finetune, search_plan, search_space
from modules import model as model_lib
from modules.config import TunerConfig, TunerSpec


def require_legacy_keras() -> None:
  """keras-tuner 1.3.5 drives `tensorflow.keras`, which must be tf_keras
  (Keras 2) for our models; fail with the fix rather than deep in a trial."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  if tf.keras.Model is not keras.Model:
    raise RuntimeError(
      'TF_USE_LEGACY_KERAS=1 must be set before TensorFlow is imported '
      '(the project uses Keras 2 through tf_keras); run through '
      '`python -m pipeline` or `make`, which set it'
    )


class SpecHyperModel(keras_tuner.HyperModel):
  """Builds a model per trial and fits it at the trial's batch size.

  In finetune mode each trial starts from a fresh copy of the base model and
  trains it by the trial's strategy (staged, for gradual unfreezing).
  """

  def __init__(
    self, training_data: data_lib.TrainingData, config: TunerConfig, seed: int
  ):
    super().__init__(name='spec_hypermodel')
    self._data = training_data
    self._config = config
    self._seed = seed
    self._finetuner = None  # the last built trial's, in finetune mode

  def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
    built = self._data.new_model(search_space.sample_config(hp, self._config))
    if isinstance(built, finetune.Finetuner):
      self._finetuner = built
      built.prepare(0)  # compiled, as Keras Tuner expects a built model
      return built.model
    return built

  def fit(self, hp, model, *args, **kwargs):  # pylint: disable=arguments-differ
    kwargs['callbacks'] = [
      PromotionCheckpoint(c, promotable(hp))
      if isinstance(c, tuner_utils.SaveBestEpoch)
      else c
      for c in kwargs.get('callbacks', ())
    ]
    batch_size = hp.get('batch_size')
    train = self._data.train(batch_size, self._seed)
    validation = self._data.eval(batch_size)
    # Registered by build() for a task with classes (search_space).
    kwargs['class_weight'] = self._data.class_weight(
      search_space.decode(hp.values.get('class_weight', 'none'))
    )
    kwargs['epochs'] = model_lib.epochs_for(model, kwargs['epochs'])
    if self._finetuner is not None and self._finetuner.model is model:
      return self._finetuner.fit(
        train,
        validation_data=validation,
        epochs=kwargs['epochs'],
        initial_epoch=kwargs.get('initial_epoch', 0),
        callbacks=kwargs.get('callbacks', ()),
        verbose=kwargs.get('verbose', 0),
        class_weight=kwargs.get('class_weight'),
      )
    return model.fit(train, *args, validation_data=validation, **kwargs)


def promotable(hp: keras_tuner.HyperParameters) -> bool:
  """Whether Hyperband may continue this trial in a later round, from its
  best epoch's weights: a trial in round r of bracket b (rounds 0 to b)
  with r < b. Other algorithms' trials never continue."""
  values = hp.values
  return (
    'tuner/bracket' in values
    and values.get('tuner/round', 0) < values['tuner/bracket']
  )


class PromotionCheckpoint(keras.callbacks.Callback):
  """Keras Tuner's SaveBestEpoch (`saver`), written only when read: it
  wrote the weights at every epoch that improved the objective, for every
  trial (31 writes in the default search's 36 epochs, about 6 % of its
  time), but only Hyperband reads them, to continue a trial it promotes
  (TFX's Tuner keeps the best hyperparameters, not models). This keeps the best epoch's weights in
  memory and writes them once when training ends, for a trial that may be
  promoted (`write`); for the others it writes nothing."""

  def __init__(self, saver: tuner_utils.SaveBestEpoch, write: bool):
    super().__init__()
    self._saver = saver
    self._write = write
    self._best = None

  def on_epoch_end(self, epoch, logs=None):
    if not self._write:
      return
    objective = self._saver.objective
    if objective.has_value(logs):
      value = objective.get_value(logs)
      if not objective.better_than(value, self._saver.best_value):
        return
      self._saver.best_value = value
    self._best = self.model.get_weights()

  def on_train_end(self, logs=None):
    if self._best is None:
      return
    now = self.model.get_weights()
    self.model.set_weights(self._best)
    self.model.save_weights(self._saver.filepath)
    self.model.set_weights(now)


class NoTrialLearned(RuntimeError):
  """The search's best trial is no better than chance. One line."""


def beats_chance(score: float, chance: float, direction: str) -> bool:
  return score < chance if direction == 'min' else score > chance


def trial_seed(seed: int, trial_id: str) -> int:
  """The random seed a trial builds and trains its model with: from the
  search's seed and the trial's id alone. A trial's initial weights and
  dropout then do not depend on which process runs it, or on how many
  models that process built before (tuner.parallel_trials): the same trial
  scores the same in one process or in several."""
  return zlib.crc32(f'{seed}/{trial_id}'.encode()) & 0x7FFFFFFF


class _SearchGuard:
  """Mixed into the Keras Tuner: seeds each trial (`trial_seed`), records
  the epochs each trial trained (Keras Tuner keeps one score per trial),
  and after the search the best trial must beat `self.chance()`, else
  NoTrialLearned stops the run.

  Keras Tuner runs a full garbage collection before every trial, and in a
  process that has imported TensorFlow, TFX and Beam each one walks
  hundreds of thousands of objects, which can cost as much as a small
  trial trains. `search` sets the objects that exist when it begins aside
  (`gc.freeze`), so each trial's collection looks at the trials' own
  objects only, and gives them back to the collector when it ends,
  however it ends. It does not collect first: that walk costs as much as
  one of the collections it saves, and the little garbage it would free
  is freed by the first collection after the search.
  """

  chance: Optional[Callable[[], float]] = None
  search_seed: Optional[int] = None  # each trial's seed comes from it

  def search(self, *args, **kwargs):
    gc.freeze()
    try:
      return super().search(*args, **kwargs)
    finally:
      gc.unfreeze()

  def run_trial(self, trial, *args, **kwargs):
    if self.search_seed is not None:
      keras.utils.set_random_seed(trial_seed(self.search_seed, trial.trial_id))
    histories = super().run_trial(trial, *args, **kwargs)
    runs = histories if isinstance(histories, list) else [histories]
    self.epochs_trained = getattr(self, 'epochs_trained', {})
    self.epochs_trained[trial.trial_id] = max(
      (len(h.epoch) for h in runs if hasattr(h, 'epoch')), default=0
    )
    return histories

  def on_search_end(self):
    super().on_search_end()
    if self.chance is None:
      return
    best = self.oracle.get_best_trials(1)
    objective = self.oracle.objective
    if not best or best[0].score is None:
      raise NoTrialLearned(
        'the search finished no trial; give it more tuner.max_trials'
      )
    chance = self.chance()
    if beats_chance(best[0].score, chance, objective.direction):
      return
    values = best[0].hyperparameters.values
    epochs = values.get('tuner/epochs')
    trials = len(self.oracle.trials)
    # Only Hyperband gives a trial fewer epochs than tuner.max_epochs;
    # another algorithm's trials all have them already.
    more = (
      'tuner.max_epochs, or tuner.algorithm random'
      if epochs
      else 'tuner.max_epochs'
    )
    raise NoTrialLearned(
      f'no tuning trial learned anything: the best {objective.name} '
      f'{best[0].score:.4f} is no better than predicting without the '
      f'features ({chance:.4f}); {trials} trials ran'
      + (f', the best for {epochs} epochs' if epochs else '')
      + f' (learning_rate {values.get("learning_rate", 0):.3g}). Give the '
      f'trials more epochs ({more}), or a higher '
      'model.search_space.learning_rate range'
    )


_GUARDED = {}


def _guarded(tuner_class):
  """`tuner_class` with the search guard (one subclass per class)."""
  if tuner_class not in _GUARDED:
    _GUARDED[tuner_class] = type(
      tuner_class.__name__, (_SearchGuard, tuner_class), {}
    )
  return _GUARDED[tuner_class]


def make_tuner(
  settings: TunerSpec,
  hypermodel: keras_tuner.HyperModel,
  directory: str,
  strategy=None,
  chance: Optional[Callable[[], float]] = None,
  plan: Optional[search_plan.Plan] = None,
) -> keras_tuner.Tuner:
  """The Keras Tuner of `settings.algorithm`, with `max_trials` set on every
  oracle.

  TFX 1.16's Tuner writes results with `get_best_trials(oracle.max_trials)`;
  Hyperband's oracle leaves max_trials None, which crashes that writer, so it
  is set here too (and caps Hyperband's trial count like the others').
  `chance`, when given, says what predicting without the features scores:
  the best trial must beat it (_SearchGuard). `plan` (modules/search_plan.py)
  may run another algorithm or fewer trials than the settings ask for; it
  rides on the tuner (`search_plan`) for the Tuner's report.
  """
  algorithm = plan.algorithm if plan else settings.algorithm
  objective = keras_tuner.Objective(settings.objective, settings.direction)
  # A worker of a parallel search (components/parallel_search.py) shares
  # the chief's folder: only the chief starts it afresh.
  common = dict(
    objective=objective,
    seed=settings.seed,
    directory=directory,
    project_name='search',
    overwrite=not keras_tuner_workers.has_chief_oracle(),
    distribution_strategy=strategy,
  )
  max_trials = plan.max_trials if plan else settings.max_trials
  tuner = _new_tuner(algorithm, settings, hypermodel, max_trials, common)
  tuner.chance = chance
  tuner.search_seed = settings.seed
  tuner.search_plan = plan
  return tuner


def _new_tuner(
  algorithm: str,
  settings: TunerSpec,
  hypermodel: keras_tuner.HyperModel,
  max_trials: int,
  common: Dict[str, Any],
) -> keras_tuner.Tuner:
  """`make_tuner`'s guarded Keras Tuner of `algorithm`, built with the
  arguments every algorithm takes (`common`) and `max_trials` set."""
  if algorithm == 'hyperband':
    tuner = _guarded(keras_tuner.Hyperband)(
      hypermodel,
      max_epochs=settings.max_epochs,
      factor=settings.factor,
      hyperband_iterations=settings.hyperband_iterations,
      **common,
    )
    tuner.oracle.max_trials = max_trials
    return tuner
  if algorithm == 'random':
    return _guarded(keras_tuner.RandomSearch)(
      hypermodel, max_trials=max_trials, **common
    )
  if algorithm == 'bayesian':
    return _guarded(keras_tuner.BayesianOptimization)(
      hypermodel, max_trials=max_trials, **common
    )
  if algorithm == 'grid':
    return _guarded(keras_tuner.GridSearch)(
      hypermodel, max_trials=max_trials, **common
    )
  raise ValueError(
    f'unknown tuner algorithm {algorithm!r}; allowed: '
    'hyperband, random, bayesian, grid'
  )


def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
  """Called by TFX Tuner: the configured search, ready to run.

  Args:
    fn_args: TFX's arguments; `custom_config` is a TunerConfig as JSON
      (modules/config/).

  Returns:
    The tuner and the keyword arguments for its `search`.
  """
  config = TunerConfig.from_custom_config(fn_args.custom_config)
  require_legacy_keras()
  settings = config.tuner
  keras.utils.set_random_seed(settings.seed)
  training_data = data_lib.TrainingData(fn_args, config)
  hypermodel = SpecHyperModel(training_data, config, settings.seed)
  planned = search_plan.plan(
    settings, config.model.search_space, config.training.mode
  )
  if planned.note:
    logging.warning('search: %s', planned.note)
  task = config.task
  # One loss (a searched loss needs another objective: the spec says so).
  loss = config.training.choices()['loss'][0]
  tuner = make_tuner(
    settings,
    hypermodel,
    fn_args.working_dir,
    distribute.strategy_for(config.model.builders),
    plan=planned,
    chance=lambda: task.naive_score(
      settings.objective,
      training_data.labels('train'),
      training_data.labels('eval'),
      loss,
    ),
  )
  return TunerFnResult(
    tuner=tuner,
    fit_kwargs={
      'epochs': settings.max_epochs,
      'callbacks': model_lib.early_stopping(config.training.early_stopping),
      'verbose': 0,
    },
  )
