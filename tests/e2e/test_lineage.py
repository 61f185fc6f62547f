"""`python -m pipeline lineage` over real pipeline runs: runs with their
component states, trace from a pushed model back to the CSV, diff after a
data change, graph, one-line errors, and a store that is only ever read.

The same tests run against the embedded SQLite store of the shared runs and
against a MariaDB server the suite starts on loopback
(tests/support/mariadb.py), where three runs (cold, cached, changed data)
write their metadata."""

import dataclasses
import hashlib
import json
import os
import shutil
import stat
from typing import Any, Dict, Optional

import pytest

from pipeline.metadata import store as metadata_lib
from tests.conftest import (
  DATA_CSV,
  Dashboard,
  cli,
  pipeline_fixture,
  report_page,
  run_pipeline,
)
from tests.unit.runners.test_faults import refused

pytestmark = pytest.mark.e2e


@dataclasses.dataclass
class Runs:
  """Three runs of the default spec in one store: cold, cached re-run, and
  a run on changed data."""

  store: str  # a SQLite path or a mysql:// URI
  first: Dict[str, Any]
  again: Dict[str, Any]
  changed: Dict[str, Any]
  sqlite_file: Optional[str] = None


def _changed_data(tmp_path_factory):
  """The CSV without its last 30 rows."""
  data = tmp_path_factory.mktemp('changed_data')
  with open(DATA_CSV) as f:
    lines = f.readlines()
  (data / 'breast_cancer.csv').write_text(''.join(lines[:-30]))
  return str(data)


CHANGED = ['tuner.enabled=false', 'training.epochs=5']


def _run(base, name, extra):
  proc, summary = run_pipeline(base, name, extra)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return summary


@pipeline_fixture(scope='session')
def sqlite_runs(base, cold, cached, tmp_path_factory):
  """The shared cold and cached runs, and one more on changed data."""
  changed = _run(
    base, 'changed', [f'data.csv={_changed_data(tmp_path_factory)}', *CHANGED]
  )
  store = os.path.join(base, 'metadata.sqlite')
  return Runs(
    store=store,
    first=cold[1],
    again=cached[1],
    changed=changed,
    sqlite_file=store,
  )


@pipeline_fixture(scope='session')
def mariadb_runs(mariadb, tmp_path_factory):
  """The same three runs, their metadata in a MariaDB database."""
  base = str(tmp_path_factory.mktemp('mariadb_runs'))
  store = f'runner.metadata={mariadb}lineage'
  first = _run(base, 'cold', [store])
  again = _run(base, 'cached', [store])
  changed = _run(
    base,
    'changed',
    [store, f'data.csv={_changed_data(tmp_path_factory)}', *CHANGED],
  )
  return Runs(
    store=mariadb + 'lineage', first=first, again=again, changed=changed
  )


@pipeline_fixture(params=['sqlite', 'mariadb'])
def runs(request) -> Runs:
  return request.getfixturevalue(f'{request.param}_runs')


def _counts(location):
  store = metadata_lib.open_store(location)
  return (
    len(store.get_artifacts()),
    len(store.get_executions()),
    len(store.get_contexts()),
    len(
      store.get_events_by_execution_ids([e.id for e in store.get_executions()])
    ),
  )


def _digest(path):
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


def _fingerprint(runs: Runs):
  return (
    _counts(runs.store),
    _digest(runs.sqlite_file) if runs.sqlite_file else None,
  )


def test_runs_lists_each_run_with_states_blessing_and_push(runs):
  first, again = runs.first, runs.again
  proc = cli('lineage', 'runs', '--store', runs.store, '--json')
  assert proc.returncode == 0, proc.stderr
  listed = {r['run_id']: r for r in json.loads(proc.stdout)}
  cold_run, cached_run = listed[first['run_id']], listed[again['run_id']]
  assert cold_run['pipeline'] == 'breast-cancer'
  assert set(cold_run['components'].values()) == {'complete'}
  assert 'baseline_model_resolver' not in cold_run['components']
  assert cold_run['blessed'] is True
  assert cold_run['pushed_version'] == first['pushed_version']
  assert set(cached_run['components'].values()) == {'cached'}
  assert cached_run['pushed_version'] is None  # nothing new was pushed
  # The engine per Beam component that ran (none ran in the cached run).
  assert cold_run['engines'] == dict.fromkeys(
    ['CsvExampleGen', 'StatisticsGen', 'Transform', 'Evaluator'], 'direct'
  )
  assert cached_run['engines'] == {}
  text = cli('lineage', 'runs', 'breast-cancer', '--store', runs.store)
  assert f'{first["run_id"]}  breast-cancer' in text.stdout
  assert 'blessed: yes  pushed: ' + first['pushed_version'] in text.stdout
  assert (
    '    engine: direct (CsvExampleGen, StatisticsGen, Transform, Evaluator)'
  ) in text.stdout


