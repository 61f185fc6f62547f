"""Scores a pushed model the way a serving client would, in its own process.

Loads the SavedModel with tf.saved_model.load, turns CSV rows into serialized
tf.Examples (raw features, no label) and calls the serving signature. Rows in
the pipeline's eval split (read from ExampleGen's output) are scored apart.
Prints one JSON object.

Usage:
  python tests/support/serving_check.py MODEL_DIR CSV EVAL_SPLIT_GLOB LABEL
"""

import csv
import glob
import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position


def _key(values):
  return tuple(np.float32(v).item() for v in values)


def main(model_dir, csv_path, eval_glob, label):
  with open(csv_path, newline='') as f:
    reader = csv.DictReader(f)
    rows = list(reader)
  features = [c for c in reader.fieldnames if c != label]
  eval_keys = set()
  for record in tf.data.TFRecordDataset(
    sorted(glob.glob(eval_glob)), compression_type='GZIP'
  ):
    example = tf.train.Example.FromString(record.numpy())
    eval_keys.add(
      _key(example.features.feature[k].float_list.value[0] for k in features)
    )
  serialized = []
  for row in rows:
    example = tf.train.Example()
    for k in features:
      example.features.feature[k].float_list.value.append(float(row[k]))
    serialized.append(example.SerializeToString())
  model = tf.saved_model.load(model_dir)
  serve = model.signatures['serving_default']
  probability = serve(examples=tf.constant(serialized))['probability'].numpy()
  predicted = (probability[:, 0] >= 0.5).astype(int)
  labels = np.array([int(r[label]) for r in rows])
  in_eval = np.array(
    [_key(float(r[k]) for k in features) in eval_keys for r in rows]
  )
  print(
    json.dumps(
      {
        'rows': len(rows),
        'eval_rows': int(in_eval.sum()),
        'eval_split_examples': len(eval_keys),
        'accuracy_all': float((predicted == labels).mean()),
        'accuracy_eval': float((predicted[in_eval] == labels[in_eval]).mean()),
        'signature_inputs': sorted(serve.structured_input_signature[1]),
        'signature_outputs': sorted(serve.structured_outputs),
      }
    )
  )


if __name__ == '__main__':
  main(*sys.argv[1:])
