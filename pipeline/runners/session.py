"""What surrounds one local run: who holds the pipeline, where its temporary
files go, and what ML Metadata knows of the run while and after it runs.

- `PipelineLock`: one run of a pipeline at a time (an flock on
  `<pipeline root>/.run.lock`). A second run waits, saying for whom, or is
  refused (`--no-wait`); a lock left by a run that was killed is released by
  the kernel with its process and taken over, with a line saying so.
- `register_run`: before any component runs, the run's `pipeline_run`
  context is written to the store with the runner's host and PID (TFX then
  reuses it). That write is also the check that the store can be written:
  a read-only or full store is one line naming the store, before anything
  runs. `finish_run` records how the run ended; `lineage runs` tells a run
  that is still going from one whose process is gone (pipeline/metadata).
- `scoped_tempdir`: every temporary file of the run (Beam's, tf.Transform's,
  Keras Tuner's) goes into one folder that is removed when the run ends.
- `local_beam_dependencies`: where Beam's workers are this machine's
  processes (the DirectRunner, Flink or Spark with loopback workers), they
  import the installed project, so TFX's per-component package build (an
  sdist of TFX in the temp folder, for remote workers) is skipped.
- `record_engine`: the engine each Beam component ran on, on its execution.
- `reconcile_pushes`: a version the Pusher put in place but could not record
  (its run was killed or terminated in between) is recorded by the next run.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import shutil
import socket
import tempfile
from typing import (
  Any,
  Callable,
  Dict,
  Iterable,
  Iterator,
  List,
  Optional,
  Tuple,
)

from components.processes import process_alive
from pipeline.errors import PipelineError
from pipeline.metadata import results
from pipeline.metadata import store as store_lib

LOCK_FILE = '.run.lock'
TEMP_PREFIX = 'tfx-pipeline-'


class RunRefused(PipelineError):
  """The run cannot start (pipeline busy, store not writable). One line."""


class PipelineLock:
  """An exclusive lock on one pipeline's root, held for a run.

  The lock file exists only while a run holds it (or was killed holding
  it), and the folders the lock had to make are removed again when they
  are still empty: a run refused before anything ran leaves nothing.
  """

  def __init__(self, pipeline_root: str, pipeline: str):
    self.path = os.path.join(pipeline_root, LOCK_FILE)
    self.pipeline = pipeline
    self._file = None
    self._made: List[str] = []  # the folders acquire made, deepest first

  def _holder(self) -> Dict[str, Any]:
    try:
      with open(self.path) as f:
        return json.loads(f.read() or '{}')
    except (OSError, ValueError):
      return {}

  def _make_folders(self) -> None:
    folder = os.path.dirname(os.path.abspath(self.path))
    missing = []
    while not os.path.isdir(folder) and folder != os.path.dirname(folder):
      missing.append(folder)
      folder = os.path.dirname(folder)
    for folder in reversed(missing):
      try:
        os.mkdir(folder)
        if folder not in self._made:
          self._made.insert(0, folder)
      except FileExistsError:
        pass  # made by a run starting beside this one: theirs to remove

  def _open_held(
    self, wait: bool, progress: Callable[[str], None]
  ) -> Dict[str, Any]:
    """Opens the lock file and locks it: the holder it names before."""
    while True:
      self._make_folders()
      try:
        self._file = open(self.path, 'a+')  # pylint: disable=consider-using-with
      except FileNotFoundError:
        continue  # the folder was removed by a run letting go: make it again
      holder = self._holder()
      try:
        fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES):
          raise
        who = (
          f'run {holder.get("run_id", "?")} (pid {holder.get("pid", "?")}'
          f' on {holder.get("host", "?")}, since '
          f'{holder.get("started", "?")})'
        )
        if not wait:
          self._file.close()
          raise RunRefused(
            f'pipeline {self.pipeline} is already running: {who}; wait for '
            'it (run without --no-wait) or stop it'
          ) from None
        progress(f'waiting for {who} of pipeline {self.pipeline} to finish ...')
        fcntl.flock(self._file, fcntl.LOCK_EX)
        holder = self._holder()
      # A run letting go removes the file while it holds it: a lock taken
      # on a file no longer at the path is no lock; take the new one.
      try:
        same = os.path.samestat(
          os.fstat(self._file.fileno()), os.stat(self.path)
        )
      except FileNotFoundError:
        same = False
      if same:
        return holder
      self._file.close()

  def acquire(
    self,
    run_id: str,
    wait: bool = True,
    progress: Callable[[str], None] = print,
  ) -> None:
    """Takes the lock, waiting for a running holder unless `wait` is False.

    Raises:
      RunRefused: another run holds it and `wait` is False.
    """
    holder = self._open_held(wait, progress)
    # Held now, the lock is no other run's. A run that ended removed the
    # file before letting go; one that was killed left its name there. (Its
    # process can still be exiting: the kernel lets go of a killed
    # process's locks before the process is gone.)
    if holder.get('pid'):
      progress(
        f'taking over the lock of run {holder.get("run_id", "?")} '
        f'(pid {holder["pid"]}, no longer running)'
      )
    self._file.seek(0)
    self._file.truncate()
    self._file.write(
      json.dumps(
        {
          'run_id': run_id,
          'pid': os.getpid(),
          'host': socket.gethostname(),
          'started': datetime.datetime.now().isoformat(timespec='seconds'),
        }
      )
    )
    self._file.flush()

  def release(self) -> None:
    """Lets go: the lock file removed while still held (so no run waiting
    on it takes a lock on a removed file), then the folders acquire made
    that nothing else was written into."""
    if self._file is None:
      return
    self._file.seek(0)
    self._file.truncate()
    try:
      os.unlink(self.path)
    except FileNotFoundError:
      pass
    for folder in self._made:
      try:
        os.rmdir(folder)
      except OSError:
        break  # outputs in it, or a waiting run's lock file
    self._made = []
    fcntl.flock(self._file, fcntl.LOCK_UN)
    self._file.close()
    self._file = None


def register_run(connection_config, pipeline: str, run_id: str, where: str):
  """Opens the store and writes the run's pipeline_run context (host, PID)
  before any component runs: the check that the store can be written.

  Returns:
    The opened ml_metadata.MetadataStore.

  Raises:
    RunRefused: the store cannot be opened or written (read-only, full,
      not an ML Metadata store, ...).
  """
  import ml_metadata as mlmd  # pylint: disable=g-import-not-at-top
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top

  try:
    store = mlmd.MetadataStore(connection_config)
    type_id = store.put_context_type(
      metadata_store_pb2.ContextType(name=results.RUN_CONTEXT_TYPE)
    )
    context = metadata_store_pb2.Context(type_id=type_id, name=run_id)
    context.custom_properties[
      results.RUN_HOST
    ].string_value = socket.gethostname()
    context.custom_properties[results.RUN_PID].int_value = os.getpid()
    context.custom_properties[results.RUN_PIPELINE].string_value = pipeline
    store.put_contexts([context])
  except Exception as e:  # pylint: disable=broad-except
    raise RunRefused(
      f'{where}: the metadata store cannot be written '
      f'({store_lib.store_error(e)}); check that it is writable '
      'and its disk has room'
    ) from None
  return store


def finish_run(
  store, run_id: str, outcome: str, failure: Optional[str] = None
) -> None:
  """Records how the run ended (succeeded, failed, interrupted, terminated)
  and, for a failed run, which component failed and why (one line);
  executions an interruption or SIGTERM left RUNNING become CANCELED."""
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top

  context = store.get_context_by_type_and_name(results.RUN_CONTEXT_TYPE, run_id)
  if context is None:
    return
  context.custom_properties[results.RUN_OUTCOME].string_value = outcome
  if failure:
    context.custom_properties[results.RUN_FAILURE].string_value = failure
  store.put_contexts([context])
  running = [
    e
    for e in store.get_executions_by_context(context.id)
    if e.last_known_state == metadata_store_pb2.Execution.RUNNING
  ]
  for execution in running:
    execution.last_known_state = metadata_store_pb2.Execution.CANCELED
  if running:
    store.put_executions(running)


def _remove_stale_tempdirs(parent: str) -> None:
  """Temp folders of earlier runs whose process is gone (killed)."""
  for name in os.listdir(parent):
    if not name.startswith(TEMP_PREFIX):
      continue
    pid = name[len(TEMP_PREFIX) :].split('-', 1)[0]
    if pid.isdigit() and not process_alive(int(pid)):
      shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


@contextlib.contextmanager
def scoped_tempdir() -> Iterator[str]:
  """A temp folder for the run (TMPDIR for this process and its children),
  removed when the run ends; folders left by killed runs are removed too."""
  parent = tempfile.gettempdir()
  _remove_stale_tempdirs(parent)
  folder = tempfile.mkdtemp(prefix=f'{TEMP_PREFIX}{os.getpid()}-', dir=parent)
  saved = {k: os.environ.get(k) for k in ('TMPDIR', 'TEMP', 'TMP')}
  saved_tempdir = tempfile.tempdir
  os.environ.update({k: folder for k in saved})
  tempfile.tempdir = folder
  try:
    yield folder
  finally:
    tempfile.tempdir = saved_tempdir
    for key, value in saved.items():
      if value is None:
        os.environ.pop(key, None)
      else:
        os.environ[key] = value
    shutil.rmtree(folder, ignore_errors=True)


def record_engine(
  store, pipeline: str, run_id: str, engine: str, nodes: Iterable[str]
) -> None:
  """Attributes the run's executions of `nodes` (the Beam components) that
  ran in it to the context of `engine` (results.ENGINE_CONTEXT_TYPE): a
  cached one ran elsewhere, in the run that made its outputs, and keeps
  that run's record."""
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top

  record = results.RunRecord(store, pipeline, run_id, engine_of={})
  ran = [
    e.id
    for e in record.executions
    if record.node_of(e.id) in nodes
    and e.last_known_state
    in (
      metadata_store_pb2.Execution.COMPLETE,
      metadata_store_pb2.Execution.FAILED,
    )
  ]
  if not ran:
    return
  type_id = store.put_context_type(
    metadata_store_pb2.ContextType(name=results.ENGINE_CONTEXT_TYPE)
  )
  context = store.get_context_by_type_and_name(
    results.ENGINE_CONTEXT_TYPE, engine
  )
  if context is None:
    [context_id] = store.put_contexts(
      [metadata_store_pb2.Context(type_id=type_id, name=engine)]
    )
  else:
    context_id = context.id
  store.put_attributions_and_associations(
    [],
    [
      metadata_store_pb2.Association(context_id=context_id, execution_id=i)
      for i in ran
    ],
  )


