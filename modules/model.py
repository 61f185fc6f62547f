"""Keras model builders. Plain values in, a compiled tf.keras model out.

`build_model(inputs, hparams, builder)` builds a from-scratch model for the
task (modules/tasks.py: its head, loss and metrics) over the transformed
features: `dnn` (dense layers) or `cnn` (conv blocks over the numeric
features laid out as an image); `gbt` trees come from modules/gbt.py.
`compile_model` is separate so that fine-tuning can recompile a model it
did not build. The project uses Keras 2
(tf_keras) throughout: tf.Transform 1.16 and keras-tuner 1.3.5 require it.

Layer names are a contract with modules/finetune.py: the layer named
EMBEDDING is the backbone's output, and layers named `block<N>_...` form
block N, the unit that fine-tuning freezes and thaws.
"""

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Tuple

import tensorflow as tf
import tf_keras as keras
from tensorflow.python.autograph.core import config as autograph_config  # pylint: disable=g-direct-tensorflow-import

from modules import encoders, tasks
from modules.config import PROBABILITIES, PROBABILITY, EarlyStoppingSpec

__all__ = ['PROBABILITIES', 'PROBABILITY']

EMBEDDING = 'embedding'  # the backbone's output layer

OPTIMIZERS = {
  'adam': keras.optimizers.Adam,
  'sgd': lambda learning_rate: keras.optimizers.SGD(
    learning_rate=learning_rate, momentum=0.9
  ),
  'rmsprop': keras.optimizers.RMSprop,
}


def skip_autograph_in_keras() -> None:
  """Has tf.function trace Keras's own code as it is, without AutoGraph.

  AutoGraph rewrites a traced function's Python source (and that of every
  function it calls) so that Python control flow on tensors becomes graph
  control flow. Its rules leave `tensorflow` and `keras` alone, which need
  no rewriting, but Keras 2 now lives in `tf_keras`, which they do not name:
  every trace of a training step, a test step or the model's save signature
  rewrote Keras's whole call path, about 12 s per process that trains and
  5 s per save, on 2 CPUs here (benchmarks/results/profile.md). Results are
  the same: Keras branches on Python values only. The project's own code
  and a user's layers are still converted. Idempotent.
  """
  rules = autograph_config.CONVERSION_RULES
  if not any(
    isinstance(r, autograph_config.DoNotConvert) and r.matches('tf_keras')
    for r in rules
  ):
    autograph_config.CONVERSION_RULES = (
      autograph_config.DoNotConvert('tf_keras'),
    ) + tuple(rules)


skip_autograph_in_keras()


@dataclasses.dataclass(frozen=True)
class ModelInputs:
  """What the model consumes: transformed numeric keys (float, shape [1]),
  transformed categorical keys with their id counts (vocabulary + OOV),
  the text and image columns with their encoders (modules/encoders.py),
  and what it predicts."""

  numeric: List[str]
  categorical: Dict[str, int]
  task: tasks.Task = dataclasses.field(default_factory=tasks.BinaryTask)
  encoded: Dict[str, encoders.EncodedColumn] = dataclasses.field(
    default_factory=dict
  )

  def input_layers(self) -> Dict[str, tf.Tensor]:
    """A fresh keras.Input per feature: float for numeric, int64 ids, and
    what each encoded column's encoder reads."""
    layers = {
      key: keras.Input(shape=(1,), name=key, dtype=tf.float32)
      for key in self.numeric
    }
    layers.update(
      {
        key: keras.Input(shape=(1,), name=key, dtype=tf.int64)
        for key in self.categorical
      }
    )
    for column in self.encoded.values():
      layers.update(
        {
          key: keras.Input(shape=shape, name=key, dtype=dtype)
          for key, (shape, dtype) in column.input_specs().items()
        }
      )
    return layers

  def names(self) -> List[str]:
    """Every transformed feature the model takes."""
    names = list(self.numeric) + list(self.categorical)
    for column in self.encoded.values():
      names += list(column.input_specs())
    return names

  @property
  def pretrained(self) -> Dict[str, encoders.EncodedColumn]:
    """The encoded columns with a pretrained encoder."""
    return {
      key: column
      for key, column in self.encoded.items()
      if column.pretrained is not None
    }

  def side_features(
    self, layers: Mapping[str, tf.Tensor], hparams: Mapping[str, Any]
  ) -> List[tf.Tensor]:
    """Every feature but the pretrained encoders', as the dnn takes them:
    numbers as they are, categories one-hot, text and images through their
    learned encoders."""
    features = [layers[key] for key in self.numeric] + [
      keras.layers.CategoryEncoding(
        num_tokens=size, output_mode='one_hot', name=f'{key}_onehot'
      )(layers[key])
      for key, size in self.categorical.items()
    ]
    return features + [
      encoders.learned(column, layers, hparams)
      for column in self.encoded.values()
      if column.pretrained is None
    ]


