"""The pipeline's own train/eval split, read back as tables.

A baseline compared with the pipeline's model must see the same rows: the
ExampleGen hashes each row into a split, and no other code can repeat that
exactly. `pipeline_split` reads what it wrote under a run's pipeline root:

  <pipeline_root>/CsvExampleGen/examples/<execution id>/Split-<name>/*.gz

gzipped TFRecord files of tf.Examples, one folder per split. Of several
executions (a changed CSV makes a new one; a cached run makes none), the
newest is read: the largest execution id, which ML Metadata hands out in
order.

A tf.Example keeps no column order and leaves a missing cell out (or
empty), so a table's columns are sorted by name, and a value the row lacks
is NaN (numbers) or None (text).
"""

import os
import re
from typing import Any, Dict, List, Optional

import pandas as pd

from pipeline.errors import PipelineError

EXAMPLE_GEN = 'CsvExampleGen'
SPLIT_PREFIX = 'Split-'


class SplitError(PipelineError):
  """No ExampleGen output to read under a pipeline root. One line."""


def examples_dir(pipeline_root: str) -> str:
  """The newest ExampleGen output folder (`.../examples/<execution id>`).

  Args:
    pipeline_root: a run's pipeline root (the spec's `runner.pipeline_root`).

  Returns:
    The folder holding the `Split-*` folders of the newest execution.

  Raises:
    SplitError: there is no ExampleGen output with splits under the root.
  """
  base = os.path.join(pipeline_root, EXAMPLE_GEN, 'examples')
  try:
    names = os.listdir(base)
  except OSError as e:
    raise SplitError(f'{base}: no ExampleGen output ({e.strerror})') from e
  with_splits = [n for n in names if re.fullmatch(r'\d+', n) and any(
      s.startswith(SPLIT_PREFIX) for s in os.listdir(os.path.join(base, n)))]
  if not with_splits:
    raise SplitError(f'{base}: no execution folder with Split-* folders')
  return os.path.join(base, max(with_splits, key=int))


def _value(feature) -> Any:
  """A feature's one value (bytes decoded), its list if it has several, or
  None when it has none (a missing cell)."""
  kind = feature.WhichOneof('kind')
  if kind is None:
    return None
  values = list(getattr(feature, kind).value)
  if kind == 'bytes_list':
    values = [v.decode('utf-8') for v in values]
  if not values:
    return None
  return values[0] if len(values) == 1 else values


def read_split(folder: str) -> pd.DataFrame:
  """One split folder's tf.Examples as a table, a row per example.

  Args:
    folder: a `Split-<name>` folder of gzipped TFRecord files.

  Returns:
    One column per feature, sorted by name; NaN or None where a row has no
    value.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  files = sorted(tf.io.gfile.glob(os.path.join(folder, '*.gz')))
  rows: List[Dict[str, Any]] = []
  columns = set()
  for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
    features = tf.train.Example.FromString(record.numpy()).features.feature
    row = {name: _value(features[name]) for name in features}
    columns.update(row)
    rows.append(row)
  names = sorted(columns)
  # Every key in every row: pandas fills a key a row lacks with NaN even in a
  # text column, where None (as for an empty feature) is what it means.
  return pd.DataFrame.from_records(
      [[row.get(name) for name in names] for row in rows], columns=names)


def pipeline_split(pipeline_root: str,
                   splits: Optional[List[str]] = None
                   ) -> Dict[str, pd.DataFrame]:
  """The newest ExampleGen output under `pipeline_root`, split by split.

  Args:
    pipeline_root: a run's pipeline root (the spec's `runner.pipeline_root`).
    splits: the split names to read (default: every `Split-*` folder, e.g.
      train and eval).

  Returns:
    {split name: table}, e.g. {'train': ..., 'eval': ...}.

  Raises:
    SplitError: no ExampleGen output, or a named split is not there.
  """
  folder = examples_dir(pipeline_root)
  found = sorted(n[len(SPLIT_PREFIX):] for n in os.listdir(folder)
                 if n.startswith(SPLIT_PREFIX))
  missing = sorted(set(splits or ()) - set(found))
  if missing:
    raise SplitError(f'{folder}: no split {", ".join(missing)} (found '
                     f'{", ".join(found)})')
  return {name: read_split(os.path.join(folder, SPLIT_PREFIX + name))
          for name in (splits or found)}
