"""This project's default pipeline against a plain TFX pipeline doing the
same job on the same data, cold, run alternately.

Usage: python benchmarks/plain_tfx_benchmark.py [--rounds N]
  [--output PREFIX]

The plain pipeline is TFX 1.16's own penguin example as it ships
(tfx/examples/penguin/penguin_pipeline_local.create_pipeline: its
components, tuning on, its DirectRunner arguments) with a module file in
the style of its penguin_utils_keras.py written for the default data
(benchmarks/plain_tfx/). Ours is `python -m pipeline run` on the default
spec. Every run is a fresh process with an empty pipeline root, store and
$TMPDIR; the order alternates each round (ours first, then the plain one
first) so that neither always runs on a warmer machine. Per component, the
seconds ML Metadata recorded; per run, the wall time of the whole process,
its peak memory (the largest process) and what it left in $TMPDIR.
Writes PREFIX.json and PREFIX.md (default benchmarks/results/plain_tfx).
"""

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import warnings

import cold_runs
import machine

REPO = cold_runs.REPO
PLAIN = os.path.join(REPO, 'benchmarks', 'plain_tfx', 'run_plain.py')
PLAIN_NAME = 'plain-tfx-breast-cancer'  # run_plain.py's pipeline name


def run_plain(workdir, env):
  timed = cold_runs.Timed([sys.executable, PLAIN, workdir], env)
  if timed.code != 0:
    raise SystemExit(
      f'plain TFX pipeline failed (exit {timed.code}): {timed.stderr_tail}'
    )
  components, outcome = cold_runs.record(
    f'{workdir}/metadata.sqlite', PLAIN_NAME
  )
  return timed, components, outcome


def one_run(kind, base, index):
  workdir = os.path.join(base, f'{kind}-{index}')
  tmpdir = os.path.join(workdir, 'tmp')
  os.makedirs(tmpdir)
  env = cold_runs.cold_env(tmpdir)
  timed, components, outcome = (
    cold_runs.run_ours if kind == 'ours' else run_plain
  )(workdir, env)
  result = {
    'kind': kind,
    'round': index,
    'wall_seconds': round(timed.wall, 2),
    'peak_rss_mib': round(timed.peak_mib),
    'tree_peak_rss_mib': round(timed.tree_peak_mib),
    'tmpdir_left_mib': round(cold_runs.tree_mib(tmpdir), 1),
    'components': components,
    **outcome,
  }
  shutil.rmtree(workdir)
  print(
    f'{kind} round {index}: {timed.wall:.1f} s, blessed {outcome["blessed"]}',
    flush=True,
  )
  return result


def _median(values):
  return round(statistics.median(values), 2) if values else None


def _arguments() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rounds', type=int, default=2)
  parser.add_argument(
    '--output', default=os.path.join(REPO, 'benchmarks', 'results', 'plain_tfx')
  )
  return parser.parse_args()


def _alternate(rounds: int) -> list:
  """Every round's runs, ours and the plain one, the first alternating."""
  base = tempfile.mkdtemp(prefix='plain-tfx-bench-')
  runs = []
  try:
    for index in range(rounds):
      order = ('ours', 'plain') if index % 2 == 0 else ('plain', 'ours')
      for kind in order:
        runs.append(one_run(kind, base, index))
  finally:
    shutil.rmtree(base, ignore_errors=True)
  return runs


def _result(runs: list, rounds: int):
  """The figures, and the per-round wall ratios unrounded."""
  ours = [r for r in runs if r['kind'] == 'ours']
  plain = [r for r in runs if r['kind'] == 'plain']
  ratios = [
    o['wall_seconds'] / p['wall_seconds']
    for o, p in zip(ours, plain, strict=True)
  ]
  names = list(dict.fromkeys([*plain[0]['components'], *ours[0]['components']]))
  table = {
    n: {
      'plain': _median(
        [r['components'][n] for r in plain if n in r['components']]
      ),
      'ours': _median(
        [r['components'][n] for r in ours if n in r['components']]
      ),
    }
    for n in names
  }
  return {
    'date': datetime.datetime.now().isoformat(timespec='seconds'),
    'machine': machine.describe(),
    'rounds': rounds,
    'runs': runs,
    'wall_median': {
      'ours': _median([r['wall_seconds'] for r in ours]),
      'plain': _median([r['wall_seconds'] for r in plain]),
    },
    'ratio_per_round': [round(r, 3) for r in ratios],
    'ratio_worst': round(max(ratios), 3),
    'components_median': table,
  }, ratios


def _run_line(r) -> str:
  metrics = r['metrics']
  accuracy = metrics.get('binary_accuracy', metrics.get('accuracy'))
  auc = metrics.get('auc')
  return (
    f'| {r["kind"]} | {r["round"]} | {r["wall_seconds"]:.1f} | '
    f'{r["peak_rss_mib"]} | {r["tmpdir_left_mib"]:.1f} | {r["blessed"]} | '
    f'{r["pushed"]} | {"" if auc is None else f"{auc:.4f}"} | '
    f'{"" if accuracy is None else f"{accuracy:.4f}"} |'
  )


def _markdown(result, ratios) -> list:
  """The results page's lines."""
  m = result['machine']
  lines = [
    f'# Ours against plain TFX ({result["date"]})',
    '',
    f'Machine: {m["cpus"]} CPUs, {m["cpu"]}, Python {m["python"]}. '
    f'{result["rounds"]} rounds, alternating, each run cold (fresh process, '
    "empty root, store and $TMPDIR). Plain TFX: TFX 1.16's penguin "
    'pipeline definition unchanged, tuning on, with '
    '`benchmarks/plain_tfx/breast_cancer_utils.py`. Ours: '
    '`python -m pipeline run pipeline/specs/breast_cancer.yaml`.',
    '',
    '| run | round | wall (s) | peak RSS (MiB) | left in $TMPDIR (MiB) | '
    'blessed | pushed | AUC | accuracy |',
    '| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |',
  ]
  lines += [_run_line(r) for r in result['runs']]
  lines += [
    '',
    f'Wall time, ours / plain, per round: '
    f'{", ".join(f"{x:.2f}" for x in ratios)} (worst '
    f'{result["ratio_worst"]:.2f}; medians {result["wall_median"]["ours"]}'
    f' s against {result["wall_median"]["plain"]} s).',
    '',
    '| component | plain TFX (s, median) | ours (s, median) |',
    '| --- | ---: | ---: |',
  ]
  for name, row in result['components_median'].items():
    lines.append(
      f'| {name} | {"-" if row["plain"] is None else row["plain"]}'
      f' | {"-" if row["ours"] is None else row["ours"]} |'
    )
  return lines


def main():
  args = _arguments()
  warnings.filterwarnings('ignore', category=FutureWarning, module=r'google\.')
  sys.path.insert(0, REPO)
  result, ratios = _result(_alternate(args.rounds), args.rounds)
  lines = _markdown(result, ratios)
  machine.write_results(args.output, result, '\n'.join(lines) + '\n')
  print('\n'.join(lines))
  print(f'\nwritten: {args.output}.json, {args.output}.md')


if __name__ == '__main__':
  main()
