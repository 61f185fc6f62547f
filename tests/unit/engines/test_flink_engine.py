"""The Flink engine (pipeline/engines/flink.py).

Fast tests of its options, Beam args and pre-flight words, with no cluster
(ports are opened here by plain sockets, the cache is a temp folder); then,
marked e2e, a parallel Flink SQL job on the session cluster alone (no Beam
jar needed) and `down` leaving nothing running; then the default pipeline
with its Beam components on a local Flink cluster that `LocalCluster.up`
starts, against a DirectRunner run of the same spec. The e2e tests skip,
saying why, where Java or the cached Flink parts are missing (`python -m
pipeline engine fetch flink` gets them; tests never download).
"""

import collections
import csv
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

import pydantic
import pytest

from pipeline.engines import cluster, downloads, flink
from pipeline.engines import registry as engines
from tests.conftest import (
  DATA_CSV,
  DEFAULT_SPEC,
  closed_port,
  pipeline_fixture,
  run_spec,
)

# Options and Beam args.


def test_registered_with_a_local_cluster_and_local_workers():
  engine = engines.get('flink')
  assert engine.options is flink.FlinkOptions
  assert engine.local_workers  # TFX then builds no package of the project
  assert engine.cluster is not None


def test_default_options_reach_the_shared_job_server_with_loopback_workers():
  options = flink.FlinkOptions()
  assert (
    options.master,
    options.job_endpoint,
    options.parallelism,
    options.environment,
  ) == ('localhost:8081', 'localhost:8099', 2, 'loopback')
  assert flink.beam_args(options) == [
    '--runner=PortableRunner',
    '--job_endpoint=localhost:8099',
    '--parallelism=2',
    '--environment_type=LOOPBACK',
  ]


def test_external_workers_name_the_worker_pool():
  args = flink.beam_args(
    flink.FlinkOptions(environment='external', worker_pool='localhost:50001')
  )
  assert args[-2:] == [
    '--environment_type=EXTERNAL',
    '--environment_config=localhost:50001',
  ]


def test_without_a_job_endpoint_beam_starts_a_job_server_from_the_jar():
  args = flink.beam_args(
    flink.FlinkOptions(
      job_endpoint=None,
      master='flink:8081',
      job_server_jar='/jars/js.jar',
      parallelism=3,
    )
  )
  assert args[:4] == [
    '--runner=FlinkRunner',
    '--flink_master=flink:8081',
    '--flink_version=1.18',
    '--flink_job_server_jar=/jars/js.jar',
  ]
  # The JVM Beam starts gets the opens Java 17 needs (Kryo).
  assert [
    a.split('=', 1)[1]
    for a in args
    if a.startswith('--job_server_jvm_properties=')
  ] == cluster.JAVA_17_OPENS
  assert '--parallelism=3' in args


def test_without_a_job_endpoint_the_cached_jar_is_the_default(engines_home):
  path = downloads.jar_path(flink.JOB_SERVER)
  os.makedirs(os.path.dirname(path))
  open(path, 'wb').close()
  args = flink.beam_args(flink.FlinkOptions(job_endpoint=None))
  assert f'--flink_job_server_jar={path}' in args


def test_beam_knows_every_arg_and_puts_the_opens_before_the_jar(tmp_path):
  # pylint: disable=g-import-not-at-top
  from apache_beam.options import pipeline_options as po
  from apache_beam.runners.portability import flink_runner

  # pylint: enable=g-import-not-at-top
  args = flink.beam_args(flink.FlinkOptions(environment='external'))
  options = po.PipelineOptions(args)
  # No arg is unknown to Beam (it would drop it silently).
  assert options.get_all_options(retain_unknown_options=True) == (
    options.get_all_options()
  )
  portable = options.view_as(po.PortableOptions)
  assert (
    portable.job_endpoint,
    portable.environment_type,
    portable.environment_config,
  ) == ('localhost:8099', 'EXTERNAL', 'localhost:50000')
  assert options.view_as(po.FlinkRunnerOptions).parallelism == 2

  jar = tmp_path / 'job-server.jar'
  jar.write_bytes(b'')
  options = po.PipelineOptions(
    flink.beam_args(
      flink.FlinkOptions(job_endpoint=None, job_server_jar=str(jar))
    )
    + [f'--artifacts_dir={tmp_path}']
  )
  assert options.view_as(po.FlinkRunnerOptions).flink_version == '1.18'
  command, _ = flink_runner.FlinkJarJobServer(
    options
  ).subprocess_cmd_and_endpoint()
  assert command[:2] == ['java', '-jar']
  assert command[2 : 2 + len(cluster.JAVA_17_OPENS)] == cluster.JAVA_17_OPENS
  assert command[2 + len(cluster.JAVA_17_OPENS)] == str(jar)


