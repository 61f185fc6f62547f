"""Pusher: TFX's, with a push that TF Serving can never see half-done.

TF Serving polls `<base>/<model name>/` and loads the highest integer
version folder it finds. TFX 1.16's Pusher copies the model straight into
`<base>/<unix time>/` (saved_model.pb last), so a server polling mid-copy
can find a folder whose variables are still being written; and two pushes in
the same second share a version: the second is skipped but still recorded as
pushed to that folder.

`push` here copies into a hidden temporary folder beside the versions
(`.tmp-<version>-<random>`, which TF Serving and `pushed_model` ignore, as
neither name is an integer) and renames it into place. On a local or POSIX
file system the rename is atomic; on object stores (gs://, s3://) a rename
is a copy, but the version folder still appears only after the whole model
was written, saved_model.pb last. The version is the Unix time, or one more
than the newest existing version if that is not newer, so versions only
grow and an existing version is never written to.
"""

import os
import time
import uuid
from typing import Callable, List, Tuple

from tfx import v1 as tfx
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

SAVED_MODEL = 'saved_model.pb'
TEMP_PREFIX = '.tmp-'


class PushError(RuntimeError):
  """A push could not be completed. The message is one line."""


def versions(base: str, complete: bool = True) -> List[int]:
  """The version folders under a push base (TF Serving's layout), ascending:
  integer names, holding saved_model.pb unless `complete` is False. Temporary
  folders and other names are not versions. Local paths and URIs alike."""
  if not fileio.exists(base):
    return []
  found = []
  for name in fileio.listdir(base):
    name = name.rstrip('/')
    if name.isdigit() and (not complete or fileio.exists(
        os.path.join(base, name, SAVED_MODEL))):
      found.append(int(name))
  return sorted(found)


def next_version(base: str, clock: Callable[[], float] = time.time) -> int:
  """The Unix time, or newest existing version + 1 when that is larger (any
  integer folder counts, complete or not: none is ever written to)."""
  versions_now = versions(base, complete=False)
  return max(int(clock()), (versions_now[-1] + 1) if versions_now else 0)


def push(model_dir: str, base: str,
         clock: Callable[[], float] = time.time) -> Tuple[int, str]:
  """Copies the SavedModel at `model_dir` to a new version under `base`.

  Returns:
    (version, the version's folder).

  Raises:
    PushError: no SavedModel at `model_dir`, or the copy failed (the
      temporary folder is removed; no version appears).
  """
  if not fileio.exists(os.path.join(model_dir, SAVED_MODEL)):
    raise PushError(f'push: no {SAVED_MODEL} in {model_dir}; nothing to push')
  fileio.makedirs(base)
  version = next_version(base, clock)
  temp = os.path.join(base, f'{TEMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}')
  try:
    io_utils.copy_dir(model_dir, temp, deny_regex_patterns=[r'saved_model\.pb'])
    io_utils.copy_file(os.path.join(model_dir, SAVED_MODEL),
                       os.path.join(temp, SAVED_MODEL))
    while True:
      target = os.path.join(base, str(version))
      if not fileio.exists(target):
        fileio.rename(temp, target)
        return version, target
      version += 1  # another pusher took it meanwhile: never overwrite
  except Exception as e:  # pylint: disable=broad-except
    if fileio.exists(temp):
      fileio.rmtree(temp)
    if isinstance(e, PushError):
      raise
    raise PushError(f'push: copying {model_dir} to {base} failed: '
                    f'{type(e).__name__}: {" ".join(str(e).split())}') from e


class AtomicPushExecutor(pusher_executor.Executor):
  """TFX's Pusher executor with `push` for filesystem destinations; the
  push is recorded on the PushedModel artifact as TFX records it (pushed,
  pushed_destination, pushed_version)."""

  def Do(self, input_dict, output_dict, exec_properties) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    model_push = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      self._MarkNotPushed(model_push)
      return
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
        destination)
    if destination.WhichOneof('destination') != 'filesystem':
      raise PushError('push: only filesystem push destinations are supported')
    model_path = self.GetModelPath(input_dict)
    version, target = push(model_path, destination.filesystem.base_directory)
    io_utils.copy_dir(model_path, model_push.uri)  # archived, as TFX does
    self._MarkPushed(model_push, pushed_destination=target,
                     pushed_version=str(version))


class Pusher(tfx.components.Pusher):
  """TFX's Pusher component with AtomicPushExecutor."""
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(AtomicPushExecutor)
