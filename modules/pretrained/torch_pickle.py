"""Reads a PyTorch state dict (`.pth`) into numpy arrays without torch.

Two on-disk formats exist:
- legacy (torch < 1.6, and `_use_new_zipfile_serialization=False`): five
  pickles back to back (a magic number, the protocol version, a dict of
  system information, the object itself, the list of storage keys), then
  each storage's bytes in that order, each after an int64 element count.
- zip (torch >= 1.6): an archive with one top folder holding `data.pkl` (the
  object) and `data/<key>` (each storage's bytes).
In both the object's pickle refers to storages by persistent ids and rebuilds
tensors by calling `torch._utils._rebuild_tensor_v2`. The unpickler here
resolves only the handful of globals a state dict needs, each to a function
of this module, so a hostile file cannot name and run anything else.
"""

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

# What torch's legacy writer puts first (torch/serialization.py MAGIC_NUMBER).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class CheckpointError(ValueError):
  """A checkpoint is missing, malformed, unsafe or does not fit the model.

  The message is one line naming the file (or tensor) and what is wrong."""


def _bfloat16() -> Any:
  # ml_dtypes comes with TensorFlow; only bf16 checkpoints need it.
  try:
    import ml_dtypes
  except ImportError:  # pragma: no cover - TensorFlow installs it
    return None
  return ml_dtypes.bfloat16


# torch's typed storage classes, by the name the pickle gives them.
_STORAGE_DTYPES: Dict[str, Callable[[], Any]] = {
  'FloatStorage': lambda: np.float32,
  'DoubleStorage': lambda: np.float64,
  'HalfStorage': lambda: np.float16,
  'BFloat16Storage': _bfloat16,
  'LongStorage': lambda: np.int64,
  'IntStorage': lambda: np.int32,
  'ShortStorage': lambda: np.int16,
  'CharStorage': lambda: np.int8,
  'ByteStorage': lambda: np.uint8,
  'BoolStorage': lambda: np.bool_,
  'ComplexFloatStorage': lambda: np.complex64,
  'ComplexDoubleStorage': lambda: np.complex128,
}


class _StorageType:
  """Stands in for a torch storage class: its name is all the pickle uses."""

  def __init__(self, name: str):
    self.name = name


class _StorageRef:
  """A storage named by a persistent id, its bytes filled in later."""

  def __init__(self, key: str, type_name: str, numel: int):
    self.key = key
    self.type_name = type_name
    self.numel = numel
    self.array: Optional[np.ndarray] = None  # flat, of the storage's dtype
    # A legacy view (very old torch): an element range of a root storage.
    self.view_of: Optional['_StorageRef'] = None
    self.view_offset = 0


class _TensorRef:
  """A tensor awaiting its storage's bytes (the legacy format reads them
  only after the whole object is unpickled)."""

  def __init__(
    self,
    storage: Any,
    offset: int,
    size: Tuple[int, ...],
    stride: Tuple[int, ...],
  ):
    if not isinstance(storage, _StorageRef):
      raise pickle.UnpicklingError('a tensor without a storage')
    self.storage = storage
    self.offset = int(offset)
    self.size = tuple(int(s) for s in size)
    self.stride = tuple(int(s) for s in stride)
    if len(self.size) != len(self.stride):
      raise pickle.UnpicklingError(
        f'a tensor of size {self.size} with stride {self.stride}'
      )


def _rebuild_tensor(
  storage: Any,
  storage_offset: int,
  size: Tuple[int, ...],
  stride: Tuple[int, ...],
  *_: Any,
) -> _TensorRef:
  # Later arguments (requires_grad, backward hooks, metadata) do not matter
  # for weights.
  return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, *_: Any) -> Any:
  # An nn.Parameter saved as such: the tensor inside is what counts.
  return data


# Every global a state dict's pickle may name, and what stands in for it.
_ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
  ('collections', 'OrderedDict'): collections.OrderedDict,
  ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
  ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
  ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
}
_ALLOWED_GLOBALS.update(
  {('torch', name): _StorageType(name) for name in _STORAGE_DTYPES}
)


