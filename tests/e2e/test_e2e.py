"""The whole pipeline through its command line, on the shipped data.

One cold run is shared by the tests (a session fixture); the others reuse
its metadata store (cached re-run, a worse candidate) or start their own
(drifted data, bad input). The tuner budget is cut down to keep the suite to
a few minutes; the default spec's budget is exercised by `make run` and the
benchmark.
"""

import csv
import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios

import ml_metadata as mlmd
import pytest
from tfx import v1 as tfx

from tests.conftest import (
  COMPONENTS,
  DATA_CSV,
  MODEL,
  REPO,
  pipeline_fixture,
  report_page,
  run_sets,
)
from tests.conftest import cli as _cli
from tests.conftest import run_pipeline as _run
from tests.conftest import serving_versions as _versions

pytestmark = pytest.mark.e2e


def test_cold_run_trains_blesses_and_pushes(base, cold):
  proc, summary = cold
  assert summary['status'] == 'succeeded'
  assert [c['id'] for c in summary['components']] == COMPONENTS
  assert {c['state'] for c in summary['components']} == {'complete'}
  assert summary['blessed'] is True
  assert 'no earlier blessed model' in summary['blessing_reason']
  assert summary['metrics']['accuracy'] >= 0.9
  assert summary['metrics']['auc'] >= 0.95
  assert summary['pushed'] is True
  version = summary['pushed_version']
  assert version.isdigit()
  assert summary['pushed_path'] == os.path.join(base, 'serving', MODEL, version)
  assert _versions(base) == [version]
  for component in COMPONENTS:
    assert f'  {component} ...' in proc.stdout
    assert re.search(
      rf'^  {component} +complete +\d+\.\ds$', proc.stdout, re.MULTILINE
    ), component
  # Without a terminal: a line as each component starts, then the summary.
  assert len(proc.stdout.splitlines()) < 40, proc.stdout
  assert 'Search space summary' not in proc.stdout  # no Keras Tuner dumps
  assert 'blessed: yes' in proc.stdout
  assert f'pushed: version {version}' in proc.stdout
  # TensorBoard logs and the hyperparameters used sit in the model run dir
  # of the same Trainer execution (other tests add runs to this root).
  execution_id = os.path.basename(summary['model_uri'])
  run_dir = os.path.join(base, 'root', 'Trainer', 'model_run', execution_id)
  assert os.listdir(os.path.join(run_dir, 'train'))
  with open(os.path.join(run_dir, 'hyperparameters.json')) as f:
    assert set(json.load(f)) >= {'units', 'optimizer', 'learning_rate'}


