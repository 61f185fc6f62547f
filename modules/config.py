"""The typed module config: what the spec hands the module callbacks.

The spec (pipeline/definition/schema.py) is built from these sections; the
pipeline definition serialises the ones a component reads into its
`custom_config` (JSON: all that travels into a Kubeflow container), and
each callback parses it back, at its first line, into the same types:

    config = TrainerConfig.from_custom_config(fn_args.custom_config)
    config.training.epochs

Each default is stated here, once. No TensorFlow: the spec imports this.

- `TransformConfig`: preprocessing_fn (features, preprocessing).
- `TrainerConfig`: run_fn (+ model, training).
- `TunerConfig`: tuner_fn (+ tuner).
"""

from typing import (
  Annotated,
  Any,
  Dict,
  List,
  Literal,
  Mapping,
  Optional,
  Tuple,
  Type,
  TypeVar,
  Union,
)

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from modules import kinds, tasks
from modules.features import FeaturesSpec, indicator_name

OPTIMIZERS = ('adam', 'sgd', 'rmsprop')
MODEL_BUILDERS = ('dnn', 'cnn', 'gbt')
FINETUNE_STRATEGIES = ('feature_extraction', 'full', 'gradual_unfreezing',
                       'discriminative_lr')
TUNER_ALGORITHMS = ('hyperband', 'random', 'bayesian', 'grid')
PARALLEL_AUTO = 'auto'  # tuner.parallel_trials: the cores available
NUMERIC_SCALINGS = ('z_score', 'min_max', 'none')
# Keras metric names the Tuner objective and early stopping may monitor:
# every task's (modules/tasks.py says which each task reports, and which
# way is better).
MONITOR_DIRECTIONS = tasks.monitor_directions()
MONITORS = tuple(MONITOR_DIRECTIONS)

# The exported model's contract (modules/train.py), read by the pipeline
# definition's eval config and by the serving tools.
PROBABILITY = tasks.PROBABILITY
PROBABILITIES = tasks.PROBABILITIES
PREDICTION = tasks.PREDICTION
RAW_SIGNATURE = 'serving_raw'  # one input per raw feature
# Raw tf.Examples (label included) to the transformed features and label:
# what the Evaluator reads the transformed label through.
TRANSFORM_FEATURES_SIGNATURE = 'transform_features'


class Strict(BaseModel):
  """A frozen section that refuses unknown keys, and values of another
  type than its fields': no `true` for a number, no "3" for an int, no
  NaN or infinity anywhere a number is expected (strict pydantic; an
  int is still a float)."""
  model_config = ConfigDict(extra='forbid', frozen=True, strict=True,
                            allow_inf_nan=False)


class IntRange(Strict):
  """An integer hyperparameter: searched over [min, max] in `step`s."""
  min: int = Field(
      ge=0,
      description='The smallest value searched (the default).')
  max: int = Field(
      ge=0,
      description='The largest value searched.')
  step: int = Field(
      default=1, ge=1,
      description='The step between values searched.')


class FloatRange(Strict):
  """A float hyperparameter: searched over [min, max]."""
  min: float = Field(
      ge=0,
      description='The smallest value searched (the default).')
  max: float = Field(
      ge=0,
      description='The largest value searched.')
  step: Optional[float] = Field(
      default=None, gt=0,
      description=('The step between values searched (with log sampling, a '
                   'factor); left out, any value.'))
  sampling: Literal['linear', 'log'] = Field(
      default='linear',
      description='linear or log: how values between min and max are sampled.')


