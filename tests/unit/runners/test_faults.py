"""Faults and hostile input: every case asserts the exit code, one stderr
line under 300 characters naming the culprit, and what is on disk after.

Fast (no pipeline runs): the spec fuzz table, the CSV fuzz table, store
faults, `serve` under a version copied in steps and hostile requests.
End to end (`e2e`): kill -9 at component boundaries and re-runs, two runs
of one spec at once, a cold run leaving nothing in $TMPDIR, and a model
identical to the pushed one (columns reordered) not pushed again.
"""

import csv
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from tests.conftest import (
  DATA_CSV,
  DEFAULT_SPEC,
  REPO,
  SCHEMA,
  cli,
  cold_tmpdir,
  run_pipeline,
)

MAX_LINE = 300


def _default_raw():
  with open(DEFAULT_SPEC) as f:
    raw = yaml.safe_load(f)
  folder = os.path.dirname(DEFAULT_SPEC)
  raw['data']['csv'] = os.path.normpath(
    os.path.join(folder, raw['data']['csv'])
  )
  raw['schema'] = SCHEMA
  return raw


def _spec_file(tmp_path, raw=None, text=None, data=None):
  """Writes a spec (the default, with every output under tmp_path/out, which
  the tests assert stays empty) or the given YAML text or bytes."""
  path = tmp_path / 'spec.yaml'
  if data is not None:
    path.write_bytes(data)
  else:
    path.write_text(
      text
      if text is not None
      else yaml.safe_dump(raw if raw is not None else _spec_raw(tmp_path))
    )
  return str(path)


def refused(proc, *culprits):
  """Exit 2, one stderr line naming the culprits, no traceback."""
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert len(lines) == 1, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stdout + proc.stderr
  assert len(lines[0]) < MAX_LINE, lines[0]
  assert lines[0].startswith('error: ')
  for culprit in culprits:
    assert culprit in lines[0], (culprit, lines[0])
  return lines[0]


def nothing_written(tmp_path):
  out = tmp_path / 'out'
  written = [os.path.join(d, f) for d, _, files in os.walk(out) for f in files]
  assert not written, written


def no_run_outputs(tmp_path):
  """A refused run left nothing in the pipeline root (no component output,
  no run lock, no root folder it made) and pushed nothing."""
  root = tmp_path / 'out' / 'root'
  assert not root.exists() or not os.listdir(root), os.listdir(root)
  assert not (tmp_path / 'out' / 'serving').exists()


def _set(*path, value):
  def mutate(raw):
    node = raw
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
    return raw

  return mutate


def _text(mutate):
  """The default spec's YAML, changed as text."""

  def make(tmp_path):
    text = yaml.safe_dump(_spec_raw(tmp_path))
    return _spec_file(tmp_path, text=mutate(text))

  return make


def _spec_raw(tmp_path):
  raw = _default_raw()
  raw['runner'] = {
    'pipeline_root': str(tmp_path / 'out' / 'root'),
    'metadata': str(tmp_path / 'out' / 'metadata.sqlite'),
  }
  raw['push']['destination'] = str(tmp_path / 'out' / 'serving')
  return raw


def _raw(mutate):
  return lambda tmp_path: _spec_file(tmp_path, mutate(_spec_raw(tmp_path)))


def _bytes(data):
  return lambda tmp_path: _spec_file(tmp_path, data=data)


def _file_here(tmp_path):
  (tmp_path / 'plain_file').write_text('x')
  return str(tmp_path / 'plain_file')


ALIAS_BOMB = '\n'.join(
  ['name: &a [x, x, x, x, x, x, x, x, x]']
  + [
    f'l{i}: &l{i} [{", ".join(["*" + ("a" if i == 0 else f"l{i - 1}")] * 9)}]'
    for i in range(9)
  ]
)

