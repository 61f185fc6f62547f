"""The task, the number of classes and the label's statistics that the
label's values imply, checked against what the spec says (class indices
0..n-1, two classes or more, no more than features.max_classes)."""

import collections
from typing import Any, Counter, Dict, Optional, Tuple

from components import csv_format
from modules import tasks
from pipeline.definition.spec import PipelineSpec
from pipeline.runners.preflight.common import PreflightError


def _is_whole(text: str) -> bool:
  return float(text).is_integer()


def _stray_class(
  spec: PipelineSpec, by_index: Counter[int], where: Dict[str, str]
) -> None:
  """Class indices run 0..n-1. One out of features.num_classes, or (with
  no num_classes) one past a class no row holds (0, 1 and a 7: a typo, or
  a code for "unknown"), is the row's fault: it names the first row
  holding it, not the metrics the class count would later upset.

  Raises:
    PreflightError: naming the file, line, column and value.
  """
  f = spec.features
  high = max(by_index)
  declared = f.num_classes
  if declared is not None:
    if high < declared:
      return
    stray = min(i for i in by_index if i >= declared)
    why = (
      f' is out of range for features.num_classes {declared} (indices '
      f'0..{declared - 1}); fix the row, or raise num_classes'
    )
  else:
    present = sorted(by_index)
    # The first class no row holds (indices are >= 0 and distinct), and
    # the one after it: the first past the gap.
    hole = next((i for i, index in enumerate(present) if index != i), None)
    if hole is None:
      return
    stray = present[hole]
    missing = high + 1 - len(present)
    more = missing - (stray - hole)
    gap = (f'{hole}' if stray == hole + 1 else f'{hole}..{stray - 1}') + (
      f' (and {more} more)' if more else ''
    )
    why = (
      f', but no row holds class {gap}, so it would make {high + 1} '
      'classes; fix the row, or set features.num_classes if those '
      'classes have no rows here'
    )
  first = next(
    (at for text, at in where.items() if int(float(text)) == stray),
    spec.data.path,
  )
  raise PreflightError(
    f'{first}, column {f.label} (features.label): class {stray}{why}'
  )


def _implied_task(
  key: str, max_classes: int, kind: str, counts: Counter[str]
) -> str:
  """The task the label's values imply when the spec names none: regression
  for numbers that are not all whole, else classification (refused for more
  distinct numbers than `max_classes`)."""
  if kind == csv_format.FLOAT and not all(map(_is_whole, counts)):
    return tasks.REGRESSION
  if kind in (csv_format.INT, csv_format.FLOAT) and tasks.too_many_classes(
    len(counts), max_classes
  ):
    raise PreflightError(
      f'{key}: {len(counts)} distinct numbers, more than '
      f'features.max_classes ({max_classes}): set features.task: '
      'regression (or raise max_classes if they are classes)'
    )
  return tasks.CLASSIFICATION


def _class_indices(
  spec: PipelineSpec,
  key: str,
  counts: Counter[str],
  where: Optional[Dict[str, str]],
) -> Counter[int]:
  """A numeric label's rows by class index, checked: no negative index, no
  stray class among the others."""
  by_index = collections.Counter()
  for text, count in counts.items():
    by_index[int(float(text))] += count
  low = min(by_index)
  if low < 0:
    raise PreflightError(
      f'{key}: class index {low} is negative; class indices run 0..n-1'
    )
  _stray_class(spec, by_index, where or {})
  return by_index


def _classification(
  spec: PipelineSpec,
  key: str,
  kind: str,
  counts: Counter[str],
  where: Optional[Dict[str, str]],
) -> Tuple[int, Counter[int]]:
  """The number of classes the label's values imply for classification,
  checked against the spec, and the label's rows by class index."""
  f = spec.features
  numbers = kind in (csv_format.INT, csv_format.FLOAT)
  if kind == csv_format.FLOAT and not all(map(_is_whole, counts)):
    raise PreflightError(
      f'{key}: holds numbers that are not whole, but '
      'features.task is classification: class indices are '
      'whole numbers (or set features.task: regression)'
    )
  if numbers:
    by_index = _class_indices(spec, key, counts, where)
    found = max(by_index) + 1
  else:
    found = len(counts)
  problem = tasks.classes_problem(f.num_classes, found, indices=numbers)
  if problem:
    raise PreflightError(f'{key}: {problem}')
  if not numbers:
    # Class ids are given by frequency (the Transform's vocabulary).
    by_index = collections.Counter(
      {i: c for i, (_, c) in enumerate(counts.most_common())}
    )
  classes = f.num_classes if f.num_classes is not None else found
  if classes < 2:
    raise PreflightError(
      f'{key}: only one class '
      f'({", ".join(map(str, sorted(counts)))}); a '
      'classifier needs two or more'
    )
  if tasks.too_many_classes(found, f.max_classes) and f.task is None:
    raise PreflightError(
      f'{key}: {found} classes, more than features.max_classes '
      f'({f.max_classes}): raise it, or set features.task'
    )
  return classes, by_index


def _task(
  spec: PipelineSpec,
  kind: str,
  counts: Counter[str],
  where: Optional[Dict[str, str]] = None,
) -> Tuple[str, Optional[int], tasks.LabelStats]:
  """The task, the number of classes and the label's statistics that the
  label's values imply (`where`: each value's first row), checked against
  what the spec says."""
  f, source = spec.features, spec.data.path
  key = f'{source}: column {f.label} (features.label)'
  task = f.task
  numbers = kind in (csv_format.INT, csv_format.FLOAT)
  if task is None:
    task = _implied_task(key, f.max_classes, kind, counts)
  if task == tasks.REGRESSION:
    if not numbers:
      first = next(iter(counts), '')
      raise PreflightError(
        f'{key}: {first!r} is not a number, but features.task is regression'
      )
    return (
      task,
      None,
      _label_stats(f, task, None, {float(v): c for v, c in counts.items()}),
    )
  classes, by_index = _classification(spec, key, kind, counts, where)
  return task, classes, _label_stats(f, task, classes, by_index)


def _label_stats(
  features, task: str, classes: Optional[int], values: Dict[Any, int]
) -> tasks.LabelStats:
  """The task's own statistics of the label's `values` (value or class
  index -> rows)."""
  resolved = features.model_copy(update={'task': task, 'num_classes': classes})
  return tasks.task_for(resolved).label_stats(values)
