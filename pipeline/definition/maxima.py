"""The largest value each count of a spec may take (docs/spec-guide.md, "Maxima")."""

from typing import Any

from modules.config import IntRange
from pipeline.definition.schema import PipelineSpec, SpecError

# The largest values a spec may give, by key: far past any run this project
# makes, small enough that a typo (an extra zero or three, 1e20) is refused
# before it allocates a layer or loops for a lifetime (docs/spec-guide.md).
MAXIMA = {
  'training.epochs': 10_000,
  'training.train_steps': 100_000_000,
  'training.eval_steps': 100_000_000,
  'tuner.max_trials': 10_000,
  'tuner.max_epochs': 10_000,
  'tuner.factor': 100,
  'tuner.hyperband_iterations': 100,
  'model.search_space.num_layers': 64,
  'model.search_space.units': 65_536,
  'model.search_space.batch_size': 65_536,
  'model.search_space.embedding_dim': 4_096,
  'model.search_space.finetune.head_units': 65_536,
  'model.search_space.finetune.epochs_per_stage': 10_000,
}


def _number_text(value: int) -> str:
  """An integer for a message: a huge one by its digit count, so the line
  stays one readable line."""
  text = str(value)
  return text if len(text) <= 20 else f'a {len(text)}-digit number'


def check_maxima(spec: PipelineSpec) -> None:
  """Every MAXIMA key is at most its maximum (a range by its max, a list by
  each value)."""
  for key, most in MAXIMA.items():
    node: Any = spec
    for part in key.split('.'):
      node = getattr(node, part)
    values = (
      node
      if isinstance(node, list)
      else [node.max if isinstance(node, IntRange) else node]
    )
    for value in values:
      if value is not None and value > most:
        raise SpecError(
          f'{spec.source}: {key}: at most {most} (got {_number_text(value)})'
        )
