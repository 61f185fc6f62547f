"""`python -m pipeline` (installed as `tfx-pipeline`): validate a spec, run
the pipeline locally, compile it for Kubeflow Pipelines and submit it, serve
pushed models and send them rows, compare fine-tuning with training from
scratch, inspect lineage in ML Metadata (runs, trace, graph, diff), and see
a run: its HTML report, and a local dashboard over the store.

The CLI is the only room that knows every other room (README, "Layout"),
and it imports each one only inside the command that needs it: `validate`,
`lineage`, `report`, `ui`, `predict`, `submit`, `compile`'s refusals and
every `--help` load no TensorFlow, TFX or Beam.

Every error the user can act on is a `pipeline.errors.PipelineError`, caught
here once: one line on stderr and its exit code (2: bad input found before
anything ran; 1: a component failed, named with its reason; 130: Ctrl-C;
143: SIGTERM during a run).
"""

import argparse
import json
import logging
import os
import sys
import time
import warnings
from typing import Any, Dict, List, Optional

from pipeline import paths
from pipeline.errors import EXIT_INTERRUPTED, ComponentFailed, PipelineError
from pipeline.runners import signals

DEFAULT_SPEC = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'specs', 'breast_cancer.yaml')


def _load(args) -> Any:
  from pipeline.definition import spec as spec_lib  # pylint: disable=g-import-not-at-top
  overrides = dict(spec_lib.parse_override(s) for s in args.set or [])
  return spec_lib.load_spec(args.spec, overrides)


# Warnings TFX 1.16 prints on every healthy run; shown with --verbose.
_KNOWN_NOISE = ('ArtifactQuery.property_predicate is not supported',
                'tf_record_iterator (from tensorflow',
                'does not have payload_format custom property',
                "Couldn't find python-snappy",
                # Beam's multi-process DirectRunner workers, on every start.
                'No semi_persistent_directory found',
                'Discarding unparseable args')
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
    handler.addFilter(lambda record: not any(
        noise in record.getMessage() for noise in _KNOWN_NOISE))
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


MAX_SLICES_SHOWN = 8


def _metrics_text(metrics: Dict[str, Any]) -> str:
  return ', '.join(f'{k}={v:.4f}' if isinstance(v, float) else f'{k}={v}'
                   for k, v in sorted(metrics.items()))


def print_summary(summary: Dict[str, Any], out=sys.stdout) -> None:
  p = lambda *a: print(*a, file=out)  # noqa: E731
  p('')
  p(f'run {summary["run_id"]}: {summary["status"]}')
  for c in summary['components']:
    p(f'  {c["id"]:<26} {c["state"]:<9} {c["seconds"]:8.1f}s')
  if summary.get('search'):
    p(f'search: {summary["search"]["line"]}')
  if summary['blessed'] is not None:
    p(f'blessed: {"yes" if summary["blessed"] else "no"} '
      f'({summary["blessing_reason"]})')
  if summary['metrics']:
    p('metrics (eval split): ' + _metrics_text(summary['metrics']))
  slices = summary.get('slices') or {}
  for name in sorted(slices)[:MAX_SLICES_SHOWN]:
    entry = slices[name]
    undefined = (f'; undefined: {", ".join(entry["undefined"])} '
                 f'({entry["reason"]})' if entry['undefined'] else '')
    p(f'  slice {name}: {_metrics_text(entry["metrics"])}{undefined}')
  if len(slices) > MAX_SLICES_SHOWN:
    p(f'  ... {len(slices) - MAX_SLICES_SHOWN} more slices in the summary '
      'JSON')
  states = {c['id']: c['state'] for c in summary['components']}
  if summary['pushed']:
    earlier = ' (by an earlier run; this one was cached)' if states.get(
        'Pusher') == 'cached' else ''
    p(f'pushed: version {summary["pushed_version"]} -> '
      f'{summary["pushed_path"]}{earlier}')
  elif summary.get('not_pushed_reason'):
    p(f'pushed: nothing ({summary["not_pushed_reason"]})')
  elif summary['status'] == 'succeeded':
    p('pushed: nothing (the model was not blessed)')
  p(f'metadata store: {summary["metadata"]}')
  # A full disk costs the files, not the run: said here, on the run's lines.
  p(f'summary: {summary["summary_json"]}' if summary.get('summary_json')
    else f'summary: not written ({summary.get("summary_error")})')
  if summary.get('report'):
    p(f'report: {summary["report"]}')
  elif summary.get('report_error'):
    p(f'report: not written ({summary["report_error"]})')
  p(f'total time: {summary["total_seconds"]:.1f}s')


