"""The Kubeflow runner: compiles a spec to a KFP v2 pipeline definition.

Thin, like the local runner: it works out the cluster's settings (from the
spec's `kubeflow` section and flags), refuses what would fail later in the
cluster (one line, KubeflowError), builds the Environment, calls the shared
`create_pipeline` and compiles it with TFX's KubeflowV2DagRunner.

Targets:
- 'kfp' (open-source Kubeflow Pipelines): a YAML PipelineSpec. The baseline
  and a base model found by pipeline name come from the push destination
  (components/pushed_model.py); the compiled spec has no Resolver node, which
  KFP's backend cannot execute. `tuner.parallel_trials` N gives the Tuner
  N - 1 TunerWorker tasks, pods that meet it under the pipeline root.
- 'vertex' (Vertex AI Pipelines): YAML PipelineSpec or JSON PipelineJob;
  the baseline is TFX's LatestBlessedModelStrategy Resolver; parallel
  trials run as processes in the Tuner's task.
"""

import dataclasses
import json
import os
import re
from typing import Any, Dict, List, Optional, Tuple

import yaml
from google.protobuf import json_format

from kubeflow import engines as cluster_engines
from pipeline.definition.spec import (
  GPU_COMPONENTS,
  KUBEFLOW_COMPONENTS,
  PipelineSpec,
  is_uri,
  tuner_worker_ids,
)
from pipeline.engines import registry as engines
from pipeline.errors import PipelineError
from pipeline.paths import write_text
from pipeline.runners.environment import REPO_ROOT, build_environment

# Where kubeflow/Dockerfile puts the project inside the image.
IMAGE_PROJECT_ROOT = '/pipeline'
# Accelerator types each target understands. Open-source KFP sets the
# container limit named by the type; Vertex AI takes its machine names.
ACCELERATORS = {
  'kfp': ('nvidia.com/gpu', 'amd.com/gpu'),
  'vertex': (
    'NVIDIA_TESLA_T4',
    'NVIDIA_TESLA_V100',
    'NVIDIA_TESLA_P100',
    'NVIDIA_TESLA_P4',
    'NVIDIA_TESLA_A100',
    'NVIDIA_A100_80GB',
    'NVIDIA_L4',
    'NVIDIA_H100_80GB',
    'NVIDIA_H100_MEGA_80GB',
    'NVIDIA_H200_141GB',
  ),
}
# Beam runners the Beam-powered components may use, and the args each needs.
BEAM_RUNNERS = {
  'DirectRunner': (),
  'DataflowRunner': ('--project', '--region', '--temp_location'),
  'FlinkRunner': ('--flink_master',),
  'SparkRunner': ('--spark_master_url',),
  'PortableRunner': ('--job_endpoint',),
}
# Nodes that stand in for one another: without a curated schema, SchemaGen
# takes ImportSchemaGen's place (resources.schema_gen applies to either).
NODE_ALIASES = {'ImportSchemaGen': ('SchemaGen',)}
# Targets where tuner.parallel_trials gives Tuner pods (TunerWorker tasks).
TUNER_POD_TARGETS = ('kfp',)
_IMAGE = re.compile(r'^[a-z0-9][a-z0-9._/:@-]*$', re.IGNORECASE)


class KubeflowError(PipelineError):
  """A spec or flag that cannot run on the cluster. One line."""


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
  """Everything the compiled pipeline reads in the cluster, checked."""

  target: str
  image: str
  pipeline_root: str
  data: str
  schema: Optional[str]
  push_destination: str
  beam_args: List[str]
  # The kubeflow.engine the Beam components send their jobs to.
  engine: str = 'direct'
  base_model_uri: Optional[str] = None
  base_model_push_base: Optional[str] = None
  platform_configs: Dict[str, Any] = dataclasses.field(default_factory=dict)
  module_file: Optional[str] = None
  # CSV column kinds found by the pre-flight checks, when the data is local.
  column_kinds: Dict[str, str] = dataclasses.field(default_factory=dict)


def _remote(
  value: Optional[str], key: str, spec: PipelineSpec, example: str
) -> str:
  if not value:
    raise KubeflowError(
      f'{spec.source}: {key}: not set; the cluster needs a '
      f'URI such as {example}'
    )
  if not is_uri(value) or value.startswith('file://'):
    raise KubeflowError(
      f'{spec.source}: {key}: {value} is a local path, which pods cannot '
      f'read; give a URI such as {example}'
    )
  return value.rstrip('/')


# The project folders kubeflow/Dockerfile copies into the image.
IMAGE_FOLDERS = ('pipeline', 'components', 'modules', 'kubeflow', 'schemas')


