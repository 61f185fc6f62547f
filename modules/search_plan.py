"""What a search will do, worked out before it runs: pure arithmetic over the
typed search space and tuner settings, tested without training a model.

Keras Tuner's Hyperband fills its first bracket's first round with random
configurations at a few epochs, then promotes the best to more epochs. Three
ways it degenerates without a word:
- a finite space with fewer configurations than that first round: the
  random sampler runs out, the oracle stops, no trial is promoted (every
  trial ran the first round's epochs);
- `tuner.max_trials` below that first round: the search ends inside it,
  again with no promotion;
- `tuner.max_epochs` below `tuner.factor`: the iteration is one round at
  max_epochs, with nothing to promote to, whatever max_trials says.
The plan switches the first (and a random or Bayesian search asked for at
least as many trials as the space holds) to a grid search over every
configuration at the full epochs, and states the others, so the run says
what its search did.
"""

import dataclasses
import math
from typing import Any, Dict, List, Optional, Union

from modules import search_space
from modules.config import FloatRange, IntRange, SearchSpace, TunerSpec


def entry_size(entry: Union[IntRange, FloatRange, List[Any]]) -> Optional[int]:
  """How many values one search space entry takes; None: infinitely many."""
  if isinstance(entry, IntRange):
    return (entry.max - entry.min) // entry.step + 1
  if isinstance(entry, FloatRange):
    if entry.step is None or entry.min == entry.max:
      return 1 if entry.min == entry.max else None
    if entry.sampling == 'log':
      return (
        int(
          math.floor(
            math.log(entry.max / entry.min) / math.log(entry.step) + 1e-9
          )
        )
        + 1
      )
    return int(math.floor((entry.max - entry.min) / entry.step + 1e-9)) + 1
  return len(set(entry))


def space_size(space: SearchSpace, mode: str = 'scratch') -> Optional[int]:
  """Configurations in the space `sample` registers; None when infinite."""
  own = space.finetune if mode == 'finetune' else space
  total = 1
  for name in search_space.names(mode):
    size = entry_size(
      getattr(space if name in search_space.SHARED else own, name)
    )
    if size is None:
      return None
    total *= size
  return total


@dataclasses.dataclass(frozen=True)
class Round:
  """One round of a Hyperband bracket: its trials and the epochs each is
  trained to."""

  bracket: int
  round: int
  trials: int
  epochs: int


def hyperband_rounds(max_epochs: int, factor: int) -> List[Round]:
  """One Hyperband iteration as Keras Tuner 1.3.5 runs it, round by round."""
  brackets, epochs = 0, float(max_epochs)
  while epochs >= 1:  # the oracle's min_epochs
    epochs /= factor
    brackets += 1
  end_size = math.ceil(1 + math.log(max_epochs, factor))
  rounds = []
  for bracket in reversed(range(brackets)):
    for round_num in range(bracket + 1):
      rounds.append(
        Round(
          bracket=bracket,
          round=round_num,
          trials=math.ceil(
            end_size / (bracket + 1) * factor ** (bracket - round_num)
          ),
          epochs=math.ceil(max_epochs / factor ** (bracket - round_num)),
        )
      )
  return rounds


@dataclasses.dataclass(frozen=True)
class Plan:
  """The search to run: `algorithm` and `max_trials` as they will run, what
  the spec asked for, and why they differ or what to expect (one line)."""

  asked: str
  algorithm: str
  max_trials: int
  max_epochs: int
  space_size: Optional[int]
  note: Optional[str] = None

  def to_json(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)


def plan(
  settings: TunerSpec, space: SearchSpace, mode: str = 'scratch'
) -> Plan:
  """The search to run for these settings over this space."""
  size = space_size(space, mode)
  asked, trials = settings.algorithm, settings.max_trials
  base = dict(asked=asked, max_epochs=settings.max_epochs, space_size=size)
  if asked == 'hyperband':
    return _hyperband_plan(settings, size, base)
  if asked in ('random', 'bayesian') and size is not None and size <= trials:
    return Plan(
      algorithm='grid',
      max_trials=size,
      note=(
        f'the search space holds {size} configurations, no more than '
        f'tuner.max_trials {trials}: searching all of them with grid search'
      ),
      **base,
    )
  return Plan(algorithm=asked, max_trials=trials, **base)


def _hyperband_plan(
  settings: TunerSpec, size: Optional[int], base: Dict[str, Any]
) -> Plan:
  """A Hyperband search's plan: grid search when the space is smaller than
  the first round, else Hyperband, with a note when it will not promote."""
  asked, trials = settings.algorithm, settings.max_trials
  rounds = hyperband_rounds(settings.max_epochs, settings.factor)
  first, full = rounds[0], sum(r.trials for r in rounds)
  if size is not None and size < first.trials:
    return Plan(
      algorithm='grid',
      max_trials=min(trials, size),
      note=(
        f'the search space holds {size} configurations, fewer than the '
        f"{first.trials} of Hyperband's first round (whose random "
        'sampler would run out and stop the search before any trial is '
        f'promoted): searching all {min(trials, size)} with grid search, '
        f'up to {settings.max_epochs} epochs each'
      ),
      **base,
    )
  if len(rounds) == 1:
    # One round, at max_epochs, with nothing after it to promote to:
    # more trials cannot help, and the full iteration is that round.
    return Plan(
      algorithm=asked,
      max_trials=trials,
      note=(
        f'tuner.max_epochs {settings.max_epochs} is below tuner.factor '
        f'{settings.factor}, so Hyperband runs one round: '
        f'{min(trials, first.trials)} trials of {first.epochs} epochs, '
        'none promoted; raise max_epochs to at least factor, or use '
        f'tuner.algorithm: random for {trials} trials of up to '
        f'{settings.max_epochs} epochs'
      ),
      **base,
    )
  if trials <= first.trials:
    return Plan(
      algorithm=asked,
      max_trials=trials,
      note=(
        f'tuner.max_trials {trials} ends Hyperband within its first round '
        f'({first.trials} trials of {first.epochs} epochs): no trial '
        f'is promoted to more epochs; one full Hyperband iteration takes '
        f'{full} trials (tuner.max_trials), or use tuner.algorithm: random '
        f'for {trials} trials of up to {settings.max_epochs} epochs'
      ),
      **base,
    )
  return Plan(algorithm=asked, max_trials=trials, **base)