def _walk(node):
  yield node
  for child in node['children']:
    yield from _walk(child)


def test_trace_from_the_pushed_model_reaches_data_schema_and_hparams(runs):
  first = runs.first
  before = _fingerprint(runs)
  proc = cli(
    'lineage', 'trace', first['pushed_path'], '--store', runs.store, '--json'
  )
  assert proc.returncode == 0, proc.stderr
  tree = json.loads(proc.stdout)
  assert tree['type'] == 'PushedModel'
  assert tree['properties']['pushed_version'] == first['pushed_version']
  nodes = list(_walk(tree))
  executions = {n['node']: n for n in nodes if n['kind'] == 'execution'}
  assert set(executions) >= {
    'Pusher',
    'Evaluator',
    'Trainer',
    'Tuner',
    'Transform',
    'CsvExampleGen',
    'ImportSchemaGen',
  }
  assert {n['run'] for n in executions.values()} == {first['run_id']}
  example_gen = executions['CsvExampleGen']
  assert example_gen['properties']['input_files'] == [DATA_CSV]
  raw = [
    n
    for n in nodes
    if n['type'] == 'Examples'
    and 'input_fingerprint' in n.get('properties', {})
  ]
  assert raw and 'num_files:1' in raw[0]['properties']['input_fingerprint']
  hparams = [n for n in nodes if n['type'] == 'HyperParameters'][0]
  assert {'units', 'optimizer', 'learning_rate'} <= set(
    hparams['properties']['values']
  )
  assert [n for n in nodes if n['type'] == 'Schema']
  models = [n for n in nodes if n['type'] == 'Model']
  assert models[0]['uri'] == first['model_uri']
  text = cli('lineage', 'trace', first['pushed_path'], '--store', runs.store)
  assert text.stdout.splitlines()[0].startswith('PushedModel #')
  assert '└─ Pusher (execution #' in text.stdout
  assert _fingerprint(runs) == before  # read-only


def test_trace_from_a_run_id_and_an_artifact_id(runs):
  by_run = json.loads(
    cli(
      'lineage', 'trace', runs.first['run_id'], '--store', runs.store, '--json'
    ).stdout
  )
  assert by_run['type'] == 'PushedModel'
  by_id = json.loads(
    cli(
      'lineage',
      'trace',
      f'artifact:{by_run["id"]}',
      '--store',
      runs.store,
      '--json',
    ).stdout
  )
  assert by_id == by_run


@pytest.mark.parametrize(
  'target,store,expected',
  [
    ('artifact:999999', None, 'artifact:999999: no artifact with id 999999'),
    # Past ML Metadata's int64 ids; a digit int() refuses.
    (
      'artifact:99999999999999999999999',
      None,
      'artifact:99999999999999999999999: no artifact with id '
      '99999999999999999999999 in the store',
    ),
    ('artifact:\u00b2', None, 'artifact:\u00b2: unknown target'),
    ('{base}', None, 'no pushed model in this store was pushed to that'),
    ('no-such-run', None, 'no-such-run: unknown target'),
    ('artifact:1', '{base}/missing.sqlite', 'no metadata store there'),
    ('artifact:1', '{base}/cold.json', 'not a readable ML Metadata store'),
    (
      'artifact:1',
      'mysql://mlmd:pw@127.0.0.1:{closed}/x',
      'mysql://mlmd:***@127.0.0.1:{closed}/x: cannot open the metadata database',
    ),
    (
      'artifact:1',
      'grpc://127.0.0.1:{closed}',
      'grpc://127.0.0.1:{closed}: the metadata service does not answer',
    ),
    ('artifact:1', 'postgres://db/x', 'unsupported metadata store'),
  ],
)
def test_bad_targets_and_stores_are_one_line_errors(
  base, cold, target, store, expected
):
  del cold
  closed = _closed_port()
  fill = lambda text: text.format(base=base, closed=closed)  # noqa: E731
  proc = cli(
    'lineage',
    'trace',
    fill(target),
    '--store',
    fill(store or '{base}/metadata.sqlite'),
  )
  assert proc.returncode == 2
  assert proc.stderr.strip().count('\n') == 0
  assert fill(expected) in proc.stderr
  assert 'pw' not in proc.stderr  # a password is never printed


