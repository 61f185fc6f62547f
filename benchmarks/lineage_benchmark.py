"""Times the lineage queries on an ML Metadata store holding 200 runs, and
writes benchmarks/results/lineage.{json,md}.

Usage: python benchmarks/lineage_benchmark.py [SPEC] [--runs 200]
  [--workdir DIR] [--repeats 5] [--set KEY=VALUE ...]

The store is filled by the real pipeline: one cold run of SPEC (with the
--set overrides, by default a small tuner budget), then cached re-runs until
the store holds --runs runs, every one recorded by TFX as it records any run
(about a dozen executions each). Each query is then timed in-process on a
freshly opened store (the median of --repeats), and once as the user runs it
(`python -m pipeline lineage ...` in a new process, start-up included).
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time

import machine

from pipeline.cli import DEFAULT_SPEC, configure_process, quiet_logs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TARGET_SECONDS = 2.0
DEFAULT_SETS = (
  'tuner.max_trials=2',
  'tuner.max_epochs=2',
  'training.epochs=10',
)


def _fill(spec, runs: int, progress) -> list:
  """Runs the pipeline `runs` times into one store; returns the summaries."""
  from pipeline.runners import local as local_runner  # pylint: disable=g-import-not-at-top

  summaries = []
  for i in range(runs):
    started = time.monotonic()
    summary = local_runner.run_local(
      spec, progress=lambda _: None, summary_json=os.devnull
    ).to_json()
    if summary['status'] != 'succeeded':
      raise SystemExit(f'run {i + 1} failed: {summary["reason"]}')
    summaries.append(summary)
    if i == 0 or (i + 1) % 25 == 0:
      progress(f'  run {i + 1}/{runs}: {time.monotonic() - started:.1f}s')
  return summaries


def fill_store(spec_path: str, workdir: str, runs: int, sets):
  """A store under `workdir` filled with `runs` runs of the spec (with
  the `sets` overrides); (store path, the runs' summaries, seconds)."""
  from pipeline.definition import spec as spec_lib  # pylint: disable=g-import-not-at-top

  store_path = os.path.join(workdir, 'metadata.sqlite')
  sets = list(sets) + [
    f'runner.pipeline_root={workdir}/root',
    f'runner.metadata={store_path}',
    f'push.destination={workdir}/serving',
  ]
  spec = spec_lib.load_spec(
    spec_path, dict(spec_lib.parse_override(s) for s in sets)
  )
  print(f'filling {store_path} with {runs} runs of {spec.name}', flush=True)
  started = time.monotonic()
  summaries = _fill(spec, runs, lambda line: print(line, flush=True))
  return store_path, summaries, time.monotonic() - started


def _cli_seconds(args) -> float:
  started = time.monotonic()
  proc = subprocess.run(
    [sys.executable, '-m', 'pipeline', 'lineage', *args],
    cwd=REPO,
    capture_output=True,
    text=True,
    check=False,
  )
  if proc.returncode != 0:
    raise SystemExit(f'lineage {args[0]} failed: {proc.stderr.strip()}')
  return time.monotonic() - started


def _arguments() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('spec', nargs='?', default=DEFAULT_SPEC)
  parser.add_argument('--runs', type=int, default=200)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--workdir')
  parser.add_argument('--set', action='append', default=None)
  parser.add_argument(
    '--output', default=os.path.join(REPO, 'benchmarks', 'results', 'lineage')
  )
  return parser.parse_args()


def _time_queries(store_path: str, summaries: list, repeats: int) -> dict:
  """Each query's median seconds in process, on a freshly opened store."""
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top

  first, middle, last = (
    summaries[0],
    summaries[len(summaries) // 2],
    summaries[-1],
  )
  pushed = first['pushed_path']

  def fresh():
    return lineage.open_store(store_path)

  queries = {
    'runs (all runs)': lambda: lineage.list_runs(fresh()),
    'trace (pushed model dir)': lambda: lineage.trace(fresh(), pushed),
    'trace (a run id, mid-history)': lambda: lineage.trace(
      fresh(), middle['run_id']
    ),
    'diff (first vs last run)': lambda: lineage.diff(
      fresh(), first['run_id'], last['run_id']
    ),
    'graph (dot of the pushed model)': lambda: lineage.to_dot(
      lineage.trace(fresh(), pushed)
    ),
  }
  return {
    name: round(machine.median_seconds(fn, repeats), 4)
    for name, fn in queries.items()
  }


def _time_cli(store_path: str, summaries: list) -> dict:
  """Each command's wall seconds as a user runs it (a new process)."""
  first, last = summaries[0], summaries[-1]
  pushed = first['pushed_path']
  return {
    'runs': round(_cli_seconds(['runs', '--store', store_path, '--json']), 2),
    'trace': round(
      _cli_seconds(['trace', pushed, '--store', store_path, '--json']), 2
    ),
    'diff': round(
      _cli_seconds(
        [
          'diff',
          first['run_id'],
          last['run_id'],
          '--store',
          store_path,
          '--json',
        ]
      ),
      2,
    ),
  }


def _markdown(result: dict) -> list:
  """The results page's lines."""
  counts, timings = result['store'], result['in_process_median_seconds']
  lines = [
    '# Lineage queries on a store of 200 runs',
    '',
    f'Written by `python benchmarks/lineage_benchmark.py` on '
    f'{result["written"]} ({result["machine"]}).',
    '',
    f'Store: {counts["runs"]} runs of `{result["spec"]}` (one cold, the rest '
    f'cached re-runs), {counts["executions"]} executions, '
    f'{counts["artifacts"]} artifacts, {counts["contexts"]} contexts, '
    f'{counts["store_bytes"] / 1e6:.1f} MB of SQLite; filled in '
    f'{result["fill_seconds"]:.0f} s.',
    '',
    f'| query | median of {result["repeats"]}, in process | under '
    f'{TARGET_SECONDS:.0f} s |',
    '|---|---:|:---:|',
  ]
  for name, seconds in timings.items():
    lines.append(
      f'| {name} | {seconds:.3f} s | '
      f'{"yes" if seconds < TARGET_SECONDS else "NO"} |'
    )
  lines += [
    '',
    'As a user runs them (`python -m pipeline lineage ...`, a new '
    'process: interpreter and library start-up included):',
    '',
    '| command | wall |',
    '|---|---:|',
  ]
  lines += [
    f'| lineage {name} | {seconds:.1f} s |'
    for name, seconds in result['cli_wall_seconds'].items()
  ]
  return lines


def main() -> None:
  args = _arguments()
  configure_process()
  quiet_logs(verbose=False)
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top

  workdir = args.workdir or tempfile.mkdtemp(prefix='lineage_benchmark_')
  sets = list(args.set if args.set is not None else DEFAULT_SETS)
  store_path, summaries, fill_seconds = fill_store(
    args.spec, workdir, args.runs, sets
  )

  store = lineage.open_store(store_path)
  all_runs = lineage.list_runs(store)
  assert len(all_runs) == args.runs, len(all_runs)
  timings = _time_queries(store_path, summaries, args.repeats)
  cli = _time_cli(store_path, summaries)
  counts = {
    'runs': len(all_runs),
    'executions': len(store.get_executions()),
    'artifacts': len(store.get_artifacts()),
    'contexts': len(store.get_contexts()),
    'store_bytes': os.path.getsize(store_path),
  }
  result = {
    'written': datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec='seconds'
    ),
    'machine': f'{platform.machine()}, {os.cpu_count()} CPUs, Python '
    f'{platform.python_version()}',
    'spec': os.path.relpath(args.spec, REPO),
    'overrides': sets,
    'store': counts,
    'fill_seconds': round(fill_seconds, 1),
    'repeats': args.repeats,
    'target_seconds': TARGET_SECONDS,
    'in_process_median_seconds': timings,
    'all_under_target': all(t < TARGET_SECONDS for t in timings.values()),
    'cli_wall_seconds': cli,
  }
  lines = _markdown(result)
  machine.write_results(args.output, result, '\n'.join(lines) + '\n')
  print('\n'.join(lines))


if __name__ == '__main__':
  main()
