"""Fine-tuning against training from scratch, at several labelled-set sizes.

`python -m pipeline compare SPEC` answers the question fine-tuning exists
for: with few labelled examples of the target task, does starting from
pretrained weights beat training from scratch, by how much, and at what
cost in training time? It writes <output>.json (every run, the means and
spreads, the settings), <output>.md (the conclusion the numbers support,
first, then tables) and <output>.png (accuracy against labelled examples
and against training time). Two kinds of spec:

- A spec of numeric features with a base model (training.base_model, or
  `--base`): a fixed test set is held out from the spec's data; for each
  labelled-set size and repeat it trains `scratch` (the base model's
  architecture with freshly initialised weights and the same new head,
  every layer training at the head's learning rate) and each fine-tuning
  strategy (modules/finetune.py) from the base model's weights.
- A spec whose text or image column has a pretrained encoder
  (`model.encoders`: a BERT-family text encoder, an ImageNet CNN;
  `compare_media`): the test set is `--test-csv` (held-out rows with the
  same columns, e.g. a benchmark's sample of a data set's own test split)
  or else `--test-rows` rows held out from the spec's data. For each size
  and repeat a labelled set is drawn class by class in turn (as balanced
  as the classes allow; within a repeat a larger set contains the smaller
  ones, and every method trains on the same rows), run through the real
  Transform (the project's preprocessing_fn by tf.Transform's Beam API,
  in this process: analysed on the labelled rows only, as the pipeline
  analyses its train split, then applied to the test rows), and trained
  as `scratch_<encoder>`, the column through each of the project's learned
  encoders of its kind (text: bag, embedding; images: cnn) in the dnn
  `modules/model.build_model` builds, and as each fine-tuning strategy the
  spec's `search_space.finetune.strategy` lists, from the pretrained
  encoder (modules/finetune.Finetuner).

Every model takes the spec's default hyperparameters (the first value of
each search space entry) and trains for the same number of epochs, with
no early stopping and no validation split (so all of the labelled rows
train); seeds are fixed per repeat. Test accuracy is the task's predicted
class (modules/tasks.py) against the label; training seconds are
`fit`'s wall time (the model's first trace included, its building and
loading not).
"""

import contextlib
import csv
import dataclasses
import functools
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from typing import (
  IO,
  Any,
  Callable,
  Dict,
  Iterator,
  List,
  Mapping,
  Optional,
  Sequence,
  Tuple,
)

import numpy as np

from components import csv_format
from pipeline.definition.spec import PipelineSpec
from pipeline.errors import PipelineError
from pipeline.paths import atomic_file, write_text
from pipeline.runners import preflight

SCRATCH = 'scratch'
MEDIA_SIZES = (50, 200, 1000)  # compare_media's default labelled-set sizes
MEDIA_TEST_ROWS = 1000  # and its default test rows held out of the data
EVAL_BATCH = 64  # rows a prediction batch on the test set


class CompareError(PipelineError):
  """The comparison cannot run on this spec. One line."""


def is_scratch(method: str) -> bool:
  """Whether `method` trains from scratch (`scratch`, `scratch_<encoder>`)
  rather than from pretrained weights."""
  return method == SCRATCH or method.startswith(SCRATCH + '_')


def load_table(spec: PipelineSpec) -> Tuple[np.ndarray, np.ndarray]:
  """All rows of the spec's CSV data: numeric features (in spec order) as
  float32 [rows, features] and the label as int64 [rows]."""
  if spec.features.categorical:
    raise CompareError(f'{spec.source}: features.categorical: the comparison '
                       'takes numeric features only')
  columns = list(spec.features.numeric)
  features, labels = [], []
  for path in preflight.csv_files(spec.data.csv):
    with open(path, newline='') as f:
      reader = csv.DictReader(f)
      for row in reader:
        features.append([float(row[c]) for c in columns])
        labels.append(int(row[spec.features.label]))
  return np.asarray(features, np.float32), np.asarray(labels, np.int64)


def scale(method: str, fit_on: np.ndarray, *arrays: np.ndarray
          ) -> List[np.ndarray]:
  """The spec's numeric preprocessing, fitted on the labelled set only (as
  Transform fits on the training split)."""
  if method == 'none':
    return list(arrays)
  if method == 'z_score':
    mean, std = fit_on.mean(0), fit_on.std(0)
    std = np.where(std > 0, std, 1.0)
    return [(a - mean) / std for a in arrays]
  low, high = fit_on.min(0), fit_on.max(0)
  span = np.where(high > low, high - low, 1.0)
  return [(a - low) / span for a in arrays]


def split(rows: int, test_fraction: float, seed: int
          ) -> Tuple[np.ndarray, np.ndarray]:
  """(test indices, labelled pool indices in draw order): one fixed shuffle,
  so every method and size is scored on the same test rows and a larger
  labelled set contains every smaller one."""
  order = np.random.default_rng(seed).permutation(rows)
  test_rows = int(round(rows * test_fraction))
  return order[:test_rows], order[test_rows:]


def _dataset(spec: PipelineSpec, x: np.ndarray, y: np.ndarray,
             batch_size: int, shuffle_seed: Optional[int] = None):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from modules import features as features_lib  # pylint: disable=g-import-not-at-top
  names = [features_lib.transformed_name(k) for k in spec.features.numeric]
  columns = {name: x[:, i:i + 1] for i, name in enumerate(names)}
  ds = tf.data.Dataset.from_tensor_slices((columns, y.reshape(-1, 1)))
  if shuffle_seed is not None:
    ds = ds.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
  return ds.batch(int(batch_size))


