"""The code's shape (docs/design.md, "Code shape"): every Python file is as
`ruff format` writes it, no function is longer than 60 lines, no module of
pipeline/definition/ reaches 400 lines, and ruff's complexity and size
rules hold.

Ruff has a complexity rule (C901) and statement and branch counts
(PLR0915, PLR0912), set in pyproject.toml, but nothing that counts a
function's lines; this test does, over the same files ruff checks.
"""

import ast
import os
import subprocess
import sys
from typing import List, Tuple

from tests.conftest import REPO

MAX_LINES = 60
# Functions allowed to be longer, each with its reason: none today.
EXCEPTIONS: dict = {}
RUFF = os.path.join(os.path.dirname(sys.executable), 'ruff')


def python_files() -> List[str]:
  """The files ruff checks (its own list: pyproject.toml's excludes apply)."""
  shown = _ruff('check', '--show-files', '.')
  assert shown.returncode == 0, shown.stderr
  return [p for p in shown.stdout.splitlines() if p.endswith('.py')]


def long_functions(
  source: str, limit: int = MAX_LINES
) -> List[Tuple[str, int]]:
  """(name, lines) of each function in `source` over `limit` lines, counted
  from its `def` through its last line, docstring included."""
  found = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      lines = node.end_lineno - node.lineno + 1
      if lines > limit:
        found.append((node.name, lines))
  return found


def test_no_function_is_longer_than_60_lines():
  over = []
  for path in python_files():
    with open(path, encoding='utf-8') as f:
      source = f.read()
    relative = os.path.relpath(path, REPO)
    for name, lines in long_functions(source):
      if (relative, name) not in EXCEPTIONS:
        over.append(f'{relative}: {name} is {lines} lines')
  assert not over, '\n'.join(over)


def test_the_length_check_finds_a_long_function():
  body = ''.join(f'  x{i} = {i}\n' for i in range(60))
  assert long_functions(f'def short():\n  pass\n\ndef f():\n{body}') == [
    ('f', 61)
  ]
  method = body.replace('\n  ', '\n    ').replace('  x0', '    x0', 1)
  assert long_functions(f'class C:\n  def m(self):\n{method}') == [('m', 61)]


# A module of the spec and the pipeline definition holds one job: under
# this many lines, as `ruff format` writes it (the tree is formatted, by the
# test below), its jobs are split into sibling modules.
MAX_MODULE_LINES = 400
DEFINITION = os.path.join(REPO, 'pipeline', 'definition')


def long_modules(
  folder: str, limit: int = MAX_MODULE_LINES
) -> List[Tuple[str, int]]:
  """(file name, lines) of each Python module in `folder` that is not
  under `limit` lines."""
  found = []
  for name in sorted(os.listdir(folder)):
    if name.endswith('.py'):
      with open(os.path.join(folder, name), encoding='utf-8') as f:
        lines = len(f.read().splitlines())
      if lines >= limit:
        found.append((name, lines))
  return found


def test_every_definition_module_is_under_400_lines():
  assert 'checks.py' in os.listdir(DEFINITION)
  over = long_modules(DEFINITION)
  assert not over, '\n'.join(f'{name}: {n} lines' for name, n in over)


def test_the_module_length_check_finds_a_long_module(tmp_path):
  (tmp_path / 'short.py').write_text('x = 1\n' * 399)
  (tmp_path / 'long.py').write_text('"""Doc."""\n' + 'x = 1\n' * 399)
  (tmp_path / 'notes.txt').write_text('x\n' * 1000)
  assert long_modules(str(tmp_path)) == [('long.py', 400)]


def _ruff(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    [RUFF, *args],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )


def test_the_tree_is_formatted_and_within_the_complexity_rules():
  formatted = _ruff('format', '--check', '.')
  assert formatted.returncode == 0, formatted.stdout + formatted.stderr
  rules = _ruff(
    'check', '--select', 'C901,PLR0912,PLR0915', '--output-format', 'concise'
  )
  assert rules.returncode == 0, rules.stdout + rules.stderr


def test_ruff_refuses_a_function_over_complexity_12(tmp_path):
  branches = ''.join(f'  if x == {i}:\n    return {i}\n' for i in range(13))
  (tmp_path / 'complex.py').write_text(f'def f(x):\n{branches}  return -1\n')
  found = _ruff(
    'check',
    '--config',
    os.path.join(REPO, 'pyproject.toml'),
    '--select',
    'C901',
    '--output-format',
    'concise',
    str(tmp_path / 'complex.py'),
  )
  assert found.returncode == 1
  assert 'C901 `f` is too complex (14 > 12)' in found.stdout
