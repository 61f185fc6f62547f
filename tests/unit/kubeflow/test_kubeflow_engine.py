"""Beam engines on Kubeflow: `kubeflow.engine` compiled into the Beam
components' args, the refusals of what cannot run from a pod, and the
manifests of kubeflow/flink that the compiled args point at.

No cluster here. The Kubernetes objects are checked against the kubernetes
client's models (a kfp dependency). The Flink operator's CRD schema is not
in any installed package, so the FlinkDeployment is checked for the fields
this project relies on, and its pod template against the models.
"""

import dataclasses
import glob
import json
import os
import re
import shutil
import subprocess

import kubernetes
import pytest
import yaml

from kubeflow import engines as cluster_engines
from kubeflow import runner
from pipeline.definition import spec as spec_lib
from pipeline.engines import registry as engines
from tests.conftest import REPO, cli
from tests.unit.kubeflow.test_kubeflow import CLUSTER, IMAGE, SPECS, compile_to

FLINK_DIR = os.path.join(REPO, 'kubeflow', 'flink')
JOB_ENDPOINT = cluster_engines.job_server_example('flink')
EXTERNAL = {
  'job_endpoint': JOB_ENDPOINT,
  'environment': 'external',
  'worker_pool': 'localhost:50000',
}
BEAM_NODES = ('CsvExampleGen', 'StatisticsGen', 'Transform', 'Evaluator')


def flink_spec(options, **extra):
  return spec_lib.load_spec(
    SPECS[0],
    {
      **CLUSTER,
      'kubeflow.engine': 'flink',
      'kubeflow.engine_options': options,
      **extra,
    },
  )


def beam_args_of(pipeline_spec, node):
  """The Beam args TFX appended to a task's executor arguments."""
  executor = pipeline_spec['deploymentSpec']['executors'][f'{node}_executor']
  args = executor['container']['args']
  return args[args.index('--json_serialized_inputs_spec_args') + 2 :]


# --- compiled args ----------------------------------------------------------


@pytest.fixture
def no_probes(monkeypatch):
  """Every engine's problem() but direct's (which looks at nothing) fails
  the test: it probes this machine's ports and files, which say nothing of
  the cluster."""
  for name in set(engines.names()) - {'direct'}:

    def probe(options, name=name):
      raise AssertionError(f'{name} problem({options}) called')

    monkeypatch.setitem(
      engines.ENGINES,
      name,
      dataclasses.replace(engines.get(name), problem=probe),
    )


def test_flink_engine_compiles_into_the_beam_components(no_probes, tmp_path):
  output = tmp_path / 'flink.yaml'
  # runner.engine (the local runner's) is Flink too, on a cluster that is
  # not running here: neither engine is asked.
  spec, settings = compile_to(
    SPECS[0],
    str(output),
    **{
      'runner.engine': 'flink',
      'kubeflow.engine': 'flink',
      'kubeflow.engine_options': EXTERNAL,
    },
  )
  assert spec.runner.engine == settings.engine == 'flink'
  compiled = yaml.safe_load(output.read_text())
  for node in BEAM_NODES:
    args = beam_args_of(compiled, node)
    assert args[0] in ('--runner=PortableRunner', '--runner=FlinkRunner')
    for arg in (
      f'--job_endpoint={JOB_ENDPOINT}',
      '--environment_type=EXTERNAL',
      '--environment_config=localhost:50000',
      # The worker pool's image: TFX stages no package of itself.
      f'--sdk_container_image={IMAGE}',
    ):
      assert arg in args, (node, args)
    # kubeflow.beam_args' DirectRunner defaults are the direct engine's.
    assert not [a for a in args if a.startswith('--direct_')], (node, args)
    assert len({a.partition('=')[0] for a in args}) == len(args), args


def test_the_workers_image_stops_tfx_packaging_itself_and_beam_ignores_it():
  from apache_beam.options.pipeline_options import (  # pylint: disable=g-import-not-at-top
    PipelineOptions,
    PortableOptions,
  )
  from apache_beam.transforms import environments  # pylint: disable=g-import-not-at-top
  from tfx.utils import dependency_utils  # pylint: disable=g-import-not-at-top

  args = runner.cluster_settings(flink_spec(EXTERNAL), image=IMAGE).beam_args
  assert dependency_utils.make_beam_dependency_flags(args) == args
  environment = environments.Environment.from_options(
    PipelineOptions(args).view_as(PortableOptions)
  )
  assert isinstance(environment, environments.ExternalEnvironment)
  assert environment.url == 'localhost:50000'


