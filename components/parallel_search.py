"""Tuning trials in parallel: Keras Tuner's distributed mode on one machine.

The Tuner's executor is the chief: it builds the tuner with the module's
`tuner_fn` as usual, serves that tuner's oracle over gRPC on loopback (Keras
Tuner's own OracleServicer), and runs trials itself. Each other process is a
worker started as `python -m components.parallel_search TASK.json`: it builds
the same tuner with the same `tuner_fn`, which Keras Tuner turns into a
client of the chief's oracle when `KERASTUNER_ORACLE_IP`,
`KERASTUNER_ORACLE_PORT` and `KERASTUNER_TUNER_ID` are set, and runs the
trials the oracle gives it. The oracle alone decides what runs, so every
algorithm keeps its semantics (Hyperband promotes a round only when all its
trials have ended, wherever they ran). All processes share the tuner's
working folder: a trial promoted by Hyperband continues from its parent's
checkpoint, whichever process wrote it.

A worker takes as long to start as any TensorFlow process (about 8 s of
imports here, more than the trials of a small search). The local runner
therefore starts them warm (`warm_workers`) as the run begins: they import
while ExampleGen, StatisticsGen and Transform run, then wait for a task; the
chief takes them when the Tuner starts, and starts cold ones for the rest.

A worker that dies fails the search with one line naming it and the trial it
was running; the other workers are stopped, and a worker whose chief dies is
killed by the kernel (PR_SET_PDEATHSIG): no process outlives the Tuner.

On Kubeflow the workers are pods instead (`Chief(meeting=...)`, `join`):
each is a task of its own (components/tuner.py's TunerWorker) that runs
beside the Tuner's. They meet in a folder under the pipeline root named by
the run's id: the chief writes there the address it serves on (its pod's
IP) and the tuner's working folder, which is in the same storage so that
every pod reads the checkpoints any pod wrote; a worker writes a heartbeat,
then its result or its one-line failure. The chief has no process to
watch: a worker that stops beating for `PARALLEL_SEARCH_SILENCE_S` seconds
(60) is dead. When the chief ends it says so in the folder, and a worker
that comes later ends at once.
"""

import _thread
import argparse
import contextlib
import ctypes
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

from tfx.components.util import udf_utils
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

TUNER_FN = 'tuner_fn'
IDLE_PAUSE_S = 0.05  # between two asks of a worker the oracle had no trial for
READY_TIMEOUT_S = 600.0  # a worker waits this long for the chief's oracle
MEET_TIMEOUT_S = 3600.0  # a worker pod, for the chief's (it may wait for a GPU)
STOP_GRACE_S = 5.0
HEARTBEAT_S = 2.0  # a worker pod's beat
CALL_TIMEOUT_S = 30.0  # a worker's call to the chief's oracle, once
SILENCE_S = 60.0  # a worker pod this long without a beat is dead
CHIEF_FILE = 'chief.json'  # in a meeting folder: where the oracle is served
ENDED_FILE = 'ended.json'  # in a meeting folder: the chief's search is over


class WorkerFailed(RuntimeError):
  """A tuning worker died or failed. One line."""


def available_cores() -> int:
  return len(os.sched_getaffinity(0))


def build(input_dict, exec_properties: Dict[str, Any], working_dir: str):
  """The module's TunerFnResult, as TFX's Tuner executor builds it."""
  from tfx.components.trainer import fn_args_utils  # pylint: disable=g-import-not-at-top

  fn_args = fn_args_utils.get_common_fn_args(
    input_dict, exec_properties, working_dir
  )
  return udf_utils.get_fn(exec_properties, TUNER_FN)(fn_args)


def _die_with_parent() -> None:  # runs in the child, before exec
  libc = ctypes.CDLL('libc.so.6', use_errno=True)
  libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _write_json(path: str, value: Dict[str, Any]) -> None:
  """Writes `value` at `path` (a local path or a URI) in one step: readers
  see all of it or nothing."""
  partial = path + '.partial'
  with fileio.open(partial, 'w') as f:
    f.write(json.dumps(value))
  fileio.rename(partial, path, overwrite=True)


def _read_json(path: str) -> Optional[Dict[str, Any]]:
  """The JSON at `path` (a local path or a URI), None when absent."""
  if not fileio.exists(path):
    return None
  with fileio.open(path) as f:
    return json.loads(f.read())


