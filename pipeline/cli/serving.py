"""`serve` and `predict`: pushed models served with TF Serving's REST API,
and rows sent to such an endpoint."""

import json
import os
import sys

from pipeline.cli.common import add_address, add_spec, load_spec, until_stopped


def add_commands(sub) -> None:
  """Adds `serve` and `predict` to `sub`, the top-level subparsers."""
  _add_serve(sub)
  _add_predict(sub)


def _add_serve(sub) -> None:
  serve = sub.add_parser(
    'serve',
    help="serve pushed models with TF Serving's REST API "
    '(development; reloads newly pushed versions)',
  )
  add_spec(serve)
  serve.add_argument(
    '--model-base',
    metavar='DIR',
    help='the folder holding <model>/<version>/ (default: '
    "the spec's push.destination)",
  )
  add_address(serve, 8501, "TF Serving's REST port")
  serve.add_argument(
    '--poll-seconds',
    type=float,
    default=1.0,
    help='how often to look for new versions (default 1)',
  )
  serve.add_argument(
    '--max-request-mb',
    type=int,
    default=16,
    help='larger request bodies get 413 (default 16)',
  )
  serve.set_defaults(func=cmd_serve)


def _add_predict(sub) -> None:
  predict = sub.add_parser(
    'predict',
    help='send CSV or JSON rows to a TF Serving REST endpoint and '
    'print one JSON prediction per row',
  )
  predict.add_argument('file', help='rows: CSV with a header, or JSON')
  predict.add_argument(
    '--url',
    required=True,
    help='the model URL, e.g. http://127.0.0.1:8501/v1/models/breast_cancer',
  )
  predict.add_argument(
    '--signature',
    default='auto',
    help='serving_raw (plain values), serving_default '
    '(tf.Examples), or auto: serving_raw when the '
    'model has it',
  )
  predict.add_argument(
    '--format',
    choices=['rows', 'columns'],
    default='rows',
    help='TF Serving request format: instances (rows) or inputs (columns)',
  )
  predict.add_argument(
    '--batch-size', type=int, default=64, help='rows per request (default 64)'
  )
  predict.add_argument(
    '--timeout',
    type=float,
    default=60.0,
    metavar='SECONDS',
    help='seconds each request may take in all, from '
    'connecting to the last byte of the answer '
    '(default 60)',
  )
  predict.add_argument(
    '--null',
    action='append',
    metavar='TOKEN',
    help='a cell text that means "missing", as the spec\'s '
    'data.null_values (repeatable; the empty cell and '
    'JSON null always do). A missing value is sent as '
    'NaN or "" to serving_raw, and left out of a '
    'tf.Example',
  )
  predict.set_defaults(func=cmd_predict)


def cmd_serve(args) -> int:
  from pipeline.serving import server as serve  # pylint: disable=g-import-not-at-top

  base = args.model_base or load_spec(args).push.destination
  if not os.path.isdir(base):
    raise serve.ServeSetupError(
      f'--model-base {base}: no such folder; run the pipeline first (it '
      'pushes there) or name the folder holding <model>/<version>/'
    )
  return until_stopped(
    args,
    serve.ServeSetupError,
    lambda: serve.serve(
      base,
      host=args.host,
      port=args.port,
      poll_seconds=args.poll_seconds,
      max_body=args.max_request_mb * 1024 * 1024,
      announce=lambda line: print(line, flush=True),
      allow_hosts=tuple(args.allow_host or ()),
    ),
  )


def cmd_predict(args) -> int:
  from pipeline.serving import client as predict_client  # pylint: disable=g-import-not-at-top

  if not 0 < args.timeout < float('inf'):
    raise predict_client.PredictError(
      f'--timeout {args.timeout:g}: give a number of seconds above 0'
    )
  signature, results = predict_client.predict_file(
    args.url,
    args.file,
    signature=args.signature,
    row_format=args.format == 'rows',
    batch_size=args.batch_size,
    null_values=('', *(args.null or ())),
    timeout=args.timeout,
  )
  for i, prediction in enumerate(results):
    print(json.dumps({'row': i + 1, 'prediction': prediction}))
  print(f'{len(results)} rows scored through {signature}', file=sys.stderr)
  return 0