@pytest.mark.parametrize(
  'options',
  [
    {'parallelism': 0},
    {'environment': 'docker'},
    {'zone': 'a'},
    {'parallelism': '2'},
  ],
)
def test_bad_options_are_refused(options):
  with pytest.raises(pydantic.ValidationError):
    flink.FlinkOptions.model_validate(options)


def test_spec_refuses_a_bad_option_in_one_line():
  # pylint: disable=g-import-not-at-top
  from pipeline.definition import spec as spec_lib

  # pylint: enable=g-import-not-at-top
  with pytest.raises(
    spec_lib.SpecError, match=r'runner\.engine_options\.parallelism'
  ):
    spec_lib.load_spec(
      DEFAULT_SPEC,
      {'runner.engine': 'flink', 'runner.engine_options': {'parallelism': 0}},
    )


def test_the_spec_s_direct_args_are_dropped():
  args = engines.pipeline_args(
    'flink',
    flink.FlinkOptions(),
    [
      '--direct_running_mode=in_memory',
      '--direct_num_workers=1',
      '--job_name=x',
    ],
  )
  assert not [a for a in args if a.startswith('--direct_')]
  assert args[-1] == '--job_name=x'


# What stands in the way (the pre-flight's one line).


def test_nothing_stands_in_the_way_when_every_daemon_answers(listening):
  options = flink.FlinkOptions(
    master=listening(),
    job_endpoint=listening(),
    environment='external',
    worker_pool=listening(),
  )
  assert flink.problem(options) is None


def test_a_master_that_does_not_answer(listening):
  address = closed_port()
  message = flink.problem(
    flink.FlinkOptions(master=address, job_endpoint=listening())
  )
  assert f'no Flink master answers at {address}' in message
  assert '`python -m pipeline engine up flink`' in message
  assert 'runner.engine_options.master' in message


def test_a_job_server_that_does_not_answer(listening):
  address = closed_port()
  message = flink.problem(
    flink.FlinkOptions(master=listening(), job_endpoint=address)
  )
  assert f'no Beam Flink job server answers at {address}' in message
  assert 'engine up flink' in message


def test_a_worker_pool_that_does_not_answer(listening):
  message = flink.problem(
    flink.FlinkOptions(
      master=listening(),
      job_endpoint=listening(),
      environment='external',
      worker_pool=closed_port(),
    )
  )
  assert 'no Beam worker pool answers' in message


def test_beam_s_own_job_server_needs_java(monkeypatch, listening):
  monkeypatch.setattr(cluster, 'java', lambda: None)
  message = flink.problem(
    flink.FlinkOptions(job_endpoint=None, master=listening())
  )
  assert 'install a JDK 17' in message


def test_beam_s_own_job_server_needs_the_jar(engines_home, listening):
  del engines_home
  if cluster.java() is None:
    pytest.skip('no Java on this machine')
  message = flink.problem(
    flink.FlinkOptions(job_endpoint=None, master=listening())
  )
  assert 'job-server jar' in message and 'not cached' in message
  assert '`python -m pipeline engine fetch flink`' in message
  message = flink.problem(
    flink.FlinkOptions(
      job_endpoint=None, master=listening(), job_server_jar='/no/such.jar'
    )
  )
  assert '/no/such.jar is not a file' in message


def test_a_shared_job_server_needs_no_java_here(monkeypatch, listening):
  monkeypatch.setattr(cluster, 'java', lambda: None)
  assert (
    flink.problem(
      flink.FlinkOptions(master=listening(), job_endpoint=listening())
    )
    is None
  )


# The local cluster, without starting it.


def test_missing_names_the_parts_and_how_to_get_them(engines_home):
  del engines_home
  if cluster.java() is None:
    pytest.skip('no Java on this machine')
  message = engines.get('flink').cluster.missing()
  assert 'Flink distribution' in message and 'job-server jar' in message
  assert '`python -m pipeline engine fetch flink`' in message


