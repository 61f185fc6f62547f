"""The pipeline definition: a pure function of a validated spec.

`create_pipeline(spec, env)` wires ExampleGen (the project's CsvExampleGen
for data.csv, TFX's ImportExampleGen for data.tfrecord) -> StatisticsGen ->
ImportSchemaGen -> ExampleValidator -> AnomaliesGate -> Transform -> Tuner ->
Trainer -> baseline -> Evaluator -> Pusher. When fine-tuning, an Importer
brings the base model (which the runner located) into ML Metadata and feeds
the Tuner's and Trainer's `base_model`. It reads no environment and touches
no files: everything runner-specific arrives in `env`.

The baseline (the last blessed model) and a base model found by pipeline
name are resolved in one of three ways (`Environment.baseline`), because
not every orchestrator runs Resolver nodes:
- 'local': a Resolver over ML Metadata (components/baseline.py);
- 'vertex': TFX's LatestBlessedModelStrategy Resolver, which Vertex AI
  Pipelines executes;
- 'pushed': components/pushed_model.py reads the push destination, for
  open-source Kubeflow Pipelines, which cannot execute Resolvers.
"""

import dataclasses
import os
from typing import Any, Dict, List, Optional, Tuple

from tfx.components import (
  ExampleValidator,
  ImportExampleGen,
  SchemaGen,
  StatisticsGen,
  Trainer,
  Transform,
)
from tfx.components.schema_gen.import_schema_gen.component import (
  ImportSchemaGen,
)
from tfx.dsl.components.common.importer import Importer
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
  LatestBlessedModelStrategy,
)
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, trainer_pb2, tuner_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from components import csv_example_gen, csv_format, pushed_model
from components import evaluator as evaluator_lib
from components import pusher as pusher_lib
from components import tuner as tuner_component
from components.anomalies_gate import AnomaliesGate
from components.baseline import baseline_resolver
from modules.config import (
  TrainerConfig,
  TransformConfig,
  TunerConfig,
  TunerSpec,
)
from pipeline.definition.evaluation import eval_config
from pipeline.definition.spec import PipelineSpec, TimeSplit, tuner_worker_ids

PREPROCESSING_FN = 'modules.preprocessing.preprocessing_fn'
TUNER_FN = 'modules.tuner.tuner_fn'
RUN_FN = 'modules.train.run_fn'
BASE_MODEL_IMPORTER = 'base_model_importer'
ENCODER_IMPORTER = 'encoder_importer'
BASE_MODEL_FINDER = 'base_model_finder'
BASELINE_FINDER = 'baseline_model_finder'
BASELINE_RESOLVER = 'baseline_model_resolver'
BASELINES = ('local', 'vertex', 'pushed')
TUNER_MEETINGS = 'tuner-meetings'  # under the pipeline root; a folder per run


@dataclasses.dataclass(frozen=True)
class Environment:
  """Where and how a pipeline runs; built by a runner, not by the spec."""

  pipeline_root: str
  metadata_connection_config: Optional[Any] = None
  beam_pipeline_args: List[str] = dataclasses.field(default_factory=list)
  enable_cache: bool = True
  # Fingerprints of the module code. Components take module code by import
  # path, which TFX does not fingerprint; putting these in custom_config makes
  # a code change invalidate the cache of the components that run it.
  code_version: str = ''  # all of modules/: Tuner and Trainer
  transform_code_version: str = ''  # what preprocessing_fn runs: Transform
  # Fine-tuning only: the base model's URI, located by the runner (a path
  # from the spec, or a pipeline's latest blessed model). Imported with
  # reimport=False, so a model already in ML Metadata keeps its artifact id
  # and the lineage runs on into the pipeline that trained it.
  base_model_uri: Optional[str] = None
  # Fine-tuning on Kubeflow from a pipeline's last pushed model: that
  # pipeline's push base (<destination>/<model name>); a PushedModel node
  # copies its newest version. Exclusive with base_model_uri.
  base_model_push_base: Optional[str] = None
  # How the Evaluator's baseline is found (module docstring).
  baseline: str = 'local'
  # Kubeflow only: node id -> KFP ResourceSpec proto (with_platform_config).
  platform_configs: Dict[str, Any] = dataclasses.field(default_factory=dict)
  # Kubeflow only: parallel trials run in pods, the Tuner's and those of
  # its TunerWorker nodes (spec.tuner_worker_ids), which meet under the
  # pipeline root; locally they are processes inside the Tuner.
  tuner_pods: bool = False
  # Each CSV column's kind (INT, FLOAT, STRING) as the runner found it
  # (declared by the schema, or inferred from the data); ExampleGen infers
  # the columns not listed.
  column_kinds: Dict[str, str] = dataclasses.field(default_factory=dict)


def _model_importer(uri: str, node_id: str) -> Importer:
  """A model (a base model, a pretrained encoder) into ML Metadata. With
  reimport=False a model already there keeps its artifact id, so lineage
  runs on into the pipeline that made it."""
  return Importer(
    source_uri=uri, artifact_type=standard_artifacts.Model, reimport=False
  ).with_id(node_id)


