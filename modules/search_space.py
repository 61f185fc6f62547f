"""The one search space, shared by tuner_fn (searches it) and run_fn.

`sample(hp, space)` registers every hyperparameter of the spec's typed
`SearchSpace` (modules/config/) on a Keras Tuner `HyperParameters` and
returns their current values; called on a fresh `HyperParameters` it returns
the defaults (the first listed value, or a range's minimum), which run_fn
uses when no tuned values arrive. The SearchSpace field names are the
hyperparameter names.
"""

import contextlib
import json
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import keras_tuner

from modules import encoders, gbt
from modules.config import (
  FinetuneSpace,
  FloatRange,
  GbtSpace,
  IntRange,
  SearchSpace,
  TrialTrainingSpec,
)

# Shared by both training modes: the optimizer, regularisation and batch.
SHARED = ('dropout', 'l1', 'l2', 'optimizer', 'learning_rate', 'batch_size')
# From scratch: the architecture.
SCRATCH = ('num_layers', 'units', 'batch_norm')
# Fine-tuning (model.search_space.finetune): how much of the base to train.
FINETUNE = (
  'strategy',
  'unfreeze_blocks',
  'head_units',
  'backbone_lr_scale',
  'lr_decay',
  'epochs_per_stage',
)
NAMES = SCRATCH + SHARED
# Gradient boosted trees (model.search_space.gbt), prefixed GBT_PREFIX so
# that they share a search with the network's when the Tuner chooses the
# builder (the `builder` hyperparameter, BUILDER).
GBT = tuple(GbtSpace.model_fields)
GBT_PREFIX = gbt.PREFIX
BUILDER = 'builder'
# The embedding's width (a text column's learned encoder, chosen by
# encoders.hyperparameter_name(column) where the spec offers several).
EMBEDDING_DIM = 'embedding_dim'
# What training.* may make a search choose (modules/config/,
# TrialTrainingSpec.choices), per the task that has it.
TRAINING_CHOICES = ('loss', 'class_weight')
# Every hyperparameter name a search may hold besides `names(mode)`'s.
OTHER_NAMES = (
  BUILDER,
  EMBEDDING_DIM,
  *TRAINING_CHOICES,
  *(GBT_PREFIX + n for n in GBT),
)


def names(mode: str = 'scratch') -> Tuple[str, ...]:
  """The hyperparameters `sample` registers in training `mode`."""
  return (FINETUNE if mode == 'finetune' else SCRATCH) + SHARED


def _register(
  hp: keras_tuner.HyperParameters,
  name: str,
  entry: Union[IntRange, FloatRange, Sequence[Any]],
) -> Any:
  """Registers one search space entry: an int or float range, or a list of
  choices whose first value is the default."""
  if isinstance(entry, IntRange):
    return hp.Int(name, entry.min, entry.max, step=entry.step)
  if isinstance(entry, FloatRange):
    return hp.Float(
      name,
      entry.min,
      entry.max,
      step=entry.step,
      sampling=entry.sampling,
      default=entry.min,
    )
  values = list(entry)
  return hp.Choice(name, values, default=values[0])


def sample(
  hp: keras_tuner.HyperParameters, space: SearchSpace, mode: str = 'scratch'
) -> Dict[str, Any]:
  """Registers the spec's search space on `hp`; returns current values.

  Args:
    hp: the hyperparameters object of a trial (or a fresh one for defaults).
    space: the spec's `model.search_space`.
    mode: training.mode: 'scratch' searches the architecture, 'finetune'
      the `finetune` sub-space (strategy, unfrozen blocks, head, rates).

  Returns:
    A dict with one value per name in `names(mode)`.
  """
  values = sample_own(hp, space, mode)
  values.update(sample_shared(hp, space))
  return values


def sample_gbt(
  hp: keras_tuner.HyperParameters, space: GbtSpace
) -> Dict[str, Any]:
  """Registers the trees' search space (`model.search_space.gbt`) on `hp`,
  each named GBT_PREFIX + field (`gbt_num_trees`) so that the trees' and a
  network's hyperparameters can share one search; returns the current
  values by field name (defaults on a fresh `hp`)."""
  return {
    name: _register(hp, GBT_PREFIX + name, getattr(space, name)) for name in GBT
  }


def sample_own(
  hp: keras_tuner.HyperParameters, space: SearchSpace, mode: str = 'scratch'
) -> Dict[str, Any]:
  """The network's own hyperparameters: the architecture from scratch, the
  `finetune` sub-space when fine-tuning."""
  own: Union[SearchSpace, FinetuneSpace] = (
    space.finetune if mode == 'finetune' else space
  )
  return {
    name: _register(hp, name, getattr(own, name))
    for name in names(mode)
    if name not in SHARED
  }


