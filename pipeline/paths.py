"""Where the commands may write: one rule for every command that writes
somewhere a user named (the spec's folders, a report's file, a CSV of
predictions).

A file a user names is written whole or not at all: into a temporary file
beside it, renamed over it when complete. Only a new path or an existing
regular file is replaced; a device node, FIFO, socket, folder or a kernel
file (/proc, /sys, /dev) is refused, since renaming over one would replace
it (as root, even /dev/full) and writing into one is not saving a file.
"""

import contextlib
import os
import stat
import tempfile
from typing import IO, Callable, Iterator, Optional, Tuple

# Kernel pseudo file systems: their "regular" files (/proc/version) are
# views of the kernel, never a place to save a file. /dev/shm is plain
# memory-backed storage.
_KERNEL_FOLDERS = ('/proc', '/sys', '/dev')
_STORAGE_UNDER_KERNEL = ('/dev/shm',)


def _under(path: str, folders) -> bool:
  return any(path == top or path.startswith(top + os.sep) for top in folders)


# The error a writer raises is its caller's (a report's, a command's): this
# room imports no other (docs/design.md), not even the errors' base.
ErrorType = Callable[[str], Exception]


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
    return (
      f'{shown} is a file, so no folder can be made there; name another path'
    )
  if not os.access(ancestor, os.W_OK | os.X_OK):
    return f'{shown} is not writable, so the folder cannot be made'
  return None


def _kind(mode: int) -> str:
  for test, name in (
    (stat.S_ISDIR, 'a folder'),
    (stat.S_ISCHR, 'a character device'),
    (stat.S_ISBLK, 'a block device'),
    (stat.S_ISFIFO, 'a named pipe (FIFO)'),
    (stat.S_ISSOCK, 'a socket'),
  ):
    if test(mode):
      return name
  return 'not a regular file'


def special_kind(path: str) -> Optional[str]:
  """What `path` is, in words, when it exists but is neither a regular
  file nor a folder (a FIFO, a device, a socket); else None. Readers refuse
  such a file unread: reading one waits for a writer (a FIFO) or never ends
  (/dev/zero)."""
  try:
    mode = os.stat(path).st_mode
  except (OSError, ValueError):
    return None
  if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
    return None
  return _kind(mode)


def file_problem(path: str) -> Optional[str]:
  """None when `path` is a new path or an existing regular file that can
  be replaced whole; else what stands in the way, as words to put after
  the path."""
  # A link is followed: the file it names is the one the user means, and
  # renaming over the link would leave its target stale.
  target = os.path.realpath(path)
  shown = os.path.basename(os.path.normpath(path)) or path
  try:
    mode = os.stat(target).st_mode
  except (FileNotFoundError, NotADirectoryError):
    mode = None  # new: folder_problem says whether its folder can be had
  except OSError as e:
    return f'cannot look at it: {e.strerror}'
  if mode is not None and not stat.S_ISREG(mode):
    return f'{shown} is {_kind(mode)}; name a regular file'
  if _under(target, _KERNEL_FOLDERS) and not _under(
    target, _STORAGE_UNDER_KERNEL
  ):
    return (
      f'{target} is a kernel file, not a place to save one; name a regular file'
    )
  if mode is not None and not os.access(target, os.W_OK):
    return f'{shown} is not writable'
  return folder_problem(os.path.dirname(target))


@contextlib.contextmanager
def atomic_file(
  path: str,
  error: ErrorType,
  what: str = 'the file',
  mode: str = 'w',
  encoding: Optional[str] = 'utf-8',
  newline: Optional[str] = None,
) -> Iterator[IO]:
  """An open file whose contents replace `path` when the block ends
  without an error; on an error nothing at `path` changes and no
  temporary file is left.

  Args:
    path: a new path, or an existing regular file (file_problem).
    error: the error to raise, given its one-line message (a
      PipelineError subclass, for the CLI's one line and exit code 2).
    what: what is written, for the error (`the report`).
    mode: 'w' (text) or 'wb'.
    encoding: the text encoding (None for bytes).
    newline: as for open() (csv wants '').

  Yields:
    The temporary file, open for writing.

  Raises:
    error: `path` cannot be written (said before anything is), or the
      write failed (a full disk); one line naming the path.
  """
  problem = file_problem(path)
  if problem:
    raise error(f'{path}: cannot write {what} here: {problem}')
  target = os.path.realpath(path)
  try:
    fd, tmp = _temporary_beside(target)
  except OSError as e:
    raise error(f'{path}: cannot write {what} here: {e.strerror}') from None
  try:
    os.chmod(tmp, _mode_for(target))
    binary = 'b' in mode
    with open(
      fd,
      mode,
      encoding=None if binary else encoding,
      newline=None if binary else newline,
    ) as f:
      yield f
    os.replace(tmp, target)
  except OSError as e:
    raise error(f'{path}: cannot write {what}: {e.strerror or e}') from None
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _temporary_beside(target: str) -> Tuple[int, str]:
  """A new temporary file in `target`'s folder (made if missing), so that
  renaming it over `target` is atomic; (its descriptor, its path)."""
  folder = os.path.dirname(target)
  os.makedirs(folder, exist_ok=True)
  return tempfile.mkstemp(
    dir=folder, suffix='.tmp', prefix=f'.{os.path.basename(target)}.'
  )


def _mode_for(target: str) -> int:
  """The permission bits the file replacing `target` gets: its own, or
  for a new file the usual ones under the umask."""
  try:
    return os.stat(target).st_mode & 0o7777
  except FileNotFoundError:
    # mkstemp's 0600 is for secrets; a new file gets the usual mode.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_text(
  path: str, text: str, error: ErrorType, what: str = 'the file'
) -> None:
  """`text` as the whole of file `path` (atomic_file's rules)."""
  with atomic_file(path, error, what) as f:
    f.write(text)