def test_pushed_model_serves_tf_examples_in_a_new_process(base, cold):
  _, summary = cold
  eval_glob = os.path.join(
    base, 'root', 'CsvExampleGen', 'examples', '*', 'Split-eval', '*.gz'
  )
  proc = subprocess.run(
    [
      sys.executable,
      os.path.join(REPO, 'tests', 'support', 'serving_check.py'),
      summary['pushed_path'],
      DATA_CSV,
      eval_glob,
      'diagnosis',
    ],
    capture_output=True,
    text=True,
    check=False,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['signature_inputs'] == ['examples']
  # P(class 1), and the class at evaluation.decision_threshold (0.5).
  assert result['signature_outputs'] == ['class_id', 'probability']
  assert result['rows'] == 569
  assert result['eval_rows'] == result['eval_split_examples']
  assert 80 <= result['eval_rows'] <= 150  # 1 of 5 hash buckets
  assert result['accuracy_eval'] >= 0.93, result


def test_rerun_unchanged_is_served_from_the_cache(base, cold, cached):
  _, first = cold
  proc, again = cached
  assert '(by an earlier run; this one was cached)' in proc.stdout
  executed = [
    c['id']
    for c in again['components']
    if not c['is_resolver'] and c['state'] != 'cached'
  ]
  assert executed == []
  assert [c['id'] for c in again['components']] == COMPONENTS
  assert again['model_uri'] == first['model_uri']
  assert again['pushed_version'] == first['pushed_version']
  assert _versions(base) == [first['pushed_version']]
  # Where the Beam components ran: on the cold run's executions (the
  # spec's default engine), none on the cached ones, which ran nowhere.
  beam = ['CsvExampleGen', 'StatisticsGen', 'Transform', 'Evaluator']
  assert {
    c['id']: c['engine'] for c in first['components'] if c['engine']
  } == dict.fromkeys(beam, 'direct')
  assert not [c for c in again['components'] if c['engine']]
  store = mlmd.MetadataStore(
    tfx.orchestration.metadata.sqlite_metadata_connection_config(
      os.path.join(base, 'metadata.sqlite')
    )
  )
  trainers = store.get_executions_by_type(
    'tfx.components.trainer.component.Trainer'
  )
  assert sorted(e.last_known_state for e in trainers) == sorted(
    [mlmd.proto.Execution.COMPLETE, mlmd.proto.Execution.CACHED]
  )


def test_worse_candidate_is_not_blessed_or_pushed(base, cold, cached):
  del cached
  _, first = cold
  # No tuning, one epoch of plain SGD at a tiny learning rate: far worse
  # than the blessed model. Absolute thresholds are opened so that only the
  # comparison with the baseline can refuse the blessing.
  proc, summary = _run(
    base,
    'worse',
    [
      'tuner.enabled=false',
      'training.epochs=1',
      'training.early_stopping=null',
      'model.search_space.optimizer=[sgd]',
      'model.search_space.learning_rate={min: 0.00001, max: 0.00001}',
      'evaluation.thresholds={accuracy: 0.0, auc: 0.0, '
      'calibration: {lower: 0.0, upper: 100.0}}',
    ],
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert summary['blessed'] is False
  assert 'auc change vs. baseline' in summary['blessing_reason']
  assert summary['baseline_model'] == first['model_uri']
  assert summary['pushed'] is False
  assert 'blessed: no (auc change vs. baseline' in proc.stdout
  assert _versions(base) == [first['pushed_version']]
  # Its report says why, with the candidate beside the baseline.
  page = report_page(summary)
  assert 'id="blessed">no (auc change vs. baseline' in page
  assert 'id="pushed">nothing' in page
  auc = re.search(
    r'<tr data-slice="overall" data-metric="auc">(.*?)</tr>', page, re.DOTALL
  ).group(1)
  candidate, baseline, change = re.findall(
    r'<td class="num[^"]*">([^<]*)'
    r'</td>',
    auc,
  )
  assert float(baseline) == pytest.approx(first['metrics']['auc'], abs=5e-5)
  assert float(change) == pytest.approx(
    float(candidate) - float(baseline), abs=2e-4
  )


def test_unreachable_threshold_is_not_blessed_or_pushed(base, cold, cached):
  del cached
  _, first = cold
  proc, summary = _run(
    base, 'strict', ['evaluation.thresholds.accuracy=0.9999']
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  executed = [
    c['id']
    for c in summary['components']
    if not c['is_resolver'] and c['state'] != 'cached'
  ]
  assert executed == ['Evaluator', 'Pusher']
  assert summary['blessed'] is False
  assert 'accuracy = ' in summary['blessing_reason']
  assert 'fails >= 0.9999' in summary['blessing_reason']
  assert summary['pushed'] is False
  assert _versions(base) == [first['pushed_version']]


def test_changing_the_epochs_retrains_without_searching_again(
  base, cold, tmp_path
):
  """training.epochs is the Trainer's alone: the Tuner's configuration
  (modules/config/ TunerConfig) leaves it out, so its cache key holds. In
  a copy of the cold run's store and folders (a new model may be pushed)."""
  _, first = cold
  for name in ('root', 'serving', 'metadata.sqlite'):
    source = os.path.join(base, name)
    (shutil.copytree if os.path.isdir(source) else shutil.copy)(
      source, tmp_path / name
    )
  proc, summary = _run(str(tmp_path), 'epochs', ['training.epochs=41'])
  assert proc.returncode == 0, proc.stderr[-3000:]
  states = {
    c['id']: c['state'] for c in summary['components'] if not c['is_resolver']
  }
  assert states['Tuner'] == 'cached'
  assert states['Transform'] == 'cached'
  assert states['Trainer'] == 'complete'
  assert summary['model_uri'] != first['model_uri']


def _on_a_terminal(args, cwd):
  """Runs `args` with a pseudo-terminal (120 columns) as its stdin, stdout
  and stderr; (exit code, everything it wrote, as text)."""
  master, slave = pty.openpty()
  fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 50, 120, 0, 0))
  proc = subprocess.Popen(
    args,
    cwd=cwd,
    stdin=slave,
    stdout=slave,
    stderr=slave,
    close_fds=True,
    env={**os.environ, 'TF_USE_LEGACY_KERAS': '1', 'TERM': 'xterm'},
  )
  os.close(slave)
  chunks = []
  while True:
    try:
      chunk = os.read(master, 65536)
    except OSError:  # EIO: the other side closed
      break
    if not chunk:
      break
    chunks.append(chunk)
  os.close(master)
  return proc.wait(timeout=600), b''.join(chunks).decode(errors='replace')


def test_on_a_terminal_the_tuner_and_trainer_lines_advance(
  base, cold, tmp_path
):
  """Under a pseudo-terminal `run` keeps one line per component and
  rewrites it: the Tuner's trial count and the Trainer's epochs advance.
  In a copy of the cold run's store, with another tuner seed (so the Tuner
  and what follows run again)."""
  del cold
  for name in ('root', 'serving', 'metadata.sqlite'):
    source = os.path.join(base, name)
    (shutil.copytree if os.path.isdir(source) else shutil.copy)(
      source, tmp_path / name
    )
  code, text = _on_a_terminal(
    [
      sys.executable,
      '-m',
      'pipeline',
      'run',
      *run_sets(str(tmp_path), ['tuner.seed=7']),
    ],
    REPO,
  )
  assert code == 0, text[-3000:]
  trials = [
    int(n) for n in re.findall(r'Tuner \.\.\. \d+s: trial (\d+) of 4', text)
  ]
  assert len(set(trials)) >= 2 and trials == sorted(trials), trials
  epochs = [
    int(n) for n in re.findall(r'Trainer \.\.\. \d+s: epoch (\d+) of 40', text)
  ]
  assert len(set(epochs)) >= 2 and epochs == sorted(epochs), epochs
  assert re.search(
    r'Tuner done in \d+\.\ds: trial \d of 4, best val_loss ', text
  ), text[-3000:]
  assert 'blessed: yes' in text


def test_drifted_column_stops_the_run_before_transform(tmp_path):
  data = tmp_path / 'data'
  data.mkdir()
  with open(DATA_CSV, newline='') as f:
    rows = list(csv.reader(f))
  column = rows[0].index('mean_area')
  for row in rows[1:]:
    row[column] = repr(float(row[column]) * 100)  # e.g. mm² logged as cm²...
  with open(data / 'drifted.csv', 'w', newline='') as f:
    csv.writer(f).writerows(rows)
  proc, summary = _run(str(tmp_path), 'drift', [f'data.csv={data}'])
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(
    'error: AnomaliesGate failed: AnomaliesFound: ExampleValidator found'
  )
  assert 'mean_area' in last
  assert summary['status'] == 'failed'
  assert summary['failed_component'] == 'AnomaliesGate'
  ran = [c['id'] for c in summary['components']]
  assert 'Transform' not in ran and 'Trainer' not in ran
  assert not os.path.exists(tmp_path / 'serving')


def test_bad_csv_stops_before_the_pipeline_starts(tmp_path):
  data = tmp_path / 'data'
  data.mkdir()
  with open(DATA_CSV, newline='') as f:
    rows = list(csv.reader(f))
  rows[10][rows[0].index('worst_radius')] = ''
  with open(data / 'bad.csv', 'w', newline='') as f:
    csv.writer(f).writerows(rows)
  proc, summary = _run(str(tmp_path), 'bad', [f'data.csv={data}'])
  assert proc.returncode == 2
  assert proc.stderr.strip() == (
    f'error: {data}/bad.csv: line 11, column worst_radius: empty value, but '
    'the schema requires it (presence min_fraction 1.0); fill or drop the '
    'row'
  )
  assert summary is None
  assert not os.path.exists(tmp_path / 'root')
  assert not os.path.exists(tmp_path / 'serving')


def test_bad_spec_and_missing_data_are_one_line_errors(tmp_path):
  proc = _cli('run', '--set', 'tuner.algorithm=annealing')
  assert proc.returncode == 2
  assert proc.stderr.strip().count('\n') == 0
  assert "tuner.algorithm: must be 'hyperband'" in proc.stderr
  proc = _cli('validate', '--set', f'data.csv={tmp_path}/missing')
  assert proc.returncode == 2
  assert proc.stderr.strip() == (
    f'error: {tmp_path}/missing: data not found '
    '(data.csv in the spec); point it at a folder '
    'of CSV files or one CSV file'
  )
  proc = _cli('validate')
  assert proc.returncode == 0
  assert 'ok (pipeline breast-cancer, 30 features, 569 rows' in proc.stdout


# Trials long enough to learn with any scaling: inputs scaled to [0, 1], or
# not at all, learn several times slower per epoch than z-scores.
LEARNING_SEARCH = [
  'tuner.algorithm=random',
  'tuner.max_trials=3',
  'tuner.max_epochs=12',
  'training.epochs=40',
]


@pipeline_fixture(scope='session')
def min_max_runs(tmp_path_factory):
  """min_max scaling: first with the 2-epoch trials of the tests' Hyperband
  budget (no trial learns: the Tuner stops the run), then, in the same root,
  with trials that can learn."""
  base = str(tmp_path_factory.mktemp('min_max'))
  short = _run(base, 'short', ['preprocessing.numeric=min_max'])
  learning = _run(
    base, 'learning', ['preprocessing.numeric=min_max', *LEARNING_SEARCH]
  )
  return short, learning


def test_a_search_that_learns_nothing_stops_at_the_tuner(min_max_runs):
  (proc, summary), _ = min_max_runs
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(
    'error: Tuner failed: NoTrialLearned: no tuning '
    'trial learned anything: the best val_loss '
  )
  assert 'no better than predicting without the features' in last
  assert summary['failed_component'] == 'Tuner'
  assert 'Trainer' not in [c['id'] for c in summary['components']]
  assert summary['pushed'] is False
  # Its report shows where and why.
  page = report_page(summary)
  assert (
    'id="status">failed: Tuner failed: NoTrialLearned: no tuning '
    'trial learned anything'
  ) in page
  assert '<tr class="failed"><td>Tuner</td><td>failed</td>' in page
  assert 'No model was trained in this run.' in page
  assert (
    'id="blessed">unknown (not judged: the run did not reach the Evaluator)'
  ) in page


@pytest.mark.parametrize('scaling', ['min_max', 'none'])
def test_every_numeric_scaling_trains_a_blessed_model(
  min_max_runs, scaling, tmp_path
):
  if scaling == 'min_max':
    _, (proc, summary) = min_max_runs
    states = {c['id']: c['state'] for c in summary['components']}
    assert states['Transform'] == 'cached'  # from the stopped run
  else:
    proc, summary = _run(
      str(tmp_path),
      scaling,
      [f'preprocessing.numeric={scaling}', *LEARNING_SEARCH],
    )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert summary['blessed'] is True
  assert summary['metrics']['auc'] >= 0.95
