"""Whether a process is still running: how a run or a push tells that the
one before it was killed. Standard library only (lineage imports it too)."""

import os


def process_alive(pid: int) -> bool:
  """Whether a process of this id runs on this machine (a zombie, killed
  and not yet reaped by its parent, does not)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  try:
    with open(f'/proc/{pid}/stat') as f:
      # "pid (command) state ...": the state follows the last ')'.
      return f.read().rpartition(')')[2].split()[0] != 'Z'
  except (OSError, IndexError):
    return True
