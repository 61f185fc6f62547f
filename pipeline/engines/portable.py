"""Any Beam portable job service already running: Beam's PortableRunner
against its job endpoint. For a Flink or Spark job server that someone
else runs (the `flink` and `spark` engines add their clusters' own checks),
another runner's job server, or Beam's own Python job service
(`python -m apache_beam.runners.portability.local_job_service_main`), which
runs the jobs in its process on Beam's portable FnApiRunner: the same job
API, artifact staging and Fn API workers as a cluster, without one."""

from typing import List, Literal, Optional

from pipeline.engines import cluster
from pipeline.engines.base import Engine, Options, register, worker_args


class PortableOptions(Options):
  job_endpoint: str
  environment: Literal['loopback', 'external'] = 'loopback'
  worker_pool: str = 'localhost:50000'


def _beam_args(options: PortableOptions) -> List[str]:
  return [
    '--runner=PortableRunner',
    f'--job_endpoint={options.job_endpoint}',
    *worker_args(options.environment, options.worker_pool),
  ]


def _problem(options: PortableOptions) -> Optional[str]:
  if not cluster.answers(options.job_endpoint, 8099):
    return (
      f'no Beam job service answers at {options.job_endpoint}: start '
      'it, or fix runner.engine_options.job_endpoint'
    )
  if options.environment == 'external':
    if not cluster.answers(options.worker_pool, 50000):
      return (
        f'no Beam worker pool answers at {options.worker_pool}: start '
        'one (python -m apache_beam.runners.worker.worker_pool_main '
        '--service_port=PORT) or fix runner.engine_options.worker_pool'
      )
  return None


register(
  Engine(
    name='portable',
    options=PortableOptions,
    beam_args=_beam_args,
    problem=_problem,
    # Loopback workers are the submitting process; an external pool is
    # named by the user, who runs it with the project installed (as
    # `engine up` does for Flink).
    local_workers=True,
    description='any Beam job service already running (job_endpoint), '
    'e.g. a job server of your own',
  )
)
