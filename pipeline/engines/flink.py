"""Flink: a Flink session cluster, reached through Beam's Flink job server.

Beam's Python SDK does not talk to Flink itself: a Java job server
(`beam-runners-flink-1.18-job-server`, matching Beam 2.59) turns each
portable pipeline into a Flink job and submits it to the cluster's REST
endpoint. Two ways to reach one (`FlinkOptions.job_endpoint`):

- a shared job-server daemon (the default, `localhost:8099`): one JVM for
  every component, started by `python -m pipeline engine up flink`;
- none (`job_endpoint: null`): Beam's FlinkRunner starts a job server of its
  own from the cached jar for each pipeline (a JVM start each, seconds).

The Python side of every stage runs on this machine, never in a container:
`loopback` runs it in the submitting process (a component's executor), and
`external` asks the worker pool that `up` starts, which imports the project
from this checkout. Either way the project need not be packaged and staged
(`local_workers`).

The local cluster (`python -m pipeline engine fetch|up|down flink`) is the
Flink 1.18.1 distribution that PyPI's apache-flink wheels carry (installed
into the engines cache, never into the project's environment: it pins
apache-beam < 2.49), with a configuration of ours in the run folder: one
JobManager and two TaskManagers on loopback, sized for a 24 GiB machine.

No Beam here: the spec and the pre-flight import the engines.
"""

import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Literal, Optional

from pydantic import Field

from pipeline.engines import cluster, downloads
from pipeline.engines.base import (
  Engine,
  LocalCluster,
  Options,
  Progress,
  register,
  worker_args,
)

ENGINE = 'flink'
FLINK_VERSION = '1.18'
DIST = 'flink-1.18.1'
DIST_REQUIREMENTS = ('apache-flink==1.18.1', 'apache-flink-libraries==1.18.1')
JOB_SERVER_GROUP = 'org.apache.beam'
JOB_SERVER = f'beam-runners-flink-{FLINK_VERSION}-job-server'

# The local cluster's ports (loopback only).
REST_PORT = 8081
RPC_PORT = 6123
JOB_PORT = 8099
ARTIFACT_PORT = 8098
EXPANSION_PORT = 8097
WORKER_POOL_PORT = 50000
TASK_MANAGERS = 2
SLOTS_PER_TASK_MANAGER = 2

# Memory for a 24 GiB machine that also runs the pipeline's own processes
# (Tuner and Trainer in TensorFlow, the Python SDK harnesses): about 7 GiB
# of JVMs in all.
JOB_MANAGER_MEMORY = '1024m'
TASK_MANAGER_MEMORY = '2560m'
JOB_SERVER_HEAP = '1g'

# Where the project lives: the worker pool's processes import it from here.
_REPO = os.path.dirname(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)


class FlinkOptions(Options):
  """How the Beam components reach a Flink cluster."""

  master: str = Field(
    'localhost:8081', description="the JobManager's REST address, host:port"
  )
  job_endpoint: Optional[str] = Field(
    'localhost:8099',
    description="a running Beam Flink job server's "
    'host:port; null: Beam starts one from the jar for each pipeline',
  )
  parallelism: int = Field(
    2,
    ge=1,
    description="each Beam job's parallelism (the cluster's slots bound it)",
  )
  job_server_jar: Optional[str] = Field(
    None,
    description='the Beam Flink 1.18 job-server jar, when '
    'job_endpoint is null; null: the one `engine fetch flink` cached',
  )
  environment: Literal['loopback', 'external'] = Field(
    'loopback',
    description="where the Python stages run: 'loopback' in "
    "the component's own process (the TaskManagers must run on this "
    "machine), 'external' in the worker pool",
  )
  worker_pool: str = Field(
    'localhost:50000',
    description="the Beam worker pool's host:port (environment 'external')",
  )


def _jar(options: FlinkOptions) -> Optional[str]:
  return options.job_server_jar or downloads.cached_jar(JOB_SERVER)


