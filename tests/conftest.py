"""Shared fixtures. Keras 2 (tf_keras) is chosen here, before TensorFlow is
imported by any test module, as the CLI does at its entry point.

Test tiers: every test that runs a pipeline, or uses a fixture that did, is
marked `e2e`; `make test-fast` runs the others (`pytest -m "not e2e"`). The
marker is enforced twice: at collection, a test whose fixtures include a
`pipeline_fixture` fails unless marked; at run time, `cli()` fails a test
without the marker whose command started a pipeline component.
"""

import json
import os
import random
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request

os.environ['TF_USE_LEGACY_KERAS'] = '1'
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SPEC = os.path.join(REPO, 'pipeline', 'specs', 'breast_cancer.yaml')
DATA_CSV = os.path.join(REPO, 'data', 'breast_cancer', 'breast_cancer.csv')
SCHEMA = os.path.join(REPO, 'schemas', 'breast_cancer', 'schema.pbtxt')


PIPELINE_FIXTURES = set()


def pipeline_fixture(*args, **kwargs):
  """pytest.fixture for a fixture that runs a pipeline (or reads one that
  ran): tests using it, directly or through another fixture, must be e2e."""

  def register(function):
    PIPELINE_FIXTURES.add(function.__name__)
    return pytest.fixture(*args, **kwargs)(function)

  return register


def pytest_collection_modifyitems(config, items):
  del config
  unmarked = [
    item.nodeid
    for item in items
    if PIPELINE_FIXTURES & set(getattr(item, 'fixturenames', ()))
    and item.get_closest_marker('e2e') is None
  ]
  if unmarked:
    raise pytest.UsageError(
      'these tests use a fixture that runs a pipeline but are not marked '
      'e2e (add @pytest.mark.e2e or pytestmark): ' + ', '.join(unmarked)
    )


_CURRENT = {}


@pytest.fixture(autouse=True)
def _current_test(request):
  """Remembers the running test, for cli()'s tier check."""
  _CURRENT['item'] = request.node
  yield
  _CURRENT.pop('item', None)


@pytest.fixture(autouse=True)
def seeded():
  """Every test starts from the same seeds."""
  random.seed(0)
  np.random.seed(0)
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    tf.random.set_seed(0)
  except ImportError:
    pass


# The shared pipeline runs (end-to-end and lineage tests).
MODEL = 'breast_cancer'
COMPONENTS = [
  'CsvExampleGen',
  'ImportSchemaGen',
  'StatisticsGen',
  'ExampleValidator',
  'AnomaliesGate',
  'Transform',
  'Tuner',
  'Trainer',
  'baseline_model_resolver',
  'Evaluator',
  'Pusher',
]
BUDGET = ['tuner.max_trials=4', 'tuner.max_epochs=4', 'training.epochs=40']


# What `run` prints when a component starts (pipeline/runners/local.py).
_COMPONENT_STARTED = re.compile(r'^  \w+ \.\.\.$', re.MULTILINE)


def resolved_spec(path=DEFAULT_SPEC, overrides=None):
  """A spec as the runner hands it to create_pipeline: loaded, then resolved
  against its data by the (TensorFlow-free) pre-flight checks."""
  # pylint: disable=g-import-not-at-top
  from pipeline.definition import spec as spec_lib
  from pipeline.runners import preflight

  # pylint: enable=g-import-not-at-top
  return preflight.run_preflight(spec_lib.load_spec(path, overrides)).spec


def cli(*args, timeout=1500, env=None):
  env = {
    **os.environ,
    'TF_USE_LEGACY_KERAS': '1',
    'PYTHONUNBUFFERED': '1',
    **(env or {}),
  }
  proc = subprocess.run(
    [sys.executable, '-m', 'pipeline', *args],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
    check=False,
  )
  item = _CURRENT.get('item')
  if (
    item is not None
    and item.get_closest_marker('e2e') is None
    and _COMPONENT_STARTED.search(proc.stdout or '')
  ):
    pytest.fail(
      f'{item.nodeid} ran a pipeline (`{" ".join(args[:1])}` '
      'started a component) but is not marked e2e',
      pytrace=False,
    )
  return proc


def base_sets(base, extra=()):
  """`--set` arguments that keep a run's root, store and pushes under
  `base`, then `extra` (KEY=VALUE each)."""
  values = [
    f'runner.pipeline_root={base}/root',
    f'runner.metadata={base}/metadata.sqlite',
    f'push.destination={base}/serving',
    *extra,
  ]
  return [a for v in values for a in ('--set', v)]


def run_sets(base, extra=()):
  """`--set` arguments for a run of the default spec under `base`."""
  return base_sets(base, [*BUDGET, *extra])


