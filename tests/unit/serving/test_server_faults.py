"""Faults facing the HTTP servers (`serve`, `ui`) and the `predict` client.

The servers run as `python -m pipeline serve|ui` subprocesses at a 1,024
open-file limit (as a default Linux shell gives): hostile Host headers,
methods and bodies a route does not take, a flood of idle connections past
that limit, and a store locked by a writer. Each is answered with its
status and a one-line body, and the server keeps serving. `predict` meets a
file that is not UTF-8, servers that answer other JSON, and one that never
answers: one line on stderr and exit 2.
"""

import http.client
import http.server
import json
import os
import re
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from tests.conftest import REPO, cli, free_port
from tests.unit.runners.test_faults import MAX_LINE, refused

FILE_LIMIT = 1024
IDLE_CONNECTIONS = 1100
# What a server may write to stderr over the whole flood: the two lines it
# logs once (the connection bound reached, accept() out of files).
LOG_BOUND = 2000


def _store(tmp_path) -> str:
  """An empty ML Metadata store (SQLite), made with ml_metadata itself."""
  from ml_metadata.metadata_store import metadata_store  # pylint: disable=g-import-not-at-top
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top

  path = str(tmp_path / 'metadata.sqlite')
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = path
  config.sqlite.connection_mode = (
    metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
  )
  metadata_store.MetadataStore(config).get_context_types()
  return path


def _limit_files():
  resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


class Running:
  """`python -m pipeline ARGS --port 0` at a 1,024 open-file limit, its
  stderr kept in a file to be measured."""

  def __init__(self, *args):
    self.stderr = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
    self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
      [sys.executable, '-m', 'pipeline', *args, '--port', '0'],
      cwd=REPO,
      stdout=subprocess.PIPE,
      stderr=self.stderr,
      text=True,
      preexec_fn=_limit_files,
      env={**os.environ, 'TF_USE_LEGACY_KERAS': '1', 'PYTHONUNBUFFERED': '1'},
    )
    line = self.proc.stdout.readline()
    found = re.search(r'http://127\.0\.0\.1:(\d+)', line)
    assert found, line + self.log()
    self.port = int(found[1])
    threading.Thread(target=self.proc.stdout.read, daemon=True).start()

  def log(self) -> str:
    self.stderr.seek(0)
    return self.stderr.read().decode(errors='replace')

  def log_bytes(self) -> int:
    return os.fstat(self.stderr.fileno()).st_size

  def request(self, method, path, host=None, body=None, timeout=10):
    """(status, headers, body text) of one request on a fresh connection."""
    connection = http.client.HTTPConnection(
      '127.0.0.1', self.port, timeout=timeout
    )
    try:
      connection.request(
        method, path, body, headers={'Host': host or f'127.0.0.1:{self.port}'}
      )
      response = connection.getresponse()
      return (
        response.status,
        dict(response.getheaders()),
        response.read().decode(),
      )
    finally:
      connection.close()

  def stop(self):
    self.proc.terminate()
    self.proc.wait(timeout=30)
    self.stderr.close()


# What each server answers when all is well, and how it says no.
SERVERS = {
  'serve': ('/v1/models/none', 404, 'application/json'),
  'ui': ('/', 200, 'text/html'),
}


@pytest.fixture(params=sorted(SERVERS))
def server(request, tmp_path):
  if request.param == 'serve':
    (tmp_path / 'models').mkdir()
    running = Running(
      'serve',
      '--model-base',
      str(tmp_path / 'models'),
      '--allow-host',
      'box.lan',
    )
  else:
    running = Running(
      'ui', '--store', _store(tmp_path), '--allow-host', 'box.lan'
    )
  running.kind = request.param
  yield running
  running.stop()


