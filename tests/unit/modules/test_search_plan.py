"""The search plan (arithmetic over the typed space and settings, no
training) and the report of what a search did; one real Keras Tuner search
over a 24-configuration space."""

import keras_tuner
import numpy as np
import pytest

from components import tuner as tuner_component
from modules import model as model_lib
from modules import search_plan, search_space
from modules import tuner as tuner_lib
from modules.config import SearchSpace, TunerSpec

# 2 x 3 x 2 x 2 = 24 configurations.
SPACE_24 = SearchSpace.model_validate(
  {
    'num_layers': {'min': 1, 'max': 2},
    'units': {'min': 8, 'max': 24, 'step': 8},
    'dropout': {'min': 0.0, 'max': 0.0},
    'l1': [0.0],
    'l2': [0.0, 0.001],
    'batch_norm': [False],
    'optimizer': ['adam', 'sgd'],
    'learning_rate': {'min': 0.01, 'max': 0.01},
    'batch_size': [16],
  }
)


def test_hyperband_rounds_follow_keras_tuner():
  rounds = search_plan.hyperband_rounds(27, 3)
  assert rounds[0] == search_plan.Round(bracket=3, round=0, trials=27, epochs=1)
  assert [r.epochs for r in rounds if r.bracket == 3] == [1, 3, 9, 27]
  assert search_plan.hyperband_rounds(12, 3)[0] == search_plan.Round(
    bracket=2, round=0, trials=12, epochs=2
  )


def test_space_sizes():
  assert search_plan.space_size(SPACE_24) == 24
  assert search_plan.space_size(SearchSpace()) is None  # a continuous rate
  assert search_plan.entry_size(SearchSpace().dropout) == 6  # 0.0 .. 0.5 by 0.1


def test_a_space_smaller_than_hyperband_s_first_round_is_searched_whole():
  planned = search_plan.plan(
    TunerSpec(algorithm='hyperband', max_trials=100, max_epochs=27), SPACE_24
  )
  assert (planned.algorithm, planned.max_trials) == ('grid', 24)
  assert planned.note.startswith(
    'the search space holds 24 configurations, '
    "fewer than the 27 of Hyperband's first"
  )


def test_max_trials_inside_hyperband_s_first_round_is_said():
  planned = search_plan.plan(
    TunerSpec(max_trials=4, max_epochs=4), SearchSpace()
  )
  assert planned.algorithm == 'hyperband'
  assert planned.note.startswith(
    'tuner.max_trials 4 ends Hyperband within its first round (5 trials of '
    '2 epochs): no trial is promoted'
  )
  assert search_plan.plan(
    TunerSpec(max_trials=5, max_epochs=4), SearchSpace()
  ).note  # the round, and nothing after
  assert (
    search_plan.plan(TunerSpec(max_trials=60, max_epochs=4), SearchSpace()).note
    is None
  )


def test_random_search_over_a_small_space_becomes_a_grid():
  planned = search_plan.plan(
    TunerSpec(algorithm='random', max_trials=30), SPACE_24
  )
  assert (planned.algorithm, planned.max_trials) == ('grid', 24)


class _TinyHyperModel(keras_tuner.HyperModel):
  def build(self, hp):
    return model_lib.build_model(
      model_lib.ModelInputs(numeric=['a_xf', 'b_xf'], categorical={}),
      search_space.sample(hp, SPACE_24),
    )

  def fit(self, hp, model, *args, **kwargs):
    del args
    rng = np.random.default_rng(0)

    def noise():
      return (
        {'a_xf': rng.normal(size=(64, 1)), 'b_xf': rng.normal(size=(64, 1))},
        rng.integers(0, 2, size=(64, 1)),
      )

    # Noise to learn, other noise to validate on: early stopping ends each
    # trial after a few epochs.
    return model.fit(*noise(), validation_data=noise(), batch_size=16, **kwargs)


def test_a_24_configuration_space_gets_a_full_honest_search(tmp_path):
  """Hyperband (27 epochs, factor 3) would train all 24 for 1 epoch and
  stop; the plan searches all 24 for more than one epoch each."""
  settings = TunerSpec(algorithm='hyperband', max_trials=100, max_epochs=27)
  planned = search_plan.plan(settings, SPACE_24)
  tuner = tuner_lib.make_tuner(
    settings, _TinyHyperModel(), str(tmp_path), plan=planned
  )
  assert isinstance(tuner, keras_tuner.GridSearch)
  tuner.search(
    epochs=settings.max_epochs,
    verbose=0,
    callbacks=[
      model_lib.early_stopping(
        tuner_lib.TunerConfig.model_fields[
          'training'
        ].default.early_stopping.model_copy(update={'patience': 2})
      )[0]
    ],
  )
  report = tuner_component.search_report(
    planned.to_json(), 'val_loss', 'min', tuner_component.trial_records(tuner)
  )
  assert report['trials_run'] == 24
  assert all(t['epochs'] > 1 for t in report['trials'])
  assert report['line'].startswith('grid (asked: hyperband): 24 trials, ')
  assert 'the search space holds 24 configurations' in report['line']


def test_the_report_counts_what_ran_and_says_when_a_search_stopped_early():
  plan = search_plan.plan(
    TunerSpec(algorithm='random', max_trials=10), SearchSpace()
  ).to_json()
  trials = [
    {
      'trial_id': '0',
      'status': 'COMPLETED',
      'score': 0.4,
      'epochs': 3,
      'to_epoch': 3,
      'hyperparameters': {},
    },
    {
      'trial_id': '1',
      'status': 'COMPLETED',
      'score': 0.3,
      'epochs': 5,
      'to_epoch': 5,
      'hyperparameters': {},
    },
    {
      'trial_id': '2',
      'status': 'FAILED',
      'score': None,
      'epochs': 0,
      'to_epoch': 0,
      'hyperparameters': {},
    },
  ]
  report = tuner_component.search_report(plan, 'val_loss', 'min', trials)
  assert report['trials_run'] == 2 and report['epochs_trained'] == 8
  assert report['best'] == {'trial_id': '1', 'score': 0.3, 'epochs': 5}
  assert report['trials_by_epochs'] == {'3': 1, '5': 1}
  assert report['note'] == (
    'the search stopped after 2 of 10 trials: its '
    'oracle ran out of new configurations'
  )
  assert report['line'] == (
    'random: 2 trials, 8 epochs in all (1 trained 3 epochs, 1 trained 5 '
    'epochs); best val_loss 0.3000: trial 1; the search stopped after 2 of '
    '10 trials: its oracle ran out of new configurations'
  )


@pytest.mark.parametrize('algorithm', ['random', 'bayesian', 'grid'])
def test_large_spaces_keep_the_algorithm_asked_for(algorithm):
  planned = search_plan.plan(TunerSpec(algorithm=algorithm), SearchSpace())
  assert (planned.algorithm, planned.note) == (algorithm, None)
