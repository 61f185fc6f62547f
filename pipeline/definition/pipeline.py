"""The pipeline definition: a pure function of a validated spec.

`create_pipeline(spec, env)` wires ExampleGen (the project's CsvExampleGen
for data.csv, TFX's ImportExampleGen for data.tfrecord) -> StatisticsGen ->
ImportSchemaGen -> ExampleValidator -> AnomaliesGate -> Transform -> Tuner ->
Trainer -> baseline -> Evaluator -> Pusher. When fine-tuning, an Importer
brings the base model (which the runner located) into ML Metadata and feeds
the Tuner's and Trainer's `base_model`. It reads no environment and touches
no files: everything runner-specific arrives in `env` (an `Environment`,
environment.py). training_nodes.py builds the Tuner and Trainer nodes and
the base model's source; the rest is wired here.

The baseline (the last blessed model) and a base model found by pipeline
name are resolved in one of three ways (`Environment.baseline`), because
not every orchestrator runs Resolver nodes:
- 'local': a Resolver over ML Metadata (components/baseline.py);
- 'vertex': TFX's LatestBlessedModelStrategy Resolver, which Vertex AI
  Pipelines executes;
- 'pushed': components/pushed_model.py reads the push destination, for
  open-source Kubeflow Pipelines, which cannot execute Resolvers.
"""

import os
from typing import Any, List, Tuple

from tfx.components import (
  ExampleValidator,
  ImportExampleGen,
  SchemaGen,
  StatisticsGen,
  Transform,
)
from tfx.components.schema_gen.import_schema_gen.component import (
  ImportSchemaGen,
)
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
  LatestBlessedModelStrategy,
)
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2, pusher_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from components import csv_example_gen, csv_format, pushed_model
from components import evaluator as evaluator_lib
from components import pusher as pusher_lib
from components.anomalies_gate import AnomaliesGate
from components.baseline import baseline_resolver
from modules.config import TransformConfig
from pipeline.definition import training_nodes
from pipeline.definition.environment import Environment
from pipeline.definition.evaluation import eval_config
from pipeline.definition.spec import PipelineSpec, TimeSplit
from pipeline.definition.training_nodes import (
  BASE_MODEL_FINDER,
  BASE_MODEL_IMPORTER,
  ENCODER_IMPORTER,
  RUN_FN,
  TUNER_FN,
  TUNER_MEETINGS,
)

# What the runners, the Kubeflow runner and the tests read from here; the
# node ids and callbacks of the Tuner and Trainer are training_nodes.py's.
__all__ = [
  'BASE_MODEL_FINDER',
  'BASE_MODEL_IMPORTER',
  'BASELINE_FINDER',
  'BASELINE_RESOLVER',
  'BASELINES',
  'ENCODER_IMPORTER',
  'PREPROCESSING_FN',
  'RUN_FN',
  'TUNER_FN',
  'TUNER_MEETINGS',
  'Environment',
  'create_pipeline',
  'create_schema_pipeline',
  'push_base_directory',
]

PREPROCESSING_FN = 'modules.preprocessing.preprocessing_fn'
BASELINE_FINDER = 'baseline_model_finder'
BASELINE_RESOLVER = 'baseline_model_resolver'
BASELINES = ('local', 'vertex', 'pushed')


def push_base_directory(spec: PipelineSpec) -> str:
  """TF Serving's model base path: <destination>/<model name>."""
  return os.path.join(spec.push.destination, spec.push.model_name)


def _baseline(spec: PipelineSpec, env: Environment, candidate):
  """The node whose outputs['model'] is the Evaluator's baseline, and the
  Evaluator class that reads it."""
  if env.baseline == 'pushed':
    finder = pushed_model.PushedModel(
      push_base=push_base_directory(spec), required=0, candidate=candidate
    ).with_id(BASELINE_FINDER)
    return finder, pushed_model.Evaluator
  if env.baseline == 'vertex':
    resolver = Resolver(
      strategy_class=LatestBlessedModelStrategy,
      model=Channel(type=standard_artifacts.Model),
      model_blessing=Channel(type=standard_artifacts.ModelBlessing),
    ).with_id(BASELINE_RESOLVER)
    return resolver, evaluator_lib.Evaluator
  return baseline_resolver(candidate), evaluator_lib.Evaluator


def _data_nodes(spec: PipelineSpec, env: Environment):
  """ExampleGen and StatisticsGen: the same nodes (so the same cache keys)
  in the full pipeline and in the schema-inference pipeline."""
  # The data is a folder of files, or one file (read as its folder with a
  # pattern naming just that file).
  data = spec.data
  input_base, input_config = data.path, None
  if data.single_file:
    input_base, pattern = os.path.split(data.path)
    input_config = example_gen_pb2.Input(
      splits=[example_gen_pb2.Input.Split(name='single_split', pattern=pattern)]
    )
  split = data.split
  by_time = isinstance(split, TimeSplit)
  # A time-ordered split still names the two splits; its executor sends
  # rows by `eval_from`, and the buckets here are not used.
  buckets = {'train': 1, 'eval': 1} if by_time else split
  output_config = example_gen_pb2.Output(
    split_config=example_gen_pb2.SplitConfig(
      splits=[
        example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=count)
        for name, count in buckets.items()
      ]
    )
  )
  if data.format == 'tfrecord':
    # tf.Examples as they are: TFX's own ExampleGen, hash-split the same
    # way (a time split is refused for TFRecords by the spec).
    example_gen = ImportExampleGen(
      input_base=input_base,
      input_config=input_config,
      output_config=output_config,
    )
  else:
    example_gen = csv_example_gen.CsvExampleGen(
      csv_format.CsvFormat(
        null_values=tuple(data.null_values),
        columns=env.column_kinds,
        files=tuple(spec.features.image),
        split_by=split.by if by_time else None,
        eval_from=split.value if by_time else None,
      ),
      input_base=input_base,
      input_config=input_config,
      output_config=output_config,
    )
  example_gen = example_gen.with_id(data.example_gen_id)
  statistics_gen = StatisticsGen(examples=example_gen.outputs['examples'])
  return example_gen, statistics_gen


