"""Imbalanced classes end to end: the bundled taxi trips (9.4 % big tips)
with `training.class_weight: balanced` against no weights, in one store
(the second run reuses the data components): the weighted model finds
far more of the rare class at the same decision threshold."""

import os

import pytest

from tests.conftest import REPO, pipeline_fixture, run_spec

pytestmark = pytest.mark.e2e

SPEC = os.path.join(REPO, 'pipeline', 'specs', 'chicago_taxi.yaml')
# One trial at a time: with parallel trials, which worker takes which trial
# (and so the hyperparameters both runs end with) follows the machine's load,
# and under a loaded suite the unweighted run once drew a luckier search.
# The claim here is the class weights', not the search's.
BUDGET = [
  'tuner.max_trials=4',
  'tuner.max_epochs=3',
  'training.epochs=10',
  'tuner.parallel_trials=1',
]


@pipeline_fixture(scope='module')
def weighted_and_not(tmp_path_factory):
  base = str(tmp_path_factory.mktemp('taxi'))
  summaries = {}
  for weight in ('none', 'balanced'):
    proc, summaries[weight] = run_spec(
      SPEC, base, weight, [f'training.class_weight={weight}', *BUDGET]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
  return summaries


def test_balanced_class_weights_raise_recall(weighted_and_not):
  plain = weighted_and_not['none']['metrics']
  weighted = weighted_and_not['balanced']['metrics']
  assert plain['example_count'] == weighted['example_count']
  assert weighted['recall'] >= plain['recall'] + 0.2, (plain, weighted)
  # Ranking quality is the weights' to keep, not to buy recall with.
  assert weighted['auc'] >= plain['auc'] - 0.02
  assert {'auc_pr', 'precision', 'recall'} <= set(weighted)


def test_the_second_run_reused_the_data_components(weighted_and_not):
  states = {
    c['id']: c['state'] for c in weighted_and_not['balanced']['components']
  }
  assert states['CsvExampleGen'] == states['Transform'] == 'cached'
  assert states['Tuner'] == states['Trainer'] == 'complete'