SPEC_FUZZ = [
  (
    'duplicate name',
    _text(lambda t: t + 'name: other\n'),
    ["key 'name' is given twice", 'keep one'],
  ),
  (
    'duplicate thresholds',
    _text(
      lambda t: t.replace(
        'evaluation:\n', 'evaluation:\n  thresholds: {auc: 0.5}\n', 1
      )
    ),
    ["key 'thresholds' is given twice"],
  ),
  (
    'epochs true',
    _raw(_set('training', 'epochs', value=True)),
    ['training.epochs: must be a valid integer (got True)'],
  ),
  (
    'NaN threshold',
    _raw(_set('evaluation', 'thresholds', value={'auc': float('nan')})),
    ['evaluation.thresholds.auc: must be a finite number'],
  ),
  (
    'infinite change',
    _raw(_set('evaluation', 'change_thresholds', value={'auc': float('inf')})),
    ['evaluation.change_thresholds.auc: must be a finite number'],
  ),
  (
    'string for int',
    _raw(_set('tuner', 'max_trials', value='many')),
    ['tuner.max_trials:'],
  ),
  ('unknown key', _raw(_set('trainer', value={})), ['trainer: unknown key']),
  (
    'unknown nested key',
    _raw(_set('tuner', 'trials', value=3)),
    ['tuner.trials: unknown key'],
  ),
  (
    'missing key',
    _raw(lambda r: {k: v for k, v in r.items() if k != 'push'}),
    ['push: required key is missing'],
  ),
  (
    'alias bomb',
    lambda tmp_path: _spec_file(tmp_path, text=ALIAS_BOMB),
    ['aliases (*name) are not allowed'],
  ),
  (
    'oversized',
    lambda tmp_path: _spec_file(
      tmp_path, text='name: x\n' + '# padding\n' * 200_000
    ),
    ['a spec is at most 1024 KiB'],
  ),
  ('empty file', _bytes(b''), ['the spec file is empty']),
  ('binary file', _bytes(b'\x00\x01\x02name: x\x00'), ['a binary file']),
  (
    'not utf-8',
    _bytes('name: caf\xe9\n'.encode('latin-1')),
    ['not UTF-8 text'],
  ),
  ('not a mapping', _bytes(b'- a\n- b\n'), ['must be a YAML mapping']),
  ('not yaml', _bytes(b'name: [unclosed\n'), ['not valid YAML (line']),
  (
    'missing data',
    _raw(_set('data', 'csv', value='/nowhere/data')),
    ['/nowhere/data: data not found'],
  ),
  (
    'schema is a folder',
    _raw(_set('schema', value='/tmp')),
    ['schema: /tmp is a folder'],
  ),
  (
    'push under a file',
    lambda tmp_path: _spec_file(
      tmp_path,
      _set('push', 'destination', value=_file_here(tmp_path) + '/serving')(
        _spec_raw(tmp_path)
      ),
    ),
    ['push.destination:', 'plain_file is a file'],
  ),
  (
    'metadata under a file',
    lambda tmp_path: _spec_file(
      tmp_path,
      _set('runner', 'metadata', value=_file_here(tmp_path) + '/m.sqlite')(
        _spec_raw(tmp_path)
      ),
    ),
    ['runner.metadata:', 'plain_file is a file'],
  ),
  (
    'pipeline root is a file',
    lambda tmp_path: _spec_file(
      tmp_path,
      _set('runner', 'pipeline_root', value=_file_here(tmp_path))(
        _spec_raw(tmp_path)
      ),
    ),
    ['runner.pipeline_root:', 'is a file, not a folder'],
  ),
  (
    'missing module file',
    _raw(_set('module_file', value='/nowhere/m.py')),
    ['module_file: /nowhere/m.py: no such file'],
  ),
]


@pytest.mark.parametrize(
  'make,culprits', [c[1:] for c in SPEC_FUZZ], ids=[c[0] for c in SPEC_FUZZ]
)
def test_spec_fuzz_is_refused_in_one_line_and_writes_nothing(
  tmp_path, make, culprits
):
  path = make(tmp_path)
  refused(cli('run', path, timeout=120), *culprits)
  nothing_written(tmp_path)


def test_spec_path_faults_are_one_line(tmp_path):
  refused(
    cli('validate', str(tmp_path / 'missing.yaml')), 'spec file not found'
  )
  refused(cli('validate', str(tmp_path)), 'a folder, not a spec file')


def _csv(tmp_path, rows=None, data=None, name='data.csv'):
  folder = tmp_path / 'csv'
  folder.mkdir(exist_ok=True)
  path = folder / name
  if data is not None:
    path.write_bytes(data)
  else:
    with open(path, 'w', newline='') as f:
      csv.writer(f).writerows(rows)
  return str(path)


def _rows():
  with open(DATA_CSV, newline='') as f:
    return list(csv.reader(f))


def _cell(line, column, value):
  def mutate(rows):
    rows[line - 1][rows[0].index(column)] = value
    return rows

  return mutate