def hyperparameters(spec: PipelineSpec) -> Dict[str, Any]:
  """The spec's default fine-tuning hyperparameters (first/min values)."""
  from modules import search_space  # pylint: disable=g-import-not-at-top
  return search_space.resolve(None, spec.model.search_space, 'finetune')


def train_one(spec: PipelineSpec, base_path: str, method: str,
              hparams: Mapping[str, Any], train: Tuple[np.ndarray, np.ndarray],
              test: Tuple[np.ndarray, np.ndarray], epochs: int,
              seed: int) -> Dict[str, Any]:
  """Trains one model by `method` and scores it on `test`."""
  import tf_keras as keras  # pylint: disable=g-import-not-at-top

  from modules import features as features_lib  # pylint: disable=g-import-not-at-top
  from modules import finetune  # pylint: disable=g-import-not-at-top
  from modules import model as model_lib  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)
  inputs = model_lib.ModelInputs(
      numeric=[features_lib.transformed_name(k) for k in spec.features.numeric],
      categorical={}, task=spec.task)
  base = finetune.load_checked(base_path, inputs)
  params = dict(hparams)
  scratch = method == SCRATCH
  if scratch:
    # Same layers, fresh weights. Cloned from the graph alone: a Trainer's
    # model also tracks its Transform layer, which cannot be cloned.
    base = keras.models.clone_model(keras.Model(base.input, base.output))
    params.update(strategy='full', backbone_lr_scale=1.0)
  else:
    params['strategy'] = method
  tuner = finetune.Finetuner(base, inputs, params,
                             inference_backbone=not scratch)
  batch = int(params['batch_size'])
  started = time.perf_counter()
  tuner.fit(_dataset(spec, *train, batch, shuffle_seed=seed),
            validation_data=None, epochs=epochs)
  seconds = time.perf_counter() - started
  tuner.prepare(0)  # compiled for evaluate; weights are unchanged
  scores = tuner.model.evaluate(_dataset(spec, *test, 256), verbose=0,
                                return_dict=True)
  return {'method': method, 'labelled': int(len(train[1])), 'seed': seed,
          'accuracy': round(float(scores['accuracy']), 4),
          'seconds': round(seconds, 2)}


