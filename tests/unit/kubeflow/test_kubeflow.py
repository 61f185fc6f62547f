"""Kubeflow Pipelines: the compiled spec, read back with kfp's own types; the
refusals; the submit client against a KFP API; and compiled tasks run by
their exact container command, as KFP's launcher runs them."""

import collections
import glob
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from typing import NamedTuple

import ml_metadata as mlmd
import pytest
import yaml
from google.protobuf import json_format
from kfp import components as kfp_components
from kfp.pipeline_spec import pipeline_spec_pb2

from kubeflow import runner
from kubeflow import submit as submit_lib
from pipeline.definition import spec as spec_lib
from pipeline.metadata import store as metadata_lib
from tests.conftest import DATA_CSV, DEFAULT_SPEC, MODEL, REPO, cli
from tests.support import kfp_launcher

BUNDLED = sorted(glob.glob(os.path.join(REPO, 'pipeline', 'specs', '*.yaml')))
# penguin.yaml runs TFX's module file from the virtualenv, which is not in the
# pipeline image: refused (test_a_module_file_outside_the_project_is_refused).
PENGUIN = os.path.join(REPO, 'pipeline', 'specs', 'penguin.yaml')
SPECS = [p for p in BUNDLED if p != PENGUIN]
IMAGE = 'registry.example.com/tfx-pipeline:1.0'
GPU = {'type': 'nvidia.com/gpu', 'count': 2}
CLUSTER = {
  'kubeflow.pipeline_root': 'gs://bucket/root',
  'kubeflow.data': 'gs://bucket/data/',
  'kubeflow.push_destination': 'gs://bucket/serving',
  'kubeflow.resources': {
    'default': {'cpu': 1, 'memory_gb': 4},
    'trainer': {'cpu': 8, 'memory_gb': 32, 'gpu': GPU},
    'tuner': {'cpu': 8, 'memory_gb': 32, 'gpu': GPU},
  },
}
# Fine-tuning from another pipeline reads that pipeline's push base.
SOURCE_PUSH_BASE = 'gs://bucket/serving/digits_source'
BASE_EDGES = {
  'CsvExampleGen': set(),
  'ImportSchemaGen': set(),
  'StatisticsGen': {'CsvExampleGen'},
  'ExampleValidator': {'StatisticsGen', 'ImportSchemaGen'},
  'AnomaliesGate': {'ExampleValidator'},
  'Transform': {'CsvExampleGen', 'ImportSchemaGen', 'AnomaliesGate'},
  'Tuner': {'Transform', 'ImportSchemaGen'},
  'Trainer': {'Transform', 'ImportSchemaGen', 'Tuner'},
  'baseline_model_finder': {'Trainer'},
  'Evaluator': {'CsvExampleGen', 'Trainer', 'baseline_model_finder'},
  'Pusher': {'Trainer', 'Evaluator'},
}


def expected_edges(spec):
  edges = {k: set(v) for k, v in BASE_EDGES.items()}
  if not spec.schema_file:  # SchemaGen infers one from the statistics
    edges = {
      node: {'SchemaGen' if n == 'ImportSchemaGen' else n for n in needs}
      for node, needs in edges.items()
      if node != 'ImportSchemaGen'
    }
    edges['SchemaGen'] = {'StatisticsGen'}
  if spec.training.mode == 'finetune' and not spec.model.pretrained():
    edges['base_model_finder'] = set()
    edges['Tuner'].add('base_model_finder')
    edges['Trainer'].add('base_model_finder')
  return edges


def load(path, target='kfp', **extra):
  overrides = {**CLUSTER, 'kubeflow.target': target, **extra}
  spec = spec_lib.load_spec(path, overrides)
  if (
    spec.training.mode == 'finetune'
    and spec.training.base_model
    and spec.training.base_model.latest_blessed not in (None, spec.name)
  ):
    spec = spec_lib.load_spec(
      path, {**overrides, 'kubeflow.base_model': SOURCE_PUSH_BASE}
    )
  return spec


def compile_to(path, output, target='kfp', image=IMAGE, **extra):
  spec = load(path, target, **extra)
  settings = runner.cluster_settings(spec, image=image)
  runner.compile_pipeline(spec, settings, output)
  return spec, settings


@pytest.fixture(scope='module')
def compiled(tmp_path_factory):
  """Every bundled spec compiled for open-source KFP, read back with kfp's
  PipelineSpec proto: {spec name: (spec, PipelineSpec, file)}."""
  out = tmp_path_factory.mktemp('compiled')
  result = {}
  for path in SPECS:
    output = str(out / (os.path.basename(path)[:-5] + '.yaml'))
    spec, _ = compile_to(path, output)
    with open(output) as f:
      proto = json_format.ParseDict(
        yaml.safe_load(f), pipeline_spec_pb2.PipelineSpec()
      )
    result[spec.name] = (spec, proto, output)
  return result


def executor_of(proto, task):
  component = proto.components[proto.root.dag.tasks[task].component_ref.name]
  return (
    proto.deployment_spec.fields['executors']
    .struct_value.fields[component.executor_label]
    .struct_value
  )


def container_of(proto, task):
  return json_format.MessageToDict(executor_of(proto, task))['container']


def parameter(proto, task, name):
  return json_format.MessageToDict(
    proto.root.dag.tasks[task].inputs.parameters[name].runtime_value.constant
  )


def test_every_bundled_spec_compiles_to_the_full_dag(compiled):
  assert len(compiled) == len(SPECS) >= 4
  for spec, proto, path in compiled.values():
    edges = expected_edges(spec)
    tasks = proto.root.dag.tasks
    assert {
      name: set(task.dependent_tasks) for name, task in tasks.items()
    } == edges, spec.name
    assert proto.pipeline_info.name == spec.name
    assert proto.schema_version == '2.1.0'
    assert proto.default_pipeline_root == 'gs://bucket/root'
    # kfp's own loader takes the file as a pipeline component.
    loaded = kfp_components.load_component_from_file(path)
    assert loaded.name == spec.name