def run_pipeline(base, name, extra=(), env=None):
  """The default spec run under `base` with the tests' tuning budget."""
  return run_spec(None, base, name, [*BUDGET, *extra], env=env)


def one_line_error(proc, *fragments):
  """`proc` (a finished CLI command) refused its input: exit 2 and one line
  on stderr, no traceback, holding every fragment."""
  assert proc.returncode == 2, proc.stdout + proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and 'Traceback' not in proc.stderr, proc.stderr
  for fragment in fragments:
    assert fragment in lines[0], lines[0]


def run_spec(spec, base, name, extra=(), env=None):
  """`run SPEC` (the default spec when None) under `base`: (the process,
  its summary, or None when it wrote none)."""
  summary_path = os.path.join(base, f'{name}.json')
  proc = cli(
    'run',
    *([spec] if spec else []),
    *base_sets(base, extra),
    '--summary-json',
    summary_path,
    env=env,
  )
  summary = None
  if os.path.exists(summary_path):
    with open(summary_path) as f:
      summary = json.load(f)
  return proc, summary


def report_page(summary):
  """The HTML report `run` wrote beside the run's summary JSON."""
  assert summary['report'] == os.path.splitext(summary['summary_json'])[0] + (
    '.html'
  )
  with open(summary['report'], encoding='utf-8') as f:
    return f.read()


def serving_versions(base):
  path = os.path.join(base, 'serving', MODEL)
  return sorted(os.listdir(path)) if os.path.isdir(path) else []


@pytest.fixture(scope='session')
def base(tmp_path_factory):
  return str(tmp_path_factory.mktemp('pipeline'))


def cold_tmpdir(base):
  """The empty $TMPDIR the cold run is given (test_faults looks in it)."""
  return os.path.join(base, 'tmpdir')


@pipeline_fixture(scope='session')
def cold(base):
  os.makedirs(cold_tmpdir(base))
  proc, summary = run_pipeline(base, 'cold', env={'TMPDIR': cold_tmpdir(base)})
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc, summary


@pipeline_fixture(scope='session')
def cached(base, cold):
  del cold
  proc, summary = run_pipeline(base, 'cached')
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc, summary


@pytest.fixture(scope='session')
def mariadb(tmp_path_factory):
  """A MariaDB server on loopback: 'mysql://user:password@127.0.0.1:port/'."""
  from tests.support import mariadb as server  # pylint: disable=g-import-not-at-top

  if server.binaries() is None:
    pytest.skip(
      'no MariaDB/MySQL server binary (mariadbd and '
      'mariadb-install-db) on this machine; .ci/run installs '
      'mariadb-server'
    )
  yield from server.serve(str(tmp_path_factory.mktemp('mariadb')))


class Dashboard:
  """`python -m pipeline ui` in a subprocess, on a free port."""

  def __init__(self, store):
    self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
      [sys.executable, '-m', 'pipeline', 'ui', '--store', store, '--port', '0'],
      cwd=REPO,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
      env={**os.environ, 'TF_USE_LEGACY_KERAS': '1'},
    )
    line = self.proc.stdout.readline()
    assert 'http://127.0.0.1:' in line, line + self.proc.stderr.read()
    self.url = 'http://' + line.split('http://', 1)[1].split('/', 1)[0]

  def get(self, path):
    try:
      with urllib.request.urlopen(self.url + path, timeout=60) as response:
        return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
      return e.code, e.read().decode()

  def close(self):
    self.proc.terminate()
    self.proc.wait(timeout=10)


# Engines (pipeline/engines): an empty cache, and loopback ports that
# answer or do not, standing in for a cluster's daemons.


@pytest.fixture
def engines_home(tmp_path, monkeypatch):
  """An empty engines cache: nothing fetched, no cluster."""
  monkeypatch.setenv('PIPELINE_ENGINES_HOME', str(tmp_path / 'engines'))
  return tmp_path / 'engines'


@pytest.fixture
def listening():
  """A factory of loopback ports that accept connections:
  listening(host='localhost') -> 'HOST:PORT'."""
  sockets = []

  def open_one(host='localhost'):
    server = socket.socket()
    server.bind((host, 0))
    server.listen()
    sockets.append(server)
    return f'{host}:{server.getsockname()[1]}'

  yield open_one
  for server in sockets:
    server.close()


def free_port(host='localhost') -> int:
  """A loopback port nothing listens on (one just freed)."""
  with socket.socket() as s:
    s.bind((host, 0))
    return s.getsockname()[1]


def closed_port(host='localhost') -> str:
  """'HOST:PORT' where nothing listens."""
  return f'{host}:{free_port(host)}'