def linear_probe(spec: PipelineSpec, base_path: str,
                 train: Tuple[np.ndarray, np.ndarray],
                 test: Tuple[np.ndarray, np.ndarray]) -> Dict[str, float]:
  """Test accuracy of a logistic regression on the raw features and on the
  base model's backbone features: how much the base's representation helps
  the target task before any training of the network."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top

  from modules import features as features_lib  # pylint: disable=g-import-not-at-top
  from modules import finetune  # pylint: disable=g-import-not-at-top
  backbone = finetune.split_backbone(finetune.load_base_model(base_path))
  names = [features_lib.transformed_name(k) for k in spec.features.numeric]

  def embed(x):
    out = backbone.predict({n: x[:, i:i + 1] for i, n in enumerate(names)},
                           verbose=0)
    return out.reshape(len(x), -1)

  def score(fit_x, test_x):
    model = LogisticRegression(max_iter=5000).fit(fit_x, train[1])
    return round(float(model.score(test_x, test[1])), 4)

  return {'raw_features': score(train[0], test[0]),
          'base_features': score(embed(train[0]), embed(test[0]))}


def summarize(runs: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
  """Mean and spread (population std, min and max) per (method,
  labelled-set size)."""
  groups: Dict[Tuple[str, int], List[Mapping[str, Any]]] = {}
  for run in runs:
    groups.setdefault((run['method'], run['labelled']), []).append(run)
  rows = []
  for (method, labelled), group in sorted(groups.items(),
                                          key=lambda kv: (kv[0][1], kv[0][0])):
    accuracies = [r['accuracy'] for r in group]
    rows.append({
        'method': method, 'labelled': labelled, 'repeats': len(group),
        'accuracy_mean': round(statistics.mean(accuracies), 4),
        'accuracy_std': round(statistics.pstdev(accuracies), 4),
        'accuracy_min': min(accuracies), 'accuracy_max': max(accuracies),
        'seconds_mean': round(statistics.mean(r['seconds'] for r in group), 2),
    })
  return rows


def verdict(summary: Sequence[Mapping[str, Any]], labelled: int
            ) -> Dict[str, Any]:
  """The best fine-tuning method against the best method from scratch at
  one labelled-set size, by mean test accuracy: the margin, and whether it
  is beyond the spread over repeats (more than the two stds together;
  with one repeat there is no spread to judge by, so never)."""
  at = [r for r in summary if r['labelled'] == labelled]
  best = max((r for r in at if not is_scratch(r['method'])),
             key=lambda r: r['accuracy_mean'])
  scratch = max((r for r in at if is_scratch(r['method'])),
                key=lambda r: r['accuracy_mean'])
  margin = best['accuracy_mean'] - scratch['accuracy_mean']
  spread = best['accuracy_std'] + scratch['accuracy_std']
  repeats = min(best['repeats'], scratch['repeats'])
  return {'labelled': labelled, 'repeats': repeats,
          'best_strategy': best['method'],
          'best_accuracy': best['accuracy_mean'],
          'best_range': [best['accuracy_min'], best['accuracy_max']],
          'scratch_method': scratch['method'],
          'scratch_accuracy': scratch['accuracy_mean'],
          'scratch_range': [scratch['accuracy_min'], scratch['accuracy_max']],
          'margin': round(margin, 4), 'spread': round(spread, 4),
          'finetune_beats_scratch': margin > 0,
          'beyond_spread': margin > 0 and repeats > 1 and margin > spread,
          'ranges_overlap': (best['accuracy_min'] <= scratch['accuracy_max']
                             and scratch['accuracy_min'] <=
                             best['accuracy_max'])}


def conclusion(summary: Sequence[Mapping[str, Any]],
               probes: Sequence[Mapping[str, float]] = ()) -> Dict[str, Any]:
  """Whether the best fine-tuning strategy beats scratch at the smallest
  labelled-set size, with the numbers; stated either way, and with the
  linear probes (at that size) as the measured reason."""
  smallest = min(r['labelled'] for r in summary)
  found = verdict(summary, smallest)
  best, margin, noise = (found['best_strategy'], found['margin'],
                         found['spread'])
  tuned, scratch = found['best_accuracy'], found['scratch_accuracy']
  if found['finetune_beats_scratch'] and margin > noise:
    text = (f'With {smallest} labelled examples, {best} reaches '
            f'{tuned:.3f} test accuracy against {scratch:.3f} from scratch '
            f'(+{margin:.3f}, more than the spread over repeats, '
            f'{noise:.3f}).')
  elif found['finetune_beats_scratch']:
    text = (f'With {smallest} labelled examples, {best} is ahead of '
            f'scratch by {margin:.3f} ({tuned:.3f} against {scratch:.3f}), '
            f'but within the spread over repeats ({noise:.3f}): not a clear '
            'win.')
  else:
    text = (f'With {smallest} labelled examples, fine-tuning does NOT beat '
            f'scratch: the best strategy, {best}, reaches {tuned:.3f} '
            f'against {scratch:.3f} from scratch.')
  probe = {}
  if probes:
    probe = {key: round(statistics.mean(p[key] for p in probes), 4)
             for key in ('raw_features', 'base_features')}
    helps = probe['base_features'] > probe['raw_features']
    text += (f' A logistic regression on the base model\'s features scores '
             f'{probe["base_features"]:.3f} against {probe["raw_features"]:.3f}'
             f' on the raw features at that size: the base\'s representation '
             + ('helps this task.' if helps else
                'is worse than the raw input for this task (its features are '
                'specific to the source classes), which is why starting from '
                'it does not pay off here.'))
  return {**found, 'probe': probe, 'text': text}


def _sizes_text(sizes: Sequence[int]) -> str:
  words = [str(s) for s in sizes]
  return (', '.join(words[:-1]) + ' and ' + words[-1] if len(words) > 1
          else words[0])


def _size_sentence(found: Mapping[str, Any], encoder: str) -> str:
  """One labelled-set size's verdict in words."""
  n, repeats = found['labelled'], found['repeats']
  points = 100 * found['margin']
  tuned = f'{found["best_accuracy"]:.3f}'
  scratch = f'{found["scratch_accuracy"]:.3f}'
  if repeats > 1:
    low, high = found['best_range']
    tuned += f' (fine-tuned; {low:.3f}-{high:.3f} over the repeats)'
    low, high = found['scratch_range']
    scratch += f' (scratch; {low:.3f}-{high:.3f})'
  mean = f'mean of {repeats} repeats' if repeats > 1 else 'one repeat'
  if not found['finetune_beats_scratch']:
    return (f'At {n} labels, training from scratch '
            f'({found["scratch_method"]}) beats fine-tuned {encoder} (best: '
            f'{found["best_strategy"]}) by {-points:.1f} points: {scratch} '
            f'against {tuned} test accuracy, {mean}.')
  head = (f'At {n} labels, fine-tuned {encoder} ({found["best_strategy"]}) '
          f'beats training from scratch ({found["scratch_method"]}) by '
          f'{points:.1f} points: {tuned} against {scratch} test accuracy, '
          f'{mean}')
  if repeats < 2:
    return head + ', so no spread to judge the margin by.'
  stds = f'the two stds together {found["spread"]:.3f}'
  if found['beyond_spread']:
    return head + f'; beyond the spread ({stds}).'
  return head + f'; within the spread ({stds}): not a clear win.'


def media_conclusion(summary: Sequence[Mapping[str, Any]], encoder: str,
                     constant: float, test_rows: int) -> Dict[str, Any]:
  """Whether transfer pays off at each labelled-set size: a leading
  sentence over all sizes, then one sentence a size (`_size_sentence`);
  and a `caveat` (None when there is none) naming the methods whose mean
  accuracy is no better than `constant`, what always answering the test
  set's most frequent class scores, give or take that score's standard
  error on `test_rows` rows (its sampling noise)."""
  sizes = sorted({r['labelled'] for r in summary})
  found = [verdict(summary, n) for n in sizes]
  clear = [f['labelled'] for f in found if f['beyond_spread']]
  ahead = [f['labelled'] for f in found
           if f['finetune_beats_scratch'] and not f['beyond_spread']]
  behind = [f['labelled'] for f in found if not f['finetune_beats_scratch']]
  if len(clear) == len(sizes):
    lead = (f'Transfer pays off at every size measured: fine-tuned {encoder} '
            'beats training from scratch beyond the spread over repeats at '
            f'{_sizes_text(sizes)} labels.')
  else:
    single = all(f['repeats'] < 2 for f in found)
    parts = []
    if clear:
      parts.append(f'pays off clearly at {_sizes_text(clear)} labels')
    if ahead:
      parts.append('is ahead (one repeat: no spread to judge by)' if single
                   else 'is ahead, but not beyond the spread,')
      parts[-1] += f' at {_sizes_text(ahead)} labels'
    if behind:
      parts.append(f'does not pay off at {_sizes_text(behind)} labels')
    joined = (', '.join(parts[:-1]) + ' and ' + parts[-1] if len(parts) > 1
              else parts[0])
    lead = f'Transfer from {encoder} {joined}.'
  text = ' '.join([lead] + [_size_sentence(f, encoder) for f in found])
  noise = (constant * (1 - constant) / test_rows) ** 0.5
  useless = [r for r in summary if r['accuracy_mean'] <= constant + noise]
  caveat = None
  if useless:
    by_size: Dict[int, List[str]] = {}
    for r in useless:
      by_size.setdefault(r['labelled'], []).append(
          f'{r["method"]} ({r["accuracy_mean"]:.3f})')
    named = '; '.join(f'at {n} labels {", ".join(m)}'
                      for n, m in by_size.items())
    caveat = (f'No better than always answering the test set\'s most '
              f'frequent class ({constant:.3f}, give or take its standard '
              f'error on {test_rows} rows, {noise:.3f}): {named}. A margin '
              'over such a model is a margin over a constant answer.')
  return {'by_size': found, 'clear_at': clear, 'ahead_at': ahead,
          'behind_at': behind, 'constant_answer': constant,
          'constant_answer_se': round(noise, 4),
          'no_better_than_constant': [
              {'method': r['method'], 'labelled': r['labelled']}
              for r in useless],
          'text': text, 'caveat': caveat}


