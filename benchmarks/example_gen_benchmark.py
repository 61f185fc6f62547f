"""CsvExampleGen's throughput: this project's executor against the previous
one (cell by cell in Python, the last commit before the vectorised reader)
and TFX's stock CsvExampleGen, on the scaling benchmark's data.

Usage: python benchmarks/example_gen_benchmark.py [--rows 1000000]
  [--previous-rows N] [--stock-rows 100000] [--workers 2] [--output PREFIX]

The data: `scaling_benchmark.make_data` (the bundled breast-cancer rows
resampled with noise; 31 numeric columns), written once per size. The
format is the pipeline's: every column declared, as the pre-flight
declares them (FLOAT, the label INT); this executor also runs once with
every kind inferred. The output config is the default spec's hash split
(train 4, eval 1).

Each run is the executor's Do in this process, a real Beam pipeline on the
DirectRunner in multi_processing mode with `--workers` processes, as the
scaling benchmark ran the pipeline. Wall seconds include Beam starting and
stopping its workers (about 10 s on two loaded CPUs), as the component's
time in a pipeline does; CPU seconds (this process and the workers) are
less swayed by other jobs on a shared machine. The previous executor is taken from git at
PREVIOUS into a temporary module; it and TFX's run `--previous-rows` and
`--stock-rows` rows (TFX's takes minutes per million), and the ratio
compares rows per second. Every run's rows per split are read back; this
executor's must equal the previous one's where both ran the same rows.

Writes PREFIX.json and PREFIX.md (default benchmarks/results/example_gen).
"""

import argparse
import datetime
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import machine
import scaling_benchmark

REPO = machine.REPO
# The last commit whose components/csv_example_gen.py read cell by cell.
PREVIOUS = '5412fad96fb27be5f53f1eb808f0f2b49fd22441'
SPLITS = {'train': 4, 'eval': 1}


def importable(folder: str) -> None:
  """Modules in the repository and in `folder` importable here and by
  Beam's workers (they unpickle the DoFns by module name); Keras 2, as the
  CLI chooses it."""
  os.environ['TF_USE_LEGACY_KERAS'] = '1'
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  os.environ['PYTHONPATH'] = os.pathsep.join(
    p for p in (folder, REPO, os.environ.get('PYTHONPATH')) if p
  )
  sys.path[:0] = [folder, REPO]


def previous_executor(folder: str):
  """The executor at PREVIOUS, as a module in `folder`."""
  source = subprocess.run(
    ['git', '-C', REPO, 'show', f'{PREVIOUS}:components/csv_example_gen.py'],
    capture_output=True,
    text=True,
    check=True,
  ).stdout
  with open(os.path.join(folder, 'previous_csv_example_gen.py'), 'w') as f:
    f.write(source)
  import previous_csv_example_gen  # pylint: disable=g-import-not-at-top

  return previous_csv_example_gen.Executor


def declared_format():
  """The CsvFormat the pipeline hands its ExampleGen: every column's kind
  (the bundled rows' kinds: the resampled rows keep them)."""
  # pylint: disable=g-import-not-at-top
  import csv

  from components import csv_format

  with open(scaling_benchmark.DATA, newline='') as f:
    records = list(csv.reader(f))
  return csv_format.CsvFormat(
    columns=csv_format.infer_kinds(
      records[0], records[1:], csv_format.DEFAULT_NULL_VALUES
    )
  )


