"""Faults in a run's last steps and in how it ends, driven by fault points
(components/fault_points.py), never by timing: SIGTERM, kill -9 just after
the Pusher's rename, a pipeline root with no room left, and what `lineage
runs` says of each.

Fast: the reconciliation of a push no run recorded, the `lineage runs`
line of a failed run, the log filter, SIGTERM's handler. End to end (`e2e`):
one pipeline root where a run is terminated in its Pusher, the next is
killed just after its push, and a third records that push; and a run on a
full tmpfs.
"""

import datetime
import json
import logging
import os
import signal
import subprocess

import pytest

from tests.conftest import base_sets, cli, pipeline_fixture, run_pipeline

MAX_LINE = 300
MODEL = 'breast_cancer'
PIPELINE = 'breast-cancer'
# Short, and the model is blessed; a random search, as two-epoch trials are
# too short for Hyperband's rounds (it would warn on stderr).
BUDGET = [
  'tuner.algorithm=random',
  'tuner.max_trials=2',
  'tuner.max_epochs=2',
  'training.epochs=20',
]


def _store(path):
  import ml_metadata as mlmd  # pylint: disable=g-import-not-at-top

  from pipeline.metadata import store  # pylint: disable=g-import-not-at-top

  return mlmd.MetadataStore(store.connection_config(path))


def _lineage_runs(store_path):
  proc = cli('lineage', 'runs', '--store', store_path, '--json')
  assert proc.returncode == 0, proc.stderr
  return json.loads(proc.stdout)


def _one_line(proc, code, start):
  """`proc` ended with `code` and exactly one stderr line starting with
  `start`, under MAX_LINE characters, and no traceback."""
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
  assert len(lines) == 1, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stdout + proc.stderr
  assert len(lines[0]) < MAX_LINE and lines[0].startswith(start), lines[0]
  return lines[0]


def _fake_run(store, run_id, node, state, failure=None):
  """A run of PIPELINE in `store` as the local runner and TFX record it: its
  pipeline_run context (with the runner's outcome when `failure` is given)
  and one execution of `node` in `state`. Returns the execution id."""
  from ml_metadata.proto import metadata_store_pb2 as pb  # pylint: disable=g-import-not-at-top

  from pipeline.metadata import results  # pylint: disable=g-import-not-at-top
  from pipeline.runners import session  # pylint: disable=g-import-not-at-top

  run_type = store.put_context_type(pb.ContextType(name='pipeline_run'))
  node_type = store.put_context_type(pb.ContextType(name='node'))
  pipeline_type = store.put_context_type(pb.ContextType(name='pipeline'))
  run = pb.Context(type_id=run_type, name=run_id)
  run.custom_properties[results.RUN_PIPELINE].string_value = PIPELINE
  contexts = [run]
  for type_id, name in (
    (node_type, f'{PIPELINE}.{node}'),
    (pipeline_type, PIPELINE),
  ):
    existing = store.get_context_by_type_and_name(
      'node' if type_id == node_type else 'pipeline', name
    )
    contexts.append(existing or pb.Context(type_id=type_id, name=name))
  execution_type = store.put_execution_type(pb.ExecutionType(name=node))
  execution = pb.Execution(type_id=execution_type, last_known_state=state)
  execution_id, _, _ = store.put_execution(
    execution, [], contexts, reuse_context_if_already_exist=True
  )
  if failure:
    session.finish_run(store, run_id, 'failed', failure)
  return execution_id


# --- fast -------------------------------------------------------------------


def _saved_model(path):
  os.makedirs(os.path.join(path, 'variables'))
  with open(os.path.join(path, 'saved_model.pb'), 'wb') as f:
    f.write(b'graph')
  return path


def test_a_push_no_run_recorded_is_recorded_once_by_the_next_run(tmp_path):
  """A Pusher stopped between its rename and its record left a version and
  a RUNNING execution: the next run adds the push to that execution (which
  keeps its state and times), `lineage runs` shows it and `lineage trace`
  finds the folder; a version pushed from another store is left alone."""
  from ml_metadata.proto import metadata_store_pb2 as pb  # pylint: disable=g-import-not-at-top

  from components import pusher  # pylint: disable=g-import-not-at-top
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top
  from pipeline.runners import session  # pylint: disable=g-import-not-at-top

  store_path = str(tmp_path / 'metadata.sqlite')
  store = _store(store_path)
  execution_id = _fake_run(store, 'run-1', 'Pusher', pb.Execution.RUNNING)
  before = store.get_executions_by_id([execution_id])[0]
  base = str(tmp_path / 'serving' / MODEL)
  model = _saved_model(str(tmp_path / 'model'))
  version, folder = pusher.push(
    model,
    base,
    clock=lambda: 10,
    pushed_by=pusher.PushedBy.here(PIPELINE, 'run-1', 'Pusher'),
  )
  other, _ = pusher.push(
    model,
    base,
    clock=lambda: 11,
    pushed_by=pusher.PushedBy.here(PIPELINE, 'run-elsewhere', 'Pusher'),
  )
  assert pusher.PushedBy.read(folder).run_id == 'run-1'
  assert _lineage_runs(store_path)[0]['pushed_version'] is None  # the fault
  assert session.reconcile_pushes(store, PIPELINE, base, 'run-2') == [
    {'version': version, 'path': folder, 'run_id': 'run-1'}
  ]
  assert session.reconcile_pushes(store, PIPELINE, base, 'run-3') == []
  after = store.get_executions_by_id([execution_id])[0]
  assert after == before  # still as the killed run left it
  [run] = _lineage_runs(store_path)
  assert run['pushed_version'] == str(version) != str(other)
  tree = lineage.trace(store, folder)
  assert tree.properties['pushed_destination'] == folder
  assert [(c.kind, c.id) for c in tree.children] == [
    ('execution', execution_id)
  ]