CSV_FUZZ = [
  (
    'not utf-8',
    lambda t: _csv(
      t, data=open(DATA_CSV, 'rb').read().replace(b'\n1', b'\n\xe9', 1)
    ),
    ['not UTF-8 text', 'save the file as UTF-8'],
  ),
  (
    'binary',
    lambda t: _csv(t, data=os.urandom(64) + b'\x00' * 64),
    ['a binary file, not CSV text'],
  ),
  (
    'ragged short row',
    lambda t: _csv(t, _rows()[:5] + [_rows()[5][:3]]),
    ['line 6: 3 fields, expected 31'],
  ),
  (
    'ragged long row',
    lambda t: _csv(t, _rows()[:3] + [_rows()[3] + ['x']]),
    ['line 4: 32 fields, expected 31'],
  ),
  ('empty file', lambda t: _csv(t, data=b''), ['empty file']),
  (
    'header only',
    lambda t: _csv(t, _rows()[:1]),
    ['no data rows after the header'],
  ),
  (
    'text in a number',
    lambda t: _csv(t, _cell(4, 'mean_area', 'big')(_rows())),
    ["line 4, column mean_area: 'big' is not FLOAT"],
  ),
  (
    'missing required',
    lambda t: _csv(t, _cell(7, 'worst_area', '')(_rows())),
    ['line 7, column worst_area: empty value'],
  ),
  (
    'huge field',
    lambda t: _csv(t, _cell(3, 'mean_area', '9' * 200_000)(_rows())),
    ['line 3:', 'not CSV (field larger than field limit'],
  ),
  (
    'unbalanced quote',
    lambda t: _csv(t, data=open(DATA_CSV, 'rb').read() + b'"1,2\n'),
    ['fields, expected 31'],
  ),
]


@pytest.mark.parametrize(
  'make,culprits', [c[1:] for c in CSV_FUZZ], ids=[c[0] for c in CSV_FUZZ]
)
def test_csv_fuzz_is_refused_in_one_line_and_writes_nothing(
  tmp_path, make, culprits
):
  data = make(tmp_path)
  path = _spec_file(
    tmp_path, _set('data', 'csv', value=data)(_spec_raw(tmp_path))
  )
  refused(cli('run', path, timeout=120), data, *culprits)
  nothing_written(tmp_path)


def _cars_variant(tmp_path, transform):
  with open(os.path.join(REPO, 'data', 'cars', 'cars.csv'), 'rb') as f:
    data = transform(f.read())
  path = tmp_path / 'cars.csv'
  path.write_bytes(data)
  return str(path)


@pytest.mark.parametrize(
  'name,transform',
  [
    ('byte-order mark', lambda d: b'\xef\xbb\xbf' + d),
    ('CRLF line ends', lambda d: d.replace(b'\n', b'\r\n')),
    (
      'quoted line break',
      lambda d: d.replace(
        b'chevrolet chevelle malibu', b'"chevrolet\nchevelle, malibu"', 1
      ),
    ),
  ],
)
def test_unusual_but_valid_csvs_are_read(tmp_path, name, transform):
  path = _cars_variant(tmp_path, transform)
  proc = cli(
    'validate',
    os.path.join(REPO, 'pipeline', 'specs', 'cars.yaml'),
    '--set',
    f'data.csv={path}',
  )
  assert proc.returncode == 0, (name, proc.stderr)
  assert '406 rows, 3 classes' in proc.stdout


# --- store faults -------------------------------------------------------


def _run_refusal_env():
  return {**os.environ, 'TF_USE_LEGACY_KERAS': '1', 'PYTHONUNBUFFERED': '1'}


def test_a_store_that_is_not_ml_metadata_is_refused(tmp_path):
  store = tmp_path / 'out' / 'metadata.sqlite'
  store.parent.mkdir()
  store.write_bytes(b'this is not a database' * 100)
  raw = _spec_raw(tmp_path)
  line = refused(
    cli('run', _spec_file(tmp_path, raw), timeout=300),
    f'{store}: the metadata store cannot be written',
  )
  assert 'CsvExampleGen' not in line
  no_run_outputs(tmp_path)


