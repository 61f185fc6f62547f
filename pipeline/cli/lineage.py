"""`lineage runs|trace|graph|diff`: ML Metadata read back: each run, where a
model came from (as text or a picture), and what changed between two runs.
"""

import json
from typing import TYPE_CHECKING, Dict

from pipeline.cli.common import add_store, open_store

if TYPE_CHECKING:
  from pipeline.metadata.summary import RunListing


def add_commands(sub) -> None:
  """Adds `lineage` and its commands to `sub`, the top-level subparsers."""
  lineage = sub.add_parser(
    'lineage', help='inspect ML Metadata: runs, and where a model came from'
  )
  lineage_sub = lineage.add_subparsers(dest='lineage_command', required=True)

  runs = lineage_sub.add_parser(
    'runs', help='each run: components, blessing, pushed version'
  )
  runs.add_argument('pipeline', nargs='?', help='only this pipeline')
  add_store(runs)
  runs.set_defaults(func=cmd_lineage_runs)
  trace = lineage_sub.add_parser(
    'trace',
    help='walk back from a pushed model dir, artifact:<id> or a '
    'run id to the input files',
  )
  trace.add_argument('target')
  add_store(trace)
  trace.set_defaults(func=cmd_lineage_trace)
  graph = lineage_sub.add_parser(
    'graph',
    help='the lineage of TARGET (as for trace) as a picture: '
    '.dot, or .svg/.png through Graphviz',
  )
  graph.add_argument('target')
  graph.add_argument(
    '--output',
    required=True,
    metavar='FILE',
    help='FILE.dot, FILE.svg or FILE.png',
  )
  add_store(graph)
  graph.set_defaults(func=cmd_lineage_graph)
  diff = lineage_sub.add_parser(
    'diff', help='what changed between two runs, and what was cached'
  )
  diff.add_argument('run_a')
  diff.add_argument('run_b')
  add_store(diff)
  diff.set_defaults(func=cmd_lineage_diff)


def _print_run(run: 'RunListing') -> None:
  """One run of `lineage runs`: its line, its engines, why it failed."""
  counts: Dict[str, int] = {}
  for state in run.components.values():
    counts[state] = counts.get(state, 0) + 1
  blessed = {True: 'yes', False: 'no'}.get(
    run.blessed, 'unknown' if 'Evaluator' in run.components else '-'
  )
  print(
    f'{run.run_id}  {run.pipeline}  started {run.started}  '
    f'{run.seconds:.1f}s  {run.status}  '
    + ', '.join(f'{n} {s}' for s, n in sorted(counts.items()))
    + f'  blessed: {blessed}  pushed: {run.pushed_version or "-"}'
  )
  engines = sorted(set(run.engines.values()))
  if engines:
    print(
      '    engine: '
      + '; '.join(
        f'{engine} ({", ".join(n for n, e in run.engines.items() if e == engine)})'
        for engine in engines
      )
    )
  failed = [c for c, s in run.components.items() if s == 'failed']
  if run.failure:
    print(f'    {run.failure}')
  elif failed:
    print(f'    failed: {", ".join(failed)}')


def cmd_lineage_runs(args) -> int:
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top

  runs = lineage.list_runs(open_store(args), args.pipeline)
  if args.json:
    print(json.dumps([run.to_json() for run in runs], indent=2))
    return 0
  if not runs:
    print(
      'no runs recorded' + (f' for {args.pipeline}' if args.pipeline else '')
    )
  for run in runs:
    _print_run(run)
  return 0


def cmd_lineage_trace(args) -> int:
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top

  tree = lineage.trace(open_store(args), args.target)
  if args.json:
    print(json.dumps(tree.to_json(), indent=2, default=str))
  else:
    print('\n'.join(lineage.render(tree)))
  return 0


def cmd_lineage_graph(args) -> int:
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top

  tree = lineage.trace(open_store(args), args.target)
  print(f'wrote {lineage.write_graph(tree, args.output)}')
  return 0


def cmd_lineage_diff(args) -> int:
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top

  result = lineage.diff(open_store(args), args.run_a, args.run_b)
  if args.json:
    print(json.dumps(result.to_json(), indent=2, default=str))
  else:
    print('\n'.join(lineage.render_diff(result)))
  return 0