def _in_image(path: str, key: str, spec: PipelineSpec, where: str) -> str:
  """A project file's path inside the pipeline image."""
  relative = os.path.relpath(path, REPO_ROOT)
  if relative.split(os.sep)[0] not in IMAGE_FOLDERS:
    raise KubeflowError(
      f'{spec.source}: {key}: {path} is not in the pipeline image (it holds '
      f"the project's {', '.join(IMAGE_FOLDERS)} folders); {where}"
    )
  return f'{IMAGE_PROJECT_ROOT}/{relative}'


def _schema(spec: PipelineSpec) -> Optional[str]:
  """kubeflow.schema, a schema URI, the schema's path inside the image, or
  None: SchemaGen infers one in the cluster."""
  if spec.kubeflow.schema_uri:
    return _remote(
      spec.kubeflow.schema_uri,
      'kubeflow.schema',
      spec,
      'gs://bucket/schema.pbtxt',
    )
  if not spec.schema_file or is_uri(spec.schema_file):
    return spec.schema_file
  return _in_image(
    spec.schema_file,
    'schema',
    spec,
    'move it under schemas/ or set kubeflow.schema to a URI',
  )


def _module_file(spec: PipelineSpec) -> Optional[str]:
  """The module file's path inside the image (TFX packages it from there)."""
  if not spec.module_file:
    return None
  return _in_image(
    spec.module_file,
    'module_file',
    spec,
    'move it under modules/ and rebuild the image',
  )


def resolve(spec: PipelineSpec) -> Tuple[PipelineSpec, Dict[str, str]]:
  """The spec resolved against its data, and the CSV column kinds, as the
  local runner would resolve them: the pre-flight checks read the local
  data. A spec whose data is not on this machine must give what the data
  would decide (features.task: regression, or features.num_classes, and
  the features); the ExampleGen then infers the column kinds in the
  cluster. Without the data the default blessing rule has no naive
  baseline: it blesses a model no worse than the last blessed one.

  Raises:
    KubeflowError: the data is not local and the spec leaves something out.
  """
  from pipeline.runners import preflight  # pylint: disable=g-import-not-at-top

  if not is_uri(spec.data.path) and os.path.exists(spec.data.path):
    # Without runner.engine's problem(): it probes this machine's ports for
    # a local master, which has nothing to do with the cluster's engine.
    checked = preflight.run_preflight(spec, check_engine=False)
    return checked.spec, checked.column_kinds
  if not spec.is_resolved:
    raise KubeflowError(
      f'{spec.source}: features: the data ({spec.data.path}) is not read at '
      'compile time, so give what it would decide: features.task: '
      'regression or features.num_classes, and the numeric, categorical or '
      'date features'
    )
  return spec, {}


def _encoder(spec: PipelineSpec) -> Optional[str]:
  """The pretrained encoder's URI for the cluster's Importer: a URI the
  spec gives; None for what the image itself holds (the bundled
  all-MiniLM-L6-v2 and EfficientNet-Lite0 weights, installed from
  requirements-nodeps.txt; the pods resolve them by name) or Keras's
  imagenet download. A local path is refused: pods cannot read it."""
  ((column, encoder),) = spec.model.pretrained().items()
  source, value = encoder.source
  if source == 'keras_application':
    value = encoder.weights or 'imagenet'
  if is_uri(value) or value == 'imagenet' or not value.startswith('/'):
    return value if is_uri(value) else None
  raise KubeflowError(
    f'{spec.source}: model.encoders.{column}.{source}: {value} is a local '
    'path, which pods cannot read; give a URI (gs://...) of the same files'
  )


def _base_model(spec: PipelineSpec):
  """(base_model_uri, base_model_push_base) for the cluster."""
  if spec.model.pretrained():
    return _encoder(spec), None
  if spec.training.mode != 'finetune':
    return None, None
  given, base = spec.kubeflow.base_model, spec.training.base_model
  if given:
    return None, _remote(
      given, 'kubeflow.base_model', spec, 'gs://bucket/serving/model_name'
    )
  if base.path:
    if not is_uri(base.path):
      raise KubeflowError(
        f'{spec.source}: training.base_model.path: {base.path} is a local '
        'path, which pods cannot read; give a URI, or set kubeflow.base_model '
        "to the source pipeline's push base URI"
      )
    return base.path, None
  if base.latest_blessed == spec.name:
    return None, None  # resolved below, from this spec's push destination
  raise KubeflowError(
    f'{spec.source}: training.base_model.latest_blessed: on Kubeflow the '
    f'last blessed model of {base.latest_blessed!r} is read from its push '
    'destination; set kubeflow.base_model to that URI '
    '(<destination>/<model name>)'
  )


