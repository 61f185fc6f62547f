"""Named points in the code where a test can make this process fail.

A fault-injection test sets PIPELINE_FAULT_POINT to `NAME` or `NAME=ACTION`
in the environment of the process it starts; when that process reaches
`reached(NAME)` it fails there, every time, instead of by timing luck (a
kill sent "about when" the Pusher renames its folder lands before or after
it depending on the machine's load). Unset, a point costs one dict lookup.

Actions:
  kill   (the default) SIGKILL to this process: nothing runs after it.
  term   SIGTERM to this process, as `kill PID` or a scheduler would send.
  enospc raise OSError(ENOSPC) here, as a full disk would.

The point names are the places' own: `pusher.after_rename` and the like;
each caller says what has and has not happened when it is reached.
"""

import errno
import os
import signal

ENV = 'PIPELINE_FAULT_POINT'
ACTIONS = ('kill', 'term', 'enospc')


def armed(name: str) -> str:
  """The action armed at `name`, or '' when none is."""
  value = os.environ.get(ENV, '')
  point, _, action = value.partition('=')
  if point != name:
    return ''
  return action or 'kill'


def reached(name: str) -> None:
  """Fails here when a test armed this point; otherwise returns."""
  action = armed(name)
  if not action:
    return
  if action == 'kill':
    os.kill(os.getpid(), signal.SIGKILL)
  elif action == 'term':
    os.kill(os.getpid(), signal.SIGTERM)
  elif action == 'enospc':
    raise OSError(
      errno.ENOSPC, os.strerror(errno.ENOSPC) + f' (fault point {name})'
    )
  else:
    raise ValueError(
      f'{ENV}={name}={action}: unknown action; one of {", ".join(ACTIONS)}'
    )