class FinetuneSpace(Strict):
  """What the Tuner may vary when fine-tuning (training.mode: finetune).

  The head's dropout, L1/L2, optimizer, learning rate and batch size come
  from the main search space; the backbone's learning rate is the head's
  times `backbone_lr_scale`, and under discriminative_lr each lower block's
  is the one above's times `lr_decay`. `unfreeze_blocks` counts backbone
  blocks from the top (capped at the backbone's block count);
  `epochs_per_stage` is gradual unfreezing's schedule: one more block thaws
  every that many epochs.
  """
  strategy: List[Literal[FINETUNE_STRATEGIES]] = Field(  # type: ignore[valid-type]
      default=list(FINETUNE_STRATEGIES), min_length=1,
      description=('Fine-tuning strategies to choose between: '
                   'feature_extraction, full, gradual_unfreezing, '
                   'discriminative_lr.'))
  unfreeze_blocks: IntRange = Field(
      default=IntRange(min=1, max=3),
      description='Backbone blocks to unfreeze, counted from the top.')
  head_units: List[int] = Field(
      default=[64, 0], min_length=1,
      description="Units of the new head's hidden layer (0: no hidden layer).")
  backbone_lr_scale: FloatRange = Field(
      default=FloatRange(min=0.05, max=0.5, sampling='log'),
      description="The backbone's learning rate as a share of the head's.")
  lr_decay: List[float] = Field(
      default=[0.5], min_length=1,
      description=("Under discriminative_lr, each lower block's learning rate "
                   "as a share of the one above's."))
  epochs_per_stage: List[int] = Field(
      default=[2], min_length=1,
      description=('Under gradual_unfreezing, the epochs before one more block '
                   'thaws.'))


class GbtSpace(Strict):
  """What the Tuner may vary for gradient boosted trees (model.builder
  gbt; modules/gbt.py): the first value of each list, and the minimum of
  each range, is the default."""
  num_trees: IntRange = Field(
      default=IntRange(min=100, max=300, step=100),
      description='Trees in the ensemble (boosting rounds).')
  max_depth: IntRange = Field(default=IntRange(min=4, max=6),
                              description='The depth of each tree.')
  shrinkage: FloatRange = Field(
      default=FloatRange(min=0.05, max=0.2, sampling='log'),
      description='The learning rate: how much each tree corrects.')
  min_examples: List[int] = Field(
      default=[5, 10, 20], min_length=1,
      description='The fewest training rows in a leaf.')
  subsample: List[float] = Field(
      default=[1.0, 0.8], min_length=1,
      description='The share of rows each tree is trained on.')


class SearchSpace(Strict):
  """The one search space shared by the Tuner and the Trainer.

  The first value of each list, and the minimum of each range, is the default
  the Trainer uses when no tuned hyperparameters arrive. From-scratch models
  search the architecture (num_layers, units, batch_norm); fine-tuning
  searches `finetune` instead, plus the shared optimizer settings. Field
  names are the Keras Tuner hyperparameter names (modules/search_space.py).
  """
  num_layers: IntRange = Field(
      default=IntRange(min=1, max=3),
      description='Hidden layers (cnn: conv blocks).')
  units: IntRange = Field(
      default=IntRange(min=16, max=128, step=16),
      description=("Units of each hidden layer (cnn: the first block's "
                   'filters, doubling per block).'))
  dropout: FloatRange = Field(
      default=FloatRange(min=0.0, max=0.5, step=0.1),
      description='The dropout rate after each hidden layer.')
  l1: List[float] = Field(
      default=[0.0], min_length=1,
      description='L1 regularisation factors.')
  l2: List[float] = Field(
      default=[0.0, 1e-4, 1e-3], min_length=1,
      description='L2 regularisation factors.')
  batch_norm: List[bool] = Field(
      default=[False, True], min_length=1,
      description='Whether to add batch normalisation.')
  optimizer: List[Literal[OPTIMIZERS]] = Field(  # type: ignore[valid-type]
      default=['adam', 'rmsprop', 'sgd'], min_length=1,
      description='Optimizers to choose between: adam, rmsprop, sgd.')
  learning_rate: FloatRange = Field(
      default=FloatRange(min=1e-4, max=1e-2, sampling='log'),
      description="The optimizer's learning rate.")
  batch_size: List[int] = Field(
      default=[32, 16, 64], min_length=1,
      description='Training batch sizes.')
  finetune: FinetuneSpace = Field(
      default=FinetuneSpace(),
      description='What the Tuner may vary when fine-tuning.')
  gbt: GbtSpace = Field(
      default=GbtSpace(),
      description='What the Tuner may vary for gradient boosted trees.')
  # The learned text encoder's embedding width (modules/encoders.py).
  embedding_dim: List[int] = Field(
      default=[64, 32], min_length=1,
      description="The learned text encoder's embedding width.")