def _platform_configs(spec: PipelineSpec, target: str) -> Dict[str, Any]:
  """Node id -> ResourceSpec proto, from kubeflow.resources."""
  resources = dict(spec.kubeflow.resources)
  default = resources.pop('default', None)
  _check_resource_keys(spec, resources, default)
  configs = {}
  for key, node_id in KUBEFLOW_COMPONENTS.items():
    if key == 'example_gen':  # the one of the data's format
      node_id = spec.data.example_gen_id
    res = resources.get(key, default)
    if res is None:
      continue
    config = _resource_spec(spec, key, res, target)
    configs[node_id] = config
    for alias in NODE_ALIASES.get(node_id, ()):
      configs[alias] = config
  if 'Tuner' in configs:  # each Tuner pod runs trials as the Tuner does
    for node_id in _tuner_workers(spec, target):
      configs[node_id] = configs['Tuner']
  return configs


def _check_resource_keys(
  spec: PipelineSpec, resources: Dict[str, Any], default
) -> None:
  """kubeflow.resources names known components, and its default asks for
  no GPU."""
  allowed = sorted(KUBEFLOW_COMPONENTS) + ['default']
  for key in resources:
    if key not in KUBEFLOW_COMPONENTS:
      raise KubeflowError(
        f'{spec.source}: kubeflow.resources.{key}: unknown '
        f'component; allowed: {", ".join(allowed)}'
      )
  if default is not None and default.gpu is not None:
    raise KubeflowError(
      f'{spec.source}: kubeflow.resources.default.gpu: only '
      f'{" and ".join(GPU_COMPONENTS)} can use a GPU; request it there'
    )


def _resource_spec(spec: PipelineSpec, key: str, res, target: str):
  """The ResourceSpec proto of component `key`'s resources `res`."""
  from kfp.pipeline_spec import pipeline_spec_pb2  # pylint: disable=g-import-not-at-top

  config = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
  if res.cpu:
    config.cpu_limit = res.cpu
  if res.memory_gb:
    config.memory_limit = res.memory_gb
  if res.gpu is None:
    return config
  where = f'{spec.source}: kubeflow.resources.{key}'
  if key not in GPU_COMPONENTS:
    raise KubeflowError(
      f'{where}.gpu: {key} cannot use a GPU (only '
      f'{" and ".join(GPU_COMPONENTS)} train Keras models); remove it'
    )
  if res.gpu.type not in ACCELERATORS[target]:
    other = [t for t, names in ACCELERATORS.items() if res.gpu.type in names]
    hint = f' ({res.gpu.type} is a {other[0]} name)' if other else ''
    raise KubeflowError(
      f'{where}.gpu.type: {res.gpu.type!r} is not an accelerator of the '
      f'{target} target{hint}; allowed: {", ".join(ACCELERATORS[target])}'
    )
  config.accelerator.type = res.gpu.type
  config.accelerator.count = res.gpu.count
  return config


def _tuner_workers(spec: PipelineSpec, target: str) -> List[str]:
  """The TunerWorker pods for tuner.parallel_trials, beside the Tuner's: on
  open-source KFP, whose pods reach one another in the cluster. Vertex AI
  runs each task in a network of its own: there the trials run as
  processes in the Tuner's task."""
  if target not in TUNER_POD_TARGETS:
    return []
  try:
    return tuner_worker_ids(spec)
  except ValueError as e:
    raise KubeflowError(str(e)) from None


