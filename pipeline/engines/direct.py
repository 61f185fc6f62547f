"""Beam's DirectRunner: this machine's processes (`runner.beam_args` set
its mode, in_memory or multi_processing, and its number of workers)."""

from pipeline.engines.base import Engine, Options, register


class DirectOptions(Options):
  """None: the DirectRunner is configured by `runner.beam_args`."""


register(
  Engine(
    name='direct',
    options=DirectOptions,
    beam_args=lambda options: ['--runner=DirectRunner'],
    problem=lambda options: None,
    local_workers=True,
    description="Beam's DirectRunner on this machine (runner.beam_args set "
    'in_memory or multi_processing and the workers)',
  )
)