def cmd_validate(args) -> int:
  from pipeline.runners import preflight  # pylint: disable=g-import-not-at-top
  checked = preflight.run_preflight(_load(args))
  spec = checked.spec
  if spec.model.pretrained():
    location = (preflight.locate_base_model(spec) or
                'imagenet weights, which Keras downloads on first use')
    print(f'pretrained encoder: {location} (loads, and fits its column)')
  elif spec.training.mode == 'finetune':
    print(f'base model: {preflight.locate_base_model(spec)} (loads, and '
          'takes the transformed features)')
  tuner = spec.tuner.algorithm if spec.tuner.enabled else 'off'
  if spec.tuner.enabled and spec.uses_module_file('tuner_fn'):
    tuner = "the module file's tuner_fn"
  print(f'{args.spec}: ok (pipeline {spec.name}, {len(spec.feature_keys)} '
        f'features, {checked.rows} rows, {spec.task.description}, '
        f'tuner {tuner}, schema {spec.schema_file or "inferred by SchemaGen"})')
  print('columns: ' + '; '.join(
      f'{kind} {", ".join(names)}' for kind, names in spec.columns_by_kind()))
  print(f'blessing: {spec.blessing_rule()}')
  for line in checked.warnings():
    print(f'warning: {line}')
  return 0


def cmd_run(args) -> int:
  started = time.monotonic()
  from pipeline.runners import preflight  # pylint: disable=g-import-not-at-top
  checked = preflight.run_preflight(_load(args))
  # TFX loads only once the input has passed the checks, so bad input is
  # refused at once.
  from pipeline.runners import local, progress  # pylint: disable=g-import-not-at-top
  reporter = progress.for_terminal()
  try:
    summary = local.run_checked(checked, progress=reporter,
                                summary_json=args.summary_json,
                                wait=not args.no_wait, started=started)
  finally:
    reporter.close()
  print_summary(summary)
  if summary['status'] != 'succeeded':
    raise ComponentFailed(
        f'{summary["failed_component"]} failed: {summary["reason"]}')
  if summary['summary_error']:
    raise local.SummaryNotWritten(
        f'the run succeeded; {summary["summary_error"]}; make room there or '
        'name another file with --summary-json')
  return 0


def cmd_schema(args) -> int:
  from pipeline.runners import preflight  # pylint: disable=g-import-not-at-top
  checked = preflight.run_preflight(
      _load(args).model_copy(update={'schema_file': None}))
  # Where the schema goes is checked before the pipeline runs, not after.
  problem = paths.file_problem(args.output)
  if problem:
    raise preflight.PreflightError(
        f'{args.output}: cannot write the schema here: {problem}')
  for line in checked.warnings():
    print(f'warning: {line}')
  # TFX loads only once the input has passed the checks.
  from pipeline.runners import local  # pylint: disable=g-import-not-at-top
  result = local.infer_schema(checked, args.output,
                              progress=lambda line: print(line, flush=True))
  optional = ', '.join(result['optional']) or 'none'
  print(f'wrote {result["schema"]}: {result["features"]} features, optional '
        f'(may be missing): {optional}. Curate it, then set schema: '
        f'{result["schema"]} in the spec')
  return 0