def sample_shared(
  hp: keras_tuner.HyperParameters, space: SearchSpace
) -> Dict[str, Any]:
  """The optimizer, regularisation and batch size, shared by both modes
  (a tree ignores what it does not use: the batch size only paces its
  reading)."""
  return {name: _register(hp, name, getattr(space, name)) for name in SHARED}


def resolve(
  tuned: Optional[Mapping[str, Any]], space: Any, mode: str = 'scratch'
) -> Dict[str, Any]:
  """Values for training: the Tuner's best (a HyperParameters config) or
  the space's defaults when `tuned` is empty. `space` is a SearchSpace, or
  a module config (a TrainerConfig or TunerConfig), whose builders, task
  and training choices are then searched too (`sample_config`)."""
  hp = (
    keras_tuner.HyperParameters.from_config(dict(tuned))
    if tuned
    else keras_tuner.HyperParameters()
  )
  if isinstance(space, SearchSpace):
    return sample(hp, space, mode)
  return sample_config(hp, space)


def sample_encoders(
  hp: keras_tuner.HyperParameters, config: Any
) -> Dict[str, Any]:
  """Registers the learned encoders' choices of a module config's text and
  image columns (`encoder_<column>`, where the spec offers more than one)
  and the embedding's width (where an embedding may be chosen)."""
  from modules import kinds  # pylint: disable=g-import-not-at-top

  values: Dict[str, Any] = {}
  embedding = False
  for key, kind in kinds.encoded_columns(config.features):
    choices = config.model.encoder_choices(key, kind.name)
    if not isinstance(choices, list):
      continue  # pretrained: nothing to choose
    name = encoders.hyperparameter_name(key)
    values[name] = (
      hp.Choice(name, choices, default=choices[0])
      if len(choices) > 1
      else choices[0]
    )
    embedding = embedding or 'embedding' in choices
  if embedding:
    values[EMBEDDING_DIM] = _register(
      hp, EMBEDDING_DIM, config.model.search_space.embedding_dim
    )
  return values


def _encode(value: Any) -> Any:
  """A choice as Keras Tuner holds it: a mapping (class weights) as JSON."""
  return json.dumps(value, sort_keys=True) if isinstance(value, dict) else value


def decode(value: Any) -> Any:
  """A choice back from `_encode`."""
  if isinstance(value, str) and value.startswith('{'):
    return json.loads(value)
  return value


def sample_config(
  hp: keras_tuner.HyperParameters, config: Any
) -> Dict[str, Any]:
  """Registers everything a module config's search varies on `hp`: the
  builder when the spec lists several, each builder's hyperparameters
  (under a condition on the builder, so a trial of one does not vary the
  other's), and the training choices its task has (a regression loss,
  classes' weights). Returns the current values; `builder` is always
  there.

  Args:
    hp: the hyperparameters object of a trial (or a fresh one).
    config: a TunerConfig or TrainerConfig (modules/config/).
  """
  space, mode = config.model.search_space, config.training.mode
  builders = config.model.builders
  values: Dict[str, Any] = {}
  if len(builders) > 1:
    values[BUILDER] = hp.Choice(BUILDER, builders, default=builders[0])
  else:
    values[BUILDER] = builders[0]
  for builder in builders:
    scope = (
      hp.conditional_scope(BUILDER, [builder])
      if len(builders) > 1
      else contextlib.nullcontext()
    )
    with scope:
      if builder == 'gbt':
        trees = sample_gbt(hp, space.gbt)
        if values[BUILDER] == 'gbt':
          values.update({GBT_PREFIX + k: v for k, v in trees.items()})
      else:
        # The optimizer and regularisation are the network's; a tree's
        # trials should not vary them.
        own = sample_own(hp, space, mode)
        own.update(
          {
            name: _register(hp, name, getattr(space, name))
            for name in SHARED
            if name != 'batch_size'
          }
        )
        own.update(sample_encoders(hp, config))
        if values[BUILDER] == builder:
          values.update(own)
  values['batch_size'] = _register(hp, 'batch_size', space.batch_size)
  training: TrialTrainingSpec = config.training
  task = config.task
  offered = {'loss': bool(task.losses), 'class_weight': task.classifies}
  for name, choices in training.choices().items():
    if offered[name]:
      values[name] = decode(
        hp.Choice(
          name, [_encode(c) for c in choices], default=_encode(choices[0])
        )
      )
  return values