def _beam_args(spec: PipelineSpec, image: str) -> List[str]:
  """The Beam components' args: `kubeflow.engine`'s (kubeflow/engines.py
  reads its options for the cluster), then `kubeflow.beam_args`."""
  key = f'{spec.source}: kubeflow.beam_args'
  name = spec.kubeflow.engine
  for arg in spec.kubeflow.beam_args:
    if not arg.startswith('--'):
      raise KubeflowError(f'{key}: {arg!r} is not a --flag=value argument')
  options = cluster_engines.options(spec)
  found = cluster_engines.problem(name, options)
  if found:
    option, what = found
    raise KubeflowError(
      f'{spec.source}: kubeflow.engine_options.{option}: {what}'
    )
  if name != 'direct':
    # beam_args come after the engine's and would win: a second --runner or
    # --job_endpoint is a contradiction, not a setting.
    own = {a.partition('=')[0] for a in engines.get(name).beam_args(options)}
    clash = [a for a in spec.kubeflow.beam_args if a.partition('=')[0] in own]
    if clash:
      raise KubeflowError(
        f'{key}: {clash[0].partition("=")[0]} is set by the {name} engine '
        '(kubeflow.engine); remove it, or change kubeflow.engine_options'
      )
  args = cluster_engines.cluster_args(
    name, options, list(spec.kubeflow.beam_args), image
  )
  values = {}
  for arg in args:
    flag, _, value = arg.partition('=')
    values[flag] = value
  runner = values.get('--runner', 'DirectRunner')
  if runner not in BEAM_RUNNERS:
    raise KubeflowError(
      f'{key}: --runner={runner} is not supported; allowed: '
      f'{", ".join(BEAM_RUNNERS)}'
    )
  missing = [a for a in BEAM_RUNNERS[runner] if not values.get(a)]
  if missing:
    raise KubeflowError(f'{key}: --runner={runner} needs {", ".join(missing)}')
  for flag in ('--temp_location', '--staging_location'):
    if flag in values:
      _remote(
        values[flag], f'kubeflow.beam_args {flag}', spec, 'gs://bucket/tmp'
      )
  if values.get('--direct_running_mode') == 'in_memory':
    raise KubeflowError(
      f'{key}: --direct_running_mode=in_memory runs Beam in one thread; in a '
      'pod use multi_processing (or a distributed --runner)'
    )
  return args


def _image(spec: PipelineSpec, image: Optional[str]) -> str:
  """The pipeline image (--image, or kubeflow.image), checked to be a
  container image reference."""
  if not image:
    raise KubeflowError(
      f'{spec.source}: no pipeline image: pass --image (or '
      'set kubeflow.image); build it from kubeflow/Dockerfile'
    )
  if not _IMAGE.match(image):
    raise KubeflowError(
      f'--image {image!r}: not a container image reference '
      '(e.g. gcr.io/project/tfx-pipeline:1.0)'
    )
  return image


def cluster_settings(
  spec: PipelineSpec,
  image: Optional[str] = None,
  target: Optional[str] = None,
  pipeline_root: Optional[str] = None,
  data: Optional[str] = None,
  push_destination: Optional[str] = None,
) -> ClusterSettings:
  """The spec's Kubeflow settings with flags applied, checked.

  Raises:
    KubeflowError: a missing image, a local path where pods need a URI, an
      unknown accelerator, a GPU on a component that cannot use it, ...
  """
  kf = spec.kubeflow
  target = target or kf.target
  if target not in ACCELERATORS:
    raise KubeflowError(
      f'--target {target}: allowed: {", ".join(ACCELERATORS)}'
    )
  image = _image(spec, image or kf.image)
  base_model_uri, push_base = _base_model(spec)
  _tuner_workers(spec, target)
  push_destination = _remote(
    push_destination or kf.push_destination or spec.push.destination,
    'kubeflow.push_destination',
    spec,
    'gs://bucket/serving',
  )
  if spec.training.mode == 'finetune' and not base_model_uri and not push_base:
    push_base = f'{push_destination}/{spec.push.model_name}'
  return ClusterSettings(
    target=target,
    image=image,
    pipeline_root=_remote(
      pipeline_root or kf.pipeline_root,
      'kubeflow.pipeline_root',
      spec,
      'gs://bucket/pipeline-root',
    ),
    data=_remote(
      data or kf.data or spec.data.path,
      'kubeflow.data',
      spec,
      'gs://bucket/data/',
    ),
    schema=_schema(spec),
    push_destination=push_destination,
    beam_args=_beam_args(spec, image),
    engine=spec.kubeflow.engine,
    base_model_uri=base_model_uri,
    base_model_push_base=push_base,
    platform_configs=_platform_configs(spec, target),
    module_file=_module_file(spec),
  )


def cluster_spec(spec: PipelineSpec, settings: ClusterSettings) -> PipelineSpec:
  """The spec as the cluster reads it: data, schema and push destination
  replaced by the cluster's URIs."""
  return spec.model_copy(
    update={
      'data': spec.data.with_path(settings.data),
      'schema_file': settings.schema,
      'module_file': settings.module_file,
      'push': spec.push.model_copy(
        update={'destination': settings.push_destination}
      ),
    }
  )


