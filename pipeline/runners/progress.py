"""Where a local run's progress goes.

`Lines` prints a line as each component starts (and as one fails): for
logs, pipes and tests; the run's summary then lists each one's state and
time. `Live` (a terminal) keeps one line per component and rewrites it
as the component advances (the Tuner's trial i of N with the best objective
so far, the Trainer's epoch i of N with its monitored metric), with the time
spent and an estimate of what remains; drawn by rich, which redraws only
what changed and leaves the final lines as a plain record.

Components say how far they are through the `PROGRESS_LOGGER` logger
(components/tuner.py, modules/train.py): a record whose message is the
detail, with `step` and `steps` as extra fields.
"""

import sys
import threading
import time
from typing import Callable, Dict, Optional, Tuple

# The name is the module files' contract (modules/progress.py).
from modules.progress import PROGRESS_LOGGER as PROGRESS_LOGGER


class Lines:
  """Progress as plain lines; also a `Callable[[str], None]` for the lines
  a run prints besides (waiting for a lock, the base model)."""

  def __init__(self, write: Callable[[str], None] = print):
    self._write = write

  def __call__(self, line: str) -> None:
    self._write(line)

  def started(self, node: str) -> None:
    self(f'  {node} ...')

  def advanced(self, node: str, detail: str, step: int, steps: int) -> None:
    del node, detail, step, steps  # a line per trial or epoch is too many

  def finished(self, node: str, seconds: float) -> None:
    del node, seconds  # the run's summary lists every component's time

  def failed(self, node: str) -> None:
    self(f'  {node} FAILED')

  def close(self) -> None:
    pass


def _remaining(elapsed: float, step: int, steps: int) -> str:
  if step <= 0 or steps <= step:
    return ''
  return f', ~{elapsed / step * (steps - step):.0f}s left'


class Live(Lines):
  """One line per component, rewritten in place on a terminal."""

  def __init__(self):
    super().__init__()
    from rich.console import Console  # pylint: disable=g-import-not-at-top
    from rich.live import Live as RichLive  # pylint: disable=g-import-not-at-top

    self._lock = threading.Lock()
    self._rows: Dict[str, str] = {}  # finished components: their last word
    self._started: Dict[str, float] = {}  # running ones: since when
    self._details: Dict[str, Tuple[str, int, int]] = {}
    self._live = RichLive(
      console=Console(highlight=False),
      refresh_per_second=4,
      get_renderable=self._render,
      redirect_stdout=False,
      redirect_stderr=False,
    )
    self._live.start()

  def _render(self):
    from rich.text import Text  # pylint: disable=g-import-not-at-top

    with self._lock:
      lines = []
      for node, row in self._rows.items():
        if node in self._started:  # running: the clock moves
          elapsed = time.monotonic() - self._started[node]
          row = f'  {node} ... {elapsed:.0f}s'
          if node in self._details:
            detail, step, steps = self._details[node]
            row += f': {detail}{_remaining(elapsed, step, steps)}'
        lines.append(row)
    return Text('\n'.join(lines))

  def __call__(self, line: str) -> None:
    self._live.console.print(line, markup=False, highlight=False)

  def started(self, node: str) -> None:
    with self._lock:
      self._started[node] = time.monotonic()
      self._rows[node] = f'  {node} ...'

  def advanced(self, node: str, detail: str, step: int, steps: int) -> None:
    with self._lock:
      if node in self._started:
        self._details[node] = (detail, step, steps)
    self._live.refresh()

  def _end(self, node: str, row: str) -> None:
    with self._lock:
      self._started.pop(node, None)
      detail = self._details.pop(node, None)
      self._rows[node] = row + (f': {detail[0]}' if detail else '')
    self._live.refresh()

  def finished(self, node: str, seconds: float) -> None:
    self._end(node, f'  {node} done in {seconds:.1f}s')

  def failed(self, node: str) -> None:
    started = self._started.get(node, time.monotonic())
    self._end(node, f'  {node} FAILED after {time.monotonic() - started:.1f}s')

  def close(self) -> None:
    self._live.stop()


def for_terminal(stream=None) -> Lines:
  """Live on a terminal, Lines otherwise."""
  stream = stream or sys.stdout
  if stream.isatty():
    return Live()
  return Lines(lambda line: print(line, flush=True))


def as_reporter(progress: Optional[Callable[[str], None]]) -> Lines:
  """`progress` as a reporter: itself when it is one, else lines through it."""
  if isinstance(progress, Lines):
    return progress
  return Lines(progress or print)
