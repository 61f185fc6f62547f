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
  min: int = Field(ge=0)
  max: int = Field(ge=0)
  step: int = Field(default=1, ge=1)


class FloatRange(Strict):
  """A float hyperparameter: searched over [min, max]."""
  min: float = Field(ge=0)
  max: float = Field(ge=0)
  step: Optional[float] = Field(default=None, gt=0)
  sampling: Literal['linear', 'log'] = 'linear'


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
      default=list(FINETUNE_STRATEGIES), min_length=1)
  unfreeze_blocks: IntRange = IntRange(min=1, max=3)
  head_units: List[int] = Field(default=[64, 0], min_length=1)
  backbone_lr_scale: FloatRange = FloatRange(min=0.05, max=0.5,
                                             sampling='log')
  lr_decay: List[float] = Field(default=[0.5], min_length=1)
  epochs_per_stage: List[int] = Field(default=[2], min_length=1)


class GbtSpace(Strict):
  """What the Tuner may vary for gradient boosted trees (model.builder
  gbt; modules/gbt.py): the first value of each list, and the minimum of
  each range, is the default."""
  num_trees: IntRange = Field(
      default=IntRange(min=100, max=300, step=100),
      description='trees in the ensemble (boosting rounds)')
  max_depth: IntRange = Field(default=IntRange(min=4, max=6),
                              description='the depth of each tree')
  shrinkage: FloatRange = Field(
      default=FloatRange(min=0.05, max=0.2, sampling='log'),
      description='the learning rate: how much each tree corrects')
  min_examples: List[int] = Field(
      default=[5, 10, 20], min_length=1,
      description='the fewest training rows in a leaf')
  subsample: List[float] = Field(
      default=[1.0, 0.8], min_length=1,
      description='the share of rows each tree is trained on')


class SearchSpace(Strict):
  """The one search space shared by the Tuner and the Trainer.

  The first value of each list, and the minimum of each range, is the default
  the Trainer uses when no tuned hyperparameters arrive. From-scratch models
  search the architecture (num_layers, units, batch_norm); fine-tuning
  searches `finetune` instead, plus the shared optimizer settings. Field
  names are the Keras Tuner hyperparameter names (modules/search_space.py).
  """
  num_layers: IntRange = IntRange(min=1, max=3)
  units: IntRange = IntRange(min=16, max=128, step=16)
  dropout: FloatRange = FloatRange(min=0.0, max=0.5, step=0.1)
  l1: List[float] = Field(default=[0.0], min_length=1)
  l2: List[float] = Field(default=[0.0, 1e-4, 1e-3], min_length=1)
  batch_norm: List[bool] = Field(default=[False, True], min_length=1)
  optimizer: List[Literal[OPTIMIZERS]] = Field(  # type: ignore[valid-type]
      default=['adam', 'rmsprop', 'sgd'], min_length=1)
  learning_rate: FloatRange = FloatRange(min=1e-4, max=1e-2, sampling='log')
  batch_size: List[int] = Field(default=[32, 16, 64], min_length=1)
  finetune: FinetuneSpace = FinetuneSpace()
  gbt: GbtSpace = GbtSpace()
  # The learned text encoder's embedding width (modules/encoders.py).
  embedding_dim: List[int] = Field(default=[64, 32], min_length=1)


class VocabularySpec(Strict):
  top_k: Optional[int] = Field(default=None, ge=1)
  num_oov_buckets: int = Field(default=1, ge=1)


NUMERIC_FILLS = ('mean', 'median', 'zero')
CATEGORICAL_FILLS = ('missing_bucket', 'most_frequent')


class ConstantToken(Strict):
  """A categorical feature's missing values become this token."""
  constant: str


NumericFill = Union[Literal[NUMERIC_FILLS], float]  # type: ignore[valid-type]
CategoricalFill = Union[Literal[CATEGORICAL_FILLS], ConstantToken]  # type: ignore[valid-type]


class FeatureImpute(Strict):
  """One feature's rule, overriding its type's: `fill` (a numeric or a
  categorical fill, as the feature is), `indicator`."""
  fill: Optional[Union[NumericFill, CategoricalFill]] = None
  indicator: Optional[bool] = None


class ImputeSpec(Strict):
  """What a missing value becomes, computed by tf.Transform analyzers over
  the train split and applied inside the serving graph too.

  numeric: `mean` | `median` | `zero` | a number. categorical:
  `missing_bucket` (missing is a category of its own) | `most_frequent` |
  `{constant: TOKEN}`. `indicator`: add `<feature>_missing`, 1.0 where the
  value was missing. `features`: per-feature overrides.
  """
  numeric: NumericFill = 'mean'
  categorical: CategoricalFill = 'missing_bucket'
  indicator: bool = False
  features: Dict[str, FeatureImpute] = {}

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
  max_tokens: int = Field(default=100, ge=1, le=2048)
  vocabulary_size: int = Field(default=20000, ge=10)
  min_frequency: int = Field(default=2, ge=1)


