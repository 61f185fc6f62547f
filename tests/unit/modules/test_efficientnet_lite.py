"""EfficientNet-Lite0 rebuilt in tf_keras from the bundled PyTorch checkpoint.

The checkpoint reader is checked on the real file and on small checkpoints
written here in both torch formats (hand-assembled pickles, since torch is not
installed); the model on real photos (sklearn's and matplotlib's samples),
its layer names, its SavedModel round trip and its errors.
"""

import os
import pickle
import re
import struct
import zipfile
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from modules.pretrained import efficientnet_lite as el
from modules.pretrained.torch_pickle import CheckpointError, read_state_dict

try:
  WEIGHTS = el.bundled_weights()
  MISSING = ''
except CheckpointError as e:
  WEIGHTS, MISSING = '', str(e)
needs_weights = pytest.mark.skipif(not WEIGHTS, reason=MISSING)

# --- Checkpoints written here -----------------------------------------------

_STORAGE_NAMES = {
  np.dtype(np.float32): 'FloatStorage',
  np.dtype(np.float64): 'DoubleStorage',
  np.dtype(np.float16): 'HalfStorage',
  np.dtype(np.int64): 'LongStorage',
  np.dtype(np.int32): 'IntStorage',
  np.dtype(np.uint8): 'ByteStorage',
  np.dtype(np.bool_): 'BoolStorage',
}

# A tensor as torch stores it: a flat storage (shared by key), an element
# offset into it, a size and a stride in elements.
View = Tuple[str, np.ndarray, int, Tuple[int, ...], Tuple[int, ...]]


def _global(module: str, name: str) -> bytes:
  return b'c' + f'{module}\n{name}\n'.encode()


def _str(text: str) -> bytes:
  data = text.encode()
  return b'X' + struct.pack('<I', len(data)) + data


def _int(n: int) -> bytes:
  return b'J' + struct.pack('<i', n)


def _tuple(items: Sequence[bytes]) -> bytes:
  return b'(' + b''.join(items) + b't'