def _cell(row: Mapping[str, Any]) -> str:
  text = f'{row["accuracy_mean"]:.3f} ± {row["accuracy_std"]:.3f}'
  if row['repeats'] > 1:
    text += f' ({row["accuracy_min"]:.3f}-{row["accuracy_max"]:.3f})'
  return text


def _tables(report: Mapping[str, Any]) -> List[str]:
  settings = report['settings']
  methods = settings['methods']
  by_key = {(r['method'], r['labelled']): r for r in report['summary']}
  lines = ['## Test accuracy', '',
           'Mean ± population std, (min-max) over the repeats.', '',
           '| labelled | ' + ' | '.join(methods) + ' |',
           '|---:|' + '---:|' * len(methods)]
  for size in settings['sizes']:
    lines.append(f'| {size} | ' + ' | '.join(
        _cell(by_key[(m, size)]) for m in methods) + ' |')
  lines += ['', '## Training seconds (mean)', '',
            '| labelled | ' + ' | '.join(methods) + ' |',
            '|---:|' + '---:|' * len(methods)]
  for size in settings['sizes']:
    lines.append(f'| {size} | ' + ' | '.join(
        f'{by_key[(m, size)]["seconds_mean"]:.1f}' for m in methods) + ' |')
  return lines


def _numeric_setup(settings: Mapping[str, Any]) -> List[str]:
  return [
      '# Fine-tuning against training from scratch', '',
      f'Target data: `{settings["data"]}`; base model: '
      f'`{settings["base_model"]}`. Test set: {settings["test_examples"]} '
      f'held-out rows, the same for every run. Each cell: mean ± spread '
      f'(population std) of test accuracy over {settings["repeats"]} '
      f'repeat(s), {settings["epochs"]} epochs each, default hyperparameters '
      '(below).']


def _media_setup(settings: Mapping[str, Any]) -> List[str]:
  test = settings['test']
  return [
      f'# Transfer learning: fine-tuned {settings["encoder"]} against '
      f'training from scratch', '',
      f'The {settings["kind"]} column `{settings["column"]}` of '
      f'`{settings["data"]}` ({settings["pool_rows"]} rows to draw labelled '
      f'sets from), label `{settings["label"]}`. Test set: {test["rows"]} '
      f'rows, {test["source"]}, the same for every run; the most frequent '
      f'class is {test["majority_share"]:.3f} of it. Each labelled set is '
      'drawn class by class in turn from a seeded shuffle (one per repeat; '
      'a larger set holds the smaller ones) and goes through the real '
      'Transform: the project\'s preprocessing_fn, analysed by tf.Transform '
      'on the labelled rows only and applied to the test rows. Methods: '
      '`scratch_<encoder>` trains the project\'s learned encoder of that '
      'name and the dnn from scratch (modules/model.py); the others '
      f'fine-tune the pretrained encoder (`{settings["encoder_location"]}`)'
      ' by that strategy (modules/finetune.py). Every model: the spec\'s '
      f'default hyperparameters (below), {settings["epochs"]} epochs at '
      f'batch {settings["batch_size"]}, no early stopping and no '
      'validation split (every labelled row trains), seeded per repeat. '
      f'Input: {settings["input"]}.']


def markdown(report: Mapping[str, Any]) -> str:
  """The report: a title, the conclusion (the first paragraph), how it was
  measured, the tables and the hyperparameters."""
  settings = report['settings']
  setup = (_media_setup(settings) if 'column' in settings
           else _numeric_setup(settings))
  caveat = report['conclusion'].get('caveat')
  lines = [setup[0], '',
           '**' + report['conclusion']['text'] + '**', '',
           *([caveat, ''] if caveat else []),
           f'Written by `{settings["command"]}` on {settings["written"]} '
           f'({settings["machine"]}).', '',
           *setup[2:], '', *_tables(report)]
  lines += ['', '## Hyperparameters', '']
  hparams = settings['hyperparameters']
  if 'column' in settings:  # by method: one column each
    methods = settings['methods']
    lines += ['| | ' + ' | '.join(methods) + ' |',
              '|---|' + '---:|' * len(methods)]
    for name in sorted({n for m in methods for n in hparams[m]}):
      lines.append(f'| {name} | ' + ' | '.join(
          str(hparams[m].get(name, '-')) for m in methods) + ' |')
  else:
    lines += ['```json', json.dumps(hparams, indent=2, sort_keys=True),
              '```']
  lines += ['', f'Plot: `{os.path.basename(settings["plot"])}`.', '']
  return '\n'.join(lines)


