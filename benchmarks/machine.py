"""What machine and code a benchmark ran on, written beside its figures, and
what the benchmarks share in timing and writing them."""

import json
import os
import platform
import statistics
import subprocess
import time
from typing import Any, Callable, Dict, Optional, Union

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
  return {
    'cpus': os.cpu_count(),
    'cpu': cpu_model(),
    'python': platform.python_version(),
  }


def code_version() -> Optional[str]:
  """The commit the runs used, `+changes` when tracked files differ from it
  (other work in progress shows in the numbers); None outside git.
  Read-only (no optional index refresh)."""

  def git(*args):
    return subprocess.run(
      ['git', '--no-optional-locks', '-C', REPO, *args],
      capture_output=True,
      text=True,
      check=True,
    ).stdout.strip()

  try:
    commit = git('rev-parse', '--short', 'HEAD')
    changed = git('status', '--porcelain', '--untracked-files=no')
  except (OSError, subprocess.CalledProcessError):
    return None
  return commit + (' +changes' if changed else '')


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
  """The median wall time of `repeats` calls of `fn`."""
  times = []
  for _ in range(repeats):
    started = time.perf_counter()
    fn()
    times.append(time.perf_counter() - started)
  return statistics.median(times)


def write_results(output: str, result: Dict[str, Any], markdown: str) -> None:
  """OUTPUT.json (the figures) and OUTPUT.md (`markdown`), the folder
  made if need be."""
  os.makedirs(os.path.dirname(output), exist_ok=True)
  with open(output + '.json', 'w') as f:
    json.dump(result, f, indent=2)
  with open(output + '.md', 'w') as f:
    f.write(markdown)