class _Unpickler(pickle.Unpickler):
  """Resolves only `_ALLOWED_GLOBALS`; storages become `_StorageRef`s."""

  def __init__(
    self, file: BinaryIO, storages: Dict[str, _StorageRef], legacy: bool
  ):
    super().__init__(file)
    self._storages = storages
    self._legacy = legacy

  def find_class(self, module: str, name: str) -> Any:
    try:
      return _ALLOWED_GLOBALS[(module, name)]
    except KeyError:
      # Raised before anything is called: the global is never imported.
      raise _DisallowedGlobal(f'{module}.{name}') from None

  def persistent_load(self, pid: Any) -> _StorageRef:
    if not (
      isinstance(pid, tuple)
      and pid
      and pid[0] == 'storage'
      and len(pid) >= 5
      and isinstance(pid[1], _StorageType)
    ):
      raise pickle.UnpicklingError(f'unexpected persistent id {pid!r:.80}')
    storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
    ref = self._storages.get(key)
    if ref is None:
      ref = _StorageRef(key, storage_type.name, numel)
      self._storages[key] = ref
    view = pid[5] if self._legacy and len(pid) > 5 else None
    if view is None:
      return ref
    view_key, view_offset, view_numel = view
    view_ref = _StorageRef(str(view_key), storage_type.name, int(view_numel))
    view_ref.view_of, view_ref.view_offset = ref, int(view_offset)
    return view_ref


class _DisallowedGlobal(pickle.UnpicklingError):
  """The pickle names a global outside `_ALLOWED_GLOBALS`."""


def _dtype(type_name: str) -> np.dtype:
  dtype = _STORAGE_DTYPES[type_name]()
  if dtype is None:
    raise ValueError(f'{type_name} needs the ml_dtypes package')
  return np.dtype(dtype)


def _storage_array(
  ref: _StorageRef, data: bytes, big_endian: bool
) -> np.ndarray:
  dtype = _dtype(ref.type_name)
  if big_endian:
    dtype = dtype.newbyteorder('>')
  if len(data) != ref.numel * dtype.itemsize:
    raise ValueError(
      f'storage {ref.key} holds {len(data)} bytes, expected '
      f'{ref.numel} x {dtype.itemsize}'
    )
  return np.frombuffer(data, dtype=dtype)


def _materialise(name: str, tensor: _TensorRef) -> np.ndarray:
  storage = tensor.storage
  offset = tensor.offset
  if storage.view_of is not None:
    offset += storage.view_offset
    storage = storage.view_of
  flat = storage.array
  if flat is None:
    raise ValueError(f'tensor {name}: storage {storage.key} has no data')
  if not tensor.size:
    return np.array(flat[offset], dtype=flat.dtype.newbyteorder('='))
  if 0 in tensor.size:
    return np.zeros(tensor.size, dtype=flat.dtype.newbyteorder('='))
  # The furthest element the strides reach must lie inside the storage.
  last = offset + sum(
    (n - 1) * s for n, s in zip(tensor.size, tensor.stride, strict=True)
  )
  if offset < 0 or min(tensor.stride) < 0 or last >= flat.size:
    raise ValueError(
      f'tensor {name}: size {tensor.size} and stride '
      f'{tensor.stride} run past its storage of {flat.size}'
    )
  view = np.lib.stride_tricks.as_strided(
    flat[offset:],
    shape=tensor.size,
    strides=[s * flat.itemsize for s in tensor.stride],
    writeable=False,
  )
  # A native-order, contiguous, writable copy: the caller may keep it after
  # the file's bytes are gone.
  return np.array(
    view, dtype=flat.dtype.newbyteorder('='), order='C', copy=True
  )


def _state_dict(obj: Any) -> Dict[str, np.ndarray]:
  if not isinstance(obj, Mapping):
    raise ValueError(
      f'the pickled object is a {type(obj).__name__}, not a state dict'
    )
  out = {}
  for name, value in obj.items():
    if not isinstance(value, _TensorRef):
      raise ValueError(
        f'entry {name!r} is a {type(value).__name__}, not a tensor'
      )
    out[str(name)] = _materialise(name, value)
  return out