def test_every_task_runs_the_pipeline_image(compiled):
  for spec, proto, _ in compiled.values():
    for task in proto.root.dag.tasks:
      container = container_of(proto, task)
      assert container['image'] == IMAGE, (spec.name, task)
      assert container['command'] == [
        'python',
        '-m',
        'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor',
      ]


def test_gpus_only_on_tuner_and_trainer(compiled):
  for spec, proto, _ in compiled.values():
    for task in proto.root.dag.tasks:
      resources = container_of(proto, task).get('resources', {})
      if task in ('Tuner', 'Trainer'):
        assert resources == {
          'cpuLimit': 8.0,
          'memoryLimit': 32.0,
          'accelerator': {'type': 'nvidia.com/gpu', 'count': '2'},
        }, task
      else:
        # The default applies everywhere else, ExampleGen's driver included.
        assert resources == {'cpuLimit': 1.0, 'memoryLimit': 4.0}, (
          spec.name,
          task,
        )


def test_module_code_is_referenced_by_import_path(compiled):
  from tfx.utils import import_utils  # pylint: disable=g-import-not-at-top

  for spec, proto, _ in compiled.values():
    assert parameter(proto, 'Transform', 'preprocessing_fn') == (
      'modules.preprocessing.preprocessing_fn'
    )
    assert parameter(proto, 'Tuner', 'tuner_fn') == 'modules.tuner.tuner_fn'
    assert parameter(proto, 'Trainer', 'run_fn') == 'modules.train.run_fn'
    for task in proto.root.dag.tasks:
      assert 'module_file' not in proto.root.dag.tasks[task].inputs.parameters
      args = container_of(proto, task)['args']
      executor_class = args[args.index('--executor_class_path') + 1]
      assert import_utils.import_class_by_path(executor_class), executor_class
    text = json.dumps(json_format.MessageToDict(proto))
    assert REPO not in text, f'{spec.name}: a local path reached the spec'


def test_kfp_target_has_no_resolver_anywhere(compiled):
  for spec, proto, _ in compiled.values():
    executors = json_format.MessageToDict(proto.deployment_spec)['executors']
    assert all(set(e) == {'container'} for e in executors.values()), (
      spec.name,
      {k: list(e) for k, e in executors.items()},
    )
    assert (
      'resolver' not in json.dumps(json_format.MessageToDict(proto)).lower()
    ), spec.name
    assert 'baseline_model_finder' in proto.root.dag.tasks


def test_cluster_locations_replace_local_ones(compiled):
  spec, proto, _ = compiled['breast-cancer']
  assert parameter(proto, 'CsvExampleGen', 'input_base') == 'gs://bucket/data'
  schema = parameter(proto, 'ImportSchemaGen', 'schema_file')
  assert schema == '/pipeline/schemas/breast_cancer/schema.pbtxt'
  # The image holds the project at /pipeline: the file is in the build.
  assert os.path.isfile(os.path.join(REPO, schema[len('/pipeline/') :]))
  push = json.loads(parameter(proto, 'Pusher', 'push_destination'))
  assert push['filesystem']['base_directory'] == f'gs://bucket/serving/{MODEL}'
  assert parameter(proto, 'baseline_model_finder', 'push_base') == (
    f'gs://bucket/serving/{MODEL}'
  )
  assert proto.root.dag.tasks[
    'baseline_model_finder'
  ].caching_options.enable_cache
  del spec


def test_fine_tuning_reads_the_source_push_base_uncached(compiled):
  spec, proto, _ = compiled['digits-target']
  assert spec.training.mode == 'finetune'
  finder = proto.root.dag.tasks['base_model_finder']
  assert parameter(proto, 'base_model_finder', 'push_base') == SOURCE_PUSH_BASE
  assert parameter(proto, 'base_model_finder', 'required') == 1
  # Always the newest pushed model, never an earlier cached answer.
  assert not finder.caching_options.enable_cache
  for task in ('Tuner', 'Trainer'):
    source = proto.root.dag.tasks[task].inputs.artifacts['base_model']
    assert source.task_output_artifact.producer_task == 'base_model_finder'


def test_warm_start_reads_its_own_push_destination(tmp_path):
  path = os.path.join(REPO, 'pipeline', 'specs', 'digits_target.yaml')
  _, settings = compile_to(
    path,
    str(tmp_path / 'p.yaml'),
    **{'training.base_model': {'latest_blessed': 'digits-target'}},
  )
  assert settings.base_model_push_base == 'gs://bucket/serving/digits_target'


def test_base_model_uri_is_imported(tmp_path):
  path = os.path.join(REPO, 'pipeline', 'specs', 'digits_target.yaml')
  output = str(tmp_path / 'p.yaml')
  compile_to(
    path, output, **{'training.base_model': {'path': 'gs://bucket/models/base'}}
  )
  with open(output) as f:
    compiled = yaml.safe_load(f)
  importer = compiled['deploymentSpec']['executors'][
    'base_model_importer_executor'
  ]
  assert importer['importer']['artifactUri']['constant'] == (
    'gs://bucket/models/base'
  )