def environment(
  spec: PipelineSpec,
  settings: ClusterSettings,
  column_kinds: Optional[Dict[str, str]] = None,
):
  """The definition's Environment for the cluster."""
  return build_environment(
    column_kinds=column_kinds,
    pipeline_root=settings.pipeline_root,
    metadata_connection_config=None,  # KFP records to its own metadata
    beam_args=settings.beam_args,
    enable_cache=spec.kubeflow.enable_cache,
    base_model_uri=settings.base_model_uri,
    base_model_push_base=settings.base_model_push_base,
    baseline='pushed' if settings.target == 'kfp' else 'vertex',
    platform_configs=settings.platform_configs,
    tuner_pods=settings.target in TUNER_POD_TARGETS,
  )


def _check_output(output: str, target: str) -> str:
  ext = os.path.splitext(output)[1].lower()
  allowed = ('.yaml', '.yml') if target == 'kfp' else ('.yaml', '.yml', '.json')
  if ext not in allowed:
    raise KubeflowError(
      f'--output {output}: the {target} target writes '
      f'{" or ".join(allowed)} (a YAML PipelineSpec'
      f'{"; .json: a Vertex PipelineJob" if target == "vertex" else ""})'
    )
  return ext


def _set_task_options(
  pipeline_spec: Dict[str, Any], platform_configs: Dict[str, Any], finder: str
) -> None:
  """What the compiler leaves out of the tasks: no cache for the base model
  finder, each node's resources on its container."""
  tasks = pipeline_spec['root']['dag']['tasks']
  if finder in tasks:
    # Always read the newest pushed model, never a cached earlier answer.
    tasks[finder]['cachingOptions'] = {}
  executors = pipeline_spec['deploymentSpec']['executors']
  for node_id, config in platform_configs.items():
    # TFX sets these on every container but FileBasedExampleGen's.
    if node_id in tasks:
      component = pipeline_spec['components'][
        tasks[node_id]['componentRef']['name']
      ]
      executor = executors[component['executorLabel']]
      executor['container']['resources'] = json_format.MessageToDict(config)


def _definition_text(
  spec: PipelineSpec,
  settings: ClusterSettings,
  job: Dict[str, Any],
  pipeline_spec: Dict[str, Any],
  ext: str,
) -> str:
  """The file's text: a Vertex PipelineJob for .json, else the YAML
  PipelineSpec under a header naming its source."""
  if ext == '.json':
    job['pipelineSpec'] = pipeline_spec
    job.setdefault('runtimeConfig', {})['gcsOutputDirectory'] = (
      settings.pipeline_root
    )
    return json.dumps(job, indent=2, sort_keys=True)
  return (
    f'# PIPELINE DEFINITION\n# Name: {spec.name}\n'
    f'# Compiled from {os.path.basename(spec.source)} for the '
    f'{settings.target} target by `python -m pipeline compile`.\n'
    + yaml.safe_dump(pipeline_spec, sort_keys=True)
  )


def compile_pipeline(
  spec: PipelineSpec, settings: ClusterSettings, output: str
) -> Dict[str, Any]:
  """Compiles and writes the pipeline definition (atomically).

  Returns:
    The PipelineSpec as a dict (what was written, for a YAML output).
  """
  ext = _check_output(output, settings.target)
  spec, column_kinds = resolve(spec)
  # TFX and TensorFlow load only once the settings have passed their checks,
  # so a refusal is quick.
  # pylint: disable=g-import-not-at-top
  from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kfp_runner

  from pipeline.definition import pipeline as pipeline_lib

  # pylint: enable=g-import-not-at-top
  tfx_pipeline = pipeline_lib.create_pipeline(
    cluster_spec(spec, settings), environment(spec, settings, column_kinds)
  )
  runner = kfp_runner.KubeflowV2DagRunner(
    config=kfp_runner.KubeflowV2DagRunnerConfig(
      display_name=spec.name,
      default_image=settings.image,
      use_pipeline_spec_2_1=True,
    )
  )
  job = runner.run(tfx_pipeline, write_out=False)
  pipeline_spec = job['pipelineSpec']
  pipeline_spec['defaultPipelineRoot'] = settings.pipeline_root
  _set_task_options(
    pipeline_spec, settings.platform_configs, pipeline_lib.BASE_MODEL_FINDER
  )
  resolvers = [
    name
    for name, executor in pipeline_spec['deploymentSpec']['executors'].items()
    if 'resolver' in executor
  ]
  if settings.target == 'kfp' and resolvers:
    raise KubeflowError(
      f'internal: the kfp target compiled resolver nodes '
      f'{resolvers}, which open-source KFP cannot execute'
    )
  text = _definition_text(spec, settings, job, pipeline_spec, ext)
  write_text(output, text, KubeflowError, 'the compiled pipeline')
  return pipeline_spec
