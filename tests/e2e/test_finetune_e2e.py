"""The bundled transfer task end to end, through the command line: the digits
source pipeline trains a CNN from scratch; the target pipeline fine-tunes its
latest blessed model on a small labelled set, gets blessed and pushes. ML
Metadata records the base model as the fine-tuned Trainer's input, so the
lineage reaches the source's data. Bad base models stop the run before
anything runs, with one line; the comparison command writes its report."""

import csv
import json
import os

import ml_metadata as mlmd
import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from tests.conftest import REPO, cli, pipeline_fixture, report_page

pytestmark = pytest.mark.e2e

SPECS = os.path.join(REPO, 'pipeline', 'specs')
SOURCE = os.path.join(SPECS, 'digits_source.yaml')
TARGET = os.path.join(SPECS, 'digits_target.yaml')
TARGET_CSV = os.path.join(REPO, 'data', 'digits_target', 'digits_target.csv')
SOURCE_CSV = os.path.join(REPO, 'data', 'digits_source', 'digits_source.csv')
BUDGET = ['tuner.max_trials=4', 'tuner.max_epochs=9']


def _sets(base, root, extra=()):
  values = [
    f'runner.pipeline_root={base}/{root}',
    f'runner.metadata={base}/metadata.sqlite',
    f'push.destination={base}/serving',
    *BUDGET,
    *extra,
  ]
  return [a for v in values for a in ('--set', v)]


def _run(base, spec, root, extra=(), name=None):
  summary_path = os.path.join(base, f'{name or root}.json')
  proc = cli(
    'run', spec, *_sets(base, root, extra), '--summary-json', summary_path
  )
  summary = None
  if os.path.exists(summary_path):
    with open(summary_path) as f:
      summary = json.load(f)
  return proc, summary


@pipeline_fixture(scope='session')
def digits(tmp_path_factory):
  base = str(tmp_path_factory.mktemp('digits'))
  source, source_summary = _run(base, SOURCE, 'source')
  assert source.returncode == 0, source.stdout[-3000:] + source.stderr[-3000:]
  target, target_summary = _run(base, TARGET, 'target')
  assert target.returncode == 0, target.stdout[-3000:] + target.stderr[-3000:]
  return base, source_summary, target, target_summary


def _store(base):
  return mlmd.MetadataStore(
    tfx.orchestration.metadata.sqlite_metadata_connection_config(
      os.path.join(base, 'metadata.sqlite')
    )
  )


def test_target_fine_tunes_the_source_model_and_is_blessed_and_pushed(digits):
  base, source, target_proc, target = digits
  assert source['blessed'] is True
  assert target['status'] == 'succeeded'
  ids = [c['id'] for c in target['components']]
  assert ids.index('base_model_importer') < ids.index('Tuner')
  assert target['blessed'] is True, target['blessing_reason']
  assert target['metrics']['accuracy'] >= 0.85
  assert target['pushed'] is True
  assert target['pushed_path'].startswith(
    os.path.join(base, 'serving', 'digits_target') + os.sep
  )
  assert f'base model: {source["model_uri"]}' in target_proc.stdout
  # The Trainer trained by a fine-tuning strategy (recorded beside its logs).
  run_dir = os.path.join(
    base,
    'target',
    'Trainer',
    'model_run',
    os.path.basename(target['model_uri']),
  )
  with open(os.path.join(run_dir, 'hyperparameters.json')) as f:
    used = json.load(f)
  assert used['strategy'] in (
    'feature_extraction',
    'full',
    'gradual_unfreezing',
    'discriminative_lr',
  )
  assert 'num_layers' not in used
  # Its report: the strategy, the base model, which blocks trained when;
  # a multiclass confusion matrix (no calibration plot: that is binary).
  page = report_page(target)
  assert f'Fine-tuning: {used["strategy"]}</h3>' in page
  assert f'<code>{source["model_uri"]}</code>' in page
  with open(os.path.join(run_dir, 'training_history.json')) as f:
    stages = json.load(f)['finetune']['stages']
  assert stages and page.count(
    '</tr>',
    page.index('id="stages"'),
    page.index('</table>', page.index('id="stages"')),
  ) == 1 + len(stages)
  assert 'id="confusion"' in page and 'id="calibration"' not in page


