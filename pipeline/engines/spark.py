"""Spark: a Spark standalone cluster through Beam's Spark job server.

The Beam components' Python code runs in the SDK harness; Spark schedules
the stages and shuffles between them. Two ways to submit a job:

- through a shared job server (`job_endpoint`, the default): a daemon that
  `engine up spark` starts beside the cluster, holding the Spark driver of
  each job (`PortableRunner`). One JVM for the whole run, started once.
- through Beam's `SparkRunner` (`job_endpoint: null`): Beam starts a job
  server JVM from the cached jar in every Beam component (a JVM start and
  a Spark driver each), for a master that no daemon of ours fronts.

Either way the SDK harness runs where the Python code is (`loopback`: in
the component's own process; `external`: in a Beam worker pool on this
machine), so the workers import the installed project: no package of it is
built or staged (`local_workers`).

`engine up spark` runs the master, one worker, the job server and a worker
pool on loopback, from Spark's jars as PyPI's pyspark ships them, at the
version the job server was built with (a master and a driver of other
versions do not talk). No Beam import here: the spec imports the registry.
"""

import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
import zipfile
from typing import Any, Dict, List, Literal, Optional

from pydantic import field_validator

from pipeline.engines import cluster, downloads
from pipeline.engines.base import (
  Engine,
  LocalCluster,
  Options,
  Progress,
  register,
  worker_args,
)

# Beam 2.59's beam-runners-spark-3 is built against Spark 3.2.2 (its POM's
# spark-core_2.12 dependency, which the job server jar bundles).
SPARK_VERSION = '3.2.2'
SCALA_VERSION = '2.12'
JOB_SERVER = 'beam-runners-spark-3-job-server'
DIST = f'spark-{SPARK_VERSION}'

HOST = '127.0.0.1'
MASTER_PORT = 7077
MASTER_UI_PORT = 8080
# Not Spark's default 8081: the local Flink cluster's REST port.
WORKER_UI_PORT = 8090
JOB_PORT, ARTIFACT_PORT, EXPANSION_PORT = 8199, 8198, 8197
WORKER_POOL_PORT = 50100

# Sized for a 24 GiB machine that also trains the models: about 6 GiB of
# JVM heap in all. The worker offers both CPUs and 4 GiB to executors; one
# job runs at a time (the components run in turn), so its one executor
# takes 3 GiB of them. The driver lives in the job server.
MASTER_HEAP = '512m'
WORKER_HEAP = '512m'
WORKER_CORES = 2
WORKER_MEMORY = '4g'
EXECUTOR_MEMORY = '3g'
JOB_SERVER_HEAP = '2g'

_ADDRESS = re.compile(r'[A-Za-z0-9.\-]+:\d{1,5}')
_MASTER = re.compile(r'spark://[A-Za-z0-9.\-]+:\d{1,5}|local(\[(\d+|\*)\])?')


class SparkOptions(Options):
  """How the Beam components reach Spark.

  Attributes:
    master: the standalone master (spark://HOST:PORT), or local[N] for a
      Spark inside the job server (SparkRunner only).
    job_endpoint: a running Beam Spark job server (HOST:PORT); None starts
      one per Beam component with Beam's SparkRunner.
    job_server_jar: that SparkRunner's jar; None: the cached one.
    environment: where the SDK harness runs: `loopback`, in the component's
      process; `external`, in the Beam worker pool at `worker_pool`.
    worker_pool: the worker pool's HOST:PORT, for `external`.
  """

  master: str = f'spark://{HOST}:{MASTER_PORT}'
  job_endpoint: Optional[str] = f'localhost:{JOB_PORT}'
  job_server_jar: Optional[str] = None
  environment: Literal['loopback', 'external'] = 'loopback'
  worker_pool: str = f'localhost:{WORKER_POOL_PORT}'

  @field_validator('master')
  @classmethod
  def _master_url(cls, value: str) -> str:
    if not _MASTER.fullmatch(value):
      raise ValueError(
        f'{value!r} is not a Spark master URL: spark://HOST:PORT or local[N]'
      )
    return value

  @field_validator('job_endpoint', 'worker_pool')
  @classmethod
  def _host_port(cls, value: Optional[str]) -> Optional[str]:
    if value is not None and not _ADDRESS.fullmatch(value):
      raise ValueError(f'{value!r} is not HOST:PORT')
    return value


