"""`compare`: fine-tuning against training from scratch at several
labelled-set sizes, from a base model or a text or image column's
pretrained encoder."""

import os
from typing import List, Optional

from pipeline.cli.common import DEFAULT_SPEC, load_spec

DEFAULT_COMPARE_SPEC = os.path.join(
  os.path.dirname(DEFAULT_SPEC), 'digits_target.yaml'
)
# benchmarks/ beside the package: the repository's results folder.
DEFAULT_COMPARE_OUTPUT = os.path.join(
  os.path.dirname(os.path.dirname(os.path.dirname(DEFAULT_SPEC))),
  'benchmarks',
  'results',
  'finetune_comparison',
)


def add_commands(sub) -> None:
  """Adds `compare` to `sub`, the top-level subparsers."""
  compare = sub.add_parser(
    'compare',
    help='fine-tuning against training from scratch at several '
    "labelled-set sizes, from a base model or a text or image column's "
    'pretrained encoder; writes JSON, Markdown and a PNG plot',
  )
  _add_inputs(compare)
  _add_experiment(compare)
  compare.set_defaults(func=cmd_compare)


def _add_inputs(compare) -> None:
  """The target spec, its overrides and the base model."""
  compare.add_argument(
    'spec',
    nargs='?',
    default=DEFAULT_COMPARE_SPEC,
    help='the target task spec (default: digits_target)',
  )
  compare.add_argument(
    '--set',
    action='append',
    metavar='KEY=VALUE',
    help='override a spec key, as for run',
  )
  compare.add_argument(
    '--base',
    metavar='PATH',
    help="base model (default: the spec's training.base_model)",
  )


def _add_experiment(compare) -> None:
  """The labelled-set sizes, repeats, epochs, test set, seed and output."""
  compare.add_argument(
    '--sizes',
    help='labelled-set sizes (default: 10,25,50,100,200,'
    '400; with a pretrained encoder 50,200,1000)',
  )
  compare.add_argument(
    '--repeats',
    type=int,
    default=3,
    help='labelled sets drawn per size (default: 3)',
  )
  compare.add_argument(
    '--epochs',
    type=int,
    help='epochs per model (default: 40; with a pretrained '
    "encoder the spec's training.epochs)",
  )
  compare.add_argument(
    '--test-rows',
    type=int,
    default=1000,
    help='with a pretrained encoder: rows held out of the '
    'data as the test set (default: 1000)',
  )
  compare.add_argument(
    '--test-csv',
    metavar='PATH',
    help='with a pretrained encoder: the test set, a CSV '
    "with the spec's columns (image paths relative "
    "to it); then all of the spec's data may be drawn"
    ' for labelled sets',
  )
  compare.add_argument('--seed', type=int, default=0)
  compare.add_argument(
    '--output',
    help='path prefix for .json/.md/.png (default: '
    'benchmarks/results/finetune_comparison; with a '
    'pretrained encoder benchmarks/results/'
    'transfer_<spec name>)',
  )


def _progress(line: str) -> None:
  print(line, flush=True)


def _sizes(args) -> Optional[List[int]]:
  from pipeline.experiments import compare  # pylint: disable=g-import-not-at-top

  if not args.sizes:
    return None
  try:
    return [int(s) for s in args.sizes.split(',')]
  except ValueError:
    raise compare.CompareError(
      f'--sizes {args.sizes}: give comma-separated integers, e.g. 25,50,100'
    ) from None


def _compare_pretrained(args, spec, sizes, command):
  """A text or image column's pretrained encoder, fine-tuned against the
  same column trained from scratch; (report, output prefix)."""
  from pipeline.experiments import compare  # pylint: disable=g-import-not-at-top
  from pipeline.runners import preflight  # pylint: disable=g-import-not-at-top

  if args.base:
    raise compare.CompareError(
      f'--base: {args.spec} fine-tunes the pretrained encoder its '
      'model.encoders names; leave --base out'
    )
  checked = preflight.run_preflight(spec)
  preflight.locate_base_model(checked.spec)  # loads, and fits its column
  column, _, encoder = compare.pretrained_column(checked.spec)
  output = args.output or os.path.join(
    os.path.dirname(DEFAULT_COMPARE_OUTPUT), f'transfer_{spec.name}'
  )
  print(
    f'comparing training {column} from scratch and fine-tuning '
    f'{compare.encoder_name(encoder)}',
    flush=True,
  )
  report = compare.compare_media(
    checked.spec,
    checked.column_kinds,
    sizes or compare.MEDIA_SIZES,
    args.repeats,
    args.epochs or checked.spec.training.epochs,
    output,
    command,
    test_rows=args.test_rows,
    test_csv=args.test_csv,
    seed=args.seed,
    progress=_progress,
  )
  return report, output


def _compare_base(args, spec, sizes, command):
  """A base model fine-tuned against the same model trained from scratch;
  (report, output prefix)."""
  from pipeline.experiments import compare  # pylint: disable=g-import-not-at-top
  from pipeline.runners import preflight  # pylint: disable=g-import-not-at-top

  if not args.base and spec.training.mode != 'finetune':
    raise compare.CompareError(
      f'{args.spec}: no pretrained encoder (model.encoders) and no base '
      'model (training.mode is scratch and no --base was given): name '
      'the base model, or give a text or image column a pretrained '
      'encoder'
    )
  # Resolved against the data: the class count may come from the label.
  spec = preflight.run_preflight(spec).spec
  if args.base:
    base = args.base
    compare.check_base(spec, base)
  else:
    base = preflight.locate_base_model(spec)
  output = args.output or DEFAULT_COMPARE_OUTPUT
  print(f'comparing scratch and fine-tuning from {base}', flush=True)
  report = compare.compare(
    spec,
    base,
    sizes or [10, 25, 50, 100, 200, 400],
    args.repeats,
    args.epochs or 40,
    output,
    command=command,
    seed=args.seed,
    progress=_progress,
  )
  return report, output


def cmd_compare(args) -> int:
  spec = load_spec(args)
  sizes = _sizes(args)
  command = 'python -m pipeline ' + ' '.join(args.argv)
  run = _compare_pretrained if spec.model.pretrained() else _compare_base
  report, output = run(args, spec, sizes, command)
  print(report['conclusion']['text'])
  print(f'wrote {output}.json, .md and .png')
  return 0
