"""What every cross-field rule of a spec shares (checks.py runs the rules).

A broken rule raises `SpecError` naming the spec file and the key.
"""

from typing import Dict, Union

from modules.config import FloatRange, IntRange
from pipeline.definition.schema import PipelineSpec, SpecError

# The feature lists, and the list of the columns that are no feature.
GROUPS = ('numeric', 'categorical', 'date', 'text', 'image', 'exclude')


def check(cond: bool, source: str, key: str, message: str) -> None:
  if not cond:
    raise SpecError(f'{source}: {key}: {message}')


def check_range(source: str, key: str, r: Union[IntRange, FloatRange]):
  check(
    r.min <= r.max, source, key, f'min ({r.min}) must not exceed max ({r.max})'
  )
  if isinstance(r, FloatRange) and r.sampling == 'log':
    check(r.min > 0, source, key + '.min', 'must be > 0 with sampling: log')
    check(
      r.step is None or r.step > 1,
      source,
      key + '.step',
      'with sampling: log, step is a factor and must be > 1',
    )


def declared(spec: PipelineSpec) -> Dict[str, str]:
  """Each declared feature or excluded column, and the list naming it
  (checks_data.check_feature_lists, run first, makes sure there is one)."""
  f = spec.features
  return {name: group for group in GROUPS for name in getattr(f, group)}
