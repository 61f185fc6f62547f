"""What several command groups share: the spec, store and address
arguments, the spec loaded with its overrides, the store opened, and a
server run until Ctrl-C.

Imports no room at module level: a command's `--help` loads nothing heavy.
"""

import os
from typing import Any

DEFAULT_SPEC = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
  'specs',
  'breast_cancer.yaml',
)


def add_spec(p) -> None:
  p.add_argument(
    'spec',
    nargs='?',
    default=DEFAULT_SPEC,
    help='pipeline spec YAML (default: the breast-cancer spec)',
  )
  p.add_argument(
    '--set',
    action='append',
    metavar='KEY=VALUE',
    help='override a spec key, e.g. --set tuner.max_trials=2 '
    '(repeatable; VALUE is YAML)',
  )


def add_verbose(p, what: str = 'TFX, Beam and TensorFlow logs') -> None:
  p.add_argument('--verbose', action='store_true', help=f'show {what}')


def add_address(p, port: int, what: str) -> None:
  p.add_argument(
    '--host',
    default='127.0.0.1',
    help='address to bind (default 127.0.0.1: this machine only)',
  )
  p.add_argument(
    '--port', type=int, default=port, help=f'{what} {port}; 0 picks a free one'
  )
  p.add_argument(
    '--allow-host',
    action='append',
    metavar='NAME',
    help='also answer requests whose Host header is NAME (a '
    "proxy's or this machine's DNS name; repeatable; * "
    'answers any). Without it only IP addresses, '
    'localhost, the --host value and, with --host '
    "0.0.0.0, this machine's name are answered: a page "
    'elsewhere cannot read the server by pointing its '
    'own name at it (DNS rebinding)',
  )


def add_store_of(p) -> None:
  """The store a command reads: named, or the one a spec names."""
  p.add_argument(
    '--store',
    metavar='STORE',
    help='ML Metadata store: a SQLite path, mysql://... or '
    "grpc://HOST:PORT (default: the spec's "
    'runner.metadata)',
  )
  p.add_argument(
    '--spec',
    default=DEFAULT_SPEC,
    help='spec whose store to read (default: breast cancer)',
  )
  p.add_argument(
    '--set',
    action='append',
    metavar='KEY=VALUE',
    help='override a spec key, as for run',
  )


def add_store(p) -> None:
  """`add_store_of`, and `--json` for the lineage commands."""
  add_store_of(p)
  p.add_argument('--json', action='store_true', help='machine-readable')


def load_spec(args) -> Any:
  """The spec `args` name, with its `--set` overrides."""
  from pipeline.definition import spec as spec_lib  # pylint: disable=g-import-not-at-top

  overrides = dict(spec_lib.parse_override(s) for s in args.set or [])
  return spec_lib.load_spec(args.spec, overrides)


def open_store(args) -> Any:
  """The store `args` name (`--store`, else the spec's runner.metadata)."""
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top

  path = args.store
  if not path:
    path = load_spec(args).runner.metadata
  return lineage.open_store(path)


def until_stopped(args, error, serve) -> int:
  """Runs `serve` (a server's loop) until Ctrl-C; an address it cannot
  listen on is `error`, one line."""
  from pipeline.web import AddressError, check_port  # pylint: disable=g-import-not-at-top

  try:
    check_port(args.port)
    serve()
  except AddressError as e:
    raise error(str(e)) from None
  except OSError as e:
    raise error(
      f'--host {args.host} --port {args.port}: cannot listen: {e.strerror or e}'
    ) from None
  except KeyboardInterrupt:
    print('stopped', flush=True)
  return 0
