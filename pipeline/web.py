"""What both HTTP servers (`serve` and `ui`) need to face a network.

- **Host check.** A page on another site can point its own DNS name at
  127.0.0.1 (DNS rebinding) and then read a loopback server as its own
  origin; the browser still sends that name in `Host`. So a request is
  answered only when its Host is an IP address (no rebinding happens through
  one), `localhost`, the bound host, this machine's name when bound to every
  interface, or a name given with `--allow-host` (`*`: any). Others get 403
  and one line.
- **Connections are bounded.** Past the open-file limit `accept()` fails on
  every turn of the loop: legitimate requests time out and Tornado logs a
  traceback per try. Connections are held below half the limit
  (`max_connections`); at the bound the connection idle the longest (no
  request under way) is closed to make room, and a connection idle for
  `IDLE_SECONDS` is closed anyway. An `accept()` that still fails sheds an
  idle connection, or pauses accepting for a moment. Each of these is logged
  once.
- **Bodies a route does not take are refused at the headers**: a method the
  URL does not answer is 405, a body over the route's limit 413, both
  before the body is read (the connection is then closed), so nothing
  buffers a large upload first.
- **Ports** are 0 to 65535: the system would quietly bind another port for a
  larger number (it keeps the low 16 bits).
"""

import collections
import errno
import ipaddress
import logging
import resource
import socket
import time
from typing import Any, Callable, Dict, FrozenSet, Iterable, Optional, Set

import tornado.httpserver
import tornado.httputil
import tornado.ioloop
import tornado.netutil
import tornado.web

from pipeline.errors import PipelineError

IDLE_SECONDS = 60.0
# How long accepting pauses when the process has no file left and no idle
# connection to give back.
ACCEPT_PAUSE_SECONDS = 0.5
_LOG = logging.getLogger('pipeline.web')
_OUT_OF_FILES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_WILDCARDS = ('', '0.0.0.0', '::')
# accept() calls per readiness event, as Tornado's own accept handler does.
_ACCEPTS_PER_EVENT = 128


class AddressError(PipelineError):
  """A --host/--port that cannot be served. One line."""


def check_port(port: int) -> None:
  """Refuses a port the system would silently wrap to another one."""
  if not 0 <= port <= 65535:
    raise AddressError(
      f'--port {port}: a port is 0 to 65535 (0 picks a free one)'
    )


