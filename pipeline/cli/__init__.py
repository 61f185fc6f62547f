"""`python -m pipeline` (installed as `tfx-pipeline`): validate a spec, run
the pipeline locally, compile it for Kubeflow Pipelines and submit it, serve
pushed models and send them rows, compare fine-tuning with training from
scratch, inspect lineage in ML Metadata (runs, trace, graph, diff), and see
a run: its HTML report, and a local dashboard over the store.

The CLI is the only room that knows every other room (docs/design.md,
"Layout"). Each command group is a module owning its parsers and handlers
(`run`: validate, schema, run; `compare`; `kubeflow`: compile, submit;
`serving`: serve, predict; `report`: report, predictions, ui; `engine`;
`lineage`: runs, trace, graph, diff), with the arguments they share in
`common`. Each imports a room only inside the command that needs it:
`validate`, `lineage`, `report`, `ui`, `predict`, `submit`, `compile`'s
refusals and every `--help` load no TensorFlow, TFX or Beam.

This module is the process around a command: the parser assembled from the
groups, the environment and logs set up before TensorFlow loads, SIGTERM
during a run, and every `pipeline.errors.PipelineError` caught here once:
one line on stderr and its exit code (2: bad input found before anything
ran; 1: a component failed, named with its reason; 130: Ctrl-C; 143:
SIGTERM during a run).
"""

import argparse
import logging
import os
import sys
import warnings
from typing import List, Optional

from pipeline.cli import (
  compare,
  engine,
  kubeflow,
  lineage,
  report,
  run,
  serving,
)
from pipeline.cli.common import DEFAULT_SPEC
from pipeline.cli.run import print_summary
from pipeline.errors import EXIT_INTERRUPTED, PipelineError
from pipeline.runners import signals

# The names callers outside the package use: the console script, the
# benchmarks and the tests.
__all__ = [
  'DEFAULT_SPEC',
  'build_parser',
  'configure_process',
  'main',
  'print_summary',
  'program_name',
  'quiet_logs',
]

# Each group adds its commands in this order: the order `--help` lists them.
COMMAND_GROUPS = (run, compare, kubeflow, serving, report, engine, lineage)

# The commands that run a pipeline, and record in its store how it ended.
PIPELINE_COMMANDS = ('run', 'schema')

# Warnings TFX 1.16 prints on every healthy run; shown with --verbose.
_KNOWN_NOISE = (
  'ArtifactQuery.property_predicate is not supported',
  'tf_record_iterator (from tensorflow',
  'does not have payload_format custom property',
  "Couldn't find python-snappy",
  # Beam's multi-process DirectRunner workers, on every start.
  'No semi_persistent_directory found',
  'Discarding unparseable args',
)
# TFX's own words for what the run then says once, with the component and
# its reason (`error: Trainer failed: ...`): matched on the unformatted
# message, so no other record that happens to contain them is lost.
_SAID_BY_THE_RUN = ('Execution %d failed.',)


_LOG_HANDLER = 'pipeline.cli'


def quiet_logs(verbose: bool) -> None:
  """TFX, Beam and TF log at INFO through absl; keep the terminal readable."""
  handler = logging.StreamHandler()
  handler.setLevel(logging.INFO if verbose else logging.WARNING)
  if not verbose:
    handler.addFilter(
      lambda record: (
        not any(noise in record.getMessage() for noise in _KNOWN_NOISE)
      )
    )
    handler.addFilter(lambda record: record.msg not in _SAID_BY_THE_RUN)
    # kfp's client retries a refused connection with a warning per try (and
    # resets urllib3's logger level); submit reports the outcome in one line.
    handler.addFilter(lambda record: not record.name.startswith('urllib3'))
  handler.setFormatter(logging.Formatter('%(levelname)s %(name)s: %(message)s'))
  # One such handler per process: main() called again in the same process
  # (a program or a test driving the CLI) replaces it rather than adding a
  # second, which would print every line twice and keep writing to a
  # stderr that may since have been replaced and closed.
  handler.set_name(_LOG_HANDLER)
  root = logging.getLogger()
  for old in [h for h in root.handlers if h.get_name() == _LOG_HANDLER]:
    root.removeHandler(old)
  root.addHandler(handler)
  if not verbose:
    # TensorFlow's own handler prints deprecation notices about TFX's calls.
    logging.getLogger('tensorflow').setLevel(logging.ERROR)


def configure_process(verbose: bool = False) -> None:
  """Process-wide choices, made at the entry point before TF is imported."""
  # One Keras for the whole project: Keras 2 through tf_keras. tf.Transform
  # 1.16 and keras-tuner 1.3.5 need it; it must be set before TF's import.
  os.environ['TF_USE_LEGACY_KERAS'] = '1'
  # TensorFlow's C++ start-up chatter (CUDA probing, logged as errors) is
  # not for the terminal unless asked for.
  os.environ['TF_CPP_MIN_LOG_LEVEL'] = '0' if verbose else '3'
  # ML Metadata's C++ MySQL client logs a failed connection to stderr
  # through glog; the CLI reports it in one line itself.
  os.environ['GLOG_minloglevel'] = '0' if verbose else '3'
  # Google client libraries warn on every import about versions the lock
  # pins for TFX 1.16 (Python 3.10, google-cloud-storage 2): README, "Why
  # Python 3.10". Not news to someone running a pipeline.
  warnings.filterwarnings('ignore', category=FutureWarning, module=r'google\.')
  # TFMA's binary confusion matrices divide by zero at the extreme
  # thresholds of the run report's confusion-matrix plot (and store NaN,
  # which is right there).
  warnings.filterwarnings(
    'ignore', category=RuntimeWarning, module='tensorflow_model_analysis'
  )
  # kfp's client says on every use which KFP versions it speaks (v2 API).
  warnings.filterwarnings(
    'ignore',
    category=FutureWarning,
    message='This client only works with Kubeflow',
  )


def program_name(argv0: Optional[str] = None) -> str:
  """How the user called us: the installed `tfx-pipeline` script, or
  `python -m pipeline`."""
  name = os.path.basename(argv0 if argv0 is not None else sys.argv[0])
  return name if name == 'tfx-pipeline' else 'python -m pipeline'


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    prog=prog or program_name(),
    description='Declarative TFX pipelines: validate and run a spec, '
    'compile it for Kubeflow, serve pushed models, inspect lineage.',
  )
  sub = parser.add_subparsers(dest='command', required=True)
  for group in COMMAND_GROUPS:
    group.add_commands(sub)
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  try:
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    configure_process(getattr(args, 'verbose', False))
    quiet_logs(getattr(args, 'verbose', False))
    if args.command in PIPELINE_COMMANDS:
      # A run stopped with `kill PID` records how it ended, as on Ctrl-C.
      signals.stop_on_sigterm()
    return args.func(args)
  except PipelineError as e:
    print(f'error: {e}', file=sys.stderr)
    return e.exit_code
  except KeyboardInterrupt:
    print('interrupted (Ctrl-C)', file=sys.stderr)
    return EXIT_INTERRUPTED
  except signals.Terminated as e:
    print(e, file=sys.stderr)
    return signals.EXIT_TERMINATED
