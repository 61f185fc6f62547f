"""The project's rooms and the direction of their imports (README, "Layout").

Walks every import of the project's code (module-level and the lazy ones
inside functions alike) with `ast`, without importing anything.
"""

import ast
import os
from typing import Dict, List, Optional, Set

from tests.conftest import REPO

PACKAGES = ('pipeline', 'components', 'modules', 'kubeflow')
# The rooms of pipeline/ (one sub-package or module each); the CLI is the
# only one that may know every other room, and none may import it.
PIPELINE_ROOMS = (
  'cli',
  'errors',
  'datasets',
  'definition',
  'runners',
  'metadata',
  'serving',
  'experiments',
  'report',
  'paths',
  'engines',
  'web',
)


def project_modules() -> Dict[str, str]:
  """Dotted module name -> file, for every .py file of the packages."""
  found = {}
  for package in PACKAGES:
    for folder, _, files in os.walk(os.path.join(REPO, package)):
      for name in files:
        if not name.endswith('.py'):
          continue
        path = os.path.join(folder, name)
        parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
        if parts[-1] == '__init__':
          parts = parts[:-1]
        found['.'.join(parts)] = path
  return found


MODULES = project_modules()


def imports_of(path: str) -> Set[str]:
  """The project modules a file imports, anywhere in it."""
  result = set()
  for node in ast.walk(ast.parse(open(path).read(), path)):
    names: List[str] = []
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names = [f'{node.module}.{alias.name}' for alias in node.names]
      names.append(node.module)
    for name in names:
      while name and name not in MODULES:
        name = name.rpartition('.')[0]
      if name:
        result.add(name)
  return result


def room(module: str) -> Optional[str]:
  parts = module.split('.')
  if parts[0] != 'pipeline':
    return parts[0]
  if len(parts) == 1:
    return 'pipeline'  # the package's own __init__
  return 'pipeline.cli' if parts[1] == '__main__' else f'pipeline.{parts[1]}'


def module_graph() -> Dict[str, Set[str]]:
  return {m: imports_of(path) - {m} for m, path in MODULES.items()}


def room_graph() -> Dict[str, Set[str]]:
  graph: Dict[str, Set[str]] = {}
  for module, imported in module_graph().items():
    edges = graph.setdefault(room(module), set())
    edges.update(room(m) for m in imported if room(m) != room(module))
  return graph


def cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
  """A cycle in `graph` as a path, or None."""
  state: Dict[str, int] = {}  # 1: on the stack, 2: done
  stack: List[str] = []

  def visit(node):
    state[node] = 1
    stack.append(node)
    for child in sorted(graph.get(node, ())):
      if state.get(child) == 1:
        return stack[stack.index(child) :] + [child]
      if child not in state:
        found = visit(child)
        if found:
          return found
    stack.pop()
    state[node] = 2
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def test_the_walk_sees_every_room():
  rooms = {room(m) for m in MODULES}
  assert rooms == {'pipeline', 'components', 'modules', 'kubeflow'} | {
    f'pipeline.{r}' for r in PIPELINE_ROOMS
  }
  # Lazy imports count: the CLI imports every room inside its commands.
  assert room_graph()['pipeline.cli'] >= {
    'pipeline.definition',
    'pipeline.runners',
    'pipeline.metadata',
    'pipeline.serving',
    'pipeline.experiments',
    'pipeline.report',
    'kubeflow',
  }


def test_no_import_cycle_between_rooms():
  assert cycle(room_graph()) is None, ' -> '.join(cycle(room_graph()))


def test_no_import_cycle_between_modules():
  found = cycle(module_graph())
  assert found is None, ' -> '.join(found)


def test_a_cycle_is_found_when_there_is_one():
  assert cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
  assert cycle({'a': {'b'}, 'b': set(), 'c': {'a'}}) is None


def test_no_room_imports_the_cli():
  importers = {
    room(m)
    for m, imported in module_graph().items()
    if 'pipeline.cli' in imported
  } - {'pipeline.cli'}
  assert not importers