class VocabularySpec(Strict):
  top_k: Optional[int] = Field(
      default=None, ge=1,
      description=('Keep the k most frequent values in the vocabulary; left '
                   'out, all.'))
  num_oov_buckets: int = Field(
      default=1, ge=1,
      description='Buckets for values outside the vocabulary.')


NUMERIC_FILLS = ('mean', 'median', 'zero')
CATEGORICAL_FILLS = ('missing_bucket', 'most_frequent')


class ConstantToken(Strict):
  """A categorical feature's missing values become this token."""
  constant: str = Field(
      description='The token a missing categorical value becomes.')


NumericFill = Union[Literal[NUMERIC_FILLS], float]  # type: ignore[valid-type]
CategoricalFill = Union[Literal[CATEGORICAL_FILLS], ConstantToken]  # type: ignore[valid-type]


class FeatureImpute(Strict):
  """One feature's rule, overriding its type's: `fill` (a numeric or a
  categorical fill, as the feature is), `indicator`."""
  fill: Optional[Union[NumericFill, CategoricalFill]] = Field(
      default=None,
      description=("This feature's fill, of its kind (a numeric or a "
                   'categorical fill).'))
  indicator: Optional[bool] = Field(
      default=None,
      description="Whether to add this feature's was-missing indicator.")


class ImputeSpec(Strict):
  """What a missing value becomes, computed by tf.Transform analyzers over
  the train split and applied inside the serving graph too.

  numeric: `mean` | `median` | `zero` | a number. categorical:
  `missing_bucket` (missing is a category of its own) | `most_frequent` |
  `{constant: TOKEN}`. `indicator`: add `<feature>_missing`, 1.0 where the
  value was missing. `features`: per-feature overrides.
  """
  numeric: NumericFill = Field(
      default='mean',
      description=("A missing numeric value's fill: mean, median, zero or a "
                   'number.'))
  categorical: CategoricalFill = Field(
      default='missing_bucket',
      description=("A missing categorical value's fill: missing_bucket, "
                   'most_frequent or {constant: TOKEN}.'))
  indicator: bool = Field(
      default=False,
      description=('Add <feature>_missing, 1.0 where the value was missing, '
                   'for every feature.'))
  features: Dict[str, FeatureImpute] = Field(
      default={},
      description='Per-feature overrides of fill and indicator.')

  def rule(self, feature: str, categorical: bool
           ) -> Tuple[Union[NumericFill, CategoricalFill], bool]:
    """(fill, indicator) for one feature."""
    own = self.features.get(feature, FeatureImpute())
    fill = own.fill if own.fill is not None else (
        self.categorical if categorical else self.numeric)
    indicator = own.indicator if own.indicator is not None else self.indicator
    return fill, indicator


class TextSpec(Strict):
  """How free text is tokenized in the Transform graph for the learned
  encoders (modules/encoders.py: bag, embedding): lower-cased words (runs
  of letters and digits), the first `max_tokens` of each value kept, over
  a vocabulary of the train split's `vocabulary_size` most frequent words
  that occur in at least `min_frequency` rows. A pretrained encoder reads
  the raw string with its own tokenizer instead."""
  max_tokens: int = Field(
      default=100, ge=1, le=2048,
      description='The first this many tokens of each value are kept.')
  vocabulary_size: int = Field(
      default=20000, ge=10,
      description=("The vocabulary's size: the train split's most frequent "
                   'words.'))
  min_frequency: int = Field(
      default=2, ge=1,
      description=('A word is in the vocabulary if it occurs in at least this '
                   'many rows.'))