def test_missing_java_comes_first(monkeypatch):
  monkeypatch.setattr(cluster, 'java', lambda: None)
  assert 'install a JDK 17' in engines.get('flink').cluster.missing()


def test_a_jar_that_maven_does_not_serve_says_where_to_put_it(
  engines_home, monkeypatch
):
  del engines_home
  fetched = []
  monkeypatch.setattr(
    downloads, 'fetch_dist', lambda name, *reqs, progress: fetched.append(name)
  )

  def not_served(*args, **kwargs):
    raise urllib.error.HTTPError(
      'https://maven/x.jar', 404, 'Not Found', None, None
    )

  monkeypatch.setattr(downloads, 'fetch_jar', not_served)
  with pytest.raises(RuntimeError) as e:
    engines.get('flink').cluster.fetch(lambda line: None)
  assert fetched == [flink.DIST]  # the distribution is fetched first
  assert 'HTTP 404' in str(e.value)
  assert downloads.jar_path(flink.JOB_SERVER) in str(e.value)


def test_up_refuses_what_is_missing_before_starting_anything(engines_home):
  del engines_home
  with pytest.raises(RuntimeError, match='not cached|JDK'):
    engines.get('flink').cluster.up(lambda line: None)
  assert engines.get('flink').cluster.status() == {}


def test_configuration_fits_the_machine_and_opens_java_17(engines_home):
  conf = flink.flink_conf()
  mib = {'m': 1, 'g': 1024}

  def size(value):
    return int(value[:-1]) * mib[value[-1]]

  total = (
    size(conf['jobmanager.memory.process.size'])
    + flink.TASK_MANAGERS * size(conf['taskmanager.memory.process.size'])
    + size(flink.JOB_SERVER_HEAP)
  )
  assert total <= 8 * 1024  # of a 24 GiB machine that also trains models
  assert conf['taskmanager.memory.network.fraction'] > 0.1  # Flink's default
  assert conf['rest.port'] == 8081
  opts = conf['env.java.opts.all'].split()
  assert set(cluster.JAVA_17_OPENS) <= set(opts)
  for key in ('env.log.dir', 'env.pid.dir', 'io.tmp.dirs'):
    assert conf[key].startswith(str(engines_home))


# End to end: the session cluster alone runs Flink's own work (no Beam).

# The PyPI distribution has no SQL gateway (the SQL client cannot start), so
# a tiny Table API program runs a SQL script: SET lines set the job's
# configuration, every other statement runs to its end.
_RUN_SQL_JAVA = r"""
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;

public class RunSql {
  public static void main(String[] args) throws Exception {
    TableEnvironment tables =
        TableEnvironment.create(EnvironmentSettings.inBatchMode());
    Pattern set = Pattern.compile(
        "\\s*SET\\s+'([^']+)'\\s*=\\s*'([^']*)'\\s*",
        Pattern.CASE_INSENSITIVE);
    for (String statement : Files.readString(Paths.get(args[0])).split(";")) {
      Matcher m = set.matcher(statement);
      if (m.matches()) {
        tables.getConfig().getConfiguration().setString(m.group(1), m.group(2));
      } else if (!statement.isBlank()) {
        tables.executeSql(statement).await();
      }
    }
  }
}
"""

# Every slot of the cluster, so that the job needs both TaskManagers' slots.
SQL_PARALLELISM = flink.TASK_MANAGERS * flink.SLOTS_PER_TASK_MANAGER


def _counts_sql(source: str, sink: str) -> str:
  """Counts the cases of `source` (the bundled CSV) per diagnosis, with
  their mean radius, into CSV files under `sink`."""
  with open(source) as f:
    header = next(csv.reader(f))
  # All STRING: the CSV format cannot skip a header, so its row is read and
  # filtered out; a DOUBLE column would fail on it.
  columns = ',\n'.join(f'  `{name}` STRING' for name in header)
  # Flink's adaptive batch scheduler would size a job this small at one
  # subtask.
  return f"""
SET 'execution.batch.adaptive.auto-parallelism.enabled' = 'false';
SET 'table.exec.resource.default-parallelism' = '{SQL_PARALLELISM}';
CREATE TABLE cases (
{columns}
) WITH ('connector' = 'filesystem', 'path' = '{source}', 'format' = 'csv');
CREATE TABLE counts (diagnosis STRING, n BIGINT, mean_radius DOUBLE)
  WITH ('connector' = 'filesystem', 'path' = '{sink}', 'format' = 'csv');
INSERT INTO counts
  SELECT diagnosis, COUNT(*), AVG(CAST(mean_radius AS DOUBLE)) FROM cases
  WHERE diagnosis <> 'diagnosis' GROUP BY diagnosis;
"""