def test_pretrained_encoders_on_the_cluster(compiled, tmp_path):
  # The bundled MiniLM is in the image: the pods resolve it by name.
  _, proto, _ = compiled['rotten-tomatoes']
  assert 'encoder_importer' not in proto.root.dag.tasks
  assert 'base_model' not in proto.root.dag.tasks['Trainer'].inputs.artifacts
  path = os.path.join(REPO, 'pipeline', 'specs', 'rotten_tomatoes.yaml')
  encoder = 'model.encoders.review.huggingface'
  output = str(tmp_path / 'p.yaml')
  compile_to(
    path,
    output,
    **{'model.encoders': {'review': {'huggingface': 'gs://bucket/minilm'}}},
  )
  with open(output) as f:
    compiled_yaml = yaml.safe_load(f)
  importer = compiled_yaml['deploymentSpec']['executors'][
    'encoder_importer_executor'
  ]
  assert importer['importer']['artifactUri']['constant'] == 'gs://bucket/minilm'
  with pytest.raises(runner.KubeflowError) as refused:
    compile_to(
      path,
      output,
      **{'model.encoders': {'review': {'huggingface': str(tmp_path)}}},
    )
  message = str(refused.value)
  assert encoder in message and 'local path' in message
  assert '\n' not in message


def test_vertex_target_uses_its_accelerator_names_and_a_resolver(tmp_path):
  output = str(tmp_path / 'job.json')
  t4 = {'type': 'NVIDIA_TESLA_T4', 'count': 1}
  compile_to(
    SPECS[0],
    output,
    target='vertex',
    **{'kubeflow.resources': {'trainer': {'gpu': t4}}},
  )
  with open(output) as f:
    job = json.load(f)
  assert job['runtimeConfig']['gcsOutputDirectory'] == 'gs://bucket/root'
  executors = job['pipelineSpec']['deploymentSpec']['executors']
  assert executors['Trainer_executor']['container']['resources'] == {
    'accelerator': {'type': 'NVIDIA_TESLA_T4', 'count': '1'}
  }
  assert any('resolver' in e for e in executors.values())


REFUSALS = [
  (
    {'kubeflow.resources': {'transform': {'gpu': GPU}}},
    'kubeflow.resources.transform.gpu: transform cannot use a GPU',
  ),
  (
    {'kubeflow.resources': {'default': {'gpu': GPU}}},
    'kubeflow.resources.default.gpu: only tuner and trainer',
  ),
  (
    {'kubeflow.resources': {'trainer': {'gpu': {'type': 'nvidia.com/tpu'}}}},
    "kubeflow.resources.trainer.gpu.type: 'nvidia.com/tpu' is not an "
    'accelerator of the kfp target',
  ),
  (
    {'kubeflow.resources': {'trainer': {'gpu': {'type': 'NVIDIA_TESLA_T4'}}}},
    '(NVIDIA_TESLA_T4 is a vertex name)',
  ),
  (
    {'kubeflow.resources': {'trainers': {'cpu': 2}}},
    'kubeflow.resources.trainers: unknown component',
  ),
  (
    {'kubeflow.pipeline_root': 'runs/root'},
    'kubeflow.pipeline_root: runs/root is a local path',
  ),
  (
    {'kubeflow.pipeline_root': '/data/metadata.sqlite'},
    'kubeflow.pipeline_root: /data/metadata.sqlite is a local path',
  ),
  (
    {'kubeflow.pipeline_root': None},
    'kubeflow.pipeline_root: not set; the cluster needs a URI',
  ),
  ({'kubeflow.data': None}, 'kubeflow.data: '),
  (
    {'kubeflow.push_destination': 'file:///srv/serving'},
    'kubeflow.push_destination: file:///srv/serving is a local path',
  ),
  (
    {'kubeflow.beam_args': ['--runner=DataflowRunner', '--project=p']},
    '--runner=DataflowRunner needs --region, --temp_location',
  ),
  (
    {'kubeflow.beam_args': ['--runner=SomeRunner']},
    '--runner=SomeRunner is not supported',
  ),
  (
    {'kubeflow.beam_args': ['--direct_running_mode=in_memory']},
    'in_memory runs Beam in one thread',
  ),
  (
    {'schema': '/tmp/elsewhere/schema.pbtxt'},
    'schema: /tmp/elsewhere/schema.pbtxt is not in the pipeline image',
  ),
]


@pytest.mark.parametrize(
  'overrides,message',
  REFUSALS,
  ids=[m.split(':')[0] + str(i) for i, (_, m) in enumerate(REFUSALS)],
)
def test_bad_cluster_settings_are_refused_in_one_line(
  overrides, message, tmp_path
):
  spec = spec_lib.load_spec(SPECS[0], {**CLUSTER, **overrides})
  output = tmp_path / 'p.yaml'
  with pytest.raises(runner.KubeflowError) as raised:
    runner.compile_pipeline(
      spec, runner.cluster_settings(spec, image=IMAGE), str(output)
    )
  text = str(raised.value)
  assert message in text and '\n' not in text, text
  assert text.startswith(SPECS[0]) or text.startswith('--')
  assert not output.exists() and not os.listdir(tmp_path)


def test_fine_tuning_bad_base_models_are_refused(tmp_path):
  target = os.path.join(REPO, 'pipeline', 'specs', 'digits_target.yaml')
  spec = spec_lib.load_spec(target, CLUSTER)  # latest_blessed: digits-source
  with pytest.raises(runner.KubeflowError, match='set kubeflow.base_model'):
    runner.cluster_settings(spec, image=IMAGE)
  spec = spec_lib.load_spec(
    target, {**CLUSTER, 'training.base_model': {'path': str(tmp_path)}}
  )
  with pytest.raises(runner.KubeflowError, match='is a local path'):
    runner.cluster_settings(spec, image=IMAGE)