def plot(report: Mapping[str, Any], out: IO[bytes]) -> None:
  """The comparison's two charts as a PNG, written to `out`."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  figure, (by_size, by_time) = pyplot.subplots(1, 2, figsize=(12, 4.8))
  for method in report['settings']['methods']:
    rows = sorted((r for r in report['summary'] if r['method'] == method),
                  key=lambda r: r['labelled'])
    style = dict(marker='o', linestyle='--' if is_scratch(method) else '-',
                 label=method)
    by_size.errorbar([r['labelled'] for r in rows],
                     [r['accuracy_mean'] for r in rows],
                     yerr=[r['accuracy_std'] for r in rows], capsize=3,
                     **style)
    by_time.plot([r['seconds_mean'] for r in rows],
                 [r['accuracy_mean'] for r in rows], **style)
  settings = report['settings']
  constant = settings.get('test', {}).get('majority_share')
  if constant is not None:
    for axes in (by_size, by_time):
      axes.axhline(constant, color='grey', linestyle=':', linewidth=1,
                   label='most frequent class')
  by_size.set(xscale='log', xlabel='labelled training examples',
              ylabel='test accuracy', title='Accuracy against labelled examples')
  # The sizes measured, as plain numbers (not powers of ten).
  by_size.set_xticks(settings['sizes'], [str(n) for n in settings['sizes']])
  by_size.minorticks_off()
  by_time.set(xlabel='training seconds (mean)', ylabel='test accuracy',
              title='Accuracy against training time')
  for axes in (by_size, by_time):
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(out, format='png', dpi=110)
  pyplot.close(figure)


def write_report(report: Mapping[str, Any], output: str) -> None:
  """<output>.json, .md and .png, each whole or not at all (paths)."""
  write_text(output + '.json', json.dumps(report, indent=2, sort_keys=True),
             CompareError, 'the comparison')
  write_text(output + '.md', markdown(report), CompareError, 'the comparison')
  with atomic_file(output + '.png', CompareError, 'the comparison chart',
                   mode='wb', encoding=None) as f:
    plot(report, f)


def _machine() -> str:
  return f'{platform.machine()}, {os.cpu_count()} CPUs'


def compare(spec: PipelineSpec, base_path: str, sizes: Sequence[int],
            repeats: int, epochs: int, output: str, command: str,
            test_fraction: float = 0.4, seed: int = 0,
            progress=print) -> Dict[str, Any]:
  """Runs the comparison of a numeric spec against a base model and writes
  <output>.{json,md,png}.

  Raises:
    CompareError: sizes that do not fit the data, or unusable features.
  """
  from modules import finetune  # pylint: disable=g-import-not-at-top
  x, y = load_table(spec)
  test_idx, pool = split(len(y), test_fraction, seed)
  sizes = sorted(set(int(s) for s in sizes))
  if not sizes or sizes[0] < 1 or sizes[-1] > len(pool):
    raise CompareError(f'--sizes must lie in 1..{len(pool)} (the rows left '
                       f'after holding out {len(test_idx)} for testing)')
  methods = [SCRATCH] + list(finetune.STRATEGIES)
  hparams = hyperparameters(spec)
  # One untimed run first: TensorFlow's one-off start-up costs (tracing,
  # kernels) would otherwise land on whichever method is timed first.
  warm = pool[:sizes[0]]
  train_one(spec, base_path, methods[0], hparams, (x[warm], y[warm]),
            (x[test_idx[:10]], y[test_idx[:10]]), 1, seed)
  runs, probes = [], []
  for size in sizes:
    for repeat in range(repeats):
      # Each repeat draws its own labelled set (same size) from the pool.
      chosen = np.random.default_rng(seed + 1 + repeat).choice(
          pool, size, replace=False)
      x_train, x_test = scale(spec.preprocessing.numeric, x[chosen],
                              x[chosen], x[test_idx])
      if size == sizes[0]:
        probe = linear_probe(spec, base_path, (x_train, y[chosen]),
                             (x_test, y[test_idx]))
        probes.append(probe)
        progress(f'  {size:>4} labelled  repeat {repeat}  linear probe: raw '
                 f'{probe["raw_features"]:.3f}, base features '
                 f'{probe["base_features"]:.3f}')
      for method in methods:
        run = train_one(spec, base_path, method, hparams,
                        (x_train, y[chosen]), (x_test, y[test_idx]), epochs,
                        seed=seed + repeat)
        run['repeat'] = repeat
        runs.append(run)
        progress(f'  {size:>4} labelled  repeat {repeat}  {method:<20} '
                 f'accuracy {run["accuracy"]:.3f}  {run["seconds"]:.1f}s')
  summary = summarize(runs)
  report = {
      'settings': {
          'command': command, 'spec': spec.source, 'data': spec.data.csv,
          'base_model': base_path, 'sizes': sizes, 'repeats': repeats,
          'epochs': epochs, 'test_examples': int(len(test_idx)),
          'test_fraction': test_fraction, 'seed': seed, 'methods': methods,
          'hyperparameters': hparams, 'plot': output + '.png',
          'written': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
          'machine': _machine(),
      },
      'runs': runs,
      'linear_probes': probes,
      'summary': summary,
      'conclusion': conclusion(summary, probes),
  }
  write_report(report, output)
  return report


# -- a text or image column through a pretrained encoder -------------------


@dataclasses.dataclass(frozen=True)
class Rows:
  """A CSV's rows as tf.Transform's instance dicts (each feature a list of
  at most one value, as a schema without fixed shapes has it; an image
  column's value the file's bytes), and each row's label as written."""
  instances: List[Dict[str, Any]]
  labels: List[Any]


