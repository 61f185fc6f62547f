"""Every engine, by name: importing this registers them (each engine's
module registers itself in `base` on import)."""

# pylint: disable=unused-import
from pipeline.engines import dataflow, direct, flink, portable, spark  # noqa: F401
from pipeline.engines.base import (  # noqa: F401
  BEAM_COMPONENTS,
  ENGINES,
  Engine,
  LocalCluster,
  Options,
  Progress,
  get,
  names,
  pipeline_args,
  register,
)
