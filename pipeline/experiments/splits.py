"""The pipeline's own train/eval split, read back as tables.

A baseline compared with the pipeline's model must see the same rows: the
ExampleGen hashes each row into a split, and no other code can repeat that
exactly. `pipeline_split` reads what it wrote under a run's pipeline root:

  <pipeline_root>/<ExampleGen>/examples/<execution id>/Split-<name>/*.gz

gzipped TFRecord files of tf.Examples, one folder per split; <ExampleGen>
is the node id of the data's format (CsvExampleGen, ImportExampleGen:
components/example_gens.py). Of several executions (a changed CSV makes a
new one; a cached run makes none), the newest is read: the largest
execution id, which ML Metadata hands out in order (across the ExampleGens
too, should a pipeline's data have changed format).

How a row lands in a split (CsvExampleGen, components/csv_example_gen.py,
as TFX's base ExampleGen does it): the row becomes a tf.Example with one
feature per column, in column-name order, serialized deterministically;
its bucket is the SHA-256 of those bytes, as a big-endian integer, modulo
the sum of the spec's `data.split` buckets ({train: 4, eval: 1}: 5); the
splits take the buckets in the spec's order (0-3 train, 4 eval).
`hash_split` repeats it on a stored example, whose bytes are those hashed.

A tf.Example keeps no column order and leaves a missing cell out (or
empty), so a table's columns are sorted by name, and a value the row lacks
is NaN (numbers) or None (text). Bytes that are not UTF-8 text (an
encoded image) stay bytes.
"""

import hashlib
import os
import re
from typing import Any, Dict, Iterator, List, Mapping, Optional

import pandas as pd

from components.example_gens import EXAMPLE_GEN_IDS
from pipeline.errors import PipelineError

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
  bases = [
    os.path.join(pipeline_root, node, 'examples') for node in EXAMPLE_GEN_IDS
  ]
  found = [base for base in bases if os.path.isdir(base)]
  if not found:
    raise SplitError(
      f'{pipeline_root}: no ExampleGen output (no '
      f'{" or ".join(EXAMPLE_GEN_IDS)}/examples folder)'
    )
  with_splits = [
    (int(n), os.path.join(base, n))
    for base in found
    for n in os.listdir(base)
    if re.fullmatch(r'\d+', n)
    and any(
      s.startswith(SPLIT_PREFIX) for s in os.listdir(os.path.join(base, n))
    )
  ]
  if not with_splits:
    raise SplitError(
      f'{" and ".join(found)}: no execution folder with Split-* folders'
    )
  return max(with_splits)[1]


def _text_or_bytes(value: bytes):
  """Text as str; other bytes (an encoded image) as they are."""
  try:
    return value.decode('utf-8')
  except UnicodeDecodeError:
    return value


def _value(feature) -> Any:
  """A feature's one value (UTF-8 bytes decoded), its list if it has
  several, or None when it has none (a missing cell)."""
  kind = feature.WhichOneof('kind')
  if kind is None:
    return None
  values = list(getattr(feature, kind).value)
  if kind == 'bytes_list':
    values = [_text_or_bytes(v) for v in values]
  if not values:
    return None
  return values[0] if len(values) == 1 else values


def hash_split(example: bytes, buckets: Mapping[str, int]) -> str:
  """The split a serialized tf.Example is hashed into, as ExampleGen does.

  Args:
    example: the example's deterministic serialization (a stored record).
    buckets: the spec's `data.split`, in its order ({'train': 4,
      'eval': 1}).

  Returns:
    The split's name.
  """
  bucket = int.from_bytes(hashlib.sha256(example).digest(), 'big') % sum(
    buckets.values()
  )
  for name, size in buckets.items():
    if bucket < size:
      return name
    bucket -= size
  raise AssertionError('unreachable: the bucket is below the sum')


def split_folder(examples_uri: str, name: str) -> str:
  """The `Split-<name>` folder of an Examples artifact.

  Raises:
    SplitError: the folder is not there (the pipeline root was removed, or
      the data has no such split).
  """
  folder = os.path.join(examples_uri, SPLIT_PREFIX + name)
  if not os.path.isdir(folder):
    raise SplitError(
      f"{folder}: no such folder (the run's {name} split "
      'is gone from its pipeline root, or was never made)'
    )
  return folder


def records(folder: str) -> Iterator[bytes]:
  """A split folder's serialized tf.Examples, in the files' name order."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  files = sorted(tf.io.gfile.glob(os.path.join(folder, '*.gz')))
  for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
    yield record.numpy()


def read_split(folder: str) -> pd.DataFrame:
  """One split folder's tf.Examples as a table, a row per example.

  Args:
    folder: a `Split-<name>` folder of gzipped TFRecord files.

  Returns:
    One column per feature, sorted by name; NaN or None where a row has no
    value.
  """
  return examples_table(records(folder))


def examples_table(serialized: Iterator[bytes]) -> pd.DataFrame:
  """Serialized tf.Examples as a table (read_split's columns and values)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  rows: List[Dict[str, Any]] = []
  columns = set()
  for record in serialized:
    features = tf.train.Example.FromString(record).features.feature
    row = {name: _value(features[name]) for name in features}
    columns.update(row)
    rows.append(row)
  names = sorted(columns)
  # Every key in every row: pandas fills a key a row lacks with NaN even in a
  # text column, where None (as for an empty feature) is what it means.
  return pd.DataFrame.from_records(
    [[row.get(name) for name in names] for row in rows], columns=names
  )


def pipeline_split(
  pipeline_root: str, splits: Optional[List[str]] = None
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
  found = sorted(
    n[len(SPLIT_PREFIX) :]
    for n in os.listdir(folder)
    if n.startswith(SPLIT_PREFIX)
  )
  missing = sorted(set(splits or ()) - set(found))
  if missing:
    raise SplitError(
      f'{folder}: no split {", ".join(missing)} (found {", ".join(found)})'
    )
  return {
    name: read_split(os.path.join(folder, SPLIT_PREFIX + name))
    for name in (splits or found)
  }