def _closed_port():
  import socket  # pylint: disable=g-import-not-at-top

  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_diff_names_the_changed_data_and_the_cached_components(runs):
  first, again, data_change = runs.first, runs.again, runs.changed
  proc = cli(
    'lineage',
    'diff',
    first['run_id'],
    data_change['run_id'],
    '--store',
    runs.store,
    '--json',
  )
  assert proc.returncode == 0, proc.stderr
  result = json.loads(proc.stdout)
  changes = result['changes']
  assert 'num_files:1,total_bytes:' in changes['data_fingerprint']['a']
  assert changes['data_fingerprint']['a'] != changes['data_fingerprint']['b']
  assert (
    'schema' in result['unchanged'] and 'code_version' in result['unchanged']
  )
  assert changes['training']['b']['epochs'] == 5
  assert 'metrics' in changes
  # Only the imported schema is the same artifact; everything else re-ran.
  assert result['reused_from_cache'] == ['ImportSchemaGen']
  assert result['components']['Transform'] == {'a': 'complete', 'b': 'complete'}
  same = json.loads(
    cli(
      'lineage',
      'diff',
      first['run_id'],
      again['run_id'],
      '--store',
      runs.store,
      '--json',
    ).stdout
  )
  assert same['changes'] == {}
  assert set(same['reused_from_cache']) == set(
    first['components'][i]['id'] for i in range(11)
  ) - {'baseline_model_resolver'}
  text = cli(
    'lineage',
    'diff',
    first['run_id'],
    data_change['run_id'],
    '--store',
    runs.store,
  )
  assert 'data_fingerprint: split:single_split,num_files:1' in text.stdout
  assert (
    'reused from the cache in the second run: ImportSchemaGen' in text.stdout
  )
  bad = cli('lineage', 'diff', first['run_id'], 'nope', '--store', runs.store)
  assert bad.returncode == 2
  assert bad.stderr.strip() == (
    'error: nope: no such run in the store (see `lineage runs`)'
  )


# The default spec's numeric columns but mean_radius, which is excluded;
# and a threshold the default spec has not.
_MEASURES = (
  'radius',
  'texture',
  'perimeter',
  'area',
  'smoothness',
  'compactness',
  'concavity',
  'concave_points',
  'symmetry',
  'fractal_dimension',
)
NUMERIC_BUT_RADIUS = (
  [f'mean_{m}' for m in _MEASURES[1:]]
  + [f'{m}_error' for m in _MEASURES]
  + [f'worst_{m}' for m in _MEASURES]
)


@pipeline_fixture(scope='session')
def excluded(base, cold, tmp_path_factory):
  """A run of the default spec with a column excluded and a threshold
  added: Transform re-runs. Two epochs, no search: it does not bless, so
  the shared runs' baseline stays the cold run's model."""
  del cold
  return _run(
    base,
    'excluded',
    [
      f'features.numeric=[{", ".join(NUMERIC_BUT_RADIUS)}]',
      'features.exclude=[mean_radius]',
      'evaluation.thresholds.precision=0.5',
      'tuner.enabled=false',
      'training.epochs=2',
      f'push.destination={tmp_path_factory.mktemp("excluded_push")}',
    ],
  )


def test_diff_shows_each_key_of_the_config_the_components_recorded(
  base, cold, excluded
):
  store = os.path.join(base, 'metadata.sqlite')
  first = cold[1]['run_id']
  proc = cli(
    'lineage', 'diff', first, excluded['run_id'], '--store', store, '--json'
  )
  assert proc.returncode == 0, proc.stderr
  result = json.loads(proc.stdout)
  assert result['components']['Transform'] == {'a': 'complete', 'b': 'complete'}
  config = result['changes']['config']
  assert config['features.exclude'] == {
    'a': [],
    'b': ['mean_radius'],
    'components': ['Transform', 'Trainer'],
  }
  assert 'mean_radius' in config['features.numeric']['a']
  assert 'mean_radius' not in config['features.numeric']['b']
  assert config['thresholds.Precision.value_threshold.lower_bound'] == {
    'a': None,
    'b': 0.5,
    'components': ['Evaluator'],
  }
  assert config['training.epochs']['b'] == 2
  assert result['changes']['components'] == {'a': ['Tuner'], 'b': []}
  text = cli(
    'lineage', 'diff', first, excluded['run_id'], '--store', store
  ).stdout.splitlines()
  for line in [
    'config (what each component was given):',
    '  features.exclude (Transform, Trainer): added "mean_radius"',
    '  features.numeric (Transform, Trainer): removed "mean_radius"',
    '  thresholds.Precision.value_threshold.lower_bound '
    '(Evaluator): unset -> 0.5',
    'components only in the first run: Tuner',
  ]:
    assert line in text, '\n'.join(text)


def test_the_report_of_a_run_that_pushed_nothing_traces_its_model(excluded):
  assert not excluded['pushed']
  page = report_page(excluded)
  assert 'Where the trained model (nothing was pushed) came from' in page, page[
    page.find('id="lineage"') :
  ][:400]
  assert 'pushed_model' not in page[page.find('id="lineage"') :]