def beam_args(options: FlinkOptions) -> List[str]:
  """The Beam args that send a component's pipelines to Flink."""
  if options.job_endpoint:
    runner = [
      '--runner=PortableRunner',
      f'--job_endpoint={options.job_endpoint}',
    ]
  else:
    # The job server Beam starts runs on Java 17 only with the JDK's
    # internals opened to Kryo; Beam puts these options before the jar.
    runner = [
      '--runner=FlinkRunner',
      f'--flink_master={options.master}',
      f'--flink_version={FLINK_VERSION}',
      # (problem() says so when there is none)
      f'--flink_job_server_jar={_jar(options) or JOB_SERVER + ".jar"}',
      *[f'--job_server_jvm_properties={opt}' for opt in cluster.JAVA_17_OPENS],
    ]
  return [
    *runner,
    f'--parallelism={options.parallelism}',
    *worker_args(options.environment, options.worker_pool),
  ]


_START_IT = (
  'start one with `python -m pipeline engine up flink` or fix '
  'runner.engine_options.'
)


def problem(options: FlinkOptions) -> Optional[str]:
  """What stands in the way of running on Flink now; None when nothing."""
  if not options.job_endpoint:
    # Only then does this machine start a JVM: a job server already running
    # brought its own Java.
    if cluster.java() is None:
      return (
        "no Java on this machine for Beam's Flink job server: "
        'install a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless) '
        'or set JAVA_HOME'
      )
    if options.job_server_jar and not os.path.isfile(options.job_server_jar):
      return (
        f'runner.engine_options.job_server_jar '
        f'{options.job_server_jar} is not a file'
      )
    if _jar(options) is None:
      return (
        f'the Beam Flink job-server jar ({JOB_SERVER}) is not cached: '
        'run `python -m pipeline engine fetch flink` (or `make engines`)'
      )
  if not cluster.answers(options.master, REST_PORT):
    return f'no Flink master answers at {options.master}: {_START_IT}master'
  if options.job_endpoint and not cluster.answers(
    options.job_endpoint, JOB_PORT
  ):
    return (
      f'no Beam Flink job server answers at {options.job_endpoint}: '
      f'{_START_IT}job_endpoint'
    )
  if options.environment == 'external' and not cluster.answers(
    options.worker_pool, WORKER_POOL_PORT
  ):
    return (
      f'no Beam worker pool answers at {options.worker_pool}: '
      f'{_START_IT}worker_pool'
    )
  return None


# The local cluster.


def _flink_home() -> Optional[str]:
  """The cached distribution's FLINK_HOME (bin/, lib/, conf/), when it is
  there: pyflink/ of the apache-flink wheels."""
  dist = downloads.cached_dist(DIST)
  if dist is None:
    return None
  home = os.path.join(dist, 'pyflink')
  return (
    home if os.path.isfile(os.path.join(home, 'bin', 'jobmanager.sh')) else None
  )


def missing(beam: bool = True) -> Optional[str]:
  """What `up` lacks on this machine, as words naming what to do.

  Args:
    beam: whether Beam's parts count (`up(beam=False)` needs no jar).
  """
  if cluster.java() is None:
    return 'no Java on this machine: install a JDK 17 or set JAVA_HOME'
  lacking = []
  if _flink_home() is None:
    lacking.append(f'the Flink distribution ({DIST})')
  if beam and downloads.cached_jar(JOB_SERVER) is None:
    lacking.append(f'the Beam job-server jar ({JOB_SERVER})')
  if lacking:
    return (
      f'{" and ".join(lacking)} not cached: run `python -m pipeline '
      'engine fetch flink` (or `make engines`)'
    )
  return None


def fetch(progress: Progress) -> None:
  """Caches the Flink distribution and Beam's Flink job-server jar."""
  downloads.fetch_dist(DIST, *DIST_REQUIREMENTS, progress=progress)
  try:
    downloads.fetch_jar(JOB_SERVER_GROUP, JOB_SERVER, progress=progress)
  except urllib.error.HTTPError as e:
    # Some Maven mirrors serve Beam's SDK jars but not its runners'.
    raise RuntimeError(
      f'the Maven repository did not serve {JOB_SERVER} '
      f'{downloads.BEAM_VERSION} (HTTP {e.code}); copy that jar from a '
      f'machine that has it to {downloads.jar_path(JOB_SERVER)}'
    ) from e


def _run_dir(*parts: str) -> str:
  return os.path.join(cluster.run_dir(ENGINE), *parts)