def _schema_gen(statistics_gen) -> SchemaGen:
  """TFX's SchemaGen, inferring the schema from the statistics."""
  return SchemaGen(
    statistics=statistics_gen.outputs['statistics'], infer_feature_shape=True
  )


def create_schema_pipeline(spec: PipelineSpec, env: Environment) -> Pipeline:
  """ExampleGen -> StatisticsGen -> SchemaGen: what `python -m pipeline
  schema` runs to infer a schema from the data (TFX's infer-then-curate).
  A later run of the full pipeline with the same data reuses the first two
  from the cache."""
  example_gen, statistics_gen = _data_nodes(spec, env)
  return Pipeline(
    pipeline_name=spec.name,
    pipeline_root=env.pipeline_root,
    components=[example_gen, statistics_gen, _schema_gen(statistics_gen)],
    enable_cache=env.enable_cache,
    metadata_connection_config=env.metadata_connection_config,
    beam_pipeline_args=list(env.beam_pipeline_args),
  )


def _validated_transform(
  spec: PipelineSpec, env: Environment, example_gen, statistics_gen
) -> Tuple[Any, Any, Any, Any]:
  """SchemaGen (the spec's schema, or one inferred), ExampleValidator, the
  gate on its anomalies and Transform, which runs only past the gate."""
  if spec.schema_file:
    schema_gen = ImportSchemaGen(schema_file=spec.schema_file)
  else:  # TFX's infer-then-curate: `python -m pipeline schema` writes it
    schema_gen = _schema_gen(statistics_gen)
  example_validator = ExampleValidator(
    statistics=statistics_gen.outputs['statistics'],
    schema=schema_gen.outputs['schema'],
  )
  gate = AnomaliesGate(anomalies=example_validator.outputs['anomalies'])
  # Each component gets the typed config of what it reads, so that (through
  # the cache key) changing, say, the training epochs does not re-run
  # Transform.
  transform = Transform(
    examples=example_gen.outputs['examples'],
    schema=schema_gen.outputs['schema'],
    custom_config=spec.module_config(
      TransformConfig, env.transform_code_version
    ).to_custom_config(),
    disable_statistics=not spec.preprocessing.statistics,
    **training_nodes.callback(spec, 'preprocessing_fn', PREPROCESSING_FN),
  )
  transform.add_upstream_node(gate)
  return schema_gen, example_validator, gate, transform


def _blessed_push(
  spec: PipelineSpec, env: Environment, example_gen, trainer
) -> List[Any]:
  """The baseline, the Evaluator that blesses the trained model against it,
  and the Pusher of a blessed model."""
  baseline, evaluator_class = _baseline(spec, env, trainer.outputs['model'])
  evaluator = evaluator_class(
    examples=example_gen.outputs['examples'],
    model=trainer.outputs['model'],
    baseline_model=baseline.outputs['model'],
    eval_config=eval_config(spec),
  ).with_id('Evaluator')
  pusher = pusher_lib.Pusher(
    model=trainer.outputs['model'],
    model_blessing=evaluator.outputs['blessing'],
    push_destination=pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(
        base_directory=push_base_directory(spec)
      )
    ),
  )
  return [baseline, evaluator, pusher]


def create_pipeline(spec: PipelineSpec, env: Environment) -> Pipeline:
  """Builds the TFX pipeline for `spec` in `env`.

  Args:
    spec: a validated pipeline spec (pipeline.definition.spec.load_spec).
    env: runner-specific settings (pipeline root, metadata, Beam args).

  Returns:
    A Pipeline, ready for LocalDagRunner or a Kubeflow compiler.
  """
  if not spec.is_resolved:
    raise ValueError(
      f'{spec.source}: the task, its classes or the features are not known '
      'yet: resolve the spec against the data first '
      '(pipeline.runners.preflight.run_preflight)'
    )
  example_gen, statistics_gen = _data_nodes(spec, env)
  schema_gen, example_validator, gate, transform = _validated_transform(
    spec, env, example_gen, statistics_gen
  )
  components = [
    example_gen,
    statistics_gen,
    schema_gen,
    example_validator,
    gate,
    transform,
  ]
  if env.baseline not in BASELINES:
    raise ValueError(
      f'Environment.baseline must be one of {BASELINES}, got {env.baseline!r}'
    )
  source, base_model = training_nodes.base_model_source(spec, env)
  if source is not None:
    components.append(source)
  tuner_nodes, trainer = training_nodes.tuner_and_trainer(
    spec, env, training_nodes.inputs(spec, schema_gen, transform, base_model)
  )
  components += tuner_nodes + [trainer]
  components += _blessed_push(spec, env, example_gen, trainer)
  for node in components:
    if node.id in env.platform_configs:
      node.with_platform_config(env.platform_configs[node.id])
  return Pipeline(
    pipeline_name=spec.name,
    pipeline_root=env.pipeline_root,
    components=components,
    enable_cache=env.enable_cache,
    metadata_connection_config=env.metadata_connection_config,
    beam_pipeline_args=list(env.beam_pipeline_args),
  )
