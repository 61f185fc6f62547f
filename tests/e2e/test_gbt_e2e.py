"""Gradient boosted trees end to end: `model.builder: gbt` runs the same
pipeline (Transform, Tuner over the trees' hyperparameters, Trainer,
Evaluator, blessing, push) and `serve` answers through TF Serving's REST
contract from the pushed SavedModel (TF-DF's ops loaded on demand)."""

import csv
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import (
  DATA_CSV,
  DEFAULT_SPEC,
  REPO,
  pipeline_fixture,
  run_spec,
)
from tests.unit.serving.test_serving import Server

pytestmark = pytest.mark.e2e


@pipeline_fixture(scope='module')
def trees(tmp_path_factory):
  base = str(tmp_path_factory.mktemp('gbt'))
  proc, summary = run_spec(
    DEFAULT_SPEC, base, 'trees', ['model.builder=gbt', 'tuner.max_trials=4']
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return base, summary


def test_trees_are_tuned_trained_evaluated_and_pushed(trees):
  _, summary = trees
  assert summary['blessed'] is True and summary['pushed'] is True
  assert summary['metrics']['auc'] >= 0.95
  with open(
    os.path.join(
      os.path.dirname(summary['model_uri']),
      '..',
      'model_run',
      os.path.basename(summary['model_uri']),
      'hyperparameters.json',
    )
  ) as f:
    hparams = json.load(f)
  assert hparams['builder'] == 'gbt'
  assert {'gbt_num_trees', 'gbt_max_depth', 'gbt_shrinkage'} <= set(hparams)
  assert 'num_layers' not in hparams  # the network's are not the trees'


def test_serve_answers_for_trees_through_the_rest_contract(trees, tmp_path):
  base, _ = trees
  with open(DATA_CSV, newline='') as f:
    rows = list(csv.DictReader(f))[:3]
  path = tmp_path / 'rows.csv'
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  server = Server(os.path.join(base, 'serving'))
  try:
    proc = subprocess.run(
      [
        sys.executable,
        '-m',
        'pipeline',
        'predict',
        '--url',
        server.model('breast_cancer'),
        str(path),
      ],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=120,
      check=False,
    )
  finally:
    server.stop()
  assert proc.returncode == 0, proc.stderr
  answers = [
    json.loads(line)['prediction'] for line in proc.stdout.strip().splitlines()
  ]
  assert len(answers) == 3
  for answer, row in zip(answers, rows, strict=True):
    assert 0.0 <= answer['probability'][0] <= 1.0
    assert answer['class_id'] == int(answer['probability'][0] >= 0.5)
    # The trees separate this data well: the served class is the label.
    assert answer['class_id'] == int(row['diagnosis'])
