"""Stores a run cannot use, and a pipeline root its store does not record:
`validate` and `run` refuse each in the same one line, before anything is
written (pipeline/metadata/store.py check_writable, run by the pre-flight
checks both commands share), and leave the store's bytes as they were.

Fast: every refusal comes before TFX is imported; no pipeline runs.
"""

import hashlib
import os
import sqlite3
import subprocess
import threading

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline.metadata import store as metadata_lib
from pipeline.runners import session
from tests.conftest import cli
from tests.unit.runners.test_faults import (
  _immutable,
  _spec_file,
  _spec_raw,
  no_run_outputs,
  refused,
)

COMMANDS = ('validate', 'run')


def _sha256(path):
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


def _tree(folder):
  """Every file and folder under `folder`, with each file's sha256."""
  found = {}
  for parent, folders, files in os.walk(folder):
    for name in folders:
      found[os.path.join(parent, name)] = 'folder'
    for name in files:
      found[os.path.join(parent, name)] = _sha256(os.path.join(parent, name))
  return found


def _mlmd_store(path, executions=0):
  """An ML Metadata store at `path` recording `executions` executions
  (ids 1..executions)."""
  store = mlmd.MetadataStore(metadata_lib.connection_config(str(path)))
  if executions:
    type_id = store.put_execution_type(
      metadata_store_pb2.ExecutionType(name='Component')
    )
    store.put_executions(
      [metadata_store_pb2.Execution(type_id=type_id) for _ in range(executions)]
    )


def _schema_version(path, version):
  """Marks an ML Metadata store as written by another library version."""
  _mlmd_store(path)
  connection = sqlite3.connect(str(path))
  with connection:
    connection.execute('UPDATE MLMDEnv SET schema_version = ?', (version,))
  connection.close()


def _foreign(path):
  """Another application's SQLite database."""
  connection = sqlite3.connect(str(path))
  with connection:
    connection.execute('CREATE TABLE customers (id INTEGER, name TEXT)')
    connection.execute('CREATE TABLE orders (id INTEGER, total REAL)')
    connection.executemany(
      'INSERT INTO customers VALUES (?, ?)', [(1, 'Ada'), (2, 'Grace')]
    )
  connection.close()


# name -> (make the bad store at a path, what the one line must say)
BAD_STORES = {
  'another application': (
    _foreign,
    [
      'a database of another application',
      'customers, orders',
      'name a new file or an ML Metadata store (runner.metadata)',
    ],
  ),
  'not SQLite': (
    lambda p: p.write_bytes(b'this is not a database' * 100),
    ['not a SQLite database'],
  ),
  'newer schema': (
    lambda p: _schema_version(p, 11),
    [
      f'schema version 11, newer than ml-metadata '
      f"{mlmd.__version__}'s 10); use the ml-metadata that "
      'wrote it, or name another store (runner.metadata)'
    ],
  ),
  'older schema': (
    lambda p: _schema_version(p, 9),
    [
      f'schema version 9, older than ml-metadata '
      f"{mlmd.__version__}'s 10); upgrade it "
      '(enable_upgrade_migration) or name another store'
    ],
  ),
}


@pytest.mark.parametrize('command', COMMANDS)
@pytest.mark.parametrize('name', sorted(BAD_STORES))
def test_a_store_a_run_cannot_use_is_refused_and_left_as_it_was(
  tmp_path, name, command
):
  make, says = BAD_STORES[name]
  store = tmp_path / 'out' / 'metadata.sqlite'
  store.parent.mkdir()
  make(store)
  before = _tree(tmp_path / 'out')
  line = refused(
    cli(command, _spec_file(tmp_path), timeout=300),
    f'{store}: the metadata store cannot be written',
    *says,
  )
  assert 'CsvExampleGen' not in line
  assert _tree(tmp_path / 'out') == before  # no journal, no root, no lock
  no_run_outputs(tmp_path)


