"""run_fn for TFX Trainer: train (from scratch, or fine-tuning the base
model) with the best hyperparameters and export a SavedModel that serves raw,
serialized tf.Examples."""

import json
import logging
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import tensorflow as tf
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs

from modules import data as data_lib
from modules import distribute, finetune, search_space, tasks
from modules import model as model_lib
from modules.config import (
  RAW_SIGNATURE,
  TRANSFORM_FEATURES_SIGNATURE,
  TrainerConfig,
)
from modules.progress import PROGRESS_LOGGER
from modules.tuner import require_legacy_keras

HPARAMS_FILE = 'hyperparameters.json'  # in model_run, beside TensorBoard logs
HISTORY_FILE = 'training_history.json'  # likewise: what each epoch did
PREDICTIONS_FILE = 'eval_predictions.json'  # likewise: eval labels, predictions
PREDICTIONS_SHOWN = 2000  # the report draws at most these rows
CLASS_ID = tasks.CLASS_ID
CLASS_NAME = tasks.CLASS_NAME


def _raw_input_spec(spec) -> tf.TensorSpec:
  """serving_raw's input for one raw feature: a required feature as the
  schema types it; an optional one where "missing" can be said: a float
  (NaN: missing) for a number, a string ("": missing) for text."""
  if isinstance(spec, tf.io.FixedLenFeature) or spec.dtype == tf.string:
    return tf.TensorSpec(shape=[None], dtype=spec.dtype)
  return tf.TensorSpec(
    shape=[None], dtype=(tf.float64 if spec.dtype.is_integer else spec.dtype)
  )


def _raw_feature(value: tf.Tensor, spec) -> Union[tf.Tensor, tf.SparseTensor]:
  """One serving_raw input as tf.io.parse_example would have parsed it: a
  required feature [batch] + its shape; an optional one a SparseTensor
  holding the values that are present."""
  if isinstance(spec, tf.io.FixedLenFeature):
    return tf.reshape(value, [-1] + list(spec.shape))
  present = (
    tf.not_equal(tf.strings.strip(value), '')
    if value.dtype == tf.string
    else tf.logical_not(tf.math.is_nan(value))
  )
  rows = tf.where(present)
  return tf.SparseTensor(
    indices=tf.concat([rows, tf.zeros_like(rows)], axis=1),
    values=tf.cast(tf.gather_nd(value, rows), spec.dtype),
    dense_shape=tf.stack(
      [tf.shape(value, out_type=tf.int64)[0], tf.constant(1, tf.int64)]
    ),
  )


def _serve_raw(
  predict: Callable[[Dict[str, Any]], Dict[str, tf.Tensor]],
  raw_spec: Mapping[str, Any],
) -> tf.types.experimental.ConcreteFunction:
  """serving_raw (`serving_signatures`): one [batch] input per raw feature
  (`_raw_input_spec`), parsed as tf.Examples would be, then `predict`."""

  def serve_raw(features):
    return predict(
      {
        name: _raw_feature(value, raw_spec[name])
        for name, value in features.items()
      }
    )

  serve_raw = tf.function(
    serve_raw,
    autograph=False,
    input_signature=[
      {
        name: tf.TensorSpec(
          shape=[None], dtype=_raw_input_spec(spec).dtype, name=name
        )
        for name, spec in raw_spec.items()
      }
    ],
  )
  return serve_raw.get_concrete_function()


def serving_signatures(
  model: keras.Model,
  training_data: data_lib.TrainingData,
  decision_threshold: float = 0.5,
) -> Dict[str, tf.types.experimental.ConcreteFunction]:
  """The exported model's signatures, each applying the Transform graph.

  serving_default and serving_raw take the model's raw features only (not
  the label, nor excluded or unused columns) and answer what the task
  serves (modules/tasks.py): {'probability': [batch, 1], 'class_id':
  [batch]} (1 from `decision_threshold`) for a binary label,
  {'probabilities': [batch, classes], 'class_id': [batch]} for more
  classes, with a STRING label also 'class_name', the predicted class's
  name; {'prediction': [batch, 1]} for regression, on the label's scale.

  - serving_default: `examples`, serialized tf.Examples (an optional feature
    may be left out); what TF Serving clients usually send.
  - serving_raw: one [batch] input per raw feature, so a client can send
    plain values (JSON numbers and strings through TF Serving's REST API).
    An optional feature is left out of a row as NaN (a number) or "" (text);
    its value is then imputed as in training.
  - transform_features: serialized tf.Examples with the label, to the
    transformed features and label; TFMA evaluates through it.
  """
  transform_output = training_data.transform_output
  model.tft_layer = transform_output.transform_features_layer()
  full_spec = transform_output.raw_feature_spec()
  raw_spec = {k: full_spec[k] for k in training_data.features.keys}
  predict = _predictor(model, training_data, decision_threshold)
  return {
    'serving_default': _serve_examples(predict, raw_spec),
    RAW_SIGNATURE: _serve_raw(predict, raw_spec),
    TRANSFORM_FEATURES_SIGNATURE: _transform_features(model, full_spec),
  }