def test_which_hosts_a_server_answers():
  """The bound host, localhost, any IP address, --allow-host names; with
  --host 0.0.0.0 also this machine's name. Not a name merely starting or
  ending like one of those."""
  from pipeline.web import HostCheck  # pylint: disable=g-import-not-at-top

  loopback = HostCheck('127.0.0.1')
  for header in (
    '127.0.0.1:8080',
    'localhost',
    'LocalHost:1',
    'localhost.',
    '[::1]:8501',
    '::1',
    '192.168.1.9:80',
    None,
    '',
  ):
    assert loopback.allows(header), header
  for header in (
    'evil.example',
    'localhost.evil.example:80',
    '127.0.0.1.nip',
    socket.gethostname() + '.evil.example',
  ):
    assert not loopback.allows(header), header
  everywhere = HostCheck('0.0.0.0', allow=['Box.Lan:8080'])
  assert everywhere.allows(socket.gethostname() + ':8501')
  assert everywhere.allows('box.lan') and not everywhere.allows('box.lan.evil')
  assert HostCheck('my.server').allows('my.server:80')
  assert HostCheck('127.0.0.1', allow=['*']).allows('anything.example')


def _one_line(text):
  lines = text.strip().splitlines()
  assert len(lines) == 1 and len(lines[0]) < MAX_LINE, text[:1000]
  return lines[0]


def _answers(server, host=None):
  path, status, content_type = SERVERS[server.kind]
  answer = server.request('GET', path, host=host)
  assert answer[0] == status, (host, answer)
  assert answer[1]['Content-Type'].startswith(content_type)


def test_a_port_past_65535_is_refused(tmp_path):
  (tmp_path / 'models').mkdir()
  refused(
    cli(
      'serve',
      '--model-base',
      str(tmp_path / 'models'),
      '--port',
      '99999',
      timeout=120,
    ),
    '--port 99999',
    '65535',
  )
  refused(
    cli('ui', '--store', _store(tmp_path), '--port', '99999', timeout=120),
    '--port 99999',
    '65535',
  )


def test_only_this_machines_names_are_served(server):
  """DNS rebinding: a page whose own name resolves to 127.0.0.1 sends that
  name as Host; it gets 403 and one line, names of this machine do not."""
  port = server.port
  for host in (
    'evil.example',
    f'evil.example:{port}',
    '127.0.0.1.evil.example',
    'localhost.evil.example',
  ):
    status, _, body = server.request('GET', SERVERS[server.kind][0], host=host)
    assert status == 403, (host, status, body)
    assert 'is not served here' in _one_line(body)
  for host in (
    'localhost',
    f'localhost:{port}',
    f'LOCALHOST:{port}',
    f'127.0.0.1:{port}',
    f'[::1]:{port}',
    '[::1]',
    '10.1.2.3',
    'box.lan',
    f'box.lan:{port}',
  ):
    _answers(server, host)


def test_a_method_the_url_does_not_answer_is_405_at_once(server):
  for method in ('DELETE', 'PATCH', 'PUT'):
    status, headers, body = server.request(method, SERVERS[server.kind][0])
    line = _one_line(body)
    assert status == 405 and method in line, (method, status, body)
    assert (method == 'PUT') == ('PUT ' in line), line
    assert headers['Allow'] == (
      'GET, POST' if server.kind == 'serve' else 'GET'
    )
  _answers(server)


def _raw_answer(port, head: bytes, sent_body: int, timeout=10) -> bytes:
  """Sends `head` and `sent_body` bytes of a body announced far larger,
  then reads what comes back before sending the rest."""
  with socket.create_connection(('127.0.0.1', port), timeout=timeout) as s:
    s.sendall(head + b'x' * sent_body)
    answer = b''
    while b'\r\n\r\n' not in answer:
      chunk = s.recv(65536)
      if not chunk:
        break
      answer += chunk
    return answer


def test_a_body_the_route_does_not_take_is_refused_at_the_headers(server):
  """A 100 MB body announced to a route that takes none is answered (405
  or 413) after 64 KiB of it: the server does not wait for, or buffer, the
  rest (the client here never sends it)."""
  size = 100 * 1024 * 1024
  method, status = ('POST', b'405') if server.kind == 'ui' else ('GET', b'413')
  path = SERVERS[server.kind][0]
  head = (
    f'{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n'
    f'Content-Length: {size}\r\n\r\n'
  ).encode()
  started = time.monotonic()
  answer = _raw_answer(server.port, head, 64 * 1024)
  assert answer.startswith(b'HTTP/1.1 ' + status), answer[:300]
  assert time.monotonic() - started < 5
  _answers(server)


