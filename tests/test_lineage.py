"""`python -m pipeline lineage` over the store of the shared pipeline runs:
runs with their component states, trace from a pushed model back to the CSV,
one-line errors, and a store that is only ever read."""

import hashlib
import json
import os

import pytest

from tests.conftest import DATA_CSV, cli, run_pipeline

pytestmark = pytest.mark.e2e


def _store(base):
  return os.path.join(base, 'metadata.sqlite')


def _digest(path):
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


def test_runs_lists_each_run_with_states_blessing_and_push(base, cold, cached):
  _, first = cold
  _, again = cached
  proc = cli('lineage', 'runs', '--store', _store(base), '--json')
  assert proc.returncode == 0, proc.stderr
  runs = {r['run_id']: r for r in json.loads(proc.stdout)}
  cold_run, cached_run = runs[first['run_id']], runs[again['run_id']]
  assert cold_run['pipeline'] == 'breast-cancer'
  assert set(cold_run['components'].values()) == {'complete'}
  assert 'baseline_model_resolver' not in cold_run['components']
  assert cold_run['blessed'] is True
  assert cold_run['pushed_version'] == first['pushed_version']
  assert set(cached_run['components'].values()) == {'cached'}
  assert cached_run['pushed_version'] is None  # nothing new was pushed
  text = cli('lineage', 'runs', 'breast-cancer', '--store', _store(base))
  assert f'{first["run_id"]}  breast-cancer' in text.stdout
  assert 'blessed: yes  pushed: ' + first['pushed_version'] in text.stdout


def _walk(node):
  yield node
  for child in node['children']:
    yield from _walk(child)


def test_trace_from_the_pushed_model_reaches_data_schema_and_hparams(base,
                                                                      cold):
  _, first = cold
  before = _digest(_store(base))
  proc = cli('lineage', 'trace', first['pushed_path'], '--store', _store(base),
             '--json')
  assert proc.returncode == 0, proc.stderr
  tree = json.loads(proc.stdout)
  assert tree['type'] == 'PushedModel'
  assert tree['properties']['pushed_version'] == first['pushed_version']
  nodes = list(_walk(tree))
  executions = {n['node']: n for n in nodes if n['kind'] == 'execution'}
  assert set(executions) >= {'Pusher', 'Evaluator', 'Trainer', 'Tuner',
                             'Transform', 'CsvExampleGen', 'ImportSchemaGen'}
  assert {n['run'] for n in executions.values()} == {first['run_id']}
  example_gen = executions['CsvExampleGen']
  assert example_gen['properties']['input_files'] == [DATA_CSV]
  raw = [n for n in nodes if n['type'] == 'Examples'
         and 'input_fingerprint' in n.get('properties', {})]
  assert raw and 'num_files:1' in raw[0]['properties']['input_fingerprint']
  hparams = [n for n in nodes if n['type'] == 'HyperParameters'][0]
  assert {'units', 'optimizer', 'learning_rate'} <= set(
      hparams['properties']['values'])
  assert [n for n in nodes if n['type'] == 'Schema']
  models = [n for n in nodes if n['type'] == 'Model']
  assert models[0]['uri'] == first['model_uri']
  text = cli('lineage', 'trace', first['pushed_path'], '--store', _store(base))
  assert text.stdout.splitlines()[0].startswith('PushedModel #')
  assert '└─ Pusher (execution #' in text.stdout
  assert _digest(_store(base)) == before  # read-only


def test_trace_from_a_run_id_and_an_artifact_id(base, cold):
  _, first = cold
  by_run = json.loads(cli('lineage', 'trace', first['run_id'], '--store',
                          _store(base), '--json').stdout)
  assert by_run['type'] == 'PushedModel'
  by_id = json.loads(cli('lineage', 'trace', f'artifact:{by_run["id"]}',
                         '--store', _store(base), '--json').stdout)
  assert by_id == by_run


@pytest.mark.parametrize('target,store,expected', [
    ('artifact:999999', None, 'artifact:999999: no artifact with id 999999'),
    ('{base}', None, 'no pushed model in this store was pushed to that'),
    ('no-such-run', None, 'no-such-run: unknown target'),
    ('artifact:1', '{base}/missing.sqlite', 'no metadata store there'),
    ('artifact:1', '{base}/cold.json', 'not a readable ML Metadata store'),
])
def test_bad_targets_and_stores_are_one_line_errors(base, cold, target, store,
                                                     expected):
  del cold
  proc = cli('lineage', 'trace', target.format(base=base), '--store',
             (store or _store(base)).format(base=base))
  assert proc.returncode == 2
  assert proc.stderr.strip().count('\n') == 0
  assert expected in proc.stderr


@pytest.fixture(scope='module')
def data_change(base, cached, tmp_path_factory):
  """A run on changed data (the CSV without its last 30 rows), after the
  shared cold and cached runs, in the same store."""
  del cached
  data = tmp_path_factory.mktemp('changed_data')
  with open(DATA_CSV) as f:
    lines = f.readlines()
  (data / 'breast_cancer.csv').write_text(''.join(lines[:-30]))
  proc, summary = run_pipeline(base, 'changed', [
      f'data.csv={data}', 'tuner.enabled=false', 'training.epochs=5'])
  assert proc.returncode == 0, proc.stderr[-3000:]
  return summary


def test_diff_names_the_changed_data_and_the_cached_components(
    base, cold, cached, data_change):
  _, first = cold
  _, again = cached
  proc = cli('lineage', 'diff', first['run_id'], data_change['run_id'],
             '--store', _store(base), '--json')
  assert proc.returncode == 0, proc.stderr
  result = json.loads(proc.stdout)
  changes = result['changes']
  assert 'num_files:1,total_bytes:' in changes['data_fingerprint']['a']
  assert changes['data_fingerprint']['a'] != changes['data_fingerprint']['b']
  assert 'schema' in result['unchanged'] and 'code_version' in result[
      'unchanged']
  assert changes['training']['b']['epochs'] == 5
  assert 'metrics' in changes
  # Only the imported schema is the same artifact; everything else re-ran.
  assert result['reused_from_cache'] == ['ImportSchemaGen']
  assert result['components']['Transform'] == {'a': 'complete',
                                               'b': 'complete'}
  same = json.loads(cli('lineage', 'diff', first['run_id'], again['run_id'],
                        '--store', _store(base), '--json').stdout)
  assert same['changes'] == {}
  assert set(same['reused_from_cache']) == set(first['components'][i]['id']
                                               for i in range(11)) - {
                                                   'baseline_model_resolver'}
  text = cli('lineage', 'diff', first['run_id'], data_change['run_id'],
             '--store', _store(base))
  assert 'data_fingerprint: split:single_split,num_files:1' in text.stdout
  assert ('reused from the cache in the second run: ImportSchemaGen'
          in text.stdout)
  bad = cli('lineage', 'diff', first['run_id'], 'nope', '--store', _store(base))
  assert bad.returncode == 2
  assert bad.stderr.strip() == ('error: nope: no such run in the store (see '
                                '`lineage runs`)')
