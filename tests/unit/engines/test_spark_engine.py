"""The Spark engine (pipeline/engines/spark.py).

Fast tests check its options, the Beam args they make and the pre-flight's
words, with no cluster. The e2e tests start the local cluster (`engine up
spark`, through its LocalCluster) when this machine has Java and the cached
parts (`python -m pipeline engine fetch spark`), and skip saying which part
is missing otherwise: a Spark job on the standalone cluster alone (Spark's
jars), then the default pipeline on Spark beside the same run on the
DirectRunner.
"""

import json
import os
import subprocess
import sys
import zipfile

import pytest
from pydantic import ValidationError

from pipeline.engines import cluster, downloads, spark
from pipeline.engines import registry as engines
from tests.conftest import REPO, closed_port, pipeline_fixture, run_pipeline

ENGINE = engines.get('spark')


# Options and Beam args.


def test_registered_with_a_local_cluster_and_local_workers():
  assert ENGINE.name == 'spark'
  assert ENGINE.options is spark.SparkOptions
  assert ENGINE.local_workers  # no package of the project is staged
  assert ENGINE.cluster is not None


def test_default_options_reach_the_shared_job_server_with_loopback():
  options = spark.SparkOptions()
  assert options.master == 'spark://127.0.0.1:7077'
  assert ENGINE.beam_args(options) == [
    '--runner=PortableRunner',
    '--job_endpoint=localhost:8199',
    '--environment_type=LOOPBACK',
  ]


def test_external_environment_names_the_worker_pool():
  options = spark.SparkOptions(
    environment='external', worker_pool='localhost:50111'
  )
  assert ENGINE.beam_args(options)[-2:] == [
    '--environment_type=EXTERNAL',
    '--environment_config=localhost:50111',
  ]


def test_no_job_endpoint_starts_beams_spark_runner_with_the_jar():
  options = spark.SparkOptions(
    job_endpoint=None, master='spark://m:7078', job_server_jar='/jars/js.jar'
  )
  args = ENGINE.beam_args(options)
  assert args[:3] == [
    '--runner=SparkRunner',
    '--spark_master_url=spark://m:7078',
    '--spark_job_server_jar=/jars/js.jar',
  ]
  assert args[-1] == '--environment_type=LOOPBACK'
  # Java 17's opens for the job server JVM, and for the executors it asks
  # the worker for.
  jvm = [
    a.split('=', 1)[1]
    for a in args
    if a.startswith('--job_server_jvm_property=')
  ]
  assert set(cluster.JAVA_17_OPENS) <= set(jvm)
  assert (
    '-Dspark.executor.extraJavaOptions=' + ' '.join(cluster.JAVA_17_OPENS)
    in jvm
  )


def test_no_job_endpoint_uses_the_cached_jar(engines_home):
  options = spark.SparkOptions(job_endpoint=None)
  assert not any(
    a.startswith('--spark_job_server_jar') for a in ENGINE.beam_args(options)
  )
  jar = downloads.jar_path(spark.JOB_SERVER)
  os.makedirs(os.path.dirname(jar))
  open(jar, 'wb').close()
  assert f'--spark_job_server_jar={jar}' in ENGINE.beam_args(options)


def test_beam_reads_the_args_as_meant():
  # pylint: disable=g-import-not-at-top
  from apache_beam.options.pipeline_options import (
    JobServerOptions,
    PipelineOptions,
    PortableOptions,
    SparkRunnerOptions,
  )

  # pylint: enable=g-import-not-at-top
  portable = PipelineOptions(ENGINE.beam_args(spark.SparkOptions()))
  assert portable.view_as(PortableOptions).job_endpoint == 'localhost:8199'
  assert portable.view_as(PortableOptions).environment_type == 'LOOPBACK'
  runner = PipelineOptions(
    ENGINE.beam_args(
      spark.SparkOptions(job_endpoint=None, job_server_jar='/jars/js.jar')
    )
  )
  assert runner.view_as(SparkRunnerOptions).spark_master_url == (
    'spark://127.0.0.1:7077'
  )
  assert runner.view_as(SparkRunnerOptions).spark_job_server_jar == (
    '/jars/js.jar'
  )
  properties = runner.view_as(JobServerOptions).job_server_jvm_properties
  assert '--add-opens=java.base/java.nio=ALL-UNNAMED' in properties
  assert f'-Dspark.executor.memory={spark.EXECUTOR_MEMORY}' in properties


