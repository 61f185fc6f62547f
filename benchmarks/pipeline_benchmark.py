"""Times a cold and a cached local pipeline run, with per-component
durations read from ML Metadata, and writes them to benchmarks/results/.

Usage: python benchmarks/pipeline_benchmark.py [SPEC] [--workdir DIR]
  [--set KEY=VALUE ...]

Each run is the real command line (`python -m pipeline run`) in a fresh
process, so wall times include interpreter and library start-up, as a user
sees them. The cold run starts from an empty pipeline root and metadata store.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import machine

from pipeline.cli import DEFAULT_SPEC

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(spec, sets, summary_path):
  args = [
    sys.executable,
    '-m',
    'pipeline',
    'run',
    spec,
    '--summary-json',
    summary_path,
  ]
  for value in sets:
    args += ['--set', value]
  started = time.monotonic()
  proc = subprocess.run(
    args, cwd=REPO, capture_output=True, text=True, check=False
  )
  wall = time.monotonic() - started
  if proc.returncode != 0:
    raise SystemExit(
      f'pipeline run failed (exit {proc.returncode}): '
      f'{proc.stderr.strip().splitlines()[-1:]}'
    )
  with open(summary_path) as f:
    return wall, json.load(f)


def _mlmd_durations(metadata_path, pipeline_name, run_id):
  """Per-component (state, seconds) straight from ML Metadata."""
  os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
  warnings.filterwarnings('ignore', category=FutureWarning, module=r'google\.')
  import ml_metadata as mlmd  # pylint: disable=g-import-not-at-top
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

  from pipeline.metadata import results  # pylint: disable=g-import-not-at-top

  store = mlmd.MetadataStore(
    tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path)
  )
  record = results.RunRecord(store, pipeline_name, run_id)
  return {
    c.id: {'state': c.state, 'seconds': c.seconds} for c in record.components()
  }


def _arguments() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('spec', nargs='?', default=DEFAULT_SPEC)
  parser.add_argument(
    '--workdir', help='where runs go (default: a temp dir, removed afterwards)'
  )
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE')
  parser.add_argument(
    '--output', default=os.path.join(REPO, 'benchmarks', 'results', 'pipeline')
  )
  return parser.parse_args()


def _cold_and_cached(args: argparse.Namespace):
  """Runs the spec cold, then cached: per run, (wall seconds, summary,
  components' states and seconds)."""
  workdir = args.workdir or tempfile.mkdtemp(prefix='pipeline-bench-')
  sets = [
    f'runner.pipeline_root={workdir}/root',
    f'runner.metadata={workdir}/metadata.sqlite',
    f'push.destination={workdir}/serving',
  ] + args.set
  try:
    cold_wall, cold = _run(args.spec, sets, f'{workdir}/cold.json')
    cached_wall, cached = _run(args.spec, sets, f'{workdir}/cached.json')
    metadata = cold['metadata']
    cold_components = _mlmd_durations(
      metadata, cold['pipeline'], cold['run_id']
    )
    cached_components = _mlmd_durations(
      metadata, cached['pipeline'], cached['run_id']
    )
  finally:
    if not args.workdir:
      shutil.rmtree(workdir, ignore_errors=True)
  return (
    (cold_wall, cold, cold_components),
    (cached_wall, cached, cached_components),
  )


def _markdown(result, overrides, cold_wall: float, cached_wall: float):
  """The results page's lines (the walls unrounded, as measured)."""
  cold, cached = result['cold'], result['cached']
  lines = [
    f'# Local pipeline benchmark ({result["date"]})',
    '',
    f'Machine: {result["machine"]["cpus"]} CPUs, {result["machine"]["cpu"]},'
    f' Python {result["machine"]["python"]}. Spec: `{result["spec"]}`'
    f'{" with " + ", ".join(overrides) if overrides else ""}.',
    '',
    '| run | wall time (s, whole process) | pipeline time (s, in process) |',
    '| --- | ---: | ---: |',
    f'| cold | {cold_wall:.1f} | {cold["in_process_seconds"]:.1f} |',
    f'| cached | {cached_wall:.1f} | {cached["in_process_seconds"]:.1f} |',
    '',
    f'Cached / cold wall time: {result["cached_over_cold_wall"]:.1%}. '
    f'Components executed on the cached run: '
    f'{", ".join(cached["executed"]) or "none"}.',
    '',
    '| component | cold state | cold (s) | cached state | cached (s) |',
    '| --- | --- | ---: | --- | ---: |',
  ]
  for name, c in cold['components'].items():
    k = cached['components'].get(name, {'state': '-', 'seconds': 0})
    lines.append(
      f'| {name} | {c["state"]} | {c["seconds"]:.1f} | '
      f'{k["state"]} | {k["seconds"]:.1f} |'
    )
  return lines


def main():
  args = _arguments()
  (
    (cold_wall, cold, cold_components),
    (cached_wall, cached, cached_components),
  ) = _cold_and_cached(args)
  result = {
    'date': datetime.datetime.now().isoformat(timespec='seconds'),
    'machine': machine.describe(),
    'spec': os.path.relpath(args.spec, REPO),
    'overrides': args.set,
    'cold': {
      'wall_seconds': round(cold_wall, 2),
      'in_process_seconds': cold['total_seconds'],
      'blessed': cold['blessed'],
      'metrics': cold['metrics'],
      'components': cold_components,
    },
    'cached': {
      'wall_seconds': round(cached_wall, 2),
      'in_process_seconds': cached['total_seconds'],
      'executed': [
        k
        for k, v in cached_components.items()
        if v['state'] != 'cached' and not k.endswith('_resolver')
      ],
      'components': cached_components,
    },
    'cached_over_cold_wall': round(cached_wall / cold_wall, 4),
  }
  lines = _markdown(result, args.set, cold_wall, cached_wall)
  machine.write_results(args.output, result, '\n'.join(lines) + '\n')
  print('\n'.join(lines))
  print(f'\nwritten: {args.output}.json, {args.output}.md')


if __name__ == '__main__':
  main()
