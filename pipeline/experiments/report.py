"""A comparison's report: <output>.json (every run, the means and spreads,
the settings), <output>.md (the conclusion the numbers support, first, then
how it was measured and the tables) and <output>.png (accuracy against
labelled examples and against training time), each written whole or not
at all.
"""

import json
import os
from typing import IO, Any, Callable, List, Mapping

from pipeline.experiments.common import CompareError, is_scratch
from pipeline.paths import atomic_file, write_text


def _cell(row: Mapping[str, Any]) -> str:
  text = f'{row["accuracy_mean"]:.3f} ± {row["accuracy_std"]:.3f}'
  if row['repeats'] > 1:
    text += f' ({row["accuracy_min"]:.3f}-{row["accuracy_max"]:.3f})'
  return text


def _table(
  heading: List[str],
  settings: Mapping[str, Any],
  cell: Callable[[Mapping[str, Any]], str],
  by_key: Mapping[Any, Mapping[str, Any]],
) -> List[str]:
  """A table of one cell per labelled-set size (rows) and method (columns)."""
  methods = settings['methods']
  lines = [
    *heading,
    '| labelled | ' + ' | '.join(methods) + ' |',
    '|---:|' + '---:|' * len(methods),
  ]
  for size in settings['sizes']:
    cells = ' | '.join(cell(by_key[(m, size)]) for m in methods)
    lines.append(f'| {size} | {cells} |')
  return lines


def _tables(report: Mapping[str, Any]) -> List[str]:
  settings = report['settings']
  by_key = {(r['method'], r['labelled']): r for r in report['summary']}
  accuracy = [
    '## Test accuracy',
    '',
    'Mean ± population std, (min-max) over the repeats.',
    '',
  ]
  seconds = ['', '## Training seconds (mean)', '']
  return _table(accuracy, settings, _cell, by_key) + _table(
    seconds, settings, lambda row: f'{row["seconds_mean"]:.1f}', by_key
  )


def _numeric_setup(settings: Mapping[str, Any]) -> List[str]:
  return [
    '# Fine-tuning against training from scratch',
    '',
    f'Target data: `{settings["data"]}`; base model: '
    f'`{settings["base_model"]}`. Test set: {settings["test_examples"]} '
    f'held-out rows, the same for every run. Each cell: mean ± spread '
    f'(population std) of test accuracy over {settings["repeats"]} '
    f'repeat(s), {settings["epochs"]} epochs each, default hyperparameters '
    '(below).',
  ]


def _media_setup(settings: Mapping[str, Any]) -> List[str]:
  test = settings['test']
  return [
    f'# Transfer learning: fine-tuned {settings["encoder"]} against '
    f'training from scratch',
    '',
    f'The {settings["kind"]} column `{settings["column"]}` of '
    f'`{settings["data"]}` ({settings["pool_rows"]} rows to draw labelled '
    f'sets from), label `{settings["label"]}`. Test set: {test["rows"]} '
    f'rows, {test["source"]}, the same for every run; the most frequent '
    f'class is {test["majority_share"]:.3f} of it. Each labelled set is '
    'drawn class by class in turn from a seeded shuffle (one per repeat; '
    'a larger set holds the smaller ones) and goes through the real '
    "Transform: the project's preprocessing_fn, analysed by tf.Transform "
    'on the labelled rows only and applied to the test rows. Methods: '
    "`scratch_<encoder>` trains the project's learned encoder of that "
    'name and the dnn from scratch (modules/model.py); the others '
    f'fine-tune the pretrained encoder (`{settings["encoder_location"]}`)'
    " by that strategy (modules/finetune.py). Every model: the spec's "
    f'default hyperparameters (below), {settings["epochs"]} epochs at '
    f'batch {settings["batch_size"]}, no early stopping and no '
    'validation split (every labelled row trains), seeded per repeat. '
    f'Input: {settings["input"]}.',
  ]


def markdown(report: Mapping[str, Any]) -> str:
  """The report: a title, the conclusion (the first paragraph), how it was
  measured, the tables and the hyperparameters."""
  settings = report['settings']
  setup = (
    _media_setup(settings) if 'column' in settings else _numeric_setup(settings)
  )
  caveat = report['conclusion'].get('caveat')
  lines = [
    setup[0],
    '',
    '**' + report['conclusion']['text'] + '**',
    '',
    *([caveat, ''] if caveat else []),
    f'Written by `{settings["command"]}` on {settings["written"]} '
    f'({settings["machine"]}).',
    '',
    *setup[2:],
    '',
    *_tables(report),
  ]
  lines += ['', '## Hyperparameters', '']
  hparams = settings['hyperparameters']
  if 'column' in settings:  # by method: one column each
    methods = settings['methods']
    lines += [
      '| | ' + ' | '.join(methods) + ' |',
      '|---|' + '---:|' * len(methods),
    ]
    for name in sorted({n for m in methods for n in hparams[m]}):
      lines.append(
        f'| {name} | '
        + ' | '.join(str(hparams[m].get(name, '-')) for m in methods)
        + ' |'
      )
  else:
    lines += ['```json', json.dumps(hparams, indent=2, sort_keys=True), '```']
  lines += ['', f'Plot: `{os.path.basename(settings["plot"])}`.', '']
  return '\n'.join(lines)


def plot(report: Mapping[str, Any], out: IO[bytes]) -> None:
  """The comparison's two charts as a PNG, written to `out`."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top

  figure, (by_size, by_time) = pyplot.subplots(1, 2, figsize=(12, 4.8))
  for method in report['settings']['methods']:
    rows = sorted(
      (r for r in report['summary'] if r['method'] == method),
      key=lambda r: r['labelled'],
    )
    style = dict(
      marker='o', linestyle='--' if is_scratch(method) else '-', label=method
    )
    by_size.errorbar(
      [r['labelled'] for r in rows],
      [r['accuracy_mean'] for r in rows],
      yerr=[r['accuracy_std'] for r in rows],
      capsize=3,
      **style,
    )
    by_time.plot(
      [r['seconds_mean'] for r in rows],
      [r['accuracy_mean'] for r in rows],
      **style,
    )
  settings = report['settings']
  constant = settings.get('test', {}).get('majority_share')
  if constant is not None:
    for axes in (by_size, by_time):
      axes.axhline(
        constant,
        color='grey',
        linestyle=':',
        linewidth=1,
        label='most frequent class',
      )
  by_size.set(
    xscale='log',
    xlabel='labelled training examples',
    ylabel='test accuracy',
    title='Accuracy against labelled examples',
  )
  # The sizes measured, as plain numbers (not powers of ten).
  by_size.set_xticks(settings['sizes'], [str(n) for n in settings['sizes']])
  by_size.minorticks_off()
  by_time.set(
    xlabel='training seconds (mean)',
    ylabel='test accuracy',
    title='Accuracy against training time',
  )
  for axes in (by_size, by_time):
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(out, format='png', dpi=110)
  pyplot.close(figure)


def write_report(report: Mapping[str, Any], output: str) -> None:
  """<output>.json, .md and .png, each whole or not at all (paths)."""
  write_text(
    output + '.json',
    json.dumps(report, indent=2, sort_keys=True),
    CompareError,
    'the comparison',
  )
  write_text(output + '.md', markdown(report), CompareError, 'the comparison')
  with atomic_file(
    output + '.png',
    CompareError,
    'the comparison chart',
    mode='wb',
    encoding=None,
  ) as f:
    plot(report, f)
