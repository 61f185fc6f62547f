"""Times the commands that need no TensorFlow against TensorFlow's own import,
and writes benchmarks/results/cli.{json,md}.

Usage: python benchmarks/cli_benchmark.py [--store STORE] [--repeats 7]

Each command runs as a user runs it, in a fresh process, start-up included:
`python -c "import tensorflow"` (the floor of any command that loads it),
`python -m pipeline validate` on the default spec, `python -m pipeline
lineage runs` on STORE (default: the default spec's store after `make run`;
an empty store made here when there is none), and `--help`. One untimed run
of each warms the file cache first; the figure is the median of --repeats.
The target (issue 13): validate takes at most a third of the import.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import machine

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_STORE = os.path.join(REPO, 'runs', 'breast-cancer', 'metadata.sqlite')
TARGET_RATIO = 1 / 3


def _time(argv, repeats):
  env = {**os.environ, 'TF_USE_LEGACY_KERAS': '1'}
  seconds = []
  for i in range(repeats + 1):
    started = time.perf_counter()
    proc = subprocess.run(
      argv, cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
      raise SystemExit(
        f'{" ".join(argv[1:])} failed (exit {proc.returncode}):'
        f' {proc.stderr.strip().splitlines()[-1:]}'
      )
    if i:  # the first run warms the file cache
      seconds.append(elapsed)
  return {
    'median_s': round(statistics.median(seconds), 3),
    'min_s': round(min(seconds), 3),
    'max_s': round(max(seconds), 3),
    'runs': len(seconds),
  }


def _empty_store(directory):
  import ml_metadata as mlmd  # pylint: disable=g-import-not-at-top
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top

  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = os.path.join(directory, 'metadata.sqlite')
  mlmd.MetadataStore(config)
  return config.sqlite.filename_uri


def _commands(store):
  """The timed commands, each as an argv run in a fresh process."""
  py = sys.executable
  return {
    'import tensorflow': [py, '-c', 'import tensorflow'],
    'validate': [py, '-m', 'pipeline', 'validate'],
    'lineage runs': [
      py,
      '-m',
      'pipeline',
      'lineage',
      'runs',
      '--store',
      store,
    ],
    '--help': [py, '-m', 'pipeline', '--help'],
  }


def _markdown(report, ratios, repeats):
  """cli.md: the timings as a table and whether validate met the target."""
  timings = report['timings']
  lines = [
    '# Command start-up: commands that need no TensorFlow',
    '',
    f'{report["date"]}, {report["machine"]["cpus"]} CPUs '
    f'({report["machine"]["cpu"]}), Python {report["machine"]["python"]}. '
    f'Each command in a fresh process, median of {repeats} runs after '
    f'one warm-up; `lineage runs` on the {report["lineage_store"]} store.',
    '',
    '| command | median | min | max | / import tensorflow |',
    '| --- | --- | --- | --- | --- |',
  ]
  for name, t in timings.items():
    ratio = ratios.get(name)
    lines.append(
      f'| `{name}` | {t["median_s"]:.3f} s | {t["min_s"]:.3f} s | '
      f'{t["max_s"]:.3f} s | '
      f'{"1" if ratio is None else f"{ratio:.2f}"} |'
    )
  lines += [
    '',
    f'Target: `validate` at most {TARGET_RATIO:.2f} x the import: '
    f'{"met" if report["target"]["met"] else "NOT met"} '
    f'({ratios["validate"]:.2f}).',
    '',
  ]
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--store', help='ML Metadata store for `lineage runs`')
  parser.add_argument('--repeats', type=int, default=7)
  parser.add_argument(
    '--output', default=os.path.join(REPO, 'benchmarks', 'results', 'cli')
  )
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as scratch:
    store = args.store or (
      DEFAULT_STORE if os.path.isfile(DEFAULT_STORE) else _empty_store(scratch)
    )
    store_kind = (
      'empty' if store.startswith(scratch) else os.path.relpath(store, REPO)
    )
    timings = {}
    for name, argv in _commands(store).items():
      timings[name] = _time(argv, args.repeats)
      print(f'{name:<18} {timings[name]["median_s"]:.3f} s', flush=True)
  floor = timings['import tensorflow']['median_s']
  ratios = {
    name: round(t['median_s'] / floor, 3)
    for name, t in timings.items()
    if name != 'import tensorflow'
  }
  report = {
    'date': datetime.datetime.now().isoformat(timespec='seconds'),
    'machine': machine.describe(),
    'lineage_store': store_kind,
    'timings': timings,
    'ratio_to_import_tensorflow': ratios,
    'target': {
      'validate_at_most': round(TARGET_RATIO, 3),
      'met': ratios['validate'] <= TARGET_RATIO,
    },
  }
  with open(args.output + '.json', 'w') as f:
    json.dump(report, f, indent=2)
  with open(args.output + '.md', 'w') as f:
    f.write(_markdown(report, ratios, args.repeats))
  print(f'wrote {args.output}.json and .md')


if __name__ == '__main__':
  main()
