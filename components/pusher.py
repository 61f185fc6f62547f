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

Each version folder carries who pushed it (`pushed_by.json`: pipeline, run,
node), written before the rename. A process killed between the rename and
TFX's record of the push leaves a version that ML Metadata does not know;
the next run of that pipeline finds the file and records the push
(pipeline/runners/session.py `reconcile_pushes`).
"""

import dataclasses
import datetime
import hashlib
import json
import os
import socket
import time
import uuid
from typing import Callable, List, Optional, Tuple

from tfx.components.pusher import component as tfx_pusher
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components import fault_points
from components.processes import process_alive

SAVED_MODEL = 'saved_model.pb'
PUSHED_BY = 'pushed_by.json'  # in each version folder: who pushed it
FINGERPRINT = 'fingerprint.pb'  # written by TF >= 2.12 beside saved_model.pb
TEMP_PREFIX = '.tmp-'
NOT_PUSHED_REASON = 'not_pushed_reason'  # on the PushedModel artifact


class PushError(RuntimeError):
  """A push could not be completed. The message is one line."""


@dataclasses.dataclass(frozen=True)
class PushedBy:
  """Who pushed a version: the run and node that copied it into place."""

  pipeline: str
  run_id: str
  node_id: str
  host: str
  pid: int
  pushed_at: str  # ISO 8601, this machine's local time

  @classmethod
  def here(cls, pipeline: str, run_id: str, node_id: str) -> 'PushedBy':
    return cls(
      pipeline,
      run_id,
      node_id,
      socket.gethostname(),
      os.getpid(),
      datetime.datetime.now().isoformat(timespec='seconds'),
    )

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)

  @classmethod
  def read(cls, version_dir: str) -> Optional['PushedBy']:
    """The record in a version folder; None when there is none or it is not
    one (a version pushed by other means, or before records were kept)."""
    path = os.path.join(version_dir, PUSHED_BY)
    if not fileio.exists(path):
      return None
    try:
      raw = json.loads(io_utils.read_string_file(path))
      found = cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls)})
    except (ValueError, TypeError, KeyError):
      return None
    typed = all(
      isinstance(getattr(found, f.name), f.type)
      for f in dataclasses.fields(cls)
    )
    return found if typed else None


def versions(base: str, complete: bool = True) -> List[int]:
  """The version folders under a push base (TF Serving's layout), ascending:
  integer names, holding saved_model.pb unless `complete` is False. Temporary
  folders and other names are not versions. Local paths and URIs alike."""
  if not fileio.exists(base):
    return []
  found = []
  for name in fileio.listdir(base):
    name = name.rstrip('/')
    if name.isdigit() and (
      not complete or fileio.exists(os.path.join(base, name, SAVED_MODEL))
    ):
      found.append(int(name))
  return sorted(found)


def identity(saved_model_dir: str) -> Optional[bytes]:
  """What identifies a SavedModel's content, or None when there is none.

  TensorFlow's fingerprint (TF >= 2.12) hashes the regularized graph, the
  signatures, the object graph and the variables; its fifth field, the
  checksum of saved_model.pb's raw bytes, changes between two exports of
  the very same model and is left out. The assets (tf.Transform's
  vocabularies) are added. A SavedModel without a fingerprint is its
  saved_model.pb."""
  fingerprint = os.path.join(saved_model_dir, FINGERPRINT)
  if not fileio.exists(fingerprint):
    graph = os.path.join(saved_model_dir, SAVED_MODEL)
    return io_utils.read_bytes_file(graph) if fileio.exists(graph) else None
  from google.protobuf import message  # pylint: disable=g-import-not-at-top
  from tensorflow.core.protobuf import fingerprint_pb2  # pylint: disable=g-import-not-at-top

  data = io_utils.read_bytes_file(fingerprint)
  try:
    parsed = fingerprint_pb2.FingerprintDef.FromString(data)
  except message.DecodeError:  # not TensorFlow's: its bytes are the identity
    return data
  digest = hashlib.sha256(
    repr(
      (
        parsed.graph_def_program_hash,
        parsed.signature_def_hash,
        parsed.saved_object_graph_hash,
        parsed.checkpoint_hash,
      )
    ).encode()
  )
  assets = os.path.join(saved_model_dir, 'assets')
  if fileio.exists(assets):
    for name in sorted(fileio.listdir(assets)):
      digest.update(name.encode())
      digest.update(io_utils.read_bytes_file(os.path.join(assets, name)))
  return digest.digest()


def remove_stale_temps(base: str) -> List[str]:
  """Removes the temporary folders of pushes whose process is gone (killed
  mid-copy) on this machine; returns their names."""
  removed = []
  if not fileio.exists(base):
    return removed
  host = socket.gethostname()
  for name in fileio.listdir(base):
    name = name.rstrip('/')
    parts = name[len(TEMP_PREFIX) :].split('-')
    if (
      name.startswith(TEMP_PREFIX)
      and len(parts) >= 4
      and parts[-3] == host
      and parts[-2].isdigit()
      and not process_alive(int(parts[-2]))
    ):
      fileio.rmtree(os.path.join(base, name))
      removed.append(name)
  return removed


def next_version(base: str, clock: Callable[[], float] = time.time) -> int:
  """The Unix time, or newest existing version + 1 when that is larger (any
  integer folder counts, complete or not: none is ever written to)."""
  versions_now = versions(base, complete=False)
  return max(int(clock()), (versions_now[-1] + 1) if versions_now else 0)


def push(
  model_dir: str,
  base: str,
  clock: Callable[[], float] = time.time,
  pushed_by: Optional[PushedBy] = None,
) -> Tuple[int, str]:
  """Copies the SavedModel at `model_dir` to a new version under `base`,
  with `pushed_by` recorded in it (PUSHED_BY) when given.

  Returns:
    (version, the version's folder).

  Raises:
    PushError: no SavedModel at `model_dir`, or the copy failed (the
      temporary folder is removed; no version appears).
  """
  if not fileio.exists(os.path.join(model_dir, SAVED_MODEL)):
    raise PushError(f'push: no {SAVED_MODEL} in {model_dir}; nothing to push')
  fileio.makedirs(base)
  remove_stale_temps(base)
  version = next_version(base, clock)
  # Host and PID in the name: a push killed mid-copy leaves a folder the
  # next push on this machine can tell is stale.
  temp = os.path.join(
    base,
    f'{TEMP_PREFIX}{version}-{socket.gethostname()}-'
    f'{os.getpid()}-{uuid.uuid4().hex[:8]}',
  )
  try:
    io_utils.copy_dir(model_dir, temp, deny_regex_patterns=[r'saved_model\.pb'])
    if pushed_by is not None:
      io_utils.write_string_file(
        os.path.join(temp, PUSHED_BY), pushed_by.to_json()
      )
    io_utils.copy_file(
      os.path.join(model_dir, SAVED_MODEL), os.path.join(temp, SAVED_MODEL)
    )
    while True:
      target = os.path.join(base, str(version))
      if not fileio.exists(target):
        fileio.rename(temp, target)
        # Served from here on, and not yet recorded in ML Metadata.
        fault_points.reached('pusher.after_rename')
        return version, target
      version += 1  # another pusher took it meanwhile: never overwrite
  except Exception as e:  # pylint: disable=broad-except
    if fileio.exists(temp):
      fileio.rmtree(temp)
    if isinstance(e, PushError):
      raise
    raise PushError(
      f'push: copying {model_dir} to {base} failed: '
      f'{type(e).__name__}: {" ".join(str(e).split())}'
    ) from e


class AtomicPushExecutor(pusher_executor.Executor):
  """TFX's Pusher executor with `push` for filesystem destinations; the
  push is recorded on the PushedModel artifact as TFX records it (pushed,
  pushed_destination, pushed_version)."""

  def Do(self, input_dict, output_dict, exec_properties) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    model_push = artifact_utils.get_single_instance(
      output_dict[standard_component_specs.PUSHED_MODEL_KEY]
    )
    if not self.CheckBlessing(input_dict):
      self._MarkNotPushed(model_push)
      return
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
      exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
      destination,
    )
    if destination.WhichOneof('destination') != 'filesystem':
      raise PushError('push: only filesystem push destinations are supported')
    model_path = self.GetModelPath(input_dict)
    base = destination.filesystem.base_directory
    newest = versions(base)[-1:]
    candidate = identity(model_path)
    if (
      newest
      and candidate is not None
      and candidate == identity(os.path.join(base, str(newest[0])))
    ):
      # The same model (the same data and code, e.g. a CSV whose columns
      # were only reordered): serving already has it.
      self._MarkNotPushed(model_push)
      model_push.set_string_custom_property(
        NOT_PUSHED_REASON,
        f'identical to version {newest[0]}, which is already pushed',
      )
      return
    # Nothing pushed yet: a run stopped here has nothing to reconcile.
    fault_points.reached('pusher.before_push')
    version, target = push(model_path, base, pushed_by=self._pushed_by())
    io_utils.copy_dir(model_path, model_push.uri)  # archived, as TFX does
    self._MarkPushed(
      model_push, pushed_destination=target, pushed_version=str(version)
    )

  def _pushed_by(self) -> Optional[PushedBy]:
    """This execution as PushedBy; None where the orchestrator does not say
    which pipeline run this is."""
    context = self._context
    if (
      context is None
      or context.pipeline_info is None
      or context.pipeline_node is None
      or not context.pipeline_run_id
    ):
      return None
    return PushedBy.here(
      context.pipeline_info.id,
      context.pipeline_run_id,
      context.pipeline_node.node_info.id,
    )


class Pusher(tfx_pusher.Pusher):
  """TFX's Pusher component with AtomicPushExecutor."""

  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(AtomicPushExecutor)