def test_a_full_disk_under_the_store_is_refused_before_anything_runs(tmp_path):
  """The store cannot grow (RLIMIT_FSIZE: a file write past 16 KiB fails
  with EFBIG, as on a full disk)."""
  path = _spec_file(tmp_path)

  def no_room():
    # Room for Python's own small files, none for a new store.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

  proc = subprocess.run(
    [sys.executable, '-m', 'pipeline', 'run', path],
    cwd=REPO,
    env=_run_refusal_env(),
    capture_output=True,
    text=True,
    timeout=300,
    preexec_fn=no_room,
    check=False,
  )
  line = refused(
    proc,
    'metadata.sqlite: the metadata store cannot be written',
    'its disk has room',
  )
  assert 'CsvExampleGen' not in line
  no_run_outputs(tmp_path)


def _immutable(path):
  """Makes `path` read-only even for root (chattr +i); False if it cannot."""
  if os.geteuid() != 0:
    os.chmod(path, 0o444)
    return True
  return (
    subprocess.run(
      ['chattr', '+i', str(path)], capture_output=True, check=False
    ).returncode
    == 0
  )


def test_a_read_only_store_is_refused_before_anything_runs(tmp_path):
  store = tmp_path / 'out' / 'metadata.sqlite'
  store.parent.mkdir()
  import ml_metadata as mlmd  # pylint: disable=g-import-not-at-top
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top

  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = str(store)
  mlmd.MetadataStore(config)
  if not _immutable(store):
    pytest.skip('cannot make a file read-only for root here (chattr +i)')
  try:
    line = refused(cli('run', _spec_file(tmp_path), timeout=300), str(store))
    assert 'not writable' in line or 'cannot be written' in line
    no_run_outputs(tmp_path)
  finally:
    if os.geteuid() == 0:
      subprocess.run(['chattr', '-i', str(store)], check=False)


# --- kill -9, concurrent runs, the lock (end to end) ------------------------

BUDGET = ['tuner.max_trials=2', 'tuner.max_epochs=2', 'training.epochs=20']


def _run_context(**properties):
  from ml_metadata.proto import metadata_store_pb2

  context = metadata_store_pb2.Context(name='run')
  for key, value in properties.items():
    field = 'int_value' if isinstance(value, int) else 'string_value'
    setattr(context.custom_properties[key], field, value)
  return context


def test_a_local_run_that_left_no_outcome_and_no_process_was_killed():
  """Also when it died between components, before TFX registered the next
  execution: no execution is RUNNING then, yet the run did not complete."""
  from pipeline.metadata import results

  dead = subprocess.Popen([sys.executable, '-c', 'pass'])
  dead.wait()
  here = socket.gethostname()
  between = _run_context(runner_host=here, runner_pid=dead.pid)
  assert results.run_status(between, ['complete', 'cached']) == 'killed'
  assert results.run_status(between, ['complete', 'running']) == 'killed'
  alive = _run_context(runner_host=here, runner_pid=os.getpid())
  assert results.run_status(alive, ['complete']) == 'running'
  ended = _run_context(
    runner_host=here, runner_pid=dead.pid, run_outcome='succeeded'
  )
  assert results.run_status(ended, ['complete', 'cached']) == 'complete'
  failed = _run_context(
    runner_host=here, runner_pid=dead.pid, run_outcome='failed'
  )
  assert results.run_status(failed, ['complete']) == 'failed'
  # Elsewhere (another host, Kubeflow): only the executions tell.
  remote = _run_context(runner_host='elsewhere', runner_pid=dead.pid)
  assert results.run_status(remote, ['running']) == 'running'
  assert results.run_status(_run_context(), ['complete']) == 'complete'