def test_the_spec_drops_the_direct_runners_args():
  args = engines.pipeline_args(
    'spark',
    spark.SparkOptions(),
    [
      '--direct_running_mode=in_memory',
      '--direct_num_workers=1',
      '--experiments=x',
    ],
  )
  assert args[0] == '--runner=PortableRunner'
  assert args[-1] == '--experiments=x'
  assert not [a for a in args if a.startswith('--direct_')]


@pytest.mark.parametrize(
  'values, fragment',
  [
    ({'master': 'yarn'}, 'not a Spark master URL'),
    ({'master': 'spark://host'}, 'not a Spark master URL'),
    ({'job_endpoint': 'http://localhost:8199'}, 'not HOST:PORT'),
    ({'worker_pool': 'localhost'}, 'not HOST:PORT'),
    ({'environment': 'docker'}, "'loopback' or 'external'"),
    ({'parallelism': 2}, 'Extra inputs are not permitted'),
    ({'job_endpoint': 8199}, 'Input should be a valid string'),
  ],
)
def test_bad_options_are_refused(values, fragment):
  with pytest.raises(ValidationError, match=fragment):
    spark.SparkOptions.model_validate(values)


def test_local_master_is_an_option_of_the_spark_runner():
  options = spark.SparkOptions(master='local[2]', job_endpoint=None)
  assert '--spark_master_url=local[2]' in ENGINE.beam_args(options)


# What stands in the way, before a run.


def test_nothing_in_the_way_when_master_and_job_server_answer(listening):
  options = spark.SparkOptions(
    master=f'spark://{listening(spark.HOST)}',
    job_endpoint=listening(spark.HOST),
  )
  assert ENGINE.problem(options) is None


def test_a_job_server_that_does_not_answer_says_how_to_start_one(listening):
  endpoint = closed_port(spark.HOST)
  problem = ENGINE.problem(
    spark.SparkOptions(
      master=f'spark://{listening(spark.HOST)}', job_endpoint=endpoint
    )
  )
  assert f'the Spark job server {endpoint} does not answer' in problem
  assert '`python -m pipeline engine up spark`' in problem
  assert 'runner.engine_options.job_endpoint' in problem


def test_a_master_that_does_not_answer_says_how_to_start_one(listening):
  master = f'spark://{closed_port(spark.HOST)}'
  problem = ENGINE.problem(
    spark.SparkOptions(master=master, job_endpoint=listening(spark.HOST))
  )
  assert f'the Spark master {master} does not answer' in problem
  assert 'engine up spark' in problem
  assert 'runner.engine_options.master' in problem


def test_an_external_worker_pool_must_answer(listening):
  pool = closed_port(spark.HOST)
  problem = ENGINE.problem(
    spark.SparkOptions(
      master=f'spark://{listening(spark.HOST)}',
      job_endpoint=listening(spark.HOST),
      environment='external',
      worker_pool=pool,
    )
  )
  assert f'the Beam worker pool {pool} does not answer' in problem


def test_the_spark_runner_needs_the_cached_jar(engines_home, listening):
  del engines_home
  problem = ENGINE.problem(
    spark.SparkOptions(
      job_endpoint=None, master=f'spark://{listening(spark.HOST)}'
    )
  )
  assert 'beam-runners-spark-3-job-server 2.59.0) is not cached' in problem
  assert '`python -m pipeline engine fetch spark` (or `make engines`)' in (
    problem
  )