class AugmentSpec(Strict):
  """Training-only image augmentation (Keras preprocessing layers, active
  only while fitting): a horizontal `flip`, a random `rotation` (a share
  of a full turn), a random `zoom` (a share of the size) and `contrast`
  (a factor's range around 1)."""
  flip: bool = Field(
      default=True,
      description='A random horizontal flip.')
  rotation: float = Field(
      default=0.05, ge=0, le=0.5,
      description='A random rotation, as a share of a full turn.')
  zoom: float = Field(
      default=0.1, ge=0, lt=1,
      description='A random zoom, as a share of the size.')
  contrast: float = Field(
      default=0.1, ge=0, lt=1,
      description="A random contrast factor's range around 1.")


class PreprocessingSpec(Strict):
  """`statistics`: also have Transform compute statistics of the data before
  and after the transformation (TFX's default; StatisticsGen has the raw
  data's already, and they cost Transform a third of its time here).
  `text`: the learned encoders' tokenization. `image_size`: the square
  side every image is resized to for its encoder (left out: 224 for a
  pretrained backbone, 64 for the learned cnn). `augment`: training-only
  image augmentation (`true` for the defaults)."""
  numeric: Literal[NUMERIC_SCALINGS] = Field(  # type: ignore[valid-type]
      default='z_score',
      description='How numeric features are scaled: z_score, min_max or none.')
  categorical: VocabularySpec = Field(
      default=VocabularySpec(),
      description=('The vocabulary of categorical features, computed over the '
                   'train split.'))
  impute: ImputeSpec = Field(
      default=ImputeSpec(),
      description='What a missing value becomes.')
  statistics: bool = Field(
      default=False,
      description=("Also have Transform compute the data's statistics before "
                   "and after transforming (TFX's default)."))
  text: TextSpec = Field(
      default=TextSpec(),
      description='How free text is tokenized for the learned encoders.')
  image_size: Optional[int] = Field(
      default=None, ge=16, le=1024,
      description=('The square side every image is resized to (left out: 224 '
                   'for a pretrained backbone, 64 for the learned cnn).'))
  augment: Union[bool, AugmentSpec] = Field(
      default=False,
      description=('Training-only image augmentation: true for the defaults, '
                   'or its settings.'))

  @property
  def augmentation(self) -> Optional[AugmentSpec]:
    """The augmentation to apply, or None."""
    if self.augment is True:
      return AugmentSpec()
    return self.augment or None


class ImageSpec(Strict):
  """How the cnn builder lays the numeric features (in order, row-major)
  out as an image."""
  height: int = Field(
      ge=1,
      description='Image rows.')
  width: int = Field(
      ge=1,
      description='Image columns.')
  channels: int = Field(
      default=1, ge=1,
      description='Values per pixel.')

  @property
  def shape(self) -> Tuple[int, int, int]:
    return (self.height, self.width, self.channels)


Builder = Literal[MODEL_BUILDERS]  # type: ignore[valid-type]
# Encoders learned from scratch, by the kind of column they take
# (modules/encoders.py builds them).
TEXT_ENCODERS = ('bag', 'embedding')
IMAGE_ENCODERS = ('cnn',)
LEARNED_ENCODERS = TEXT_ENCODERS + IMAGE_ENCODERS
PRETRAINED_SOURCES = ('huggingface', 'keras_application', 'keras_file',
                      'saved_model')
Learned = Literal[LEARNED_ENCODERS]  # type: ignore[valid-type]