def test_idle_connections_past_the_file_limit_leave_it_answering(server):
  """1,100 idle connections at a 1,024-file limit: a legitimate request is
  still answered within 1 s, and the log grows by at most LOG_BOUND bytes
  (a line or two, once) instead of a traceback per accept()."""
  before = server.log_bytes()
  idle = []
  try:
    for _ in range(IDLE_CONNECTIONS):
      idle.append(
        socket.create_connection(('127.0.0.1', server.port), timeout=30)
      )
    for _ in range(5):
      started = time.monotonic()
      _answers(server)
      assert time.monotonic() - started < 1.0
  finally:
    for s in idle:
      s.close()
  _answers(server)
  assert server.proc.poll() is None
  grown = server.log_bytes() - before
  assert grown <= LOG_BOUND, server.log()[-3000:]
  assert 'Traceback' not in server.log()


def _closed_by_peer(sock: socket.socket) -> bool:
  """Whether the server has closed `sock` (a FIN or a reset is waiting)."""
  sock.setblocking(False)
  try:
    return sock.recv(1, socket.MSG_PEEK) == b''
  except BlockingIOError:
    return False
  except ConnectionResetError:
    return True


def test_at_the_bound_each_new_connection_sheds_one_idle_one():
  """A connection accepted at the bound closes exactly one idle connection,
  the oldest, and is itself kept: Tornado forgets a closed connection a turn
  of the loop later, which must not make the server shed every idle one."""
  import asyncio  # pylint: disable=g-import-not-at-top

  import tornado.ioloop  # pylint: disable=g-import-not-at-top
  import tornado.web  # pylint: disable=g-import-not-at-top

  from pipeline import web  # pylint: disable=g-import-not-at-top

  bound, opened = 16, 40
  started, state = threading.Event(), {}

  def loop():
    asyncio.set_event_loop(asyncio.new_event_loop())
    state['port'] = web.listen(
      tornado.web.Application([]), '127.0.0.1', 0, max_connections=bound
    )
    state['loop'] = tornado.ioloop.IOLoop.current()
    started.set()
    state['loop'].start()

  thread = threading.Thread(target=loop, daemon=True)
  thread.start()
  assert started.wait(10)
  clients = []
  try:
    for _ in range(opened):
      clients.append(socket.create_connection(('127.0.0.1', state['port'])))
      time.sleep(0.02)
    time.sleep(0.5)
    closed = [_closed_by_peer(c) for c in clients]
    assert closed == [True] * (opened - bound) + [False] * bound, closed
  finally:
    for c in clients:
      c.close()
    state['loop'].add_callback(state['loop'].stop)
    thread.join(10)


# --- ui: a store locked by a writer ----------------------------------------


def test_a_locked_store_is_503_at_once_and_the_dashboard_recovers(tmp_path):
  """A writer holds SQLite's lock (ML Metadata would retry for ~13 s): the
  page that waits on the store is a one-line 503 within PAGE_SECONDS (5 s),
  the next one at once, a page that needs no store is not held up, and the
  pages come back when the lock is released."""
  from pipeline.report import dashboard  # pylint: disable=g-import-not-at-top

  store = _store(tmp_path)
  ui = Running('ui', '--store', store)
  writer = sqlite3.connect(store, isolation_level=None)
  try:
    assert ui.request('GET', '/')[0] == 200
    writer.execute('BEGIN EXCLUSIVE')
    started = time.monotonic()
    status, headers, body = ui.request('GET', '/', timeout=60)
    waited = time.monotonic() - started
    assert status == 503, (status, body)
    assert 'did not answer within 5 s' in _one_line(body)
    assert headers['Retry-After'] == '5'
    assert waited < dashboard.PAGE_SECONDS + 3, waited
    for path, expected in (('/pushed', 503), ('/no-such-page', 404)):
      started = time.monotonic()
      status, _, body = ui.request('GET', path, timeout=60)
      assert status == expected, (path, status, body)
      _one_line(body)
      assert time.monotonic() - started < 1.0, path
    writer.execute('ROLLBACK')
    deadline = time.monotonic() + 60
    while ui.request('GET', '/', timeout=60)[0] != 200:
      assert time.monotonic() < deadline, 'still 503 after the lock went'
      time.sleep(0.5)
    assert ui.request('GET', '/pushed')[0] == 200
    assert 'Traceback' not in ui.log(), ui.log()[-3000:]
  finally:
    writer.close()
    ui.stop()


