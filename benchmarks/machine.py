"""What machine a benchmark ran on, written beside its figures."""

import os
import platform
from typing import Dict, Union


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