def test_arrows_go_one_way():
  graph = room_graph()
  # The module files and custom components know nothing of the CLI's rooms:
  # they run inside TFX executors, locally and in containers.
  assert graph['modules'] == set()
  # Components run beside the module files and share their contracts (the
  # progress logger's name, modules/progress.py); nothing else.
  assert graph['components'] <= {'modules'}
  # Reading ML Metadata needs no other room (the shared error base, and the
  # standard-library check of whether a run's process is alive).
  # The task registry names the metrics the store holds (modules/tasks.py,
  # which imports no TensorFlow).
  assert graph['pipeline.metadata'] <= {
    'pipeline.errors',
    'components',
    'modules',
    'pipeline.paths',
  }
  assert graph['pipeline.errors'] == set()
  # The definition knows the modules' config and the components, nothing
  # that runs or reads runs.
  assert graph['pipeline.definition'] <= {
    'modules',
    'components',
    'pipeline.errors',
    'pipeline.engines',
    'pipeline.paths',
  }
  # The engines (where Beam jobs run, local clusters) stand nearly alone
  # (the components' standard-library process check): the spec checks
  # options against them, the runners and the CLI use them.
  assert graph['pipeline.engines'] <= {'components'}
  # The report reads runs (metadata) and names metrics as the spec does;
  # it runs nothing.
  assert graph['pipeline.report'] <= {
    'pipeline.metadata',
    'pipeline.errors',
    'pipeline.definition',
    'pipeline.paths',
    'modules',
    'pipeline.web',
  }
  # What both HTTP servers need (Host check, connection bound) knows no
  # other room: `serve` and `ui` share it without knowing each other.
  assert graph['pipeline.web'] <= {'pipeline.errors'}
  assert 'pipeline.web' in graph['pipeline.serving']
  assert 'pipeline.serving' not in graph['pipeline.report']
  assert graph['pipeline.paths'] == set()
  # Kubeflow's runner goes through the definition and the shared runner
  # entry; it never reaches back into the CLI.
  assert graph['kubeflow'] <= {
    'pipeline.definition',
    'pipeline.runners',
    'pipeline.errors',
    'pipeline.engines',
    'pipeline.paths',
  }


# The task registry (modules/tasks.py) is the one place that tells tasks
# apart: nothing else compares a task's name or the number of classes.
TASK_REGISTRY = 'modules.tasks'
TASK_NAMES = {'binary', 'multiclass', 'regression', 'classification'}


def _task_comparisons(path: str) -> List[str]:
  """`x.num_classes <op> ...`, `... == 'regression'` and the like in a
  file: each as 'line: source'."""
  source = open(path).read()
  found = []
  for node in ast.walk(ast.parse(source, path)):
    if not isinstance(node, ast.Compare):
      continue
    operands = [node.left, *node.comparators]
    if all(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
      continue  # whether a value is known, not which task it is
    names_classes = any(
      isinstance(o, ast.Attribute)
      and o.attr == 'num_classes'
      or isinstance(o, ast.Name)
      and o.id == 'num_classes'
      for o in operands
    )
    names_task = any(
      isinstance(o, ast.Constant) and o.value in TASK_NAMES for o in operands
    )
    if names_classes or names_task:
      found.append(f'{node.lineno}: {ast.get_source_segment(source, node)}')
  return found


def test_only_the_task_registry_tells_tasks_apart():
  offenders = {
    module: found
    for module, path in MODULES.items()
    if module != TASK_REGISTRY
    for found in [_task_comparisons(path)]
    if found
  }
  assert not offenders, (
    'compare the task through modules/tasks.py (ask the task), not its '
    f'name or class count: {offenders}'
  )


def test_the_structure_check_finds_a_comparison(tmp_path):
  """The check above is not vacuous: it finds both kinds of comparison."""
  path = tmp_path / 'example.py'
  path.write_text(
    'if spec.features.num_classes == 2:\n  pass\n'
    "multiclass = task == 'multiclass'\n"
  )
  assert [line.split(':')[0] for line in _task_comparisons(str(path))] == [
    '1',
    '3',
  ]
