"""Fine-tuning against training from scratch, at several labelled-set sizes.

`python -m pipeline compare SPEC` answers the question fine-tuning exists
for: with few labelled examples of the target task, does starting from the
base model beat training from scratch, by how much, and at what cost in
training time? It holds out a fixed test set from the spec's data, then for
each labelled-set size and repeat trains

- `scratch`: the base model's architecture with freshly initialised weights
  and the same new head, every layer training at the head's learning rate;
- each fine-tuning strategy (modules/finetune.py) from the base model's
  weights,

all with the spec's default hyperparameters (the first value of each search
space entry) for the same number of epochs, and measures test accuracy and
training seconds. It writes <output>.json (every run, the means, the
settings), <output>.md (tables and the conclusion the numbers support) and
<output>.png (accuracy against labelled examples and against training time).
"""

import csv
import json
import os
import platform
import statistics
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from pipeline.definition.spec import PipelineSpec
from pipeline.errors import PipelineError
from pipeline.runners import preflight

SCRATCH = 'scratch'


class CompareError(PipelineError):
  """The comparison cannot run on this spec. One line."""


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
  """Mean and spread per (method, labelled-set size)."""
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
        'seconds_mean': round(statistics.mean(r['seconds'] for r in group), 2),
    })
  return rows


def conclusion(summary: Sequence[Mapping[str, Any]],
               probes: Sequence[Mapping[str, float]] = ()) -> Dict[str, Any]:
  """Whether the best fine-tuning strategy beats scratch at the smallest
  labelled-set size, with the numbers; stated either way, and with the
  linear probes (at that size) as the measured reason."""
  smallest = min(r['labelled'] for r in summary)
  at = {r['method']: r for r in summary if r['labelled'] == smallest}
  tuned = [r for m, r in at.items() if m != SCRATCH]
  best = max(tuned, key=lambda r: r['accuracy_mean'])
  scratch = at[SCRATCH]
  margin = best['accuracy_mean'] - scratch['accuracy_mean']
  noise = best['accuracy_std'] + scratch['accuracy_std']
  beats = margin > 0
  if beats and margin > noise:
    text = (f'With {smallest} labelled examples, {best["method"]} reaches '
            f'{best["accuracy_mean"]:.3f} test accuracy against '
            f'{scratch["accuracy_mean"]:.3f} from scratch (+{margin:.3f}, more '
            f'than the spread over repeats, {noise:.3f}).')
  elif beats:
    text = (f'With {smallest} labelled examples, {best["method"]} is ahead of '
            f'scratch by {margin:.3f} ({best["accuracy_mean"]:.3f} against '
            f'{scratch["accuracy_mean"]:.3f}), but within the spread over '
            f'repeats ({noise:.3f}): not a clear win.')
  else:
    text = (f'With {smallest} labelled examples, fine-tuning does NOT beat '
            f'scratch: the best strategy, {best["method"]}, reaches '
            f'{best["accuracy_mean"]:.3f} against {scratch["accuracy_mean"]:.3f}'
            ' from scratch.')
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
  return {'probe': probe,'labelled': smallest, 'best_strategy': best['method'],
          'best_accuracy': best['accuracy_mean'],
          'scratch_accuracy': scratch['accuracy_mean'],
          'margin': round(margin, 4), 'spread': round(noise, 4),
          'finetune_beats_scratch': beats, 'text': text}


def markdown(report: Mapping[str, Any]) -> str:
  settings = report['settings']
  methods = settings['methods']
  lines = [
      '# Fine-tuning against training from scratch',
      '',
      f'Written by `{settings["command"]}` on {settings["written"]} '
      f'({settings["machine"]}).',
      '',
      f'Target data: `{settings["data"]}`; base model: '
      f'`{settings["base_model"]}`. Test set: {settings["test_examples"]} '
      f'held-out rows, the same for every run. Each cell: mean ± spread '
      f'(population std) of test accuracy over {settings["repeats"]} '
      f'repeat(s), {settings["epochs"]} epochs each, default hyperparameters '
      '(below).',
      '',
      '**' + report['conclusion']['text'] + '**',
      '',
      '## Test accuracy',
      '',
      '| labelled | ' + ' | '.join(methods) + ' |',
      '|---:|' + '---:|' * len(methods),
  ]
  by_key = {(r['method'], r['labelled']): r for r in report['summary']}
  for size in settings['sizes']:
    cells = [f'{by_key[(m, size)]["accuracy_mean"]:.3f} ± '
             f'{by_key[(m, size)]["accuracy_std"]:.3f}' for m in methods]
    lines.append(f'| {size} | ' + ' | '.join(cells) + ' |')
  lines += ['', '## Training seconds (mean)', '',
            '| labelled | ' + ' | '.join(methods) + ' |',
            '|---:|' + '---:|' * len(methods)]
  for size in settings['sizes']:
    lines.append(f'| {size} | ' + ' | '.join(
        f'{by_key[(m, size)]["seconds_mean"]:.1f}' for m in methods) + ' |')
  lines += ['', '## Hyperparameters', '', '```json',
            json.dumps(settings['hyperparameters'], indent=2, sort_keys=True),
            '```', '',
            f'Plot: `{os.path.basename(settings["plot"])}`.', '']
  return '\n'.join(lines)


def plot(report: Mapping[str, Any], path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  figure, (by_size, by_time) = pyplot.subplots(1, 2, figsize=(12, 4.8))
  for method in report['settings']['methods']:
    rows = sorted((r for r in report['summary'] if r['method'] == method),
                  key=lambda r: r['labelled'])
    style = dict(marker='o', linestyle='--' if method == SCRATCH else '-',
                 label=method)
    by_size.errorbar([r['labelled'] for r in rows],
                     [r['accuracy_mean'] for r in rows],
                     yerr=[r['accuracy_std'] for r in rows], capsize=3,
                     **style)
    by_time.plot([r['seconds_mean'] for r in rows],
                 [r['accuracy_mean'] for r in rows], **style)
  by_size.set(xscale='log', xlabel='labelled training examples',
              ylabel='test accuracy', title='Accuracy against labelled examples')
  by_time.set(xlabel='training seconds (mean)', ylabel='test accuracy',
              title='Accuracy against training time')
  for axes in (by_size, by_time):
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  pyplot.close(figure)


def compare(spec: PipelineSpec, base_path: str, sizes: Sequence[int],
            repeats: int, epochs: int, output: str, command: str,
            test_fraction: float = 0.4, seed: int = 0,
            progress=print) -> Dict[str, Any]:
  """Runs the comparison and writes <output>.{json,md,png}.

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
          'machine': f'{platform.machine()}, {os.cpu_count()} CPUs',
      },
      'runs': runs,
      'linear_probes': probes,
      'summary': summary,
      'conclusion': conclusion(summary, probes),
  }
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output + '.json', 'w') as f:
    json.dump(report, f, indent=2, sort_keys=True)
  with open(output + '.md', 'w') as f:
    f.write(markdown(report))
  plot(report, output + '.png')
  return report