def test_dataflow_and_direct_pass_through():
  dataflow = {
    'project': 'my-project',
    'region': 'europe-west4',
    'temp_location': 'gs://bucket/tmp',
  }
  spec = spec_lib.load_spec(
    SPECS[0],
    {
      **CLUSTER,
      'kubeflow.engine': 'dataflow',
      'kubeflow.engine_options': dataflow,
    },
  )
  settings = runner.cluster_settings(spec, image=IMAGE)
  assert settings.engine == 'dataflow'
  assert settings.beam_args == [
    '--runner=DataflowRunner',
    '--project=my-project',
    '--region=europe-west4',
    '--temp_location=gs://bucket/tmp',
  ]
  spec = spec_lib.load_spec(SPECS[0], CLUSTER)
  assert runner.cluster_settings(spec, image=IMAGE).beam_args == [
    '--runner=DirectRunner',
    '--direct_running_mode=multi_processing',
    '--direct_num_workers=0',
  ]
  # A spec's own --runner replaces the direct engine's, once.
  spec = spec_lib.load_spec(
    SPECS[0],
    {
      **CLUSTER,
      'kubeflow.beam_args': [
        '--runner=DataflowRunner',
        '--project=p',
        '--region=r',
        '--temp_location=gs://bucket/tmp',
      ],
    },
  )
  args = runner.cluster_settings(spec, image=IMAGE).beam_args
  assert [a for a in args if a.startswith('--runner')] == [
    '--runner=DataflowRunner'
  ]


# --- refusals ----------------------------------------------------------------


REFUSALS = [
  ({}, 'kubeflow.engine_options.environment: loopback runs'),
  (
    {**EXTERNAL, 'environment': 'loopback'},
    'kubeflow.engine_options.environment: loopback runs',
  ),
  (
    {**EXTERNAL, 'job_endpoint': 'localhost:8099'},
    'kubeflow.engine_options.job_endpoint: localhost:8099 is the pod',
  ),
  (
    {**EXTERNAL, 'job_endpoint': '127.0.0.1:8099'},
    'kubeflow.engine_options.job_endpoint: 127.0.0.1:8099 is the pod',
  ),
  (
    {**EXTERNAL, 'job_endpoint': None},
    'kubeflow.engine_options.job_endpoint: not set',
  ),
]


@pytest.mark.parametrize(
  'options,message',
  REFUSALS,
  ids=['default', 'loopback', 'localhost', 'ipv4', 'none'],
)
def test_what_cannot_run_from_a_pod_is_refused_in_one_line(
  options, message, tmp_path
):
  spec = flink_spec(options)
  output = tmp_path / 'p.yaml'
  with pytest.raises(runner.KubeflowError) as raised:
    runner.compile_pipeline(
      spec, runner.cluster_settings(spec, image=IMAGE), str(output)
    )
  text = str(raised.value)
  assert text.startswith(f'{SPECS[0]}: {message}') and '\n' not in text
  # Each says what to do.
  assert 'set environment: external' in text or JOB_ENDPOINT in text, text
  assert not os.listdir(tmp_path)


def test_beam_args_may_not_contradict_the_engine():
  spec = flink_spec(
    EXTERNAL, **{'kubeflow.beam_args': ['--runner=DirectRunner']}
  )
  with pytest.raises(
    runner.KubeflowError,
    match=r'kubeflow.beam_args: '
    r'--runner is set by the flink engine',
  ):
    runner.cluster_settings(spec, image=IMAGE)


def test_compile_cli_refuses_a_loopback_engine_with_exit_2(tmp_path):
  sets = [
    a
    for key, value in {
      **CLUSTER,
      'kubeflow.engine': 'flink',
      'kubeflow.engine_options': {**EXTERNAL, 'environment': 'loopback'},
    }.items()
    for a in ('--set', f'{key}={json.dumps(value)}')
  ]
  output = tmp_path / 'pipeline.yaml'
  proc = cli(
    'compile', SPECS[0], '--image', IMAGE, '--output', str(output), *sets
  )
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(
    f'error: {SPECS[0]}: kubeflow.engine_options.environment: loopback'
  ), lines
  assert not os.listdir(tmp_path)


def test_a_cluster_address_is_not_mistaken_for_a_local_one():
  assert cluster_engines.host_of('localhost:8099') == 'localhost'
  assert cluster_engines.host_of('http://127.0.0.1:8081/') == '127.0.0.1'
  assert cluster_engines.host_of('[::1]:8099') == '::1'
  assert cluster_engines.host_of('spark://spark-master.spark.svc:7077') == (
    'spark-master.spark.svc'
  )
  options = engines.get('spark').options.model_validate(
    {
      'job_endpoint': 'beam-spark-job-server.spark.svc:8099',
      'environment': 'external',
    }
  )
  # The worker pool is dialled from the worker's pod: localhost is right.
  assert cluster_engines.problem('spark', options) is None