def _log(name: str) -> str:
  return _run_dir(f'{name}.log')


# The options the shipped flink-conf.yaml carries for Java 17 (exports the
# JDK's compiler and RMI internals), with the opens Beam's Kryo needs.
_SHIPPED_JAVA_EXPORTS = [
  f'--add-exports={module}=ALL-UNNAMED'
  for module in (
    'java.base/sun.net.util',
    'java.rmi/sun.rmi.registry',
    'jdk.compiler/com.sun.tools.javac.api',
    'jdk.compiler/com.sun.tools.javac.file',
    'jdk.compiler/com.sun.tools.javac.parser',
    'jdk.compiler/com.sun.tools.javac.tree',
    'jdk.compiler/com.sun.tools.javac.util',
    'java.security.jgss/sun.security.krb5',
  )
]


def flink_conf() -> Dict[str, Any]:
  """The local cluster's flink-conf.yaml, as a dict."""
  return {
    'jobmanager.rpc.address': 'localhost',
    'jobmanager.rpc.port': RPC_PORT,
    'jobmanager.bind-host': 'localhost',
    'rest.address': 'localhost',
    'rest.bind-address': 'localhost',
    'rest.port': REST_PORT,
    'taskmanager.host': 'localhost',
    'taskmanager.bind-host': 'localhost',
    'taskmanager.numberOfTaskSlots': SLOTS_PER_TASK_MANAGER,
    'parallelism.default': 2,
    'jobmanager.memory.process.size': JOB_MANAGER_MEMORY,
    'taskmanager.memory.process.size': TASK_MANAGER_MEMORY,
    # Beam's batch jobs shuffle many times, each exchange taking network
    # buffers at every slot: Flink's default 10 % is known to fail them
    # ("Insufficient number of network buffers"). Managed memory (the
    # sorts of GroupByKey) gives up what they take.
    'taskmanager.memory.network.fraction': 0.25,
    'taskmanager.memory.network.min': '256m',
    'taskmanager.memory.managed.fraction': 0.25,
    'env.java.opts.all': ' '.join(
      _SHIPPED_JAVA_EXPORTS + cluster.JAVA_17_OPENS
    ),
    'env.log.dir': _run_dir('log'),
    'env.pid.dir': _run_dir('pid'),
    'io.tmp.dirs': _run_dir('tmp'),
    'jobmanager.execution.failover-strategy': 'region',
    # One node: a failed job fails the run at once, not after retries.
    'restart-strategy.type': 'none',
  }


def _write_conf(home: str) -> str:
  """Writes the configuration folder into the run folder; its path."""
  folder = _run_dir('conf')
  os.makedirs(folder, exist_ok=True)
  for name in ('log', 'pid', 'tmp'):
    os.makedirs(_run_dir(name), exist_ok=True)
  with open(os.path.join(folder, 'flink-conf.yaml'), 'w') as f:
    for key, value in flink_conf().items():
      f.write(f'{key}: {value}\n')
  for name in ('log4j-console.properties', 'logback-console.xml'):
    shutil.copy(os.path.join(home, 'conf', name), folder)
  return folder


def _get(path: str, timeout: float = 5) -> Any:
  url = f'http://localhost:{REST_PORT}{path}'
  with urllib.request.urlopen(url, timeout=timeout) as response:
    return json.load(response)


def task_managers() -> int:
  """How many TaskManagers the local JobManager has registered (0 when it
  does not answer)."""
  try:
    return len(_get('/taskmanagers').get('taskmanagers', []))
  except (OSError, ValueError):
    return 0


def jobs() -> List[Dict[str, Any]]:
  """The local cluster's jobs (/jobs/overview): name, state, ..."""
  return _get('/jobs/overview').get('jobs', [])


def _daemons(beam: bool = True) -> Dict[str, int]:
  """The daemons of a complete local cluster (with Beam's or without),
  name -> the port it answers on (0: none)."""
  session = {
    'jobmanager': REST_PORT,
    **{f'taskmanager-{i}': 0 for i in range(1, TASK_MANAGERS + 1)},
  }
  if not beam:
    return session
  return {**session, 'job-server': JOB_PORT, 'worker-pool': WORKER_POOL_PORT}