def _rest(path: str):
  """The local JobManager's REST answer at `path`, as JSON."""
  url = f'http://localhost:{flink.REST_PORT}{path}'
  with urllib.request.urlopen(url, timeout=10) as response:
    return json.load(response)


def _jdk_tool(name: str) -> str:
  """`name` (javac, jar) of the JDK whose java the cluster runs on."""
  path = os.path.join(os.path.dirname(os.path.realpath(cluster.java())), name)
  if not os.access(path, os.X_OK):
    pytest.skip(f'no {name} beside {cluster.java()} (a JRE, not a JDK)')
  return path


def _cluster_processes() -> list:
  """Pids of this machine's processes that run from the local cluster's run
  folder (the JVMs name their conf and log files there)."""
  run_dir = cluster.run_dir(flink.ENGINE)
  pids = []
  for entry in os.listdir('/proc'):
    try:
      with open(f'/proc/{entry}/cmdline', 'rb') as f:
        if run_dir.encode() in f.read():
          pids.append(int(entry))
    except (OSError, ValueError):
      pass  # not a process, or one that just exited
  return pids


@pytest.fixture
def flink_session():
  """The local session cluster without Beam's parts (their jar need not be
  cached), up for one test and down after it."""
  local = engines.get('flink').cluster
  lacking = local.missing(beam=False)
  if lacking:
    pytest.skip(f'no local Flink session cluster: {lacking}')
  if local.status():
    pytest.skip('a local Flink cluster runs already: these tests stop it')
  started = time.monotonic()
  local.up(print, beam=False)
  print(f'flink session up in {time.monotonic() - started:.1f} s')
  yield local
  local.down(print)  # nothing left to stop when the test stopped it


def _run_sql_jar(home: str, folder) -> str:
  """RunSql.java compiled against Flink's jars and packed into a jar in
  `folder`; its path."""
  (folder / 'RunSql.java').write_text(_RUN_SQL_JAVA)
  subprocess.run(
    [
      _jdk_tool('javac'),
      '-cp',
      os.path.join(home, 'lib', '*'),
      '-d',
      'classes',
      'RunSql.java',
    ],
    cwd=folder,
    check=True,
  )
  subprocess.run(
    [_jdk_tool('jar'), 'cfe', 'run-sql.jar', 'RunSql', '-C', 'classes', '.'],
    cwd=folder,
    check=True,
  )
  return str(folder / 'run-sql.jar')


