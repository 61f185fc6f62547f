"""Where a run writes and what runs it: the spec's local paths, the
metadata store against the pipeline root, and the Beam engine."""

import os
from typing import List, Optional

from pipeline.definition.spec import PipelineSpec, is_uri
from pipeline.engines import registry as engines
from pipeline.metadata import store as metadata_lib
from pipeline.paths import folder_problem
from pipeline.runners.preflight.common import PreflightError


def _writable_folder(
  path: str, key: str, spec: PipelineSpec, named: Optional[str] = None
) -> None:
  """`path` is (or can be made) a folder this process can write in; `named`
  is the path the spec names, when it is a file inside `path`."""
  problem = folder_problem(path)
  if problem:
    raise PreflightError(f'{spec.source}: {key}: {named or path}: {problem}')


def check_paths(spec: PipelineSpec) -> None:
  """Every local path in the spec is what it must be, before anything runs:
  the schema a readable file; the pipeline root and the push destination
  folders that can be written; a SQLite store a file in such a folder.

  Raises:
    PreflightError: naming the key and the path.
  """
  if spec.schema_file and not is_uri(spec.schema_file):
    if os.path.isdir(spec.schema_file):
      raise PreflightError(
        f'{spec.source}: schema: {spec.schema_file} is a '
        'folder; name the schema.pbtxt file'
      )
    if os.path.exists(spec.schema_file) and not os.access(
      spec.schema_file, os.R_OK
    ):
      raise PreflightError(
        f'{spec.source}: schema: {spec.schema_file} cannot be read'
      )
  for key, path in (
    ('runner.pipeline_root', spec.runner.pipeline_root),
    ('push.destination', spec.push.destination),
  ):
    if not is_uri(path):
      _writable_folder(path, key, spec)
  metadata = spec.runner.metadata
  if not is_uri(metadata):
    if os.path.isdir(metadata):
      raise PreflightError(
        f'{spec.source}: runner.metadata: {metadata} is a '
        'folder; name the SQLite file inside it'
      )
    if os.path.exists(metadata) and not os.access(metadata, os.R_OK | os.W_OK):
      raise PreflightError(
        f'{spec.source}: runner.metadata: {metadata} is not '
        'writable; make it writable, or name another '
        'store'
      )
    _writable_folder(
      os.path.dirname(os.path.abspath(metadata)),
      'runner.metadata',
      spec,
      named=metadata,
    )
  check_store(spec)


def check_store(spec: PipelineSpec) -> None:
  """The store can take a run and records what the pipeline root holds:
  read, never written, so `validate` runs it as `run` does.

  TFX names an output folder `<root>/<component>/<output>/<execution id>`,
  with ids that the store hands out from 1. A root kept when its store was
  deleted or replaced holds folders of ids the store has not handed out
  yet: the next run would write its outputs over them, then fail. The run
  lock and the summaries folder hold no such folder.

  Raises:
    PreflightError: naming the store or the root, and what to do.
  """
  metadata = spec.runner.metadata
  try:
    newest = metadata_lib.check_writable(metadata)
  except metadata_lib.MetadataError as e:
    raise PreflightError(str(e)) from None
  root = spec.runner.pipeline_root
  if newest is None or is_uri(root):
    return
  unrecorded = sorted({i for i in _output_ids(root) if i > newest})
  if unrecorded:
    ids = (
      f'execution {unrecorded[0]}'
      if len(unrecorded) == 1
      else f'executions {unrecorded[0]} to {unrecorded[-1]}'
    )
    raise PreflightError(
      f'{root}: holds outputs of {ids}, which {metadata} does not record; '
      'restore that metadata store, or remove or rename the pipeline root'
    )


def _output_ids(root: str) -> List[int]:
  """The execution ids of the output folders under a local pipeline root
  (also `<component>/.system/executor_execution/<id>`)."""
  ids = []
  for component in _folders(root):
    for output in _folders(component):
      if os.path.basename(output) == '.system':
        output = os.path.join(output, 'executor_execution')
      ids.extend(
        int(os.path.basename(folder))
        for folder in _folders(output)
        if os.path.basename(folder).isdigit()
      )
  return ids


def _folders(path: str) -> List[str]:
  try:
    with os.scandir(path) as entries:
      return [e.path for e in entries if e.is_dir(follow_symlinks=False)]
  except (FileNotFoundError, NotADirectoryError):
    return []


def check_local_engine(spec: PipelineSpec) -> None:
  """The engine can take the Beam jobs now (Java, its jars, a master that
  answers): one line naming what to do, before anything runs."""
  problem = engines.get(spec.runner.engine).problem(spec.runner.options())
  if problem:
    raise PreflightError(
      f'{spec.source}: runner.engine {spec.runner.engine}: {problem}'
    )