DEFAULT_COMPARE_SPEC = os.path.join(os.path.dirname(DEFAULT_SPEC),
                                    'digits_target.yaml')
DEFAULT_COMPARE_OUTPUT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    'benchmarks', 'results', 'finetune_comparison')


def cmd_compare(args) -> int:
  from pipeline.experiments import compare  # pylint: disable=g-import-not-at-top
  from pipeline.runners import preflight  # pylint: disable=g-import-not-at-top
  spec = _load(args)
  sizes = None
  if args.sizes:
    try:
      sizes = [int(s) for s in args.sizes.split(',')]
    except ValueError:
      raise compare.CompareError(f'--sizes {args.sizes}: give comma-separated '
                                 'integers, e.g. 25,50,100') from None
  command = 'python -m pipeline ' + ' '.join(args.argv)
  output = args.output or DEFAULT_COMPARE_OUTPUT

  def progress(line: str) -> None:
    print(line, flush=True)

  if spec.model.pretrained():
    if args.base:
      raise compare.CompareError(
          f'--base: {args.spec} fine-tunes the pretrained encoder its '
          'model.encoders names; leave --base out')
    checked = preflight.run_preflight(spec)
    preflight.locate_base_model(checked.spec)  # loads, and fits its column
    column, _, encoder = compare.pretrained_column(checked.spec)
    output = args.output or os.path.join(
        os.path.dirname(DEFAULT_COMPARE_OUTPUT), f'transfer_{spec.name}')
    print(f'comparing training {column} from scratch and fine-tuning '
          f'{compare.encoder_name(encoder)}', flush=True)
    report = compare.compare_media(
        checked.spec, checked.column_kinds, sizes or compare.MEDIA_SIZES,
        args.repeats, args.epochs or checked.spec.training.epochs,
        output, command, test_rows=args.test_rows,
        test_csv=args.test_csv, seed=args.seed, progress=progress)
  else:
    if args.base:
      base = args.base
      preflight.check_base_model(spec, base)
    elif spec.training.mode == 'finetune':
      base = preflight.locate_base_model(spec)
    else:
      raise compare.CompareError(
          f'{args.spec}: no pretrained encoder (model.encoders) and no base '
          'model (training.mode is scratch and no --base was given): name '
          'the base model, or give a text or image column a pretrained '
          'encoder')
    print(f'comparing scratch and fine-tuning from {base}', flush=True)
    report = compare.compare(
        spec, base, sizes or [10, 25, 50, 100, 200, 400], args.repeats,
        args.epochs or 40, output, command=command, seed=args.seed,
        progress=progress)
  print(report['conclusion']['text'])
  print(f'wrote {output}.json, .md and .png')
  return 0


def cmd_compile(args) -> int:
  from kubeflow import runner  # pylint: disable=g-import-not-at-top
  spec = _load(args)
  settings = runner.cluster_settings(
      spec, image=args.image, target=args.target,
      pipeline_root=args.pipeline_root, data=args.data,
      push_destination=args.push_destination)
  compiled = runner.compile_pipeline(spec, settings, args.output)
  tasks = compiled['root']['dag']['tasks']
  print(f'wrote {args.output}: {settings.target} pipeline {spec.name}, '
        f'{len(tasks)} tasks, image {settings.image}')
  for node_id, config in sorted(settings.platform_configs.items()):
    if node_id not in tasks:
      continue
    gpu = (f', {config.accelerator.count} x {config.accelerator.type}'
           if config.accelerator.type else '')
    print(f'  {node_id}: cpu {config.cpu_limit or "-"}, memory '
          f'{config.memory_limit or "-"} GB{gpu}')
  return 0


def cmd_submit(args) -> int:
  from kubeflow import submit  # pylint: disable=g-import-not-at-top
  result = submit.submit(args.file, args.host, args.experiment, args.run_name)
  print(f'submitted run {result["run_id"]}: {result["url"]}')
  return 0