class PretrainedEncoder(Strict):
  """A pretrained encoder for one column, from exactly one source:
  `huggingface`: a BERT-family checkpoint folder (config.json,
  model.safetensors, vocab.txt) or a model name (the bundled
  sentence-transformers/all-MiniLM-L6-v2 offline); its WordPiece tokenizer
  runs in the model's graph, over at most `max_tokens` tokens.
  `keras_application`: a tf_keras.applications model by name, or the
  project's EfficientNetLite0, with `weights`: imagenet (downloaded by
  Keras on first use; EfficientNetLite0's come from an installed package)
  or a weights file. `keras_file` (.keras / .h5) or `saved_model` (a
  folder): any Keras model from the column's input to features."""
  huggingface: Optional[str] = Field(
      default=None,
      description=('A BERT-family checkpoint folder, or a Hugging Face model '
                   'name.'))
  keras_application: Optional[str] = Field(
      default=None,
      description=('A tf_keras.applications model by name, or '
                   'EfficientNetLite0.'))
  weights: Optional[str] = Field(
      default=None,
      description="keras_application's weights: imagenet or a weights file.")
  keras_file: Optional[str] = Field(
      default=None,
      description=("A Keras model file (.keras or .h5) from the column's input "
                   'to features.'))
  saved_model: Optional[str] = Field(
      default=None,
      description=('A SavedModel folder holding a Keras model from the '
                   "column's input to features."))
  max_tokens: int = Field(
      default=128, ge=8, le=512,
      description='The most WordPiece tokens a Hugging Face encoder reads.')

  @pydantic.model_validator(mode='after')
  def _one_source(self):
    given = [name for name in PRETRAINED_SOURCES if getattr(self, name)]
    if len(given) != 1:
      raise ValueError(f'give exactly one of {", ".join(PRETRAINED_SOURCES)}'
                       f' (got {", ".join(given) or "none"})')
    if self.weights is not None and not self.keras_application:
      raise ValueError('weights go with keras_application only')
    return self

  @property
  def source(self) -> Tuple[str, str]:
    """(source kind, what it names)."""
    for name in PRETRAINED_SOURCES:
      if getattr(self, name):
        return name, getattr(self, name)
    raise AssertionError('validated: one source')


EncoderChoice = Union[Learned, List[Learned], PretrainedEncoder]


class ModelSpec(Strict):
  """`dnn`: dense layers over all features. `cnn`: conv blocks over the
  numeric features laid out as `image`; num_layers counts conv blocks and
  units is the first block's filters (doubling per block). `gbt`: gradient
  boosted trees (TensorFlow Decision Forests) over the same transformed
  features, searched over `search_space.gbt`. A list (`[dnn, gbt]`) lets
  the Tuner choose the builder with the rest."""
  builder: Union[Builder, List[Builder]] = Field(
      default='dnn',
      description='dnn, cnn or gbt, or a list the Tuner chooses from.')
  image: Optional[ImageSpec] = Field(
      default=None,
      description=('How the cnn builder lays the numeric features out as an '
                   'image.'))
  encoders: Dict[str, EncoderChoice] = Field(
      default={},
      description=("Each text or image column's encoder: a learned one (or a "
                   'list to choose from), or a pretrained one.'))
  search_space: SearchSpace = Field(
      default=SearchSpace(),
      description='The search space the Tuner and the Trainer share.')

  def encoder_choices(self, column: str, kind: str
                      ) -> Union[List[str], PretrainedEncoder]:
    """A text or image column's encoder: a pretrained one, or the learned
    ones to choose between (the default first; left out of `encoders`:
    every learned encoder of the column's kind)."""
    chosen = self.encoders.get(column)
    if isinstance(chosen, PretrainedEncoder):
      return chosen
    if chosen is None:
      return list(TEXT_ENCODERS if kind == 'text' else IMAGE_ENCODERS)
    return list(dict.fromkeys(chosen if isinstance(chosen, list)
                              else [chosen]))

  def pretrained(self) -> Dict[str, PretrainedEncoder]:
    """The columns with a pretrained encoder."""
    return {column: chosen for column, chosen in self.encoders.items()
            if isinstance(chosen, PretrainedEncoder)}

  @property
  def builders(self) -> List[str]:
    """The builders to build or to choose between, the default first."""
    return (list(dict.fromkeys(self.builder))
            if isinstance(self.builder, list) else [self.builder])


