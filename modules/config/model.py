"""The model section (builders, encoders, the search space) and the
exported model's contract."""

from typing import Dict, List, Literal, Optional, Tuple, Union

import pydantic
from pydantic import Field

from modules import tasks
from modules.config.base import Strict
from modules.config.search import SearchSpace

MODEL_BUILDERS = ('dnn', 'cnn', 'gbt')

# The exported model's contract (modules/train.py), read by the pipeline
# definition's eval config and by the serving tools.
PROBABILITY = tasks.PROBABILITY
PROBABILITIES = tasks.PROBABILITIES
PREDICTION = tasks.PREDICTION
RAW_SIGNATURE = 'serving_raw'  # one input per raw feature
# Raw tf.Examples (label included) to the transformed features and label:
# what the Evaluator reads the transformed label through.
TRANSFORM_FEATURES_SIGNATURE = 'transform_features'


class ImageSpec(Strict):
  """How the cnn builder lays the numeric features (in order, row-major)
  out as an image."""

  height: int = Field(ge=1, description='Image rows.')
  width: int = Field(ge=1, description='Image columns.')
  channels: int = Field(default=1, ge=1, description='Values per pixel.')

  @property
  def shape(self) -> Tuple[int, int, int]:
    return (self.height, self.width, self.channels)


Builder = Literal[MODEL_BUILDERS]  # type: ignore[valid-type]
# Encoders learned from scratch, by the kind of column they take
# (modules/encoders.py builds them).
TEXT_ENCODERS = ('bag', 'embedding')
IMAGE_ENCODERS = ('cnn',)
LEARNED_ENCODERS = TEXT_ENCODERS + IMAGE_ENCODERS
PRETRAINED_SOURCES = (
  'huggingface',
  'keras_application',
  'keras_file',
  'saved_model',
)
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
    description=(
      'A BERT-family checkpoint folder, or a Hugging Face model name.'
    ),
  )
  keras_application: Optional[str] = Field(
    default=None,
    description=(
      'A tf_keras.applications model by name, or EfficientNetLite0.'
    ),
  )
  weights: Optional[str] = Field(
    default=None,
    description="keras_application's weights: imagenet or a weights file.",
  )
  keras_file: Optional[str] = Field(
    default=None,
    description=(
      "A Keras model file (.keras or .h5) from the column's input to features."
    ),
  )
  saved_model: Optional[str] = Field(
    default=None,
    description=(
      'A SavedModel folder holding a Keras model from the '
      "column's input to features."
    ),
  )
  max_tokens: int = Field(
    default=128,
    ge=8,
    le=512,
    description='The most WordPiece tokens a Hugging Face encoder reads.',
  )

  @pydantic.model_validator(mode='after')
  def _one_source(self):
    given = [name for name in PRETRAINED_SOURCES if getattr(self, name)]
    if len(given) != 1:
      raise ValueError(
        f'give exactly one of {", ".join(PRETRAINED_SOURCES)}'
        f' (got {", ".join(given) or "none"})'
      )
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
    description='dnn, cnn or gbt, or a list the Tuner chooses from.',
  )
  image: Optional[ImageSpec] = Field(
    default=None,
    description=(
      'How the cnn builder lays the numeric features out as an image.'
    ),
  )
  encoders: Dict[str, EncoderChoice] = Field(
    default={},
    description=(
      "Each text or image column's encoder: a learned one (or a "
      'list to choose from), or a pretrained one.'
    ),
  )
  search_space: SearchSpace = Field(
    default=SearchSpace(),
    description='The search space the Tuner and the Trainer share.',
  )

  def encoder_choices(
    self, column: str, kind: str
  ) -> Union[List[str], PretrainedEncoder]:
    """A text or image column's encoder: a pretrained one, or the learned
    ones to choose between (the default first; left out of `encoders`:
    every learned encoder of the column's kind)."""
    chosen = self.encoders.get(column)
    if isinstance(chosen, PretrainedEncoder):
      return chosen
    if chosen is None:
      return list(TEXT_ENCODERS if kind == 'text' else IMAGE_ENCODERS)
    return list(dict.fromkeys(chosen if isinstance(chosen, list) else [chosen]))

  def pretrained(self) -> Dict[str, PretrainedEncoder]:
    """The columns with a pretrained encoder."""
    return {
      column: chosen
      for column, chosen in self.encoders.items()
      if isinstance(chosen, PretrainedEncoder)
    }

  @property
  def builders(self) -> List[str]:
    """The builders to build or to choose between, the default first."""
    return (
      list(dict.fromkeys(self.builder))
      if isinstance(self.builder, list)
      else [self.builder]
    )
