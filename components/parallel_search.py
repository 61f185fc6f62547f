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
"""

import argparse
import contextlib
import ctypes
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from typing import Any, Dict, List, Optional

from tfx.components.util import udf_utils
from tfx.types import artifact_utils

TUNER_FN = 'tuner_fn'
IDLE_PAUSE_S = 0.05  # between two asks of a worker the oracle had no trial for
READY_TIMEOUT_S = 600.0  # a worker waits this long for the chief's oracle
STOP_GRACE_S = 5.0


class WorkerFailed(RuntimeError):
  """A tuning worker died or failed. One line."""


def available_cores() -> int:
  return len(os.sched_getaffinity(0))


def build(input_dict, exec_properties: Dict[str, Any], working_dir: str):
  """The module's TunerFnResult, as TFX's Tuner executor builds it."""
  from tfx.components.trainer import fn_args_utils  # pylint: disable=g-import-not-at-top
  fn_args = fn_args_utils.get_common_fn_args(input_dict, exec_properties,
                                             working_dir)
  return udf_utils.get_fn(exec_properties, TUNER_FN)(fn_args)


def _die_with_parent() -> None:  # runs in the child, before exec
  libc = ctypes.CDLL('libc.so.6', use_errno=True)
  libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _Worker:
  """A worker process, waiting for its task at `task` until given one."""

  def __init__(self, task: str, processes: int,
               preload: Optional[str] = None):
    self.task = task
    self.log = task + '.log'
    self.tuner_id: Optional[str] = None
    self.result: Optional[str] = None  # the JSON it writes when it is done
    # TensorFlow sizes its thread pools to every core, and takes all of a
    # GPU's memory, in every process: the trials' processes share them.
    threads = str(max(1, available_cores() // processes))
    env = {**os.environ, 'TF_NUM_INTRAOP_THREADS': threads,
           'TF_NUM_INTEROP_THREADS': threads,
           'TF_FORCE_GPU_ALLOW_GROWTH': 'true',
           'PYTHONPATH': os.pathsep.join(p for p in sys.path if p)}
    with open(self.log, 'w') as out:
      self.process = subprocess.Popen(  # pylint: disable=consider-using-with
          [sys.executable, '-m', 'components.parallel_search', task,
           *(['--preload', preload] if preload else [])],
          stdout=out, stderr=subprocess.STDOUT, env=env,
          preexec_fn=_die_with_parent)

  def give(self, tuner_id: str, task: Dict[str, Any]) -> None:
    self.tuner_id = tuner_id
    self.result = task['result']
    partial = self.task + '.partial'
    with open(partial, 'w') as f:
      json.dump({**task, 'tuner_id': tuner_id}, f)
    os.replace(partial, self.task)

  def stop(self, deadline: float) -> None:
    if self.process.poll() is None:
      self.process.terminate()
    try:
      self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      self.process.kill()
      self.process.wait()


_WARM: List[_Worker] = []  # started by warm_workers, not yet taken


@contextlib.contextmanager
def warm_workers(count: int, preload: Optional[str] = None):
  """Starts `count` workers that import TensorFlow, TFX and `preload` (the
  tuner_fn's module) now and wait for a Chief in this process to give them
  a task; those not taken are stopped when the block ends."""
  folder = tempfile.mkdtemp(prefix='parallel-search-')
  started = [_Worker(os.path.join(folder, f'warm{i}.task.json'), count + 1,
                     preload) for i in range(count)]
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


class Chief:
  """Starts workers, serves the chief tuner's oracle to them, runs trials
  itself, and watches the workers. Use as a context manager:

    with Chief(input_dict, exec_properties, working_dir, workers=1) as chief:
      result = build(...)            # the workers build theirs meanwhile
      chief.search(result)           # until every trial has ended
  """

  def __init__(self, input_dict, exec_properties: Dict[str, Any],
               working_dir: str, workers: int):
    self._task = {'input_dict': artifact_utils.jsonify_artifact_dict(
        input_dict), 'exec_properties': exec_properties,
                  'working_dir': working_dir}
    self._folder = os.path.join(working_dir, 'parallel')
    self._count = workers
    self._workers: List[_Worker] = []
    self._server = None
    self._servicer = None
    self._oracle = None
    self._failure: Optional[str] = None
    self.epochs_trained: Dict[str, int] = {}

  def __enter__(self) -> 'Chief':
    os.makedirs(self._folder, exist_ok=True)
    self._ready = os.path.join(self._folder, 'chief.json')
    self._workers = _take_warm(self._count)
    self._workers += [
        _Worker(os.path.join(self._folder, f'cold{i}.task.json'),
                self._count + 1)
        for i in range(self._count - len(self._workers))]
    self._serve()
    for index, worker in enumerate(self._workers, start=1):
      worker.give(f'tuner{index}', {
          **self._task, 'ready': self._ready,
          'result': os.path.join(self._folder, f'tuner{index}.json')})
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
    tuner.search(**result.fit_kwargs)

  def _serve(self) -> None:
    """Starts the oracle's server on loopback and tells the workers where,
    before the chief's tuner exists: each worker builds its own tuner
    meanwhile, and its first call waits for the chief's oracle."""
    import grpc  # pylint: disable=g-import-not-at-top
    from keras_tuner import protos  # pylint: disable=g-import-not-at-top
    self._servicer = _late_servicer()
    self._server = grpc.server(futures.ThreadPoolExecutor(
        max_workers=max(4, self._count + 1)))
    protos.get_service_grpc().add_OracleServicer_to_server(
        self._servicer, self._server)
    port = self._server.add_insecure_port('127.0.0.1:0')
    self._server.start()
    partial = self._ready + '.partial'
    with open(partial, 'w') as f:
      json.dump({'ip': '127.0.0.1', 'port': port}, f)
    os.replace(partial, self._ready)

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
      code = worker.process.poll()
      if code is None:
        continue
      ongoing = (self._oracle.ongoing_trials.get(worker.tuner_id)
                 if self._oracle else None)
      if code == 0 and ongoing is None:
        continue
      how = (f'killed by signal {-code}' if code < 0 else f'exit {code}')
      doing = f' while running trial {ongoing.trial_id}' if ongoing else ''
      said = _last_line(worker.log) if code > 0 else ''
      self._failure = (
          f'tuning worker {worker.tuner_id} (pid {worker.process.pid}) '
          f'died ({how}){doing}' + (f' saying: {said}' if said else '') +
          '; the search stopped')
      raise WorkerFailed(self._failure)

  def wait(self) -> None:
    """Until every worker has written its result (its search has ended)
    or exited; merges what their trials trained."""
    while any(w.process.poll() is None and not os.path.exists(w.result)
              for w in self._workers):
      self.check()
      time.sleep(0.02)
    self.check()
    for worker in self._workers:
      if os.path.exists(worker.result):
        with open(worker.result) as f:
          self.epochs_trained.update(json.load(f)['epochs_trained'])

  def __exit__(self, *exc) -> None:
    deadline = time.monotonic() + STOP_GRACE_S
    for worker in self._workers:
      worker.stop(deadline)
    if self._server is not None:
      self._servicer.close()
      self._server.stop(grace=None)


def _say(message: str) -> None:
  """A line in the worker's log (its stdout), with the time."""
  print(f'{time.strftime("%H:%M:%S")} {message}', flush=True)


def _last_line(path: str, limit: int = 120) -> str:
  with open(path, errors='replace') as f:
    lines = [line.strip() for line in f if line.strip()]
  return lines[-1][:limit] if lines else ''


def _await(path: str, what: str,
           timeout: Optional[float] = None) -> Dict[str, Any]:
  """The JSON at `path` once it is there; fails when the parent has gone
  or `timeout` seconds have passed."""
  parent = os.getppid()
  deadline = None if timeout is None else time.monotonic() + timeout
  while not os.path.exists(path):
    if os.getppid() != parent or (deadline and time.monotonic() > deadline):
      raise WorkerFailed(f'no {what} came ({path})')
    time.sleep(0.05)
  with open(path) as f:
    return json.load(f)


def work(task_path: str) -> None:
  """A worker: the same tuner as the chief's, run as a client of its oracle."""
  task = _await(task_path, 'task')  # a warm worker waits for the Tuner
  input_dict = artifact_utils.parse_artifact_dict(task['input_dict'])
  chief = _await(task['ready'], 'address of the chief\'s oracle',
                 READY_TIMEOUT_S)
  os.environ.update({'KERASTUNER_TUNER_ID': task['tuner_id'],
                     'KERASTUNER_ORACLE_IP': chief['ip'],
                     'KERASTUNER_ORACLE_PORT': str(chief['port'])})
  _say(f'{task["tuner_id"]}: building the tuner')
  result = build(input_dict, task['exec_properties'], task['working_dir'])
  tuner = result.tuner
  if hasattr(tuner, 'chance'):
    tuner.chance = None  # the chief judges the whole search
  on_trial_begin = tuner.on_trial_begin

  def announced(trial):  # into the worker's log
    _say(f'{task["tuner_id"]}: trial {trial.trial_id} begins')
    on_trial_begin(trial)

  tuner.on_trial_begin = announced
  on_trial_end = tuner.on_trial_end

  def ended(trial):
    on_trial_end(trial)
    _say(f'{task["tuner_id"]}: trial {trial.trial_id} ended')

  tuner.on_trial_end = ended
  tuner.search(**result.fit_kwargs)
  partial = task['result'] + '.partial'
  with open(partial, 'w') as f:
    json.dump({'epochs_trained': getattr(tuner, 'epochs_trained', {})}, f)
  os.replace(partial, task['result'])


def main(argv: List[str]) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m components.parallel_search',
      description='A tuning worker: waits for TASK, then runs its trials.')
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
