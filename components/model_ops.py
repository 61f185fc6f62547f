"""Custom TensorFlow ops a SavedModel may need before it loads.

A gradient boosted trees model (model.builder gbt, modules/gbt.py) is a
TensorFlow Decision Forests model: its graph runs TF-DF's inference ops,
which a process has only once `tensorflow_decision_forests` is imported.
`ensure_ops(dir)` imports it when the SavedModel in `dir` needs it, and
does nothing (and imports nothing) for any other model, so every loader
calls it: the Evaluator (components/evaluator.py), the model server.

Light on purpose: no TensorFlow or TFX at import, so the model server
checks a model without loading either (components/evaluator.py is the
Evaluator's side).
"""

import os

# The ops of TF-DF's inference library (tensorflow_decision_forests/
# tensorflow/ops/inference); a SavedModel of a forest names some of them.
FOREST_OPS = ('SimpleMLCreateModelResource', 'SimpleMLInferenceOp',
              'SimpleMLInferenceOpWithHandle',
              'SimpleMLInferenceLeafIndexOpWithHandle',
              'SimpleMLLoadModelFromPath',
              'SimpleMLLoadModelFromPathWithHandle')


def uses_forest_ops(saved_model_dir: str) -> bool:
  """Whether the SavedModel in `saved_model_dir` runs TF-DF's ops.

  Reads its saved_model.pb (or .pbtxt) for their names, without parsing
  it or importing TensorFlow (a path with a scheme, e.g. gs://, is read
  through TensorFlow's file system). False when neither file is there: the
  load then says what is wrong.
  """
  for file_name in ('saved_model.pb', 'saved_model.pbtxt'):
    path = os.path.join(saved_model_dir, file_name)
    if '://' in saved_model_dir:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      if not tf.io.gfile.exists(path):
        continue
      with tf.io.gfile.GFile(path, 'rb') as f:
        data = f.read()
    elif os.path.isfile(path):
      with open(path, 'rb') as f:
        data = f.read()
    else:
      continue
    # Every op a graph uses is named in its nodes (and in the op list).
    return any(op.encode() in data for op in FOREST_OPS)
  return False


def ensure_ops(saved_model_dir: str) -> bool:
  """Makes the SavedModel in `saved_model_dir` loadable in this process:
  imports TF-DF (which registers its ops) when the model uses them.
  Returns whether it did."""
  if not uses_forest_ops(saved_model_dir):
    return False
  import tensorflow_decision_forests  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  return True
