"""Tuning trials in parallel processes (`tuner.parallel_trials`, run by
components/parallel_search.py): the same Hyperband search in two processes
as in one, and a worker killed mid-trial failing the Tuner in one line with
no process left behind. Each in a copy of the cold run's store and folders,
so Transform is reused and the shared ones stay as they were. And a
worker's calls to a chief that has gone: they end instead of waiting
forever (Keras Tuner's own calls would)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import ml_metadata as mlmd
import psutil
import pytest

from components import parallel_search
from pipeline.metadata import results
from pipeline.metadata import store as store_lib
from tests.conftest import DEFAULT_SPEC, REPO, run_pipeline, run_sets

WORKER = 'components.parallel_search'


def _copy_of_cold_run(base, into):
  for name in ('root', 'serving', 'metadata.sqlite'):
    source = os.path.join(base, name)
    (shutil.copytree if os.path.isdir(source) else shutil.copy)(
      source, into / name
    )


def _workers_under(folder):
  """Live tuning workers whose task lies under `folder` (the run's $TMPDIR
  for warm ones, its pipeline root for the rest)."""
  found = []
  for process in psutil.process_iter(['cmdline']):
    cmdline = process.info['cmdline'] or []
    if WORKER in cmdline and any(str(folder) in a for a in cmdline):
      found.append(process)
  return found


def _search_report(base, summary):
  """The Tuner's search_report.json, with every trial, of a run in `base`."""
  store = mlmd.MetadataStore(
    store_lib.connection_config(str(base / 'metadata.sqlite'), readonly=True)
  )
  run = results.RunRecord(store, summary['pipeline'], summary['run_id'])
  uri = run.artifacts('Tuner', 'tuner_results')[0].uri
  with open(os.path.join(uri, results.SEARCH_REPORT)) as f:
    return json.load(f)


def _tmpdir(tmp_path):
  folder = tmp_path / 'tmp'
  folder.mkdir()
  return {'TMPDIR': str(folder)}


