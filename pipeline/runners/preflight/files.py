"""The data's files: the CSV or TFRecord files ExampleGen will read, each
checked to be a file it can read to its end; a CSV file's header and rows;
a TFRecord file's tf.Examples (TensorFlow is imported only then)."""

import csv
import io
import os
import re
from typing import Any, Iterator, List, Optional, Tuple

from components import csv_format
from pipeline.definition.spec import is_uri
from pipeline.paths import special_kind
from pipeline.runners.preflight.common import PreflightError, _Files


def csv_files(path: str) -> List[str]:
  """The CSV files ExampleGen will read for `data.csv` (a folder or a file)."""
  return data_files(path, 'data.csv')


_DATA_WORDS = {
  'data.csv': 'CSV files or one CSV file',
  'data.tfrecord': 'TFRecord files of tf.Examples or one such file',
}


def data_files(path: str, key: str) -> List[str]:
  """The files ExampleGen will read for the spec's `key` (data.csv or
  data.tfrecord): the files of a folder, or the one file. Each is a
  regular file, and none is an editor's lock or backup file: ExampleGen
  reads every file of the folder, so one it cannot read is named here,
  unread."""
  fs = _Files(path)
  if not fs.exists(path):
    raise PreflightError(
      f'{path}: data not found ({key} in the spec); '
      f'point it at a folder of {_DATA_WORDS[key]}'
    )
  if not fs.isdir(path):
    _check_data_file(path, key)
    return [path]
  files = sorted(
    fs.join(path, n) for n in fs.listdir(path) if not fs.isdir(fs.join(path, n))
  )
  if not files:
    raise PreflightError(
      f'{path}: the data folder holds no files ({key} in the spec)'
    )
  for name in files:
    _check_data_file(name, key, in_folder=True)
  return files


# Files an editor leaves beside the one it has open: LibreOffice's and
# Emacs's locks, Emacs's and vim's backups and auto-saves, Office's owner
# file. ExampleGen would read each as data.
_EDITOR_FILES = re.compile(
  r'^(\.~lock\..*#|\.#.*|#.*#|.*~|\..*\.sw[a-p]|'
  r'~\$.*)$'
)


def _check_data_file(path: str, key: str, in_folder: bool = False) -> None:
  """One file of the data can be read to its end, without reading it: a
  regular file (not a FIFO, which blocks, nor a device such as /dev/zero,
  which never ends), and in a folder, no editor's lock or backup file.

  Raises:
    PreflightError: naming the file and what to do.
  """
  if is_uri(path):
    return
  name = os.path.basename(path)
  folder = os.path.dirname(path)
  if in_folder and _EDITOR_FILES.match(name):
    raise PreflightError(
      f"{folder}: {name[:60]!r} is an editor's lock or backup file, and "
      f'every file of the data folder is read as data ({key}); close the '
      'file in its editor, or move this one out of the folder'
    )
  if os.path.islink(path) and not os.path.exists(path):
    raise PreflightError(
      f'{path}: a broken symbolic link in the data ({key});'
      ' remove it, or point it at a file'
    )
  kind = special_kind(path)
  if kind:
    raise PreflightError(
      f'{path}: {kind} in the data folder ({key}), which ExampleGen would '
      'wait on or read without end; move it out of the folder'
      if in_folder
      else f'{path}: {kind}, not a data file ({key}); name a regular file '
      'or a folder of them'
    )


# A gzip stream's first bytes.
_GZIP_MAGIC = b'\x1f\x8b'


def _gzipped(path: str) -> Optional[bool]:
  """Whether the TFRecord file at `path` is gzipped, told by its first bytes
  and checked against its name; None for an empty file.

  Raises:
    PreflightError: the name does not say the compression.
  """
  fs = _Files(path)
  with fs.open(path, 'rb') as f:
    head = f.read(2)
  if not head:
    return None
  gzipped = head == _GZIP_MAGIC
  if gzipped != path.lower().endswith('.gz'):
    raise PreflightError(
      f'{path}: '
      + (
        'gzipped, but its name does not end in .gz'
        if gzipped
        else 'named .gz, but not gzipped'
      )
      + '; ImportExampleGen tells a gzipped TFRecord file by its name: '
      'rename it'
    )
  return gzipped


def _example(path: str, number: int, record: bytes) -> Any:
  """Record `number` of the file as a tf.Example.

  Raises:
    PreflightError: the record is no tf.Example.
  """
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from google.protobuf import message

  # pylint: enable=g-import-not-at-top
  try:
    example = tf.train.Example.FromString(record)
  except message.DecodeError:
    example = None
  # A record of another message can parse (a tf.SequenceExample's
  # context reads as features): it leaves fields an Example lacks.
  size = example.ByteSize() if example is not None else -1
  if example is not None:
    example.DiscardUnknownFields()
  if example is None or example.ByteSize() != size:
    raise PreflightError(
      f'{path}: record {number} is not a tf.Example; data.tfrecord '
      'names TFRecord files of serialized tf.train.Example protos'
    )
  return example


def tfrecord_examples(path: str) -> Iterator[Tuple[int, Any]]:
  """The tf.Examples of one TFRecord file, numbered from 1. Gzipped or not
  is told by the file's first bytes, and must agree with its name: TFX's
  ImportExampleGen (through Beam) reads a file named .gz as gzipped and
  any other as plain.

  TensorFlow is imported here, so only TFRecord data pays for it.

  Raises:
    PreflightError: a compression the name does not say, not a TFRecord
      file, or a record that is no tf.Example (one line naming the file).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  gzipped = _gzipped(path)
  if gzipped is None:
    return  # an empty shard: no records
  dataset = tf.data.TFRecordDataset(
    path, compression_type='GZIP' if gzipped else ''
  )
  number = 0
  try:
    for record in dataset.as_numpy_iterator():
      number += 1
      yield number, _example(path, number, record)
  except tf.errors.OpError as e:
    # TensorFlow's message without its op's name around it.
    detail = re.sub(r'\{\{.*?\}\}|\[Op:.*', '', str(e.message))
    detail = ' '.join(detail.split())[:200]
    raise PreflightError(
      f'{path}: not a TFRecord file (record {number + 1}: {detail}); '
      'data.tfrecord names TFRecord files of tf.Examples'
    ) from None


def _read(path: str) -> Tuple[List[str], 'csv.reader']:
  try:
    text = csv_format.read_text(_Files(path).read_bytes(path), path)
  except UnicodeError as e:
    raise PreflightError(str(e)) from None
  reader = csv.reader(io.StringIO(text, newline=''))
  try:
    header = next(reader, None)
  except csv.Error as e:
    raise PreflightError(f'{path}: line 1: not CSV ({e})') from None
  return [name.strip() for name in header or []], reader
