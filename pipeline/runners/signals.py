"""SIGTERM (`kill PID`, a scheduler's stop) ends a run as Ctrl-C does.

Python's default for SIGTERM is to die on the spot: no line saying why, and
the run's store keeps its unfinished executions as RUNNING, so `lineage
runs` can only guess `killed`. With `stop_on_sigterm` installed, SIGTERM
raises `Terminated` in the main thread instead, and the run's cleanup
(pipeline/runners/local.py `_guarded`) records it as `terminated` with its
unfinished executions canceled, as it records an interruption.

`Terminated` is a BaseException, as KeyboardInterrupt is, so that no
`except Exception` in TFX, Beam or a component takes it for a component
failure. Standard library only: the CLI imports this at start-up.
"""

import signal

EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, as shells report it


class Terminated(BaseException):
  """The process was sent SIGTERM. The message is its one line."""

  def __init__(self, message: str = 'terminated (SIGTERM)'):
    super().__init__(message)


def _raise_terminated(signum, frame) -> None:
  del signum, frame
  # A second SIGTERM while the run records how it ended ends the process
  # at once (the default), as a scheduler that stops waiting would.
  signal.signal(signal.SIGTERM, signal.SIG_DFL)
  raise Terminated()


def stop_on_sigterm() -> None:
  """From now on SIGTERM raises Terminated in the main thread (where Python
  runs signal handlers) once; a later one terminates the process."""
  signal.signal(signal.SIGTERM, _raise_terminated)