def pretrained_backbone(inputs: ModelInputs) -> Optional[keras.Model]:
  """The pretrained encoders as one model (None when there is none): from
  what each takes (the raw string of a text, decoded pixels of an image)
  to their features side by side. Each encoder's weighted layers are named
  by block, which fine-tuning freezes and thaws (modules/finetune.py)."""
  if not inputs.pretrained:
    return None
  entries, outputs = [], []
  for key, column in inputs.pretrained.items():
    encoder = encoders.load(column)
    entry = keras.Input(
      shape=encoder.inputs[0].shape[1:],
      dtype=encoder.inputs[0].dtype,
      name=f'{key}_entry',
    )
    entries.append(entry)
    outputs.append(encoder(entry))
  joined = (
    keras.layers.Concatenate(name='pretrained_features')(outputs)
    if len(outputs) > 1
    else outputs[0]
  )
  return keras.Model(entries, joined, name='backbone')


def backbone_entries(
  inputs: ModelInputs, layers: Mapping[str, tf.Tensor]
) -> List[tf.Tensor]:
  """What `pretrained_backbone` takes, in its order, from the model's
  inputs (decoded and augmented images; the raw string of a text)."""
  return [
    encoders.prepare(column, layers) for column in inputs.pretrained.values()
  ]


def build_model(
  inputs: ModelInputs,
  hparams: Mapping[str, Any],
  builder: str = 'dnn',
  image: Optional[Tuple[int, int, int]] = None,
) -> keras.Model:
  """Builds and compiles a model trained from scratch.

  Args:
    inputs: the transformed feature names, category counts and classes.
    hparams: values from `search_space.sample` (num_layers, units, dropout,
      l1, l2, batch_norm, optimizer, learning_rate).
    builder: 'dnn' or 'cnn'.
    image: (height, width, channels) for the cnn builder.

  Returns:
    A compiled model taking a dict of [batch, 1] tensors and returning the
    task's head's output (modules/tasks.py).
  """
  if not inputs.numeric and not inputs.categorical and not inputs.encoded:
    raise ValueError('build_model needs at least one input feature')
  model_inputs = inputs.input_layers()
  if builder == 'cnn':
    if image is None or inputs.categorical or inputs.encoded:
      raise ValueError(
        'the cnn builder needs an image shape and numeric features only'
      )
    pixels = [model_inputs[key] for key in inputs.numeric]
    x = (
      keras.layers.Concatenate(name='pixels')(pixels)
      if len(pixels) > 1
      else pixels[0]
    )
    x = conv_stack(x, image, hparams)
  elif builder == 'dnn':
    encoded = inputs.side_features(model_inputs, hparams)
    backbone = pretrained_backbone(inputs)
    if backbone is not None:
      # From scratch, a pretrained encoder only extracts features: frozen,
      # and in inference mode (its batch norm keeps its statistics).
      backbone.trainable = False
      encoded.append(
        backbone(backbone_entries(inputs, model_inputs), training=False)
      )
    x = (
      keras.layers.Concatenate(name='features')(encoded)
      if len(encoded) > 1
      else encoded[0]
    )
    x = dense_stack(x, hparams)
  else:
    raise ValueError(f'unknown model builder {builder!r}; allowed: dnn, cnn')
  model = keras.Model(inputs=model_inputs, outputs=inputs.task.head(x))
  compile_model(model, hparams, inputs.task)
  return model


def _regularizer(hparams: Mapping[str, Any]) -> keras.regularizers.Regularizer:
  return keras.regularizers.L1L2(
    l1=float(hparams['l1']), l2=float(hparams['l2'])
  )


