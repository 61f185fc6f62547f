"""`engine list`, and `engine fetch|up|down|status ENGINE` for the local
Flink and Spark clusters (pipeline/engines)."""

import json

from pipeline.errors import EngineError


def add_commands(sub) -> None:
  """Adds `engine` to `sub`, the top-level subparsers."""
  engine = sub.add_parser(
    'engine',
    help='the engines the Beam components can run on, and a '
    'local Flink or Spark cluster: list, fetch, up, down, status',
  )
  engine.add_argument(
    'engine_command', choices=['list', 'fetch', 'up', 'down', 'status']
  )
  engine.add_argument('engine', nargs='?', help='flink or spark')
  engine.add_argument('--json', action='store_true', help='status as JSON')
  engine.set_defaults(func=cmd_engine)


def _list() -> None:
  from pipeline.engines import registry as engines  # pylint: disable=g-import-not-at-top

  for name in engines.names():
    engine = engines.get(name)
    local = ' (local cluster: engine up ' + name + ')' if engine.cluster else ''
    print(f'{name:<9} {engine.description}{local}')


def _cluster(args):
  """The local cluster of the engine `args` name; refused when none is named
  or it has none."""
  from pipeline.engines import registry as engines  # pylint: disable=g-import-not-at-top

  if not args.engine:
    raise EngineError(
      f'engine {args.engine_command}: name an engine: '
      + ', '.join(n for n in engines.names() if engines.get(n).cluster)
    )
  try:
    engine = engines.get(args.engine)
  except ValueError as e:
    raise EngineError(str(e)) from None
  if engine.cluster is None:
    raise EngineError(
      f'{args.engine}: no local cluster to {args.engine_command}'
      '; it runs elsewhere (docs/scale.md)'
    )
  return engine.cluster


def _up(args, cluster) -> None:
  missing = cluster.missing()
  if missing:
    raise EngineError(f'{args.engine}: {missing}')
  options = cluster.up(print)
  print(
    f'{args.engine}: up; in a spec: runner.engine: {args.engine}, '
    f'runner.engine_options: {json.dumps(options)}'
  )


def _status(args, cluster) -> None:
  running = cluster.status()
  if args.json:
    print(json.dumps(running, indent=2))
  elif not running:
    print(f'{args.engine}: down')
  for name, where in sorted(running.items()):
    print(f'{name:<20} {where}')


def _act(args, cluster) -> None:
  if args.engine_command == 'fetch':
    cluster.fetch(print)
    print(f'{args.engine}: ready to start (engine up {args.engine})')
  elif args.engine_command == 'up':
    _up(args, cluster)
  elif args.engine_command == 'down':
    stopped = cluster.down(print)
    print(
      f'{args.engine}: stopped {", ".join(stopped)}'
      if stopped
      else f'{args.engine}: nothing was running'
    )
  else:
    _status(args, cluster)


def cmd_engine(args) -> int:
  if args.engine_command == 'list':
    _list()
    return 0
  cluster = _cluster(args)
  try:
    _act(args, cluster)
  except (OSError, RuntimeError) as e:
    raise EngineError(
      f'{args.engine} {args.engine_command}: {" ".join(str(e).split())}'
    ) from None
  return 0
