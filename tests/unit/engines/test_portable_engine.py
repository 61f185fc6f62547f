"""The pipeline through Beam's portable job API (`runner.engine: portable`),
the path a Flink or Spark job server takes: the pipeline proto submitted to
a job service, artifacts staged, stages run by Fn API workers. The job
service here is Beam's own Python one (in a process of its own, running the
jobs on Beam's portable FnApiRunner), which needs no Java and no cluster;
the workers are loopback (each component's process)."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import (
  REPO,
  cli,
  free_port,
  one_line_error,
  pipeline_fixture,
  run_pipeline,
)

BEAM = ['CsvExampleGen', 'StatisticsGen', 'Transform', 'Evaluator']


@pytest.fixture(scope='module')
def job_service(tmp_path_factory):
  """Beam's Python job service on a free port; its endpoint."""
  port = free_port()
  log = tmp_path_factory.mktemp('job-service') / 'log'
  with open(log, 'w') as out:
    process = subprocess.Popen(
      [
        sys.executable,
        '-m',
        'apache_beam.runners.portability.local_job_service_main',
        f'--port={port}',
      ],
      cwd=REPO,
      stdout=out,
      stderr=subprocess.STDOUT,
    )
  try:
    for _ in range(240):
      try:
        socket.create_connection(('localhost', port), timeout=1).close()
        break
      except OSError:
        assert process.poll() is None, open(log).read()[-2000:]
        time.sleep(0.25)
    yield f'localhost:{port}'
  finally:
    process.terminate()
    process.wait(timeout=30)


@pipeline_fixture(scope='module')
def portable(job_service, tmp_path_factory):
  base = str(tmp_path_factory.mktemp('portable'))
  proc, summary = run_pipeline(
    base,
    'portable',
    [
      'runner.engine=portable',
      f'runner.engine_options={json.dumps({"job_endpoint": job_service})}',
    ],
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return base, summary


@pytest.mark.e2e
def test_the_pipeline_runs_through_a_job_service_and_blesses(portable, cold):
  base, summary = portable
  assert summary['blessed'] is True and summary['pushed'] is True
  # Every Beam component ran there, and says so in ML Metadata.
  assert {
    c['id']: c['engine'] for c in summary['components'] if c['engine']
  } == dict.fromkeys(BEAM, 'portable')
  runs = json.loads(
    cli(
      'lineage',
      'runs',
      '--store',
      os.path.join(base, 'metadata.sqlite'),
      '--json',
    ).stdout
  )
  assert runs[-1]['engines'] == dict.fromkeys(BEAM, 'portable')
  # The same examples, statistics, transform and evaluation as the
  # DirectRunner's cold run of the same spec and budget.
  _, direct = cold
  for name, value in direct['metrics'].items():
    assert summary['metrics'][name] == pytest.approx(value, abs=0.01), name


def test_a_job_service_that_does_not_answer_is_refused_before_the_run(tmp_path):
  port = free_port()
  proc = cli(
    'run',
    '--set',
    f'runner.pipeline_root={tmp_path}/root',
    '--set',
    f'runner.metadata={tmp_path}/m.sqlite',
    '--set',
    f'push.destination={tmp_path}/serving',
    '--set',
    'runner.engine=portable',
    '--set',
    f'runner.engine_options={{job_endpoint: localhost:{port}}}',
  )
  one_line_error(
    proc,
    f'runner.engine portable: no Beam job service answers at localhost:{port}',
  )
  assert not os.listdir(tmp_path)
