"""Why a folder cannot be had at a path: one rule for every command that
writes somewhere a user named (the spec's folders, a report's file)."""

import os
from typing import Optional


def folder_problem(path: str) -> Optional[str]:
  """None when `path` is, or can be made, a folder this process can write
  in; else what stands in the way, as words to put after the path."""
  # A path by its own name only: the caller has already shown the whole
  # path before these words, and a temporary folder's long name said thrice
  # would push the one-line error past what a terminal shows.
  if os.path.exists(path):
    if not os.path.isdir(path):
      shown = os.path.basename(os.path.normpath(path)) or path
      return f'{shown} is a file, not a folder; name another path'
    if not os.access(path, os.W_OK | os.X_OK):
      return 'the folder is not writable'
    return None
  ancestor = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(ancestor):
    ancestor = os.path.dirname(ancestor)
  shown = os.path.basename(ancestor) or ancestor
  if not os.path.isdir(ancestor):
    return (f'{shown} is a file, so no folder can be made there; name '
            'another path')
  if not os.access(ancestor, os.W_OK | os.X_OK):
    return f'{shown} is not writable, so the folder cannot be made'
  return None
