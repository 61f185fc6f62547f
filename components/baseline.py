"""The Evaluator's baseline: the last model blessed before the candidate.

TFX's LatestBlessedModelStrategy returns the newest blessed model, which on a
re-run with unchanged inputs is the (cached) candidate itself: the Evaluator
then re-runs comparing the model with itself and the Pusher pushes it again.
This strategy also receives the candidate and returns the newest blessed model
*older than the candidate*, so a re-run resolves the same baseline as the run
that trained the candidate and every component is served from the cache.
"""

from typing import Dict, List, Optional

from tfx import types
from tfx.dsl.components.common.resolver import Resolver, ResolverStrategy
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

MODEL = 'model'
BLESSING = 'model_blessing'
CANDIDATE = 'candidate'


def pick_baseline(
  models: List[types.Artifact],
  blessings: List[types.Artifact],
  candidate: Optional[types.Artifact],
) -> Optional[types.Artifact]:
  """The newest blessed model with an id below the candidate's (any, when
  there is no candidate); None when there is none."""
  blessed_ids = {
    b.get_int_custom_property('current_model_id')
    for b in blessings
    if b.get_int_custom_property('blessed') == 1
  }
  limit = candidate.id if candidate is not None else None
  eligible = [
    m for m in models if m.id in blessed_ids and (limit is None or m.id < limit)
  ]
  return max(eligible, key=lambda m: m.id) if eligible else None


class BlessedBeforeCandidateStrategy(ResolverStrategy):
  """Resolves `model` to the last blessed model older than `candidate`."""

  def resolve_artifacts(
    self, store, input_dict: Dict[str, List[types.Artifact]]
  ) -> Optional[Dict[str, List[types.Artifact]]]:
    candidates = input_dict.get(CANDIDATE, [])
    if len(candidates) > 1:
      raise ValueError(
        f'expected at most one candidate model, got {len(candidates)}'
      )
    baseline = pick_baseline(
      input_dict.get(MODEL, []),
      input_dict.get(BLESSING, []),
      candidates[0] if candidates else None,
    )
    blessing = []
    if baseline is not None:
      blessing = [
        b
        for b in input_dict[BLESSING]
        if b.get_int_custom_property('current_model_id') == baseline.id
        and b.get_int_custom_property('blessed') == 1
      ][-1:]
    return {
      MODEL: [baseline] if baseline is not None else [],
      BLESSING: blessing,
      CANDIDATE: candidates,
    }


def baseline_resolver(candidate: Channel) -> Resolver:
  """A Resolver node whose outputs['model'] is the Evaluator's baseline."""
  return Resolver(
    strategy_class=BlessedBeforeCandidateStrategy,
    **{
      MODEL: Channel(type=standard_artifacts.Model),
      BLESSING: Channel(type=standard_artifacts.ModelBlessing),
      CANDIDATE: candidate,
    },
  ).with_id('baseline_model_resolver')