def _views(tensors: Dict[str, Union[np.ndarray, View]]) -> Dict[str, View]:
  # A plain array is a contiguous tensor on a storage of its own.
  out = {}
  for i, (name, value) in enumerate(tensors.items()):
    if isinstance(value, np.ndarray):
      value = (
        f's{i}',
        value.reshape(-1),
        0,
        value.shape,
        tuple(s // value.itemsize for s in value.strides),
      )
    out[name] = value
  return out


def _object_pickle(views: Dict[str, View], legacy: bool) -> bytes:
  """The pickle torch writes for an OrderedDict of tensors (protocol 2)."""
  ordered_dict = _global('collections', 'OrderedDict') + b')R'
  out = [b'\x80\x02', ordered_dict, b'(']
  for name, (key, flat, offset, size, stride) in views.items():
    pid = [
      _str('storage'),
      _global('torch', _STORAGE_NAMES[flat.dtype]),
      _str(key),
      _str('cpu'),
      _int(flat.size),
    ]
    if legacy:
      pid.append(b'N')  # no view metadata
    args = [
      _tuple(pid) + b'Q',
      _int(offset),
      _tuple([_int(n) for n in size]),
      _tuple([_int(n) for n in stride]),
      b'\x89',
      ordered_dict,
    ]
    out += [
      _str(name),
      _global('torch._utils', '_rebuild_tensor_v2'),
      _tuple(args),
      b'R',
    ]
  out.append(b'u.')
  return b''.join(out)


def _storages(views: Dict[str, View]) -> Dict[str, np.ndarray]:
  return {key: flat for key, flat, *_ in views.values()}


def write_legacy(
  path: str,
  tensors: Dict[str, Union[np.ndarray, View]],
  object_pickle: bytes = b'',
) -> str:
  """Writes `tensors` as torch < 1.6 did (or `object_pickle` in its place)."""
  views = _views(tensors)
  storages = _storages(views)
  sys_info = {
    'protocol_version': 1001,
    'little_endian': True,
    'type_sizes': {'short': 2, 'int': 4, 'long': 4},
  }
  with open(path, 'wb') as f:
    for header in (0x1950A86A20F9469CFC6C, 1001, sys_info):
      f.write(pickle.dumps(header, protocol=2))
    f.write(object_pickle or _object_pickle(views, legacy=True))
    f.write(pickle.dumps(list(storages), protocol=2))
    for flat in storages.values():
      f.write(struct.pack('<q', flat.size) + flat.tobytes())
  return path


def write_zip(
  path: str,
  tensors: Dict[str, Union[np.ndarray, View]],
  object_pickle: bytes = b'',
) -> str:
  """Writes `tensors` as torch >= 1.6 does (or `object_pickle` in its place)."""
  views = _views(tensors)
  with zipfile.ZipFile(path, 'w') as archive:
    archive.writestr(
      'archive/data.pkl', object_pickle or _object_pickle(views, legacy=False)
    )
    archive.writestr('archive/byteorder', 'little')
    for key, flat in _storages(views).items():
      archive.writestr(f'archive/data/{key}', flat.tobytes())
    archive.writestr('archive/version', '3\n')
  return path


WRITERS = {'legacy': write_legacy, 'zip': write_zip}


def _assert_one_line(error: pytest.ExceptionInfo, *names: str) -> None:
  message = str(error.value)
  assert '\n' not in message, message
  for name in names:
    assert name in message, message


# --- The reader ---------------------------------------------------------------


def _lite0_shapes() -> Dict[str, Tuple[int, ...]]:
  """Every tensor of Lite0's checkpoint, written out from the paper's table
  (B0's stages, no squeeze-excite, 32-filter stem, 1280-filter head)."""
  shapes: Dict[str, Tuple[int, ...]] = {}

  def bn(prefix: str, n: int) -> None:
    for param in ('weight', 'bias', 'running_mean', 'running_var'):
      shapes[f'{prefix}.{param}'] = (n,)
    shapes[f'{prefix}.num_batches_tracked'] = ()

  shapes['_conv_stem.weight'] = (32, 3, 3, 3)
  bn('_bn0', 32)
  stages = [
    (1, 3, 1, 32, 16),
    (2, 3, 6, 16, 24),
    (2, 5, 6, 24, 40),
    (3, 3, 6, 40, 80),
    (3, 5, 6, 80, 112),
    (4, 5, 6, 112, 192),
    (1, 3, 6, 192, 320),
  ]
  index = 0
  for repeats, kernel, expand, filters_in, filters_out in stages:
    for repeat in range(repeats):
      c_in = filters_in if repeat == 0 else filters_out
      mid = c_in * expand
      prefix = f'_blocks.{index}'
      if expand != 1:
        shapes[f'{prefix}._expand_conv.weight'] = (mid, c_in, 1, 1)
        bn(f'{prefix}._bn0', mid)
      shapes[f'{prefix}._depthwise_conv.weight'] = (mid, 1, kernel, kernel)
      bn(f'{prefix}._bn1', mid)
      shapes[f'{prefix}._project_conv.weight'] = (filters_out, mid, 1, 1)
      bn(f'{prefix}._bn2', filters_out)
      index += 1
  shapes['_conv_head.weight'] = (1280, 320, 1, 1)
  bn('_bn1', 1280)
  shapes['_fc.weight'] = (1000, 1280)
  shapes['_fc.bias'] = (1000,)
  return shapes


@needs_weights
def test_reader_reads_every_tensor_of_the_bundled_checkpoint():
  state = read_state_dict(WEIGHTS)
  expected = _lite0_shapes()
  assert list(state) == list(expected)  # the file's order
  for name, array in state.items():
    assert array.shape == expected[name], name
    want = np.int64 if name.endswith('num_batches_tracked') else np.float32
    assert array.dtype == want, name
    assert array.flags.c_contiguous and array.flags.owndata, name
    assert np.isfinite(array).all(), name
  assert all((state[n] >= 0).all() for n in state if n.endswith('running_var'))
  # The weights are about all the file holds: 4.69 M float32 numbers.
  floats = sum(a.nbytes for a in state.values() if a.dtype == np.float32)
  assert floats == 4 * 4_694_024
  assert 0.98 < floats / os.path.getsize(WEIGHTS) < 1.0


@pytest.mark.parametrize('fmt', ['legacy', 'zip'])
def test_reader_round_trips_dtypes_views_and_strides(tmp_path, fmt):
  rng = np.random.default_rng(0)
  shared = rng.standard_normal(24).astype(np.float32)
  tensors = {
    'conv.weight': rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
    'half': rng.standard_normal((5,)).astype(np.float16),
    'double': rng.standard_normal((2, 2)).astype(np.float64),
    'count': np.array(7, dtype=np.int64),
    'ints': np.arange(6, dtype=np.int32).reshape(2, 3),
    'mask': np.array([True, False, True]),
    'bytes': np.arange(4, dtype=np.uint8),
    'empty': np.zeros((0, 3), dtype=np.float32),
    # Two tensors on one storage: a transposed view and an offset slice.
    'transposed': ('shared', shared, 0, (4, 6), (1, 4)),
    'slice': ('shared', shared, 10, (2, 3), (3, 1)),
  }
  state = read_state_dict(WRITERS[fmt](str(tmp_path / 'x.pth'), tensors))
  assert list(state) == list(tensors)
  for name, value in tensors.items():
    if isinstance(value, np.ndarray):
      np.testing.assert_array_equal(state[name], value)
      assert (
        state[name].dtype == value.dtype and state[name].shape == value.shape
      )
  np.testing.assert_array_equal(state['transposed'], shared.reshape(6, 4).T)
  np.testing.assert_array_equal(state['slice'], shared[10:16].reshape(2, 3))
  assert state['transposed'].flags.c_contiguous


@needs_weights
@pytest.mark.parametrize('cut', [3, 400, 30_000, -100])
def test_a_truncated_checkpoint_is_a_one_line_error(tmp_path, cut):
  with open(WEIGHTS, 'rb') as f:
    data = f.read()
  path = tmp_path / 'truncated.pth'
  path.write_bytes(data[:cut])  # in the headers, the object, the storages
  with pytest.raises(CheckpointError) as error:
    read_state_dict(str(path))
  _assert_one_line(error, str(path))


@pytest.mark.parametrize(
  'data',
  [
    b'',
    b'not a checkpoint at all\n' * 50,
    bytes(range(256)) * 20,
    pickle.dumps({'a': 1}, protocol=2),
  ],
)
def test_garbage_is_a_one_line_error(tmp_path, data):
  path = tmp_path / 'garbage.pth'
  path.write_bytes(data)
  with pytest.raises(CheckpointError) as error:
    read_state_dict(str(path))
  _assert_one_line(error, str(path))


def test_a_missing_file_is_a_one_line_error(tmp_path):
  with pytest.raises(CheckpointError) as error:
    read_state_dict(str(tmp_path / 'nowhere.pth'))
  _assert_one_line(error, 'nowhere.pth')


@pytest.mark.parametrize('fmt', ['legacy', 'zip'])
@pytest.mark.parametrize(
  'module, name', [('os', 'system'), ('builtins', 'eval'), ('posix', 'system')]
)
def test_the_reader_refuses_other_globals_without_running_them(
  tmp_path, fmt, module, name
):
  marker = tmp_path / 'ran'
  command = (
    f'touch {marker}'
    if name == 'system'
    else f'open({str(marker)!r}, "w").close()'
  )
  hostile = (
    b'\x80\x02' + _global(module, name) + _tuple([_str(command)]) + b'R.'
  )
  path = WRITERS[fmt](str(tmp_path / 'hostile.pth'), {}, object_pickle=hostile)
  with pytest.raises(CheckpointError) as error:
    read_state_dict(path)
  _assert_one_line(error, path, f'{module}.{name}')
  assert not marker.exists()


def test_the_reader_refuses_a_global_in_the_legacy_headers(tmp_path):
  marker = tmp_path / 'ran'
  path = tmp_path / 'hostile.pth'
  path.write_bytes(
    b'\x80\x02'
    + _global('os', 'system')
    + _tuple([_str(f'touch {marker}')])
    + b'R.'
  )
  with pytest.raises(CheckpointError, match='os.system'):
    read_state_dict(str(path))
  assert not marker.exists()


# --- The model ----------------------------------------------------------------


def _photos() -> Dict[str, np.ndarray]:
  """Real photos that ship with installed packages, resized to 224x224."""
  from sklearn.datasets import load_sample_image

  photos = {
    name: load_sample_image(f'{name}.jpg') for name in ('china', 'flower')
  }
  try:
    import matplotlib.cbook
    from PIL import Image

    with matplotlib.cbook.get_sample_data('grace_hopper.jpg') as f:
      photos['grace_hopper'] = np.asarray(Image.open(f).convert('RGB'))
  except (ImportError, OSError, ValueError):
    pass  # matplotlib's sample data is optional; the other two suffice
  return {
    name: tf.image.resize(image.astype(np.float32), (224, 224)).numpy()
    for name, image in photos.items()
  }


# ImageNet index, name and the least probability it must get. Measured with
# this model: china 0.353 (bell cote; stupa 0.114 and monastery 0.102 next),
# flower 0.106 (daisy, the nearest class to this dahlia; bee 0.081 next),
# grace_hopper 0.490 (military uniform; bow tie 0.033 fifth). The bounds sit
# above what a wrong input normalisation (ImageNet mean/std: 0.254, out of the
# top 3, 0.335) or torch-style symmetric padding (0.251, 0.069, 0.391) gives.
EXPECTED = {
  'china': (442, 'bell cote', 0.30),
  'flower': (985, 'daisy', 0.09),
  'grace_hopper': (652, 'military uniform', 0.42),
}


@pytest.fixture(scope='module')
def classifier():
  return el.efficientnet_lite0(weights=WEIGHTS, include_top=True)


@needs_weights
def test_the_bundled_weights_classify_photos(classifier):
  photos = _photos()
  probabilities = classifier.predict(np.stack(list(photos.values())), verbose=0)
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
  for name, row in zip(photos, probabilities, strict=True):
    index, label, least = EXPECTED[name]
    top3 = list(np.argsort(-row)[:3])
    assert index in top3, (name, label, top3, row[top3])
    assert row[index] >= least, (name, label, row[index])


def _weighted_layers(model: keras.Model) -> List[keras.layers.Layer]:
  return [layer for layer in model.layers if layer.weights]


def test_layer_names_follow_keras_applications():
  model = el.efficientnet_lite0(include_top=True)
  names = [layer.name for layer in model.layers]
  assert not any(isinstance(layer, keras.Model) for layer in model.layers)
  pattern = re.compile(r'^(stem_|block\d+[a-z]_|top_)|^predictions$')
  for layer in _weighted_layers(model):
    assert pattern.match(layer.name), layer.name
  for name in (
    'stem_conv',
    'stem_bn',
    'stem_activation',
    'top_conv',
    'top_bn',
    'top_activation',
    'avg_pool',
    'predictions',
  ):
    assert name in names
  blocks = sorted(
    {m.group(1) for n in names if (m := re.match(r'^(block\d+[a-z])_', n))}
  )
  assert blocks == [
    'block1a',
    'block2a',
    'block2b',
    'block3a',
    'block3b',
    'block4a',
    'block4b',
    'block4c',
    'block5a',
    'block5b',
    'block5c',
    'block6a',
    'block6b',
    'block6c',
    'block6d',
    'block7a',
  ]
  for block in blocks:
    for suffix in ('dwconv', 'bn', 'project_conv', 'project_bn'):
      assert f'{block}_{suffix}' in names
    # Block 1 does not expand (ratio 1); every other block does.
    assert (f'{block}_expand_conv' in names) == (block != 'block1a')
    assert (f'{block}_expand_bn' in names) == (block != 'block1a')
  # Lite: ReLU6 throughout, no squeeze-excite.
  assert not any('_se_' in n for n in names)
  activations = [
    layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)
  ]
  assert activations and all(float(a.max_value) == 6.0 for a in activations)
  assert model.count_params() == 4_694_024  # = the checkpoint's floats
  assert model.get_layer('predictions').get_config()['activation'] == 'softmax'