def test_lineage_runs_says_why_a_run_failed(tmp_path):
  from ml_metadata.proto import metadata_store_pb2 as pb  # pylint: disable=g-import-not-at-top

  store_path = str(tmp_path / 'metadata.sqlite')
  reason = (
    'Tuner failed: NoTrialLearned: no tuning trial learned anything: '
    'the best val_loss 0.66'
  )
  _fake_run(
    _store(store_path), 'run-1', 'Tuner', pb.Execution.FAILED, failure=reason
  )
  proc = cli('lineage', 'runs', '--store', store_path)
  assert proc.returncode == 0, proc.stderr
  assert f'\n    {reason}\n' in proc.stdout, proc.stdout
  assert _lineage_runs(store_path)[0]['failure'] == reason


def test_tfx_saying_an_execution_failed_is_left_to_the_run(capsys):
  """The run's own line names the component and the reason; TFX's `ERROR
  absl: Execution N failed.` adds nothing (shown with --verbose)."""
  from pipeline import cli as cli_lib  # pylint: disable=g-import-not-at-top

  root = logging.getLogger()
  handlers = list(root.handlers)
  try:
    # Only the CLI's handler: one an earlier test left may write to a
    # stream pytest has closed since.
    root.handlers[:] = []
    cli_lib.quiet_logs(False)
    logging.getLogger('absl').error('Execution %d failed.', 7)
    logging.getLogger('absl').error('Execution of %s stopped', 'x')
  finally:
    root.handlers[:] = handlers
  assert capsys.readouterr().err == 'ERROR absl: Execution of x stopped\n'


def test_sigterm_raises_terminated_once_then_ends_the_process():
  from pipeline.runners import signals  # pylint: disable=g-import-not-at-top

  previous = signal.getsignal(signal.SIGTERM)
  try:
    signals.stop_on_sigterm()
    with pytest.raises(signals.Terminated, match=r'terminated \(SIGTERM\)'):
      os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
  finally:
    signal.signal(signal.SIGTERM, previous)
  assert signals.EXIT_TERMINATED == 143


# --- end to end: terminated, killed after its push, recorded ----------------


def _versions(base):
  folder = os.path.join(base, 'serving', MODEL)
  return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pipeline_fixture(scope='module')
def stopped_runs(tmp_path_factory):
  """In one root: run 1 gets SIGTERM in its Pusher, before it pushes; run 2
  (the rest cached) is killed -9 just after the Pusher's rename; run 3
  records run 2's push; run 4 cannot write its summary. What each left, as
  seen right after it."""
  base = str(tmp_path_factory.mktemp('stopped'))
  store = f'{base}/metadata.sqlite'
  seen = {'base': base}
  for name, fault in (
    ('terminated', 'pusher.before_push=term'),
    ('killed', 'pusher.after_rename'),
    ('recorded', None),
    # All cached, it succeeds and finds no room for its
    # summary.
    ('no_room', 'run.write_summary=enospc'),
  ):
    seen[name] = run_pipeline(
      base, name, BUDGET, env=fault and {'PIPELINE_FAULT_POINT': fault}
    )
    seen[f'{name}_runs'] = _lineage_runs(store)
    seen[f'{name}_versions'] = _versions(base)
  return seen


@pytest.mark.e2e
def test_sigterm_ends_a_run_in_one_line_recorded_as_terminated(stopped_runs):
  proc, summary = stopped_runs['terminated']
  assert _one_line(proc, 143, 'terminated') == 'terminated (SIGTERM)'
  assert summary is None
  [run] = stopped_runs['terminated_runs']
  assert run['status'] == 'terminated'
  assert run['components']['Pusher'] == 'canceled'  # as Ctrl-C leaves it
  assert run['components']['Evaluator'] == 'complete'
  assert run['pushed_version'] is None
  assert stopped_runs['terminated_versions'] == []  # nothing half-pushed


