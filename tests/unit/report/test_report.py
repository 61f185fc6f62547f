"""See a run: the HTML report, the dashboard, and the readers under them.

Without a pipeline: the evaluation files are read as TFMA reads them, but
without TensorFlow; the lineage picture's layout; the small histograms.
With the shared runs (e2e): the report that `run` writes shows the numbers
of the artifacts it comes from; a not-blessed and a failed run get one too;
the dashboard's pages answer from the store; and both load in a real
headless Chromium with no console error and no request leaving the machine.
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest

from pipeline.metadata import lineage
from pipeline.report import graph, render
from tests.conftest import REPO, Dashboard, report_page
from tests.support import browser

# --- the Evaluator's files, without TensorFlow ------------------------------

_WRITE_AND_COMPARE = r"""
import json, os, sys
folder = sys.argv[1]
from pipeline.metadata import tfma_files
metrics = tfma_files.load_metrics(folder)
plots = tfma_files.load_plots(folder)
validation = tfma_files.load_validation_result(folder)
light = 'tensorflow' not in sys.modules
import tensorflow_model_analysis as tfma
same = (
    [m.SerializeToString() for m in metrics] ==
    [m.SerializeToString() for m in tfma.load_metrics(folder)] and
    [p.SerializeToString() for p in plots] ==
    [p.SerializeToString() for p in tfma.load_plots(folder)] and
    validation.SerializeToString() ==
    tfma.load_validation_result(folder).SerializeToString())
print(json.dumps({'light': light, 'same': same, 'slices': len(metrics),
                  'auc': metrics[0].metric_keys_and_values[0].value
                         .double_value.value}))
"""


def _evaluation_files(folder):
  """An evaluation folder as TFMA's writer leaves it, written with
  TensorFlow's own TFRecord writer."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_model_analysis.proto import (  # pylint: disable=g-import-not-at-top
    metrics_for_slice_pb2 as m_pb2,
  )
  from tensorflow_model_analysis.proto import (  # pylint: disable=g-import-not-at-top
    validation_result_pb2 as v_pb2,
  )

  metrics = []
  for value, column in ((0.97, None), (0.5, 'sex')):
    record = m_pb2.MetricsForSlice()
    if column:
      key = record.slice_key.single_slice_keys.add()
      key.column, key.bytes_value = column, b'F'
    item = record.metric_keys_and_values.add()
    item.key.name = 'auc'
    item.value.double_value.value = value
    metrics.append(record)
  plot = m_pb2.PlotsForSlice()
  matrix = plot.plot_keys_and_values.add().value
  entry = matrix.confusion_matrix_at_thresholds.matrices.add()
  entry.threshold, entry.true_positives, entry.true_negatives = 0.5, 40, 70
  validation = v_pb2.ValidationResult(validation_ok=True)
  for name, records in (
    ('metrics', metrics),
    ('plots', [plot]),
    ('validations', [validation]),
  ):
    with tf.io.TFRecordWriter(
      os.path.join(folder, f'{name}-00000-of-00001.tfrecord')
    ) as writer:
      for record in records:
        writer.write(record.SerializeToString())


