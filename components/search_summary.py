"""A Tuner search in one line, from its report (components/tuner.py writes
it as search_report.json): the run's summary, the log and the HTML report
all say it this way.

Standard library only: the report and the CLI's summary read it without
loading TFX.
"""

import collections
from typing import Any, Dict


def _plural(count: int, word: str) -> str:
  return f'{count} {word}{"" if count == 1 else "s"}'


def describe(report: Dict[str, Any]) -> str:
  """The search as one line: the algorithm (and the one asked for), the
  trials and the epochs each trained (early stopping included; a Hyperband
  trial's own epochs, not the epoch its parent's training had reached), the
  processes, the best trial by the id the trial table shows, and the note."""
  done = [
    t
    for t in report.get('trials', [])
    if t.get('status') == 'COMPLETED' and t.get('score') is not None
  ]
  how = report.get('algorithm') or "the module file's tuner"
  if report.get('asked') and report['asked'] != report.get('algorithm'):
    how += f' (asked: {report["asked"]})'
  counts = collections.Counter(t.get('epochs') or 0 for t in done)
  by_epochs = ', '.join(
    f'{n} trained {_plural(e, "epoch")}' for e, n in sorted(counts.items())
  )
  line = (
    f'{how}: {_plural(len(done), "trial")}, '
    f'{sum(t.get("epochs") or 0 for t in done)} epochs in all'
    + (f' ({by_epochs})' if by_epochs else '')
  )
  if (report.get('processes') or 1) > 1:
    line += f' in {report["processes"]} processes'
  best = report.get('best')
  if best:
    line += (
      f'; best {report.get("objective", "objective")} '
      f'{best["score"]:.4f}: trial {best["trial_id"]}'
    )
  if report.get('note'):
    line += f'; {report["note"]}'
  return line
