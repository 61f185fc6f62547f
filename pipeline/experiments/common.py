"""What both comparisons (pipeline/experiments/compare.py) share: their
error, the names of the methods that train from scratch, the rows of a CSV
file read by the pipeline's own rules (components/csv_format.py), so that
a comparison reads its data as `validate` and the ExampleGen do, and test
accuracy as the task defines its predicted class.
"""

import os
import platform
from typing import Any, Iterator, List, Sequence, Tuple

import numpy as np

from components import csv_format
from pipeline.errors import PipelineError

SCRATCH = 'scratch'


class CompareError(PipelineError):
  """The comparison cannot run on this spec. One line."""


def is_scratch(method: str) -> bool:
  """Whether `method` trains from scratch (`scratch`, `scratch_<encoder>`)
  rather than from pretrained weights."""
  return method == SCRATCH or method.startswith(SCRATCH + '_')


def csv_records(
  path: str, wanted: Sequence[str]
) -> Iterator[Tuple[int, List[str]]]:
  """The data rows of one CSV file, numbered from 1, each as the cells of
  the `wanted` columns in that order (text, as written).

  Raises:
    CompareError: a file that cannot be read as CSV text, a `wanted`
      column the header lacks, a row whose cells do not match the header.
  """
  try:
    with open(path, 'rb') as f:
      records = csv_format.rows(csv_format.read_text(f.read(), path))
  except (OSError, UnicodeError) as e:
    raise CompareError(f'{path}: {e}') from None
  header = next(records, [])
  absent = [c for c in wanted if c not in header]
  if absent:
    raise CompareError(
      f'{path}: no column {", ".join(absent)} (the spec names it)'
    )
  where = [header.index(c) for c in wanted]
  for number, record in enumerate(records, start=1):
    if len(record) != len(header):
      raise CompareError(
        f'{path}: row {number}: {len(record)} cells, the '
        f'header has {len(header)}'
      )
    yield number, [record[i] for i in where]


def accuracy(task: Any, predicted: np.ndarray, labels: np.ndarray) -> float:
  """The share of rows whose predicted class is the label: the class the
  task serves (modules/tasks.py) for the model's outputs `predicted`."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf

  from modules import tasks

  # pylint: enable=g-import-not-at-top
  classes = task.serving_outputs(tf.constant(predicted))[tasks.CLASS_ID]
  return float(np.mean(np.reshape(classes, -1) == np.reshape(labels, -1)))


def machine() -> str:
  """The machine a comparison ran on, for its report."""
  return f'{platform.machine()}, {os.cpu_count()} CPUs'
