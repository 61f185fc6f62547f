"""The one error base of the command line's rooms.

Every error a user can act on (a bad spec, data or store, a refused cluster
setting, a failed component) is a `PipelineError`: its message is one whole
line naming the file, key or component and what to do, and it carries the
exit code the CLI ends with. The CLI catches this base, once.

Module callbacks and custom components (modules/, components/) run inside
TFX executors and raise their own errors; a run reports those as a failed
component (`ComponentFailed`, exit code 1).
"""

import re

EXIT_BAD_INPUT = 2
EXIT_COMPONENT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


# TensorFlow appends the graph node and the call stack to its messages.
_TF_NOISE = re.compile(r'\s*\[\[\{\{node .*$|\s*Call stack:.*$', re.DOTALL)


# A Python traceback inside a message: Keras Tuner appends the last failed
# trial's to "Number of consecutive failures excceeded the limit", so a
# module's own error (a None step count, say) arrives 1.5 kB deep in it.
_TRACEBACK = 'Traceback (most recent call last):'


def _root_cause(text: str) -> str:
  """`text` with an embedded traceback reduced to its last line, the
  exception that started it; unchanged without one."""
  head, found, trace = text.partition(_TRACEBACK)
  if not found:
    return text
  # The exception's line is the last one not indented (frames and source
  # lines are); chained tracebacks end with the one raised last.
  cause = next(
    (
      line
      for line in reversed(trace.splitlines())
      if line.strip() and not line[0].isspace()
    ),
    '',
  )
  return f'{head.strip()} Root cause: {cause.strip()}' if cause else head


def whole(text: str) -> str:
  """A message as one whole line: line breaks and runs of spaces folded,
  nothing cut but noise: TensorFlow's graph-node and call-stack appendix,
  and an embedded Python traceback, of which the root cause is kept."""
  return ' '.join(_TF_NOISE.sub('', _root_cause(str(text))).split())


def one_line(error: BaseException) -> str:
  """An exception as one whole line: its type and its message."""
  message = whole(str(error))
  return (
    f'{type(error).__name__}: {message}' if message else (type(error).__name__)
  )


class PipelineError(Exception):
  """An error the user can act on. The message is one line."""

  exit_code = EXIT_BAD_INPUT


class ComponentFailed(PipelineError):
  """A pipeline component failed while running."""

  exit_code = EXIT_COMPONENT_FAILED


class EngineError(PipelineError):
  """An engine's local cluster cannot be fetched, started or stopped."""
