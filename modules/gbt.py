"""The `gbt` model builder: gradient boosted trees over the transformed
features, by TensorFlow Decision Forests (TF-DF) as a Keras 2 model.

The trees take the same dict of transformed features as the networks of
modules/model.py (numeric: float32 [batch, 1], treated as numerical;
categorical: int64 ids [batch, 1], treated as categories, not as numbers)
and answer as they do: binary classification P(class 1) [batch, 1],
multiclass the probabilities [batch, num_classes], regression the
prediction [batch, 1]. Compiled with the task's Keras loss and metrics
(`compile_gbt`), `fit(train, validation_data=eval, epochs=1)` reports the
same `val_*` names, computed the same way, as a network's epoch: TF-DF
evaluates the trained forest on the validation data with the compiled loss
and metrics. The forest grows on its own objective (log-likelihood, squared
or absolute error, `build_gbt`) and stops adding trees when its loss on the
validation data rises (it keeps the trees up to its best). A forest grows
in one pass: `fit` runs one epoch, whatever `epochs` it is given.

A SavedModel of a forest runs TF-DF's custom ops, which exist in a process
only once `tensorflow_decision_forests` is imported: every loader calls
components/model_ops.py's `ensure_ops` first.

No TensorFlow at import; building imports TF-DF.
"""

import contextlib
import ctypes
import functools
import io
import os
from typing import Any, List, Mapping, Optional, Protocol, Sequence

from modules.config import FloatRange, GbtSpace, IntRange

__all__ = [
  'GbtSpace',
  'PREFIX',
  'build',
  'build_gbt',
  'compile_gbt',
  'load_ops',
]

PREFIX = 'gbt_'  # a GbtSpace field's Keras Tuner hyperparameter name prefix
# The Keras regression losses (modules/tasks.py LOSSES) -> the forest's own
# objective. TF-DF has no Huber loss; squared error is the nearest.
REGRESSION_LOSSES = {
  'mse': 'SQUARED_ERROR',
  'mae': 'MEAN_AVERAGE_ERROR',
  'huber': 'SQUARED_ERROR',
}


class FeatureInputs(Protocol):
  """What the trees read of a modules.model.ModelInputs (not imported
  here: modules/model.py may come to import this module)."""

  @property
  def numeric(self) -> Sequence[str]: ...

  @property
  def categorical(self) -> Mapping[str, int]: ...


# Yggdrasil's logging switch (0: no logs, 2: all), a C++ global of which
# each of TF-DF's two op libraries has its own copy.
_YDF_LOGGING_LEVEL = '_ZN26yggdrasil_decision_forests7logging13logging_levelE'
_TFDF_HELPERS = 'tensorflow_decision_forests.tensorflow'  # TF-DF's TF code


