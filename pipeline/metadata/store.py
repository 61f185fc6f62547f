"""Where ML Metadata lives: one string names the store.

- a file path: an embedded SQLite store (the local default);
- `mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE`: a shared MySQL or MariaDB
  database. Leave the password out of specs: it is read from the
  MLMD_MYSQL_PASSWORD environment variable when the URI has none;
- `grpc://HOST:PORT` (reading only): an ML Metadata gRPC service, such as
  the metadata-grpc-service of a Kubeflow Pipelines cluster (reach it with
  `kubectl port-forward svc/metadata-grpc-service 8080:8080 -n kubeflow`).
"""

import os
import re
import sqlite3
import urllib.parse
from typing import List, Optional, Union

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from pipeline.errors import PipelineError, whole

PASSWORD_ENV = 'MLMD_MYSQL_PASSWORD'
MYSQL_PORT = 3306
GRPC_TIMEOUT_SEC = 10

Config = Union[
  metadata_store_pb2.ConnectionConfig,
  metadata_store_pb2.MetadataStoreClientConfig,
]


class MetadataError(PipelineError):
  """A store that cannot be named, reached or read. One line."""


def kind(location: str) -> str:
  """'sqlite', 'mysql' or 'grpc'."""
  match = re.match(r'^([a-z][a-z0-9+.-]*)://', location)
  if not match:
    return 'sqlite'
  scheme = match.group(1)
  if scheme in ('mysql', 'grpc'):
    return scheme
  raise MetadataError(
    f'{location}: unsupported metadata store; give a SQLite '
    'file path, mysql://user@host:port/database or '
    'grpc://host:port'
  )


def describe(location: str) -> str:
  """The location with any password masked, for messages."""
  return re.sub(r'(://[^:/@]+):[^@]*@', r'\1:***@', location)


def connection_config(location: str, readonly: bool = False) -> Config:
  """The MLMD connection config for `location` (see the module doc).

  Args:
    location: a SQLite path, mysql:// or grpc:// URI.
    readonly: open a SQLite store read-only (MySQL and gRPC are only read
      by the lineage commands, which issue no writes).
  """
  store_kind = kind(location)
  if store_kind == 'sqlite':
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = location
    config.sqlite.connection_mode = (
      metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
      if readonly
      else metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    return config
  url = urllib.parse.urlsplit(location)
  try:
    port = url.port
  except ValueError:
    raise MetadataError(
      f'{describe(location)}: the port must be a number'
    ) from None
  if not url.hostname:
    raise MetadataError(f'{describe(location)}: no host in the URI')
  if store_kind == 'grpc':
    if port is None:
      raise MetadataError(
        f'{location}: give the port, e.g. grpc://localhost:8080'
      )
    return metadata_store_pb2.MetadataStoreClientConfig(
      host=url.hostname, port=port, client_timeout_sec=GRPC_TIMEOUT_SEC
    )
  database = url.path.lstrip('/')
  if not database or '/' in database:
    raise MetadataError(
      f'{describe(location)}: name one database, e.g. '
      'mysql://mlmd@db:3306/metadata'
    )
  if not url.username:
    raise MetadataError(
      f'{describe(location)}: name the user, e.g. mysql://mlmd@db:3306/metadata'
    )
  config = metadata_store_pb2.ConnectionConfig()
  config.mysql.host = url.hostname
  config.mysql.port = port or MYSQL_PORT
  config.mysql.database = database
  config.mysql.user = urllib.parse.unquote(url.username)
  password = url.password
  if password is None:
    password = os.environ.get(PASSWORD_ENV, '')
  config.mysql.password = urllib.parse.unquote(password)
  return config


# MLMD's refusal of a store of another schema version: a paragraph that
# tells the library's maintainers how to migrate.
_SCHEMA_MISMATCH = re.compile(
  r'MLMD database version (\d+) is (greater|older) than library version '
  r'(\d+)'
)


def store_error(error: BaseException) -> str:
  """An ML Metadata error as one line, without the SQL it ran (MLMD quotes
  its whole schema set-up, which says nothing the user can act on)."""
  text = whole(error)
  mismatch = _SCHEMA_MISMATCH.search(text)
  if mismatch:
    found, newer, library = mismatch.groups()
    return (
      f'schema version {found}, '
      f'{"newer" if newer == "greater" else "older"} than ml-metadata '
      f"{mlmd.__version__}'s {library}"
    )
  # MLMD's form: 'Error when executing query: <what> query: <the SQL>'.
  text = re.sub(r'^Error when executing query:\s*', '', text)
  text = re.sub(r'\s*\bquery:\s.*$', '', text)
  return text or type(error).__name__


def exists(location: str) -> bool:
  """Whether there may be a store to read: a SQLite file must exist; a
  database or service is asked when opened."""
  return kind(location) != 'sqlite' or os.path.isfile(location)


def open_store(location: str, readonly: bool = True) -> mlmd.MetadataStore:
  """Opens the store and makes one query, or says in one line why not."""
  where = describe(location)
  store_kind = kind(location)
  if store_kind == 'sqlite' and readonly and not os.path.isfile(location):
    raise MetadataError(
      f'{location}: no metadata store there (runner.metadata '
      'in the spec, or --store)'
    )
  config = connection_config(location, readonly)
  try:
    store = mlmd.MetadataStore(config)
    store.get_context_types()
  except Exception as e:  # pylint: disable=broad-except
    first = store_error(e)
    if store_kind == 'mysql':
      raise MetadataError(
        f'{where}: cannot open the metadata database ({first or "no reply"});'
        ' check host, port, user, password (or $' + PASSWORD_ENV + ') and '
        'that the server runs'
      ) from None
    if store_kind == 'grpc':
      raise MetadataError(
        f'{where}: the metadata service does not answer ({first})'
      ) from None
    raise MetadataError(
      f'{location}: not a readable ML Metadata store ({first})'
    ) from None
  return store


# The first bytes of every SQLite database file.
SQLITE_HEADER = b'SQLite format 3\x00'
# What a run needs free beside a SQLite store: a new store alone is about
# 240 KiB, and a run adds its executions and a journal. With less, the run
# would fail partway, its outputs written and not recorded.
MIN_ROOM = 1 << 20
_SPEC_KEY = 'runner.metadata'


def _refused(location: str, reason: str, advice: str) -> MetadataError:
  return MetadataError(
    f'{location}: the metadata store cannot be written ({reason}); {advice}'
  )


def _tables(location: str) -> List[str]:
  """The tables of a SQLite file, read without writing (a read-only
  connection: no journal, no schema set-up)."""
  uri = 'file:' + urllib.parse.quote(os.path.abspath(location)) + '?mode=ro'
  connection = sqlite3.connect(uri, uri=True)
  try:
    return [
      row[0]
      for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
        "LIKE 'sqlite_%' ORDER BY name"
      )
    ]
  finally:
    connection.close()