def _read_legacy(f: io.BytesIO) -> Dict[str, np.ndarray]:
  storages: Dict[str, _StorageRef] = {}

  def load() -> Any:
    return _Unpickler(f, storages, legacy=True).load()

  if load() != _LEGACY_MAGIC:
    raise ValueError('not a torch checkpoint (wrong magic number)')
  protocol = load()
  if protocol != _LEGACY_PROTOCOL:
    raise ValueError(f'unsupported legacy protocol {protocol!r}')
  sys_info = load()
  big_endian = not (
    isinstance(sys_info, Mapping) and sys_info.get('little_endian', True)
  )
  obj = load()
  keys = load()
  if not isinstance(keys, list):
    raise ValueError('the storage key list is missing')
  for key in keys:
    ref = storages.get(str(key))
    if ref is None:
      raise ValueError(f'storage {key} is listed but no tensor uses it')
    header = f.read(8)
    if len(header) != 8:
      raise EOFError
    (numel,) = struct.unpack('>q' if big_endian else '<q', header)
    if numel != ref.numel:
      raise ValueError(
        f'storage {key} has {numel} elements, the pickle says {ref.numel}'
      )
    size = numel * _dtype(ref.type_name).itemsize
    data = f.read(size)
    if len(data) != size:
      raise EOFError
    ref.array = _storage_array(ref, data, big_endian)
  return _state_dict(obj)


def _read_zip(archive: zipfile.ZipFile) -> Dict[str, np.ndarray]:
  names = archive.namelist()
  pickles = [n for n in names if n.count('/') == 1 and n.endswith('/data.pkl')]
  if len(pickles) != 1:
    raise ValueError('a zip without exactly one <folder>/data.pkl')
  prefix = pickles[0][: -len('data.pkl')]
  big_endian = False
  if prefix + 'byteorder' in names:
    big_endian = archive.read(prefix + 'byteorder').strip() == b'big'
  storages: Dict[str, _StorageRef] = {}
  with archive.open(pickles[0]) as f:
    obj = _Unpickler(io.BytesIO(f.read()), storages, legacy=False).load()
  for key, ref in storages.items():
    record = f'{prefix}data/{key}'
    if record not in names:
      raise ValueError(f'storage {key} has no record {record}')
    ref.array = _storage_array(ref, archive.read(record), big_endian)
  return _state_dict(obj)


def read_state_dict(path: str) -> Dict[str, np.ndarray]:
  """Reads the state dict that `torch.save` wrote to `path`, without torch.

  Args:
    path: a `.pth`/`.pt` file in either the legacy or the zip format.

  Returns:
    Each tensor's name (in the file's order) mapped to a numpy array of its
    shape and dtype (float32 for torch.float, int64 for torch.long, ...),
    contiguous and owning its memory.

  Raises:
    CheckpointError: the file is missing, truncated or not a state dict, or
      its pickle names a global other than the few a state dict needs (it is
      refused before anything runs).
  """
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise CheckpointError(f'{path}: cannot read it ({e.strerror})') from None
  try:
    if zipfile.is_zipfile(io.BytesIO(data)):
      with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return _read_zip(archive)
    return _read_legacy(io.BytesIO(data))
  except _DisallowedGlobal as e:
    raise CheckpointError(
      f'{path}: refused, its pickle asks for the global {e} (a state dict '
      f'needs only tensors)'
    ) from None
  except (EOFError, struct.error) as e:
    raise CheckpointError(
      f'{path}: truncated ({type(e).__name__} while reading it)'
    ) from None
  except (
    pickle.UnpicklingError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    zipfile.BadZipFile,
  ) as e:
    message = ' '.join(str(e).split()) or type(e).__name__
    raise CheckpointError(
      f'{path}: not a readable torch state dict ({message})'
    ) from None


def describe(state: Mapping[str, np.ndarray]) -> List[str]:
  """One `name shape dtype` line per tensor, for logs and error messages."""
  return [f'{name} {tuple(a.shape)} {a.dtype}' for name, a in state.items()]


def _main(argv: Optional[List[str]] = None) -> None:
  # python -m modules.pretrained.torch_pickle FILE: lists the tensors.
  import sys

  for path in argv if argv is not None else sys.argv[1:]:
    for line in describe(read_state_dict(os.fspath(path))):
      print(line)


if __name__ == '__main__':
  _main()