class Run:
  """`python -m pipeline run` in the background, its output watched."""

  def __init__(self, base, *extra):
    sets = [
      f'runner.pipeline_root={base}/root',
      f'runner.metadata={base}/metadata.sqlite',
      f'push.destination={base}/serving',
      *BUDGET,
    ]
    self.base = base
    self.summary_path = os.path.join(base, f'summary-{time.time_ns()}.json')
    self.proc = subprocess.Popen(
      [
        sys.executable,
        '-m',
        'pipeline',
        'run',
        DEFAULT_SPEC,
        '--summary-json',
        self.summary_path,
        *extra,
        *[a for s in sets for a in ('--set', s)],
      ],
      cwd=REPO,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
      env={**os.environ, 'TF_USE_LEGACY_KERAS': '1', 'PYTHONUNBUFFERED': '1'},
    )
    self.lines = []
    self._err = []  # read as it comes: a full stderr pipe would stall the run
    self._readers = [
      threading.Thread(
        target=self._read, args=(self.proc.stdout, self.lines), daemon=True
      ),
      threading.Thread(
        target=self._read, args=(self.proc.stderr, self._err), daemon=True
      ),
    ]
    for reader in self._readers:
      reader.start()

  @staticmethod
  def _read(stream, into):
    for line in stream:
      into.append(line.rstrip('\n'))

  def _join(self):
    for reader in self._readers:
      reader.join(timeout=10)

  def wait_for(self, text, timeout=600):
    """Until a stdout line contains `text`; False if the run ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      if any(text in line for line in self.lines):
        return True
      if self.proc.poll() is not None:
        self._join()
        return any(text in line for line in self.lines)
      time.sleep(0.1)
    raise AssertionError(f'no {text!r} in {timeout}s: {self.lines[-5:]}')

  def kill_when_running(self, node=None, timeout=120):
    """Kills the run once `node` (any component when None) is RUNNING in
    its store: TFX logs a component as running a moment before it
    registers the execution, and a killed run is one killed mid-component."""
    if node:
      assert self.wait_for(f'  {node} ...'), self.lines[-5:]
    deadline = time.monotonic() + timeout
    while not _is_running(self.base, node):
      assert time.monotonic() < deadline, f'{node} never RUNNING in the store'
      assert self.proc.poll() is None, f'the run ended before {node} ran'
      time.sleep(0.05)
    self.kill()

  def tail(self):
    """The last lines of its output, for an assertion's message."""
    return '\n'.join(self.lines[-5:] + self._err[-5:])

  def kill(self):
    self.proc.kill()
    self.proc.wait(timeout=60)

  def finish(self, timeout=900):
    self.proc.wait(timeout=timeout)
    self._join()
    err = '\n'.join(self._err)
    summary = None
    if os.path.exists(self.summary_path):
      with open(self.summary_path) as f:
        summary = json.load(f)
    return self.proc.returncode, err, summary


def _running(base):
  """The components RUNNING in the newest run of the store under `base`."""
  import ml_metadata as mlmd

  from pipeline.metadata import lineage, store

  path = f'{base}/metadata.sqlite'
  if not os.path.exists(path):
    return set()
  runs = lineage.list_runs(
    mlmd.MetadataStore(store.connection_config(path, readonly=True))
  )
  return {
    node
    for node, state in (runs[-1].components if runs else {}).items()
    if state == 'running'
  }


def _is_running(base, node=None):
  running = _running(base)
  return node in running if node else bool(running)


def _lineage_runs(base):
  proc = cli('lineage', 'runs', '--store', f'{base}/metadata.sqlite', '--json')
  assert proc.returncode == 0, proc.stderr
  return json.loads(proc.stdout)


def _versions(base):
  folder = os.path.join(base, 'serving', 'breast_cancer')
  return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _kill_three_runs_and_refuse_one(base):
  """Run A is killed mid-component once C waits; meanwhile B (--no-wait) is
  refused and C waits for the pipeline, then takes over the lock A left.
  C is killed as the Trainer starts, D as the Evaluator starts."""
  a = Run(base)
  assert a.wait_for('  CsvExampleGen ...')
  b = Run(base, '--no-wait')
  code, err, _ = b.finish()
  assert code == 2 and len(err.strip().splitlines()) == 1, err
  assert 'pipeline breast-cancer is already running: run ' in err
  assert 'wait for it (run without --no-wait) or stop it' in err
  c = Run(base)
  assert c.wait_for('waiting for run '), c.tail()
  a.kill_when_running()
  assert c.wait_for('taking over the lock of run '), c.tail()
  c.kill_when_running('Trainer')
  d = Run(base)
  d.kill_when_running('Evaluator')


def _race_two_runs(base):
  """E and F start together; the summaries of the one that took the lock
  and of the one that waited for it."""
  e, f = Run(base), Run(base)
  (code_e, err_e, summary_e), (code_f, err_f, summary_f) = (
    e.finish(),
    f.finish(),
  )
  assert code_e == code_f == 0, (err_e[-1000:], err_f[-1000:])
  waited = [any('waiting for run ' in line for line in r.lines) for r in (e, f)]
  assert sorted(waited) == [False, True], (e.tail(), f.tail())
  return (summary_f, summary_e) if waited[0] else (summary_e, summary_f)