class AugmentSpec(Strict):
  """Training-only image augmentation (Keras preprocessing layers, active
  only while fitting): a horizontal `flip`, a random `rotation` (a share
  of a full turn), a random `zoom` (a share of the size) and `contrast`
  (a factor's range around 1)."""
  flip: bool = True
  rotation: float = Field(default=0.05, ge=0, le=0.5)
  zoom: float = Field(default=0.1, ge=0, lt=1)
  contrast: float = Field(default=0.1, ge=0, lt=1)


class PreprocessingSpec(Strict):
  """`statistics`: also have Transform compute statistics of the data before
  and after the transformation (TFX's default; StatisticsGen has the raw
  data's already, and they cost Transform a third of its time here).
  `text`: the learned encoders' tokenization. `image_size`: the square
  side every image is resized to for its encoder (left out: 224 for a
  pretrained backbone, 64 for the learned cnn). `augment`: training-only
  image augmentation (`true` for the defaults)."""
  numeric: Literal[NUMERIC_SCALINGS] = 'z_score'  # type: ignore[valid-type]
  categorical: VocabularySpec = VocabularySpec()
  impute: ImputeSpec = ImputeSpec()
  statistics: bool = False
  text: TextSpec = TextSpec()
  image_size: Optional[int] = Field(default=None, ge=16, le=1024)
  augment: Union[bool, AugmentSpec] = False

  @property
  def augmentation(self) -> Optional[AugmentSpec]:
    """The augmentation to apply, or None."""
    if self.augment is True:
      return AugmentSpec()
    return self.augment or None


class ImageSpec(Strict):
  """How the cnn builder lays the numeric features (in order, row-major)
  out as an image."""
  height: int = Field(ge=1)
  width: int = Field(ge=1)
  channels: int = Field(default=1, ge=1)

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
  huggingface: Optional[str] = None
  keras_application: Optional[str] = None
  weights: Optional[str] = None
  keras_file: Optional[str] = None
  saved_model: Optional[str] = None
  max_tokens: int = Field(default=128, ge=8, le=512)

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
  builder: Union[Builder, List[Builder]] = 'dnn'
  image: Optional[ImageSpec] = None
  encoders: Dict[str, EncoderChoice] = {}
  search_space: SearchSpace = SearchSpace()

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
  enabled: bool = True
  algorithm: Literal[TUNER_ALGORITHMS] = 'hyperband'  # type: ignore[valid-type]
  objective: Literal[MONITORS] = 'val_loss'  # type: ignore[valid-type]
  max_trials: int = Field(default=10, ge=1)
  max_epochs: int = Field(default=6, ge=1)
  factor: int = Field(default=3, ge=2)
  hyperband_iterations: int = Field(default=1, ge=1)
  seed: int = 42
  # Trials at once, each in its own process (components/parallel_search.py),
  # or on Kubeflow in its own pod; 'auto': the cores available where the
  # Tuner runs (local only).
  parallel_trials: Union[Annotated[int, Field(ge=1)],
                         Literal[PARALLEL_AUTO]] = 1  # type: ignore[valid-type]

  @property
  def direction(self) -> str:
    """'min' or 'max': which way the objective improves."""
    return MONITOR_DIRECTIONS[self.objective]


class EarlyStoppingSpec(Strict):
  monitor: Literal[MONITORS] = 'val_loss'  # type: ignore[valid-type]
  patience: int = Field(default=5, ge=0)
  min_delta: float = Field(default=0.0, ge=0)


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
  mode: Literal['scratch', 'finetune'] = 'scratch'
  early_stopping: Optional[EarlyStoppingSpec] = EarlyStoppingSpec()
  loss: Union[Loss, List[Loss]] = 'mse'
  class_weight: Union[ClassWeight, List[ClassWeight]] = 'none'

  def choices(self) -> Dict[str, List[Any]]:
    """The settings a search may vary, each as its list of choices (the
    first the default)."""
    return {name: (list(value) if isinstance(value, list) else [value])
            for name, value in (('loss', self.loss),
                                ('class_weight', self.class_weight))}


class TrainingSpec(TrialTrainingSpec):
  """How the Trainer trains (the spec's `training` section adds where a
  fine-tuning base model comes from, which the runner resolves)."""
  epochs: int = Field(default=50, ge=1)
  seed: int = 42


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
  decision_threshold: float = Field(default=0.5, gt=0, lt=1)


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