class TunerSpec(Strict):
  """Keras Tuner settings. `max_trials` caps every algorithm's trials."""
  enabled: bool = Field(
      default=True,
      description=('Whether the Tuner runs (off: the Trainer takes the search '
                   "space's defaults)."))
  algorithm: Literal[TUNER_ALGORITHMS] = Field(  # type: ignore[valid-type]
      default='hyperband',
      description='hyperband, random, bayesian or grid.')
  objective: Literal[MONITORS] = Field(  # type: ignore[valid-type]
      default='val_loss',
      description=('The Keras metric the Tuner optimises (one the task '
                   'reports).'))
  max_trials: int = Field(
      default=10, ge=1,
      description='The most trials, whatever the algorithm.')
  max_epochs: int = Field(
      default=6, ge=1,
      description=('The most epochs a trial trains (random, bayesian and grid '
                   'train each trial this many).'))
  factor: int = Field(
      default=3, ge=2,
      description="Hyperband's reduction factor between brackets.")
  hyperband_iterations: int = Field(
      default=1, ge=1,
      description='How many times Hyperband runs its whole bracket schedule.')
  seed: int = Field(
      default=42,
      description="The Tuner's random seed.")
  # Trials at once, each in its own process (components/parallel_search.py),
  # or on Kubeflow in its own pod; 'auto': the cores available where the
  # Tuner runs (local only).
  parallel_trials: Union[Annotated[int, Field(ge=1)],
                         Literal[PARALLEL_AUTO]] = Field(  # type: ignore[valid-type]
      default=1,
      description=('Trials at once, each in its own process (on Kubeflow, its '
                   'own pod), or auto for the cores available.'))

  @property
  def direction(self) -> str:
    """'min' or 'max': which way the objective improves."""
    return MONITOR_DIRECTIONS[self.objective]


class EarlyStoppingSpec(Strict):
  monitor: Literal[MONITORS] = Field(  # type: ignore[valid-type]
      default='val_loss',
      description='The Keras metric watched (one the task reports).')
  patience: int = Field(
      default=5, ge=0,
      description='Epochs without improvement before training stops.')
  min_delta: float = Field(
      default=0.0, ge=0,
      description='The least change that counts as an improvement.')


Loss = Literal[tasks.LOSSES]  # type: ignore[valid-type]
ClassWeight = Union[Literal[tasks.CLASS_WEIGHT_MODES],  # type: ignore[valid-type]
                    Dict[Union[str, int], Annotated[float, Field(gt=0)]]]


class TrialTrainingSpec(Strict):
  """What a model trains by, in a tuning trial as in the Trainer.

  `loss` (regression): mse, mae or huber, on the standardised label; a
  list is searched by the Tuner. `class_weight` (classification): none,
  balanced (each class weighs rows / (classes x its rows) in the train
  split) or `{CLASS: weight}` by class name or index; a list is searched.
  """
  mode: Literal['scratch', 'finetune'] = Field(
      default='scratch',
      description=('scratch trains a new model; finetune starts from a base '
                   'model or a pretrained encoder.'))
  early_stopping: Optional[EarlyStoppingSpec] = Field(
      default=EarlyStoppingSpec(),
      description=('Stop training when monitor stops improving; null: train '
                   'every epoch.'))
  loss: Union[Loss, List[Loss]] = Field(
      default='mse',
      description=("Regression's loss on the standardised label: mse, mae or "
                   'huber, or a list the Tuner searches.'))
  class_weight: Union[ClassWeight, List[ClassWeight]] = Field(
      default='none',
      description=("Classification's class weights: none, balanced or {CLASS: "
                   'weight}, or a list the Tuner searches.'))

  def choices(self) -> Dict[str, List[Any]]:
    """The settings a search may vary, each as its list of choices (the
    first the default)."""
    return {name: (list(value) if isinstance(value, list) else [value])
            for name, value in (('loss', self.loss),
                                ('class_weight', self.class_weight))}


class TrainingSpec(TrialTrainingSpec):
  """How the Trainer trains (the spec's `training` section adds where a
  fine-tuning base model comes from, which the runner resolves)."""
  epochs: int = Field(
      default=50, ge=1,
      description='Epochs the Trainer trains for.')
  seed: int = Field(
      default=42,
      description="The Trainer's random seed.")