def test_pushed_target_model_serves_class_probabilities(digits):
  _, _, _, target = digits
  with open(TARGET_CSV, newline='') as f:
    rows = list(csv.DictReader(f))[:200]
  examples = []
  for row in rows:
    feature = {
      k: tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))
      for k, v in row.items()
      if k != 'label'
    }
    examples.append(
      tf.train.Example(
        features=tf.train.Features(feature=feature)
      ).SerializeToString()
    )
  serve = tf.saved_model.load(target['pushed_path']).signatures[
    'serving_default'
  ]
  out = serve(examples=tf.constant(examples))
  probabilities = out['probabilities'].numpy()
  assert probabilities.shape == (200, 5)
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
  np.testing.assert_array_equal(
    out['class_id'].numpy(), probabilities.argmax(axis=1)
  )
  labels = np.array([int(r['label']) for r in rows])
  assert (out['class_id'].numpy() == labels).mean() >= 0.85


def test_metadata_records_the_source_model_as_the_trainer_input(digits):
  base, source, _, target = digits
  store = _store(base)
  source_model = [
    a
    for a in store.get_artifacts_by_type('Model')
    if a.uri == source['model_uri']
  ]
  assert len(source_model) == 1
  trainer = store.get_executions_by_id(
    [
      e.execution_id
      for e in store.get_events_by_artifact_ids(
        [
          a.id
          for a in store.get_artifacts_by_type('Model')
          if a.uri == target['model_uri']
        ]
      )
      if e.type == mlmd.proto.Event.OUTPUT
    ]
  )[0]
  inputs = {
    (e.path.steps[0].key, e.artifact_id)
    for e in store.get_events_by_execution_ids([trainer.id])
    if e.type == mlmd.proto.Event.INPUT
  }
  assert ('base_model', source_model[0].id) in inputs


def test_trace_from_the_target_push_reaches_the_source_data(digits):
  base, _, _, target = digits
  proc = cli(
    'lineage',
    'trace',
    target['pushed_path'],
    '--store',
    os.path.join(base, 'metadata.sqlite'),
    '--json',
  )
  assert proc.returncode == 0, proc.stderr
  tree = json.loads(proc.stdout)
  nodes = []

  def walk(node):
    nodes.append(node)
    for child in node.get('children', []):
      walk(child)

  walk(tree)
  trainers = {
    n['pipeline']: n
    for n in nodes
    if n['kind'] == 'execution' and n.get('node') == 'Trainer'
  }
  assert set(trainers) == {'digits-target', 'digits-source'}
  base_model = [
    c
    for c in trainers['digits-target']['children']
    if c.get('key') == 'base_model'
  ]
  assert base_model and base_model[0]['children'][0]['pipeline'] == (
    'digits-source'
  )
  example_gens = {
    n['pipeline']: n for n in nodes if n.get('node') == 'CsvExampleGen'
  }
  assert example_gens['digits-source']['properties']['input_files'] == [
    SOURCE_CSV
  ]
  assert example_gens['digits-target']['properties']['input_files'] == [
    os.path.join(REPO, 'data', 'digits_target', 'digits_target.csv')
  ]
  text = cli(
    'lineage',
    'trace',
    target['pushed_path'],
    '--store',
    os.path.join(base, 'metadata.sqlite'),
  )
  assert 'pipeline digits-source' in text.stdout


