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
import urllib.parse
from typing import Union

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from pipeline.errors import PipelineError, whole

PASSWORD_ENV = 'MLMD_MYSQL_PASSWORD'
MYSQL_PORT = 3306
GRPC_TIMEOUT_SEC = 10

Config = Union[metadata_store_pb2.ConnectionConfig,
               metadata_store_pb2.MetadataStoreClientConfig]


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
  raise MetadataError(f'{location}: unsupported metadata store; give a SQLite '
                      'file path, mysql://user@host:port/database or '
                      'grpc://host:port')


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
        metadata_store_pb2.SqliteMetadataSourceConfig.READONLY if readonly
        else metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    return config
  url = urllib.parse.urlsplit(location)
  try:
    port = url.port
  except ValueError:
    raise MetadataError(f'{describe(location)}: the port must be a number'
                        ) from None
  if not url.hostname:
    raise MetadataError(f'{describe(location)}: no host in the URI')
  if store_kind == 'grpc':
    if port is None:
      raise MetadataError(f'{location}: give the port, e.g. grpc://localhost:8080')
    return metadata_store_pb2.MetadataStoreClientConfig(
        host=url.hostname, port=port, client_timeout_sec=GRPC_TIMEOUT_SEC)
  database = url.path.lstrip('/')
  if not database or '/' in database:
    raise MetadataError(f'{describe(location)}: name one database, e.g. '
                        'mysql://mlmd@db:3306/metadata')
  if not url.username:
    raise MetadataError(f'{describe(location)}: name the user, e.g. '
                        'mysql://mlmd@db:3306/metadata')
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


def store_error(error: BaseException) -> str:
  """An ML Metadata error as one line, without the SQL it ran (MLMD quotes
  its whole schema set-up, which says nothing the user can act on)."""
  text = re.sub(r'\s*query:\s*(CREATE|SELECT|INSERT|UPDATE|PRAGMA)\b.*$', '',
                whole(error), flags=re.IGNORECASE)
  text = re.sub(r'^Error when executing query:\s*', '', text)
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
    raise MetadataError(f'{location}: no metadata store there (runner.metadata '
                        'in the spec, or --store)')
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
          'that the server runs') from None
    if store_kind == 'grpc':
      raise MetadataError(f'{where}: the metadata service does not answer '
                          f'({first})') from None
    raise MetadataError(f'{location}: not a readable ML Metadata store '
                        f'({first})') from None
  return store