def test_the_spark_runner_needs_java(monkeypatch):
  monkeypatch.setattr(cluster, 'java', lambda: None)
  problem = ENGINE.problem(spark.SparkOptions(job_endpoint=None))
  assert problem.startswith('no Java')
  assert 'JDK 17' in problem


def test_a_named_jar_that_is_not_there(listening, tmp_path):
  problem = ENGINE.problem(
    spark.SparkOptions(
      job_endpoint=None,
      master=f'spark://{listening(spark.HOST)}',
      job_server_jar=str(tmp_path / 'nothing.jar'),
    )
  )
  assert 'nothing.jar: no such file' in problem


def test_a_local_master_is_not_looked_for(engines_home, tmp_path):
  del engines_home
  jar = tmp_path / 'js.jar'
  jar.write_bytes(b'')
  assert (
    ENGINE.problem(
      spark.SparkOptions(
        master='local[2]', job_endpoint=None, job_server_jar=str(jar)
      )
    )
    is None
  )


def test_the_cluster_says_what_it_lacks(engines_home, monkeypatch):
  missing = ENGINE.cluster.missing()
  assert f'Spark {spark.SPARK_VERSION} is not cached' in missing
  assert 'engine fetch spark' in missing
  monkeypatch.setattr(cluster, 'java', lambda: None)
  assert ENGINE.cluster.missing().startswith('no Java')
  assert ENGINE.cluster.status() == {}


def test_up_refuses_before_starting_anything(engines_home):
  with pytest.raises(RuntimeError, match='is not cached'):
    ENGINE.cluster.up(print)
  assert not os.path.exists(cluster.run_dir('spark'))


def test_the_job_servers_spark_version_is_read_from_the_jar(tmp_path):
  jar = tmp_path / 'js.jar'
  with zipfile.ZipFile(jar, 'w') as archive:
    archive.writestr(
      'spark-version-info.properties', 'version=3.2.2\nuser=x\nrevision=y\n'
    )
  assert spark.jar_spark_version(str(jar)) == '3.2.2'
  with zipfile.ZipFile(jar, 'w') as archive:
    archive.writestr('META-INF/MANIFEST.MF', 'Manifest-Version: 1.0\n')
  assert spark.jar_spark_version(str(jar)) is None