def _free_bytes(folder: str) -> int:
  """Free space a write from this process may use (root may use the
  blocks a file system reserves for it)."""
  stats = os.statvfs(folder)
  blocks = stats.f_bfree if os.geteuid() == 0 else stats.f_bavail
  return blocks * stats.f_frsize


def check_writable(location: str) -> Optional[int]:
  """Whether a run can write to the store at `location`, found without
  writing anything (the same checks for `validate` and `run`): a SQLite
  store is a new path, an empty file or an ML Metadata store of this
  library's schema version, on a disk with room for a run.

  A MySQL database or a gRPC service is checked when the run connects.

  Returns:
    The newest execution id the store records (0: none, or no store yet;
    TFX names each output folder by the id of the execution that wrote
    it). None where that cannot be told without writing: a MySQL or gRPC
    store, or a SQLite store whose writer was killed mid-transaction (its
    journal is rolled back when the run opens it).

  Raises:
    MetadataError: one line naming the store, why, and what to do.
  """
  if kind(location) != 'sqlite':
    return None
  newest = 0
  if os.path.isfile(location) and os.path.getsize(location):
    newest = _read_store(location)
  # The store's folder may be made by the run: its disk is the nearest
  # folder's that exists.
  folder = os.path.dirname(os.path.abspath(location))
  while not os.path.isdir(folder) and folder != os.path.dirname(folder):
    folder = os.path.dirname(folder)
  free = _free_bytes(folder)
  if free < MIN_ROOM:
    raise _refused(
      location,
      f'its disk is full: {free >> 10} KiB free',
      f'free space there, or name a store on another disk ({_SPEC_KEY})',
    )
  return newest


def _read_store(location: str) -> Optional[int]:
  """check_writable's look inside an existing, non-empty SQLite file."""
  other = f'name a new file or an ML Metadata store ({_SPEC_KEY})'
  with open(location, 'rb') as f:
    header = f.read(len(SQLITE_HEADER))
  if header != SQLITE_HEADER:
    raise _refused(location, 'not a SQLite database', other)
  journal = location + '-journal'
  if os.path.isfile(journal) and os.path.getsize(journal):
    return None  # only a writer may roll it back
  try:
    tables = _tables(location)
  except sqlite3.Error as e:
    raise _refused(location, f'SQLite cannot read it: {e}', other) from None
  if not tables:
    return 0
  if 'MLMDEnv' not in tables:
    shown = ', '.join(tables[:3]) + (', ...' if len(tables) > 3 else '')
    raise _refused(
      location, f'a database of another application: tables {shown}', other
    )
  try:
    store = mlmd.MetadataStore(connection_config(location, readonly=True))
    newest = store.get_executions(
      list_options=mlmd.ListOptions(
        limit=1, order_by=mlmd.OrderByField.ID, is_asc=False
      )
    )
  except Exception as e:  # pylint: disable=broad-except
    reason = store_error(e)
    advice = (
      f'use the ml-metadata that wrote it, or name another store ({_SPEC_KEY})'
      if 'newer than' in reason
      else 'upgrade it (enable_upgrade_migration) or name another store '
      f'({_SPEC_KEY})'
      if 'older than' in reason
      else other
    )
    raise _refused(location, reason, advice) from None
  return newest[0].id if newest else 0