def _check_pids(names: List[str]) -> None:
  running = cluster.processes(ENGINE)
  for name in names:
    if name not in running:
      raise RuntimeError(
        f'Flink {name} exited while starting; see {_log(name)}'
      )


def _wait(name: str, what: str, port: int, pid: int, seconds: float) -> None:
  """Waits until daemon `name` answers on `port`.

  Raises:
    RuntimeError: it exited or did not answer in time; names its log.
  """
  try:
    cluster.wait_for_port('localhost', port, what, seconds=seconds, pids=[pid])
  except RuntimeError:
    if cluster.alive(pid):
      raise RuntimeError(
        f'{what} did not answer on localhost:{port} within '
        f'{seconds:.0f} s; see {_log(name)}'
      ) from None
    raise RuntimeError(
      f'{what} exited while starting; see {_log(name)}'
    ) from None


def _start_flink(progress: Progress) -> None:
  """Starts the JobManager and the TaskManagers; returns when every
  TaskManager has registered."""
  home = _flink_home()
  conf = _write_conf(home)
  env = {
    'FLINK_CONF_DIR': conf,
    'FLINK_LOG_DIR': _run_dir('log'),
    'FLINK_PID_DIR': _run_dir('pid'),
  }
  java_home = os.path.dirname(os.path.dirname(os.path.realpath(cluster.java())))
  env['JAVA_HOME'] = java_home
  bin_dir = os.path.join(home, 'bin')
  progress(f'starting the Flink JobManager (REST on localhost:{REST_PORT})')
  pid = cluster.start(
    ENGINE,
    'jobmanager',
    [os.path.join(bin_dir, 'jobmanager.sh'), 'start-foreground'],
    env=env,
  )
  _wait('jobmanager', 'the Flink JobManager', REST_PORT, pid, 120)
  for i in range(1, TASK_MANAGERS + 1):
    name = f'taskmanager-{i}'
    tmp = _run_dir('tmp', name)
    os.makedirs(tmp, exist_ok=True)
    progress(f'starting Flink {name}')
    # Each its own id and temp folders; RPC and data ports are picked free.
    cluster.start(
      ENGINE,
      name,
      [
        os.path.join(bin_dir, 'taskmanager.sh'),
        'start-foreground',
        f'-Dtaskmanager.resource-id={name}',
        f'-Dio.tmp.dirs={tmp}',
      ],
      env=env,
    )
  deadline = time.monotonic() + 120
  while task_managers() < TASK_MANAGERS:
    _check_pids(
      ['jobmanager'] + [f'taskmanager-{i}' for i in range(1, TASK_MANAGERS + 1)]
    )
    if time.monotonic() > deadline:
      raise RuntimeError(
        f'{task_managers()} of {TASK_MANAGERS} Flink TaskManagers '
        f'registered within 120 s; see {_log("taskmanager-1")} and the '
        f'logs in {_run_dir("log")}'
      )
    time.sleep(0.5)


def _start_job_server(progress: Progress) -> None:
  progress(f'starting the Beam Flink job server (localhost:{JOB_PORT})')
  artifacts = _run_dir('artifacts')
  os.makedirs(artifacts, exist_ok=True)
  pid = cluster.start(
    ENGINE,
    'job-server',
    [
      cluster.java(),
      f'-Xmx{JOB_SERVER_HEAP}',
      *cluster.JAVA_17_OPENS,
      '-jar',
      downloads.cached_jar(JOB_SERVER),
      f'--flink-master=localhost:{REST_PORT}',
      f'--job-port={JOB_PORT}',
      f'--artifact-port={ARTIFACT_PORT}',
      f'--expansion-port={EXPANSION_PORT}',
      f'--artifacts-dir={artifacts}',
    ],
  )
  _wait('job-server', 'the Beam Flink job server', JOB_PORT, pid, 120)