# --- manifests ---------------------------------------------------------------


def _model_type(doc):
  version = doc['apiVersion'].split('/')[-1]
  return version[0].upper() + version[1:] + doc['kind']


class _Response:
  def __init__(self, doc):
    self.data = json.dumps(doc)


def _unknown_fields(data, type_name, path):
  """Keys of `data` that the kubernetes client's model `type_name` lacks
  (deserializing would drop them without a word)."""
  models = kubernetes.client.models
  if type_name.startswith('list['):
    return [
      u
      for i, item in enumerate(data)
      for u in _unknown_fields(item, type_name[5:-1], f'{path}[{i}]')
    ]
  if type_name.startswith('dict('):
    inner = re.match(r'dict\([^,]+, (.*)\)$', type_name).group(1)
    return [
      u
      for key, value in data.items()
      for u in _unknown_fields(value, inner, f'{path}.{key}')
    ]
  klass = getattr(models, type_name, None)
  if klass is None:
    return []  # a primitive, or IntOrString ('object')
  attributes = {key: attr for attr, key in klass.attribute_map.items()}
  found = []
  for key, value in data.items():
    if key not in attributes:
      found.append(f'{path}.{key}')
    else:
      found += _unknown_fields(
        value, klass.openapi_types[attributes[key]], f'{path}.{key}'
      )
  return found


def validate_k8s(doc, type_name=None):
  """`doc` as the kubernetes client's model: a missing required field or a
  wrong type raises (the client's checks), and so does a field the model
  does not have."""
  type_name = type_name or _model_type(doc)
  model = kubernetes.client.ApiClient().deserialize(_Response(doc), type_name)
  unknown = _unknown_fields(doc, type_name, type_name)
  if unknown:
    raise ValueError(f'not fields of the Kubernetes API: {unknown}')
  return model


def _load(name):
  with open(os.path.join(FLINK_DIR, name)) as f:
    return [d for d in yaml.safe_load_all(f) if d is not None]


@pytest.fixture(scope='module')
def manifests():
  """kind -> [document] over every manifest in kubeflow/flink."""
  found = {}
  for path in sorted(glob.glob(os.path.join(FLINK_DIR, '*.yaml'))):
    for doc in _load(os.path.basename(path)):
      found.setdefault(doc['kind'], []).append(doc)
  return found


def test_kustomization_lists_every_manifest():
  (kustomization,) = _load('kustomization.yaml')
  files = sorted(
    os.path.basename(p)
    for p in glob.glob(os.path.join(FLINK_DIR, '*.y*ml'))
    if not p.endswith('kustomization.yaml')
  )
  assert sorted(kustomization['resources']) == files


def test_kubernetes_objects_validate_against_the_api_models(manifests):
  kinds = {kind: len(docs) for kind, docs in manifests.items()}
  assert kinds == {
    'Namespace': 1,
    'Deployment': 1,
    'Service': 1,
    'FlinkDeployment': 1,
    'Kustomization': 1,
  }
  namespace = manifests['Namespace'][0]['metadata']['name']
  (kustomization,) = manifests['Kustomization']
  assert kustomization['namespace'] == namespace
  for kind in ('Namespace', 'Deployment', 'Service'):
    model = validate_k8s(manifests[kind][0])
    assert model.kind == kind
  for doc in (
    manifests['Deployment'][0],
    manifests['Service'][0],
    manifests['FlinkDeployment'][0],
  ):
    assert doc['metadata']['namespace'] == namespace
  flink = manifests['FlinkDeployment'][0]['spec']
  validate_k8s(flink['taskManager']['podTemplate'], 'V1PodTemplateSpec')


BROKEN = [
  (
    'a misspelt field',
    lambda d: d['spec']['template']['spec'].update(
      contianers=d['spec']['template']['spec']['containers']
    ),
  ),
  ('no selector', lambda d: d['spec'].pop('selector')),
  (
    'a container without a name',
    lambda d: d['spec']['template']['spec']['containers'][0].pop('name'),
  ),
  (
    'a port that is not a number',
    lambda d: d['spec']['template']['spec']['containers'][0]['ports'][0].update(
      containerPort='job'
    ),
  ),
]


@pytest.mark.parametrize(
  'change', [c for _, c in BROKEN], ids=[name for name, _ in BROKEN]
)
def test_the_validation_fails_a_broken_manifest(change):
  doc, _ = _load('job-server.yaml')
  validate_k8s(doc)
  change(doc)
  with pytest.raises((ValueError, TypeError)):
    validate_k8s(doc)