@pytest.mark.e2e
def test_two_processes_run_the_same_hyperband_search(base, cold, tmp_path):
  _, serial = cold
  _copy_of_cold_run(base, tmp_path)
  proc, summary = run_pipeline(
    str(tmp_path),
    'parallel',
    ['tuner.parallel_trials=2'],
    env=_tmpdir(tmp_path),
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  states = {
    c['id']: c['state'] for c in summary['components'] if not c['is_resolver']
  }
  assert states['Transform'] == 'cached'
  assert states['Tuner'] == 'complete'
  search, before = summary['search'], serial['search']
  assert search['processes'] == 2 and before['processes'] == 1
  # Hyperband's plan is the oracle's, wherever its trials ran: the same
  # trials at the same epochs (promotions included) as in one process.
  assert search['trials_run'] == before['trials_run']
  assert search['trials_by_epochs'] == before['trials_by_epochs']
  assert search['epochs_trained'] == before['epochs_trained']
  assert ' in 2 processes; best val_loss ' in proc.stdout
  # The oracle timed every trial and knows which process ran it (here,
  # with Transform cached, the worker may still be importing TensorFlow
  # while the chief runs all four: the killed-worker test below waits for a
  # worker's trial).
  trials = _search_report(tmp_path, summary)['trials']
  assert {t['process'] for t in trials} <= {'tuner0', 'tuner1'}
  assert all(t['seconds'] > 0 for t in trials)
  # The same quality within noise: it learned (the guard judged it) and
  # the model it chose is blessed like the serial one.
  assert search['best']['score'] < 2 * before['best']['score'] + 0.1
  assert summary['blessed'] is True
  assert _workers_under(tmp_path) == []


@pytest.mark.e2e
def test_a_worker_killed_mid_trial_fails_the_tuner_in_one_line(
  base, cold, tmp_path
):
  del cold
  _copy_of_cold_run(base, tmp_path)
  shutil.rmtree(tmp_path / 'serving')
  summary_path = tmp_path / 'killed.json'
  run = subprocess.Popen(
    [
      sys.executable,
      '-m',
      'pipeline',
      'run',
      DEFAULT_SPEC,
      *run_sets(
        str(tmp_path),
        [
          'tuner.parallel_trials=2',
          'tuner.algorithm=random',
          'tuner.max_epochs=40',
        ],
      ),  # long trials
      '--summary-json',
      str(summary_path),
    ],
    cwd=REPO,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
    env={**os.environ, 'TF_USE_LEGACY_KERAS': '1', **_tmpdir(tmp_path)},
  )
  deadline = time.monotonic() + 600
  trial = worker = None
  while trial is None:
    assert run.poll() is None, run.stderr.read()[-2000:]
    assert time.monotonic() < deadline, 'no worker began a trial'
    for process in _workers_under(tmp_path):
      cmdline = process.info['cmdline']
      with open(cmdline[cmdline.index(WORKER) + 1] + '.log') as f:
        begun = [line for line in f if 'tuner1: trial ' in line]
      if begun:
        worker = process
        trial = begun[-1].split('tuner1: trial ')[1].split()[0]
    time.sleep(0.1)
  worker.send_signal(signal.SIGKILL)
  _, err = run.communicate(timeout=600)
  assert run.returncode == 1, err[-2000:]
  last = err.strip().splitlines()[-1]
  assert last.startswith(
    'error: Tuner failed: WorkerFailed: tuning worker '
    f'tuner1 (pid {worker.pid}) died (killed by signal '
    f'9) while running trial {trial}; the search '
    'stopped'
  ), last
  assert len(last) < 300
  assert _workers_under(tmp_path) == []
  assert not os.path.exists(tmp_path / 'serving')  # nothing pushed


def _stub_to_nowhere():
  """Keras Tuner's oracle stub, to a port where nothing listens (a chief
  that has gone)."""
  import grpc  # pylint: disable=g-import-not-at-top
  from keras_tuner import protos  # pylint: disable=g-import-not-at-top

  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  channel = grpc.insecure_channel(f'127.0.0.1:{port}')
  return protos.get_service_grpc().OracleStub(channel), protos.get_service()


def test_a_call_to_a_chief_whose_search_ended_ends():
  stub, service = _stub_to_nowhere()
  patient = parallel_search._PatientStub(stub, ended=lambda: True, timeout=0.3)
  began = time.monotonic()
  with pytest.raises(parallel_search.ChiefEnded):
    patient.CreateTrial(
      service.CreateTrialRequest(tuner_id='tuner1'), wait_for_ready=True
    )
  assert time.monotonic() - began < 5


def test_a_call_to_a_chief_that_went_silent_fails_in_one_line():
  stub, service = _stub_to_nowhere()
  asked = []
  patient = parallel_search._PatientStub(
    stub, ended=lambda: asked.append(1) and False, timeout=0.3, patience=1.0
  )
  with pytest.raises(
    parallel_search.WorkerFailed,
    match=("^the chief's oracle did not answer GetSpace for 1 s$"),
  ):
    patient.GetSpace(service.GetSpaceRequest(), wait_for_ready=True)
  assert len(asked) >= 2  # asked again until its patience ran out


def test_a_trial_ending_while_another_is_being_scored_reports_the_best(
  tmp_path, caplog
):
  """The chief's oracle ends the workers' trials on its gRPC threads. Keras
  Tuner's end_trial marks a trial COMPLETED before it scores it, so the
  progress line of another trial ending at that moment sees a completed
  trial without a score: it reports the best of the scored ones (Keras
  Tuner's get_best_trials raised a TypeError there, which killed the
  worker whose trial had ended)."""
  import keras_tuner  # pylint: disable=g-import-not-at-top
  from keras_tuner.engine import trial as trial_module  # pylint: disable=g-import-not-at-top

  from components import tuner as tuner_component  # pylint: disable=g-import-not-at-top

  oracle = keras_tuner.oracles.RandomSearchOracle(
    objective=keras_tuner.Objective('val_loss', 'min'), max_trials=4, seed=1
  )
  oracle._set_project_dir(str(tmp_path), 'search')  # pylint: disable=protected-access
  oracle.hyperparameters.Float('learning_rate', 1e-4, 1e-1)
  tuner_component.report_trials(oracle)
  ended = oracle.create_trial('tuner0')
  scoring = oracle.create_trial('tuner1')
  oracle.update_trial(ended.trial_id, {'val_loss': 0.25})
  oracle.trials[scoring.trial_id].status = trial_module.TrialStatus.COMPLETED
  ended.status = trial_module.TrialStatus.COMPLETED
  with caplog.at_level('INFO', logger=tuner_component.PROGRESS_LOGGER):
    oracle.end_trial(ended)
  assert 'trial 1 of 4, best val_loss 0.2500' in caplog.text
  assert tuner_component.best_score(oracle) == 0.25


def test_the_main_thread_can_be_interrupted_with_sigint_ignored():
  """A process a shell starts in the background ignores SIGINT, and there
  `_thread.interrupt_main` did nothing: the chief then waited for its own
  trial's end after a worker died. Inside `_interruptible` it interrupts."""
  script = textwrap.dedent("""
      import _thread, signal, threading, time
      from components import parallel_search
      assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
      threading.Timer(0.2, _thread.interrupt_main).start()
      try:
        with parallel_search._interruptible():
          for _ in range(300):  # steps, as a trial's (an interrupt comes
            time.sleep(0.1)     # between two: not inside a C call)
        print('not interrupted')
      except KeyboardInterrupt:
        print('interrupted')
      assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # restored
      """)
  proc = subprocess.run(
    [sys.executable, '-c', script],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=60,
    check=False,
    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.split() == ['interrupted']
