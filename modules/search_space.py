"""The one search space, shared by tuner_fn (searches it) and run_fn.

`sample(hp, space)` registers every hyperparameter on a Keras Tuner
`HyperParameters` and returns their current values; called on a fresh
`HyperParameters` it returns the defaults (the first listed value, or a
range's minimum), which run_fn uses when no tuned values arrive.
"""

from typing import Any, Dict, Mapping, Optional

import keras_tuner

NAMES = ('num_layers', 'units', 'dropout', 'l1', 'l2', 'batch_norm',
         'optimizer', 'learning_rate', 'batch_size')


def sample(hp: keras_tuner.HyperParameters,
           space: Mapping[str, Any]) -> Dict[str, Any]:
  """Registers the spec's search space on `hp`; returns current values.

  Args:
    hp: the hyperparameters object of a trial (or a fresh one for defaults).
    space: `model.search_space` of the spec, as a plain mapping.

  Returns:
    A dict with one value per name in NAMES.
  """
  def int_range(name):
    r = space[name]
    return hp.Int(name, r['min'], r['max'], step=r.get('step') or 1)

  def float_range(name):
    r = space[name]
    sampling = r.get('sampling', 'linear')
    return hp.Float(name, r['min'], r['max'], step=r.get('step'),
                    sampling=sampling, default=r['min'])

  def choice(name):
    values = list(space[name])
    return hp.Choice(name, values, default=values[0])

  return {
      'num_layers': int_range('num_layers'),
      'units': int_range('units'),
      'dropout': float_range('dropout'),
      'l1': choice('l1'),
      'l2': choice('l2'),
      'batch_norm': choice('batch_norm'),
      'optimizer': choice('optimizer'),
      'learning_rate': float_range('learning_rate'),
      'batch_size': choice('batch_size'),
  }


def resolve(tuned: Optional[Mapping[str, Any]],
            space: Mapping[str, Any]) -> Dict[str, Any]:
  """Values for training: the Tuner's best (a HyperParameters config) or
  the space's defaults when `tuned` is empty."""
  hp = (keras_tuner.HyperParameters.from_config(dict(tuned)) if tuned
        else keras_tuner.HyperParameters())
  return sample(hp, space)