def test_importing_the_engine_imports_no_beam():
  proc = subprocess.run(
    [
      sys.executable,
      '-c',
      'import sys, pipeline.engines.spark; '
      'print(sorted(m for m in sys.modules if m.split(".")[0] in '
      '("apache_beam", "tensorflow", "tfx")))',
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    check=True,
  )
  assert proc.stdout.strip() == '[]'


# On a local cluster (e2e).


def _skip_unless(*parts):
  """Skips, naming the first of 'java', 'spark' (the cached pyspark) and
  'jar' (the job server) that this machine lacks."""
  if 'java' in parts and cluster.java() is None:
    pytest.skip('no Java on this machine (install a JDK 17)')
  if 'spark' in parts and downloads.cached_dist(spark.DIST) is None:
    pytest.skip(
      f'Spark {spark.SPARK_VERSION} is not cached in '
      f'{downloads.home()} (python -m pipeline engine fetch spark)'
    )
  if 'jar' in parts and downloads.cached_jar(spark.JOB_SERVER) is None:
    pytest.skip(
      f'the Spark job server jar ({spark.JOB_SERVER} '
      f'{downloads.BEAM_VERSION}) is not cached in '
      f'{downloads.home()} (python -m pipeline engine fetch spark)'
    )


def _ours_running():
  return set(cluster.processes('spark'))


@pytest.fixture(scope='module')
def standalone():
  """The master and worker alone; stopped afterwards unless they ran
  before."""
  _skip_unless('java', 'spark')
  before = _ours_running()
  master = spark.start_spark(print)
  yield master
  if not before:
    cluster.stop('spark')


@pytest.mark.e2e
def test_the_standalone_cluster_runs_a_spark_job(standalone, tmp_path):
  script = tmp_path / 'squares.py'
  script.write_text(
    'from pyspark.sql import SparkSession\n'
    "spark = SparkSession.builder.appName('squares').getOrCreate()\n"
    'rdd = spark.sparkContext.parallelize(range(1000), 4)\n'
    "print('SUM', rdd.map(lambda x: x * x).sum())\n"
    'spark.stop()\n'
  )
  home = spark.spark_home()
  opens = ' '.join(cluster.JAVA_17_OPENS)
  proc = subprocess.run(
    [
      os.path.join(home, 'bin', 'spark-submit'),
      '--master',
      standalone,
      '--conf',
      f'spark.driver.extraJavaOptions={opens}',
      '--conf',
      f'spark.executor.extraJavaOptions={opens}',
      '--conf',
      'spark.executor.memory=1g',
      str(script),
    ],
    env={
      **os.environ,
      'SPARK_HOME': home,
      'SPARK_LOCAL_IP': spark.HOST,
      'PYSPARK_PYTHON': sys.executable,
    },
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert 'SUM 332833500' in proc.stdout, proc.stderr[-3000:]
  apps = [
    a for a in spark.master_state()['completedapps'] if a['name'] == 'squares'
  ]
  assert apps and apps[0]['state'] == 'FINISHED'
  status = ENGINE.cluster.status()
  assert status['master'].startswith(standalone)
  assert '1 alive at the master' in status['worker']


@pytest.fixture(scope='module')
def spark_cluster():
  """`engine up spark` (idempotent), and down afterwards unless it ran
  before."""
  _skip_unless('java', 'spark', 'jar')
  before = _ours_running()
  options = ENGINE.cluster.up(print)
  assert ENGINE.cluster.up(print) == options  # a running one is left as is
  yield options
  if not before:
    assert 'job-server' in ENGINE.cluster.down(print)


def _completed_apps():
  return spark.master_state()['completedapps']


@pipeline_fixture(scope='module')
def on_spark(spark_cluster, tmp_path_factory):
  """The default pipeline with its Beam components on Spark, and the Spark
  applications that it added at the master."""
  before = {a['id'] for a in _completed_apps()}
  base = str(tmp_path_factory.mktemp('spark'))
  proc, summary = run_pipeline(
    base,
    'spark',
    [
      'runner.engine=spark',
      f'runner.engine_options={json.dumps(spark_cluster)}',
    ],
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  apps = [a for a in _completed_apps() if a['id'] not in before]
  return summary, apps


@pipeline_fixture(scope='module')
def on_direct(tmp_path_factory):
  """The same run on the DirectRunner (only where Spark can run too)."""
  _skip_unless('java', 'spark', 'jar')
  proc, summary = run_pipeline(str(tmp_path_factory.mktemp('direct')), 'direct')
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return summary


@pytest.mark.e2e
def test_the_pipeline_runs_its_beam_jobs_on_spark_and_blesses(on_spark):
  summary, apps = on_spark
  assert summary['status'] == 'succeeded'
  assert {c['state'] for c in summary['components']} == {'complete'}
  assert summary['blessed'] is True
  # One Spark application per Beam component (CsvExampleGen,
  # StatisticsGen, Transform, Evaluator), each finished.
  assert len(apps) >= 4, apps
  assert {a['state'] for a in apps} == {'FINISHED'}
  # TODO(lead): assert the engine that ML Metadata recorded for the Beam
  # components' executions ('spark', engines.ENGINE_PROPERTY).


@pytest.mark.e2e
def test_spark_and_the_direct_runner_evaluate_alike(on_spark, on_direct):
  spark_metrics = on_spark[0]['metrics']
  assert set(spark_metrics) == set(on_direct['metrics'])
  for name, value in on_direct['metrics'].items():
    assert spark_metrics[name] == pytest.approx(value, abs=0.01), name
