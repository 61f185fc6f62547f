"""What a spec's module_file defines and reads, seen in its source.

The file is parsed with `ast`, never imported: the definition runs no user
code, and a module file may need packages only its components' image has.
"""

import ast
import os
from typing import NamedTuple, Tuple

from pipeline.definition.schema import SpecError, is_uri
from pipeline.paths import special_kind

# The callbacks a module file may define (TFX's names).
MODULE_FUNCTIONS = ('preprocessing_fn', 'tuner_fn', 'run_fn')
# TFX's TrainArgs and EvalArgs step counts, as fn_args names them.
STEP_ARGS = ('train_steps', 'eval_steps')


class ModuleFile(NamedTuple):
  """What a module file's source shows, read without importing it: the
  MODULE_FUNCTIONS it defines, and the STEP_ARGS it reads with no fallback
  of its own (`fn_args.train_steps`, not `fn_args.train_steps or 100` nor
  a test of it against None)."""

  functions: Tuple[str, ...]
  steps: Tuple[str, ...]


def _steps_read(tree: ast.Module) -> Tuple[str, ...]:
  """The STEP_ARGS read as attributes anywhere in `tree`, except where the
  read is itself tested (an `or`, a comparison, a condition)."""
  tested = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.BoolOp):
      tested.update(map(id, node.values))
    elif isinstance(node, ast.Compare):
      tested.update(map(id, [node.left, *node.comparators]))
    elif isinstance(node, (ast.If, ast.IfExp, ast.While)):
      tested.add(id(node.test))
  read = {
    node.attr
    for node in ast.walk(tree)
    if isinstance(node, ast.Attribute)
    and node.attr in STEP_ARGS
    and isinstance(node.ctx, ast.Load)
    and id(node) not in tested
  }
  return tuple(name for name in STEP_ARGS if name in read)


def read_module(path: str, source: str) -> ModuleFile:
  """A module file's functions and step reads (`ModuleFile`).

  Raises:
    SpecError: no such file, not Python, or none of MODULE_FUNCTIONS
      defined at its top level (a def, an assignment or an import of that
      name).
  """
  key = f'{source}: module_file'
  if is_uri(path):
    raise SpecError(
      f'{key}: {path}: give a local file (the runner packages '
      'it for the components)'
    )
  if not os.path.isfile(path):
    kind = special_kind(path)
    raise SpecError(
      f'{key}: {path}: '
      + (f'{kind}, not a Python file' if kind else 'no such file')
    )
  try:
    with open(path, encoding='utf-8') as f:
      tree = ast.parse(f.read(), path)
  except (SyntaxError, UnicodeDecodeError, ValueError) as e:
    raise SpecError(
      f'{key}: {path}: not a Python module ({type(e).__name__}: {e})'
    ) from None
  names = set()
  for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      names.add(node.name)
    elif isinstance(node, ast.Assign):
      names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
      names.update((a.asname or a.name).split('.')[0] for a in node.names)
  found = tuple(f for f in MODULE_FUNCTIONS if f in names)
  if not found:
    raise SpecError(
      f'{key}: {path} defines none of '
      f'{", ".join(MODULE_FUNCTIONS)} at its top level'
    )
  return ModuleFile(found, _steps_read(tree))
