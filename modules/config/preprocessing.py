"""The preprocessing section: what preprocessing_fn scales, encodes,
fills and tokenizes."""

from typing import Dict, Literal, Optional, Tuple, Union

from pydantic import Field

from modules.config.base import Strict

NUMERIC_SCALINGS = ('z_score', 'min_max', 'none')


class VocabularySpec(Strict):
  top_k: Optional[int] = Field(
    default=None,
    ge=1,
    description=(
      'Keep the k most frequent values in the vocabulary; left out, all.'
    ),
  )
  num_oov_buckets: int = Field(
    default=1, ge=1, description='Buckets for values outside the vocabulary.'
  )


NUMERIC_FILLS = ('mean', 'median', 'zero')
CATEGORICAL_FILLS = ('missing_bucket', 'most_frequent')


class ConstantToken(Strict):
  """A categorical feature's missing values become this token."""

  constant: str = Field(
    description='The token a missing categorical value becomes.'
  )


NumericFill = Union[Literal[NUMERIC_FILLS], float]  # type: ignore[valid-type]
CategoricalFill = Union[Literal[CATEGORICAL_FILLS], ConstantToken]  # type: ignore[valid-type]


class FeatureImpute(Strict):
  """One feature's rule, overriding its type's: `fill` (a numeric or a
  categorical fill, as the feature is), `indicator`."""

  fill: Optional[Union[NumericFill, CategoricalFill]] = Field(
    default=None,
    description=(
      "This feature's fill, of its kind (a numeric or a categorical fill)."
    ),
  )
  indicator: Optional[bool] = Field(
    default=None,
    description="Whether to add this feature's was-missing indicator.",
  )


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
    description=(
      "A missing numeric value's fill: mean, median, zero or a number."
    ),
  )
  categorical: CategoricalFill = Field(
    default='missing_bucket',
    description=(
      "A missing categorical value's fill: missing_bucket, "
      'most_frequent or {constant: TOKEN}.'
    ),
  )
  indicator: bool = Field(
    default=False,
    description=(
      'Add <feature>_missing, 1.0 where the value was missing, '
      'for every feature.'
    ),
  )
  features: Dict[str, FeatureImpute] = Field(
    default={}, description='Per-feature overrides of fill and indicator.'
  )

  def rule(
    self, feature: str, categorical: bool
  ) -> Tuple[Union[NumericFill, CategoricalFill], bool]:
    """(fill, indicator) for one feature."""
    own = self.features.get(feature, FeatureImpute())
    fill = (
      own.fill
      if own.fill is not None
      else (self.categorical if categorical else self.numeric)
    )
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
    default=100,
    ge=1,
    le=2048,
    description='The first this many tokens of each value are kept.',
  )
  vocabulary_size: int = Field(
    default=20000,
    ge=10,
    description=(
      "The vocabulary's size: the train split's most frequent words."
    ),
  )
  min_frequency: int = Field(
    default=2,
    ge=1,
    description=(
      'A word is in the vocabulary if it occurs in at least this many rows.'
    ),
  )


class AugmentSpec(Strict):
  """Training-only image augmentation (Keras preprocessing layers, active
  only while fitting): a horizontal `flip`, a random `rotation` (a share
  of a full turn), a random `zoom` (a share of the size) and `contrast`
  (a factor's range around 1)."""

  flip: bool = Field(default=True, description='A random horizontal flip.')
  rotation: float = Field(
    default=0.05,
    ge=0,
    le=0.5,
    description='A random rotation, as a share of a full turn.',
  )
  zoom: float = Field(
    default=0.1,
    ge=0,
    lt=1,
    description='A random zoom, as a share of the size.',
  )
  contrast: float = Field(
    default=0.1,
    ge=0,
    lt=1,
    description="A random contrast factor's range around 1.",
  )


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
    description='How numeric features are scaled: z_score, min_max or none.',
  )
  categorical: VocabularySpec = Field(
    default=VocabularySpec(),
    description=(
      'The vocabulary of categorical features, computed over the train split.'
    ),
  )
  impute: ImputeSpec = Field(
    default=ImputeSpec(), description='What a missing value becomes.'
  )
  statistics: bool = Field(
    default=False,
    description=(
      "Also have Transform compute the data's statistics before "
      "and after transforming (TFX's default)."
    ),
  )
  text: TextSpec = Field(
    default=TextSpec(),
    description='How free text is tokenized for the learned encoders.',
  )
  image_size: Optional[int] = Field(
    default=None,
    ge=16,
    le=1024,
    description=(
      'The square side every image is resized to (left out: 224 '
      'for a pretrained backbone, 64 for the learned cnn).'
    ),
  )
  augment: Union[bool, AugmentSpec] = Field(
    default=False,
    description=(
      'Training-only image augmentation: true for the defaults, '
      'or its settings.'
    ),
  )

  @property
  def augmentation(self) -> Optional[AugmentSpec]:
    """The augmentation to apply, or None."""
    if self.augment is True:
      return AugmentSpec()
    return self.augment or None
