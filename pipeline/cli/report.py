"""`report`, `predictions` and `ui`: a run seen from its store, as an HTML
report, as its eval split with the model's outputs, or in a local
dashboard."""

from pipeline.cli.common import (
  add_address,
  add_store_of,
  load_spec,
  open_store,
  until_stopped,
)


def add_commands(sub) -> None:
  """Adds `report`, `predictions` and `ui` to `sub`, the top-level subparsers."""
  report = sub.add_parser(
    'report',
    help="one run's report as a self-contained HTML file (data, "
    'tuning, training, evaluation, lineage; opens offline)',
  )
  report.add_argument(
    'run', nargs='?', help='the run id (default: the newest run in the store)'
  )
  report.add_argument('--output', required=True, metavar='FILE.html')
  add_store_of(report)
  report.set_defaults(func=cmd_report)

  predictions = sub.add_parser(
    'predictions',
    help="a run's eval split as CSV, each row with its "
    "model's outputs (score a baseline of your own on the same rows)",
  )
  predictions.add_argument('run', help='the run id (see `lineage runs`)')
  predictions.add_argument('--output', required=True, metavar='FILE.csv')
  add_store_of(predictions)
  predictions.set_defaults(func=cmd_predictions)

  ui = sub.add_parser(
    'ui',
    help='a local web dashboard over the metadata store (runs, '
    'reports, diffs, lineage, pushed versions; read-only)',
  )
  add_store_of(ui)
  add_address(ui, 8080, 'default')
  ui.set_defaults(func=cmd_ui)


def cmd_report(args) -> int:
  from pipeline.report import render  # pylint: disable=g-import-not-at-top

  run = render.write(open_store(args), args.run, args.output)
  print(
    f'wrote {args.output} (run {run["run_id"]} of {run["pipeline"]}: '
    f'{run["status"]})'
  )
  return 0


def cmd_predictions(args) -> int:
  from pipeline.experiments import predictions  # pylint: disable=g-import-not-at-top

  rows = predictions.write_csv(open_store(args), args.run, args.output)
  print(
    f"wrote {args.output} ({rows} rows of run {args.run}'s eval split "
    "with its model's outputs)"
  )
  return 0


def cmd_ui(args) -> int:
  from pipeline.report import dashboard  # pylint: disable=g-import-not-at-top

  location = args.store or load_spec(args).runner.metadata
  open_store(args)  # one line, now, when the store cannot be opened
  return until_stopped(
    args,
    dashboard.DashboardError,
    lambda: dashboard.serve(
      location,
      host=args.host,
      port=args.port,
      announce=lambda line: print(line, flush=True),
      allow_hosts=tuple(args.allow_host or ()),
    ),
  )
