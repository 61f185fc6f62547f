"""What machine and code a benchmark ran on, written beside its figures."""

import os
import platform
import subprocess
from typing import Dict, Optional, Union

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:  # no /proc (not Linux): the platform's own word
    return platform.processor() or 'unknown'
  return platform.processor() or 'unknown'


def describe() -> Dict[str, Union[int, str, None]]:
  return {'cpus': os.cpu_count(), 'cpu': cpu_model(),
          'python': platform.python_version()}


def code_version() -> Optional[str]:
  """The commit the runs used, `+changes` when tracked files differ from it
  (other work in progress shows in the numbers); None outside git.
  Read-only (no optional index refresh)."""
  def git(*args):
    return subprocess.run(['git', '--no-optional-locks', '-C', REPO, *args],
                          capture_output=True, text=True,
                          check=True).stdout.strip()
  try:
    commit = git('rev-parse', '--short', 'HEAD')
    changed = git('status', '--porcelain', '--untracked-files=no')
  except (OSError, subprocess.CalledProcessError):
    return None
  return commit + (' +changes' if changed else '')
