"""The default pipeline on growing data: wall time per component and peak
memory against rows, with the multi-process DirectRunner.

Usage: python benchmarks/scaling_benchmark.py [--rows 10000 100000 1000000]
  [--workers 2] [--output PREFIX]

The data: the bundled breast-cancer rows resampled with replacement, each
measurement moved by Gaussian noise of 5 % of its column's standard
deviation (clipped at 0: the curated schema says measurements are
non-negative), the label kept. Written once per size into a temporary
folder, the same seed every time.

The run: `python -m pipeline run` on the default spec, cold (fresh root,
store and $TMPDIR), with Beam's DirectRunner in multi_processing mode on
`--workers` processes, and a fixed training budget so that the curve shows
the pipeline rather than a training length that grows with the data:
Hyperband over 3 trials of at most 2 epochs, the Trainer 3 epochs, batches
of 512. Everything else is the default spec (its schema, validation,
Transform, evaluation thresholds and push).

Writes PREFIX.json, PREFIX.md and PREFIX.png (default
benchmarks/results/scaling).
"""

import argparse
import csv
import datetime
import json
import os
import shutil
import tempfile

import cold_runs
import machine
import numpy as np

DATA = os.path.join(cold_runs.REPO, 'data', 'breast_cancer',
                    'breast_cancer.csv')
BUDGET = ['tuner.max_trials=3', 'tuner.max_epochs=2', 'training.epochs=3',
          'model.search_space.batch_size=[512]']
CHUNK = 100_000


def make_data(rows: int, folder: str, seed: int = 0) -> str:
  """A CSV of `rows` noisy resampled rows in `folder`; its path."""
  with open(DATA, newline='') as f:
    reader = csv.reader(f)
    header = next(reader)
    table = np.array([[float(v) for v in row] for row in reader])
  label = header.index('diagnosis')
  features = [i for i in range(len(header)) if i != label]
  scale = 0.05 * table[:, features].std(axis=0)
  rng = np.random.default_rng(seed)
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, 'data.csv')
  with open(path, 'w') as out:
    out.write(','.join(header) + '\n')
    for start in range(0, rows, CHUNK):
      n = min(CHUNK, rows - start)
      picked = table[rng.integers(0, len(table), n)]
      noisy = picked.copy()
      noisy[:, features] = np.maximum(
          picked[:, features] + rng.normal(0.0, 1.0, (n, len(features)))
          * scale, 0.0)
      formats = ['%d' if i == label else '%.6g' for i in range(len(header))]
      np.savetxt(out, noisy, fmt=formats, delimiter=',')
  return path


def one_size(rows: int, base: str, workers: int):
  data = os.path.join(base, f'data-{rows}')
  make_data(rows, data)
  workdir = os.path.join(base, f'run-{rows}')
  tmpdir = os.path.join(workdir, 'tmp')
  os.makedirs(tmpdir)
  sets = [f'data.csv={data}', *BUDGET,
          'runner.beam_args=[--direct_running_mode=multi_processing, '
          f'--direct_num_workers={workers}]']
  timed, components, outcome = cold_runs.run_ours(
      workdir, cold_runs.cold_env(tmpdir), sets)
  result = {'rows': rows, 'wall_seconds': round(timed.wall, 2),
            'seconds_per_1k_rows': round(timed.wall / rows * 1000, 4),
            'peak_rss_mib': round(timed.peak_mib),
            'tree_peak_rss_mib': round(timed.tree_peak_mib),
            'data_mib': round(os.path.getsize(os.path.join(data, 'data.csv'))
                              / 2**20, 1),
            'components': components, **outcome}
  shutil.rmtree(workdir)
  shutil.rmtree(data)
  print(f'{rows} rows: {timed.wall:.1f} s, tree peak '
        f'{timed.tree_peak_mib:.0f} MiB, blessed {outcome["blessed"]}',
        flush=True)
  return result


def plot(runs, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  rows = [r['rows'] for r in runs]
  figure, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4.5))
  names = list(dict.fromkeys(n for r in runs for n in r['components']))
  for name in names:
    left.plot(rows, [r['components'].get(name, 0) for r in runs], 'o-',
              label=name)
  left.plot(rows, [r['wall_seconds'] for r in runs], 'k--', label='whole run')
  left.set(xscale='log', yscale='log', xlabel='rows',
           ylabel='seconds', title='Wall time per component')
  left.legend(fontsize=8)
  right.plot(rows, [r['tree_peak_rss_mib'] for r in runs], 'o-',
             label='all processes')
  right.plot(rows, [r['peak_rss_mib'] for r in runs], 's--',
             label='largest process')
  right.set(xscale='log', xlabel='rows', ylabel='MiB',
            title='Peak memory (RSS)')
  right.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rows', type=int, nargs='+',
                      default=[10_000, 100_000, 1_000_000])
  parser.add_argument('--workers', type=int, default=2)
  parser.add_argument('--output', default=os.path.join(
      cold_runs.REPO, 'benchmarks', 'results', 'scaling'))
  args = parser.parse_args()
  base = tempfile.mkdtemp(prefix='scaling-bench-')
  try:
    runs = [one_size(rows, base, args.workers) for rows in sorted(args.rows)]
  finally:
    shutil.rmtree(base, ignore_errors=True)
  result = {'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'machine': machine.describe(), 'workers': args.workers,
            'budget': BUDGET, 'runs': runs}
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output + '.json', 'w') as f:
    json.dump(result, f, indent=2)
  plot(runs, args.output + '.png')

  m = result['machine']
  names = list(dict.fromkeys(n for r in runs for n in r['components']))
  lines = [
      f'# Scaling: the default pipeline against rows ({result["date"]})', '',
      f'Machine: {m["cpus"]} CPUs, {m["cpu"]}, Python {m["python"]}. '
      f'DirectRunner multi_processing, {args.workers} workers. Cold runs of '
      'the default spec on the bundled rows resampled with 5 % noise; '
      f'training budget fixed: `{" ".join(BUDGET)}`.', '',
      '| rows | CSV (MiB) | wall (s) | s per 1k rows | peak RSS, all '
      'processes (MiB) | largest process (MiB) | blessed | AUC |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |']
  for r in runs:
    auc = r['metrics'].get('auc')
    lines.append(
        f'| {r["rows"]:,} | {r["data_mib"]} | {r["wall_seconds"]:.1f} | '
        f'{r["seconds_per_1k_rows"]:.3f} | {r["tree_peak_rss_mib"]} | '
        f'{r["peak_rss_mib"]} | {r["blessed"]} | '
        f'{"" if auc is None else f"{auc:.4f}"} |')
  lines += ['', '| component | ' + ' | '.join(
      f'{r["rows"]:,} rows (s)' for r in runs) + ' |',
            '| --- |' + ' ---: |' * len(runs)]
  for name in names:
    lines.append(f'| {name} | ' + ' | '.join(
        str(r['components'].get(name, '-')) for r in runs) + ' |')
  lines += ['', f'Plot: `{os.path.basename(args.output)}.png`.']
  with open(args.output + '.md', 'w') as f:
    f.write('\n'.join(lines) + '\n')
  print('\n'.join(lines))


if __name__ == '__main__':
  main()