def executor_properties() -> List[str]:
  """The Spark properties a driver gives its executors, as JVM -D flags:
  Spark reads spark.* system properties into every SparkConf, and the
  executors' JVMs (started by the worker) need Java 17's opens as well."""
  return [
    f'-Dspark.executor.memory={EXECUTOR_MEMORY}',
    '-Dspark.executor.extraJavaOptions=' + ' '.join(cluster.JAVA_17_OPENS),
  ]


def _jar(options: SparkOptions) -> Optional[str]:
  return options.job_server_jar or downloads.cached_jar(JOB_SERVER)


def _beam_args(options: SparkOptions) -> List[str]:
  if options.job_endpoint:
    return [
      '--runner=PortableRunner',
      f'--job_endpoint={options.job_endpoint}',
      *worker_args(options.environment, options.worker_pool),
    ]
  # Beam puts these after `java -jar` and before the jar, where the java
  # launcher still reads options.
  jvm = [
    f'--job_server_jvm_property={flag}'
    for flag in (*cluster.JAVA_17_OPENS, *executor_properties())
  ]
  jar = _jar(options)
  return [
    '--runner=SparkRunner',
    f'--spark_master_url={options.master}',
    *([f'--spark_job_server_jar={jar}'] if jar else []),
    *jvm,
    *worker_args(options.environment, options.worker_pool),
  ]


_UP = '`python -m pipeline engine up spark`'
_FETCH = '`python -m pipeline engine fetch spark` (or `make engines`)'


def _problem(options: SparkOptions) -> Optional[str]:
  if options.job_endpoint is None:
    if cluster.java() is None:
      return (
        'no Java to start the Spark job server: install a JDK 17 '
        '(e.g. openjdk-17-jdk-headless) or set JAVA_HOME'
      )
    jar = _jar(options)
    if jar is None:
      return (
        f'the Spark job server jar ({JOB_SERVER} {downloads.BEAM_VERSION})'
        f' is not cached: run {_FETCH}'
      )
    if not os.path.isfile(jar):
      return f'runner.engine_options.job_server_jar {jar}: no such file'
  if options.master.startswith('spark://'):
    if not cluster.answers(options.master, MASTER_PORT, timeout=1.0):
      return (
        f'the Spark master {options.master} does not answer: start one '
        f'with {_UP}, or fix runner.engine_options.master'
      )
  if options.job_endpoint:
    if not cluster.answers(options.job_endpoint, JOB_PORT, timeout=1.0):
      return (
        f'the Spark job server {options.job_endpoint} does not answer: '
        f'start one with {_UP}, or fix '
        'runner.engine_options.job_endpoint'
      )
  if options.environment == 'external':
    if not cluster.answers(options.worker_pool, WORKER_POOL_PORT, timeout=1.0):
      return (
        f'the Beam worker pool {options.worker_pool} does not answer: '
        f'start one with {_UP}, or fix '
        'runner.engine_options.worker_pool'
      )
  return None


# The local cluster.


def spark_home() -> Optional[str]:
  """The pyspark package folder: Spark's jars/ and bin/, as SPARK_HOME."""
  dist = downloads.cached_dist(DIST)
  return os.path.join(dist, 'pyspark') if dist else None


def jar_spark_version(jar: str) -> Optional[str]:
  """The Spark version a job server jar bundles (None when it does not
  say)."""
  with zipfile.ZipFile(jar) as archive:
    try:
      text = archive.read('spark-version-info.properties').decode()
    except KeyError:
      return None
  match = re.search(r'^version=(\S+)', text, re.MULTILINE)
  return match.group(1) if match else None


def _fetch(progress: Progress) -> None:
  downloads.fetch_dist(DIST, f'pyspark=={SPARK_VERSION}', progress=progress)
  try:
    downloads.fetch_jar('org.apache.beam', JOB_SERVER, progress=progress)
  except urllib.error.HTTPError as e:
    raise RuntimeError(
      f'{JOB_SERVER} {downloads.BEAM_VERSION}: Maven Central answered '
      f'{e.code} {e.reason}; Spark itself is cached in '
      f'{downloads.dist_path(DIST)}, but without the job server Beam '
      'cannot submit to it'
    ) from None


