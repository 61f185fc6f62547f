"""Cold runs of a pipeline process, measured from outside: wall time, peak
memory of the whole process tree, what it left in $TMPDIR, and the seconds
ML Metadata recorded per component."""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(REPO, 'pipeline', 'specs', 'breast_cancer.yaml')


class Timed:
  """A finished process: wall seconds, peak RSS (MiB) of its largest single
  process and of its whole tree summed (sampled every 0.2 s), exit code.

  `also` lists processes outside the tree that work for it (an engine's
  cluster: JobManager, TaskManagers, job server); their trees' memory is
  summed in with the run's at every sample."""

  def __init__(
    self, args: List[str], env: Dict[str, str], also: Sequence[int] = ()
  ):
    started = time.monotonic()
    self.tree_peak_mib = 0.0
    self._also = list(also)
    with tempfile.TemporaryFile('w+') as err:
      proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err
      )
      done = threading.Event()
      sampler = threading.Thread(target=self._sample, args=(proc.pid, done))
      sampler.start()
      _, status, usage = os.wait4(proc.pid, 0)
      done.set()
      sampler.join()
      proc.returncode = os.waitstatus_to_exitcode(status)
      self.wall = time.monotonic() - started
      err.seek(0)
      self.stderr_tail = err.read()[-2000:]
    self.peak_mib = usage.ru_maxrss / 1024
    self.code = proc.returncode

  def _sample(self, pid: int, done: threading.Event) -> None:
    try:
      root = psutil.Process(pid)
    except psutil.NoSuchProcess:
      return
    while not done.wait(0.2):
      total = 0
      try:
        processes = [root, *root.children(recursive=True)]
      except psutil.NoSuchProcess:
        return
      for pid in self._also:
        try:
          other = psutil.Process(pid)
          processes += [other, *other.children(recursive=True)]
        except psutil.NoSuchProcess:
          continue
      for p in processes:
        try:
          total += p.memory_info().rss
        except psutil.NoSuchProcess:
          continue  # a worker that ended between the listing and the read
      self.tree_peak_mib = max(self.tree_peak_mib, total / 2**20)


def tree_mib(path: str) -> float:
  total = 0
  for folder, _, files in os.walk(path):
    for name in files:
      full = os.path.join(folder, name)
      if not os.path.islink(full):
        total += os.path.getsize(full)
  return total / 2**20


def record(
  metadata_path: str, pipeline_name: str, run_id: Optional[str] = None
) -> Tuple[Dict[str, float], Dict]:
  """Components (id -> seconds) and the outcome of a run in a store."""
  import ml_metadata as mlmd  # pylint: disable=g-import-not-at-top

  if REPO not in sys.path:
    sys.path.insert(0, REPO)
  from pipeline.metadata import results  # pylint: disable=g-import-not-at-top
  from pipeline.metadata import store as store_lib  # pylint: disable=g-import-not-at-top

  store = mlmd.MetadataStore(
    store_lib.connection_config(metadata_path, readonly=True)
  )
  if run_id is None:  # a fresh store holds one run
    run_id = store.get_contexts_by_type('pipeline_run')[0].name
  run = results.RunRecord(store, pipeline_name, run_id)
  summary = results.summarize(run)
  return (
    {c.id: c.seconds for c in run.components() if not c.is_resolver},
    {
      'blessed': summary.blessed,
      'pushed': summary.pushed,
      'metrics': summary.metrics,
      'search': summary.search and summary.search.to_json(),
    },
  )


def cold_env(tmpdir: str) -> Dict[str, str]:
  return {
    **os.environ,
    'TMPDIR': tmpdir,
    'TF_USE_LEGACY_KERAS': '1',
    'TF_CPP_MIN_LOG_LEVEL': '3',
  }


def run_ours(
  workdir: str,
  env: Dict[str, str],
  sets: List[str] = (),
  spec: str = SPEC,
  also: Sequence[int] = (),
) -> Tuple[Timed, Dict[str, float], Dict]:
  """`python -m pipeline run` with its root, store and serving folder in
  `workdir` (`also`: processes whose memory counts with it, see Timed);
  SystemExit when it fails."""
  summary_path = os.path.join(workdir, 'summary.json')
  overrides = [
    f'runner.pipeline_root={workdir}/root',
    f'runner.metadata={workdir}/metadata.sqlite',
    f'push.destination={workdir}/serving',
    *sets,
  ]
  timed = Timed(
    [
      sys.executable,
      '-m',
      'pipeline',
      'run',
      spec,
      '--summary-json',
      summary_path,
      *[a for s in overrides for a in ('--set', s)],
    ],
    env,
    also,
  )
  if timed.code != 0:
    raise SystemExit(
      f'our pipeline failed (exit {timed.code}): {timed.stderr_tail}'
    )
  with open(summary_path) as f:
    summary = json.load(f)
  components, outcome = record(
    f'{workdir}/metadata.sqlite', summary['pipeline'], summary['run_id']
  )
  return timed, components, outcome