def _tune_args(tuner: TunerSpec) -> Optional[tuner_pb2.TuneArgs]:
  """TuneArgs for parallel trials (components/tuner.py reads them); none
  for one at a time, TFX's default."""
  if tuner.parallel_trials == 1:
    return None
  asked = tuner.parallel_trials  # a number, or 'auto'
  return tuner_pb2.TuneArgs(
    num_parallel_trials=(
      asked if isinstance(asked, int) else tuner_component.AUTO
    )
  )


def _callback(
  spec: PipelineSpec, function: str, project_path: str
) -> Dict[str, str]:
  """The component argument naming `function`: the spec's module file when
  it defines it (TFX packages that file for the component), else the
  project's by import path."""
  if spec.uses_module_file(function):
    return {'module_file': spec.module_file}
  return {function: project_path}


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
    **_callback(spec, 'preprocessing_fn', PREPROCESSING_FN),
  )
  transform.add_upstream_node(gate)
  return schema_gen, example_validator, gate, transform


def _base_model_source(
  spec: PipelineSpec, env: Environment
) -> Tuple[Optional[Any], Optional[Any]]:
  """The node that brings the Tuner's and the Trainer's base model, and
  its output; (None, None) when they start from no model file."""
  if spec.model.pretrained():
    # The pretrained encoder (model.encoders) reaches the Tuner and the
    # Trainer as their base model: an artifact in ML Metadata, so that
    # lineage runs from a pushed model to the encoder it was tuned from.
    # None for Keras's imagenet download, which has no file yet.
    if not env.base_model_uri:
      return None, None
    source = _model_importer(env.base_model_uri, ENCODER_IMPORTER)
    return source, source.outputs['result']
  if spec.training.mode != 'finetune':
    return None, None
  if bool(env.base_model_uri) == bool(env.base_model_push_base):
    raise ValueError(
      'training.mode is finetune: the runner must locate the '
      'base model (Environment.base_model_uri or '
      'base_model_push_base, exactly one)'
    )
  if env.base_model_uri:
    source = _model_importer(env.base_model_uri, BASE_MODEL_IMPORTER)
    return source, source.outputs['result']
  source = pushed_model.PushedModel(
    push_base=env.base_model_push_base, required=1
  ).with_id(BASE_MODEL_FINDER)
  return source, source.outputs['model']


def _tuner_nodes(
  spec: PipelineSpec, env: Environment, training_inputs: Dict[str, Any]
) -> List[Any]:
  """The Tuner, and the TunerWorker pods it meets under the pipeline root
  (Environment.tuner_pods)."""
  tuner_args = dict(
    custom_config=spec.module_config(
      TunerConfig, env.code_version
    ).to_custom_config(),
    tune_args=_tune_args(spec.tuner),
    **_callback(spec, 'tuner_fn', TUNER_FN),
    **training_inputs,
  )
  workers = tuner_worker_ids(spec) if env.tuner_pods else []
  if workers:
    tuner_args.update(
      meeting_root=f'{env.pipeline_root}/{TUNER_MEETINGS}',
      run_id=tuner_component.RUN_ID,
    )
  tuner = tuner_component.Tuner(**tuner_args)
  return [tuner] + [
    tuner_component.TunerWorker(tuner, worker=number).with_id(node_id)
    for number, node_id in enumerate(workers, start=1)
  ]


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


def _training_inputs(
  spec: PipelineSpec, schema_gen, transform, base_model
) -> Dict[str, Any]:
  """What the Tuner and the Trainer both read."""
  return dict(
    examples=transform.outputs['transformed_examples'],
    transform_graph=transform.outputs['transform_graph'],
    schema=schema_gen.outputs['schema'],
    base_model=base_model,
    train_args=trainer_pb2.TrainArgs(
      splits=['train'], num_steps=spec.training.train_steps
    ),
    eval_args=trainer_pb2.EvalArgs(
      splits=['eval'], num_steps=spec.training.eval_steps
    ),
  )


def _training_nodes(
  spec: PipelineSpec, env: Environment, training_inputs: Dict[str, Any]
) -> Tuple[List[Any], Any]:
  """The tuning nodes (none when the Tuner is off) and the Trainer, which
  takes the Tuner's best hyperparameters."""
  tuner_nodes, hyperparameters = [], None
  if spec.tuner.enabled:
    tuner_nodes = _tuner_nodes(spec, env, training_inputs)
    hyperparameters = tuner_nodes[0].outputs['best_hyperparameters']
  trainer = Trainer(
    hyperparameters=hyperparameters,
    custom_config=spec.module_config(
      TrainerConfig, env.code_version
    ).to_custom_config(),
    **_callback(spec, 'run_fn', RUN_FN),
    **training_inputs,
  )
  return tuner_nodes, trainer


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
  source, base_model = _base_model_source(spec, env)
  if source is not None:
    components.append(source)
  tuner_nodes, trainer = _training_nodes(
    spec, env, _training_inputs(spec, schema_gen, transform, base_model)
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
