"""The Tuner and Trainer nodes of the pipeline (pipeline.py wires them).

What both read (`inputs`), the node that brings their base model (an
Importer, or a PushedModel on Kubeflow; `base_model_source`), and the
Tuner with its TunerWorker pods followed by the Trainer
(`tuner_and_trainer`). `callback` names a component's module function,
the Transform's too.
"""

from typing import Any, Dict, List, Optional, Tuple

from tfx.components import Trainer
from tfx.dsl.components.common.importer import Importer
from tfx.proto import trainer_pb2, tuner_pb2
from tfx.types import standard_artifacts

from components import pushed_model
from components import tuner as tuner_component
from modules.config import TrainerConfig, TunerConfig, TunerSpec
from pipeline.definition.environment import Environment
from pipeline.definition.spec import PipelineSpec, tuner_worker_ids

TUNER_FN = 'modules.tuner.tuner_fn'
RUN_FN = 'modules.train.run_fn'
BASE_MODEL_IMPORTER = 'base_model_importer'
ENCODER_IMPORTER = 'encoder_importer'
BASE_MODEL_FINDER = 'base_model_finder'
TUNER_MEETINGS = 'tuner-meetings'  # under the pipeline root; a folder per run


def callback(
  spec: PipelineSpec, function: str, project_path: str
) -> Dict[str, str]:
  """The component argument naming `function`: the spec's module file when
  it defines it (TFX packages that file for the component), else the
  project's by import path."""
  if spec.uses_module_file(function):
    return {'module_file': spec.module_file}
  return {function: project_path}


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


def base_model_source(
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
    **callback(spec, 'tuner_fn', TUNER_FN),
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


def inputs(
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


def tuner_and_trainer(
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
    **callback(spec, 'run_fn', RUN_FN),
    **training_inputs,
  )
  return tuner_nodes, trainer