def _start_worker_pool(progress: Progress) -> None:
  progress(f'starting the Beam worker pool (localhost:{WORKER_POOL_PORT})')
  # Its workers are `python` subprocesses that import the project: this
  # environment's python first on PATH, the checkout on the path, Keras 2
  # as the CLI chooses it (staged packages are not installed, tfx#4948).
  env = {
    'PATH': os.path.dirname(sys.executable)
    + os.pathsep
    + os.environ.get('PATH', ''),
    'PYTHONPATH': os.pathsep.join(
      p for p in (_REPO, os.environ.get('PYTHONPATH')) if p
    ),
    'TF_USE_LEGACY_KERAS': '1',
  }
  pid = cluster.start(
    ENGINE,
    'worker-pool',
    [
      sys.executable,
      '-m',
      'apache_beam.runners.worker.worker_pool_main',
      f'--service_port={WORKER_POOL_PORT}',
    ],
    env=env,
    cwd=_REPO,
  )
  _wait('worker-pool', 'the Beam worker pool', WORKER_POOL_PORT, pid, 60)


def _reaching(beam: bool = True) -> Dict[str, Any]:
  """The `runner.engine_options` that reach the local cluster (without the
  shared job server, Beam starts one from a jar of the options')."""
  return {
    'master': f'localhost:{REST_PORT}',
    'job_endpoint': f'localhost:{JOB_PORT}' if beam else None,
    'parallelism': 2,
  }


def status() -> Dict[str, str]:
  """What runs now: name -> 'localhost:port', or its pid."""
  ports = _daemons()
  return {
    name: (f'localhost:{ports[name]}' if ports.get(name) else f'pid {pid}')
    for name, pid in cluster.processes(ENGINE).items()
  }


def _complete(beam: bool) -> bool:
  running = cluster.processes(ENGINE)
  return (
    set(running) >= set(_daemons(beam))
    and all(
      cluster.port_open('localhost', port)
      for port in _daemons(beam).values()
      if port
    )
    and task_managers() >= TASK_MANAGERS
  )


def up(progress: Progress, beam: bool = True) -> Dict[str, Any]:
  """Starts the local cluster (a complete running one is left as it is);
  the `runner.engine_options` that reach it.

  Args:
    progress: told what starts.
    beam: False: the Flink session cluster alone, for Flink's own jobs (a
      SQL script, a jar), where Beam's job-server jar is not to be had.

  Raises:
    RuntimeError: a part is missing, a port is taken, or a daemon did not
      come up (the message names its log).
  """
  lacking = missing(beam)
  if lacking:
    raise RuntimeError(lacking)
  if _complete(beam):
    progress('the local Flink cluster is already running')
    return _reaching(beam)
  # A part-running cluster (a daemon died, a half-done `up`) starts anew.
  cluster.stop(ENGINE)
  # A daemon whose port another process holds would die, and that process
  # answer in its place.
  beam_ports = (JOB_PORT, ARTIFACT_PORT, EXPANSION_PORT, WORKER_POOL_PORT)
  for port in (REST_PORT, RPC_PORT, *(beam_ports if beam else ())):
    if cluster.port_open('localhost', port):
      raise RuntimeError(
        f'port {port} is taken by a process that `engine up flink` did not '
        "start (another Flink or Beam job server, a Spark worker's web UI "
        'on 8081?): stop it first'
      )
  started = time.monotonic()
  try:
    _start_flink(progress)
    if beam:
      _start_job_server(progress)
      _start_worker_pool(progress)
  except BaseException:
    cluster.stop(ENGINE)
    raise
  job_server = f', job server on localhost:{JOB_PORT}' if beam else ''
  progress(
    f'Flink is up in {time.monotonic() - started:.0f} s: web UI and '
    f'REST on http://localhost:{REST_PORT}{job_server}, logs in '
    f'{cluster.run_dir(ENGINE)}'
  )
  return _reaching(beam)


def down(progress: Progress) -> List[str]:
  """Stops what `up` started; their names."""
  del progress  # the caller says what stopped
  return cluster.stop(ENGINE)


register(
  Engine(
    name=ENGINE,
    options=FlinkOptions,
    beam_args=beam_args,
    problem=problem,
    local_workers=True,
    description="a Flink 1.18 session cluster through Beam's Flink job "
    'server (master, job_endpoint, parallelism)',
    cluster=LocalCluster(
      fetch=fetch, up=up, down=down, status=status, missing=missing
    ),
  )
)