def test_missing_or_bad_image_and_output_are_refused(tmp_path):
  spec = spec_lib.load_spec(SPECS[0], CLUSTER)
  with pytest.raises(
    runner.KubeflowError, match='no pipeline image: pass --image'
  ):
    runner.cluster_settings(spec)
  with pytest.raises(runner.KubeflowError, match='not a container image'):
    runner.cluster_settings(spec, image='my image')
  settings = runner.cluster_settings(spec, image=IMAGE)
  with pytest.raises(runner.KubeflowError, match='writes .yaml or .yml'):
    runner.compile_pipeline(spec, settings, str(tmp_path / 'p.json'))
  assert not os.listdir(tmp_path)


def test_compile_cli_writes_the_file_and_refuses_in_one_line(tmp_path):
  sets = [
    a
    for key, value in CLUSTER.items()
    for a in ('--set', f'{key}={json.dumps(value)}')
  ]
  output = tmp_path / 'pipeline.yaml'
  proc = cli(
    'compile', SPECS[0], '--image', IMAGE, '--output', str(output), *sets
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert f'wrote {output}: kfp pipeline breast-cancer, 11 tasks' in proc.stdout
  assert 'Trainer: cpu 8.0, memory 32.0 GB, 2 x nvidia.com/gpu' in proc.stdout
  assert yaml.safe_load(output.read_text())['pipelineInfo']['name'] == (
    'breast-cancer'
  )
  refused = tmp_path / 'refused.yaml'
  proc = cli('compile', SPECS[0], '--output', str(refused), *sets)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
    f'error: {SPECS[0]}: no pipeline image: pass --image (or set '
    'kubeflow.image); build it from kubeflow/Dockerfile'
  ]
  assert not refused.exists()


def test_gpu_wheels_match_the_locked_tensorflow():
  from importlib import metadata  # pylint: disable=g-import-not-at-top

  wanted = sorted(
    r.split(';')[0].replace(' ', '')
    for r in metadata.requires('tensorflow')
    if "extra == 'and-cuda'" in r
  )
  with open(os.path.join(REPO, 'kubeflow', 'requirements-gpu.txt')) as f:
    pinned = sorted(
      line.strip() for line in f if line.strip() and not line.startswith('#')
    )
  assert pinned == wanted


# --- submit -------------------------------------------------------------


class _FakeKfpApi(http.server.BaseHTTPRequestHandler):
  """The three KFP v2beta1 endpoints kfp.Client uses to start a run."""

  received = []
  refuse = None

  def _reply(self, status, body):
    data = json.dumps(body).encode()
    self.send_response(status)
    self.send_header('Content-Type', 'application/json')
    self.send_header('Content-Length', str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def _handle(self):
    length = int(self.headers.get('Content-Length') or 0)
    body = json.loads(self.rfile.read(length)) if length else None
    path = self.path.split('?')[0]
    self.received.append((self.command, path, body))
    if path == '/apis/v2beta1/healthz':
      return self._reply(200, {'multi_user': False})
    if self.refuse and path == '/apis/v2beta1/runs':
      return self._reply(
        self.refuse,
        {'error': 'denied', 'code': 7, 'message': 'permission denied'},
      )
    if path == '/apis/v2beta1/experiments':
      if self.command == 'GET':
        return self._reply(200, {})
      return self._reply(
        200, {'experiment_id': 'exp-1', 'display_name': body['display_name']}
      )
    if path == '/apis/v2beta1/runs' and self.command == 'POST':
      return self._reply(
        200, {'run_id': 'run-42', 'display_name': body['display_name']}
      )
    return self._reply(404, {'error': 'not found'})

  do_GET = do_POST = _handle

  def log_message(self, *args):
    del args


@pytest.fixture
def kfp_api():
  _FakeKfpApi.received = []
  _FakeKfpApi.refuse = None
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _FakeKfpApi)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield server, f'http://127.0.0.1:{server.server_port}'
  server.shutdown()


def test_submit_sends_the_compiled_spec_through_the_kfp_client(
  compiled, kfp_api
):
  _, url = kfp_api
  _, _, path = compiled['breast-cancer']
  result = submit_lib.submit(path, url, experiment='nightly')
  assert result == {'run_id': 'run-42', 'url': f'{url}/#/runs/details/run-42'}
  runs = [
    body
    for method, p, body in _FakeKfpApi.received
    if (method, p) == ('POST', '/apis/v2beta1/runs')
  ]
  assert len(runs) == 1
  with open(path) as f:
    assert runs[0]['pipeline_spec'] == yaml.safe_load(f)
  assert runs[0]['experiment_id'] == 'exp-1'
  assert (
    'POST',
    '/apis/v2beta1/experiments',
    {'display_name': 'nightly', 'namespace': ''},
  ) in _FakeKfpApi.received


def test_submit_refusals_are_one_line(compiled, kfp_api, tmp_path):
  _, url = kfp_api
  _, _, path = compiled['breast-cancer']
  _FakeKfpApi.refuse = 403
  with pytest.raises(runner.KubeflowError) as raised:
    submit_lib.submit(path, url)
  assert str(raised.value) == (
    f'--host {url}: the KFP API did not take the run: HTTP 403 Forbidden: '
    'permission denied'
  )
  not_a_pipeline = tmp_path / 'x.yaml'
  not_a_pipeline.write_text('name: not a pipeline\n')
  with pytest.raises(runner.KubeflowError, match='not a KFP v2 pipeline'):
    submit_lib.submit(str(not_a_pipeline), url)
  with pytest.raises(runner.KubeflowError, match='no such pipeline file'):
    submit_lib.submit(str(tmp_path / 'missing.yaml'), url)
  with pytest.raises(runner.KubeflowError, match='give the KFP API URL'):
    submit_lib.submit(path, 'localhost:8080')