def _graph(runs, output):
  return cli(
    'lineage',
    'graph',
    runs.first['pushed_path'],
    '--store',
    runs.store,
    '--output',
    output,
  )


def test_graph_writes_the_trace_as_dot(runs, tmp_path):
  first = runs.first
  output = str(tmp_path / 'lineage.dot')
  proc = _graph(runs, output)
  assert proc.returncode == 0, proc.stderr
  import pydot  # pylint: disable=g-import-not-at-top

  (graph,) = pydot.graph_from_dot_file(output)
  tree = json.loads(
    cli(
      'lineage', 'trace', first['pushed_path'], '--store', runs.store, '--json'
    ).stdout
  )
  expected = {
    ('a' if n['kind'] == 'artifact' else 'e') + str(n['id'])
    for n in _walk(tree)
  }
  # pydot 1.4.2's parser lists the default-attribute statement as a node
  # 'node' and, after an edge statement, a phantom node named '"\n"'.
  names = {n.get_name() for n in graph.get_nodes()} - {'node', '"\\n"'}
  assert names == expected
  edges = {(e.get_source(), e.get_destination()) for e in graph.get_edges()}
  model = [n for n in _walk(tree) if n['type'] == 'Model'][0]
  trainer = model['children'][0]
  assert (f'e{trainer["id"]}', f'a{model["id"]}') in edges  # data flows up
  assert all(s in names and d in names for s, d in edges)


@pytest.mark.skipif(
  not shutil.which('dot'),
  reason="Graphviz's dot program is not installed "
  '(.ci/run installs it with apt-get)',
)
def test_graph_renders_svg_and_png(runs, tmp_path):
  svg = str(tmp_path / 'lineage.svg')
  assert _graph(runs, svg).returncode == 0
  import xml.etree.ElementTree as ET  # pylint: disable=g-import-not-at-top

  root = ET.parse(svg).getroot()
  assert root.tag.endswith('svg')
  titles = [t.text for t in root.iter('{http://www.w3.org/2000/svg}title')]
  assert 'Pusher' in ET.tostring(root, encoding='unicode')
  assert any(t and t.startswith('e') for t in titles)
  png = str(tmp_path / 'lineage.png')
  assert _graph(runs, png).returncode == 0
  from PIL import Image  # pylint: disable=g-import-not-at-top

  with Image.open(png) as image:
    image.verify()
    assert image.format == 'PNG'


def test_graph_refuses_unknown_formats_in_one_line(sqlite_runs, tmp_path):
  proc = _graph(sqlite_runs, str(tmp_path / 'lineage.pdf'))
  assert proc.returncode == 2
  assert proc.stderr.strip() == (
    f'error: {tmp_path}/lineage.pdf: the graph file must end in .dot, .svg, '
    '.png'
  )
  assert not os.listdir(tmp_path)


def test_graph_never_replaces_a_special_file(sqlite_runs, tmp_path):
  """A FIFO and a device named like a graph (root makes /dev/full's twin)
  are left as they are; a file under /proc is never made."""
  cases = [(str(tmp_path / 'fifo.dot'), 'a named pipe (FIFO)')]
  os.mkfifo(cases[0][0])
  if os.geteuid() == 0:
    device = str(tmp_path / 'full.dot')
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    cases.append((device, 'a character device'))
  for output, words in cases:
    before = os.lstat(output)
    line = refused(
      _graph(sqlite_runs, output), output, 'cannot write the graph here', words
    )
    assert line.endswith('name a regular file')
    after = os.lstat(output)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
  refused(_graph(sqlite_runs, '/proc/lineage.dot'), 'a kernel file')
  assert not os.path.exists('/proc/lineage.dot')
  assert sorted(os.listdir(tmp_path)) == sorted(
    os.path.basename(path) for path, _ in cases
  )


def test_report_and_dashboard_read_the_store_read_only(runs, tmp_path):
  """`report` and `ui` read the store as `lineage` does: SQLite and MySQL
  alike, changing nothing in it."""
  before = _fingerprint(runs)
  out = tmp_path / 'first.html'
  proc = cli(
    'report', runs.first['run_id'], '--store', runs.store, '--output', str(out)
  )
  assert proc.returncode == 0, proc.stderr
  page = out.read_text()
  assert 'id="blessed">yes' in page
  assert f'version {runs.first["pushed_version"]}' in page
  server = Dashboard(runs.store)
  try:
    status, page = server.get('/')
    assert status == 200
    for summary in (runs.first, runs.again, runs.changed):
      assert f'data-run="{summary["run_id"]}"' in page
    status, page = server.get('/pushed')
    assert status == 200 and runs.first['pushed_version'] in page
  finally:
    server.close()
  assert _fingerprint(runs) == before
