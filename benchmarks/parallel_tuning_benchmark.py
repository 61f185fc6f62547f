"""The Tuner with trials one at a time against trials in parallel processes
(`tuner.parallel_trials`), on the default spec, cold, run alternately.

Usage: python benchmarks/parallel_tuning_benchmark.py [--rounds N]
  [--parallel 2] [--output PREFIX]

Each round runs the default spec twice in fresh processes with an empty
root, store and $TMPDIR: once with `tuner.parallel_trials=1`, once with
`--parallel` (the order alternates). Per run: the Tuner's seconds as ML
Metadata recorded them, its trials' seconds as the oracle timed them, the
whole run's wall time, the search's trials and epochs, its best objective,
and the blessing. Writes PREFIX.json and
PREFIX.md (default benchmarks/results/parallel_tuning).
"""

import argparse
import datetime
import glob
import json
import os
import shutil
import statistics
import tempfile

import cold_runs
import machine


def one_run(parallel, base, index):
  workdir = os.path.join(base, f'p{parallel}-{index}')
  tmpdir = os.path.join(workdir, 'tmp')
  os.makedirs(tmpdir)
  timed, components, outcome = cold_runs.run_ours(
    workdir, cold_runs.cold_env(tmpdir), [f'tuner.parallel_trials={parallel}']
  )
  search = outcome['search']
  reports = glob.glob(
    os.path.join(
      workdir, 'root', 'Tuner', 'tuner_results', '*', 'search_report.json'
    )
  )
  with open(reports[0]) as f:
    trials = [t for t in json.load(f)['trials'] if t['seconds'] is not None]
  # A process's first trial is its lowest id (the oracle hands ids out in
  # order): it pays for reading the data and the first traces.
  firsts = {
    min(
      (t for t in trials if t['process'] == p), key=lambda t: int(t['trial_id'])
    )['trial_id']
    for p in {t['process'] for t in trials}
  }
  result = {
    'parallel_trials': parallel,
    'round': index,
    'trial_seconds_sum': round(sum(t['seconds'] for t in trials), 2),
    'first_trial_seconds': round(
      statistics.mean(t['seconds'] for t in trials if t['trial_id'] in firsts),
      2,
    ),
    'other_trial_median_seconds': round(
      statistics.median(
        t['seconds'] for t in trials if t['trial_id'] not in firsts
      ),
      2,
    ),
    'tuner_seconds': components['Tuner'],
    'wall_seconds': round(timed.wall, 2),
    'tree_peak_rss_mib': round(timed.tree_peak_mib),
    'trials_run': search['trials_run'],
    'trials_by_epochs': search['trials_by_epochs'],
    'epochs_trained': search['epochs_trained'],
    'best_score': search['best']['score'],
    'blessed': outcome['blessed'],
    'auc': outcome['metrics'].get('auc'),
  }
  shutil.rmtree(workdir)
  print(
    f'parallel_trials={parallel} round {index}: Tuner '
    f'{result["tuner_seconds"]:.1f} s, best {result["best_score"]:.4f}',
    flush=True,
  )
  return result


def _arguments() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--parallel', type=int, default=2)
  parser.add_argument(
    '--output',
    default=os.path.join(
      cold_runs.REPO, 'benchmarks', 'results', 'parallel_tuning'
    ),
  )
  return parser.parse_args()


def _median(runs, n, key):
  """The median of `key` over the runs with `n` parallel trials."""
  return round(
    statistics.median(r[key] for r in runs if r['parallel_trials'] == n), 2
  )


def _run_line(r) -> str:
  by_epochs = ', '.join(f'{n} x {e}' for e, n in r['trials_by_epochs'].items())
  return (
    f'| {r["parallel_trials"]} | {r["round"]} | {r["tuner_seconds"]:.1f} '
    f'| {r["trial_seconds_sum"]:.1f} | {r["first_trial_seconds"]:.2f} | '
    f'{r["other_trial_median_seconds"]:.2f} | {r["wall_seconds"]:.1f} | '
    f'{r["tree_peak_rss_mib"]} | '
    f'{r["trials_run"]} | {by_epochs} | {r["epochs_trained"]} | '
    f'{r["best_score"]:.4f} | {r["blessed"]} | {r["auc"]:.4f} |'
  )


def _markdown(result, parallel_trials: int) -> list:
  """The results page's lines."""
  m, runs = result['machine'], result['runs']
  serial = result['tuner_median']['1']
  parallel = result['tuner_median'][str(parallel_trials)]
  lines = [
    f'# Parallel tuning trials ({result["date"]})',
    '',
    f'Machine: {m["cpus"]} CPUs, {m["cpu"]}, Python {m["python"]}. The '
    f'default spec, cold, {result["rounds"]} rounds alternating '
    f'`tuner.parallel_trials=1` and `={parallel_trials}`.',
    '',
    "Trial seconds are the oracle's, from handing a trial out to hearing "
    "its end, in whichever process ran it; a process's first trial also "
    'reads the data and makes the first traces.',
    '',
    '| parallel_trials | round | Tuner (s) | trial seconds, sum | first '
    'trial per process (s) | other trials, median (s) | run wall (s) | '
    'peak RSS, all processes (MiB) | trials | trials by epochs | epochs '
    'trained | best val_loss | blessed | AUC |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | '
    '---: | ---: | --- | ---: |',
  ]
  lines += [_run_line(r) for r in runs]
  other = 'other_trial_median_seconds'
  lines += [
    '',
    f'Tuner median: {serial} s with 1, {parallel} s with '
    f"{parallel_trials}: ratio {result['ratio']:.2f}. Other trials' "
    f'median: {_median(runs, 1, other)} s with 1, '
    f'{_median(runs, parallel_trials, other)} s with '
    f'{parallel_trials}.',
  ]
  return lines


def main():
  args = _arguments()
  base = tempfile.mkdtemp(prefix='parallel-tuning-bench-')
  runs = []
  try:
    for index in range(args.rounds):
      order = (1, args.parallel) if index % 2 == 0 else (args.parallel, 1)
      runs.extend(one_run(n, base, index) for n in order)
  finally:
    shutil.rmtree(base, ignore_errors=True)
  serial = _median(runs, 1, 'tuner_seconds')
  parallel = _median(runs, args.parallel, 'tuner_seconds')
  result = {
    'date': datetime.datetime.now().isoformat(timespec='seconds'),
    'machine': machine.describe(),
    'rounds': args.rounds,
    'runs': runs,
    'tuner_median': {'1': serial, str(args.parallel): parallel},
    'ratio': round(parallel / serial, 3),
  }
  lines = _markdown(result, args.parallel)
  machine.write_results(args.output, result, '\n'.join(lines) + '\n')
  print('\n'.join(lines))


if __name__ == '__main__':
  main()