class _Worker:
  """A worker process, waiting for its task at `task` until given one."""

  POLL_S = 0.02  # how often the chief looks at it while waiting for it

  def __init__(self, task: str, processes: int, preload: Optional[str] = None):
    self.task = task
    self.log = task + '.log'
    self.tuner_id: Optional[str] = None
    self.result: Optional[str] = None  # the JSON it writes when it is done
    # TensorFlow sizes its thread pools to every core, and takes all of a
    # GPU's memory, in every process: the trials' processes share them.
    threads = str(max(1, available_cores() // processes))
    env = {
      **os.environ,
      'TF_NUM_INTRAOP_THREADS': threads,
      'TF_NUM_INTEROP_THREADS': threads,
      'TF_FORCE_GPU_ALLOW_GROWTH': 'true',
      'PYTHONPATH': os.pathsep.join(p for p in sys.path if p),
    }
    with open(self.log, 'w') as out:
      self.process = subprocess.Popen(  # pylint: disable=consider-using-with
        [
          sys.executable,
          '-m',
          'components.parallel_search',
          task,
          *(['--preload', preload] if preload else []),
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=_die_with_parent,
      )

  @property
  def name(self) -> str:
    return f'{self.tuner_id} (pid {self.process.pid})'

  def give(self, tuner_id: str, task: Dict[str, Any]) -> None:
    self.tuner_id = tuner_id
    self.result = task['result']
    _write_json(self.task, {**task, 'tuner_id': tuner_id})

  def gone(self) -> Optional[str]:
    """None while it runs; '' once it has exited cleanly; else how it died."""
    code = self.process.poll()
    if code is None or code == 0:
      return None if code is None else ''
    said = _last_line(self.log) if code > 0 else ''
    return (f'killed by signal {-code}' if code < 0 else f'exit {code}') + (
      f' saying: {said}' if said else ''
    )

  def pending(self) -> bool:
    """Whether the chief is to wait for its result."""
    return self.process.poll() is None and not os.path.exists(self.result)

  def stop(self, deadline: float) -> None:
    if self.process.poll() is None:
      self.process.terminate()
    try:
      self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      self.process.kill()
      self.process.wait()


class _PodFiles(NamedTuple):
  """A worker pod's files in the meeting folder: it writes them (`join`),
  the chief reads them (`_Pod`)."""

  beat: str  # a count, rewritten every HEARTBEAT_S
  result: str  # its result, when its search has ended
  failed: str  # why it failed, in one line


def _pod_files(meeting: str, tuner_id: str) -> _PodFiles:
  path = os.path.join(meeting, tuner_id)
  return _PodFiles(path + '.alive', path + '.json', path + '.failed')


class _Pod:
  """A worker in a pod of its own, known by what it writes in the meeting
  folder: a heartbeat, then its result or its failure (`join`)."""

  POLL_S = 0.5

  def __init__(self, meeting: str, tuner_id: str):
    self.tuner_id = tuner_id
    self.name = f'{tuner_id} (a TunerWorker pod)'
    self._files = _pod_files(meeting, tuner_id)
    self.result = self._files.result
    self._silence = float(
      os.environ.get('PARALLEL_SEARCH_SILENCE_S', SILENCE_S)
    )
    self._beat: Optional[str] = None
    self._heard = 0.0

  def _heartbeat(self) -> Optional[str]:
    """Its latest beat, None before the first; notes when it changed."""
    if not fileio.exists(self._files.beat):
      return None
    with fileio.open(self._files.beat) as f:
      beat = f.read()
    if beat != self._beat:
      self._beat, self._heard = beat, time.monotonic()
    return beat

  def gone(self) -> Optional[str]:
    failed = _read_json(self._files.failed)
    if failed is not None:
      return f'failed saying: {failed["error"]}'
    if fileio.exists(self.result):
      return ''
    if (
      self._heartbeat() is not None
      and time.monotonic() - self._heard > self._silence
    ):
      return f'no heartbeat for {self._silence:.0f} s'
    return None

  def pending(self) -> bool:
    """A pod that has joined and not ended; one not yet started is not
    waited for (the search may end without it). `gone` reads its beat."""
    return self.gone() is None and self._beat is not None

  def stop(self, deadline: float) -> None:
    del deadline  # it ends itself once the chief's search has ended


_WARM: List[_Worker] = []  # started by warm_workers, not yet taken


@contextlib.contextmanager
def warm_workers(count: int, preload: Optional[str] = None):
  """Starts `count` workers that import TensorFlow, TFX and `preload` (the
  tuner_fn's module) now and wait for a Chief in this process to give them
  a task; those not taken are stopped when the block ends."""
  folder = tempfile.mkdtemp(prefix='parallel-search-')
  started = [
    _Worker(os.path.join(folder, f'warm{i}.task.json'), count + 1, preload)
    for i in range(count)
  ]
  _WARM.extend(started)
  try:
    yield started
  finally:
    for worker in started:
      if worker in _WARM:
        _WARM.remove(worker)
    deadline = time.monotonic() + STOP_GRACE_S
    for worker in started:
      worker.stop(deadline)
    shutil.rmtree(folder)


def _take_warm(count: int) -> List[_Worker]:
  taken = []
  while _WARM and len(taken) < count:
    worker = _WARM.pop(0)
    if worker.process.poll() is None:
      taken.append(worker)
  return taken


def _late_servicer():
  """Keras Tuner's OracleServicer, serving before its oracle exists: a call
  waits until `serve(oracle)`, and fails once `close()` came first."""
  from keras_tuner.distribute import oracle_chief  # pylint: disable=g-import-not-at-top

  class LateServicer(oracle_chief.OracleServicer):
    def __init__(self):  # pylint: disable=super-init-not-called
      self._served = None
      self._ready = threading.Event()

    @property
    def oracle(self):
      self._ready.wait()
      if self._served is None:
        raise WorkerFailed('the chief stopped before its search began')
      return self._served

    def serve(self, oracle) -> None:
      self._served = oracle
      self._ready.set()

    def close(self) -> None:
      self._ready.set()

  return LateServicer()


@contextlib.contextmanager
def _interruptible():
  """Lets another thread interrupt the main one (`_thread.interrupt_main`)
  while inside. That call does nothing while SIGINT is ignored, and a
  process started in the background by a shell, or under nohup, starts
  with it ignored: there Python's own handler is installed for the time
  being. Off the main thread (where no handler can be set) it does
  nothing."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = signal.getsignal(signal.SIGINT)
  if previous in (signal.SIG_IGN, signal.SIG_DFL):
    signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    yield
  finally:
    if previous in (signal.SIG_IGN, signal.SIG_DFL):
      signal.signal(signal.SIGINT, previous)


class Chief:
  """Starts workers, serves the chief tuner's oracle to them, runs trials
  itself, and watches the workers. Use as a context manager:

    with Chief(input_dict, exec_properties, working_dir, workers=1) as chief:
      result = build(...)            # the workers build theirs meanwhile
      chief.search(result)           # until every trial has ended

  With `meeting` (a folder, or a URI in the pipeline root's storage), the
  workers are pods that `join` there, and `working_dir` must be in the same
  storage.
  """

  def __init__(
    self,
    input_dict,
    exec_properties: Dict[str, Any],
    working_dir: str,
    workers: int,
    meeting: Optional[str] = None,
  ):
    self._task = {
      'input_dict': artifact_utils.jsonify_artifact_dict(input_dict),
      'exec_properties': exec_properties,
      'working_dir': working_dir,
    }
    self._folder = meeting or os.path.join(working_dir, 'parallel')
    self._meeting = meeting
    self._count = workers
    self._workers: List[Any] = []  # _Worker or _Pod
    self._server = None
    self._servicer = None
    self._oracle = None
    self._failure: Optional[str] = None
    self.epochs_trained: Dict[str, int] = {}

  def __enter__(self) -> 'Chief':
    fileio.makedirs(self._folder)
    self._ready = os.path.join(self._folder, CHIEF_FILE)
    if self._meeting:
      self._workers = [
        _Pod(self._folder, f'tuner{index}')
        for index in range(1, self._count + 1)
      ]
      self._serve('0.0.0.0', _reachable_ip())
      return self
    self._workers = _take_warm(self._count)
    self._workers += [
      _Worker(os.path.join(self._folder, f'cold{i}.task.json'), self._count + 1)
      for i in range(self._count - len(self._workers))
    ]
    self._serve('127.0.0.1', '127.0.0.1')
    for index, worker in enumerate(self._workers, start=1):
      worker.give(
        f'tuner{index}',
        {
          **self._task,
          'ready': self._ready,
          'result': os.path.join(self._folder, f'tuner{index}.json'),
        },
      )
    return self

  def search(self, result) -> None:
    """Serves the oracle of `result`'s tuner (a TunerFnResult) to the
    workers, and runs its search here too. Before the search ends
    (`on_search_end`, where the project's tuners judge it) the chief waits
    for the workers' trials: the oracle says STOPPED to the chief once it
    has handed out its last trial, not once that has ended. What the
    workers' trials trained is merged into the tuner's `epochs_trained`
    (modules/tuner.py records them)."""
    tuner = result.tuner
    self._oracle = tuner.oracle
    self._pace()
    on_search_end = tuner.on_search_end

    def after_workers():
      self.wait()
      if hasattr(tuner, 'epochs_trained'):
        tuner.epochs_trained.update(self.epochs_trained)
      on_search_end()

    tuner.on_search_end = after_workers
    self._servicer.serve(self._oracle)
    with self._watching():
      tuner.search(**result.fit_kwargs)

  @contextlib.contextmanager
  def _watching(self):
    """Watches the workers from a thread while the chief searches: a
    worker's death interrupts the chief's own trial (a KeyboardInterrupt in
    the main thread, raised here as WorkerFailed) instead of waiting for
    that trial's end, which on a GPU may be an hour away. Off the main
    thread the chief looks only between its trials."""
    if threading.current_thread() is not threading.main_thread():
      yield
      return
    done, lock = threading.Event(), threading.Lock()

    def watch():
      while not done.wait(min(w.POLL_S for w in self._workers) * 5):
        try:
          self.check()
        except WorkerFailed:
          with lock:
            if not done.is_set():
              _thread.interrupt_main()
          return

    watcher = threading.Thread(target=watch, name='watch-workers', daemon=True)
    watcher.start()
    try:
      try:
        with _interruptible():
          yield
      finally:
        with lock:
          done.set()
        watcher.join()
    except KeyboardInterrupt:
      if self._failure:
        raise WorkerFailed(self._failure) from None
      raise

  def _serve(self, bind: str, reachable: str) -> None:
    """Starts the oracle's server on `bind` and tells the workers where
    (`reachable`), before the chief's tuner exists: each worker builds its
    own tuner meanwhile, and its first call waits for the chief's oracle."""
    import grpc  # pylint: disable=g-import-not-at-top
    from keras_tuner import protos  # pylint: disable=g-import-not-at-top

    self._servicer = _late_servicer()
    self._server = grpc.server(
      futures.ThreadPoolExecutor(max_workers=max(4, self._count + 1))
    )
    protos.get_service_grpc().add_OracleServicer_to_server(
      self._servicer, self._server
    )
    port = self._server.add_insecure_port(f'{bind}:0')
    self._server.start()
    _write_json(
      self._ready,
      {'ip': reachable, 'port': port, 'working_dir': self._task['working_dir']},
    )

  def _pace(self) -> None:
    """The oracle answers IDLE while a round waits for trials running
    elsewhere, and Keras Tuner asks again at once: a pause before that
    answer keeps the asking loop off the CPUs the trials need."""
    from keras_tuner.engine import trial as trial_module  # pylint: disable=g-import-not-at-top

    create_trial = self._oracle.create_trial

    def paced(tuner_id):
      self.check()
      trial = create_trial(tuner_id)
      if trial.status == trial_module.TrialStatus.IDLE:
        time.sleep(IDLE_PAUSE_S)
      return trial

    self._oracle.create_trial = paced

  def check(self) -> None:
    """Raises WorkerFailed when a worker has ended with an error (or at
    all while the oracle still counts on it)."""
    if self._failure:
      raise WorkerFailed(self._failure)
    for worker in self._workers:
      how = worker.gone()
      if how is None:
        continue
      ongoing = (
        self._oracle.ongoing_trials.get(worker.tuner_id)
        if self._oracle
        else None
      )
      if not how and ongoing is None:
        continue  # ended cleanly
      how, _, said = (how or 'ended').partition(' saying: ')
      doing = f' while running trial {ongoing.trial_id}' if ongoing else ''
      self._failure = (
        f'tuning worker {worker.name} died ({how}){doing}'
        + (f' saying: {said}' if said else '')
        + '; the search stopped'
      )
      raise WorkerFailed(self._failure)

  def wait(self) -> None:
    """Until every worker has written its result (its search has ended)
    or exited; merges what their trials trained."""
    while any(w.pending() for w in self._workers):
      self.check()
      time.sleep(min(w.POLL_S for w in self._workers))
    self.check()
    for worker in self._workers:
      result = _read_json(worker.result)
      if result is not None:
        self.epochs_trained.update(result['epochs_trained'])

  def __exit__(self, exc_type, exc, tb) -> None:
    deadline = time.monotonic() + STOP_GRACE_S
    for worker in self._workers:
      worker.stop(deadline)
    if self._meeting:  # a worker pod still to come ends at once
      _write_json(
        os.path.join(self._folder, ENDED_FILE),
        {'failed': str(exc) if exc else None},
      )
    if self._server is not None:
      self._servicer.close()
      self._server.stop(grace=None)


def _reachable_ip() -> str:
  """This pod's IP, where other pods reach it: POD_IP when the pod sets it
  (Kubernetes' downward API), else what the pod's hostname resolves to
  (Kubernetes writes the pod's IP for it into /etc/hosts)."""
  return os.environ.get('POD_IP') or socket.gethostbyname(socket.gethostname())


def _say(message: str) -> None:
  """A line in the worker's log (its stdout), with the time."""
  print(f'{time.strftime("%H:%M:%S")} {message}', flush=True)


def _last_line(path: str, limit: int = 120) -> str:
  with open(path, errors='replace') as f:
    lines = [line.strip() for line in f if line.strip()]
  return lines[-1][:limit] if lines else ''


def _await(
  paths: List[str],
  what: str,
  timeout: Optional[float] = None,
  orphan: bool = True,
) -> Tuple[str, Dict[str, Any]]:
  """The first of `paths` to be there, and its JSON; fails after `timeout`
  seconds, or (`orphan`) once the parent process has gone."""
  parent = os.getppid()
  deadline = None if timeout is None else time.monotonic() + timeout
  pause = 0.05 if all('://' not in p for p in paths) else 1.0
  while True:
    for path in paths:
      value = _read_json(path)
      if value is not None:
        return path, value
    if (orphan and os.getppid() != parent) or (
      deadline and time.monotonic() > deadline
    ):
      raise WorkerFailed(f'no {what} came ({paths[0]})')
    time.sleep(pause)


class ChiefEnded(Exception):
  """The chief's search ended while this worker was still asking it."""


class _PatientStub:
  """Keras Tuner's stub to the chief's oracle, whose calls wait for the
  chief (Keras Tuner's own wait forever once it has gone): each call
  gives up after `timeout` seconds and is asked again, until `ended()`
  says the chief's search is over (ChiefEnded) or the chief has not
  answered for READY_TIMEOUT_S (WorkerFailed). The oracle's calls may be
  asked twice: a trial is created once per tuner, and its updates and end
  are recorded by trial id."""

  def __init__(
    self,
    stub,
    ended,
    timeout: float = CALL_TIMEOUT_S,
    patience: float = READY_TIMEOUT_S,
  ):
    self._stub, self._ended = stub, ended
    self._timeout, self._patience = timeout, patience

  def __getattr__(self, name: str):
    import grpc  # pylint: disable=g-import-not-at-top

    method = getattr(self._stub, name)

    def call(request, **kwargs):
      since = time.monotonic()
      while True:
        try:
          return method(request, timeout=self._timeout, **kwargs)
        except grpc.RpcError as e:
          if e.code() not in (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.UNAVAILABLE,
          ):
            raise
          if self._ended():
            raise ChiefEnded(name) from None
          if time.monotonic() - since > self._patience:
            raise WorkerFailed(
              f"the chief's oracle did not answer {name} "
              f'for {self._patience:.0f} s'
            ) from None

    return call


def _search(
  tuner_id: str,
  chief: Dict[str, Any],
  input_dict,
  exec_properties: Dict[str, Any],
  ended=lambda: False,
) -> Dict[str, Any]:
  """Builds the module's tuner as a client of the chief's oracle and runs
  the trials it is given; what they trained. `ended()` says whether the
  chief's search has ended (ChiefEnded then stops a call to it)."""
  os.environ.update(
    {
      'KERASTUNER_TUNER_ID': tuner_id,
      'KERASTUNER_ORACLE_IP': chief['ip'],
      'KERASTUNER_ORACLE_PORT': str(chief['port']),
    }
  )
  _say(f'{tuner_id}: building the tuner')
  result = build(input_dict, exec_properties, chief['working_dir'])
  tuner = result.tuner
  tuner.oracle.stub = _PatientStub(tuner.oracle.stub, ended)
  if hasattr(tuner, 'chance'):
    tuner.chance = None  # the chief judges the whole search
  on_trial_begin = tuner.on_trial_begin

  def announced(trial):  # into the worker's log
    _say(f'{tuner_id}: trial {trial.trial_id} begins')
    on_trial_begin(trial)

  tuner.on_trial_begin = announced
  on_trial_end = tuner.on_trial_end

  def ended(trial):
    on_trial_end(trial)
    _say(f'{tuner_id}: trial {trial.trial_id} ended')

  tuner.on_trial_end = ended
  tuner.search(**result.fit_kwargs)
  return {'epochs_trained': getattr(tuner, 'epochs_trained', {})}


def work(task_path: str) -> None:
  """A worker process: the same tuner as the chief's, run as a client of
  its oracle."""
  _, task = _await([task_path], 'task')  # a warm worker waits for the Tuner
  input_dict = artifact_utils.parse_artifact_dict(task['input_dict'])
  _, chief = _await(
    [task['ready']], "address of the chief's oracle", READY_TIMEOUT_S
  )
  _write_json(
    task['result'],
    _search(task['tuner_id'], chief, input_dict, task['exec_properties']),
  )


@contextlib.contextmanager
def _heartbeat(beat: str, ended: str) -> Iterator[threading.Event]:
  """While inside, a thread rewrites a count to file `beat` every
  HEARTBEAT_S and watches for file `ended`: once it appears, the event
  this yields is set and the main thread interrupted (a
  KeyboardInterrupt, between two steps)."""
  beating, chief_ended = threading.Event(), threading.Event()

  def run():
    count = 0
    while not beating.wait(0 if count == 0 else HEARTBEAT_S):
      count += 1
      with fileio.open(beat, 'w') as f:
        f.write(str(count))
      if fileio.exists(ended):
        chief_ended.set()
        _thread.interrupt_main()
        return

  heart = threading.Thread(target=run, name='heartbeat', daemon=True)
  heart.start()
  try:
    yield chief_ended
  finally:
    beating.set()
    heart.join()


def join(
  meeting: str, tuner_id: str, input_dict, exec_properties: Dict[str, Any]
) -> Dict[str, Any]:
  """A worker pod: waits in `meeting` for the chief's address, then runs
  trials as `tuner_id`, beating its heart there meanwhile, and leaves its
  result there (or its failure, in one line). Once the chief says its
  search has ended (it only says so before this worker's end when it
  failed, or when this worker joined late), the worker stops, mid-trial
  too. Returns what it did: its result, or why it stopped or ran
  nothing."""
  _say(f'{tuner_id}: waiting for the chief in {meeting}')
  ended = os.path.join(meeting, ENDED_FILE)
  found, said = _await(
    [ended, os.path.join(meeting, CHIEF_FILE)],
    "address of the chief's oracle",
    MEET_TIMEOUT_S,
    orphan=False,
  )
  if found == ended:
    _say(f"{tuner_id}: the chief's search had ended; nothing to do")
    return {'joined': False, 'chief_failed': said['failed']}
  files = _pod_files(meeting, tuner_id)
  with _heartbeat(files.beat, ended) as chief_ended:
    try:
      with _interruptible():
        result = _search(
          tuner_id,
          said,
          input_dict,
          exec_properties,
          ended=lambda: fileio.exists(ended),
        )
    except (ChiefEnded, KeyboardInterrupt) as e:
      if not (isinstance(e, ChiefEnded) or chief_ended.is_set()):
        raise
      failed = _read_json(ended)['failed']
      _say(
        f"{tuner_id}: the chief's search ended"
        + (f' (it failed: {failed})' if failed else '')
        + '; stopped'
      )
      return {'joined': True, 'stopped': True, 'chief_failed': failed}
    except BaseException as e:  # the chief reads why, in one line
      _write_json(
        files.failed,
        {'error': f'{type(e).__name__}: {e}'.splitlines()[0][:200]},
      )
      raise
  _write_json(files.result, result)
  return {'joined': True, **result}


def main(argv: List[str]) -> int:
  parser = argparse.ArgumentParser(
    prog='python -m components.parallel_search',
    description='A tuning worker: waits for TASK, then runs its trials.',
  )
  parser.add_argument('task')
  parser.add_argument('--preload', help='a module to import while waiting')
  args = parser.parse_args(argv[1:])
  signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: unwind
  from tfx.components.trainer import fn_args_utils  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import

  if args.preload:
    importlib.import_module(args.preload)
  _say('imported; waiting for a task')
  work(args.task)
  # Everything the worker did is on disk now (the trials in the shared
  # folder, its result file): it ends here, without the interpreter's
  # teardown of TensorFlow and Beam (about 2 s), which the chief would wait
  # for before the Tuner can end.
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(0)  # pylint: disable=protected-access


if __name__ == '__main__':
  sys.exit(main(sys.argv))