def reconcile_pushes(
  store, pipeline: str, base: str, recorded_by: str
) -> List[Dict[str, Any]]:
  """Records the pushes under `base` that a run of `pipeline` made and never
  recorded: it was stopped (kill -9, SIGTERM) between the Pusher's rename
  and TFX's publish of the push. Each version folder says who pushed it
  (components/pusher.py PUSHED_BY); where that run's Pusher execution in
  this store has no push, the PushedModel artifact TFX would have published
  (pushed, pushed_version, pushed_destination, the version folder as its
  URI) is added as its output, in one transaction, marked as recorded by
  run `recorded_by`. The execution itself is left as it ended (running,
  canceled) with its times: it did not finish, its push did.

  Returns:
    {'version', 'path', 'run_id'} of each push recorded.
  """
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top

  found = _pushes_of(pipeline, base)
  if not found:
    return []
  recorded = {
    os.path.normpath(str(results.custom_property(a, 'pushed_destination')))
    for a in store.get_artifacts_by_type(results.PUSHED_MODEL_TYPE)
  }
  reconciled = []
  for version, path, by in found:
    if os.path.normpath(path) in recorded:
      continue
    execution = _unfinished_pusher(store, pipeline, by)
    if execution is None:
      continue
    artifact = _pushed_model(store, version, path, recorded_by)
    event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)
    event.path.steps.add().key = results.PUSHED_MODEL_KEY
    event.path.steps.add().index = 0
    # The execution goes in unchanged, so its state and times stay as they
    # were; the artifact joins its contexts (pipeline, run, node).
    store.put_execution(
      execution,
      [(artifact, event)],
      store.get_contexts_by_execution(execution.id),
    )
    reconciled.append({'version': version, 'path': path, 'run_id': by.run_id})
  return reconciled


