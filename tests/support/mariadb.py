"""A throwaway MariaDB (or MySQL) server on loopback for the tests: its own
data folder, a free port, and a user for ML Metadata. Uses the server the
distribution installs (`.ci/run` installs mariadb-server); where there is
none, tests that need it are skipped with that reason."""

import os
import shutil
import socket
import subprocess
import time
from typing import Iterator, Optional

USER, PASSWORD = 'mlmd', 'mlmd-test'


def binaries() -> Optional[tuple]:
  server = shutil.which('mariadbd') or shutil.which('mysqld')
  install = shutil.which('mariadb-install-db') or shutil.which(
    'mysql_install_db'
  )
  if server is None:
    for folder in ('/usr/sbin', '/usr/libexec'):
      for name in ('mariadbd', 'mysqld'):
        if os.path.exists(os.path.join(folder, name)):
          server = os.path.join(folder, name)
  return (server, install) if server and install else None


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _answers(port: int) -> bool:
  try:
    with socket.create_connection(('127.0.0.1', port), timeout=1):
      return True
  except OSError:
    return False


def serve(folder: str, timeout: float = 60) -> Iterator[str]:
  """Starts a server under `folder`; yields 'mysql://USER:PASSWORD@host:port/'
  (append a database name); stops it afterwards."""
  server, install = binaries()
  data = os.path.join(folder, 'data')
  user = ['--user=root'] if os.geteuid() == 0 else []
  subprocess.run(
    [
      install,
      '--no-defaults',
      f'--datadir={data}',
      '--auth-root-authentication-method=normal',
      *user,
    ],
    check=True,
    capture_output=True,
    text=True,
  )
  init = os.path.join(folder, 'init.sql')
  with open(init, 'w') as f:
    f.write(
      f"CREATE USER IF NOT EXISTS '{USER}'@'127.0.0.1' IDENTIFIED BY "
      f"'{PASSWORD}';\nGRANT ALL PRIVILEGES ON *.* TO "
      f"'{USER}'@'127.0.0.1';\n"
    )
  port = _free_port()
  log = open(os.path.join(folder, 'server.log'), 'w')
  proc = subprocess.Popen(
    [
      server,
      '--no-defaults',
      f'--datadir={data}',
      '--bind-address=127.0.0.1',
      f'--port={port}',
      f'--socket={os.path.join(folder, "server.sock")}',
      f'--pid-file={os.path.join(folder, "server.pid")}',
      f'--init-file={init}',
      '--skip-name-resolve',
      *user,
    ],
    stdout=log,
    stderr=subprocess.STDOUT,
  )
  try:
    deadline = time.monotonic() + timeout
    while not _answers(port):
      if proc.poll() is not None or time.monotonic() > deadline:
        with open(log.name) as f:
          raise RuntimeError(f'MariaDB did not start: {f.read()[-2000:]}')
      time.sleep(0.2)
    yield f'mysql://{USER}:{PASSWORD}@127.0.0.1:{port}/'
  finally:
    proc.terminate()
    try:
      proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
      proc.kill()
    log.close()