def _missing() -> Optional[str]:
  if cluster.java() is None:
    return 'no Java: install a JDK 17 (e.g. openjdk-17-jdk-headless)'
  if downloads.cached_dist(DIST) is None:
    return f'Spark {SPARK_VERSION} is not cached: run {_FETCH}'
  if downloads.cached_jar(JOB_SERVER) is None:
    return (
      f'the Spark job server jar ({JOB_SERVER} '
      f'{downloads.BEAM_VERSION}) is not cached: run {_FETCH}'
    )
  return None


def master_state(timeout: float = 2.0) -> Optional[Dict[str, Any]]:
  """The master's state from its UI (workers, apps), or None when it does
  not answer."""
  url = f'http://{HOST}:{MASTER_UI_PORT}/json/'
  try:
    with urllib.request.urlopen(url, timeout=timeout) as response:
      return json.load(response)
  except (OSError, ValueError):
    return None


def _alive_workers(state: Optional[Dict[str, Any]]) -> int:
  return sum(
    1 for w in (state or {}).get('workers', []) if w.get('state') == 'ALIVE'
  )


def _log(name: str) -> str:
  return os.path.join(cluster.run_dir('spark'), f'{name}.log')


def _daemon_env() -> Dict[str, str]:
  # Loopback only: every daemon binds 127.0.0.1 (Spark would pick the
  # first non-loopback address, and warn). The worker builds its executors'
  # classpath from SPARK_HOME's jars/, and asks SPARK_SCALA_VERSION which
  # Scala they are for (else it looks for a source checkout's build
  # folders: "Cannot find any build directories").
  return {
    'SPARK_HOME': spark_home(),
    'SPARK_SCALA_VERSION': SCALA_VERSION,
    'SPARK_LOCAL_IP': HOST,
  }


def _spark_daemon(name: str, heap: str, main: List[str]) -> int:
  java = cluster.java()
  classpath = os.path.join(spark_home(), 'jars', '*')
  return cluster.start(
    'spark',
    name,
    [java, f'-Xmx{heap}', *cluster.JAVA_17_OPENS, '-cp', classpath, *main],
    env=_daemon_env(),
    cwd=cluster.run_dir('spark'),
  )


def _wait(what: str, name: str, ready, seconds: float = 120) -> None:
  """Waits until `ready()`; a daemon of ours that dies meanwhile, or one
  not ours that never gets ready, is an error naming where to look."""
  pid = cluster.processes('spark').get(name)
  deadline = time.monotonic() + (seconds if pid else 10)
  while time.monotonic() < deadline:
    if ready():
      return
    if pid is not None and not cluster.alive(pid):
      raise RuntimeError(f'the {what} exited while starting; see {_log(name)}')
    time.sleep(0.5)
  if pid is None:
    raise RuntimeError(
      f'a process that `engine up spark` did not start holds '
      f"the {what}'s port, and is not one; stop it"
    )
  raise RuntimeError(
    f'the {what} was not ready within {seconds:.0f} s; see {_log(name)}'
  )


def start_spark(progress: Progress) -> str:
  """Starts the master and the worker unless they run; waits until the
  master counts the worker alive. The master's URL."""
  if downloads.cached_dist(DIST) is None:
    raise RuntimeError(f'Spark {SPARK_VERSION} is not cached: run {_FETCH}')
  os.makedirs(cluster.run_dir('spark'), exist_ok=True)
  master_url = f'spark://{HOST}:{MASTER_PORT}'
  if not cluster.port_open(HOST, MASTER_PORT):
    progress(
      f'starting the Spark master at {master_url} '
      f'(UI http://{HOST}:{MASTER_UI_PORT})'
    )
    _spark_daemon(
      'master',
      MASTER_HEAP,
      [
        'org.apache.spark.deploy.master.Master',
        '--host',
        HOST,
        '--port',
        str(MASTER_PORT),
        '--webui-port',
        str(MASTER_UI_PORT),
      ],
    )
  _wait('Spark master', 'master', lambda: master_state() is not None)
  if not _alive_workers(master_state()) and 'worker' not in cluster.processes(
    'spark'
  ):
    progress(
      f'starting a Spark worker ({WORKER_CORES} cores, '
      f'{WORKER_MEMORY} for executors)'
    )
    work = os.path.join(cluster.run_dir('spark'), 'work')
    os.makedirs(work, exist_ok=True)
    # Each job leaves a folder of executor logs in the work dir: removed
    # an hour after its application ends.
    _spark_daemon(
      'worker',
      WORKER_HEAP,
      [
        '-Dspark.worker.cleanup.enabled=true',
        '-Dspark.worker.cleanup.appDataTtl=3600',
        'org.apache.spark.deploy.worker.Worker',
        master_url,
        '--host',
        HOST,
        '--cores',
        str(WORKER_CORES),
        '--memory',
        WORKER_MEMORY,
        '--webui-port',
        str(WORKER_UI_PORT),
        '--work-dir',
        work,
      ],
    )
  _wait('Spark worker', 'worker', lambda: _alive_workers(master_state()) > 0)
  return master_url