def test_evaluation_files_read_as_tfma_reads_them_without_tensorflow(tmp_path):
  _evaluation_files(str(tmp_path))
  proc = subprocess.run(
    [sys.executable, '-c', _WRITE_AND_COMPARE, str(tmp_path)],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
    env={**os.environ, 'TF_USE_LEGACY_KERAS': '1'},
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  # Read without TensorFlow, TFMA still imports afterwards in the same
  # process, and both readings are the same records.
  assert result == {'light': True, 'same': True, 'slices': 2, 'auc': 0.97}


def test_a_cut_short_evaluation_file_is_one_line(tmp_path):
  from pipeline.metadata import tfma_files  # pylint: disable=g-import-not-at-top

  path = tmp_path / 'metrics-00000-of-00001.tfrecord'
  path.write_bytes(b'\x40\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00abc')
  with pytest.raises(
    tfma_files.EvaluationFileError,
    match=r'metrics-00000-of-00001.tfrecord: cut short \(a '
    r'partial record\); re-run the Evaluator$',
  ):
    tfma_files.load_metrics(str(tmp_path))


# --- pictures --------------------------------------------------------------


def _tree():
  files = lineage.Node(
    'execution',
    1,
    'CsvExampleGen',
    node='CsvExampleGen',
    state='complete',
    properties={'input_files': ['/d/a.csv']},
  )
  examples = lineage.Node(
    'artifact',
    10,
    'Examples',
    key='examples',
    properties={'input_fingerprint': 'fp'},
    children=[files],
  )
  again = lineage.Node(
    'artifact', 10, 'Examples', key='examples', repeated=True
  )
  transform = lineage.Node(
    'execution',
    2,
    'Transform',
    node='Transform',
    state='complete',
    children=[examples],
  )
  graph_artifact = lineage.Node(
    'artifact',
    11,
    'TransformGraph',
    key='transform_graph',
    children=[transform],
  )
  trainer = lineage.Node(
    'execution',
    3,
    'Trainer',
    node='Trainer',
    state='complete',
    children=[again, graph_artifact],
  )
  return lineage.Node('artifact', 12, 'Model', children=[trainer])


def test_the_lineage_picture_draws_each_node_once_with_arrows_left_to_right():
  svg = graph.to_svg(_tree())
  root = ET.fromstring(svg)  # well-formed SVG
  ns = {'s': 'http://www.w3.org/2000/svg'}
  boxes = root.findall('s:g', ns)
  assert sorted(int(g.get('data-id')) for g in boxes) == [1, 2, 3, 10, 11, 12]
  lines = root.findall('s:line', ns)
  # Six arrows: the Examples shown twice in the tree is one box with two
  # consumers (Transform and the Trainer).
  assert len(lines) == 6
  for line in lines:  # inputs above what consumed them
    assert float(line.get('y1')) < float(line.get('y2'))
  from pipeline.report import facts  # pylint: disable=g-import-not-at-top

  assert facts.input_files(_tree()) == [
    {'path': '/d/a.csv', 'fingerprint': 'fp'}
  ]


def test_the_lineage_dot_has_each_node_once_and_its_labels_escaped():
  import pydot  # pylint: disable=g-import-not-at-top

  tree = _tree()
  tree.uri = '/runs/Trainer/model/"12"\\x'
  (graph,) = pydot.graph_from_dot_data(lineage.to_dot(tree))
  nodes = {n.get_name(): n.get_attributes() for n in graph.get_nodes()}
  # pydot 1.4.2's parser lists the default-attribute statement as a node
  # 'node' and, after an edge statement, a phantom node named '"\n"'.
  assert set(nodes) - {'node', '"\\n"'} == {
    'e1',
    'e2',
    'e3',
    'a10',
    'a11',
    'a12',
  }
  assert nodes['a12'] == {
    'label': r'"Model #12\nTrainer/model/\"12\"\\x"',
    'shape': 'box',
  }
  assert nodes['e3']['label'] == r'"Trainer #3\n\ncomplete"'
  edges = {
    (e.get_source(), e.get_destination()): e.get_attributes().get('label')
    for e in graph.get_edges()
  }
  assert edges == {
    ('e1', 'a10'): None,
    ('a10', 'e2'): '"examples"',
    ('e2', 'a11'): None,
    ('a10', 'e3'): '"examples"',
    ('a11', 'e3'): '"transform_graph"',
    ('e3', 'a12'): None,
  }


def test_a_long_or_wide_lineage_fits_the_page():
  # A dozen steps back (a trained model from its CSV) and a step with more
  # inputs than fit across: the picture is no wider than the page.
  node = lineage.Node('artifact', 0, 'Examples', key='examples')
  for i in range(1, 16):
    kind = 'execution' if i % 2 else 'artifact'
    node = lineage.Node(
      kind, i, 'Step', node='Step', key='out', state='complete', children=[node]
    )
  inputs = [
    lineage.Node('artifact', 100 + i, 'Schema', key='schema') for i in range(9)
  ]
  trainer = lineage.Node(
    'execution',
    99,
    'Trainer',
    node='Trainer',
    state='complete',
    children=[node, *inputs],
  )
  svg = graph.to_svg(lineage.Node('artifact', 98, 'Model', children=[trainer]))
  root = ET.fromstring(svg)
  assert float(root.get('width')) <= graph.MAX_WIDTH
  ns = {'s': 'http://www.w3.org/2000/svg'}
  assert len(root.findall('s:g', ns)) == 16 + 9 + 2
  for line in root.findall('s:line', ns):
    assert float(line.get('y1')) < float(line.get('y2'))
  for box in root.findall('s:g/s:rect', ns):
    assert float(box.get('x')) + float(box.get('width')) <= float(
      root.get('width')
    )


def test_the_trials_chart_and_line_number_trials_as_the_table_does():
  from components import search_summary  # pylint: disable=g-import-not-at-top
  from pipeline.report import charts  # pylint: disable=g-import-not-at-top

  # Trials 03 and 05 went on from a parent's epoch 2 and trained 4 more:
  # the Tuner's own line counted the epoch each reached ("10 x 6 epochs").
  trials = [
    {
      'trial_id': f'{i:02d}',
      'status': 'COMPLETED',
      'score': 1.0 - i / 20,
      'epochs': 4 if i in (3, 5) else 6,
      'to_epoch': 6,
      'hyperparameters': {},
    }
    for i in range(10)
  ]
  report = {
    'algorithm': 'random',
    'asked': 'random',
    'objective': 'val_loss',
    'processes': 1,
    'note': None,
    'trials': trials,
    'best': {'trial_id': '08', 'score': 0.6, 'epochs': 6},
  }
  assert charts.trial_numbers(trials) == list(range(10))
  svg = charts.trials(report)
  assert 'trial (as numbered in the table)' in svg
  assert search_summary.describe(report) == (
    'random: 10 trials, 56 epochs in all (2 trained 4 epochs, 8 trained '
    '6 epochs); best val_loss 0.6000: trial 08'
  )


# A `lineage diff` result as JSON, with every kind of change.
_DIFF = {
  'run_a': 'A',
  'run_b': 'B',
  'unchanged': ['schema'],
  'components': {'Trainer': {'a': 'complete', 'b': 'complete'}},
  'reused_from_cache': ['CsvExampleGen'],
  'changes': {
    'config': {
      'features.exclude': {
        'a': [],
        'b': ['mean_radius'],
        'components': ['Transform', 'Trainer'],
      }
    },
    'hyperparameters': {'units': {'a': 32, 'b': 64}},
    'metrics': {'auc': {'a': 0.99, 'b': 0.98, 'delta': -0.01}},
    'components': {'a': ['Tuner'], 'b': []},
    'training': {'a': {'epochs': 40}, 'b': {'epochs': 2}},
    'schema': {'a': 'ab12', 'b': None},
  },
}


def test_the_typed_diff_reads_back_and_gives_its_changes_in_order():
  """RunDiff reads back from its JSON and gives it back, the changes in
  the order `lineage diff` prints them; every field is described."""
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top
  from pipeline.metadata.records import (  # pylint: disable=g-import-not-at-top
    DIFF_RECORDS,
    RunDiff,
  )
  from pipeline.metadata.summary import undescribed  # pylint: disable=g-import-not-at-top

  result = RunDiff.model_validate(_DIFF)
  assert result.to_json() == _DIFF
  assert list(result.to_json()['changes']) == [
    'schema',
    'training',
    'hyperparameters',
    'config',
    'components',
    'metrics',
  ]
  assert undescribed(list(DIFF_RECORDS)) == []
  assert lineage.render_diff(result) == [
    'A -> B',
    'schema: ab12 -> None',
    'hyperparameters:',
    '  units: 32 -> 64',
    'config (what each component was given):',
    '  features.exclude (Transform, Trainer): added "mean_radius"',
    'components only in the first run: Tuner',
    'metrics:',
    '  auc: 0.99 -> 0.98 (-0.01)',
    'unchanged: schema',
    'reused from the cache in the second run: CsvExampleGen',
  ]


def test_the_dashboard_diff_shows_every_kind_of_change():
  """What `lineage diff` finds, the diff page shows: a recorded config key
  with its components beside hyperparameters, metrics and whole values."""
  from pipeline.metadata.records import RunDiff  # pylint: disable=g-import-not-at-top
  from pipeline.report import dashboard  # pylint: disable=g-import-not-at-top

  page = dashboard.diff_view('store', RunDiff.model_validate(_DIFF))
  assert 'config: features.exclude' in page
  assert 'mean_radius' in page and 'Transform, Trainer' in page
  assert 'hyperparameters: units' in page and '-0.01' in page


def test_a_histogram_carries_the_total_it_draws():
  feature = {
    'histogram': [
      {'low': 0, 'high': 1, 'count': 3.4},
      {'low': 1, 'high': 2, 'count': 6.6},
    ]
  }
  svg = render.histogram(feature)
  assert 'data-total="10"' in svg
  # One bar per bucket, its range and count its tooltip; drawn at the
  # cell's size, inline (no XML prolog).
  assert re.findall('<title>([^<]*)</title>', svg) == ['0 to 1: 3', '1 to 2: 7']
  assert svg.startswith('<svg class="hist" ')
  assert 'width="120" height="28"' in svg


# --- the run summary: typed, read back, its keys in the docs -------------

# A summary as `run` writes it: a failed push said why, a slice with an
# undefined metric, and a search report key no field names.
SUMMARY = {
  'pipeline': 'p',
  'run_id': '2026-12-05T10:00:00.000001',
  'status': 'succeeded',
  'failed_component': None,
  'reason': None,
  'components': [
    {
      'id': 'Trainer',
      'state': 'complete',
      'seconds': 2.5,
      'execution_id': 7,
      'is_resolver': False,
      'engine': None,
    },
    {
      'id': 'baseline_model_resolver',
      'state': 'complete',
      'seconds': 0.0,
      'execution_id': 8,
      'is_resolver': True,
      'engine': None,
    },
  ],
  'blessed': True,
  'blessing_reason': 'all thresholds met',
  'baseline_model': None,
  'metrics': {'auc': 0.99, 'example_count': 116.0},
  'slices': {
    'group=m': {
      'metrics': {'accuracy': 1.0},
      'undefined': ['auc'],
      'reason': 'one class in the slice',
    }
  },
  'pushed': False,
  'pushed_version': None,
  'pushed_path': None,
  'not_pushed_reason': 'not better than version 3',
  'model_uri': '/m/7',
  'search': {
    'algorithm': 'random',
    'trials_run': 2,
    'line': 'random: 2',
    'best': {'trial_id': '01', 'score': 0.5, 'epochs': 3},
    'trials_by_epochs': {'3': 2},
    'a_later_key': [1],
  },
  'task': 'binary',
  'blessing_rule': 'auc >= 0.9',
  'metadata': '/s.sqlite',
  'pipeline_root': '/root',
  'summary_json': '/root/summaries/x.json',
  'report': '/root/summaries/x.html',
  'report_error': None,
  'total_seconds': 12.25,
}


def test_a_summary_file_reads_back_as_it_was_written(tmp_path):
  from pipeline.cli.run import print_summary  # pylint: disable=g-import-not-at-top
  from pipeline.metadata.summary import RunSummary  # pylint: disable=g-import-not-at-top

  for summary in (
    SUMMARY,
    {k: v for k, v in SUMMARY.items() if k != 'not_pushed_reason'},
  ):
    path = tmp_path / 'summary.json'
    path.write_text(json.dumps(summary, indent=2, sort_keys=True))
    typed = RunSummary.read(str(path))
    assert typed.to_json() == summary
    assert typed.components[0].seconds == 2.5
    assert typed.slices['group=m'].undefined == ['auc']
    assert typed.search.best.score == 0.5 and typed.executed() == ['Trainer']
  out = io.StringIO()
  print_summary(typed, out)
  assert 'pushed: nothing (the model was not blessed)' in out.getvalue()


@pytest.mark.parametrize(
  'text, why',
  [
    ('{"run_id": ', 'Expecting value'),
    ('[]', 'the file: Input should be a valid dictionary'),
    (json.dumps({**SUMMARY, 'pushed': 'maybe'}), 'pushed: Input should be'),
    (
      json.dumps({k: v for k, v in SUMMARY.items() if k != 'status'}),
      'status: Field required',
    ),
    (json.dumps({**SUMMARY, 'colour': 'red'}), 'colour: Extra inputs'),
  ],
)
def test_a_malformed_summary_is_refused_in_one_line(tmp_path, text, why):
  from pipeline.metadata.summary import RunSummary, SummaryError  # pylint: disable=g-import-not-at-top

  path = tmp_path / 'summary.json'
  path.write_text(text)
  with pytest.raises(SummaryError) as raised:
    RunSummary.read(str(path))
  message = str(raised.value)
  assert message.startswith(f'{path}: not a run summary: ') and why in message
  assert '\n' not in message
  with pytest.raises(SummaryError, match='No such file'):
    RunSummary.read(str(tmp_path / 'missing.json'))


def test_the_docs_list_every_summary_key_as_the_model_has_it():
  from pipeline.metadata import summary  # pylint: disable=g-import-not-at-top

  with open(summary.DOCS_PAGE, encoding='utf-8') as f:
    committed = summary.docs_block(f.read())
  assert committed == summary.reference(), (
    "the run summary's keys in docs/cli.md are stale: run python -m "
    'pipeline.metadata.summary and commit the page'
  )
  assert summary.undescribed() == []
  for key in SUMMARY:
    assert f'| `{key}` |' in committed


# --- the report of real runs (e2e) -----------------------------------------


def _cell(page, row_attrs, cls='candidate'):
  match = re.search(
    rf'<tr {row_attrs}>.*?<td class="num {cls}">([^<]*)</td>', page, re.DOTALL
  )
  assert match, row_attrs
  return match.group(1)


@pytest.mark.e2e
def test_the_summary_run_wrote_reads_back_as_written(cold):
  from pipeline.metadata.summary import RunSummary  # pylint: disable=g-import-not-at-top

  _, summary = cold
  assert RunSummary.read(summary['summary_json']).to_json() == summary


def _shows_the_search(page, summary, gathered):
  """Tuning: one row per trial of the Tuner's own report."""
  trials = gathered['tuning']['trials']
  assert len(trials) == summary['search']['trials_run'] == 4
  table = re.search(
    r'<table class="grid" id="trials">(.*?)</table>', page, re.DOTALL
  ).group(1)
  assert table.count('<tr') == 1 + len(trials)
  assert 'class="best"' in table
  # Each trial's seconds, as the oracle timed it, in one process.
  assert all(t['seconds'] > 0 and t['process'] == 'tuner0' for t in trials)
  assert '<th>seconds</th>' in table and '<th>process</th>' not in table


def _shows_the_evaluation(page, summary, gathered):
  """Evaluation: the value shown is TFMA's (the run summary's) AUC."""
  shown = float(_cell(page, 'data-slice="overall" data-metric="auc"'))
  assert shown == pytest.approx(summary['metrics']['auc'], abs=5e-5)
  confusion = gathered['evaluation']['confusion']
  assert sum(map(sum, confusion['rows'])) == summary['metrics']['example_count']
  assert 'id="confusion"' in page and 'id="calibration"' in page


def _shows_the_data(page, store):
  """Data: each histogram's total is the feature's count in that split, as
  StatisticsGen wrote it."""
  from tensorflow_metadata.proto.v0 import statistics_pb2  # pylint: disable=g-import-not-at-top

  stats_uri = store.get_artifacts_by_type('ExampleStatistics')[0].uri
  stats = statistics_pb2.DatasetFeatureStatisticsList()
  with open(
    os.path.join(stats_uri, 'Split-train', 'FeatureStats.pb'), 'rb'
  ) as f:
    stats.ParseFromString(f.read())
  mean_radius = next(
    f for f in stats.datasets[0].features if f.path.step[0] == 'mean_radius'
  )
  row = re.search(
    r'<tr data-feature="mean_radius">(.*?)</tr>', page, re.DOTALL
  ).group(1)
  totals = re.findall(r'data-total="(\d+)"', row)
  assert int(totals[0]) == mean_radius.num_stats.common_stats.num_non_missing
  assert f'>{stats.datasets[0].num_examples}</span> examples' in page


def _shows_the_training_and_lineage(page, summary, gathered):
  """Training: the epochs trained are the history's, early stopping said;
  and the lineage of the pushed model."""
  history = gathered['training']['history']
  assert history['epochs_run'] == len(history['metrics']['loss']) > 0
  assert f'{history["epochs_run"]} of {history["epochs_asked"]} epochs' in page
  # The search line counts the epochs the table lists, trial by trial.
  tuning = gathered['tuning']
  epochs = sum(
    t['epochs'] for t in tuning['trials'] if t['status'] == 'COMPLETED'
  )
  assert f'{epochs} epochs in all' in page
  # The run and its lineage: of the model it pushed, drawn top to bottom.
  assert (
    f'Where the pushed model (version {summary["pushed_version"]}) '
    'came from' in page
  )
  assert 'id="blessed">yes' in page
  assert f'version {summary["pushed_version"]}' in page
  assert 'breast_cancer.csv' in page and 'class="lineage"' in page


def _refuses_an_unwritable_output(base):
  """An output path that cannot be written: one line, no file."""
  blocked = os.path.join(base, 'cold.json', 'report.html')  # under a file
  proc = subprocess.run(
    [
      sys.executable,
      '-m',
      'pipeline',
      'report',
      '--store',
      os.path.join(base, 'metadata.sqlite'),
      '--output',
      blocked,
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    check=False,
  )
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
    f'error: {blocked}: cannot write the report here: '
    'cold.json is a file, not a folder; name '
    'another path'
  ]
  assert not os.path.exists(blocked + '.tmp')


@pytest.mark.e2e
def test_the_cold_runs_report_shows_the_numbers_of_its_artifacts(base, cold):
  """The report `run` wrote: the trial count is the search report's, the
  AUC is TFMA's, each histogram's total is StatisticsGen's count, the
  epochs are the Trainer's, and the confusion matrix covers the eval split."""
  proc, summary = cold
  assert f'report: {summary["report"]}' in proc.stdout
  page = report_page(summary)
  # Self-contained: no script, and nothing to fetch (namespace names
  # such as SVG's are names, not requests).
  assert '<script' not in page
  assert not re.search(r'(src|href)="(https?:)?//|url\((?!#)', page)
  store = lineage.open_store(os.path.join(base, 'metadata.sqlite'))
  from pipeline.report import facts  # pylint: disable=g-import-not-at-top

  gathered = facts.gather(store, summary['run_id'])
  _shows_the_search(page, summary, gathered)
  _shows_the_evaluation(page, summary, gathered)
  _shows_the_data(page, store)
  _shows_the_training_and_lineage(page, summary, gathered)
  _refuses_an_unwritable_output(base)


# --- the dashboard (e2e: over the shared store) -----------------------------


@pytest.fixture
def dashboard(base, cold, cached):
  del cold, cached
  store = os.path.join(base, 'metadata.sqlite')
  with open(store, 'rb') as f:
    before = f.read()
  server = Dashboard(store)
  yield server
  server.close()
  with open(store, 'rb') as f:
    assert f.read() == before  # read-only


@pytest.mark.e2e
def test_the_dashboard_answers_from_the_store(base, cold, dashboard):
  _, first = cold
  runs = lineage.list_runs(
    lineage.open_store(os.path.join(base, 'metadata.sqlite'))
  )
  status, page = dashboard.get('/')
  assert status == 200
  assert re.findall(r'<tr class="\w+" data-run="([^"]+)"', page) == [
    r.run_id for r in reversed(runs)
  ]
  status, page = dashboard.get('/?blessed=yes')
  shown = re.findall(r'data-run="([^"]+)"', page)
  assert shown == [r.run_id for r in reversed(runs) if r.blessed]
  assert first['run_id'] in shown
  # A run's report is the page `report` writes.
  status, page = dashboard.get('/run/' + quote(first['run_id']))
  assert status == 200 and 'id="trials"' in page
  shown = float(_cell(page, 'data-slice="overall" data-metric="auc"'))
  assert shown == pytest.approx(first['metrics']['auc'], abs=5e-5)
  # Two runs side by side; the lineage of the pushed model; the pushes.
  status, page = dashboard.get(
    f'/diff?run={quote(first["run_id"])}&run={quote(runs[-1].run_id)}'
  )
  assert status == 200 and 'id="diff"' in page
  status, page = dashboard.get('/pushed')
  assert status == 200
  assert f'<td class="num">{first["pushed_version"]}</td>' in page
  artifact = re.search(r'href="/lineage/(\d+)"', page).group(1)
  status, page = dashboard.get(f'/lineage/{artifact}')
  assert status == 200 and 'CsvExampleGen' in page and '<svg' in page
  # Questions it cannot answer: one line, 4xx.
  assert dashboard.get('/run/no-such-run')[0] == 404
  assert dashboard.get('/diff?run=only-one')[0] == 400
  assert dashboard.get('/lineage/999999')[0] == 404


@pytest.mark.e2e
def test_report_and_dashboard_load_in_a_real_browser(
  base, cold, dashboard, tmp_path
):
  """Headless Chromium: the report file and every dashboard page load with
  no console error and no request leaving the machine; a screenshot of
  each report section (into $REPORT_SCREENSHOTS when set)."""
  if browser.binary() is None:
    pytest.skip(
      "no Chromium on this machine (.ci/run installs Debian's `chromium`)"
    )
  _, first = cold
  shots = os.environ.get('REPORT_SCREENSHOTS') or str(tmp_path)
  os.makedirs(shots, exist_ok=True)
  with browser.Browser() as b:
    b.open('file://' + first['report'])
    for section in (
      'run',
      'data',
      'tuning',
      'training',
      'evaluation',
      'lineage',
    ):
      path = os.path.join(shots, f'report-{section}.png')
      b.screenshot(path, f'#{section}')
      with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # What the browser shows is what the artifacts hold.
    assert b.evaluate('document.querySelectorAll("#trials tr").length') == (
      1 + first['search']['trials_run']
    )
    # Nothing is wider than the page: not the lineage picture, no table.
    assert b.evaluate(
      'document.documentElement.scrollWidth <= window.innerWidth'
    )
    assert b.evaluate(
      'document.querySelector("svg.lineage")'
      '.getBoundingClientRect().right <= document.body'
      '.getBoundingClientRect().right'
    )
    run_id = quote(first['run_id'])
    for name, path in (
      ('runs', '/'),
      ('run', f'/run/{run_id}'),
      ('pushed', '/pushed'),
      ('diff', f'/diff?run={run_id}&run={run_id}'),
    ):
      b.open(dashboard.url + path)
      assert b.evaluate('document.querySelector("nav a")') is not None
      assert b.evaluate(
        'document.documentElement.scrollWidth <= window.innerWidth'
      ), name
      b.screenshot(os.path.join(shots, f'dashboard-{name}.png'), 'body')
    assert b.console_errors == []
    local = ('file://', dashboard.url, 'about:', 'data:')
    assert [u for u in b.requests if not u.startswith(local)] == []
  if os.environ.get('REPORT_SCREENSHOTS'):
    shutil.copy(first['report'], os.path.join(shots, 'report.html'))


def test_column_statistics_of_images_and_long_text():
  from tensorflow_metadata.proto.v0 import statistics_pb2  # pylint: disable=g-import-not-at-top

  from pipeline.report import facts  # pylint: disable=g-import-not-at-top

  def column(*values):
    feature = statistics_pb2.FeatureNameStatistics(name='c')
    feature.string_stats.unique = len(values)
    for value in values:
      feature.string_stats.top_values.add(value=value, frequency=1)
    return facts._feature_stats(feature)  # pylint: disable=protected-access

  images = column(facts.BINARY_VALUE, facts.BINARY_VALUE)
  assert images['binary'] is True and images['top_values'] == []
  # A free-text column (the spec's features.text): each value is near
  # unique, so none is listed as a "top value".
  text = statistics_pb2.FeatureNameStatistics(name='review')
  text.string_stats.unique = 2
  text.string_stats.avg_length = 140.0
  text.string_stats.top_values.add(value='A moving film ' * 10, frequency=1)
  free = facts._feature_stats(text, text=True)  # pylint: disable=protected-access
  assert free['top_values'] == [] and free['text'] is True
  assert free['average_length'] == 140.0
  review = 'A moving film ' * 10
  shown = column(review, 'short')['top_values']
  assert shown[1]['value'] == 'short'
  assert len(shown[0]['value']) == facts.SHOWN_CHARACTERS
  assert shown[0]['value'].endswith('\u2026')
  assert review.startswith(shown[0]['value'][:-1])


# --- where a report may be written ------------------------------------------


def _empty_store(tmp_path):
  from pipeline.metadata import store as metadata_lib  # pylint: disable=g-import-not-at-top

  path = str(tmp_path / 'metadata.sqlite')
  metadata_lib.open_store(path, readonly=False)
  return path


def _special_files(tmp_path):
  """(path, words its refusal holds) for each kind of file a report must
  not replace; the device is made here (as /dev/full's twin) when root."""
  import socket  # pylint: disable=g-import-not-at-top

  fifo = str(tmp_path / 'fifo')
  os.mkfifo(fifo)
  sock = socket.socket(socket.AF_UNIX)
  sock.bind(str(tmp_path / 'sock'))
  folder = tmp_path / 'folder.html'
  folder.mkdir()
  cases = [
    (fifo, 'a named pipe (FIFO)'),
    (str(tmp_path / 'sock'), 'a socket'),
    (str(folder), 'a folder'),
    ('/proc/version', 'a kernel file'),
    ('/dev/full', 'full is a character device'),
  ]
  if os.geteuid() == 0:
    device = str(tmp_path / 'full')
    os.mknod(device, 0o666 | __import__('stat').S_IFCHR, os.makedev(1, 7))
    cases.append((device, 'a character device'))
  return cases, sock


def test_a_report_is_never_written_over_a_special_file(tmp_path):
  from tests.unit.runners.test_faults import refused  # pylint: disable=g-import-not-at-top

  store = _empty_store(tmp_path)
  cases, sock = _special_files(tmp_path)
  with open('/proc/version', 'rb') as f:
    kernel = f.read()
  try:
    for path, words in cases:
      before = os.lstat(path)
      proc = subprocess.run(
        [
          sys.executable,
          '-m',
          'pipeline',
          'report',
          '--store',
          store,
          '--output',
          path,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
      )
      line = refused(proc, path, 'cannot write the report here', words)
      assert line.endswith('name a regular file'), line
      after = os.lstat(path)
      assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    with open('/proc/version', 'rb') as f:
      assert f.read() == kernel
    assert sorted(os.listdir(tmp_path)) == sorted(
      ['metadata.sqlite', 'fifo', 'sock', 'folder.html']
      + (['full'] if os.geteuid() == 0 else [])
    )
  finally:
    sock.close()


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
  from pipeline import paths  # pylint: disable=g-import-not-at-top

  target = tmp_path / 'out.html'
  target.write_text('old')
  os.chmod(target, 0o640)
  link = tmp_path / 'link.html'
  link.symlink_to(target)
  paths.write_text(str(link), 'new', ValueError)
  assert link.is_symlink() and target.read_text() == 'new'
  assert os.stat(target).st_mode & 0o777 == 0o640  # its mode is kept
  with pytest.raises(ZeroDivisionError):
    with paths.atomic_file(str(target), ValueError) as f:
      f.write('half')
      raise ZeroDivisionError  # the writer fails half-way
  assert target.read_text() == 'new'
  assert sorted(os.listdir(tmp_path)) == ['link.html', 'out.html']
  paths.write_text(str(tmp_path / 'new' / 'deeper.csv'), 'x', ValueError)
  assert (tmp_path / 'new' / 'deeper.csv').read_text() == 'x'