def _until_stopped(args, error, serve) -> int:
  """Runs `serve` (a server's loop) until Ctrl-C; an address it cannot
  listen on is `error`, one line."""
  from pipeline.web import AddressError, check_port  # pylint: disable=g-import-not-at-top
  try:
    check_port(args.port)
    serve()
  except AddressError as e:
    raise error(str(e)) from None
  except OSError as e:
    raise error(f'--host {args.host} --port {args.port}: cannot listen: '
                f'{e.strerror or e}') from None
  except KeyboardInterrupt:
    print('stopped', flush=True)
  return 0


def cmd_serve(args) -> int:
  from pipeline.serving import server as serve  # pylint: disable=g-import-not-at-top
  base = args.model_base or _load(args).push.destination
  if not os.path.isdir(base):
    raise serve.ServeSetupError(
        f'--model-base {base}: no such folder; run the pipeline first (it '
        'pushes there) or name the folder holding <model>/<version>/')
  return _until_stopped(args, serve.ServeSetupError, lambda: serve.serve(
      base, host=args.host, port=args.port, poll_seconds=args.poll_seconds,
      max_body=args.max_request_mb * 1024 * 1024,
      announce=lambda line: print(line, flush=True),
      allow_hosts=tuple(args.allow_host or ())))


def cmd_predict(args) -> int:
  from pipeline.serving import client as predict_client  # pylint: disable=g-import-not-at-top
  if not 0 < args.timeout < float('inf'):
    raise predict_client.PredictError(
        f'--timeout {args.timeout:g}: give a number of seconds above 0')
  signature, results = predict_client.predict_file(
      args.url, args.file, signature=args.signature,
      row_format=args.format == 'rows', batch_size=args.batch_size,
      null_values=('', *(args.null or ())), timeout=args.timeout)
  for i, prediction in enumerate(results):
    print(json.dumps({'row': i + 1, 'prediction': prediction}))
  print(f'{len(results)} rows scored through {signature}', file=sys.stderr)
  return 0


def _store(args):
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top
  path = args.store
  if not path:
    path = _load(args).runner.metadata
  return lineage.open_store(path)


def cmd_report(args) -> int:
  from pipeline.report import render  # pylint: disable=g-import-not-at-top
  run = render.write(_store(args), args.run, args.output)
  print(f'wrote {args.output} (run {run["run_id"]} of {run["pipeline"]}: '
        f'{run["status"]})')
  return 0


def cmd_predictions(args) -> int:
  from pipeline.experiments import predictions  # pylint: disable=g-import-not-at-top
  rows = predictions.write_csv(_store(args), args.run, args.output)
  print(f'wrote {args.output} ({rows} rows of run {args.run}\'s eval split '
        'with its model\'s outputs)')
  return 0


def cmd_ui(args) -> int:
  from pipeline.report import dashboard  # pylint: disable=g-import-not-at-top
  location = args.store or _load(args).runner.metadata
  _store(args)  # one line, now, when the store cannot be opened
  return _until_stopped(args, dashboard.DashboardError, lambda: (
      dashboard.serve(location, host=args.host, port=args.port,
                      announce=lambda line: print(line, flush=True),
                      allow_hosts=tuple(args.allow_host or ()))))


def cmd_lineage_runs(args) -> int:
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top
  runs = lineage.list_runs(_store(args), args.pipeline)
  if args.json:
    print(json.dumps(runs, indent=2))
    return 0
  if not runs:
    print('no runs recorded' + (f' for {args.pipeline}' if args.pipeline
                                else ''))
  for run in runs:
    counts: Dict[str, int] = {}
    for state in run['components'].values():
      counts[state] = counts.get(state, 0) + 1
    blessed = {True: 'yes', False: 'no'}.get(
        run['blessed'], 'unknown' if 'Evaluator' in run['components'] else '-')
    print(f'{run["run_id"]}  {run["pipeline"]}  started {run["started"]}  '
          f'{run["seconds"]:.1f}s  {run["status"]}  '
          + ', '.join(f'{n} {s}' for s, n in sorted(counts.items()))
          + f'  blessed: {blessed}  pushed: {run["pushed_version"] or "-"}')
    engines = sorted(set(run['engines'].values()))
    if engines:
      print('    engine: ' + '; '.join(
          f'{engine} ({", ".join(n for n, e in run["engines"].items() if e == engine)})'
          for engine in engines))
    failed = [c for c, s in run['components'].items() if s == 'failed']
    if run.get('failure'):
      print(f'    {run["failure"]}')
    elif failed:
      print(f'    failed: {", ".join(failed)}')
  return 0


