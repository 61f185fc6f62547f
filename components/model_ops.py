"""Custom TensorFlow ops a SavedModel may need before it loads.

A gradient boosted trees model (model.builder gbt, modules/gbt.py) is a
TensorFlow Decision Forests model: its graph runs TF-DF's inference ops,
which a process has only once `tensorflow_decision_forests` is imported. A
model with a BERT-family text encoder (modules/pretrained/bert.py) runs
TensorFlow Text's tokenizer ops, registered by importing `tensorflow_text`.
`ensure_ops(dir)` imports the libraries the SavedModel in `dir` needs, and
does nothing (and imports nothing) for any other model, so every loader
calls it: the Evaluator (components/evaluator.py), the model server, the
fine-tuning base model's loader.

Light on purpose: no TensorFlow or TFX at import, so the model server
checks a model without loading either (components/evaluator.py is the
Evaluator's side).
"""

import importlib
import os
from typing import Dict, List, Tuple

# The ops of TF-DF's inference library (tensorflow_decision_forests/
# tensorflow/ops/inference); a SavedModel of a forest names some of them.
FOREST_OPS = (
  'SimpleMLCreateModelResource',
  'SimpleMLInferenceOp',
  'SimpleMLInferenceOpWithHandle',
  'SimpleMLInferenceLeafIndexOpWithHandle',
  'SimpleMLLoadModelFromPath',
  'SimpleMLLoadModelFromPathWithHandle',
)


# TensorFlow Text's ops a BERT tokenizer's graph runs (FastBertTokenizer:
# its normaliser and its WordPiece).
TEXT_OPS = ('FastBertNormalize', 'FastWordpieceTokenizeWithOffsets')
# Each library: the ops that say a graph needs it, and the module whose
# load_ops() registers them quietly (the project's own loader where it has
# one, else the library itself).
LIBRARIES: Dict[str, Tuple[Tuple[str, ...], str]] = {
  'tensorflow_decision_forests': (FOREST_OPS, 'modules.gbt'),
  'tensorflow_text': (TEXT_OPS, 'modules.pretrained.bert'),
}


def _graph_bytes(saved_model_dir: str) -> bytes:
  """saved_model.pb (or .pbtxt) of `saved_model_dir`, b'' when neither is
  there (the load then says what is wrong); a path with a scheme (gs://)
  is read through TensorFlow's file system."""
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
    return data
  return b''


def needed_libraries(saved_model_dir: str) -> List[str]:
  """The op libraries (LIBRARIES) the SavedModel in `saved_model_dir`
  runs, from its graph's bytes: every op a graph uses is named in its
  nodes (and in the op list), so no parsing and no TensorFlow."""
  data = _graph_bytes(saved_model_dir)
  return [
    library
    for library, (ops, _) in LIBRARIES.items()
    if any(op.encode() in data for op in ops)
  ]


def uses_forest_ops(saved_model_dir: str) -> bool:
  """Whether the SavedModel in `saved_model_dir` runs TF-DF's ops."""
  return 'tensorflow_decision_forests' in needed_libraries(saved_model_dir)


def ensure_ops(saved_model_dir: str) -> bool:
  """Makes the SavedModel in `saved_model_dir` loadable in this process:
  registers the custom ops it uses (LIBRARIES). Returns whether it needed
  any."""
  needed = needed_libraries(saved_model_dir)
  for library in needed:
    importlib.import_module(LIBRARIES[library][1]).load_ops()
  return bool(needed)
