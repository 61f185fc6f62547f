"""The cross-field rules of where the pipeline runs: the Beam engines and
their options, and the metadata store (checks.py runs them in order)."""

from typing import Any, Mapping

import pydantic

from pipeline.definition.checks_common import check
from pipeline.definition.schema import PipelineSpec, SpecError, is_uri
from pipeline.engines import registry as engines


def _check_engine(
  source: str, key: str, name: str, options: Mapping[str, Any]
) -> None:
  """The engine is registered and its options are its own, well typed."""
  try:
    engine = engines.get(name)
  except ValueError as e:
    raise SpecError(f'{source}: {key}.engine: {e}') from None
  try:
    engine.options.model_validate(dict(options))
  except pydantic.ValidationError as e:
    err = e.errors()[0]
    where = '.'.join(str(p) for p in err['loc'])
    where = f'{key}.engine_options' + (f'.{where}' if where else '')
    if err['type'] == 'extra_forbidden':
      allowed = ', '.join(sorted(engine.options.model_fields)) or 'none'
      raise SpecError(
        f'{source}: {where}: not an option of the {name} '
        f'engine; its options: {allowed}'
      ) from None
    if err['type'] == 'missing':
      raise SpecError(
        f'{source}: {where}: required by the {name} engine'
      ) from None
    message = err['msg'].removeprefix('Value error, ')
    raise SpecError(
      f'{source}: {where}: {message} (got {err.get("input")!r})'
    ) from None


def check_engines(spec: PipelineSpec) -> None:
  src = spec.source
  _check_engine(src, 'runner', spec.runner.engine, spec.runner.engine_options)
  _check_engine(
    src, 'kubeflow', spec.kubeflow.engine, spec.kubeflow.engine_options
  )


def check_metadata(spec: PipelineSpec) -> None:
  metadata = spec.runner.metadata
  check(
    not is_uri(metadata) or metadata.startswith('mysql://'),
    spec.source,
    'runner.metadata',
    'give a SQLite file path or a '
    'mysql://user@host:port/database URI (grpc:// stores are read by the '
    'lineage commands only)',
  )