@pytest.mark.parametrize('command', COMMANDS)
def test_a_read_only_store_is_refused_by_validate_as_by_run(tmp_path, command):
  store = tmp_path / 'out' / 'metadata.sqlite'
  store.parent.mkdir()
  _mlmd_store(store)
  if not _immutable(store):
    pytest.skip('cannot make a file read-only for root here (chattr +i)')
  try:
    line = refused(cli(command, _spec_file(tmp_path), timeout=300), str(store))
    assert 'is not writable; make it writable, or name another store' in line
    assert sorted(os.listdir(store.parent)) == ['metadata.sqlite']
  finally:
    if os.geteuid() == 0:
      subprocess.run(['chattr', '-i', str(store)], check=False)


@pytest.fixture
def full_disk(tmp_path):
  """A 2 MiB tmpfs holding an ML Metadata store, then filled up."""
  disk = tmp_path / 'disk'
  disk.mkdir()
  if (
    os.geteuid() != 0
    or subprocess.run(
      ['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', str(disk)],
      capture_output=True,
      check=False,
    ).returncode
  ):
    pytest.skip('needs root and a tmpfs mount to make a full disk')
  try:
    _mlmd_store(disk / 'metadata.sqlite', executions=1)
    with pytest.raises(OSError), open(disk / 'filler', 'wb') as f:
      while True:
        f.write(b'\0' * 4096)
        f.flush()
    yield disk / 'metadata.sqlite'
  finally:
    subprocess.run(['umount', str(disk)], check=False)


@pytest.mark.parametrize('command', COMMANDS)
def test_an_existing_store_on_a_full_disk_is_one_line(
  tmp_path, full_disk, command
):
  raw = _spec_raw(tmp_path)
  raw['runner']['metadata'] = str(full_disk)
  digest = _sha256(full_disk)
  refused(
    cli(command, _spec_file(tmp_path, raw), timeout=300),
    f'{full_disk}: the metadata store cannot be written (its disk is '
    'full: 0 KiB free); free space there, or name a store on another '
    'disk (runner.metadata)',
  )
  assert _sha256(full_disk) == digest
  assert sorted(os.listdir(full_disk.parent)) == ['filler', 'metadata.sqlite']
  no_run_outputs(tmp_path)


def _root_of_a_run(root, ids):
  """A pipeline root as TFX leaves it (the layout of a real run): an
  output folder per execution id, the executor's own folder, a summary."""
  for execution in ids:
    examples = root / 'CsvExampleGen' / 'examples' / str(execution)
    (examples / 'Split-train').mkdir(parents=True)
    (examples / 'Split-train' / 'data_tfrecord-00000-of-00001.gz').write_bytes(
      b'examples of execution %d' % execution
    )
    (
      root / 'CsvExampleGen' / '.system' / 'executor_execution' / str(execution)
    ).mkdir(parents=True)
  (root / 'summaries').mkdir()
  (root / 'summaries' / 'run.json').write_text('{}')


@pytest.mark.parametrize('command', COMMANDS)
@pytest.mark.parametrize('recorded', [None, 0, 1])
def test_a_root_kept_without_its_store_is_refused_before_anything_is_written(
  tmp_path, command, recorded
):
  """The store deleted (None), replaced by a new one (0), or recording
  fewer executions than the root holds outputs of (1 of 2)."""
  out = tmp_path / 'out'
  root = out / 'root'
  _root_of_a_run(root, [1, 2])
  store = out / 'metadata.sqlite'
  if recorded is not None:
    _mlmd_store(store, executions=recorded)
  before = _tree(out)
  ids = 'execution 2' if recorded == 1 else 'executions 1 to 2'
  refused(
    cli(command, _spec_file(tmp_path), timeout=300),
    f'{root}: holds outputs of {ids}, which {store} does not record; '
    'restore that metadata store, or remove or rename the pipeline root',
  )
  assert _tree(out) == before


