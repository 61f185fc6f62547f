"""run_fn for TFX Trainer: train (from scratch, or fine-tuning the base
model) with the best hyperparameters and export a SavedModel that serves raw,
serialized tf.Examples."""

import json
import os
from typing import Dict

import tensorflow as tf
import tf_keras as keras
from tfx import v1 as tfx

from modules import data as data_lib
from modules import distribute, finetune, search_space
from modules import model as model_lib
from modules.config import TrainerConfig
from modules.tuner import require_legacy_keras

HPARAMS_FILE = 'hyperparameters.json'  # in model_run, beside TensorBoard logs
CLASS_ID = 'class_id'  # multiclass: the most probable class index


RAW_SIGNATURE = 'serving_raw'  # one input per raw feature


def serving_signatures(model: keras.Model, training_data: data_lib.TrainingData
                       ) -> Dict[str, tf.types.experimental.ConcreteFunction]:
  """Two signatures over the same model, both applying the Transform graph
  inside; both answer {'probability': [batch, 1]} for a binary label, else
  {'probabilities': [batch, classes], 'class_id': [batch]}.

  - serving_default: `examples`, serialized tf.Examples of the raw features
    (no label); what TFMA evaluates and TF Serving clients usually send.
  - serving_raw: one [batch] input per raw feature, typed as the schema
    types it, so a client can send plain values (JSON numbers and strings
    through TF Serving's REST API).
  """
  model.tft_layer = training_data.transform_output.transform_features_layer()
  raw_spec = training_data.transform_output.raw_feature_spec()
  raw_spec.pop(training_data.features.label, None)
  input_names = list(model.input_names)
  multiclass = training_data.model_inputs.num_classes > 2

  def predict(raw):
    transformed = model.tft_layer(raw)
    output = model({k: transformed[k] for k in input_names})
    if multiclass:
      return {model_lib.PROBABILITIES: output,
              CLASS_ID: tf.argmax(output, axis=-1)}
    return {model_lib.PROBABILITY: output}

  @tf.function(input_signature=[
      tf.TensorSpec(shape=[None], dtype=tf.string, name='examples')])
  def serve_tf_examples(serialized):
    return predict(tf.io.parse_example(serialized, raw_spec))

  def serve_raw(features):
    # As tf.io.parse_example shapes them: [batch] + the feature's shape.
    return predict({
        name: tf.reshape(value, [-1] + list(raw_spec[name].shape))
        for name, value in features.items()})

  serve_raw = tf.function(serve_raw, input_signature=[{
      name: tf.TensorSpec(shape=[None], dtype=spec.dtype, name=name)
      for name, spec in raw_spec.items()}])
  signatures = {'serving_default': serve_tf_examples.get_concrete_function()}
  # Optional features (VarLenFeature) have no fixed shape to take plain
  # values into; such models serve tf.Examples only.
  if all(isinstance(spec, tf.io.FixedLenFeature) for spec in raw_spec.values()):
    signatures[RAW_SIGNATURE] = serve_raw.get_concrete_function()
  return signatures


def run_fn(fn_args: tfx.components.FnArgs) -> None:
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
  hparams = search_space.resolve(fn_args.hyperparameters,
                                 config.model.search_space, config.training.mode)
  with distribute.strategy().scope():
    model = training_data.new_model(hparams)
  callbacks = [keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir,
                                           update_freq='epoch')]
  callbacks += model_lib.early_stopping(config.training.early_stopping,
                                        restore_best_weights=True)
  model.fit(training_data.train(hparams['batch_size'], seed),
            validation_data=training_data.eval(hparams['batch_size']),
            epochs=config.training.epochs, callbacks=callbacks, verbose=0)
  if isinstance(model, finetune.Finetuner):
    model = model.export_model()
  model.save(fn_args.serving_model_dir, save_format='tf',
             signatures=serving_signatures(model, training_data))
  with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, HPARAMS_FILE),
                         'w') as f:
    json.dump(hparams, f, indent=2, sort_keys=True)
