"""What a comparison's runs support: the mean and spread of each method at
each labelled-set size, and the verdict, fine-tuning against training from
scratch, in numbers and in words. Pure functions of the runs: tested on
hand-made values (tests/unit/experiments/test_compare_media.py).
"""

import statistics
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from pipeline.experiments.common import is_scratch


def summarize(runs: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
  """Mean and spread (population std, min and max) per (method,
  labelled-set size)."""
  groups: Dict[Tuple[str, int], List[Mapping[str, Any]]] = {}
  for run in runs:
    groups.setdefault((run['method'], run['labelled']), []).append(run)
  rows = []
  for (method, labelled), group in sorted(
    groups.items(), key=lambda kv: (kv[0][1], kv[0][0])
  ):
    accuracies = [r['accuracy'] for r in group]
    rows.append(
      {
        'method': method,
        'labelled': labelled,
        'repeats': len(group),
        'accuracy_mean': round(statistics.mean(accuracies), 4),
        'accuracy_std': round(statistics.pstdev(accuracies), 4),
        'accuracy_min': min(accuracies),
        'accuracy_max': max(accuracies),
        'seconds_mean': round(statistics.mean(r['seconds'] for r in group), 2),
      }
    )
  return rows


def verdict(
  summary: Sequence[Mapping[str, Any]], labelled: int
) -> Dict[str, Any]:
  """The best fine-tuning method against the best method from scratch at
  one labelled-set size, by mean test accuracy: the margin, and whether it
  is beyond the spread over repeats (more than the two stds together;
  with one repeat there is no spread to judge by, so never)."""
  at = [r for r in summary if r['labelled'] == labelled]
  best = max(
    (r for r in at if not is_scratch(r['method'])),
    key=lambda r: r['accuracy_mean'],
  )
  scratch = max(
    (r for r in at if is_scratch(r['method'])), key=lambda r: r['accuracy_mean']
  )
  margin = best['accuracy_mean'] - scratch['accuracy_mean']
  spread = best['accuracy_std'] + scratch['accuracy_std']
  repeats = min(best['repeats'], scratch['repeats'])
  return {
    'labelled': labelled,
    'repeats': repeats,
    'best_strategy': best['method'],
    'best_accuracy': best['accuracy_mean'],
    'best_range': [best['accuracy_min'], best['accuracy_max']],
    'scratch_method': scratch['method'],
    'scratch_accuracy': scratch['accuracy_mean'],
    'scratch_range': [scratch['accuracy_min'], scratch['accuracy_max']],
    'margin': round(margin, 4),
    'spread': round(spread, 4),
    'finetune_beats_scratch': margin > 0,
    'beyond_spread': margin > 0 and repeats > 1 and margin > spread,
    'ranges_overlap': (
      best['accuracy_min'] <= scratch['accuracy_max']
      and scratch['accuracy_min'] <= best['accuracy_max']
    ),
  }


def conclusion(
  summary: Sequence[Mapping[str, Any]],
  probes: Sequence[Mapping[str, float]] = (),
) -> Dict[str, Any]:
  """Whether the best fine-tuning strategy beats scratch at the smallest
  labelled-set size, with the numbers; stated either way, and with the
  linear probes (at that size) as the measured reason."""
  smallest = min(r['labelled'] for r in summary)
  found = verdict(summary, smallest)
  best, margin, noise = (
    found['best_strategy'],
    found['margin'],
    found['spread'],
  )
  tuned, scratch = found['best_accuracy'], found['scratch_accuracy']
  if found['finetune_beats_scratch'] and margin > noise:
    text = (
      f'With {smallest} labelled examples, {best} reaches '
      f'{tuned:.3f} test accuracy against {scratch:.3f} from scratch '
      f'(+{margin:.3f}, more than the spread over repeats, '
      f'{noise:.3f}).'
    )
  elif found['finetune_beats_scratch']:
    text = (
      f'With {smallest} labelled examples, {best} is ahead of '
      f'scratch by {margin:.3f} ({tuned:.3f} against {scratch:.3f}), '
      f'but within the spread over repeats ({noise:.3f}): not a clear '
      'win.'
    )
  else:
    text = (
      f'With {smallest} labelled examples, fine-tuning does NOT beat '
      f'scratch: the best strategy, {best}, reaches {tuned:.3f} '
      f'against {scratch:.3f} from scratch.'
    )
  probe = {}
  if probes:
    probe = {
      key: round(statistics.mean(p[key] for p in probes), 4)
      for key in ('raw_features', 'base_features')
    }
    helps = probe['base_features'] > probe['raw_features']
    text += (
      f" A logistic regression on the base model's features scores "
      f'{probe["base_features"]:.3f} against {probe["raw_features"]:.3f}'
      f" on the raw features at that size: the base's representation "
      + (
        'helps this task.'
        if helps
        else 'is worse than the raw input for this task (its features are '
        'specific to the source classes), which is why starting from '
        'it does not pay off here.'
      )
    )
  return {**found, 'probe': probe, 'text': text}


def _sizes_text(sizes: Sequence[int]) -> str:
  words = [str(s) for s in sizes]
  return (
    ', '.join(words[:-1]) + ' and ' + words[-1] if len(words) > 1 else words[0]
  )


def _size_sentence(found: Mapping[str, Any], encoder: str) -> str:
  """One labelled-set size's verdict in words."""
  n, repeats = found['labelled'], found['repeats']
  points = 100 * found['margin']
  tuned = f'{found["best_accuracy"]:.3f}'
  scratch = f'{found["scratch_accuracy"]:.3f}'
  if repeats > 1:
    low, high = found['best_range']
    tuned += f' (fine-tuned; {low:.3f}-{high:.3f} over the repeats)'
    low, high = found['scratch_range']
    scratch += f' (scratch; {low:.3f}-{high:.3f})'
  mean = f'mean of {repeats} repeats' if repeats > 1 else 'one repeat'
  if not found['finetune_beats_scratch']:
    return (
      f'At {n} labels, training from scratch '
      f'({found["scratch_method"]}) beats fine-tuned {encoder} (best: '
      f'{found["best_strategy"]}) by {-points:.1f} points: {scratch} '
      f'against {tuned} test accuracy, {mean}.'
    )
  head = (
    f'At {n} labels, fine-tuned {encoder} ({found["best_strategy"]}) '
    f'beats training from scratch ({found["scratch_method"]}) by '
    f'{points:.1f} points: {tuned} against {scratch} test accuracy, '
    f'{mean}'
  )
  if repeats < 2:
    return head + ', so no spread to judge the margin by.'
  stds = f'the two stds together {found["spread"]:.3f}'
  if found['beyond_spread']:
    return head + f'; beyond the spread ({stds}).'
  return head + f'; within the spread ({stds}): not a clear win.'


def _media_lead(
  found: Sequence[Mapping[str, Any]],
  sizes: Sequence[int],
  encoder: str,
  groups: Tuple[List[int], List[int], List[int]],
) -> str:
  """The leading sentence of `media_conclusion` over all sizes, given the
  sizes where transfer pays off clearly, is ahead within the spread, and
  is behind (`groups`)."""
  clear, ahead, behind = groups
  if len(clear) == len(sizes):
    return (
      f'Transfer pays off at every size measured: fine-tuned {encoder} '
      'beats training from scratch beyond the spread over repeats at '
      f'{_sizes_text(sizes)} labels.'
    )
  single = all(f['repeats'] < 2 for f in found)
  parts = []
  if clear:
    parts.append(f'pays off clearly at {_sizes_text(clear)} labels')
  if ahead:
    parts.append(
      'is ahead (one repeat: no spread to judge by)'
      if single
      else 'is ahead, but not beyond the spread,'
    )
    parts[-1] += f' at {_sizes_text(ahead)} labels'
  if behind:
    parts.append(f'does not pay off at {_sizes_text(behind)} labels')
  joined = (
    ', '.join(parts[:-1]) + ' and ' + parts[-1] if len(parts) > 1 else parts[0]
  )
  return f'Transfer from {encoder} {joined}.'


def _constant_caveat(
  useless: Sequence[Mapping[str, Any]],
  constant: float,
  noise: float,
  test_rows: int,
) -> Optional[str]:
  """The caveat of `media_conclusion` naming the `useless` runs, those no
  better than a constant answer; None when there are none."""
  if not useless:
    return None
  by_size: Dict[int, List[str]] = {}
  for r in useless:
    by_size.setdefault(r['labelled'], []).append(
      f'{r["method"]} ({r["accuracy_mean"]:.3f})'
    )
  named = '; '.join(f'at {n} labels {", ".join(m)}' for n, m in by_size.items())
  return (
    f"No better than always answering the test set's most "
    f'frequent class ({constant:.3f}, give or take its standard '
    f'error on {test_rows} rows, {noise:.3f}): {named}. A margin '
    'over such a model is a margin over a constant answer.'
  )


def media_conclusion(
  summary: Sequence[Mapping[str, Any]],
  encoder: str,
  constant: float,
  test_rows: int,
) -> Dict[str, Any]:
  """Whether transfer pays off at each labelled-set size: a leading
  sentence over all sizes, then one sentence a size (`_size_sentence`);
  and a `caveat` (None when there is none) naming the methods whose mean
  accuracy is no better than `constant`, what always answering the test
  set's most frequent class scores, give or take that score's standard
  error on `test_rows` rows (its sampling noise)."""
  sizes = sorted({r['labelled'] for r in summary})
  found = [verdict(summary, n) for n in sizes]
  clear = [f['labelled'] for f in found if f['beyond_spread']]
  ahead = [
    f['labelled']
    for f in found
    if f['finetune_beats_scratch'] and not f['beyond_spread']
  ]
  behind = [f['labelled'] for f in found if not f['finetune_beats_scratch']]
  lead = _media_lead(found, sizes, encoder, (clear, ahead, behind))
  text = ' '.join([lead] + [_size_sentence(f, encoder) for f in found])
  noise = (constant * (1 - constant) / test_rows) ** 0.5
  useless = [r for r in summary if r['accuracy_mean'] <= constant + noise]
  caveat = _constant_caveat(useless, constant, noise, test_rows)
  return {
    'by_size': found,
    'clear_at': clear,
    'ahead_at': ahead,
    'behind_at': behind,
    'constant_answer': constant,
    'constant_answer_se': round(noise, 4),
    'no_better_than_constant': [
      {'method': r['method'], 'labelled': r['labelled']} for r in useless
    ],
    'text': text,
    'caveat': caveat,
  }
