"""The default pipeline on growing data: wall time per component and peak
memory against rows, on each engine: the multi-process DirectRunner, and a
local Flink session cluster (`python -m pipeline engine up flink`: 1
JobManager, 2 TaskManagers, Beam's job server).

Usage: python benchmarks/scaling_benchmark.py [--rows 10000 100000 1000000]
  [--engines direct flink] [--workers 2] [--output PREFIX]

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

On Flink the Beam components' jobs run in the cluster's JVMs, which are
not the run's children: their memory (JobManager, TaskManagers, job server,
sampled with the run) is summed into "all processes". The cluster is
started before the first Flink run and stopped after the last; its start
is not in the wall times.

Writes PREFIX.json, PREFIX.md and PREFIX.png (default
benchmarks/results/scaling).
"""

import argparse
import csv
import datetime
import json
import os
import shutil
import sys
import tempfile
from typing import Dict, Optional, Sequence

import cold_runs
import machine
import numpy as np
import psutil

DATA = os.path.join(
  cold_runs.REPO, 'data', 'breast_cancer', 'breast_cancer.csv'
)
BUDGET = [
  'tuner.max_trials=3',
  'tuner.max_epochs=2',
  'training.epochs=3',
  'model.search_space.batch_size=[512]',
]
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
        picked[:, features] + rng.normal(0.0, 1.0, (n, len(features))) * scale,
        0.0,
      )
      formats = ['%d' if i == label else '%.6g' for i in range(len(header))]
      np.savetxt(out, noisy, fmt=formats, delimiter=',')
  return path


# The goal on one machine (issue: a million rows in five minutes).
GOAL_SECONDS, GOAL_MIB = 300, 8 * 1024


def one_size(
  rows: int,
  base: str,
  workers: int,
  engine: str = 'direct',
  engine_options: Optional[Dict] = None,
  also: Sequence[int] = (),
):
  data = os.path.join(base, f'data-{rows}')
  if not os.path.exists(data):
    make_data(rows, data)
  workdir = os.path.join(base, f'run-{engine}-{rows}')
  tmpdir = os.path.join(workdir, 'tmp')
  os.makedirs(tmpdir)
  sets = [
    f'data.csv={data}',
    *BUDGET,
    'runner.beam_args=[--direct_running_mode=multi_processing, '
    f'--direct_num_workers={workers}]',
  ]
  if engine != 'direct':
    sets += [
      f'runner.engine={engine}',
      f'runner.engine_options={json.dumps(engine_options or {})}',
    ]
  timed, components, outcome = cold_runs.run_ours(
    workdir, cold_runs.cold_env(tmpdir), sets, also=also
  )
  result = {
    'engine': engine,
    'rows': rows,
    'wall_seconds': round(timed.wall, 2),
    'seconds_per_1k_rows': round(timed.wall / rows * 1000, 4),
    'peak_rss_mib': round(timed.peak_mib),
    'tree_peak_rss_mib': round(timed.tree_peak_mib),
    'data_mib': round(
      os.path.getsize(os.path.join(data, 'data.csv')) / 2**20, 1
    ),
    'components': components,
    **outcome,
  }
  shutil.rmtree(workdir)
  print(
    f'{engine}, {rows} rows: {timed.wall:.1f} s, tree peak '
    f'{timed.tree_peak_mib:.0f} MiB, blessed {outcome["blessed"]}',
    flush=True,
  )
  return result


def plot(runs, path):
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top

  figure, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4.5))
  for engine in dict.fromkeys(r['engine'] for r in runs):
    mine = [r for r in runs if r['engine'] == engine]
    rows = [r['rows'] for r in mine]
    left.plot(
      rows,
      [r['wall_seconds'] for r in mine],
      'o-',
      label=f'{engine}: whole run',
    )
    left.plot(
      rows,
      [r['components'].get(EXAMPLE_GEN, 0) for r in mine],
      's--',
      label=f'{engine}: {EXAMPLE_GEN}',
    )
    right.plot(
      rows,
      [r['tree_peak_rss_mib'] for r in mine],
      'o-',
      label=f'{engine}: all processes',
    )
  left.axhline(GOAL_SECONDS, color='grey', linestyle=':', label='300 s')
  left.set(
    xscale='log',
    yscale='log',
    xlabel='rows',
    ylabel='seconds',
    title='Wall time (cold run)',
  )
  left.legend(fontsize=8)
  right.axhline(GOAL_MIB, color='grey', linestyle=':', label='8 GiB')
  right.set(
    xscale='log',
    xlabel='rows',
    ylabel='MiB',
    title='Peak memory (RSS), JVMs included',
  )
  right.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)


EXAMPLE_GEN = 'CsvExampleGen'


def _flink_cluster():
  """Starts the local Flink cluster; (engine_options, its pids, its idle
  memory in MiB)."""
  if cold_runs.REPO not in sys.path:
    sys.path.insert(0, cold_runs.REPO)
  from pipeline.engines import cluster  # pylint: disable=g-import-not-at-top
  from pipeline.engines import registry as engines  # pylint: disable=g-import-not-at-top

  flink = engines.get('flink').cluster
  missing = flink.missing()
  if missing:
    raise LookupError(missing)
  options = flink.up(print)
  pids = list(cluster.processes('flink').values())
  idle = sum(
    p.memory_info().rss
    for pid in pids
    for p in [
      psutil.Process(pid),
      *psutil.Process(pid).children(recursive=True),
    ]
  )
  return options, pids, round(idle / 2**20), flink.down