def default_max_connections() -> int:
  """Half the open-file limit (the rest stays for models, the store and
  logs), at least 16 and at most 1,000."""
  soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
  if soft == resource.RLIM_INFINITY:
    return 1000
  return max(16, min(1000, soft // 2))


def _host_name(header: str) -> str:
  """The name in a Host header, without its port or IPv6 brackets."""
  header = header.strip().lower()
  if header.startswith('['):
    return header[1:].partition(']')[0]
  if header.count(':') > 1:  # a bare IPv6 address
    return header
  return header.partition(':')[0].rstrip('.')


def _is_address(name: str) -> bool:
  try:
    ipaddress.ip_address(name)
  except ValueError:
    return False
  return True


class HostCheck:
  """Which Host headers a server bound to `host` answers (module doc)."""

  def __init__(self, host: str, allow: Iterable[str] = ()):
    names = {'localhost', _host_name(host)}
    if host in _WILDCARDS:
      names.add(socket.gethostname().lower())
    names.update(_host_name(name) for name in allow)
    self.any = '*' in names
    self.names: FrozenSet[str] = frozenset(names - {'*', ''})

  def allows(self, header: Optional[str]) -> bool:
    if self.any or not header:  # HTTP/1.0 sends none: no browser page
      return True
    name = _host_name(header)
    return name in self.names or _is_address(name)


@tornado.web.stream_request_body
class GuardedHandler(tornado.web.RequestHandler):
  """The base of every route of both servers: checks the Host, and refuses
  a method the route does not answer or a body over its limit as soon as
  the headers arrive. A subclass says how a refusal looks (`refuse`) and
  how large a body it takes (`body_limit`); bodies it takes reach its
  `data_received`, others are dropped as they arrive."""

  def body_limit(self) -> int:
    """The largest body this request may carry (bytes)."""
    return 0

  def refuse(self, status: int, message: str) -> None:
    """Answers `status` with a one-line `message`."""
    self.set_status(status)
    self.set_header('Content-Type', 'text/plain; charset=utf-8')
    self.finish(message + '\n')

  def write_error(self, status_code: int, **kwargs) -> None:
    # What Tornado itself rejects (an unknown method) looks like any other
    # refusal of this server.
    self.refuse(status_code, self._reason)

  def _answered_methods(self):
    unimplemented = tornado.web.RequestHandler.get
    return [
      m
      for m in ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')
      if getattr(type(self), m.lower()) is not unimplemented
    ]

  def prepare(self):
    check: HostCheck = self.settings['host_check']
    if not check.allows(self.request.headers.get('Host')):
      self.refuse(
        403,
        f'Host {self.request.headers.get("Host")[:80]!r} is not '
        "served here (it is not this machine's name; see "
        '--allow-host)',
      )
      return
    answered = self._answered_methods()
    if self.request.method not in answered:
      self.set_header('Allow', ', '.join(answered))
      self.refuse(
        405,
        f'{self.request.method} {self.request.path[:120]}: '
        f'this URL answers {" and ".join(answered)}',
      )
      return
    length = self.request.headers.get('Content-Length', '')
    limit = self.body_limit()
    if length.isascii() and length.isdigit() and int(length) > limit:
      self.refuse(413, self.too_big(limit))

  def too_big(self, limit: int) -> str:
    """The one line a body over `limit` bytes is refused with."""
    return (
      f'{self.request.method} {self.request.path[:120]} takes no body'
      if not limit
      else f'request body over {limit} bytes'
    )

  def data_received(self, chunk: bytes) -> None:
    del chunk  # a route that takes a body overrides this


def _quiet_access_log(handler: tornado.web.RequestHandler) -> None:
  """Only server errors reach the log: refusals are answered, not logged,
  so a flood of bad requests writes nothing."""
  if handler.get_status() >= 500:
    _LOG.error(
      '%d %s %s',
      handler.get_status(),
      handler.request.method,
      handler.request.path[:120],
    )


def application(
  routes, host: str, allow_hosts: Iterable[str] = (), **settings
) -> tornado.web.Application:
  """A Tornado application whose handlers (each a `GuardedHandler`) check
  the Host against `host` and `allow_hosts`."""
  return tornado.web.Application(
    routes,
    host_check=HostCheck(host, allow_hosts),
    log_function=_quiet_access_log,
    **settings,
  )


class _Watched(tornado.httputil.HTTPMessageDelegate):
  """A request's delegate that tells the server when its headers came: from
  then until the answer is sent, its connection is not idle."""

  def __init__(self, delegate, on_headers: Callable[[], None]):
    self._delegate = delegate
    self._on_headers = on_headers

  def headers_received(self, start_line, headers):
    self._on_headers()
    return self._delegate.headers_received(start_line, headers)

  def data_received(self, chunk):
    return self._delegate.data_received(chunk)

  def finish(self):
    return self._delegate.finish()

  def on_connection_close(self):
    return self._delegate.on_connection_close()


class Server(tornado.httpserver.HTTPServer):
  """Tornado's HTTP server with its connections bounded (module doc)."""

  # pylint: disable=arguments-differ
  def initialize(
    self, request_callback, max_connections: int = 0, **kwargs
  ) -> None:
    kwargs.setdefault('idle_connection_timeout', IDLE_SECONDS)
    super().initialize(request_callback, **kwargs)
    self.max_connections = max_connections or default_max_connections()
    # connection -> when it last became idle, oldest first.
    self._idle: Dict[Any, float] = collections.OrderedDict()
    # Connections shed but not yet gone: Tornado forgets a connection (on_close)
    # only once its request loop has ended, a turn of the loop after its
    # stream was closed, so counting _connections alone would shed every idle
    # connection, and then the new one, for each connection accepted.
    self._shedding: Set[Any] = set()
    self._logged = set()

  def _once(self, kind: str, message: str) -> None:
    if kind not in self._logged:
      self._logged.add(kind)
      _LOG.warning('%s (logged once)', message)

  def start_request(self, server_conn, request_conn):
    # Called as each connection starts waiting for its next request.
    self._idle.pop(server_conn, None)
    self._idle[server_conn] = time.monotonic()
    return _Watched(
      super().start_request(server_conn, request_conn),
      lambda: self._idle.pop(server_conn, None),
    )

  def on_close(self, server_conn) -> None:
    self._idle.pop(server_conn, None)
    self._shedding.discard(server_conn)
    super().on_close(server_conn)

  def _open(self) -> int:
    """Connections open and not being shed."""
    return len(self._connections) - len(self._shedding)

  def _shed_one(self) -> bool:
    """Closes the connection idle the longest; False when none is idle."""
    if not self._idle:
      return False
    conn, _ = self._idle.popitem(last=False)
    self._shedding.add(conn)
    conn.stream.close()
    return True

  def handle_stream(self, stream, address) -> None:
    super().handle_stream(stream, address)
    if self._open() > self.max_connections:
      self._once(
        'bound',
        f'{self.max_connections} connections open (the '
        'bound, half the open-file limit): closing the longest-idle '
        'ones to make room',
      )
      while self._open() > self.max_connections:
        if not self._shed_one():
          stream.close()  # every other one is answering a request
          break

  def add_sockets(self, sockets) -> None:
    for sock in sockets:
      self._sockets[sock.fileno()] = sock
      self._handlers[sock.fileno()] = self._accept_from(sock)

  def _accept_from(self, sock: socket.socket) -> Callable[[], None]:
    """Accepts on `sock` as Tornado does, but an accept() that fails for
    want of files sheds an idle connection or pauses, instead of failing
    (and logging) on every turn of the loop. Returns the remover."""
    return _Acceptor(sock, self._handle_connection, self._out_of_files).remove

  def _out_of_files(self, error: OSError) -> bool:
    """After an accept() failed for want of files: sheds an idle connection
    and says whether one was."""
    self._once(
      'accept',
      f'cannot accept connections: {error.strerror}; '
      'closing idle connections to make room',
    )
    return self._shed_one()


class _Acceptor:
  """The accepting of one listening socket (Server._accept_from): each
  connection goes to `handle`; when files run out, `make_room` is asked to
  shed an idle connection, and accepting pauses for a moment when it
  cannot."""

  def __init__(
    self,
    sock: socket.socket,
    handle: Callable[[socket.socket, Any], None],
    make_room: Callable[[OSError], bool],
  ):
    self._sock = sock
    self._handle = handle
    self._make_room = make_room
    self._loop = tornado.ioloop.IOLoop.current()
    self._removed = False
    self._paused = False
    self._loop.add_handler(sock, self._accept, self._loop.READ)

  def _resume(self) -> None:
    self._paused = False
    if not self._removed:
      self._loop.add_handler(self._sock, self._accept, self._loop.READ)

  def _pause(self) -> None:
    self._paused = True
    self._loop.remove_handler(self._sock)
    self._loop.call_later(ACCEPT_PAUSE_SECONDS, self._resume)

  def _accept(self, fd, events) -> None:
    del fd, events
    for _ in range(_ACCEPTS_PER_EVENT):
      if self._removed or self._paused:
        return
      try:
        connection, address = self._sock.accept()
      except BlockingIOError:
        return
      except ConnectionAbortedError:
        continue
      except OSError as e:
        if e.errno not in _OUT_OF_FILES:
          raise
        if not self._make_room(e):
          self._pause()
        return
      self._handle(connection, address)

  def remove(self) -> None:
    self._removed = True
    if not self._paused:
      self._loop.remove_handler(self._sock)


def listen(
  app: tornado.web.Application,
  host: str,
  port: int,
  max_connections: int = 0,
  **settings,
) -> int:
  """Serves `app` on host:port with a bounded `Server` (not yet looping).
  Returns the port bound (port 0 picks one)."""
  check_port(port)
  server = Server(app, max_connections=max_connections, **settings)
  sockets = tornado.netutil.bind_sockets(port, address=host)
  server.add_sockets(sockets)
  return sockets[0].getsockname()[1]
