"""A run's eval split, row by row, with what the run's model answered.

`python -m pipeline predictions RUN --output FILE.csv` writes it, so that a
baseline of one's own can be scored on exactly the rows the Evaluator
scored (the split is the ExampleGen's hash of each row: splits.py says
how). Each row is one stored tf.Example of the run's eval split, in the
order the Evaluator read them:

- the columns as the ExampleGen read them (the label among them), sorted
  by name as splits.read_split gives them;
- then the model's outputs, each prefixed `predicted_`: what the serving
  signature answers (modules/train.py serving_signatures): for a binary
  label `predicted_probability` and `predicted_class_id`; for more
  classes one `predicted_probabilities_<class>` column per class and the
  class id (and name); for regression `predicted_prediction`, on the
  label's scale.

The model is the run's Trainer output (the model the Evaluator judged,
blessed or not), fed the stored examples through `serving_default`, the
signature TF Serving clients use, which applies the Transform graph.
"""

import base64
import os
from typing import Any, Dict, List

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.experiments import splits
from pipeline.metadata import lineage
from pipeline.paths import atomic_file, file_problem

EVAL_SPLIT = 'eval'
SIGNATURE = 'serving_default'
OUTPUT_PREFIX = 'predicted_'
BATCH = 256
SERVING_FOLDER = 'Format-Serving'  # TFX's Trainer writes the export there


class PredictionsError(PipelineError):
  """The predictions cannot be made or written. One line."""


def _folders(store, run_id: str) -> Dict[str, str]:
  """The run's eval split and its trained model's SavedModel."""
  record = lineage.run_record(store, run_id)
  if record is None:
    raise PredictionsError(
      f'{run_id}: no such run in the store (see `lineage runs`)'
    )
  examples = record.examples()
  if not examples:
    raise PredictionsError(
      f'{run_id}: the run has no ExampleGen output '
      '(it stopped before reading its data)'
    )
  models = record.artifacts('Trainer', 'model')
  if not models:
    raise PredictionsError(
      f'{run_id}: the run trained no model (its Trainer did not finish)'
    )
  model = os.path.join(models[0].uri, SERVING_FOLDER)
  if not os.path.isdir(model):
    raise PredictionsError(
      f"{model}: no such folder (the run's model is "
      'gone from its pipeline root)'
    )
  try:
    split = splits.split_folder(examples[0].uri, EVAL_SPLIT)
  except splits.SplitError as e:
    raise PredictionsError(str(e)) from None
  return {'split': split, 'model': model}


def _load(model_dir: str):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  try:
    # A gradient-boosted trees model's ops live in TF-DF; loading one
    # needs them registered first.
    import tensorflow_decision_forests  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    pass
  try:
    return tf.saved_model.load(model_dir).signatures[SIGNATURE]
  except Exception as e:  # pylint: disable=broad-except
    raise PredictionsError(
      f"{model_dir}: cannot load the model's "
      f'{SIGNATURE} signature: '
      f'{" ".join(str(e).split())[:160]}'
    ) from None


def _columns(name: str, values: np.ndarray) -> Dict[str, Any]:
  """One output as CSV columns: a [batch] or [batch, 1] output is one
  column; a [batch, k] one is k columns, `<name>_<i>`."""
  if values.dtype.kind in 'SO':
    values = np.vectorize(
      lambda v: v.decode('utf-8', 'replace') if isinstance(v, bytes) else v,
      otypes=[object],
    )(values)
  if values.ndim == 1 or values.shape[1:] == (1,):
    return {OUTPUT_PREFIX + name: values.reshape(len(values))}
  return {
    f'{OUTPUT_PREFIX}{name}_{i}': values[:, i] for i in range(values.shape[1])
  }


def predict(store, run_id: str) -> pd.DataFrame:
  """Run `run_id`'s eval split with its model's outputs (module docstring).

  Raises:
    PredictionsError: no such run, no model or split, or a model that does
      not load.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  found = _folders(store, run_id)
  serve = _load(found['model'])
  serialized = list(splits.records(found['split']))
  outputs: Dict[str, List[np.ndarray]] = {}
  for start in range(0, len(serialized), BATCH):
    batch = tf.constant(serialized[start : start + BATCH])
    for name, value in serve(examples=batch).items():
      outputs.setdefault(name, []).append(value.numpy())
  table = splits.examples_table(iter(serialized))
  for name in sorted(outputs):
    for column, values in _columns(name, np.concatenate(outputs[name])).items():
      table[column] = values
  return table


def _cell(value: Any) -> Any:
  """Bytes that are not text (an encoded image) as base64 text."""
  if isinstance(value, bytes):
    return 'base64:' + base64.b64encode(value).decode('ascii')
  return value


def write_csv(store, run_id: str, output: str) -> int:
  """Writes predict(store, run_id) to `output` as CSV, whole or not at
  all; returns the rows written.

  Raises:
    PredictionsError: `output` cannot be written (said before anything is
      computed), or predict's reasons.
  """
  problem = file_problem(output)
  if problem:
    raise PredictionsError(
      f'{output}: cannot write the predictions here: {problem}'
    )
  table = predict(store, run_id)
  table = table.apply(
    lambda column: column.map(_cell) if column.dtype == object else column
  )
  with atomic_file(
    output, PredictionsError, 'the predictions', newline=''
  ) as f:
    table.to_csv(f, index=False)
  return len(table)
