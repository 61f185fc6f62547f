"""The engine registry's types (pipeline/engines/__init__.py says what an
engine is); the engines' modules register here, the package re-exports."""

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

from pydantic import BaseModel, ConfigDict

# The TFX node ids whose executors run Beam pipelines.
BEAM_COMPONENTS: Tuple[str, ...] = (
  'CsvExampleGen',
  'ImportExampleGen',
  'StatisticsGen',
  'Transform',
  'Evaluator',
)


class Options(BaseModel):
  """An engine's options: strict, frozen, unknown keys refused."""

  model_config = ConfigDict(extra='forbid', frozen=True, strict=True)


Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class LocalCluster:
  """An engine's local cluster on this machine, for users and tests
  (`python -m pipeline engine fetch|up|down|status ENGINE`).

  Attributes:
    fetch: downloads and caches what the cluster needs (jars, the
      distribution); idempotent. Needs the network; nothing else does.
    up: starts the cluster (idempotent: a running one is left as it is)
      and returns the `runner.engine_options` that reach it.
    down: stops what `up` started; the names of the processes stopped.
    status: what runs now, name -> 'host:port' or pid; empty when down.
    missing: what `up` lacks on this machine (Java, the cached parts), as
      words naming what to do; None when it can start.
  """

  fetch: Callable[[Progress], None]
  up: Callable[[Progress], Dict[str, Any]]
  down: Callable[[Progress], List[str]]
  status: Callable[[], Dict[str, str]]
  missing: Callable[[], Optional[str]]


@dataclasses.dataclass(frozen=True)
class Engine:
  """One engine.

  Attributes:
    name: the `runner.engine` value.
    options: the model `runner.engine_options` is validated against.
    beam_args: options -> the Beam pipeline args that send a component's
      jobs to the engine (before the spec's own `runner.beam_args`).
    problem: options -> what stands in the way of running there now, as
      words for a one-line error (None when nothing does). Called by the
      pre-flight; may look at the machine (Java, jars, a master's port).
    local_workers: whether the engine's Python workers are processes of
      this machine with the project installed (TFX then need not build and
      stage a package of the project for every Beam component).
    description: one line for `engine list` and the README.
    cluster: how to run one on this machine, when the engine can.
  """

  name: str
  options: Type[Options]
  beam_args: Callable[[Options], List[str]]
  problem: Callable[[Options], Optional[str]]
  local_workers: bool
  description: str
  cluster: Optional[LocalCluster] = None


ENGINES: Dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
  ENGINES[engine.name] = engine
  return engine


def get(name: str) -> Engine:
  try:
    return ENGINES[name]
  except KeyError:
    raise ValueError(
      f'unknown engine {name!r}; choose one of {", ".join(names())}'
    ) from None


def names() -> List[str]:
  return list(ENGINES)


def worker_args(environment: str, worker_pool: str) -> List[str]:
  """Where a portable engine runs Beam's Python workers: `loopback` in the
  submitting process (each component's), `external` in the worker pool
  at `worker_pool`."""
  if environment == 'external':
    return [
      '--environment_type=EXTERNAL',
      f'--environment_config={worker_pool}',
    ]
  return ['--environment_type=LOOPBACK']


def pipeline_args(
  name: str, options: Options, beam_args: List[str]
) -> List[str]:
  """The Beam pipeline args for engine `name`: its own, then the spec's
  `beam_args`, less the DirectRunner's (--direct_*, which the default
  `beam_args` carry) when the engine is another."""
  engine = get(name)
  extra = list(beam_args)
  if name != 'direct':
    extra = [a for a in extra if not a.startswith('--direct_')]
  return engine.beam_args(options) + extra