# --- predict ---------------------------------------------------------------


def test_predict_on_a_csv_that_is_not_utf8(tmp_path):
  rows = tmp_path / 'rows.csv'
  rows.write_bytes('a,b\n1,caf\u00e9\n'.encode('latin-1'))
  refused(
    cli(
      'predict',
      str(rows),
      '--url',
      f'http://127.0.0.1:{free_port()}/v1/models/m',
      timeout=120,
    ),
    'rows.csv',
    'line 2',
    'not UTF-8',
  )


class _Answers(http.server.BaseHTTPRequestHandler):
  """Answers GET .../metadata and POST ...:predict with the server's
  `metadata` and `prediction` JSON."""

  def _send(self, answer):
    body = json.dumps(answer).encode()
    self.send_response(200)
    self.send_header('Content-Type', 'application/json')
    self.send_header('Content-Length', str(len(body)))
    self.end_headers()
    self.wfile.write(body)

  def do_GET(self):  # pylint: disable=invalid-name
    self._send(self.server.metadata)

  def do_POST(self):  # pylint: disable=invalid-name
    self.rfile.read(int(self.headers['Content-Length']))
    self._send(self.server.prediction)

  def log_message(self, *args):
    del args


@pytest.fixture
def other_server():
  """An HTTP server on loopback answering JSON that is set per test."""
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Answers)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  yield server
  server.shutdown()
  server.server_close()


RAW_METADATA = {
  'metadata': {
    'signature_def': {
      'signature_def': {'serving_raw': {'inputs': {'a': {'dtype': 'DT_FLOAT'}}}}
    }
  }
}


@pytest.mark.parametrize(
  'metadata, prediction, culprit',
  [
    ({'hello': 'world'}, None, 'no signature defs'),
    ([1, 2, 3], None, 'not an object'),
    ({'metadata': {'signature_def': 'x'}}, None, 'no signature defs'),
    (
      {
        'metadata': {
          'signature_def': {'signature_def': {'serving_raw': {'inputs': ['a']}}}
        }
      },
      None,
      'no signature defs',
    ),
    (RAW_METADATA, {'answer': 42}, "not a model's answer for 2 row(s)"),
    (RAW_METADATA, {'predictions': 'yes'}, "not a model's answer"),
    (RAW_METADATA, {'predictions': [1]}, "not a model's answer"),
    (RAW_METADATA, {'outputs': {'y': [1]}}, "not a model's answer"),
  ],
)
def test_predict_against_a_server_answering_other_json(
  tmp_path, other_server, metadata, prediction, culprit
):
  other_server.metadata, other_server.prediction = metadata, prediction
  rows = tmp_path / 'rows.csv'
  rows.write_text('a\n1\n2\n')
  port = other_server.server_address[1]
  refused(
    cli(
      'predict',
      str(rows),
      '--url',
      f'http://127.0.0.1:{port}/v1/models/m',
      timeout=120,
    ),
    culprit,
  )


def test_predict_gives_up_on_a_server_that_never_answers(tmp_path, listening):
  """The port accepts connections (the kernel's backlog) but nothing ever
  answers: --timeout 2 ends it in one line."""
  rows = tmp_path / 'rows.csv'
  rows.write_text('a\n1\n')
  address = listening('127.0.0.1')
  started = time.monotonic()
  refused(
    cli(
      'predict',
      str(rows),
      '--url',
      f'http://{address}/v1/models/m',
      '--timeout',
      '2',
      timeout=120,
    ),
    'did not answer within 2 s',
  )
  assert time.monotonic() - started < 60
  refused(
    cli(
      'predict',
      str(rows),
      '--url',
      f'http://{address}/v1/models/m',
      '--timeout',
      '0',
      timeout=120,
    ),
    '--timeout 0',
  )