def pretrained_column(spec: PipelineSpec) -> Tuple[str, str, Any]:
  """(column, its kind's name, its PretrainedEncoder) of the one column
  with a pretrained encoder.

  Raises:
    CompareError: none, several, or one on a column that is not text or
      an image.
  """
  from modules import kinds  # pylint: disable=g-import-not-at-top
  pretrained = spec.model.pretrained()
  if len(pretrained) != 1:
    raise CompareError(f'{spec.source}: model.encoders: the comparison '
                       'fine-tunes one pretrained encoder; the spec has '
                       f'{len(pretrained)}')
  (column, encoder), = pretrained.items()
  kind = kinds.kind_of(spec.features, column)
  if kind is None or not kind.encoded:
    raise CompareError(f'{spec.source}: model.encoders.{column}: {column!r} '
                       'is no text or image column of the data')
  return column, kind.name, encoder


def encoder_name(encoder: Any) -> str:
  """A pretrained encoder's short name: what its source names, less any
  folder (all-MiniLM-L6-v2, EfficientNetLite0)."""
  _, value = encoder.source
  return os.path.basename(value.rstrip('/')) or value


def raw_feature_spec(spec: PipelineSpec, column_kinds: Mapping[str, str]
                     ) -> Dict[str, Any]:
  """The raw features as tf.Transform reads `Rows.instances`: each feature
  of variable length (a gap is no value; preprocessing_fn fills it by the
  spec's rules), the label one required value, each typed by its CSV kind
  (preflight's)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  dtypes = {csv_format.INT: tf.int64, csv_format.FLOAT: tf.float32,
            csv_format.STRING: tf.string}
  result = {key: tf.io.VarLenFeature(dtypes[column_kinds[key]])
            for key in spec.feature_keys}
  label = spec.features.label
  result[label] = tf.io.FixedLenFeature([], dtypes[column_kinds[label]])
  return result


def read_rows(spec: PipelineSpec, path: str,
              column_kinds: Mapping[str, str]) -> Rows:
  """The rows of one CSV file with the spec's features and label, parsed
  by the pipeline's CSV rules (components/csv_format.py); an image
  column's cells are file paths relative to the CSV, read as bytes.

  Raises:
    CompareError: a missing column, a cell that does not parse, a row
      without a label, an image file that cannot be read.
  """
  try:
    with open(path, 'rb') as f:
      records = csv_format.rows(csv_format.read_text(f.read(), path))
  except (OSError, UnicodeError) as e:
    raise CompareError(f'{path}: {e}') from None
  header = next(records, [])
  label = spec.features.label
  wanted = [*spec.feature_keys, label]
  absent = [c for c in wanted if c not in header]
  if absent:
    raise CompareError(f'{path}: no column {", ".join(absent)} (the spec '
                       'names it)')
  where = {c: header.index(c) for c in wanted}
  images = set(spec.features.image)
  folder = os.path.dirname(os.path.abspath(path))
  nulls = spec.data.null_values
  instances, labels = [], []
  for number, record in enumerate(records, start=1):
    if len(record) != len(header):
      raise CompareError(f'{path}: row {number}: {len(record)} cells, the '
                         f'header has {len(header)}')
    instance: Dict[str, Any] = {}
    try:
      for key in wanted:
        value = csv_format.value_of(record[where[key]], column_kinds[key],
                                    nulls)
        if key == label:
          if value is None:
            raise CompareError(f'{path}: row {number}: no {label} (the '
                               'label)')
          labels.append(value)
          instance[key] = value.encode() if isinstance(value, str) else value
        elif value is None:
          instance[key] = []
        elif key in images:
          with open(os.path.join(folder, value.strip()), 'rb') as f:
            instance[key] = [f.read()]
        else:
          instance[key] = [value.encode() if isinstance(value, str)
                           else value]
    except csv_format.CellError as e:
      raise CompareError(f'{path}: row {number}: {e}') from None
    except OSError as e:
      raise CompareError(f'{path}: row {number}: image {e}') from None
    instances.append(instance)
  return Rows(instances, labels)


def balanced_order(labels: Sequence[Any], indices: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
  """`indices` in the order labelled sets are drawn: round by round, one
  row of each class that has rows left (classes in a fresh random order
  each round, each class's rows in a random order). Its first n are as
  class-balanced as the classes allow, and hold every class from n = the
  number of classes on."""
  by_class: Dict[Any, List[int]] = {}
  for index in rng.permutation(indices):
    by_class.setdefault(labels[index], []).append(int(index))
  queues = [by_class[c] for c in sorted(by_class, key=str)]
  order: List[int] = []
  for round_ in range(max(len(q) for q in queues)):
    for q in rng.permutation(len(queues)):
      if round_ < len(queues[q]):
        order.append(queues[q][round_])
  return np.asarray(order, np.int64)


# What tf.Transform warns of on every call here: that instance dicts are
# slower than Arrow record batches (on a few hundred rows they are not
# worth converting), and that an analyzer's cache key varies between
# traces (this run keeps no analyzer cache).
_TRANSFORM_NOISE = ('instance dicts', 'cache key varies on repeated tracing')


@contextlib.contextmanager
def _quiet_transform() -> Iterator[None]:
  """Holds back _TRANSFORM_NOISE while the transform runs."""
  logger = logging.getLogger('absl')

  def keep(record: logging.LogRecord) -> bool:
    return not any(text in record.getMessage() for text in _TRANSFORM_NOISE)

  logger.addFilter(keep)
  try:
    yield
  finally:
    logger.removeFilter(keep)


def transform(config: Any, feature_spec: Mapping[str, Any],
              train: Sequence[Mapping[str, Any]],
              test: Sequence[Mapping[str, Any]], folder: str
              ) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
  """The real Transform, in this process: the project's preprocessing_fn
  analysed and applied on `train` (tf.Transform's
  AnalyzeAndTransformDataset), then applied to `test` (TransformDataset);
  the transform graph written to `folder` as the Transform component
  writes it (transform_fn/, transformed_metadata/), where the model's
  builders read its vocabularies. Returns the transformed train and test
  rows, one array per transformed feature.

  Args:
    config: the spec's TransformConfig.
    feature_spec: `raw_feature_spec`.
    train, test: `Rows.instances`.
    folder: an empty folder.
  """
  # pylint: disable=g-import-not-at-top
  import tensorflow_transform.beam as tft_beam
  from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

  from modules import preprocessing
  # pylint: enable=g-import-not-at-top
  metadata = dataset_metadata.DatasetMetadata(
      schema_utils.schema_from_feature_spec(dict(feature_spec)))
  function = functools.partial(preprocessing.preprocessing_fn,
                               custom_config=config.to_custom_config())
  # Applied to in-memory lists, each step runs a Beam pipeline of its own
  # (the DirectRunner, in this process) and hands back its outputs.
  with _quiet_transform(), tft_beam.Context(
      temp_dir=os.path.join(folder, 'tmp')):
    (train_xf, _), transform_fn = (
        (list(train), metadata) |
        'Analyze' >> tft_beam.AnalyzeAndTransformDataset(function))
    test_xf, _ = (((list(test), metadata), transform_fn) |
                  'Apply' >> tft_beam.TransformDataset())
    _ = transform_fn | 'Write' >> tft_beam.WriteTransformFn(folder)
  return _stacked(train_xf), _stacked(test_xf)


def _stacked(instances: Sequence[Mapping[str, Any]]) -> Dict[str, np.ndarray]:
  return {name: np.stack([np.asarray(row[name]) for row in instances])
          for name in instances[0]}


def scratch_config(config: Any, column: str, encoder: str) -> Any:
  """The spec's TrainerConfig with `column` through the learned `encoder`
  and training from scratch."""
  from modules.config import TrainerConfig  # pylint: disable=g-import-not-at-top
  raw = config.to_custom_config()
  raw['model']['encoders'][column] = encoder
  raw['training']['mode'] = 'scratch'
  return TrainerConfig.from_custom_config(raw)


def train_media(config: Any, transform_folder: str,
                hparams: Mapping[str, Any], train: Mapping[str, np.ndarray],
                test: Mapping[str, np.ndarray], epochs: int,
                seed: int) -> Tuple[float, float]:
  """Builds the model `config` trains (modules/data.TrainingData.new_model
  over the transform graph in `transform_folder`: a dnn from scratch, or
  a Finetuner of the pretrained encoder), fits it on `train` for `epochs`
  and returns (test accuracy, training seconds)."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  import tf_keras as keras
  from tfx.components.trainer.fn_args_utils import FnArgs

  from modules import data as data_lib
  from modules import finetune, tasks
  # pylint: enable=g-import-not-at-top
  keras.backend.clear_session()  # each model on its own: no graph grows
  keras.utils.set_random_seed(seed)
  data = data_lib.TrainingData(FnArgs(transform_graph_path=transform_folder),
                               config)
  model = data.new_model(hparams)
  names, label = data.model_inputs.names(), data.features.transformed_label
  rows = tf.data.Dataset.from_tensor_slices(
      ({n: train[n] for n in names}, train[label]))
  rows = rows.shuffle(len(train[label]), seed=seed).batch(
      int(hparams['batch_size']))
  started = time.perf_counter()
  model.fit(rows, validation_data=None, epochs=epochs, verbose=0)
  seconds = time.perf_counter() - started
  network = model.model if isinstance(model, finetune.Finetuner) else model
  predicted = network.predict(tf.data.Dataset.from_tensor_slices(
      {n: test[n] for n in names}).batch(EVAL_BATCH), verbose=0)
  classes = data.task.serving_outputs(tf.constant(predicted))[tasks.CLASS_ID]
  accuracy = float(np.mean(np.reshape(classes, -1) ==
                           np.reshape(test[label], -1)))
  return accuracy, seconds


def compare_media(spec: PipelineSpec, column_kinds: Mapping[str, str],
                  sizes: Sequence[int], repeats: int, epochs: int,
                  output: str, command: str,
                  test_rows: int = MEDIA_TEST_ROWS,
                  test_csv: Optional[str] = None, seed: int = 0,
                  progress: Callable[[str], None] = print
                  ) -> Dict[str, Any]:
  """Runs the comparison of a spec whose text or image column has a
  pretrained encoder (the module docstring says how) and writes
  <output>.{json,md,png}.

  Args:
    spec: the spec, resolved against its data (preflight.run_preflight).
    column_kinds: each column's CSV kind (preflight's).
    sizes: labelled-set sizes; each at least the number of classes.
    repeats: labelled sets drawn per size.
    epochs: epochs every model trains.
    output: the path prefix of the report.
    command: the command line, for the report.
    test_rows: rows held out of the spec's data for the test set, when
      `test_csv` is not given.
    test_csv: a CSV of test rows with the spec's columns (paths of images
      relative to it); then every row of the spec's data may be drawn.
    seed: the seed of the hold-out and of each repeat's draws and models.
    progress: called with a line per run.

  Raises:
    CompareError: sizes or a test set that do not fit the data, or data
      that cannot be read.
  """
  # pylint: disable=g-import-not-at-top
  from modules import encoders, search_space
  from modules.config import TrainerConfig, TransformConfig
  # pylint: enable=g-import-not-at-top
  started = time.perf_counter()
  if repeats < 1 or epochs < 1:
    raise CompareError(f'--repeats {repeats}, --epochs {epochs}: give at '
                       'least 1 of each')
  column, kind, encoder = pretrained_column(spec)
  name = encoder_name(encoder)
  try:
    location = encoders.locate(column, kind, encoder)
  except encoders.EncoderError as e:
    raise CompareError(f'{spec.source}: {e}') from None
  feature_spec = raw_feature_spec(spec, column_kinds)
  data = [read_rows(spec, path, column_kinds)
          for path in preflight.csv_files(spec.data.csv)]
  rows = Rows([i for d in data for i in d.instances],
              [label for d in data for label in d.labels])
  everything = np.arange(len(rows.labels))
  if test_csv:
    test = read_rows(spec, test_csv, column_kinds)
    pool, source = everything, f'from {test_csv}'
  else:
    if not 0 < test_rows < len(everything):
      raise CompareError(f'--test-rows {test_rows}: the data has '
                         f'{len(everything)} rows; hold out fewer')
    order = np.random.default_rng(seed).permutation(everything)
    held, pool = order[:test_rows], order[test_rows:]
    test = Rows([rows.instances[i] for i in held],
                [rows.labels[i] for i in held])
    source = f'held out of the data at random (seed {seed})'
  classes = len(set(rows.labels[i] for i in pool))
  sizes = sorted(set(int(s) for s in sizes))
  if not sizes or sizes[0] < classes or sizes[-1] > len(pool):
    raise CompareError(
        f'--sizes must lie in {classes}..{len(pool)}: at least one row of '
        f'each of the {classes} classes, at most the {len(pool)} rows to '
        'draw from')
  transform_config = spec.module_config(TransformConfig)
  config = spec.module_config(TrainerConfig)
  learned = [n for n, (k, _) in encoders.LEARNED.items() if k == kind]
  configs = {f'{SCRATCH}_{n}': scratch_config(config, column, n)
             for n in learned}
  strategies = list(config.model.search_space.finetune.strategy)
  configs.update({s: config for s in strategies})
  methods = list(configs)
  tuned = search_space.resolve(None, config)
  hparams = {m: (dict(tuned, strategy=m) if m in strategies
                 else search_space.resolve(None, c))
             for m, c in configs.items()}
  runs: List[Dict[str, Any]] = []
  transforms: List[Dict[str, Any]] = []
  with tempfile.TemporaryDirectory(prefix='compare-') as workdir:
    for size in sizes:
      for repeat in range(repeats):
        # A repeat's own draw order: its sets grow by adding rows.
        chosen = balanced_order(
            rows.labels, pool,
            np.random.default_rng(seed + 1 + repeat))[:size]
        folder = os.path.join(workdir, f'{size}-{repeat}')
        clock = time.perf_counter()
        train_xf, test_xf = transform(
            transform_config, feature_spec,
            [rows.instances[i] for i in chosen], test.instances, folder)
        transforms.append({'labelled': size, 'repeat': repeat,
                           'seconds': round(time.perf_counter() - clock, 2)})
        if not runs:
          # Untimed: TensorFlow's one-off start-up costs would otherwise
          # land on the first method timed.
          train_media(configs[methods[0]], folder, hparams[methods[0]],
                      train_xf, test_xf, 1, seed)
        for method in methods:
          accuracy, seconds = train_media(
              configs[method], folder, hparams[method], train_xf, test_xf,
              epochs, seed + repeat)
          runs.append({'method': method, 'labelled': size, 'repeat': repeat,
                       'seed': seed + repeat, 'accuracy': round(accuracy, 4),
                       'seconds': round(seconds, 2)})
          progress(f'  {size:>4} labelled  repeat {repeat}  {method:<22} '
                   f'accuracy {accuracy:.3f}  {seconds:.1f}s')
  summary = summarize(runs)
  counts: Dict[Any, int] = {}
  for label in test.labels:
    counts[label] = counts.get(label, 0) + 1
  majority = round(max(counts.values()) / len(test.labels), 4)
  prep = transform_config.preprocessing
  size_for = functools.partial(encoders.image_size_for, prep.image_size)
  shown = {'text': f'up to {encoder.max_tokens} wordpieces a text for '
                   f'{name}, its first {prep.text.max_tokens} words for the '
                   'learned encoders',
           'image': f'images resized to {size_for(True)} px for {name}, '
                    f'{size_for(False)} px for the learned cnn'}[kind]
  report = {
      'settings': {
          'command': command, 'spec': spec.source, 'data': spec.data.csv,
          'column': column, 'kind': kind, 'label': spec.features.label,
          'encoder': name, 'encoder_location': location,
          'input': shown, 'pool_rows': int(len(pool)),
          'test': {'source': source, 'rows': len(test.labels),
                   'majority_share': majority},
          'sizes': sizes, 'repeats': repeats, 'epochs': epochs,
          'batch_size': int(tuned['batch_size']),
          'early_stopping': 'off: no validation split, every labelled row '
                            'trains',
          'seed': seed, 'methods': methods, 'hyperparameters': hparams,
          'plot': output + '.png',
          'written': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
          'machine': _machine(),
          'seconds': round(time.perf_counter() - started, 1),
      },
      'runs': runs,
      'transforms': transforms,
      'summary': summary,
      'conclusion': media_conclusion(summary, name, majority,
                                     len(test.labels)),
  }
  write_report(report, output)
  return report