@pytest.mark.e2e
def test_kills_waits_and_takeovers_leave_a_consistent_store(tmp_path):
  base = str(tmp_path)
  _kill_three_runs_and_refuse_one(base)
  runs = _lineage_runs(base)
  assert [r['status'] for r in runs] == ['killed'] * 3
  assert all(r['pushed_version'] is None for r in runs)
  assert runs[-1]['components']['Evaluator'] == 'running'
  assert runs[-1]['blessed'] is None  # nothing was judged
  text = cli('lineage', 'runs', '--store', f'{base}/metadata.sqlite').stdout
  assert 'killed' in text and 'blessed: unknown' in text
  assert _versions(base) == []
  # One takes the lock and completes, reusing what finished; the other
  # waits for it and then finds everything done.
  summary, again = _race_two_runs(base)
  states = {c['id']: c['state'] for c in summary['components']}
  for done in (
    'CsvExampleGen',
    'StatisticsGen',
    'Transform',
    'Tuner',
    'Trainer',
  ):
    assert states[done] == 'cached', (done, states)
  assert states['Evaluator'] == states['Pusher'] == 'complete'
  assert {c['state'] for c in again['components'] if not c['is_resolver']} == {
    'cached'
  }
  assert _versions(base) == [summary['pushed_version']]  # pushed once
  assert not [
    n
    for n in os.listdir(os.path.join(base, 'serving', 'breast_cancer'))
    if n.startswith('.tmp-')
  ]
  assert [r['status'] for r in _lineage_runs(base)] == (
    ['killed'] * 3 + ['complete'] * 2
  )


@pytest.mark.e2e
def test_a_cold_run_leaves_nothing_in_tmpdir(base, cold):
  _, summary = cold
  assert summary['status'] == 'succeeded'
  assert os.listdir(cold_tmpdir(base)) == []


