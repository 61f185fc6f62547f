"""The Beam engines (pipeline/engines) as Kubeflow's pods use them.

`kubeflow.engine` and `kubeflow.engine_options` give the Beam components the
engine's Beam args, as `runner.engine` does locally; but a component's pod
is not this machine, so the options are read for the cluster:

- The engine's workers cannot call back into the pod (`environment:
  loopback`): they run beside the engine, in a Beam worker pool
  (`environment: external`; kubeflow/flink runs one as a sidecar of each
  TaskManager pod).
- An address the pod dials (the job endpoint, a master) must be the
  cluster's: a pod's localhost is the pod. The worker pool is the exception:
  the engine's workers dial it, from their own pod, where the sidecar is
  localhost.
- A job endpoint must be given: without one Beam starts a job server in the
  pod, from a jar, with Java, which the pipeline image does not have.

The engine's `problem()` is not called: it probes this machine's ports and
files, which say nothing of the cluster's.
"""

from typing import List, Optional, Tuple

from pipeline.engines import registry as engines

LOCAL_HOSTS = frozenset({'localhost', '127.0.0.1', '0.0.0.0', '::1', ''})
# Options the engine's workers dial from their own pod, not the component's.
WORKER_SIDE = ('worker_pool',)
# The manifests that run an engine in the cluster, where there are some.
MANIFESTS = {'flink': 'kubeflow/flink'}
# Beam args that tell TFX the workers already have TFX and the project
# (tfx.utils.dependency_utils.make_beam_dependency_flags), so it does not
# build and stage a package of itself in every Beam component.
DEPENDENCY_ARGS = (
  '--extra_package',
  '--extra_packages',
  '--setup_file',
  '--requirements_file',
  '--sdk_container_image',
  '--worker_harness_container_image',
)


def job_server_example(name: str) -> str:
  """The job endpoint kubeflow/<name> would serve (its Service's name)."""
  return f'beam-{name}-job-server.{name}.svc:8099'


def host_of(address: str) -> str:
  """'scheme://host:port', 'host:port', '[::1]:port' -> the host."""
  rest = address.split('://', 1)[-1].split('/', 1)[0]
  if rest.startswith('['):
    return rest[1:].split(']', 1)[0]
  return rest.rsplit(':', 1)[0] if rest.count(':') == 1 else rest


def options(spec) -> engines.Options:
  """`kubeflow.engine_options` typed by the engine (checked at load)."""
  return engines.get(spec.kubeflow.engine).options.model_validate(
    dict(spec.kubeflow.engine_options)
  )


def problem(name: str, opts: engines.Options) -> Optional[Tuple[str, str]]:
  """What keeps engine `name` with options `opts` from running from a pod:
  (the option, what is wrong and what to do), or None."""
  fields = opts.model_dump()
  where = MANIFESTS.get(name)
  sidecar = f' (the sidecar in {where})' if where else ''
  if fields.get('environment') == 'loopback':
    pool = (
      f' and worker_pool: {fields["worker_pool"]}{sidecar}'
      if 'worker_pool' in fields
      else ''
    )
    return (
      'environment',
      "loopback runs Beam's Python workers in the component's pod, "
      f'which the {name} workers cannot reach; set environment: '
      f'external{pool}',
    )
  if 'job_endpoint' in fields and not fields['job_endpoint']:
    return (
      'job_endpoint',
      'not set: the pod would start a job server itself, which the '
      "pipeline image cannot (no Java); give the job server's "
      f'Kubernetes Service, e.g. {job_server_example(name)}',
    )
  # Only what reaches the Beam args is dialled from the pod.
  args = ' '.join(engines.get(name).beam_args(opts))
  for key, value in fields.items():
    if (
      key in WORKER_SIDE
      or not isinstance(value, str)
      or host_of(value) not in LOCAL_HOSTS
      or ':' not in value
      or value not in args
    ):
      continue
    service = (
      job_server_example(name)
      if key == 'job_endpoint'
      else "the engine's Kubernetes Service"
    )
    return (
      key,
      f"{value} is the pod's own address, not the cluster's; give {service}",
    )
  return None


def cluster_args(
  name: str, opts: engines.Options, beam_args: List[str], image: str
) -> List[str]:
  """The Beam args of the Beam components' pods for engine `name`: the
  engine's, then the spec's `beam_args` (engines.pipeline_args), and, with
  an external worker pool, the pipeline image as the workers' image."""
  own = engines.get(name).beam_args(opts)
  # pipeline_args: the engine's, then the spec's less what the engine drops.
  given = engines.pipeline_args(name, opts, beam_args)[len(own) :]
  flags = {a.partition('=')[0] for a in given}
  # A flag the spec gives replaces the engine's, so the compiled pipeline
  # has one of each (the runner allows that only for the direct engine,
  # whose --runner=DirectRunner a spec's --runner replaces).
  args = [a for a in own if a.partition('=')[0] not in flags] + given
  external = opts.model_dump().get('environment') == 'external'
  if external and not any(a.split('=', 1)[0] in DEPENDENCY_ARGS for a in args):
    # The worker pool runs the pipeline image (kubeflow/flink), which has
    # TFX and the project installed. Beam ignores the image for an EXTERNAL
    # environment; TFX reads it as "the workers have the dependencies" and
    # skips building an sdist of itself in every Beam component, which the
    # worker pool would never install (tfx#2035).
    args.append(f'--sdk_container_image={image}')
  return args
