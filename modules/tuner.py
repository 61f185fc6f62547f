"""tuner_fn for TFX Tuner: the spec's Keras Tuner algorithm over the one
search space (modules/search_space.py)."""

import keras_tuner
import tf_keras as keras
from tfx import v1 as tfx

from modules import data as data_lib
from modules import distribute, finetune, search_space
from modules import model as model_lib
from modules.config import SearchSpace, TunerConfig, TunerSpec


def require_legacy_keras() -> None:
  """keras-tuner 1.3.5 drives `tensorflow.keras`, which must be tf_keras
  (Keras 2) for our models; fail with the fix rather than deep in a trial."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if tf.keras.Model is not keras.Model:
    raise RuntimeError(
        'TF_USE_LEGACY_KERAS=1 must be set before TensorFlow is imported '
        '(the project uses Keras 2 through tf_keras); run through '
        '`python -m pipeline` or `make`, which set it')


class SpecHyperModel(keras_tuner.HyperModel):
  """Builds a model per trial and fits it at the trial's batch size.

  In finetune mode each trial starts from a fresh copy of the base model and
  trains it by the trial's strategy (staged, for gradual unfreezing).
  """

  def __init__(self, training_data: data_lib.TrainingData,
               space: SearchSpace, seed: int):
    super().__init__(name='spec_hypermodel')
    self._data = training_data
    self._space = space
    self._seed = seed
    self._finetuner = None  # the last built trial's, in finetune mode

  def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
    built = self._data.new_model(
        search_space.sample(hp, self._space, self._data.mode))
    if isinstance(built, finetune.Finetuner):
      self._finetuner = built
      built.prepare(0)  # compiled, as Keras Tuner expects a built model
      return built.model
    return built

  def fit(self, hp, model, *args, **kwargs):  # pylint: disable=arguments-differ
    batch_size = hp.get('batch_size')
    train = self._data.train(batch_size, self._seed)
    validation = self._data.eval(batch_size)
    if self._finetuner is not None and self._finetuner.model is model:
      return self._finetuner.fit(
          train, validation_data=validation, epochs=kwargs['epochs'],
          initial_epoch=kwargs.get('initial_epoch', 0),
          callbacks=kwargs.get('callbacks', ()),
          verbose=kwargs.get('verbose', 0))
    return model.fit(train, *args, validation_data=validation, **kwargs)


def make_tuner(settings: TunerSpec, hypermodel: keras_tuner.HyperModel,
               directory: str, strategy=None) -> keras_tuner.Tuner:
  """The Keras Tuner of `settings.algorithm`, with `max_trials` set on every
  oracle.

  TFX 1.16's Tuner writes results with `get_best_trials(oracle.max_trials)`;
  Hyperband's oracle leaves max_trials None, which crashes that writer, so it
  is set here too (and caps Hyperband's trial count like the others').
  """
  algorithm = settings.algorithm
  objective = keras_tuner.Objective(settings.objective, settings.direction)
  common = dict(objective=objective, seed=settings.seed,
                directory=directory, project_name='search', overwrite=True,
                distribution_strategy=strategy)
  max_trials = settings.max_trials
  if algorithm == 'hyperband':
    tuner = keras_tuner.Hyperband(
        hypermodel, max_epochs=settings.max_epochs, factor=settings.factor,
        hyperband_iterations=settings.hyperband_iterations, **common)
    tuner.oracle.max_trials = max_trials
  elif algorithm == 'random':
    tuner = keras_tuner.RandomSearch(hypermodel, max_trials=max_trials,
                                     **common)
  elif algorithm == 'bayesian':
    tuner = keras_tuner.BayesianOptimization(hypermodel, max_trials=max_trials,
                                             **common)
  elif algorithm == 'grid':
    tuner = keras_tuner.GridSearch(hypermodel, max_trials=max_trials, **common)
  else:
    raise ValueError(f'unknown tuner algorithm {algorithm!r}; allowed: '
                     'hyperband, random, bayesian, grid')
  return tuner


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
  """Called by TFX Tuner: the configured search, ready to run.

  Args:
    fn_args: TFX's arguments; `custom_config` is a TunerConfig as JSON
      (modules/config.py).

  Returns:
    The tuner and the keyword arguments for its `search`.
  """
  config = TunerConfig.from_custom_config(fn_args.custom_config)
  require_legacy_keras()
  settings = config.tuner
  keras.utils.set_random_seed(settings.seed)
  training_data = data_lib.TrainingData(fn_args, config)
  hypermodel = SpecHyperModel(training_data, config.model.search_space,
                              settings.seed)
  tuner = make_tuner(settings, hypermodel, fn_args.working_dir,
                     distribute.strategy())
  return tfx.components.TunerFnResult(
      tuner=tuner,
      fit_kwargs={'epochs': settings.max_epochs,
                  'callbacks': model_lib.early_stopping(
                      config.training.early_stopping),
                  'verbose': 0})