def _pushes_of(pipeline: str, base: str) -> List[Tuple[int, str, Any]]:
  """(version, folder, PushedBy) of each version under `base` that a run of
  `pipeline` pushed."""
  from components import pusher  # pylint: disable=g-import-not-at-top

  found = []
  for version in pusher.versions(base):
    path = os.path.join(base, str(version))
    by = pusher.PushedBy.read(path)
    if by is not None and by.pipeline == pipeline:
      found.append((version, path, by))
  return found


def _unfinished_pusher(store, pipeline: str, by) -> Optional[Any]:
  """The last execution of the Pusher that `by` names, in its run, that did
  not finish; None when it finished, or ran in another store."""
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top

  done = (
    metadata_store_pb2.Execution.COMPLETE,
    metadata_store_pb2.Execution.CACHED,
  )
  run = store.get_context_by_type_and_name(results.RUN_CONTEXT_TYPE, by.run_id)
  node = store.get_context_by_type_and_name('node', f'{pipeline}.{by.node_id}')
  if run is None or node is None:
    return None  # pushed from another store's run: not ours to record
  of_node = {e.id for e in store.get_executions_by_context(node.id)}
  unfinished = [
    e
    for e in store.get_executions_by_context(run.id)
    if e.id in of_node and e.last_known_state not in done
  ]
  return unfinished[-1] if unfinished else None


