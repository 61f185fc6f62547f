"""What every pre-flight check shares: its error, and the files it reads
(local paths through the standard library, URIs through TensorFlow)."""

import os

from pipeline.definition.spec import is_uri
from pipeline.errors import PipelineError


class PreflightError(PipelineError):
  """Bad input found before running. The message is one line."""


class _Files:
  """Local paths through the standard library; URIs (gs://, s3://) through
  TensorFlow's file system layer, imported only when one is given."""

  def __init__(self, path: str):
    if is_uri(path):
      import tensorflow as tf  # pylint: disable=g-import-not-at-top

      gfile = tf.io.gfile
      self.exists, self.isdir, self.listdir = (
        gfile.exists,
        gfile.isdir,
        gfile.listdir,
      )
      self.join = gfile.join
      self.open = gfile.GFile
    else:
      self.exists, self.isdir, self.listdir = (
        os.path.exists,
        os.path.isdir,
        os.listdir,
      )
      self.join = os.path.join
      self.open = open

  def read_bytes(self, path: str) -> bytes:
    with self.open(path, 'rb') as f:
      return f.read()