def _arguments() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    '--rows', type=int, nargs='+', default=[10_000, 100_000, 1_000_000]
  )
  parser.add_argument(
    '--engines',
    nargs='+',
    default=['direct', 'flink'],
    choices=['direct', 'flink'],
  )
  parser.add_argument('--workers', type=int, default=2)
  parser.add_argument(
    '--output',
    default=os.path.join(cold_runs.REPO, 'benchmarks', 'results', 'scaling'),
  )
  return parser.parse_args()


def _measure(args: argparse.Namespace):
  """Every size on every engine: (runs, each cluster's idle MiB, the
  engines not measured and why)."""
  base = tempfile.mkdtemp(prefix='scaling-bench-')
  runs, idle, skipped = [], {}, {}
  try:
    for engine in args.engines:
      options, pids, stop = None, (), None
      if engine == 'flink':
        try:
          options, pids, idle[engine], stop = _flink_cluster()
        except LookupError as e:
          skipped[engine] = str(e)
          print(f'flink: not measured: {e}', flush=True)
          continue
      try:
        runs += [
          one_size(rows, base, args.workers, engine, options, pids)
          for rows in sorted(args.rows)
        ]
      finally:
        if stop:
          stop(print)
  finally:
    shutil.rmtree(base, ignore_errors=True)
  return runs, idle, skipped


def _run_line(r) -> str:
  auc = r['metrics'].get('auc')
  return (
    f'| {r["engine"]} | {r["rows"]:,} | {r["data_mib"]} | '
    f'{r["wall_seconds"]:.1f} | {r["seconds_per_1k_rows"]:.3f} | '
    f'{r["tree_peak_rss_mib"]} | {r["peak_rss_mib"]} | {r["blessed"]} | '
    f'{"" if auc is None else f"{auc:.4f}"} |'
  )


def _goal_lines(runs) -> list:
  """Whether each engine's million rows met the goal."""
  lines = []
  for r in (r for r in runs if r['rows'] == 1_000_000):
    met = (
      r['wall_seconds'] <= GOAL_SECONDS and r['tree_peak_rss_mib'] <= GOAL_MIB
    )
    lines += [
      '',
      f'1M rows on {r["engine"]}: {r["wall_seconds"]:.0f} s, '
      f'{r["tree_peak_rss_mib"] / 1024:.1f} GiB: goal (<= '
      f'{GOAL_SECONDS} s, <= 8 GiB) {"met" if met else "NOT met"}.',
    ]
  return lines


def _component_lines(runs) -> list:
  """Each component's seconds, a column per run."""
  names = list(dict.fromkeys(n for r in runs for n in r['components']))
  lines = [
    '',
    '| component | '
    + ' | '.join(f'{r["engine"]} {r["rows"]:,} (s)' for r in runs)
    + ' |',
    '| --- |' + ' ---: |' * len(runs),
  ]
  for name in names:
    lines.append(
      f'| {name} | '
      + ' | '.join(str(r['components'].get(name, '-')) for r in runs)
      + ' |'
    )
  return lines


def _markdown(result, plot_name: str) -> list:
  """The results page's lines."""
  m, runs, idle = result['machine'], result['runs'], result['cluster_idle_mib']
  lines = [
    f'# Scaling: the default pipeline against rows ({result["date"]})',
    '',
    f'Machine: {m["cpus"]} CPUs, {m["cpu"]}, Python {m["python"]}. Cold '
    'runs of the default spec on the bundled rows resampled with 5 % '
    f"noise; training budget fixed: `{' '.join(BUDGET)}`. direct: Beam's "
    f'DirectRunner, multi_processing, {result["workers"]} workers. flink: '
    "the local session cluster (`engine up flink`), its JVMs' memory "
    'summed into "all processes"'
    + (f' (idle: {idle["flink"]} MiB)' if 'flink' in idle else '')
    + '.',
    '',
    '| engine | rows | CSV (MiB) | wall (s) | s per 1k rows | peak RSS, all '
    'processes (MiB) | largest process (MiB) | blessed | AUC |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |',
  ]
  lines += [_run_line(r) for r in runs]
  for engine, reason in result['skipped'].items():
    lines += ['', f'{engine}: not measured: {reason}']
  lines += _goal_lines(runs) + _component_lines(runs)
  lines += ['', f'Plot: `{plot_name}`.']
  return lines


def main():
  args = _arguments()
  runs, idle, skipped = _measure(args)
  result = {
    'date': datetime.datetime.now().isoformat(timespec='seconds'),
    'machine': machine.describe(),
    'workers': args.workers,
    'budget': BUDGET,
    'cluster_idle_mib': idle,
    'skipped': skipped,
    'runs': runs,
  }
  lines = _markdown(result, f'{os.path.basename(args.output)}.png')
  machine.write_results(args.output, result, '\n'.join(lines) + '\n')
  plot(runs, args.output + '.png')
  print('\n'.join(lines))


if __name__ == '__main__':
  main()