@functools.lru_cache(maxsize=None)
def _tfdf() -> Any:
  """The tensorflow_decision_forests module, imported (which registers its
  ops in this process), with the C++ logs of its engine, Yggdrasil, off
  (lines on stderr each time a forest is trained, and each time one is
  loaded: by every new graph that runs it, by every SavedModel load) and
  its helpers left to run as they are written when traced."""
  import tensorflow_decision_forests as tfdf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.autograph.core import config as autograph_config  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top
  from tensorflow_decision_forests.tensorflow import cc_logging  # pylint: disable=g-import-not-at-top

  # As modules/model.py does for Keras: AutoGraph rewrote TF-DF's helpers
  # (reading examples, normalising features: some 350 functions for 30
  # features) in each process's first fit, 2 to 4 s of it on 2 CPUs, though
  # they branch on Python values only. TF-DF's Keras model is still
  # converted: its loop over the dataset needs AutoGraph.
  rules = autograph_config.CONVERSION_RULES
  if not any(
    isinstance(r, autograph_config.DoNotConvert) and r.matches(_TFDF_HELPERS)
    for r in rules
  ):
    autograph_config.CONVERSION_RULES = (
      autograph_config.DoNotConvert(_TFDF_HELPERS),
    ) + tuple(rules)
  # Yggdrasil's logs: the training library's copy of the switch (TF-DF
  # holds it at 0 while it trains)...
  cc_logging.set_yggdrasil_logging_level(0)
  # ...and the inference library's, which loads forests, has no setter: it
  # is set in place, in the library TF-DF loaded (RTLD_NOLOAD: never a
  # second copy). A TF-DF without the symbol only keeps its load lines.
  library = os.path.join(
    os.path.dirname(tfdf.__file__),
    'tensorflow',
    'ops',
    'inference',
    'inference.so',
  )
  try:
    loaded = ctypes.CDLL(library, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    ctypes.c_int.in_dll(loaded, _YDF_LOGGING_LEVEL).value = 0
  except (OSError, ValueError):
    pass
  return tfdf


def load_ops() -> None:
  """Registers TF-DF's ops in this process, its engine's logs off: what a
  process that loads a forest it did not build calls (the model server,
  after components/model_ops.py found the model needs them)."""
  _tfdf()


@functools.lru_cache(maxsize=None)
def _model_class() -> type:
  """GbtModel, TF-DF's GradientBoostedTreesModel made quiet and held to
  the project's output width. Defined on first use: TF-DF is imported only
  by a process that builds trees."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  tfdf = _tfdf()

  class GbtModel(tfdf.keras.GradientBoostedTreesModel):
    """A gradient boosted trees model with a fixed output width and no
    logs (see `build_gbt`).

    `input_names` is set, as a functional model's is: the features the
    trees read, which the export's signatures feed it.
    """

    one_pass = True  # one epoch grows it (modules/model.py epochs_for)

    def __init__(self, *, input_names: List[str], classes: int = 0, **kwargs):
      super().__init__(**kwargs)
      self.input_names = list(input_names)
      self._classes = classes

    def fit(
      self,
      *args,
      epochs: int = 1,
      initial_epoch: int = 0,  # pylint: disable=arguments-differ
      **kwargs,
    ):
      """TF-DF's fit, which grows the whole forest in one epoch: `epochs`
      and `initial_epoch` (a Trainer's epochs, a Hyperband round's) are
      taken and ignored, where TF-DF refuses them."""
      del epochs, initial_epoch
      verbose = kwargs.get('verbose')
      if verbose if verbose is not None else self._verbose:
        return super().fit(*args, **kwargs)
      # TF-DF prints "Num validation examples: ..." on every fit whatever
      # the verbosity (and logs it again through absl, where it stays).
      with contextlib.redirect_stdout(io.StringIO()):
        return super().fit(*args, **kwargs)

    # A tf.function, as TF-DF's own `call` (fit re-traces it through its
    # `_python_function`).
    @tf.function(reduce_retracing=True)
    def call(self, inputs, training=False):
      outputs = super().call(inputs, training=training)
      # A forest answers one column (P(class 1), or a number) or one per
      # class, its classes being those up to the highest class in the
      # training labels: a class above them that the train split lacks
      # would lose its column. It has probability 0.
      width = outputs.shape[-1]
      if width is not None and 1 < width < self._classes:
        outputs = tf.pad(outputs, [[0, 0], [0, self._classes - width]])
      return outputs

  return GbtModel


# The GradientBoostedTreesModel arguments `build_gbt` passes for every model.
_FIXED_MODEL_ARGS = dict(
  exclude_non_specified_features=True,
  verbose=0,
  # The project's train split comes shuffled (with a seed) in small
  # batches, which TF-DF's dataset check refuses; the trees read every
  # row before growing, so neither changes them.
  check_dataset=False,
  # Each fit grows a new forest, never one resumed from a previous fit.
  try_resume_training=False,
  # TF-DF passes these GOSS and SelGB settings to Yggdrasil even when
  # that sampling is off, which then warns on every training.
  goss_alpha=None,
  goss_beta=None,
  selective_gradient_boosting_ratio=None,
)


def build_gbt(
  inputs: FeatureInputs,
  hparams: Mapping[str, Any],
  *,
  regression: bool,
  num_classes: int,
  seed: int,
  loss: Optional[str] = None,
) -> Any:
  """A gradient boosted trees model over the transformed features, not
  compiled (`compile_gbt`).

  Args:
    inputs: the transformed features (a modules.model.ModelInputs):
      `numeric` names are numerical features, `categorical` names (int64
      ids) categorical ones. Other keys of the fed dict are ignored.
    hparams: one value per GbtSpace field, by its own name (`sample`'s);
      each is the TF-DF argument of that name.
    regression: a regression task (a float label), else classification
      (int64 class ids in [0, num_classes)).
    num_classes: the classes of a classification task (2: binary).
    seed: the trees' random seed: the same seed, data and hyperparameters
      give the same trees.
    loss: regression only: the Keras loss the model is compiled with
      ('mse', 'mae' or 'huber'); the trees grow on the nearest objective
      TF-DF has (REGRESSION_LOSSES). None: squared error.

  Returns:
    An untrained tf_keras Model (a TF-DF GradientBoostedTreesModel) taking
    the dict of [batch, 1] features and answering P(class 1) [batch, 1]
    (binary), the probabilities [batch, num_classes] (multiclass) or the
    prediction [batch, 1] (regression). Train it with `fit(..., epochs=1)`;
    early stopping is built in.
  """
  _check_buildable(inputs, loss)
  tfdf = _tfdf()
  return _model_class()(
    input_names=list(inputs.numeric) + list(inputs.categorical),
    classes=0 if regression else num_classes,
    task=(
      tfdf.keras.Task.REGRESSION
      if regression
      else tfdf.keras.Task.CLASSIFICATION
    ),
    loss=(REGRESSION_LOSSES[loss or 'mse'] if regression else 'DEFAULT'),
    features=_feature_usages(tfdf, inputs),
    random_seed=int(seed),
    **_FIXED_MODEL_ARGS,
    **{name: _typed(name, hparams[name]) for name in GbtSpace.model_fields},
  )


def _check_buildable(inputs: FeatureInputs, loss: Optional[str]) -> None:
  """Raises ValueError for what `build_gbt` cannot build: no features, a
  distribution strategy in scope, an unknown regression loss."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  if not inputs.numeric and not inputs.categorical:
    raise ValueError('build_gbt needs at least one input feature')
  if tf.distribute.has_strategy():
    # TF-DF refuses any but a parameter server strategy, at the first fit.
    raise ValueError(
      'gbt trees train without a distribution strategy (TF-DF does not '
      f'run under {type(tf.distribute.get_strategy()).__name__}); build '
      'them outside strategy.scope()'
    )
  if loss is not None and loss not in REGRESSION_LOSSES:
    raise ValueError(
      f'unknown regression loss {loss!r}; allowed: '
      f'{", ".join(REGRESSION_LOSSES)}'
    )


def _feature_usages(tfdf: Any, inputs: FeatureInputs) -> List[Any]:
  """TF-DF's feature list: the numeric inputs numerical, the id inputs
  categorical."""
  semantic = tfdf.keras.FeatureSemantic
  return [
    tfdf.keras.FeatureUsage(name, semantic=semantic.NUMERICAL)
    for name in inputs.numeric
  ] + [
    tfdf.keras.FeatureUsage(name, semantic=semantic.CATEGORICAL)
    for name in inputs.categorical
  ]


def _typed(name: str, value: Any) -> Any:
  """A hyperparameter's value as the type its GbtSpace entry holds: TF-DF
  hands ints and floats to Yggdrasil as different kinds, and refuses an
  int (e.g. 1 from JSON) where a real number is expected."""
  entry = getattr(GbtSpace(), name)
  kind = (
    int
    if isinstance(entry, IntRange)
    else float
    if isinstance(entry, FloatRange)
    else type(list(entry)[0])
  )
  return kind(value)


def compile_gbt(model: Any, metrics: List[Any], loss: Any) -> None:
  """Compiles a `build_gbt` model with the task's Keras loss and metrics.

  The trees do not train by them (their objective is set by `build_gbt`);
  after the forest is grown, `fit(..., validation_data=...)` evaluates it
  on the validation data with them, as `val_loss` and `val_<metric>`:
  the numbers a network's epoch reports, by the same code. (Without
  validation data the history holds Yggdrasil's own numbers instead, e.g.
  `loss` its training loss: not the compiled loss.)

  Args:
    model: from `build_gbt`.
    metrics: the task's Keras metrics (named as the monitors).
    loss: the task's Keras loss.
  """
  model.compile(loss=loss, metrics=metrics)


def build(inputs: Any, hparams: Mapping[str, Any], seed: int) -> Any:
  """A compiled forest for a trial's or the Trainer's hyperparameters
  (modules/data.py TrainingData.new_model).

  Args:
    inputs: a modules.model.ModelInputs; its `task` gives the kind of
      label, the classes, the loss and the metrics (modules/tasks.py).
    hparams: the search's values (modules/search_space.py): the GbtSpace
      fields by their PREFIX names, and `loss` where the task offers one.
    seed: the trees' random seed.
  """
  task = inputs.task
  own = {
    name[len(PREFIX) :]: value
    for name, value in hparams.items()
    if name.startswith(PREFIX)
  }
  model = build_gbt(
    inputs,
    own,
    regression=not task.classifies,
    num_classes=task.num_classes or 0,
    seed=seed,
    loss=hparams.get('loss'),
  )
  compile_gbt(model, task.keras_metrics(), task.loss(hparams.get('loss')))
  return model