def _rerun_target(base, base_model, name):
  """The target pipeline again in the fixture's root and store (Transform
  and the rest of the data path come from the cache), tuner off."""
  proc, summary = _run(
    base,
    TARGET,
    'target',
    [
      f'training.base_model={base_model}',
      'tuner.enabled=false',
      'training.epochs=15',
    ],
    name=name,
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert summary['status'] == 'succeeded', summary['reason']
  importer = [
    c for c in summary['components'] if c['id'] == 'base_model_importer'
  ][0]
  # An artifact already in ML Metadata (a warm start's own model) is reused,
  # and TFX records that import as cached.
  assert importer['state'] in ('complete', 'cached')
  return _store(base), summary


def _trainer_base_model(store, summary):
  model = [
    a
    for a in store.get_artifacts_by_type('Model')
    if a.uri == summary['model_uri']
  ][0]
  trainer = [
    e.execution_id
    for e in store.get_events_by_artifact_ids([model.id])
    if e.type == mlmd.proto.Event.OUTPUT
  ][0]
  base_ids = [
    e.artifact_id
    for e in store.get_events_by_execution_ids([trainer])
    if e.type == mlmd.proto.Event.INPUT and e.path.steps[0].key == 'base_model'
  ]
  return store.get_artifacts_by_id(base_ids)[0]


def test_base_model_from_a_path_is_imported_and_trains(digits):
  """A SavedModel directory outside ML Metadata (the source's push)."""
  base, source, _, _ = digits
  store, summary = _rerun_target(
    base, f'{{path: {source["pushed_path"]}}}', 'from_path'
  )
  imported = _trainer_base_model(store, summary)
  assert imported.uri == source['pushed_path']
  assert summary['blessed'] is True, summary['blessing_reason']


def test_warm_start_from_the_pipelines_own_last_blessed_model(digits):
  base, _, _, target = digits
  store, summary = _rerun_target(
    base, '{latest_blessed: digits-target}', 'warm_start'
  )
  # The newest blessed target model by then: the fixture's, or a later one.
  previous = _trainer_base_model(store, summary)
  blessed = {
    a.custom_properties['current_model_id'].int_value
    for a in store.get_artifacts_by_type('ModelBlessing')
    if a.custom_properties['blessed'].int_value == 1
  }
  assert previous.id in blessed
  assert previous.uri != summary['model_uri']
  assert (
    previous.id
    >= [
      a
      for a in store.get_artifacts_by_type('Model')
      if a.uri == target['model_uri']
    ][0].id
  )


def _target_runs(base):
  store = _store(base)
  context = store.get_context_by_type_and_name('pipeline', 'digits-target')
  return len(store.get_executions_by_context(context.id))


def _refused(base, extra):
  versions = sorted(os.listdir(os.path.join(base, 'serving', 'digits_target')))
  executions = _target_runs(base)
  proc = cli('run', TARGET, *_sets(base, 'bad', extra))
  assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
  # Nothing ran, nothing was pushed.
  assert sorted(os.listdir(os.path.join(base, 'serving', 'digits_target'))) == (
    versions
  )
  assert _target_runs(base) == executions
  assert not os.path.exists(os.path.join(base, 'bad'))
  return lines[0]


def test_base_model_that_is_not_there_stops_the_run(digits, tmp_path):
  base = digits[0]
  line = _refused(base, [f'training.base_model={{path: {tmp_path}/nothing}}'])
  assert (
    f'training.base_model: base model {tmp_path}/nothing: no SavedModel' in line
  )


def test_base_model_that_does_not_load_stops_the_run(digits, tmp_path):
  base = digits[0]
  broken = tmp_path / 'broken'
  broken.mkdir()
  (broken / 'saved_model.pb').write_bytes(b'not a protobuf')
  line = _refused(base, [f'training.base_model={{path: {broken}}}'])
  assert f'base model {broken}: does not load as a Keras model' in line


def test_base_model_for_other_features_stops_the_run(digits, cold):
  """The breast-cancer model takes other inputs than the digits pixels."""
  base = digits[0]
  other = cold[1]['pushed_path']
  line = _refused(base, [f'training.base_model={{path: {other}}}'])
  assert (
    f'base model {other}: its inputs do not match the transformed '
    'features: missing px_0_0_xf' in line
  )
  assert 'unexpected area_error_xf' in line


def test_unknown_source_pipeline_stops_the_run(digits):
  line = _refused(digits[0], ['training.base_model={latest_blessed: nope}'])
  assert (
    "training.base_model.latest_blessed: pipeline 'nope' has never run" in line
  )


def test_compare_writes_the_report_table_and_plot(digits, tmp_path):
  base = digits[0]
  output = str(tmp_path / 'comparison')
  proc = cli(
    'compare',
    TARGET,
    '--set',
    f'runner.metadata={base}/metadata.sqlite',
    '--sizes',
    '10,30',
    '--repeats',
    '1',
    '--epochs',
    '3',
    '--output',
    output,
  )
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
  with open(output + '.json') as f:
    report = json.load(f)
  methods = [
    'scratch',
    'feature_extraction',
    'full',
    'gradual_unfreezing',
    'discriminative_lr',
  ]
  assert report['settings']['methods'] == methods
  assert {(r['method'], r['labelled']) for r in report['runs']} == {
    (m, n) for m in methods for n in (10, 30)
  }
  assert all(
    0 <= r['accuracy'] <= 1 and r['seconds'] > 0 for r in report['runs']
  )
  assert report['conclusion']['labelled'] == 10
  assert report['settings']['base_model'].startswith(
    os.path.join(base, 'source', 'Trainer', 'model')
  )
  with open(output + '.md') as f:
    text = f.read()
  assert report['conclusion']['text'] in text
  assert '| 30 |' in text
  from PIL import Image  # pylint: disable=g-import-not-at-top

  with Image.open(output + '.png') as image:
    image.verify()
    assert image.format == 'PNG' and image.size[0] > 600