def test_submit_cli_to_an_unreachable_host_is_one_line(compiled):
  _, _, path = compiled['breast-cancer']
  proc = cli('submit', path, '--host', 'http://127.0.0.1:9')
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
    'error: --host http://127.0.0.1:9: the KFP API did not take the run: '
    'Connection refused'
  ]


# --- compiled tasks, run by their container command -----------------------


class ColdRun(NamedTuple):
  """The session's cold run: its store (shared with the other pipeline
  tests, which add runs of their own) and its run id."""

  store: mlmd.MetadataStore
  run_id: str


def _inputs(cold: ColdRun, execution_type, keys):
  """The input artifacts of the cold run's execution of `execution_type`,
  as KFP passes them: {key: (uri, metadata)}. The cold run's, not the
  store's latest: other tests' runs (a Tuner turned off, changed data)
  may have run since."""
  store = cold.store
  run = store.get_context_by_type_and_name('pipeline_run', cold.run_id)
  type_id = store.get_execution_type(execution_type).id
  (execution,) = [
    e for e in store.get_executions_by_context(run.id) if e.type_id == type_id
  ]
  events = store.get_events_by_execution_ids([execution.id])
  by_key = {}
  for event in events:
    if event.type == event.INPUT:
      by_key[event.path.steps[0].key] = event.artifact_id
  artifacts = {
    a.id: a for a in store.get_artifacts_by_id(list(by_key.values()))
  }
  result = {}
  for key in keys:
    artifact = artifacts[by_key[key]]
    metadata = {}
    for name, value in list(artifact.properties.items()) + list(
      artifact.custom_properties.items()
    ):
      metadata[name] = getattr(value, value.WhichOneof('value'))
    result[key] = (artifact.uri, metadata)
  return result


@pytest.fixture(scope='module')
def cold_store(base, cold):
  _, summary = cold
  store = mlmd.MetadataStore(
    metadata_lib.connection_config(
      os.path.join(base, 'metadata.sqlite'), readonly=True
    )
  )
  return ColdRun(store, summary['run_id'])


@pytest.fixture(scope='module')
def container_run(compiled, cold_store, tmp_path_factory):
  """The compiled Trainer task run by its container command, with the
  cold run's Transform, schema and Tuner outputs as its inputs."""
  _, proto, path = compiled['breast-cancer']
  del proto
  with open(path) as f:
    pipeline_spec = yaml.safe_load(f)
  inputs = _inputs(
    cold_store,
    'tfx.components.trainer.component.Trainer',
    ('examples', 'transform_graph', 'schema', 'hyperparameters'),
  )
  out = str(tmp_path_factory.mktemp('kfp-tasks'))
  cwd = str(tmp_path_factory.mktemp('elsewhere'))
  proc = kfp_launcher.run(pipeline_spec, 'Trainer', inputs, out, cwd=cwd)
  return pipeline_spec, out, cwd, proc