class ConfigError(ValueError):
  """A custom_config that is not this project's module config (e.g. a
  pipeline compiled by another version of the project). One line."""


_C = TypeVar('_C', bound='ModuleConfig')


class ModuleConfig(Strict):
  """A component's module config; `code_version` fingerprints the module
  code (TFX does not fingerprint code taken by import path, so it goes into
  the cache key through custom_config)."""
  code_version: str = ''

  def to_custom_config(self) -> Dict[str, Any]:
    """Plain JSON values, for a component's custom_config."""
    return self.model_dump(mode='json')

  @classmethod
  def from_custom_config(cls: Type[_C],
                         custom_config: Optional[Mapping[str, Any]]) -> _C:
    """Parses a callback's custom_config back into this type.

    Raises:
      ConfigError: naming the first key that does not fit.
    """
    try:
      return cls.model_validate(dict(custom_config or {}))
    except pydantic.ValidationError as e:
      first = e.errors()[0]
      key = '.'.join(str(p) for p in first['loc']) or '<top level>'
      raise ConfigError(
          f'custom_config is not a {cls.__name__}: {key}: {first["msg"]}; '
          'recompile the pipeline with this version of the project'
      ) from None

  @classmethod
  def sections(cls) -> List[str]:
    """The spec sections this config carries."""
    return [name for name in cls.model_fields if name != 'code_version']


class DecisionSpec(Strict):
  """`decision_threshold` (binary): the probability from which a row is
  class 1, for the served class and for accuracy, precision and recall."""
  decision_threshold: float = Field(
      default=0.5, gt=0, lt=1,
      description=('Binary: the probability from which a row is class 1, for '
                   'accuracy, precision, recall and the served class.'))


class TransformConfig(ModuleConfig):
  """What preprocessing_fn reads. The task is known by now (the runner
  reads it from the data when the spec leaves it out)."""
  features: FeaturesSpec
  preprocessing: PreprocessingSpec = PreprocessingSpec()

  @property
  def task(self) -> tasks.Task:
    """The task (known for a model config; raises while the classes are
    not counted)."""
    return tasks.task_for(self.features)

  @property
  def label_transform(self) -> str:
    return tasks.label_transform(self.features)

  def indicators(self) -> List[str]:
    """The features whose was-missing indicator the Transform adds."""
    impute = self.preprocessing.impute
    return [key for key, kind in kinds.columns(self.features)
            if impute.rule(key, not kind.fill_is_numeric)[1]]

  def numeric_inputs(self) -> List[str]:
    """The model's float inputs: each feature's by its kind, then the
    indicators."""
    return ([name for key, kind in kinds.columns(self.features)
             for name in kind.float_inputs(key)] +
            [indicator_name(k) for k in self.indicators()])

  def id_inputs(self) -> Dict[str, str]:
    """The model's id inputs (transformed name -> raw column)."""
    return {name: key for key, kind in kinds.columns(self.features)
            for name in kind.id_inputs(key)}


class _ModelConfig(TransformConfig):
  """A config that builds models. The task is known by now (the runner
  reads it from the data when the spec leaves it out)."""
  model: ModelSpec = ModelSpec()

  @pydantic.model_validator(mode='after')
  def _task_known(self):
    if not tasks.is_known(self.features):
      raise ValueError('features.task or features.num_classes is not '
                       'resolved')
    return self


class TrainerConfig(_ModelConfig):
  """What run_fn reads."""
  training: TrainingSpec = TrainingSpec()
  evaluation: DecisionSpec = DecisionSpec()


class TuningTrainingSpec(TrialTrainingSpec):
  """The part of `training` a tuning trial uses. Not the epochs or the
  seed, which are the Trainer's: changing them re-runs the Trainer, not
  the Tuner."""


class TunerConfig(_ModelConfig):
  """What tuner_fn reads."""
  training: TuningTrainingSpec = TuningTrainingSpec()
  tuner: TunerSpec = TunerSpec()