def test_a_root_its_store_records_passes(tmp_path):
  """Every output folder's execution is in the store; the lock file and
  the summaries are no outputs."""
  out = tmp_path / 'out'
  _root_of_a_run(out / 'root', [1, 2])
  _mlmd_store(out / 'metadata.sqlite', executions=2)
  before = _tree(out)
  proc = cli('validate', _spec_file(tmp_path), timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert _tree(out) == before


def test_a_store_a_killed_writer_left_a_journal_in_is_not_refused(tmp_path):
  """Only a writer can roll a hot journal back: the run does, on opening
  the store. Unreadable without writing, its executions are unknown."""
  store = tmp_path / 'metadata.sqlite'
  _mlmd_store(store)
  (tmp_path / 'metadata.sqlite-journal').write_bytes(b'\0' * 512)
  assert metadata_lib.check_writable(str(store)) is None
  _foreign(tmp_path / 'other.sqlite')
  (tmp_path / 'other.sqlite-journal').write_bytes(b'\0' * 512)
  assert metadata_lib.check_writable(str(tmp_path / 'other.sqlite')) is None


def test_the_schema_mismatch_is_one_line_where_the_run_registers(tmp_path):
  """The same words where a run opens the store to register itself."""
  store = tmp_path / 'metadata.sqlite'
  _schema_version(store, 11)
  with pytest.raises(session.RunRefused) as refusal:
    session.register_run(
      metadata_lib.connection_config(str(store)), 'p', 'run', str(store)
    )
  line = str(refusal.value)
  assert '\n' not in line and len(line) < 300, line
  assert 'schema version 11, newer than ml-metadata' in line


# --- the run lock ------------------------------------------------------------


def test_the_lock_leaves_nothing_it_made(tmp_path):
  root = tmp_path / 'a' / 'root'
  lock = session.PipelineLock(str(root), 'p')
  lock.acquire('run-1', progress=lambda line: None)
  assert (root / session.LOCK_FILE).exists()
  lock.release()
  assert not (tmp_path / 'a').exists()
  # A root that holds outputs stays, without the lock file.
  root.mkdir(parents=True)
  (root / 'Trainer').mkdir()
  lock.acquire('run-2', progress=lambda line: None)
  lock.release()
  assert os.listdir(root) == ['Trainer']


def test_a_killed_holder_is_taken_over(tmp_path):
  (tmp_path / session.LOCK_FILE).write_text(
    '{"run_id": "old", "pid": 999999999}'
  )
  said = []
  lock = session.PipelineLock(str(tmp_path), 'p')
  lock.acquire('new', progress=said.append)
  lock.release()
  assert said == [
    'taking over the lock of run old (pid 999999999, no longer running)'
  ]


def test_a_run_that_waited_holds_the_lock_on_the_file_at_its_path(tmp_path):
  """The lock file is removed as its holder lets go: the run that waited
  must then hold the lock of the file at the path, or a third run would
  take a new file's lock beside it."""
  root = str(tmp_path / 'root')
  first = session.PipelineLock(root, 'p')
  first.acquire('run-1', progress=lambda line: None)
  waiting = threading.Event()
  second = session.PipelineLock(root, 'p')
  thread = threading.Thread(
    target=second.acquire,
    args=('run-2',),
    kwargs={'progress': lambda line: waiting.set()},
  )
  thread.start()
  assert waiting.wait(30)
  first.release()
  thread.join(30)
  assert not thread.is_alive()
  third = session.PipelineLock(root, 'p')
  with pytest.raises(session.RunRefused, match='already running: run run-2'):
    third.acquire('run-3', wait=False, progress=lambda line: None)
  second.release()
  assert not os.path.exists(root)


def test_validate_of_a_good_spec_writes_nothing(tmp_path):
  proc = cli('validate', _spec_file(tmp_path), timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize(
  'raised, said',
  [
    (
      'Error when executing query: database or disk is full query:  INSERT '
      "INTO `Type`(`name`) VALUES('pipeline_run');",
      'database or disk is full',
    ),
    ('disk I/O error query: COMMIT;', 'disk I/O error'),
    (
      'MLMD database version 11 is greater than library version 10. Please '
      'upgrade the library to use the given database in order to prevent '
      'potential data loss.',
      f"schema version 11, newer than ml-metadata {mlmd.__version__}'s 10",
    ),
  ],
)
def test_a_store_error_is_what_went_wrong_without_the_sql(raised, said):
  assert metadata_lib.store_error(RuntimeError(raised)) == said