def cmd_engine(args) -> int:
  """`engine list`, and `engine fetch|up|down|status ENGINE` for the local
  clusters (pipeline/engines)."""
  from pipeline.engines import registry as engines  # pylint: disable=g-import-not-at-top
  from pipeline.errors import EngineError  # pylint: disable=g-import-not-at-top
  if args.engine_command == 'list':
    for name in engines.names():
      engine = engines.get(name)
      local = ' (local cluster: engine up ' + name + ')' if engine.cluster else ''
      print(f'{name:<9} {engine.description}{local}')
    return 0
  if not args.engine:
    raise EngineError(f'engine {args.engine_command}: name an engine: '
                      + ', '.join(n for n in engines.names()
                                  if engines.get(n).cluster))
  try:
    engine = engines.get(args.engine)
  except ValueError as e:
    raise EngineError(str(e)) from None
  cluster = engine.cluster
  if cluster is None:
    raise EngineError(f'{args.engine}: no local cluster to {args.engine_command}'
                      '; it runs elsewhere (docs/scale.md)')
  try:
    if args.engine_command == 'fetch':
      cluster.fetch(print)
      print(f'{args.engine}: ready to start (engine up {args.engine})')
    elif args.engine_command == 'up':
      missing = cluster.missing()
      if missing:
        raise EngineError(f'{args.engine}: {missing}')
      options = cluster.up(print)
      print(f'{args.engine}: up; in a spec: runner.engine: {args.engine}, '
            f'runner.engine_options: {json.dumps(options)}')
    elif args.engine_command == 'down':
      stopped = cluster.down(print)
      print(f'{args.engine}: stopped {", ".join(stopped)}' if stopped
            else f'{args.engine}: nothing was running')
    else:
      running = cluster.status()
      if args.json:
        print(json.dumps(running, indent=2))
      elif not running:
        print(f'{args.engine}: down')
      for name, where in sorted(running.items()):
        print(f'{name:<20} {where}')
  except (OSError, RuntimeError) as e:
    raise EngineError(f'{args.engine} {args.engine_command}: '
                      f'{" ".join(str(e).split())}') from None
  return 0


def cmd_lineage_trace(args) -> int:
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top
  tree = lineage.trace(_store(args), args.target)
  if args.json:
    print(json.dumps(tree.to_json(), indent=2, default=str))
  else:
    print('\n'.join(lineage.render(tree)))
  return 0


def cmd_lineage_graph(args) -> int:
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top
  tree = lineage.trace(_store(args), args.target)
  print(f'wrote {lineage.write_graph(tree, args.output)}')
  return 0


def cmd_lineage_diff(args) -> int:
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top
  result = lineage.diff(_store(args), args.run_a, args.run_b)
  if args.json:
    print(json.dumps(result, indent=2, default=str))
  else:
    print('\n'.join(lineage.render_diff(result)))
  return 0