def _sidecar(flink):
  containers = flink['taskManager']['podTemplate']['spec']['containers']
  assert containers[0]['name'] == 'flink-main-container'
  (pool,) = [c for c in containers if c['name'] != 'flink-main-container']
  return pool


def test_flink_session_cluster_has_what_beam_relies_on(manifests):
  doc = manifests['FlinkDeployment'][0]
  assert (doc['apiVersion'], doc['kind']) == (
    'flink.apache.org/v1beta1',
    'FlinkDeployment',
  )
  spec = doc['spec']
  assert spec['flinkVersion'] == 'v1_18' and spec['image'] == 'flink:1.18'
  assert 'job' not in spec  # a session cluster: the job server submits
  assert spec['jobManager']['replicas'] == 1
  task_managers = spec['taskManager']
  assert task_managers['replicas'] >= 1
  assert {'cpu', 'memory'} <= set(task_managers['resource'])
  conf = spec['flinkConfiguration']
  # Older operators take the configuration as a map of strings only.
  assert all(isinstance(v, str) for v in conf.values()), conf
  assert int(conf['taskmanager.numberOfTaskSlots']) >= 1
  assert float(conf['taskmanager.memory.network.fraction']) > 0.1
  pool = _sidecar(spec)
  assert pool['command'] == [
    'python',
    '-m',
    'apache_beam.runners.worker.worker_pool_main',
    '--service_port=50000',
  ]
  assert [p['containerPort'] for p in pool['ports']] == [50000]
  # The spec's worker_pool reaches this sidecar from the TaskManager.
  worker_pool = (
    engines.get('flink').options.model_validate(EXTERNAL).worker_pool
  )
  assert worker_pool == 'localhost:50000'
  # The kustomization's placeholder is the sidecar's image (the project's).
  (kustomization,) = manifests['Kustomization']
  assert [i['name'] for i in kustomization['images']] == [pool['image']]


def _arg(args, flag):
  (value,) = [a.split('=', 1)[1] for a in args if a.startswith(flag + '=')]
  return value


def test_job_server_reaches_the_flink_rest_service_and_is_reached(manifests):
  import apache_beam  # pylint: disable=g-import-not-at-top

  flink = manifests['FlinkDeployment'][0]
  (deployment,) = manifests['Deployment']
  (service,) = manifests['Service']
  (container,) = deployment['spec']['template']['spec']['containers']
  # The job server is Beam's (the project's version) for Flink 1.18.
  assert container['image'] == (
    f'apache/beam_flink1.18_job_server:{apache_beam.__version__}'
  )
  args = container['args']
  # The operator's REST Service of the session cluster: <name>-rest:8081.
  rest_port = flink['spec']['flinkConfiguration'].get('rest.port', '8081')
  assert rest_port == '8081'
  assert (
    _arg(args, '--flink-master') == f'{flink["metadata"]["name"]}-rest:8081'
  )
  # Clients stage artifacts where the job server says: its pod's IP, not
  # its default localhost (the client's own pod).
  assert _arg(args, '--job-host') == '$(POD_IP)'
  (env,) = container['env']
  assert (env['name'], env['valueFrom']['fieldRef']['fieldPath']) == (
    'POD_IP',
    'status.podIP',
  )
  ports = {p['name']: p['containerPort'] for p in container['ports']}
  assert ports == {
    'job': int(_arg(args, '--job-port')),
    'artifact': int(_arg(args, '--artifact-port')),
    'expansion': int(_arg(args, '--expansion-port')),
  }
  # The Service in the spec's job_endpoint selects this pod's job port.
  host, port = JOB_ENDPOINT.rsplit(':', 1)
  assert host == (
    f'{service["metadata"]["name"]}.{service["metadata"]["namespace"]}.svc'
  )
  labels = deployment['spec']['template']['metadata']['labels']
  assert service['spec']['selector'].items() <= labels.items()
  (job,) = [p for p in service['spec']['ports'] if p['port'] == int(port)]
  assert ports[job['targetPort']] == 8099


@pytest.mark.skipif(shutil.which('kubectl') is None, reason='no kubectl')
def test_kustomize_builds_and_sets_the_worker_pool_image():
  proc = subprocess.run(
    ['kubectl', 'kustomize', FLINK_DIR],
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr
  docs = {d['kind']: d for d in yaml.safe_load_all(proc.stdout)}
  (kustomization,) = _load('kustomization.yaml')
  (image,) = kustomization['images']
  assert _sidecar(docs['FlinkDeployment']['spec'])['image'] == (
    f'{image["newName"]}:{image["newTag"]}'
  )
