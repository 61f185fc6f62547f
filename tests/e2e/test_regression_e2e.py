"""Regression end to end: the bundled diabetes example (scikit-learn's data,
a number to predict) blesses by the default rule with no thresholds,
pushes a model that a new process queries for `prediction`, and is no
worse than a ridge regression on the pipeline's own split."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.experiments.splits import pipeline_split
from tests.conftest import REPO, pipeline_fixture, report_page, run_spec

pytestmark = pytest.mark.e2e

SPEC = os.path.join(REPO, 'pipeline', 'specs', 'diabetes.yaml')
LABEL = 'progression'


@pipeline_fixture(scope='module')
def diabetes(tmp_path_factory):
  base = str(tmp_path_factory.mktemp('diabetes'))
  proc, summary = run_spec(SPEC, base, 'diabetes')
  assert proc.returncode == 0, proc.stderr[-3000:]
  return base, summary


def test_a_number_label_is_regression_blessed_by_the_default_rule(diabetes):
  _, summary = diabetes
  assert summary['task'] == 'regression'
  assert summary['blessed'] is True and summary['pushed'] is True
  assert summary['blessing_reason'].startswith('default rule met: rmse < ')
  assert set(summary['metrics']) >= {'rmse', 'mae', 'r2', 'example_count'}
  # Strict JSON: the summary file has no NaN.
  with open(summary['summary_json']) as f:
    json.loads(f.read(), parse_constant=lambda c: pytest.fail(c))


def test_rmse_is_no_worse_than_ridge_on_the_same_split(diabetes):
  base, summary = diabetes
  split = pipeline_split(os.path.join(base, 'root'))
  train, evaluated = split['train'], split['eval']
  features = [c for c in train.columns if c != LABEL]
  ridge = make_pipeline(
    StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))
  )
  ridge.fit(train[features].astype(float), train[LABEL].astype(float))
  errors = ridge.predict(evaluated[features].astype(float)) - evaluated[LABEL]
  ridge_rmse = float(np.sqrt(np.mean(errors**2)))
  assert summary['metrics']['example_count'] == len(evaluated)
  assert summary['metrics']['rmse'] <= 1.05 * ridge_rmse, (
    summary['metrics']['rmse'],
    ridge_rmse,
  )


def test_a_new_process_queries_the_pushed_model_for_a_prediction(diabetes):
  _, summary = diabetes
  with open(os.path.join(REPO, 'data', 'diabetes', 'diabetes.csv')) as f:
    rows = list(csv.DictReader(f))[:2]
  code = f"""
import json, os
os.environ['TF_USE_LEGACY_KERAS'] = '1'
import tensorflow as tf
model = tf.saved_model.load({summary['pushed_path']!r})
raw = model.signatures['serving_raw']
rows = {rows!r}
args = {{name: tf.constant([float(r[name]) for r in rows], spec.dtype)
        for name, spec in raw.structured_input_signature[1].items()}}
out = raw(**args)
print(json.dumps({{k: v.numpy().tolist() for k, v in out.items()}}))
"""
  proc = subprocess.run(
    [sys.executable, '-c', code],
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert list(out) == ['prediction']
  # On the label's own scale (progression runs 25..346), not standardised.
  assert all(20 < row[0] < 400 for row in out['prediction'])


def test_the_report_draws_predicted_against_actual_and_residuals(diabetes):
  _, summary = diabetes
  page = report_page(summary)
  assert '<figure id="predicted">' in page and '<figure id="residuals">' in page
  assert 'id="confusion"' not in page  # no classes to confuse
  # The predictions it draws are the eval split's, on the label's scale.
  run = os.path.join(
    os.path.dirname(summary['model_uri']),
    '..',
    'model_run',
    os.path.basename(summary['model_uri']),
  )
  with open(os.path.join(run, 'eval_predictions.json')) as f:
    drawn = json.load(f)
  assert len(drawn['label']) == summary['metrics']['example_count']
  errors = np.subtract(drawn['prediction'], drawn['label'])
  # The Trainer's model is the pushed one: the same RMSE as TFMA's.
  assert float(np.sqrt(np.mean(errors**2))) == pytest.approx(
    summary['metrics']['rmse'], rel=1e-3
  )