def _flink_run(home: str, jar: str, script) -> subprocess.CompletedProcess:
  """`flink run` of `jar` on `script`, against the local session cluster."""
  started = time.monotonic()
  proc = subprocess.run(
    [
      os.path.join(home, 'bin', 'flink'),
      'run',
      '-m',
      f'localhost:{flink.REST_PORT}',
      jar,
      str(script),
    ],
    # The cluster's own configuration (the one `up` wrote).
    env={
      **os.environ,
      'FLINK_CONF_DIR': os.path.join(cluster.run_dir(flink.ENGINE), 'conf'),
    },
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  print(f'flink job in {time.monotonic() - started:.1f} s')
  return proc


def _radii_by_diagnosis() -> dict:
  """The counts (and mean radius) Python computes from the same file."""
  cases = collections.defaultdict(list)
  with open(DATA_CSV) as f:
    for row in csv.DictReader(f):
      cases[row['diagnosis']].append(float(row['mean_radius']))
  return cases


@pytest.mark.e2e
def test_the_session_cluster_runs_a_parallel_sql_job(flink_session, tmp_path):
  del flink_session
  home = flink._flink_home()  # pylint: disable=protected-access
  jar = _run_sql_jar(home, tmp_path)
  sink = tmp_path / 'counts'
  script = tmp_path / 'counts.sql'
  script.write_text(_counts_sql(DATA_CSV, str(sink)))
  proc = _flink_run(home, jar, script)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  jid = re.search(r'JobID ([0-9a-f]{32})', proc.stdout).group(1)

  cases = _radii_by_diagnosis()
  flink_rows = [
    row
    for part in sorted(sink.glob('part-*'))
    for row in csv.reader(part.open())
  ]
  assert {d: int(n) for d, n, _ in flink_rows} == {
    d: len(radii) for d, radii in cases.items()
  }
  for d, _, mean in flink_rows:
    assert float(mean) == pytest.approx(sum(cases[d]) / len(cases[d]))

  assert {job['jid']: job['state'] for job in flink.jobs()}[jid] == 'FINISHED'
  vertices = _rest(f'/jobs/{jid}')['vertices']
  assert len(vertices) == 2, vertices  # the read and the aggregation
  assert {v['parallelism'] for v in vertices} == {SQL_PARALLELISM}
  # The shuffle by diagnosis spread the groups over subtasks: the work was
  # split, not only planned so.
  final = _rest(f'/jobs/{jid}/vertices/{vertices[-1]["id"]}')
  assert (
    len([s for s in final['subtasks'] if s['metrics']['read-records']]) == 2
  ), final['subtasks']


@pytest.mark.e2e
def test_down_stops_every_daemon_of_the_session_cluster(flink_session):
  assert flink.task_managers() == flink.TASK_MANAGERS
  assert _cluster_processes()
  stopped = flink_session.down(print)
  assert sorted(stopped) == ['jobmanager', 'taskmanager-1', 'taskmanager-2']
  assert cluster.processes(flink.ENGINE) == {}
  assert flink_session.status() == {}
  for port in (flink.REST_PORT, flink.RPC_PORT):
    assert not cluster.port_open('localhost', port), port
  assert _cluster_processes() == []


# End to end: the default pipeline on a local Flink cluster.

# A budget that still blesses (calibration within [0.8, 1.2]).
BUDGET = ['tuner.max_trials=2', 'tuner.max_epochs=2', 'training.epochs=20']


@pytest.fixture(scope='module')
def flink_cluster():
  """The local cluster, up for this module (one already up is used and
  left up); the engine options that reach it."""
  local = engines.get('flink').cluster
  lacking = local.missing()
  if lacking:
    pytest.skip(f'no local Flink cluster: {lacking}')
  was_up = bool(local.status())
  started = time.monotonic()
  options = local.up(print)
  print(f'flink up in {time.monotonic() - started:.1f} s')
  yield options
  if not was_up:
    local.down(print)


@pytest.fixture(scope='module')
def runs_base(tmp_path_factory):
  return str(tmp_path_factory.mktemp('flink'))


@pipeline_fixture(scope='module')
def direct_run(runs_base):
  proc, summary = run_spec(
    None, os.path.join(runs_base, 'direct'), 'direct', BUDGET
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return summary


@pipeline_fixture(scope='module')
def flink_run(runs_base, flink_cluster):
  """The run on Flink: (its summary, the Flink jobs it started)."""
  before = {job['jid'] for job in flink.jobs()}
  proc, summary = run_spec(
    None,
    os.path.join(runs_base, 'flink'),
    'flink',
    [
      *BUDGET,
      'runner.engine=flink',
      f'runner.engine_options={json.dumps(flink_cluster)}',
    ],
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return summary, [job for job in flink.jobs() if job['jid'] not in before]


@pytest.mark.e2e
def test_beam_components_run_on_flink_and_the_model_is_blessed(flink_run):
  summary, jobs = flink_run
  assert summary['status'] == 'succeeded'
  assert summary['blessed'] is True
  # One Flink job at least for each of CsvExampleGen, StatisticsGen,
  # Transform and Evaluator, and every one finished.
  assert len(jobs) >= 4, jobs
  assert {job['state'] for job in jobs} == {'FINISHED'}, jobs
  # TODO: assert that ML Metadata records the engine 'flink' on the four
  # Beam components' executions, once the runner writes it.


@pytest.mark.e2e
def test_flink_evaluates_as_the_direct_runner_does(flink_run, direct_run):
  summary, _ = flink_run
  assert set(summary['metrics']) == set(direct_run['metrics'])
  for name, value in direct_run['metrics'].items():
    assert summary['metrics'][name] == pytest.approx(value, abs=0.01), name