@pytest.mark.e2e
def test_a_push_killed_after_its_rename_is_recorded_by_the_next_run(
  stopped_runs,
):
  base = stopped_runs['base']
  proc, summary = stopped_runs['killed']
  assert proc.returncode == -signal.SIGKILL and summary is None
  [version] = stopped_runs['killed_versions']
  folder = os.path.join(base, 'serving', MODEL, version)
  killed = stopped_runs['killed_runs'][-1]
  assert killed['status'] == 'killed'
  assert killed['pushed_version'] is None  # served, and nothing records it
  with open(os.path.join(folder, 'pushed_by.json')) as f:
    assert json.load(f)['run_id'] == killed['run_id']
  # The next run records it, then finds its own model already pushed.
  proc, summary = stopped_runs['recorded']
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (
    f'recorded the push of version {version} by run '
    f'{killed["run_id"]}, which stopped before it could'
  ) in proc.stdout
  assert summary['not_pushed_reason'] == (
    f'identical to version {version}, which is already pushed'
  )
  assert stopped_runs['recorded_versions'] == [version]
  runs = {r['run_id']: r for r in stopped_runs['recorded_runs']}
  assert runs[killed['run_id']]['pushed_version'] == version
  assert runs[killed['run_id']]['status'] == 'killed'
  assert runs[summary['run_id']]['pushed_version'] is None
  text = cli('lineage', 'runs', '--store', f'{base}/metadata.sqlite').stdout
  assert f'pushed: {version}' in text
  trace = cli(
    'lineage', 'trace', folder, '--store', f'{base}/metadata.sqlite', '--json'
  )
  assert trace.returncode == 0, trace.stderr
  tree = json.loads(trace.stdout)
  assert tree['properties']['pushed_version'] == version
  assert 'Pusher' in trace.stdout and 'Trainer' in trace.stdout
  assert not [
    n
    for n in os.listdir(os.path.join(base, 'serving', MODEL))
    if n.startswith('.tmp-')
  ]


@pytest.mark.e2e
def test_a_runs_total_time_includes_its_report(stopped_runs):
  """The total is the command's time: the report (written last) is in it.
  The run id is the wall-clock time the run started, after the command."""
  _, summary = stopped_runs['recorded']
  started = datetime.datetime.fromisoformat(summary['run_id']).timestamp()
  report_written = os.path.getmtime(summary['report'])
  assert report_written - started <= summary['total_seconds'], (
    report_written - started,
    summary['total_seconds'],
  )


@pytest.mark.e2e
def test_a_run_whose_summary_finds_no_room_still_counts(stopped_runs):
  proc, summary = stopped_runs['no_room']
  path = os.path.join(stopped_runs['base'], 'no_room.json')
  line = _one_line(
    proc,
    2,
    f'error: the run succeeded; {path}: cannot '
    'write the run summary: No space left on device',
  )
  assert line.endswith(
    '; make room there or name another file with --summary-json'
  )
  assert summary is None
  assert (
    f'summary: not written ({path}: cannot write the run summary: No '
    'space left on device'
  ) in proc.stdout
  assert not [
    n for n in os.listdir(stopped_runs['base']) if 'no_room.json' in n
  ]  # nor a half-written one
  assert stopped_runs['no_room_runs'][-1]['status'] == 'complete'


# --- end to end: a pipeline root with no room ---------------------------------


@pytest.fixture
def full_root(tmp_path):
  """A 1 MiB tmpfs as the pipeline root: room for the run's lock, none for
  ExampleGen's output."""
  root = tmp_path / 'root'
  root.mkdir()
  mounted = subprocess.run(
    ['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(root)],
    capture_output=True,
    text=True,
    check=False,
  )
  if mounted.returncode != 0:
    pytest.skip(f'cannot mount a tmpfs here: {mounted.stderr.strip()}')
  try:
    yield str(tmp_path)
  finally:
    subprocess.run(['umount', str(root)], check=False)


@pytest.mark.e2e
def test_a_full_pipeline_root_is_one_line_and_the_run_recorded_failed(
  full_root,
):
  """A component fails for want of room; then so does the summary (TFX
  frees the failed component's output, so the fault point stands in for
  the disk still being full). One line, the component's, and exit 1."""
  base = full_root
  proc = cli(
    'run',
    *base_sets(base, BUDGET),
    env={'PIPELINE_FAULT_POINT': 'run.write_summary=enospc'},
  )
  line = _one_line(proc, 1, 'error: ')
  assert ' failed: ' in line and 'No space left on device' in line, line
  assert 'summary: not written (' in proc.stdout, proc.stdout[-2000:]
  summaries = os.path.join(base, 'root', 'summaries')
  left = os.listdir(summaries) if os.path.isdir(summaries) else []
  assert not [n for n in left if '.json' in n], left
  [run] = _lineage_runs(f'{base}/metadata.sqlite')
  assert run['status'] == 'failed'
  assert run['failure'] == line[len('error: ') :]
  text = cli('lineage', 'runs', '--store', f'{base}/metadata.sqlite').stdout
  assert f'\n    {run["failure"]}\n' in text
