"""A TFX module file for the breast-cancer data, in the style of TFX 1.16's
tfx/examples/penguin/penguin_utils_keras.py: the same structure (a z-score
preprocessing_fn, a RandomSearch tuner_fn over a learning rate and a layer
count, a run_fn training by steps, serving and transform_features
signatures), written for this data. benchmarks/plain_tfx_benchmark.py runs it
through TFX's own penguin pipeline definition, the baseline "a plain TFX
pipeline doing the same job" of issue 16.

TFX's penguin pipeline evaluates the label `species_xf`; the transformed
label carries that name here so the pipeline runs unchanged.
"""

from typing import List

import keras_tuner
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow import keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

FEATURE_KEYS = [
  'mean_radius',
  'mean_texture',
  'mean_perimeter',
  'mean_area',
  'mean_smoothness',
  'mean_compactness',
  'mean_concavity',
  'mean_concave_points',
  'mean_symmetry',
  'mean_fractal_dimension',
  'radius_error',
  'texture_error',
  'perimeter_error',
  'area_error',
  'smoothness_error',
  'compactness_error',
  'concavity_error',
  'concave_points_error',
  'symmetry_error',
  'fractal_dimension_error',
  'worst_radius',
  'worst_texture',
  'worst_perimeter',
  'worst_area',
  'worst_smoothness',
  'worst_compactness',
  'worst_concavity',
  'worst_concave_points',
  'worst_symmetry',
  'worst_fractal_dimension',
]
LABEL_KEY = 'diagnosis'
TRANSFORMED_LABEL = 'species_xf'  # the name TFX's penguin eval config reads
TRAIN_BATCH_SIZE = 20
EVAL_BATCH_SIZE = 10


def transformed_name(key: str) -> str:
  return key + '_xf'


def preprocessing_fn(inputs):
  """z-scores every feature; passes the label through."""
  outputs = {
    transformed_name(k): tft.scale_to_z_score(inputs[k]) for k in FEATURE_KEYS
  }
  outputs[TRANSFORMED_LABEL] = inputs[LABEL_KEY]
  return outputs


def _input_fn(
  file_pattern: List[str],
  data_accessor: tfx.components.DataAccessor,
  transform_output: tft.TFTransformOutput,
  batch_size: int,
) -> tf.data.Dataset:
  return data_accessor.tf_dataset_factory(
    file_pattern,
    tfxio.TensorFlowDatasetOptions(
      batch_size=batch_size, label_key=TRANSFORMED_LABEL
    ),
    transform_output.transformed_metadata.schema,
  ).repeat()


def _hyperparameters() -> keras_tuner.HyperParameters:
  hp = keras_tuner.HyperParameters()
  hp.Choice('learning_rate', [1e-2, 1e-3], default=1e-2)
  hp.Int('num_layers', 1, 3, default=2)
  return hp


def _make_keras_model(hparams: keras_tuner.HyperParameters) -> keras.Model:
  inputs = [
    keras.layers.Input(shape=(1,), name=transformed_name(k))
    for k in FEATURE_KEYS
  ]
  d = keras.layers.concatenate(inputs)
  for _ in range(int(hparams.get('num_layers'))):
    d = keras.layers.Dense(8, activation='relu')(d)
  outputs = keras.layers.Dense(2)(d)
  model = keras.Model(inputs=inputs, outputs=outputs)
  model.compile(
    optimizer=keras.optimizers.Adam(hparams.get('learning_rate')),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=[keras.metrics.SparseCategoricalAccuracy()],
  )
  return model


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
  tuner = keras_tuner.RandomSearch(
    _make_keras_model,
    max_trials=6,
    hyperparameters=_hyperparameters(),
    allow_new_entries=False,
    objective=keras_tuner.Objective('val_sparse_categorical_accuracy', 'max'),
    directory=fn_args.working_dir,
    project_name='breast_cancer_tuning',
  )
  transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  return tfx.components.TunerFnResult(
    tuner=tuner,
    fit_kwargs={
      'x': _input_fn(
        fn_args.train_files,
        fn_args.data_accessor,
        transform_output,
        TRAIN_BATCH_SIZE,
      ),
      'validation_data': _input_fn(
        fn_args.eval_files,
        fn_args.data_accessor,
        transform_output,
        EVAL_BATCH_SIZE,
      ),
      'steps_per_epoch': fn_args.train_steps,
      'validation_steps': fn_args.eval_steps,
    },
  )


def _signatures(model, transform_output: tft.TFTransformOutput):
  model.tft_layer = transform_output.transform_features_layer()

  @tf.function(
    input_signature=[tf.TensorSpec([None], tf.string, name='examples')]
  )
  def serve(serialized):
    spec = transform_output.raw_feature_spec()
    spec.pop(LABEL_KEY)
    return {
      'outputs': model(model.tft_layer(tf.io.parse_example(serialized, spec)))
    }

  @tf.function(
    input_signature=[tf.TensorSpec([None], tf.string, name='examples')]
  )
  def transform_features(serialized):
    return model.tft_layer(
      tf.io.parse_example(serialized, transform_output.raw_feature_spec())
    )

  return {'serving_default': serve, 'transform_features': transform_features}


def run_fn(fn_args: tfx.components.FnArgs):
  transform_output = tft.TFTransformOutput(fn_args.transform_output)
  hparams = (
    keras_tuner.HyperParameters.from_config(fn_args.hyperparameters)
    if fn_args.hyperparameters
    else _hyperparameters()
  )
  model = _make_keras_model(hparams)
  model.fit(
    _input_fn(
      fn_args.train_files,
      fn_args.data_accessor,
      transform_output,
      TRAIN_BATCH_SIZE,
    ),
    steps_per_epoch=fn_args.train_steps,
    validation_data=_input_fn(
      fn_args.eval_files,
      fn_args.data_accessor,
      transform_output,
      EVAL_BATCH_SIZE,
    ),
    validation_steps=fn_args.eval_steps,
    callbacks=[
      keras.callbacks.TensorBoard(
        log_dir=fn_args.model_run_dir, update_freq='epoch'
      )
    ],
  )
  tf.saved_model.save(
    model,
    fn_args.serving_model_dir,
    signatures=_signatures(model, transform_output),
  )
