"""The one search space, shared by tuner_fn (searches it) and run_fn.

`sample(hp, space)` registers every hyperparameter of the spec's typed
`SearchSpace` (modules/config.py) on a Keras Tuner `HyperParameters` and
returns their current values; called on a fresh `HyperParameters` it returns
the defaults (the first listed value, or a range's minimum), which run_fn
uses when no tuned values arrive. The SearchSpace field names are the
hyperparameter names.
"""

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import keras_tuner

from modules.config import FinetuneSpace, FloatRange, IntRange, SearchSpace

# Shared by both training modes: the optimizer, regularisation and batch.
SHARED = ('dropout', 'l1', 'l2', 'optimizer', 'learning_rate', 'batch_size')
# From scratch: the architecture.
SCRATCH = ('num_layers', 'units', 'batch_norm')
# Fine-tuning (model.search_space.finetune): how much of the base to train.
FINETUNE = ('strategy', 'unfreeze_blocks', 'head_units', 'backbone_lr_scale',
            'lr_decay', 'epochs_per_stage')
NAMES = SCRATCH + SHARED


def names(mode: str = 'scratch') -> Tuple[str, ...]:
  """The hyperparameters `sample` registers in training `mode`."""
  return (FINETUNE if mode == 'finetune' else SCRATCH) + SHARED


def _register(hp: keras_tuner.HyperParameters, name: str,
              entry: Union[IntRange, FloatRange, Sequence[Any]]) -> Any:
  """Registers one search space entry: an int or float range, or a list of
  choices whose first value is the default."""
  if isinstance(entry, IntRange):
    return hp.Int(name, entry.min, entry.max, step=entry.step)
  if isinstance(entry, FloatRange):
    return hp.Float(name, entry.min, entry.max, step=entry.step,
                    sampling=entry.sampling, default=entry.min)
  values = list(entry)
  return hp.Choice(name, values, default=values[0])


def sample(hp: keras_tuner.HyperParameters, space: SearchSpace,
           mode: str = 'scratch') -> Dict[str, Any]:
  """Registers the spec's search space on `hp`; returns current values.

  Args:
    hp: the hyperparameters object of a trial (or a fresh one for defaults).
    space: the spec's `model.search_space`.
    mode: training.mode: 'scratch' searches the architecture, 'finetune'
      the `finetune` sub-space (strategy, unfrozen blocks, head, rates).

  Returns:
    A dict with one value per name in `names(mode)`.
  """
  own: Union[SearchSpace, FinetuneSpace] = (
      space.finetune if mode == 'finetune' else space)
  values = {name: _register(hp, name, getattr(own, name))
            for name in names(mode) if name not in SHARED}
  values.update({name: _register(hp, name, getattr(space, name))
                 for name in SHARED})
  return values


def resolve(tuned: Optional[Mapping[str, Any]], space: SearchSpace,
            mode: str = 'scratch') -> Dict[str, Any]:
  """Values for training: the Tuner's best (a HyperParameters config) or
  the space's defaults when `tuned` is empty."""
  hp = (keras_tuner.HyperParameters.from_config(dict(tuned)) if tuned
        else keras_tuner.HyperParameters())
  return sample(hp, space, mode)