def _predictor(
  model: keras.Model,
  training_data: data_lib.TrainingData,
  decision_threshold: float,
) -> Callable[[Dict[str, Any]], Dict[str, tf.Tensor]]:
  """Raw features (as tf.io.parse_example gives them) to what the task
  serves, through the model's Transform layer (`serving_signatures`)."""
  input_names = list(model.input_names)
  task = training_data.task
  names = training_data.class_names() if task.classifies else None
  label_scale = (
    training_data.label_scale() if task.standardises_label else (0.0, 1.0)
  )

  def predict(raw):
    transformed = model.tft_layer(raw)
    output = model({k: transformed[k] for k in input_names})
    return task.serving_outputs(output, names, decision_threshold, label_scale)

  return predict


# AutoGraph off in the signatures: they branch on Python values only, and
# converting the Transform layer's code costs seconds per export.


def _serve_examples(
  predict: Callable[[Dict[str, Any]], Dict[str, tf.Tensor]],
  raw_spec: Mapping[str, Any],
) -> tf.types.experimental.ConcreteFunction:
  """serving_default (`serving_signatures`): serialized tf.Examples, parsed
  with the raw features' spec, then `predict`."""

  @tf.function(
    autograph=False,
    input_signature=[
      tf.TensorSpec(shape=[None], dtype=tf.string, name='examples')
    ],
  )
  def serve_tf_examples(serialized):
    return predict(tf.io.parse_example(serialized, raw_spec))

  return serve_tf_examples.get_concrete_function()


def _transform_features(
  model: keras.Model, full_spec: Mapping[str, Any]
) -> tf.types.experimental.ConcreteFunction:
  """transform_features (`serving_signatures`): serialized tf.Examples with
  the label, through the model's Transform layer."""

  @tf.function(
    autograph=False,
    input_signature=[
      tf.TensorSpec(shape=[None], dtype=tf.string, name='examples')
    ],
  )
  def transform_features(serialized):
    return model.tft_layer(tf.io.parse_example(serialized, full_spec))

  return transform_features.get_concrete_function()


class EpochProgress(keras.callbacks.Callback):
  """Says each epoch's end (epoch i of N, the monitored metric) on
  PROGRESS_LOGGER, for the local runner's progress line."""

  def __init__(self, epochs: int, monitor: str):
    super().__init__()
    self._epochs = epochs
    self._monitor = monitor
    self._logger = logging.getLogger(PROGRESS_LOGGER)

  def on_epoch_end(self, epoch, logs=None):
    value = (logs or {}).get(self._monitor)
    detail = f'epoch {epoch + 1} of {self._epochs}'
    if value is not None:
      detail += f', {self._monitor} {value:.4f}'
    self._logger.info(detail, extra={'step': epoch + 1, 'steps': self._epochs})


def _stopping_record(
  callback: keras.callbacks.EarlyStopping, metrics: Dict[str, List[float]]
) -> Dict[str, Any]:
  """Where early stopping stopped (1-based epochs) and which epoch's
  weights it kept."""
  values = metrics.get(callback.monitor, [])
  best = min if callback.monitor_op(0, 1) else max  # np.less: lower is better
  return {
    'monitor': callback.monitor,
    'patience': callback.patience,
    'stopped': bool(callback.stopped_epoch),
    'stopped_after_epoch': (
      callback.stopped_epoch + 1 if callback.stopped_epoch else None
    ),
    'best_epoch': values.index(best(values)) + 1 if values else None,
    'restored_best_weights': callback.restore_best_weights,
  }