def conv_stack(
  x: tf.Tensor, image: Tuple[int, int, int], hparams: Mapping[str, Any]
) -> tf.Tensor:
  """num_layers conv blocks (Conv 3x3 -> [BatchNorm] -> ReLU -> MaxPool 2x2
  while the image is at least 2x2), filters `units` doubling per block, then
  a dense EMBEDDING of 2 x units and dropout."""
  height, width, channels = image
  batch_norm = bool(hparams['batch_norm'])
  x = keras.layers.Reshape((height, width, channels), name='image')(x)
  for i in range(1, int(hparams['num_layers']) + 1):
    x = keras.layers.Conv2D(
      int(hparams['units']) * 2 ** (i - 1),
      3,
      padding='same',
      use_bias=not batch_norm,
      kernel_regularizer=_regularizer(hparams),
      name=f'block{i}_conv',
    )(x)
    if batch_norm:
      x = keras.layers.BatchNormalization(name=f'block{i}_bn')(x)
    x = keras.layers.Activation('relu', name=f'block{i}_relu')(x)
    if min(x.shape[1], x.shape[2]) >= 2:
      x = keras.layers.MaxPooling2D(2, name=f'block{i}_pool')(x)
  x = keras.layers.Flatten(name='flatten')(x)
  x = keras.layers.Dense(
    int(hparams['units']) * 2,
    kernel_regularizer=_regularizer(hparams),
    name=f'block{int(hparams["num_layers"]) + 1}_dense',
  )(x)
  x = keras.layers.Activation('relu', name=EMBEDDING)(x)
  if hparams['dropout'] > 0:
    x = keras.layers.Dropout(float(hparams['dropout']), name='dropout')(x)
  return x


def dense_stack(x: tf.Tensor, hparams: Mapping[str, Any]) -> tf.Tensor:
  """num_layers x (Dense with L1/L2 -> [BatchNorm] -> ReLU -> Dropout)."""
  for i in range(int(hparams['num_layers'])):
    x = keras.layers.Dense(
      int(hparams['units']),
      use_bias=not hparams['batch_norm'],
      kernel_regularizer=_regularizer(hparams),
      name=f'dense_{i}',
    )(x)
    if hparams['batch_norm']:
      x = keras.layers.BatchNormalization(name=f'batch_norm_{i}')(x)
    x = keras.layers.Activation('relu', name=f'relu_{i}')(x)
    if hparams['dropout'] > 0:
      x = keras.layers.Dropout(float(hparams['dropout']), name=f'dropout_{i}')(
        x
      )
  return x


def make_optimizer(
  name: str, learning_rate: float
) -> keras.optimizers.Optimizer:
  if name not in OPTIMIZERS:
    raise ValueError(
      f'unknown optimizer {name!r}; allowed: {", ".join(OPTIMIZERS)}'
    )
  return OPTIMIZERS[name](learning_rate=float(learning_rate))


def loss_and_metrics(
  task: tasks.Task, hparams: Optional[Mapping[str, Any]] = None
) -> Dict[str, Any]:
  """compile() arguments besides the optimizer: the task's loss (by
  `hparams['loss']` where the task offers a choice) and its metrics, named
  as the monitors a spec may name (the task's `monitors`)."""
  return dict(
    loss=task.loss((hparams or {}).get('loss')), metrics=task.keras_metrics()
  )


def compile_model(
  model: keras.Model,
  hparams: Mapping[str, Any],
  task: Optional[tasks.Task] = None,
) -> None:
  """Compiles with the optimizer and learning rate `hparams` name, its
  variables built."""
  model.compile(
    optimizer=make_optimizer(hparams['optimizer'], hparams['learning_rate']),
    **loss_and_metrics(task or tasks.BinaryTask(), hparams),
  )
  # The optimizer's slots now, not in the first training step: a step that
  # creates variables is traced twice by tf.function (once to create them,
  # once without), and a trace is a good part of a one-second tuning trial.
  model.optimizer.build(model.trainable_variables)


def epochs_for(model: Any, epochs: int) -> int:
  """The epochs to fit `model` for: a decision forest (modules/gbt.py)
  trains on one pass over the data, a network for `epochs`."""
  return 1 if getattr(model, 'one_pass', False) else epochs


def early_stopping(
  settings: Optional[EarlyStoppingSpec], restore_best_weights: bool = False
) -> List[keras.callbacks.Callback]:
  """The spec's early stopping as Keras callbacks ([] when it is off).

  The Trainer restores the best epoch's weights; a tuning trial needs only
  its best score, which Keras Tuner records per epoch.
  """
  if settings is None:
    return []
  return [
    keras.callbacks.EarlyStopping(
      monitor=settings.monitor,
      patience=settings.patience,
      min_delta=settings.min_delta,
      restore_best_weights=restore_best_weights,
    )
  ]