def program_name(argv0: Optional[str] = None) -> str:
  """How the user called us: the installed `tfx-pipeline` script, or
  `python -m pipeline`."""
  name = os.path.basename(argv0 if argv0 is not None else sys.argv[0])
  return name if name == 'tfx-pipeline' else 'python -m pipeline'


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog=prog or program_name(),
      description='Declarative TFX pipelines: validate and run a spec, '
      'compile it for Kubeflow, serve pushed models, inspect lineage.')
  sub = parser.add_subparsers(dest='command', required=True)

  def add_spec(p):
    p.add_argument('spec', nargs='?', default=DEFAULT_SPEC,
                   help='pipeline spec YAML (default: the breast-cancer spec)')
    p.add_argument('--set', action='append', metavar='KEY=VALUE',
                   help='override a spec key, e.g. --set tuner.max_trials=2 '
                        '(repeatable; VALUE is YAML)')

  def add_address(p, port: int, what: str):
    p.add_argument('--host', default='127.0.0.1',
                   help='address to bind (default 127.0.0.1: this machine '
                        'only)')
    p.add_argument('--port', type=int, default=port,
                   help=f'{what} {port}; 0 picks a free one')
    p.add_argument('--allow-host', action='append', metavar='NAME',
                   help='also answer requests whose Host header is NAME (a '
                        "proxy's or this machine's DNS name; repeatable; * "
                        'answers any). Without it only IP addresses, '
                        'localhost, the --host value and, with --host '
                        "0.0.0.0, this machine's name are answered: a page "
                        'elsewhere cannot read the server by pointing its '
                        'own name at it (DNS rebinding)')

  validate = sub.add_parser('validate', help='check a spec, its schema and data')
  add_spec(validate)
  validate.set_defaults(func=cmd_validate)

  schema = sub.add_parser(
      'schema', help="infer a schema from the spec's data (ExampleGen, "
      'StatisticsGen, SchemaGen) and write it, ready to curate')
  add_spec(schema)
  schema.add_argument('--output', required=True, metavar='FILE',
                      help='where to write it, e.g. schemas/NAME/schema.pbtxt')
  schema.add_argument('--verbose', action='store_true',
                      help='show TFX, Beam and TensorFlow logs')
  schema.set_defaults(func=cmd_schema)

  run = sub.add_parser('run', help='run the pipeline locally')
  add_spec(run)
  run.add_argument('--summary-json', metavar='FILE',
                   help='write the run summary here (default: under the '
                        "pipeline root's summaries/)")
  run.add_argument('--no-wait', action='store_true',
                   help='refuse (exit 2) instead of waiting when another run '
                        'of the pipeline is under way')
  run.add_argument('--verbose', action='store_true',
                   help='show TFX, Beam and TensorFlow logs')
  run.set_defaults(func=cmd_run)

  compare = sub.add_parser(
      'compare', help='fine-tuning against training from scratch at several '
      'labelled-set sizes, from a base model or a text or image column\'s '
      'pretrained encoder; writes JSON, Markdown and a PNG plot')
  compare.add_argument('spec', nargs='?', default=DEFAULT_COMPARE_SPEC,
                       help='the target task spec (default: digits_target)')
  compare.add_argument('--set', action='append', metavar='KEY=VALUE',
                       help='override a spec key, as for run')
  compare.add_argument('--base', metavar='PATH',
                       help="base model (default: the spec's "
                            'training.base_model)')
  compare.add_argument('--sizes',
                       help='labelled-set sizes (default: 10,25,50,100,200,'
                            '400; with a pretrained encoder 50,200,1000)')
  compare.add_argument('--repeats', type=int, default=3,
                       help='labelled sets drawn per size (default: 3)')
  compare.add_argument('--epochs', type=int,
                       help='epochs per model (default: 40; with a pretrained '
                            "encoder the spec's training.epochs)")
  compare.add_argument('--test-rows', type=int, default=1000,
                       help='with a pretrained encoder: rows held out of the '
                            'data as the test set (default: 1000)')
  compare.add_argument('--test-csv', metavar='PATH',
                       help='with a pretrained encoder: the test set, a CSV '
                            "with the spec's columns (image paths relative "
                            "to it); then all of the spec's data may be drawn"
                            ' for labelled sets')
  compare.add_argument('--seed', type=int, default=0)
  compare.add_argument('--output',
                       help='path prefix for .json/.md/.png (default: '
                            'benchmarks/results/finetune_comparison; with a '
                            'pretrained encoder benchmarks/results/'
                            'transfer_<spec name>)')
  compare.set_defaults(func=cmd_compare)

  compile_ = sub.add_parser(
      'compile', help='compile the spec for Kubeflow Pipelines (KFP v2)')
  add_spec(compile_)
  compile_.add_argument('--image', help='the pipeline image (default: '
                        'kubeflow.image); build it from kubeflow/Dockerfile')
  compile_.add_argument('--output', required=True, metavar='FILE',
                        help='FILE.yaml (a PipelineSpec; .json: a Vertex '
                             'PipelineJob)')
  compile_.add_argument('--target', choices=['kfp', 'vertex'],
                        help='open-source KFP or Vertex AI Pipelines '
                             '(default: kubeflow.target, kfp)')
  compile_.add_argument('--pipeline-root', metavar='URI',
                        help='default: kubeflow.pipeline_root')
  compile_.add_argument('--data', metavar='URI',
                        help='the CSV data (default: kubeflow.data, else '
                             'data.csv when it is a URI)')
  compile_.add_argument('--push-destination', metavar='URI',
                        help='default: kubeflow.push_destination, else '
                             'push.destination when it is a URI')
  compile_.set_defaults(func=cmd_compile)

  submit = sub.add_parser('submit', help='start a run of a compiled pipeline '
                          'on a Kubeflow Pipelines API server')
  submit.add_argument('file', help='the compiled pipeline (YAML)')
  submit.add_argument('--host', required=True, metavar='URL',
                      help='the KFP API, e.g. http://localhost:8080')
  submit.add_argument('--experiment', default='Default')
  submit.add_argument('--run-name', help='default: the pipeline name')
  submit.add_argument('--verbose', action='store_true',
                      help="show the kfp client's connection retries")
  submit.set_defaults(func=cmd_submit)

  serve = sub.add_parser(
      'serve', help="serve pushed models with TF Serving's REST API "
      '(development; reloads newly pushed versions)')
  add_spec(serve)
  serve.add_argument('--model-base', metavar='DIR',
                     help="the folder holding <model>/<version>/ (default: "
                          "the spec's push.destination)")
  add_address(serve, 8501, "TF Serving's REST port")
  serve.add_argument('--poll-seconds', type=float, default=1.0,
                     help='how often to look for new versions (default 1)')
  serve.add_argument('--max-request-mb', type=int, default=16,
                     help='larger request bodies get 413 (default 16)')
  serve.set_defaults(func=cmd_serve)

  predict = sub.add_parser(
      'predict', help='send CSV or JSON rows to a TF Serving REST endpoint and '
      'print one JSON prediction per row')
  predict.add_argument('file', help='rows: CSV with a header, or JSON')
  predict.add_argument('--url', required=True,
                       help='the model URL, e.g. '
                            'http://127.0.0.1:8501/v1/models/breast_cancer')
  predict.add_argument('--signature', default='auto',
                       help='serving_raw (plain values), serving_default '
                            '(tf.Examples), or auto: serving_raw when the '
                            'model has it')
  predict.add_argument('--format', choices=['rows', 'columns'], default='rows',
                       help='TF Serving request format: instances (rows) or '
                            'inputs (columns)')
  predict.add_argument('--batch-size', type=int, default=64,
                       help='rows per request (default 64)')
  predict.add_argument('--timeout', type=float, default=60.0,
                       metavar='SECONDS',
                       help='seconds each request may take in all, from '
                            'connecting to the last byte of the answer '
                            '(default 60)')
  predict.add_argument('--null', action='append', metavar='TOKEN',
                       help='a cell text that means "missing", as the spec\'s '
                            'data.null_values (repeatable; the empty cell and '
                            'JSON null always do). A missing value is sent as '
                            'NaN or "" to serving_raw, and left out of a '
                            'tf.Example')
  predict.set_defaults(func=cmd_predict)

  def add_store_of(p):
    p.add_argument('--store', metavar='STORE',
                   help='ML Metadata store: a SQLite path, mysql://... or '
                        "grpc://HOST:PORT (default: the spec's "
                        'runner.metadata)')
    p.add_argument('--spec', default=DEFAULT_SPEC,
                   help='spec whose store to read (default: breast cancer)')
    p.add_argument('--set', action='append', metavar='KEY=VALUE',
                   help='override a spec key, as for run')

  report = sub.add_parser(
      'report', help="one run's report as a self-contained HTML file (data, "
      'tuning, training, evaluation, lineage; opens offline)')
  report.add_argument('run', nargs='?',
                      help='the run id (default: the newest run in the store)')
  report.add_argument('--output', required=True, metavar='FILE.html')
  add_store_of(report)
  report.set_defaults(func=cmd_report)

  predictions = sub.add_parser(
      'predictions', help="a run's eval split as CSV, each row with its "
      "model's outputs (score a baseline of your own on the same rows)")
  predictions.add_argument('run', help='the run id (see `lineage runs`)')
  predictions.add_argument('--output', required=True, metavar='FILE.csv')
  add_store_of(predictions)
  predictions.set_defaults(func=cmd_predictions)

  ui = sub.add_parser(
      'ui', help='a local web dashboard over the metadata store (runs, '
      'reports, diffs, lineage, pushed versions; read-only)')
  add_store_of(ui)
  add_address(ui, 8080, 'default')
  ui.set_defaults(func=cmd_ui)

  engine = sub.add_parser(
      'engine', help='the engines the Beam components can run on, and a '
      'local Flink or Spark cluster: list, fetch, up, down, status')
  engine.add_argument('engine_command',
                      choices=['list', 'fetch', 'up', 'down', 'status'])
  engine.add_argument('engine', nargs='?', help='flink or spark')
  engine.add_argument('--json', action='store_true',
                      help='status as JSON')
  engine.set_defaults(func=cmd_engine)

  lineage = sub.add_parser(
      'lineage', help='inspect ML Metadata: runs, and where a model came from')
  lineage_sub = lineage.add_subparsers(dest='lineage_command', required=True)

  def add_store(p):
    add_store_of(p)
    p.add_argument('--json', action='store_true', help='machine-readable')

  runs = lineage_sub.add_parser('runs', help='each run: components, blessing, '
                                'pushed version')
  runs.add_argument('pipeline', nargs='?', help='only this pipeline')
  add_store(runs)
  runs.set_defaults(func=cmd_lineage_runs)
  trace = lineage_sub.add_parser(
      'trace', help='walk back from a pushed model dir, artifact:<id> or a '
      'run id to the input files')
  trace.add_argument('target')
  add_store(trace)
  trace.set_defaults(func=cmd_lineage_trace)
  graph = lineage_sub.add_parser(
      'graph', help='the lineage of TARGET (as for trace) as a picture: '
      '.dot, or .svg/.png through Graphviz')
  graph.add_argument('target')
  graph.add_argument('--output', required=True, metavar='FILE',
                     help='FILE.dot, FILE.svg or FILE.png')
  add_store(graph)
  graph.set_defaults(func=cmd_lineage_graph)
  diff = lineage_sub.add_parser(
      'diff', help='what changed between two runs, and what was cached')
  diff.add_argument('run_a')
  diff.add_argument('run_b')
  add_store(diff)
  diff.set_defaults(func=cmd_lineage_diff)
  return parser


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
  warnings.filterwarnings('ignore', category=RuntimeWarning,
                          module='tensorflow_model_analysis')
  # kfp's client says on every use which KFP versions it speaks (v2 API).
  warnings.filterwarnings('ignore', category=FutureWarning,
                          message='This client only works with Kubeflow')


# The commands that run a pipeline, and record in its store how it ended.
PIPELINE_COMMANDS = ('run', 'schema')


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
