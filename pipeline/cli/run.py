"""`validate`, `schema` and `run`: check a spec, infer its schema, run the
pipeline locally, and the summary a run prints.

TFX loads only once the input has passed the checks: `validate` and every
refusal load no TensorFlow, TFX or Beam.
"""

import sys
import time
from typing import Any, Dict, Optional

from pipeline import paths
from pipeline.cli.common import add_spec, add_verbose, load_spec
from pipeline.errors import ComponentFailed
from pipeline.metadata.summary import RunSummary

MAX_SLICES_SHOWN = 8


def add_commands(sub) -> None:
  """Adds `validate`, `schema` and `run` to `sub`, the top-level subparsers."""
  validate = sub.add_parser(
    'validate', help='check a spec, its schema and data'
  )
  add_spec(validate)
  validate.set_defaults(func=cmd_validate)

  schema = sub.add_parser(
    'schema',
    help="infer a schema from the spec's data (ExampleGen, "
    'StatisticsGen, SchemaGen) and write it, ready to curate',
  )
  add_spec(schema)
  schema.add_argument(
    '--output',
    required=True,
    metavar='FILE',
    help='where to write it, e.g. schemas/NAME/schema.pbtxt',
  )
  add_verbose(schema)
  schema.set_defaults(func=cmd_schema)

  run = sub.add_parser('run', help='run the pipeline locally')
  add_spec(run)
  run.add_argument(
    '--summary-json',
    metavar='FILE',
    help='write the run summary here (default: under the '
    "pipeline root's summaries/)",
  )
  run.add_argument(
    '--no-wait',
    action='store_true',
    help='refuse (exit 2) instead of waiting when another run '
    'of the pipeline is under way',
  )
  add_verbose(run)
  run.set_defaults(func=cmd_run)


def _metrics_text(metrics: Dict[str, Any]) -> str:
  return ', '.join(
    f'{k}={v:.4f}' if isinstance(v, float) else f'{k}={v}'
    for k, v in sorted(metrics.items())
  )


def _pushed_line(summary: RunSummary) -> Optional[str]:
  """What the run pushed, or why nothing; None for a failed run that says
  no reason."""
  states = {c.id: c.state for c in summary.components}
  if summary.pushed:
    earlier = (
      ' (by an earlier run; this one was cached)'
      if states.get('Pusher') == 'cached'
      else ''
    )
    return (
      f'pushed: version {summary.pushed_version} -> '
      f'{summary.pushed_path}{earlier}'
    )
  if summary.not_pushed_reason:
    return f'pushed: nothing ({summary.not_pushed_reason})'
  if summary.status == 'succeeded':
    return 'pushed: nothing (the model was not blessed)'
  return None


def print_summary(summary: RunSummary, out=sys.stdout) -> None:
  p = lambda *a: print(*a, file=out)  # noqa: E731
  p('')
  p(f'run {summary.run_id}: {summary.status}')
  for c in summary.components:
    p(f'  {c.id:<26} {c.state:<9} {c.seconds:8.1f}s')
  if summary.search:
    p(f'search: {summary.search.line}')
  if summary.blessed is not None:
    p(
      f'blessed: {"yes" if summary.blessed else "no"} '
      f'({summary.blessing_reason})'
    )
  if summary.metrics:
    p('metrics (eval split): ' + _metrics_text(summary.metrics))
  slices = summary.slices
  for name in sorted(slices)[:MAX_SLICES_SHOWN]:
    entry = slices[name]
    undefined = (
      f'; undefined: {", ".join(entry.undefined)} ({entry.reason})'
      if entry.undefined
      else ''
    )
    p(f'  slice {name}: {_metrics_text(entry.metrics)}{undefined}')
  if len(slices) > MAX_SLICES_SHOWN:
    p(f'  ... {len(slices) - MAX_SLICES_SHOWN} more slices in the summary JSON')
  pushed = _pushed_line(summary)
  if pushed:
    p(pushed)
  p(f'metadata store: {summary.metadata}')
  # A full disk costs the files, not the run: said here, on the run's lines.
  p(
    f'summary: {summary.summary_json}'
    if summary.summary_json
    else f'summary: not written ({summary.summary_error})'
  )
  if summary.report:
    p(f'report: {summary.report}')
  elif summary.report_error:
    p(f'report: not written ({summary.report_error})')
  p(f'total time: {summary.total_seconds:.1f}s')


def cmd_validate(args) -> int:
  from pipeline.runners import preflight  # pylint: disable=g-import-not-at-top

  checked = preflight.run_preflight(load_spec(args))
  spec = checked.spec
  if spec.model.pretrained():
    location = (
      preflight.locate_base_model(spec)
      or 'imagenet weights, which Keras downloads on first use'
    )
    print(f'pretrained encoder: {location} (loads, and fits its column)')
  elif spec.training.mode == 'finetune':
    print(
      f'base model: {preflight.locate_base_model(spec)} (loads, and '
      'takes the transformed features)'
    )
  tuner = spec.tuner.algorithm if spec.tuner.enabled else 'off'
  if spec.tuner.enabled and spec.uses_module_file('tuner_fn'):
    tuner = "the module file's tuner_fn"
  print(
    f'{args.spec}: ok (pipeline {spec.name}, {len(spec.feature_keys)} '
    f'features, {checked.rows} rows, {spec.task.description}, '
    f'tuner {tuner}, schema {spec.schema_file or "inferred by SchemaGen"})'
  )
  print(
    'columns: '
    + '; '.join(
      f'{kind} {", ".join(names)}' for kind, names in spec.columns_by_kind()
    )
  )
  print(f'blessing: {spec.blessing_rule()}')
  for line in checked.warnings():
    print(f'warning: {line}')
  return 0


def cmd_run(args) -> int:
  started = time.monotonic()
  from pipeline.runners import preflight  # pylint: disable=g-import-not-at-top

  checked = preflight.run_preflight(load_spec(args))
  # TFX loads only once the input has passed the checks, so bad input is
  # refused at once.
  from pipeline.runners import local, progress  # pylint: disable=g-import-not-at-top

  reporter = progress.for_terminal()
  try:
    summary = local.run_checked(
      checked,
      progress=reporter,
      summary_json=args.summary_json,
      wait=not args.no_wait,
      started=started,
    )
  finally:
    reporter.close()
  print_summary(summary)
  if summary.status != 'succeeded':
    raise ComponentFailed(
      f'{summary.failed_component} failed: {summary.reason}'
    )
  if summary.summary_error:
    raise local.SummaryNotWritten(
      f'the run succeeded; {summary.summary_error}; make room there or '
      'name another file with --summary-json'
    )
  return 0


def cmd_schema(args) -> int:
  from pipeline.runners import preflight  # pylint: disable=g-import-not-at-top

  checked = preflight.run_preflight(
    load_spec(args).model_copy(update={'schema_file': None})
  )
  # Where the schema goes is checked before the pipeline runs, not after.
  problem = paths.file_problem(args.output)
  if problem:
    raise preflight.PreflightError(
      f'{args.output}: cannot write the schema here: {problem}'
    )
  for line in checked.warnings():
    print(f'warning: {line}')
  # TFX loads only once the input has passed the checks.
  from pipeline.runners import local  # pylint: disable=g-import-not-at-top

  result = local.infer_schema(
    checked, args.output, progress=lambda line: print(line, flush=True)
  )
  optional = ', '.join(result['optional']) or 'none'
  print(
    f'wrote {result["schema"]}: {result["features"]} features, optional '
    f'(may be missing): {optional}. Curate it, then set schema: '
    f'{result["schema"]} in the spec'
  )
  return 0
