"""Local clusters for the engines: the processes `engine up` starts, kept
in a state file so that `engine down` (another process) stops exactly them.

A cluster is a list of named daemons (a JobManager, TaskManagers, a Spark
master and worker, a Beam job server, a worker pool), each started
detached with its output in a log file under the engine's run folder.
"""

import json
import os
import signal
import socket
import subprocess
import time
from typing import Dict, List, Optional, Sequence

from components import processes as processes_lib
from pipeline.engines import downloads


def run_dir(engine: str) -> str:
  return os.path.join(downloads.home(), 'run', engine)


def _state_file(engine: str) -> str:
  return os.path.join(run_dir(engine), 'processes.json')


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
  try:
    with socket.create_connection((host, port), timeout=timeout):
      return True
  except OSError:
    return False


def split_address(address: str, default_port: int) -> tuple:
  """'host:port' (or 'scheme://host:port') -> (host, port)."""
  rest = address.split('://', 1)[-1].rstrip('/')
  host, _, port = rest.partition(':')
  return host or 'localhost', int(port) if port else default_port


def answers(address: str, default_port: int, timeout: float = 2.0) -> bool:
  """Whether 'host:port' (or 'scheme://host:port') accepts connections."""
  host, port = split_address(address, default_port)
  return port_open(host, port, timeout=timeout)


def wait_for_port(
  host: str,
  port: int,
  what: str,
  seconds: float = 120,
  pids: Sequence[int] = (),
) -> None:
  """Waits until `host:port` accepts connections.

  Raises:
    RuntimeError: it did not within `seconds`, or one of `pids` died.
  """
  deadline = time.monotonic() + seconds
  while time.monotonic() < deadline:
    if port_open(host, port):
      return
    for pid in pids:
      if not alive(pid):
        raise RuntimeError(f'{what} exited while starting')
    time.sleep(0.5)
  raise RuntimeError(
    f'{what} did not answer on {host}:{port} within {seconds:.0f} s'
  )


def alive(pid: int) -> bool:
  # A daemon this process started (a test's `up`, then `down`) stays a
  # zombie after it exits until its parent reaps it: reap it here, so that
  # `down` need not wait for it.
  try:
    if os.waitpid(pid, os.WNOHANG)[0] == pid:
      return False
  except ChildProcessError:
    pass  # not a child of this process
  return processes_lib.process_alive(pid)


def start(
  engine: str,
  name: str,
  command: List[str],
  env: Optional[Dict[str, str]] = None,
  cwd: Optional[str] = None,
) -> int:
  """Starts `command` detached (its own session, so a terminal's Ctrl-C
  does not reach it), output to <run dir>/<name>.log; records its pid."""
  folder = run_dir(engine)
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, f'{name}.log'), 'ab') as log:
    process = subprocess.Popen(
      command,
      stdout=log,
      stderr=subprocess.STDOUT,
      stdin=subprocess.DEVNULL,
      env={**os.environ, **(env or {})},
      cwd=cwd,
      start_new_session=True,
    )
  state = processes(engine)
  state[name] = process.pid
  with open(_state_file(engine), 'w') as f:
    json.dump(state, f)
  return process.pid


def processes(engine: str) -> Dict[str, int]:
  """The recorded daemons of `engine` that are still alive, name -> pid."""
  try:
    with open(_state_file(engine)) as f:
      state = json.load(f)
  except (OSError, ValueError):
    return {}
  return {name: pid for name, pid in state.items() if alive(pid)}


def stop(engine: str, seconds: float = 30) -> List[str]:
  """Stops every recorded daemon of `engine` (their process groups: SIGTERM,
  then SIGKILL after `seconds`); the names stopped."""
  running = processes(engine)
  for pid in running.values():
    try:
      os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
      pass
  deadline = time.monotonic() + seconds
  while any(alive(p) for p in running.values()) and time.monotonic() < deadline:
    time.sleep(0.2)
  for pid in running.values():
    if alive(pid):
      try:
        os.killpg(pid, signal.SIGKILL)
      except (ProcessLookupError, PermissionError):
        pass
  try:
    os.remove(_state_file(engine))
  except FileNotFoundError:
    pass
  return sorted(running)


def java() -> Optional[str]:
  """The java launcher: $JAVA_HOME's, else the one on PATH."""
  home = os.environ.get('JAVA_HOME')
  if home and os.access(os.path.join(home, 'bin', 'java'), os.X_OK):
    return os.path.join(home, 'bin', 'java')
  from shutil import which  # pylint: disable=g-import-not-at-top

  return which('java')


# What Java 17 needs opened for Beam's and Flink's Kryo and reflection
# (InaccessibleObjectException otherwise).
JAVA_17_OPENS = [
  f'--add-opens=java.base/{package}=ALL-UNNAMED'
  for package in (
    'java.lang',
    'java.lang.invoke',
    'java.lang.reflect',
    'java.io',
    'java.net',
    'java.nio',
    'java.text',
    'java.time',
    'java.util',
    'java.util.concurrent',
    'java.util.concurrent.atomic',
    'java.util.concurrent.locks',
    'sun.nio.ch',
    'sun.nio.cs',
    'sun.security.action',
    'sun.util.calendar',
  )
]