@pytest.mark.e2e
def test_trainer_task_container_command_trains_a_model(container_run, base):
  pipeline_spec, out, cwd, proc = container_run
  assert proc.returncode == 0, proc.stderr[-4000:]
  model_dir = os.path.join(out, 'Trainer', 'model', 'Format-Serving')
  assert os.path.isfile(os.path.join(model_dir, 'saved_model.pb'))
  output = kfp_launcher.executor_output(out, 'Trainer')
  assert output['artifacts']['model']['artifacts'][0]['uri'] == os.path.join(
    out, 'Trainer', 'model'
  )
  assert os.listdir(cwd) == []  # it wrote only where the launcher said
  # The model loads with TensorFlow's own loader and serves tf.Examples.
  eval_glob = os.path.join(
    base, 'root', 'CsvExampleGen', 'examples', '*', 'Split-eval', '*.gz'
  )
  probe = subprocess.run(
    [
      sys.executable,
      os.path.join(REPO, 'tests', 'support', 'serving_check.py'),
      model_dir,
      DATA_CSV,
      eval_glob,
      'diagnosis',
    ],
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert probe.returncode == 0, probe.stderr[-2000:]
  result = json.loads(probe.stdout.strip().splitlines()[-1])
  assert result['signature_outputs'] == ['class_id', 'probability']
  assert result['accuracy_eval'] >= 0.9, result
  del pipeline_spec


@pytest.mark.e2e
def test_baseline_finder_task_skips_the_candidate_and_copies_the_push_before(
  container_run, base, tmp_path
):
  """Run as on KFP, with the push base parameter pointed at local folders
  (the compiled gs:// base cannot be reached here). Version 2 is a push of
  the candidate itself (a cached re-run's situation): the baseline must be
  version 1, the model blessed before it. An empty push base gives none."""
  pipeline_spec, out, cwd, _ = container_run
  candidate = os.path.join(out, 'Trainer', 'model')
  pushed = os.path.join(base, 'serving', MODEL)
  earlier = os.path.join(pushed, max(os.listdir(pushed), key=int))
  push_base = tmp_path / 'serving'
  shutil.copytree(earlier, push_base / '1')
  shutil.copytree(os.path.join(candidate, 'Format-Serving'), push_base / '2')
  (push_base / '3').mkdir()  # a push still being copied: not a version
  for folder, expected in ((str(push_base), 1), (str(tmp_path / 'none'), 0)):
    spec = json.loads(json.dumps(pipeline_spec))
    spec['root']['dag']['tasks']['baseline_model_finder']['inputs'][
      'parameters'
    ]['push_base']['runtimeValue']['constant'] = folder
    task_out = str(tmp_path / f'finder-{expected}')
    proc = kfp_launcher.run(
      spec,
      'baseline_model_finder',
      {'candidate': (candidate, {})},
      task_out,
      cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    artifact = kfp_launcher.executor_output(task_out, 'baseline_model_finder')[
      'artifacts'
    ]['model']['artifacts'][0]
    assert artifact['metadata']['pushed_version'] == expected
    copied = os.path.join(artifact['uri'], 'Format-Serving', 'saved_model.pb')
    assert os.path.isfile(copied) == bool(expected)
    if expected:
      with (
        open(copied, 'rb') as a,
        open(os.path.join(earlier, 'saved_model.pb'), 'rb') as b,
      ):
        assert a.read() == b.read()


@pytest.mark.e2e
def test_statistics_task_runs_beam_in_worker_processes(
  cold_store, compiled, tmp_path
):
  """The multi-process DirectRunner, as a pod runs it, with 2 workers."""
  spec, settings = compile_to(
    SPECS[0],
    str(tmp_path / 'mp.yaml'),
    **{
      'kubeflow.beam_args': [
        '--direct_running_mode=multi_processing',
        '--direct_num_workers=2',
      ]
    },
  )
  del spec, settings, compiled
  with open(tmp_path / 'mp.yaml') as f:
    pipeline_spec = yaml.safe_load(f)
  inputs = _inputs(
    cold_store,
    'tfx.components.statistics_gen.component.StatisticsGen',
    ('examples',),
  )
  out = str(tmp_path / 'out')
  proc = kfp_launcher.run(
    pipeline_spec, 'StatisticsGen', inputs, out, cwd=str(tmp_path)
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  # Worker processes log through the runner's logging server.
  assert "'direct_running_mode': 'multi_processing'" in proc.stderr.replace(
    "\\'", "'"
  )
  assert 'Worker: severity' in proc.stderr
  statistics = os.path.join(out, 'StatisticsGen', 'statistics')
  assert sorted(os.listdir(statistics)) == ['Split-eval', 'Split-train']
  for split in ('Split-eval', 'Split-train'):
    assert (
      os.path.getsize(os.path.join(statistics, split, 'FeatureStats.pb')) > 0
    )


# --- components/pushed_model.py ------------------------------------------


def _version(base, name, content):
  os.makedirs(os.path.join(base, name))
  for file_name in ('saved_model.pb', 'fingerprint.pb'):
    with open(os.path.join(base, name, file_name), 'wb') as f:
      f.write(content)


def test_pushed_versions_are_complete_integer_folders_newest_first(tmp_path):
  from components import pushed_model  # pylint: disable=g-import-not-at-top

  base = str(tmp_path)
  _version(base, '9', b'a')
  _version(base, '100', b'b')
  _version(base, 'tmp-copy', b'c')
  os.makedirs(os.path.join(base, '200'))  # no saved_model.pb yet
  assert [v for v, _ in pushed_model.pushed_versions(base)] == [100, 9]
  assert pushed_model.pushed_versions(str(tmp_path / 'missing')) == []
  candidate = os.path.join(base, '100')
  assert pushed_model.choose_version(base, candidate)[0] == 9
  assert pushed_model.choose_version(base, None)[0] == 100
  assert pushed_model.choose_version(str(tmp_path / 'missing'), None) is None


def test_evaluator_drops_an_empty_baseline_only(tmp_path):
  from tfx.types import standard_artifacts  # pylint: disable=g-import-not-at-top

  from components import pushed_model  # pylint: disable=g-import-not-at-top

  empty, full = standard_artifacts.Model(), standard_artifacts.Model()
  empty.uri, full.uri = str(tmp_path / 'empty'), str(tmp_path / 'full')
  _version(str(tmp_path / 'full'), 'Format-Serving', b'x')
  inputs = {'model': [full], 'examples': []}
  assert (
    pushed_model.without_empty_baseline({**inputs, 'baseline_model': [empty]})
    == inputs
  )
  kept = {**inputs, 'baseline_model': [full]}
  assert pushed_model.without_empty_baseline(kept) == kept


def test_a_module_file_outside_the_project_is_refused(tmp_path):
  spec = load(PENGUIN)
  with pytest.raises(runner.KubeflowError) as error:
    runner.cluster_settings(spec, image=IMAGE)
  assert str(error.value) == (
    f'{PENGUIN}: module_file: {spec.module_file} is not in the pipeline '
    "image (it holds the project's pipeline, components, modules, kubeflow, "
    'schemas folders); move it under modules/ and rebuild the image'
  )
  del tmp_path


def test_a_spec_without_schema_compiles_schemagen_in_its_place(tmp_path):
  output = str(tmp_path / 'cars.yaml')
  spec, settings = compile_to(
    os.path.join(REPO, 'pipeline', 'specs', 'cars.yaml'), output, schema=None
  )
  with open(output) as f:
    proto = json_format.ParseDict(
      yaml.safe_load(f), pipeline_spec_pb2.PipelineSpec()
    )
  tasks = proto.root.dag.tasks
  assert 'SchemaGen' in tasks and 'ImportSchemaGen' not in tasks
  assert set(tasks['SchemaGen'].dependent_tasks) == {'StatisticsGen'}
  # resources.schema_gen applies to whichever node reads the schema.
  assert container_of(proto, 'SchemaGen')[
    'resources'
  ] == json_format.MessageToDict(settings.platform_configs['SchemaGen'])
  del spec


def test_remote_data_needs_the_classes_and_features_in_the_spec(tmp_path):
  spec = load(SPECS[0], **{'data.csv': 'gs://bucket/data/'})
  settings = runner.cluster_settings(spec, image=IMAGE)
  with pytest.raises(
    runner.KubeflowError,
    match=(
      'features: the data .gs://bucket/data/. is not read at compile time'
    ),
  ):
    runner.compile_pipeline(spec, settings, str(tmp_path / 'x.yaml'))
  assert not os.listdir(tmp_path)


def test_parallel_trials_compile_to_tuner_worker_pods(tmp_path):
  """`tuner.parallel_trials: 3` gives the Tuner two TunerWorker tasks: the
  Tuner's inputs, arguments and resources (its GPU), a meeting place under
  the pipeline root and KFP's run id placeholder, which the backend
  replaces with the run's id."""
  output = str(tmp_path / 'pods.yaml')
  compile_to(DEFAULT_SPEC, output, **{'tuner.parallel_trials': 3})
  with open(output) as f:
    proto = json_format.ParseDict(
      yaml.safe_load(f), pipeline_spec_pb2.PipelineSpec()
    )
  tasks = proto.root.dag.tasks
  workers = sorted(t for t in tasks if t.startswith('TunerWorker'))
  assert workers == ['TunerWorker1', 'TunerWorker2']
  tuner = tasks['Tuner']
  for number, name in enumerate(workers, start=1):
    task = tasks[name]
    assert sorted(task.dependent_tasks) == sorted(tuner.dependent_tasks)
    assert set(task.inputs.artifacts) == set(tuner.inputs.artifacts)
    for key in (
      'tuner_fn',
      'custom_config',
      'tune_args',
      'train_args',
      'eval_args',
      'meeting_root',
      'run_id',
    ):
      assert parameter(proto, name, key) == parameter(proto, 'Tuner', key)
    assert parameter(proto, name, 'worker') == number
    assert (
      container_of(proto, name)['resources']
      == container_of(proto, 'Tuner')['resources']
    )
    assert container_of(proto, name)['resources']['accelerator'] == {
      'type': GPU['type'],
      'count': str(GPU['count']),
    }
    assert container_of(proto, name)['args'][1] == (
      'components.tuner.WorkerExecutor'
    )
  assert parameter(proto, 'Tuner', 'run_id') == kfp_launcher.RUN_ID_PLACEHOLDER
  assert parameter(proto, 'Tuner', 'meeting_root') == (
    CLUSTER['kubeflow.pipeline_root'] + '/tuner-meetings'
  )
  # One pod: no worker, no meeting.
  compile_to(DEFAULT_SPEC, output)
  with open(output) as f:
    one = yaml.safe_load(f)
  assert not [t for t in one['root']['dag']['tasks'] if 'Worker' in t]
  assert (
    'run_id' not in one['root']['dag']['tasks']['Tuner']['inputs']['parameters']
  )


def test_auto_parallel_trials_is_refused_on_kubeflow(tmp_path):
  with pytest.raises(
    runner.KubeflowError,
    match=(
      r"tuner.parallel_trials: 'auto' counts one machine's cores; on "
      'Kubeflow give the number of Tuner pods'
    ),
  ):
    compile_to(
      DEFAULT_SPEC,
      str(tmp_path / 'x.yaml'),
      **{'tuner.parallel_trials': 'auto'},
    )
  assert not os.listdir(tmp_path)


def test_vertex_target_runs_parallel_trials_in_the_tuner_task(tmp_path):
  """Vertex AI's tasks do not share a network: no TunerWorker tasks there;
  TuneArgs carries the trials to the Tuner's processes."""
  output = str(tmp_path / 'vertex.yaml')
  compile_to(
    DEFAULT_SPEC,
    output,
    target='vertex',
    **{'tuner.parallel_trials': 2, 'kubeflow.resources': {}},
  )
  with open(output) as f:
    proto = json_format.ParseDict(
      yaml.safe_load(f), pipeline_spec_pb2.PipelineSpec()
    )
  assert not [t for t in proto.root.dag.tasks if 'Worker' in t]
  assert 'run_id' not in proto.root.dag.tasks['Tuner'].inputs.parameters
  assert json.loads(parameter(proto, 'Tuner', 'tune_args')) == {
    'num_parallel_trials': 2
  }


def _pod_tasks(tmp_path, extra):
  """The default spec compiled with Tuner pods, its meeting place moved to
  a local folder (the compiled gs:// root cannot be reached here)."""
  output = str(tmp_path / 'pods.yaml')
  compile_to(DEFAULT_SPEC, output, **extra)
  with open(output) as f:
    pipeline_spec = yaml.safe_load(f)
  meetings = tmp_path / 'meetings'
  for name, task in pipeline_spec['root']['dag']['tasks'].items():
    if name == 'Tuner' or name.startswith('TunerWorker'):
      task['inputs']['parameters']['meeting_root']['runtimeValue'][
        'constant'
      ] = str(meetings)
  return pipeline_spec, meetings


def _started(proc, line, timeout=300):
  """Reads `proc`'s stdout until a line containing `line`; that line."""
  deadline = time.monotonic() + timeout
  for text in proc.stdout:
    if line in text:
      return text
    assert time.monotonic() < deadline, f'no {line!r} in time'
  raise AssertionError(
    f'{line!r} never came; exit {proc.wait()}: {proc.stderr.read()[-3000:]}'
  )


def _tuner_run(cold_store, tmp_path):
  """The Tuner's inputs from the cold run, an output folder, and an empty
  working folder the pods must leave empty."""
  inputs = _inputs(
    cold_store,
    'components.tuner.Tuner',
    ('examples', 'transform_graph', 'schema'),
  )
  out, cwd = str(tmp_path / 'out'), str(tmp_path / 'elsewhere')
  os.makedirs(cwd)
  return inputs, out, cwd


def _worker_json(out, task):
  """What the TunerWorker task `task` recorded in its work artifact."""
  work = kfp_launcher.executor_output(out, task)['artifacts']['work'][
    'artifacts'
  ][0]['uri']
  with open(os.path.join(work, 'worker.json')) as f:
    return json.load(f)


def _search_report(out):
  results = kfp_launcher.executor_output(out, 'Tuner')['artifacts'][
    'tuner_results'
  ]['artifacts'][0]['uri']
  with open(os.path.join(results, 'search_report.json')) as f:
    return json.load(f)


def _check_a_late_worker_ends_at_once(pipeline_spec, inputs, out, cwd):
  """TunerWorker2, started after the search ended, does nothing."""
  late = kfp_launcher.run(
    pipeline_spec, 'TunerWorker2', inputs, out, cwd=cwd, timeout=300
  )
  assert late.returncode == 0, late.stderr[-3000:]
  assert "tuner2: the chief's search had ended; nothing to do" in late.stdout
  assert _worker_json(out, 'TunerWorker2') == {
    'tuner_id': 'tuner2',
    'joined': False,
    'chief_failed': None,
  }


@pytest.mark.e2e
def test_tuner_and_worker_pods_run_one_search_from_the_compiled_tasks(
  cold_store, tmp_path
):
  """The compiled Tuner task and TunerWorker1 task, run by their container
  commands as two pods of one run, search together: the worker's trials are
  in the Tuner's report, and the search's checkpoints are in the shared
  storage. TunerWorker2 never started while the search ran: the Tuner did
  not wait for it, and once started it ends at once."""
  pipeline_spec, meetings = _pod_tasks(
    tmp_path,
    {'tuner.parallel_trials': 3, 'tuner.max_trials': 4, 'tuner.max_epochs': 4},
  )
  inputs, out, cwd = _tuner_run(cold_store, tmp_path)
  worker = kfp_launcher.start(
    pipeline_spec, 'TunerWorker1', inputs, out, cwd=cwd
  )
  _started(worker, 'tuner1: waiting for the chief')
  chief = kfp_launcher.run(pipeline_spec, 'Tuner', inputs, out, cwd=cwd)
  assert chief.returncode == 0, chief.stderr[-4000:]
  worker_out, worker_err = worker.communicate(timeout=300)
  assert worker.returncode == 0, worker_err[-3000:]
  assert 'tuner1: trial ' in worker_out
  report = _search_report(out)
  assert report['processes'] == 3
  assert report['trials_run'] == 4
  by = collections.Counter(t['process'] for t in report['trials'])
  assert by['tuner1'] >= 1 and set(by) <= {'tuner0', 'tuner1'}, by
  assert all(t['seconds'] for t in report['trials'])
  did = _worker_json(out, 'TunerWorker1')
  assert did['joined'] and did['tuner_id'] == 'tuner1'
  assert set(did['epochs_trained']) == {
    t['trial_id'] for t in report['trials'] if t['process'] == 'tuner1'
  }
  meeting = meetings / 'run-1'
  assert (meeting / 'ended.json').is_file()
  assert not (meeting / 'search').exists()  # the trials' checkpoints
  assert os.listdir(cwd) == []
  _check_a_late_worker_ends_at_once(pipeline_spec, inputs, out, cwd)


def _start_two_workers_and_the_chief(pipeline_spec, inputs, out, cwd, env):
  """Both worker pods waiting, then the chief; once both are mid-trial,
  the workers, the chief, and the trial tuner1 runs."""
  workers = [
    kfp_launcher.start(
      pipeline_spec, f'TunerWorker{n}', inputs, out, cwd=cwd, env=env
    )
    for n in (1, 2)
  ]
  for number, worker in enumerate(workers, start=1):
    _started(worker, f'tuner{number}: waiting for the chief')
  chief = kfp_launcher.start(
    pipeline_spec, 'Tuner', inputs, out, cwd=cwd, env=env
  )
  begun = _started(workers[0], 'tuner1: trial ')
  trial = begun.split('tuner1: trial ')[1].split()[0]
  _started(workers[1], 'tuner2: trial ')
  return workers, chief, trial


@pytest.mark.e2e
def test_a_worker_pod_killed_mid_trial_fails_the_tuner_in_one_line(
  cold_store, tmp_path
):
  """A pod has no process for the chief to watch: its heartbeat stops
  (PARALLEL_SEARCH_SILENCE_S, here 5 s), and the Tuner fails naming it and
  its trial, without finishing its own trial first. The other worker pod,
  mid-trial, stops once the chief has ended instead of training on for
  nobody."""
  pipeline_spec, _ = _pod_tasks(
    tmp_path,
    {
      'tuner.parallel_trials': 3,
      'tuner.algorithm': 'random',
      'tuner.max_epochs': 1000,  # long trials: minutes each
      'training.early_stopping.patience': 1000,
    },
  )
  inputs, out, cwd = _tuner_run(cold_store, tmp_path)
  workers, chief, trial = _start_two_workers_and_the_chief(
    pipeline_spec, inputs, out, cwd, {'PARALLEL_SEARCH_SILENCE_S': '5'}
  )
  workers[0].kill()
  workers[0].wait()
  killed = time.monotonic()
  _, err = chief.communicate(timeout=300)
  assert chief.returncode != 0
  # 5 s of silence, then the chief's own trial is interrupted, not awaited.
  assert time.monotonic() - killed < 30
  failed = [line for line in err.splitlines() if 'WorkerFailed' in line]
  assert failed, err[-3000:]
  assert (
    'WorkerFailed: tuning worker tuner1 (a TunerWorker pod) died (no '
    f'heartbeat for 5 s) while running trial {trial}; the search '
    'stopped'
  ) in failed[-1], failed[-1]
  ended = time.monotonic()
  said, err = workers[1].communicate(timeout=120)
  assert time.monotonic() - ended < 30  # its trial had far to go
  assert workers[1].returncode == 0, err[-3000:]
  assert "tuner2: the chief's search ended (it failed: " in said
  did = _worker_json(out, 'TunerWorker2')
  assert did['stopped'] and did['chief_failed'].startswith('tuning worker')
