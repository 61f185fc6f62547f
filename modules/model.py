"""Keras model builders. Plain values in, a compiled tf.keras model out.

`build_model(inputs, hparams)` builds the from-scratch DNN over the
transformed features; `compile_model` is separate so that fine-tuning can
recompile a model it did not build. The project uses Keras 2 (tf_keras)
throughout: tf.Transform 1.16 and keras-tuner 1.3.5 require it.
"""

import dataclasses
from typing import Any, Dict, List, Mapping

import tensorflow as tf
import tf_keras as keras

PROBABILITY = 'probability'  # the model's output name, used by the Evaluator

OPTIMIZERS = {
    'adam': keras.optimizers.Adam,
    'sgd': lambda learning_rate: keras.optimizers.SGD(
        learning_rate=learning_rate, momentum=0.9),
    'rmsprop': keras.optimizers.RMSprop,
}


@dataclasses.dataclass(frozen=True)
class ModelInputs:
  """What the model consumes: transformed numeric keys (float, shape [1]) and
  transformed categorical keys with their id counts (vocabulary + OOV)."""
  numeric: List[str]
  categorical: Dict[str, int]


def build_model(inputs: ModelInputs, hparams: Mapping[str, Any]) -> keras.Model:
  """Builds and compiles a binary classifier.

  Args:
    inputs: the transformed feature names (and category counts).
    hparams: values from `search_space.sample` (num_layers, units, dropout,
      l1, l2, batch_norm, optimizer, learning_rate).

  Returns:
    A compiled model taking a dict of [batch, 1] tensors and returning a
    [batch, 1] probability of the positive class.
  """
  if not inputs.numeric and not inputs.categorical:
    raise ValueError('build_model needs at least one input feature')
  model_inputs = {}
  encoded = []
  for key in inputs.numeric:
    model_inputs[key] = keras.Input(shape=(1,), name=key, dtype=tf.float32)
    encoded.append(model_inputs[key])
  for key, size in inputs.categorical.items():
    model_inputs[key] = keras.Input(shape=(1,), name=key, dtype=tf.int64)
    encoded.append(keras.layers.CategoryEncoding(
        num_tokens=size, output_mode='one_hot', name=f'{key}_onehot')(
            model_inputs[key]))
  x = (keras.layers.Concatenate(name='features')(encoded)
       if len(encoded) > 1 else encoded[0])
  x = dense_stack(x, hparams)
  output = keras.layers.Dense(1, activation='sigmoid', name=PROBABILITY)(x)
  model = keras.Model(inputs=model_inputs, outputs=output)
  compile_model(model, hparams)
  return model


def dense_stack(x: tf.Tensor, hparams: Mapping[str, Any]) -> tf.Tensor:
  """num_layers x (Dense with L1/L2 -> [BatchNorm] -> ReLU -> Dropout)."""
  for i in range(int(hparams['num_layers'])):
    x = keras.layers.Dense(
        int(hparams['units']), use_bias=not hparams['batch_norm'],
        kernel_regularizer=keras.regularizers.L1L2(
            l1=float(hparams['l1']), l2=float(hparams['l2'])),
        name=f'dense_{i}')(x)
    if hparams['batch_norm']:
      x = keras.layers.BatchNormalization(name=f'batch_norm_{i}')(x)
    x = keras.layers.Activation('relu', name=f'relu_{i}')(x)
    if hparams['dropout'] > 0:
      x = keras.layers.Dropout(float(hparams['dropout']), name=f'dropout_{i}')(x)
  return x


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
  if name not in OPTIMIZERS:
    raise ValueError(f'unknown optimizer {name!r}; allowed: '
                     f'{", ".join(OPTIMIZERS)}')
  return OPTIMIZERS[name](learning_rate=float(learning_rate))


def compile_model(model: keras.Model, hparams: Mapping[str, Any]) -> None:
  """Compiles with the optimizer and learning rate `hparams` name."""
  model.compile(
      optimizer=make_optimizer(hparams['optimizer'], hparams['learning_rate']),
      loss=keras.losses.BinaryCrossentropy(),
      metrics=[keras.metrics.BinaryAccuracy(name='binary_accuracy'),
               keras.metrics.AUC(name='auc')])