def training_record(
  history: keras.callbacks.History,
  config: TrainerConfig,
  callbacks,
  schedule: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
  """What training did, for the run report: every epoch's metrics (train
  and validation), the epochs asked for, where early stopping stopped and
  which epoch's weights it kept, and a fine-tuning `schedule`
  (finetune.Finetuner.schedule)."""
  metrics = {
    key: [float(v) for v in values] for key, values in history.history.items()
  }
  stopping = [
    c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)
  ]
  return {
    'epochs_asked': config.training.epochs,
    'epochs_run': len(history.epoch),
    'metrics': metrics,
    'early_stopping': (
      _stopping_record(stopping[0], metrics) if stopping else None
    ),
    'finetune': schedule,
  }


def eval_predictions(
  model: keras.Model,
  training_data: data_lib.TrainingData,
  limit: int = PREDICTIONS_SHOWN,
) -> Dict[str, List[float]]:
  """The first `limit` eval rows' labels and predictions, both on the
  label's own scale (the report's predicted-against-actual chart)."""
  labels = training_data.labels('eval')[:limit]
  batches = training_data.eval(256).take(-(-limit // 256))
  predicted = model.predict(batches, verbose=0).reshape(-1)[: len(labels)]
  mean, std = (
    training_data.label_scale()
    if training_data.task.standardises_label
    else (0.0, 1.0)
  )
  return {
    'label': [float(v) for v in labels],
    'prediction': [float(v) * std + mean for v in predicted],
  }


def run_fn(fn_args: FnArgs) -> None:
  """Called by TFX Trainer: trains and exports to fn_args.serving_model_dir.

  Hyperparameters are the Tuner's best when it ran, else the search space's
  defaults. Every visible GPU trains (MirroredStrategy), else the CPU.
  Early stopping restores the best epoch's weights; TensorBoard
  logs go to fn_args.model_run_dir. In finetune mode the base model arrives
  as fn_args.base_model; one that is missing, does not load or does not take
  the transformed features raises finetune.BaseModelError (one line).
  """
  config = TrainerConfig.from_custom_config(fn_args.custom_config)
  require_legacy_keras()
  seed = config.training.seed
  keras.utils.set_random_seed(seed)
  training_data = data_lib.TrainingData(fn_args, config)
  if training_data.task.classifies:
    training_data.class_names()  # every class of the data trains, or stop
  hparams = search_space.resolve(fn_args.hyperparameters, config)
  with distribute.strategy_for([hparams['builder']]).scope():
    model = training_data.new_model(hparams)
  callbacks = _callbacks(fn_args.model_run_dir, config)
  history = model.fit(
    training_data.train(hparams['batch_size'], seed),
    validation_data=training_data.eval(hparams['batch_size']),
    epochs=model_lib.epochs_for(model, config.training.epochs),
    callbacks=callbacks,
    verbose=0,
    class_weight=training_data.class_weight(
      hparams.get('class_weight', 'none')
    ),
  )
  schedule = None
  if isinstance(model, finetune.Finetuner):
    schedule = model.schedule(config.training.epochs)
    model = model.export_model()
  record = training_record(history, config, callbacks, schedule)
  _write_json(fn_args.model_run_dir, HISTORY_FILE, record, indent=1)
  if training_data.task.reports_predictions:
    _write_json(
      fn_args.model_run_dir,
      PREDICTIONS_FILE,
      eval_predictions(model, training_data),
    )
  model.save(
    fn_args.serving_model_dir,
    save_format='tf',
    signatures=serving_signatures(
      model, training_data, config.evaluation.decision_threshold
    ),
  )
  _write_json(
    fn_args.model_run_dir, HPARAMS_FILE, hparams, indent=2, sort_keys=True
  )


def _callbacks(
  model_run_dir: str, config: TrainerConfig
) -> List[keras.callbacks.Callback]:
  """run_fn's callbacks: TensorBoard logs in `model_run_dir`, early
  stopping (restoring the best epoch's weights) where configured, and each
  epoch's progress on the metric early stopping watches (else val_loss)."""
  callbacks = [
    keras.callbacks.TensorBoard(log_dir=model_run_dir, update_freq='epoch')
  ]
  callbacks += model_lib.early_stopping(
    config.training.early_stopping, restore_best_weights=True
  )
  callbacks.append(
    EpochProgress(
      config.training.epochs,
      (
        config.training.early_stopping.monitor
        if config.training.early_stopping
        else 'val_loss'
      ),
    )
  )
  return callbacks


def _write_json(directory: str, name: str, value: Any, **dump_args) -> None:
  """Writes `value` as JSON to `directory`/`name` (any tf.io.gfile path)."""
  with tf.io.gfile.GFile(os.path.join(directory, name), 'w') as f:
    json.dump(value, f, **dump_args)