def _pushed_model(store, version: int, path: str, recorded_by: str):
  """The PushedModel artifact TFX would have published for the push of
  `version` to `path`, marked as recorded by run `recorded_by`."""
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top

  type_id = store.put_artifact_type(
    metadata_store_pb2.ArtifactType(name=results.PUSHED_MODEL_TYPE),
    can_add_fields=True,
    can_omit_fields=True,
  )
  artifact = metadata_store_pb2.Artifact(
    type_id=type_id, uri=path, state=metadata_store_pb2.Artifact.LIVE
  )
  properties = artifact.custom_properties
  properties['pushed'].int_value = 1
  properties['pushed_version'].string_value = str(version)
  properties['pushed_destination'].string_value = path
  properties[results.PUSH_RECORDED_BY].string_value = recorded_by
  return artifact


@contextlib.contextmanager
def local_beam_dependencies(local_workers: bool) -> Iterator[None]:
  """Skips TFX's package build when the engine's Python workers are this
  machine's processes (the DirectRunner; Flink or Spark with LOOPBACK or
  a local worker pool), which import the installed project. TFX builds an
  sdist of itself in every Beam component otherwise (for remote workers):
  seconds of work and ~50 MB of temp files each."""
  if not local_workers:
    yield
    return
  from tfx.utils import dependency_utils  # pylint: disable=g-import-not-at-top

  build = dependency_utils.make_beam_dependency_flags
  dependency_utils.make_beam_dependency_flags = list
  try:
    yield
  finally:
    dependency_utils.make_beam_dependency_flags = build