@needs_weights
def test_features_at_96_and_the_savedmodel_round_trip(tmp_path):
  model = el.efficientnet_lite0(weights=WEIGHTS, input_shape=(96, 96, 3))
  images = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3))
  features = model.predict(images.astype(np.float32), verbose=0)
  assert features.shape == (2, 1280)
  assert (features >= 0).all() and (features <= 6).all()  # after ReLU6
  path = str(tmp_path / 'saved')
  model.save(path, save_format='tf')
  loaded = keras.models.load_model(path)
  again = loaded.predict(images.astype(np.float32), verbose=0)
  np.testing.assert_allclose(again, features, rtol=1e-5, atol=1e-5)


def test_inputs_smaller_than_32_pixels_are_refused():
  with pytest.raises(ValueError, match='at least 32'):
    el.efficientnet_lite0(input_shape=(16, 64, 3))


@needs_weights
def test_a_wrong_shape_tensor_is_a_one_line_error(tmp_path):
  state = read_state_dict(WEIGHTS)
  state['_blocks.3._project_conv.weight'] = np.zeros(
    (40, 144, 3, 1), dtype=np.float32
  )
  path = write_legacy(str(tmp_path / 'wrong.pth'), state)
  with pytest.raises(CheckpointError) as error:
    el.efficientnet_lite0(weights=path)
  _assert_one_line(
    error,
    path,
    '_blocks.3._project_conv.weight',
    'block3a_project_conv',
    '(40, 144, 1, 1)',
  )


@pytest.mark.parametrize(
  'tensors, names',
  [
    (
      {'_blocks.16._bn0.weight': np.ones(6, np.float32)},
      ['_blocks.16._bn0.weight', 'no layer'],
    ),
    (
      {'_conv_stem.bias': np.ones(32, np.float32)},
      ['_conv_stem.bias', 'stem_conv'],
    ),
    (
      {'_conv_stem.weight': np.ones((32, 3, 3, 3), np.float32)},
      ['no tensor for layer', 'stem_bn'],
    ),
  ],
)
def test_unmapped_and_missing_tensors_are_one_line_errors(
  tmp_path, tensors, names
):
  path = write_zip(str(tmp_path / 'partial.pth'), tensors)
  with pytest.raises(CheckpointError) as error:
    el.efficientnet_lite0(weights=path, input_shape=(32, 32, 3))
  _assert_one_line(error, path, *names)