def cpu_seconds() -> float:
  """CPU time of this process and its finished children (Beam's workers
  are, once a pipeline is done): less swayed by other jobs than wall time."""
  own = resource.getrusage(resource.RUSAGE_SELF)
  children = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(executor_class, data: str, out: str, workers: int, fmt=None):
  """One Do over data/data.csv: wall and CPU seconds, and rows per split
  written."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from tfx.proto import example_gen_pb2
  from tfx.types import standard_artifacts, standard_component_specs
  from tfx.utils import proto_utils

  from components import csv_example_gen

  examples = standard_artifacts.Examples()
  examples.uri = out
  props = {
    standard_component_specs.INPUT_BASE_KEY: data,
    standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(
      example_gen_pb2.Input(
        splits=[
          example_gen_pb2.Input.Split(name='single_split', pattern='data.csv')
        ]
      )
    ),
    standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(
      example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
          splits=[
            example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
            for name, buckets in SPLITS.items()
          ]
        )
      )
    ),
  }
  if fmt is not None:
    props[standard_component_specs.CUSTOM_CONFIG_KEY] = (
      proto_utils.proto_to_json(csv_example_gen.custom_config(fmt))
    )
  executor = executor_class(
    executor_class.Context(
      beam_pipeline_args=[
        '--direct_running_mode=multi_processing',
        f'--direct_num_workers={workers}',
      ]
    )
  )
  started, cpu = time.monotonic(), cpu_seconds()
  executor.Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, props)
  wall, cpu = time.monotonic() - started, cpu_seconds() - cpu
  counts = {}
  for name in SPLITS:
    files = tf.io.gfile.glob(os.path.join(out, f'Split-{name}', '*'))
    counts[name] = int(
      tf.data.TFRecordDataset(files, 'GZIP').reduce(0, lambda n, _: n + 1)
    )
  shutil.rmtree(out)
  return wall, cpu, counts


def _arguments() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rows', type=int, default=1_000_000)
  parser.add_argument(
    '--previous-rows',
    type=int,
    default=None,
    help='rows for the previous executor (default --rows)',
  )
  parser.add_argument('--stock-rows', type=int, default=100_000)
  parser.add_argument('--workers', type=int, default=2)
  parser.add_argument(
    '--output',
    default=os.path.join(REPO, 'benchmarks', 'results', 'example_gen'),
  )
  return parser.parse_args()


def _plan(args: argparse.Namespace, base: str) -> list:
  """(name, executor class, rows, format) of each run."""
  # pylint: disable=g-import-not-at-top
  from tfx.components.example_gen.csv_example_gen import executor as stock

  from components import csv_example_gen

  previous = previous_executor(base)
  declared = declared_format()
  return [
    ('this executor', csv_example_gen.Executor, args.rows, declared),
    (
      'this executor, kinds inferred',
      csv_example_gen.Executor,
      args.rows,
      None,
    ),
    ('previous executor', previous, args.previous_rows or args.rows, declared),
    ("TFX's CsvExampleGen", stock.Executor, args.stock_rows, None),
  ]


def _run_all(plan: list, base: str, workers: int) -> list:
  """Each planned run's figures, the data written once per size."""
  folders = {}
  for rows in sorted({p[2] for p in plan}):
    folders[rows] = os.path.join(base, f'data-{rows}')
    scaling_benchmark.make_data(rows, folders[rows])
  runs = []
  for name, executor, rows, fmt in plan:
    load = os.getloadavg()[0]
    wall, cpu, counts = run(
      executor, folders[rows], os.path.join(base, 'out'), workers, fmt
    )
    mib = os.path.getsize(os.path.join(folders[rows], 'data.csv')) / 2**20
    runs.append(
      {
        'executor': name,
        'rows': rows,
        'csv_mib': round(mib, 1),
        'wall_seconds': round(wall, 2),
        'cpu_seconds': round(cpu, 1),
        'rows_per_second': round(rows / wall),
        'mib_per_second': round(mib / wall, 2),
        'load_average_at_start': round(load, 2),
        'rows_per_split': counts,
      }
    )
    print(
      f'{name}: {rows} rows, {wall:.1f} s ({cpu:.0f} CPU s), load {load:.1f}',
      flush=True,
    )
  return runs


def _compare(runs: list) -> None:
  """Checks this executor splits the rows as the previous one did (same
  rows), and adds each run's throughput against the previous one's."""
  ours, previous_run = runs[0], runs[2]
  if ours['rows'] == previous_run['rows'] and (
    ours['rows_per_split'] != previous_run['rows_per_split']
  ):
    raise SystemExit(
      f'the executors split the rows differently: '
      f'{ours["rows_per_split"]} against '
      f'{previous_run["rows_per_split"]}'
    )
  for r in runs:
    r['throughput_vs_previous'] = round(
      r['rows_per_second'] / previous_run['rows_per_second'], 1
    )


def _markdown(result: dict) -> list:
  """The results page's lines."""
  m = result['machine']
  lines = [
    f'# CsvExampleGen throughput ({result["date"]})',
    '',
    f'Machine: {m["cpus"]} CPUs, {m["cpu"]}, Python {m["python"]}, shared '
    'with other jobs (load average at each start below). Code: '
    f'{result["code"]}; previous executor: {PREVIOUS[:7]}. '
    f'DirectRunner multi_processing, {result["workers"]} workers; the '
    "executor's Do in process, Beam's worker start and stop included. "
    'Data: `scaling_benchmark.make_data` (31 numeric columns).',
    '',
    '| executor | rows | CSV (MiB) | wall (s) | CPU (s) | rows/s | MiB/s | '
    '× previous (rows/s) | load |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ]
  for r in result['runs']:
    lines.append(
      f'| {r["executor"]} | {r["rows"]:,} | {r["csv_mib"]} | '
      f'{r["wall_seconds"]} | {r["cpu_seconds"]} | '
      f'{r["rows_per_second"]:,} | '
      f'{r["mib_per_second"]} | {r["throughput_vs_previous"]} | '
      f'{r["load_average_at_start"]} |'
    )
  return lines


def main():
  args = _arguments()
  base = tempfile.mkdtemp(prefix='example-gen-bench-')
  importable(base)
  try:
    runs = _run_all(_plan(args, base), base, args.workers)
  finally:
    shutil.rmtree(base, ignore_errors=True)
  _compare(runs)
  result = {
    'date': datetime.datetime.now().isoformat(timespec='seconds'),
    'machine': machine.describe(),
    'code': machine.code_version(),
    'previous': PREVIOUS,
    'workers': args.workers,
    'runs': runs,
  }
  lines = _markdown(result)
  machine.write_results(args.output, result, '\n'.join(lines) + '\n')
  print('\n'.join(lines))


if __name__ == '__main__':
  main()