@pytest.mark.e2e
def test_reordered_columns_train_the_same_model_and_push_nothing_new(
  base, cold, tmp_path
):
  """Everything re-runs (new input files), the model is the same, and the
  serving folder keeps its one version. In a copy of the cold run's store
  and folders, so the shared ones are left as they were."""
  _, first = cold
  copy = tmp_path / 'copy'
  copy.mkdir()
  for name in ('root', 'serving', 'metadata.sqlite'):
    source = os.path.join(base, name)
    (shutil.copytree if os.path.isdir(source) else shutil.copy)(
      source, copy / name
    )
  with open(DATA_CSV, newline='') as f:
    rows = list(csv.reader(f))
  reordered = tmp_path / 'reordered.csv'
  with open(reordered, 'w', newline='') as f:
    csv.writer(f).writerows([list(reversed(r)) for r in rows])
  proc, summary = run_pipeline(
    str(copy), 'reordered', [f'data.csv={reordered}']
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  states = {c['id']: c['state'] for c in summary['components']}
  assert states['Trainer'] == states['Pusher'] == 'complete'
  assert summary['blessed'] is True and summary['pushed'] is False
  assert summary['not_pushed_reason'] == (
    f'identical to version {first["pushed_version"]}, which is already pushed'
  )
  assert (
    f'pushed: nothing (identical to version {first["pushed_version"]}'
    in proc.stdout
  )
  assert os.listdir(copy / 'serving' / 'breast_cancer') == [
    first['pushed_version']
  ]


# --- serve: a version copied in steps, hostile requests ---------------------


def _tiny_saved_model(path, factor):
  """A SavedModel whose serving_default answers y = x * factor, with the
  factor in its variables."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  class Model(tf.Module):
    def __init__(self):
      super().__init__()
      self.factor = tf.Variable(float(factor))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name='x')])
    def serve(self, x):
      return {'y': x * self.factor}

  model = Model()
  tf.saved_model.save(
    model, str(path), signatures={'serving_default': model.serve}
  )
  return str(path)


def _post(url, body, timeout=30):
  request = urllib.request.Request(
    url, data=body, method='POST', headers={'Content-Type': 'application/json'}
  )
  try:
    with urllib.request.urlopen(request, timeout=timeout) as response:
      return response.status, json.loads(response.read())
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read())


def _get(url, timeout=30):
  try:
    with urllib.request.urlopen(url, timeout=timeout) as response:
      return response.status, json.loads(response.read())
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read())


@pytest.fixture
def tiny_server(tmp_path):
  from components import pusher  # pylint: disable=g-import-not-at-top
  from tests.unit.serving.test_serving import Server  # pylint: disable=g-import-not-at-top

  base = tmp_path / 'models'
  pusher.push(
    _tiny_saved_model(tmp_path / 'one', 1), str(base / 'tiny'), clock=lambda: 1
  )
  server = Server(str(base), poll_seconds=POLL_SECONDS)
  yield server, base / 'tiny', tmp_path
  server.stop()


POLL_SECONDS = 1.0


def test_a_version_copied_in_steps_is_served_once_whole(tiny_server):
  """saved_model.pb first, the variables 4 s later (as `cp -r` or rsync
  write them): the half version fails to load and is retried when its
  folder changes; the old version answers throughout."""
  server, model_dir, tmp_path = tiny_server
  url = server.model('tiny') + ':predict'
  body = json.dumps({'instances': [{'x': 3.0}]}).encode()
  assert _post(url, body) == (200, {'predictions': [3.0]})
  source = _tiny_saved_model(tmp_path / 'two', 2)
  target = model_dir / '2'
  shutil.copytree(source, target, ignore=shutil.ignore_patterns('variables'))
  answers = []
  deadline = time.monotonic() + 4
  while time.monotonic() < deadline:  # the old version keeps answering
    answers.append(_post(url, body))
    time.sleep(0.05)
  assert answers and all(a == (200, {'predictions': [3.0]}) for a in answers), (
    answers[-1]
  )
  assert any('version 2 failed to load' in line for line in server.lines)
  shutil.copytree(os.path.join(source, 'variables'), target / 'variables')
  complete = time.monotonic()
  while time.monotonic() - complete < 2 * POLL_SECONDS:
    answer = _post(url, body)
    assert answer[0] == 200, answer
    if answer[1] == {'predictions': [6.0]}:
      break
    time.sleep(0.05)
  else:
    raise AssertionError(
      f'version 2 not served within two poll periods: {server.lines[-3:]}'
    )
  assert (
    _get(server.model('tiny'))[1]['model_version_status'][0]['version'] == '2'
  )


def test_hostile_requests_are_4xx_and_the_server_keeps_serving(tiny_server):
  server, _, _ = tiny_server
  url = server.model('tiny')
  nested = ('{"instances": ' + '[' * 100_000 + ']' * 100_000 + '}').encode()
  status, answer = _post(url + ':predict', nested)
  assert status == 400 and 'nested too deeply' in answer['error']
  for version in ('\u0663', '\u00b2', '1' * 40):  # Arabic 3, superscript 2
    status, answer = _get(f'{url}/versions/{urllib.parse.quote(version)}')
    assert status in (400, 404), (version, status, answer)
    assert set(answer) == {'error'}
  body = json.dumps({'instances': [{'x': 1.0}]}).encode()
  assert _post(url + ':predict', body) == (200, {'predictions': [1.0]})


def test_a_push_killed_mid_copy_leaves_a_folder_the_next_push_removes(tmp_path):
  from components import pusher  # pylint: disable=g-import-not-at-top

  base = tmp_path / 'serving' / 'model'
  base.mkdir(parents=True)
  dead = subprocess.Popen(['true'])
  dead.wait()
  host = socket.gethostname()
  stale = base / f'.tmp-5-{host}-{dead.pid}-abcdef12'
  live = base / f'.tmp-6-{host}-{os.getpid()}-abcdef12'
  other_host = base / f'.tmp-7-elsewhere-{dead.pid}-abcdef12'
  for folder in (stale, live, other_host):
    (folder / 'variables').mkdir(parents=True)
  model = tmp_path / 'model'
  (model / 'variables').mkdir(parents=True)
  (model / 'saved_model.pb').write_bytes(b'graph')
  version, _ = pusher.push(str(model), str(base), clock=lambda: 10)
  assert sorted(os.listdir(base)) == sorted(
    [str(version), live.name, other_host.name]
  )


def test_the_same_model_exported_twice_has_one_identity(tmp_path):
  from components import pusher  # pylint: disable=g-import-not-at-top

  one = pusher.identity(_tiny_saved_model(tmp_path / 'a', 2))
  again = pusher.identity(_tiny_saved_model(tmp_path / 'b', 2))
  other = pusher.identity(_tiny_saved_model(tmp_path / 'c', 3))
  assert one == again != other
  assert pusher.identity(str(tmp_path / 'nothing')) is None