def _start_job_server(progress: Progress, jar: str, master_url: str) -> None:
  bundled = jar_spark_version(jar)
  if bundled and bundled != SPARK_VERSION:
    raise RuntimeError(
      f"{jar} bundles Spark {bundled}, not the cluster's "
      f'{SPARK_VERSION}: a driver and a master of other '
      'versions do not talk'
    )
  if not cluster.port_open(HOST, JOB_PORT):
    progress(f'starting the Beam Spark job server at localhost:{JOB_PORT}')
    artifacts = os.path.join(cluster.run_dir('spark'), 'artifacts')
    os.makedirs(artifacts, exist_ok=True)
    cluster.start(
      'spark',
      'job-server',
      [
        cluster.java(),
        f'-Xmx{JOB_SERVER_HEAP}',
        *cluster.JAVA_17_OPENS,
        *executor_properties(),
        '-jar',
        jar,
        '--spark-master-url',
        master_url,
        '--job-host',
        HOST,
        '--job-port',
        str(JOB_PORT),
        '--artifact-port',
        str(ARTIFACT_PORT),
        '--expansion-port',
        str(EXPANSION_PORT),
        '--artifacts-dir',
        artifacts,
      ],
      env=_daemon_env(),
      cwd=cluster.run_dir('spark'),
    )
  _wait(
    'Beam Spark job server',
    'job-server',
    lambda: cluster.port_open(HOST, JOB_PORT),
  )


def _start_worker_pool(progress: Progress) -> None:
  if not cluster.port_open(HOST, WORKER_POOL_PORT):
    progress(f'starting a Beam worker pool at localhost:{WORKER_POOL_PORT}')
    # It starts each SDK worker as `python`: this environment's.
    path = (
      os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')
    )
    cluster.start(
      'spark',
      'worker-pool',
      [
        sys.executable,
        '-m',
        'apache_beam.runners.worker.worker_pool_main',
        f'--service_port={WORKER_POOL_PORT}',
      ],
      env={'PATH': path},
      cwd=cluster.run_dir('spark'),
    )
  _wait(
    'Beam worker pool',
    'worker-pool',
    lambda: cluster.port_open(HOST, WORKER_POOL_PORT),
  )


def _up(progress: Progress) -> Dict[str, Any]:
  missing = _missing()
  if missing:
    raise RuntimeError(missing)
  master_url = start_spark(progress)
  _start_job_server(progress, downloads.cached_jar(JOB_SERVER), master_url)
  _start_worker_pool(progress)
  return {'master': master_url, 'job_endpoint': f'localhost:{JOB_PORT}'}


def _down(progress: Progress) -> List[str]:
  del progress
  return cluster.stop('spark')


def _status() -> Dict[str, str]:
  where = {
    'master': f'spark://{HOST}:{MASTER_PORT} '
    f'(UI http://{HOST}:{MASTER_UI_PORT})',
    'worker': f'{HOST}:{WORKER_UI_PORT}',
    'job-server': f'localhost:{JOB_PORT}',
    'worker-pool': f'localhost:{WORKER_POOL_PORT}',
  }
  running = {
    name: where.get(name, f'pid {pid}')
    for name, pid in cluster.processes('spark').items()
  }
  state = master_state(timeout=1.0)
  if 'worker' in running and state is not None:
    running['worker'] += f' ({_alive_workers(state)} alive at the master)'
  return running


register(
  Engine(
    name='spark',
    options=SparkOptions,
    beam_args=_beam_args,
    problem=_problem,
    local_workers=True,
    description="a Spark standalone cluster through Beam's Spark job server "
    '(master, job_endpoint)',
    cluster=LocalCluster(
      fetch=_fetch, up=_up, down=_down, status=_status, missing=_missing
    ),
  )
)
