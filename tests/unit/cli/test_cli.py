"""The command line's contract: commands that need no TensorFlow load none,
every user-facing error is one PipelineError, Ctrl-C is one line and exit
code 130, and the installed `tfx-pipeline` names itself."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback

import pytest

from pipeline import cli, errors
from tests.conftest import DATA_CSV, REPO

HEAVY = (
  'tensorflow',
  'tfx',
  'apache_beam',
  'tf_keras',
  'keras',
  'tensorflow_transform',
  'tensorflow_model_analysis',
  'tfx_bsl',
)

_PROBE = """
import json, sys
from pipeline import cli
try:
  code = cli.main(sys.argv[1:])
except SystemExit as e:
  code = e.code
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(%r))
print(json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)
""" % (HEAVY,)


def probe(*args):
  """Runs the CLI in a fresh interpreter; (exit code, heavy packages loaded,
  the other stderr lines)."""
  proc = subprocess.run(
    [sys.executable, '-c', _PROBE, *args],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, 'TF_USE_LEGACY_KERAS': '1'},
  )
  *lines, last = proc.stderr.strip().splitlines()
  result = json.loads(last)
  return result['code'], result['heavy'], lines


def _empty_store(path):
  import ml_metadata as mlmd  # pylint: disable=g-import-not-at-top
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top

  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = str(path)
  mlmd.MetadataStore(config)
  return str(path)


def test_report_on_an_empty_store_is_one_line_and_loads_no_tensorflow(tmp_path):
  code, heavy, lines = probe(
    'report',
    '--output',
    str(tmp_path / 'r.html'),
    '--store',
    _empty_store(tmp_path / 'm.sqlite'),
  )
  assert (code, heavy) == (2, [])
  assert lines == ['error: the store holds no run yet; run the pipeline first']
  code, _, lines = probe(
    'report',
    'no-such-run',
    '--output',
    str(tmp_path / 'r.html'),
    '--store',
    str(tmp_path / 'm.sqlite'),
  )
  assert code == 2
  assert lines == [
    'error: no-such-run: no such run in the store (see `lineage runs`)'
  ]
  assert not (tmp_path / 'r.html').exists()


def test_validate_loads_no_tensorflow_tfx_or_beam():
  code, heavy, _ = probe('validate')
  assert (code, heavy) == (0, [])


def test_lineage_runs_loads_no_tensorflow_tfx_or_beam(tmp_path):
  code, heavy, _ = probe(
    'lineage', 'runs', '--store', _empty_store(tmp_path / 'm.sqlite')
  )
  assert (code, heavy) == (0, [])


@pytest.mark.parametrize(
  'args',
  [
    ('predict', '--url', 'http://127.0.0.1:9/v1/models/m', '/no/rows.csv'),
    ('submit', '/no/pipeline.yaml', '--host', 'http://127.0.0.1:9'),
    ('compile', '--output', 'x.yaml'),  # no image: refused
    ('compile', '--image', 'img:1', '--output', 'x.yaml'),  # local paths
    ('lineage', 'trace', 'artifact:1', '--store', '/no/store.sqlite'),
    ('report', '--output', 'r.html', '--store', '/no/store.sqlite'),
    ('ui', '--store', '/no/store.sqlite', '--port', '0'),
    ('validate', '--set', 'tuner.algorithm=annealing'),
    ('run', '--set', 'data.csv=/no/data'),  # refused before TFX loads
    ('schema', '--output', 'x.pbtxt', '--set', 'data.csv=/no/data'),
  ],
  ids=lambda a: ' '.join(a[:2]),
)
def test_refusals_load_no_tensorflow_and_are_one_line(args):
  code, heavy, lines = probe(*args)
  assert (code, heavy) == (2, [])
  assert len(lines) == 1 and lines[0].startswith('error: ')


COMMANDS = [
  ('run',),
  ('validate',),
  ('compare',),
  ('compile',),
  ('submit',),
  ('serve',),
  ('predict',),
  ('lineage',),
  ('lineage', 'runs'),
  ('lineage', 'trace'),
  ('lineage', 'graph'),
  ('lineage', 'diff'),
  ('report',),
  ('ui',),
  (),
]


@pytest.mark.parametrize('command', COMMANDS, ids=lambda c: ' '.join(c) or '-')
def test_every_help_loads_no_tensorflow(command):
  code, heavy, _ = probe(*command, '--help')
  assert (code, heavy) == (0, [])


def test_every_user_facing_error_is_a_pipeline_error():
  # pylint: disable=g-import-not-at-top
  from kubeflow import runner
  from pipeline.definition import spec
  from pipeline.experiments import compare
  from pipeline.metadata import lineage, store
  from pipeline.report import dashboard, facts
  from pipeline.runners import preflight
  from pipeline.serving import client, server

  # pylint: enable=g-import-not-at-top
  for error in (
    spec.SpecError,
    preflight.PreflightError,
    lineage.LineageError,
    store.MetadataError,
    compare.CompareError,
    runner.KubeflowError,
    client.PredictError,
    server.ServeSetupError,
    facts.ReportError,
    dashboard.DashboardError,
    dashboard.BadRequest,
  ):
    assert issubclass(error, errors.PipelineError), error
    assert error.exit_code == 2
  assert errors.ComponentFailed.exit_code == 1


def test_main_maps_the_error_base_to_its_exit_code(capsys, monkeypatch):
  def fail(args):
    del args
    raise errors.ComponentFailed('Trainer failed: ValueError: boom')

  # The handler is looked up in its command group's module as the parser
  # is built.
  monkeypatch.setattr(cli.run, 'cmd_validate', fail)
  assert cli.main(['validate']) == 1
  assert capsys.readouterr().err == 'error: Trainer failed: ValueError: boom\n'


def test_ctrl_c_is_one_line_and_exit_code_130(tmp_path):
  """`predict` waiting on a server that never answers, interrupted."""
  rows = tmp_path / 'rows.csv'
  with open(DATA_CSV) as f:
    rows.write_text(''.join(f.readline() for _ in range(3)))
  silent = socket.socket()
  silent.bind(('127.0.0.1', 0))
  silent.listen(1)  # accepts connections, never answers
  try:
    proc = subprocess.Popen(
      [
        sys.executable,
        '-m',
        'pipeline',
        'predict',
        '--url',
        f'http://127.0.0.1:{silent.getsockname()[1]}/v1/models/m',
        str(rows),
      ],
      cwd=REPO,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
      # Ctrl-C as on a terminal, also when the suite itself runs in the
      # background (where a shell starts it with SIGINT ignored).
      preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
  finally:
    silent.close()
  assert proc.returncode == 130, err[-2000:]
  assert err.strip().splitlines() == ['interrupted (Ctrl-C)'], err
  assert 'Traceback' not in out + err


def test_the_installed_script_names_itself(capsys):
  assert cli.program_name('/venv/bin/tfx-pipeline') == 'tfx-pipeline'
  assert cli.program_name('/repo/pipeline/__main__.py') == 'python -m pipeline'
  script = os.path.join(os.path.dirname(sys.executable), 'tfx-pipeline')
  if not os.path.exists(script):
    pytest.skip(
      'the project is not installed in this environment '
      '(make setup installs it)'
    )
  proc = subprocess.run(
    [script, '--help'], capture_output=True, text=True, timeout=60, check=False
  )
  assert proc.returncode == 0
  assert proc.stdout.startswith('usage: tfx-pipeline ')
  del capsys


def test_messages_are_whole_lines_never_cut():
  error = ValueError(
    'Feature company had shape dim {\n  size: 1\n}\nbut the '
    'data has ' + 'x' * 700
  )
  assert errors.one_line(error) == (
    'ValueError: Feature company had shape dim { size: 1 } but the data has '
    + 'x' * 700
  )
  # TensorFlow's appendix (the graph node, the call stack) is not the message.
  assert errors.whole(
    'Input is NaN\n\t [[{{node Mean}}]]\nCall stack: ...'
  ) == ('Input is NaN')


def _trial_failure() -> RuntimeError:
  """Keras Tuner's error after failed trials: its message carries the last
  trial's traceback (keras_tuner/engine/oracle.py), here a real one."""

  def tuner_fn(train_steps=None):
    return train_steps * 2

  try:
    tuner_fn()
  except TypeError:
    trace = traceback.format_exc()
  return RuntimeError(
    'Number of consecutive failures excceeded the limit of 3.\n' + trace
  )


def test_an_embedded_traceback_is_reduced_to_its_root_cause():
  line = errors.one_line(_trial_failure())
  assert line == (
    'RuntimeError: Number of consecutive failures excceeded the limit of 3. '
    "Root cause: TypeError: unsupported operand type(s) for *: 'NoneType' "
    "and 'int'"
  )
  assert 'Traceback' not in line and len(line) < 200


@pytest.mark.parametrize('command', ['serve', 'ui'])
def test_a_port_in_use_is_one_line(command, tmp_path):
  taken = socket.socket()
  taken.bind(('127.0.0.1', 0))
  taken.listen()
  port = taken.getsockname()[1]
  where = (
    ['--model-base', str(tmp_path)]
    if command == 'serve'
    else ['--store', _empty_store(tmp_path / 'm.sqlite')]
  )
  try:
    code, _, lines = probe(command, *where, '--port', str(port))
  finally:
    taken.close()
  assert code == 2
  assert lines[-1] == (
    f'error: --host 127.0.0.1 --port {port}: cannot '
    'listen: Address already in use'
  )
