"""Where a cold local run's time goes: per component, per kind of work.

Usage: python benchmarks/profile_benchmark.py [SPEC] [--set KEY=VALUE ...]
  [--interval SECONDS] [--output PREFIX]

Runs the real command (`python -m pipeline run`) in a fresh process from an
empty pipeline root and store, with a sampling profiler in that process: a
timer signal that looks at the main thread's Python stack every
`--interval` seconds (the local runner runs every component, Beam's
in-memory DirectRunner included, on the main thread). Each sample is charged to the
component the TFX launcher is running (or start-up before the first,
between/after for the rest) and to the first kind of work, in this order,
that any frame of the stack belongs to:

  imports            importlib (a module loaded on first use)
  model loading      tf.saved_model.load / SavedModel loaders
  graph tracing      tf.function tracing, AutoGraph, FuncGraph building
  saving artifacts   SavedModel / checkpoint / weights writing
  ml metadata        ML Metadata store calls
  training           Keras fit/evaluate/predict loops
  beam execution     Beam runners executing a pipeline (the Beam work)
  beam construction  building a Beam pipeline (applying transforms)
  model building     Keras layers and models being built
  keras tuner        Keras Tuner's own bookkeeping (oracle, trials)
  other              anything else (TFX launcher, file I/O, Python)

A long C call is charged to the Python frame that made it (Sampler).
Totals per component agree with ML Metadata's durations (both are
written); the sampling itself costs a few percent of the run.
Writes PREFIX.json and PREFIX.md (default benchmarks/results/profile).
"""

import argparse
import collections
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (kind, markers): a frame belongs to the kind when its file path contains
# a marker (or 'path:function' names both). First kind that matches wins.
KINDS = [
  ('imports', ['<frozen importlib._bootstrap']),
  (
    'model loading',
    [
      'tensorflow/python/saved_model/load.py',
      'tensorflow/python/saved_model/loader_impl.py',
      'tf_keras/src/saving/legacy/saved_model/load.py',
    ],
  ),
  (
    'graph tracing',
    [
      'tensorflow/python/framework/func_graph.py',
      'polymorphic_function/tracing_compilation.py:trace_function',
      'tensorflow/python/autograph/',
      'tensorflow/python/framework/importer.py',
    ],
  ),
  (
    'saving artifacts',
    [
      'tensorflow/python/saved_model/save.py',
      'tensorflow/python/saved_model/builder_impl.py',
      'tensorflow/python/checkpoint/',
      'tf_keras/src/saving/',
    ],
  ),
  ('ml metadata', ['ml_metadata/']),
  (
    'training',
    [
      'tf_keras/src/engine/training.py:fit',
      'tf_keras/src/engine/training.py:evaluate',
      'tf_keras/src/engine/training.py:predict',
    ],
  ),
  ('beam execution', ['apache_beam/runners/']),
  (
    'beam construction',
    ['apache_beam/pipeline.py', 'apache_beam/transforms/ptransform.py'],
  ),
  ('model building', ['tf_keras/src/']),
  ('keras tuner', ['keras_tuner/']),
]
KIND_NAMES = [k for k, _ in KINDS] + ['other']
START, BETWEEN = '(start-up)', '(between components, shutdown)'


def _kind(frames) -> str:
  paths = [(f.f_code.co_filename, f.f_code.co_name) for f in frames]
  for kind, markers in KINDS:
    for marker in markers:
      path, _, function = marker.partition(':')
      if any(path in p and (not function or function == n) for p, n in paths):
        return kind
  return 'other'


def _component(frames) -> str:
  """The id of the node the TFX launcher runs, if any."""
  for frame in frames:
    if frame.f_code.co_name == 'launch' and frame.f_code.co_filename.endswith(
      'portable/launcher.py'
    ):
      launcher = frame.f_locals.get('self')
      node = getattr(launcher, '_pipeline_node', None)
      if node is not None:
        return node.node_info.id
  return ''


class Sampler:
  """Samples the main thread's stack every `interval` seconds of wall time.

  A SIGALRM timer: CPython runs the handler on the main thread at its next
  bytecode, with that thread's current frame, so a long C call (a
  TensorFlow op, a compression) is charged to the Python frame that made it
  when it returns. (A sampling thread would instead be charged by whichever
  frame held the GIL when it got it: calls that release the GIL soak up the
  time of the pure-Python work around them.) Syscalls interrupted by the
  signal are restarted.
  """

  def __init__(self, interval: float, folded: bool = False):
    self.interval = interval
    self.folded = collections.Counter() if folded else None
    self.seconds = collections.defaultdict(
      lambda: collections.defaultdict(float)
    )
    self.order = []
    self._seen_component = False
    self._last = None

  def start(self):
    self._last = time.monotonic()
    signal.signal(signal.SIGALRM, self._sample)
    signal.siginterrupt(signal.SIGALRM, False)
    signal.setitimer(signal.ITIMER_REAL, self.interval, self.interval)

  def stop(self):
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)

  def _sample(self, signum, frame):
    del signum
    now = time.monotonic()
    frames = []
    while frame is not None:
      frames.append(frame)
      frame = frame.f_back
    component = _component(frames)
    if component:
      self._seen_component = True
    else:
      component = BETWEEN if self._seen_component else START
    if component not in self.seconds:
      self.order.append(component)
    kind = _kind(frames)
    self.seconds[component][kind] += now - self._last
    if self.folded is not None:
      self.folded[
        ';'.join(
          [component, kind]
          + [
            f'{os.path.basename(f.f_code.co_filename)}:{f.f_code.co_name}'
            for f in reversed(frames)
          ]
        )
      ] += now - self._last
    self._last = now


def child(output: str, interval: float, folded: str, argv) -> None:
  """In the profiled process: sample while the CLI runs, then write."""
  sampler = Sampler(interval, folded=bool(folded))
  sampler.start()
  sys.path.insert(0, REPO)
  from pipeline import cli  # pylint: disable=g-import-not-at-top

  code = cli.main(argv)
  sampler.stop()
  if folded:  # flame graph input: stack, then milliseconds
    with open(folded, 'w') as f:
      for stack, seconds in sampler.folded.most_common():
        f.write(f'{stack} {round(seconds * 1000)}\n')
  with open(output, 'w') as f:
    json.dump(
      {
        'exit_code': code,
        'order': sampler.order,
        'seconds': {c: dict(k) for c, k in sampler.seconds.items()},
      },
      f,
    )


def _table(order, seconds, durations):
  lines = [
    '| component | ML Metadata (s) | sampled (s) | '
    + ' | '.join(KIND_NAMES)
    + ' |',
    '| --- | ---: | ---: | ' + ' | '.join('---:' for _ in KIND_NAMES) + ' |',
  ]
  totals = collections.defaultdict(float)
  for component in order:
    kinds = seconds[component]
    for k, v in kinds.items():
      totals[k] += v
    mlmd = durations.get(component)
    lines.append(
      f'| {component} | {"" if mlmd is None else f"{mlmd:.1f}"} | '
      f'{sum(kinds.values()):.1f} | '
      + ' | '.join(f'{kinds.get(k, 0):.1f}' for k in KIND_NAMES)
      + ' |'
    )
  lines.append(
    '| **all** | | '
    + f'**{sum(totals.values()):.1f}** | '
    + ' | '.join(f'**{totals.get(k, 0):.1f}**' for k in KIND_NAMES)
    + ' |'
  )
  return lines, totals


def _arguments() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    'spec',
    nargs='?',
    default=os.path.join(REPO, 'pipeline', 'specs', 'breast_cancer.yaml'),
  )
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE')
  parser.add_argument('--interval', type=float, default=0.005)
  parser.add_argument(
    '--output', default=os.path.join(REPO, 'benchmarks', 'results', 'profile')
  )
  parser.add_argument(
    '--folded',
    metavar='FILE',
    default='',
    help='also write every sampled stack here, in the '
    'folded format flame graph tools read '
    '(component;kind;frame;... milliseconds)',
  )
  return parser.parse_args()


def _profiled_run(args: argparse.Namespace):
  """Runs the spec cold in a profiled process: (wall seconds, the samples,
  the run's summary)."""
  workdir = tempfile.mkdtemp(prefix='pipeline-profile-')
  try:
    sets = [
      f'runner.pipeline_root={workdir}/root',
      f'runner.metadata={workdir}/metadata.sqlite',
      f'push.destination={workdir}/serving',
    ] + args.set
    argv = ['run', args.spec, '--summary-json', f'{workdir}/summary.json']
    for value in sets:
      argv += ['--set', value]
    code = (
      'import sys; sys.path.insert(0, sys.argv[1]); '
      'import profile_benchmark as p; '
      'p.child(sys.argv[2], float(sys.argv[3]), sys.argv[4], '
      'sys.argv[5:])'
    )
    started = time.monotonic()
    proc = subprocess.run(
      [
        sys.executable,
        '-c',
        code,
        os.path.dirname(__file__),
        f'{workdir}/profile.json',
        str(args.interval),
        os.path.abspath(args.folded) if args.folded else '',
      ]
      + argv,
      cwd=REPO,
      capture_output=True,
      text=True,
      check=False,
    )
    wall = time.monotonic() - started
    if proc.returncode != 0:
      raise SystemExit(
        f'profiled run failed (exit {proc.returncode}): '
        f'{proc.stderr.strip().splitlines()[-1:]}'
      )
    with open(f'{workdir}/profile.json') as f:
      profile = json.load(f)
    with open(f'{workdir}/summary.json') as f:
      summary = json.load(f)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  return wall, profile, summary


def _markdown(result, wall: float, table_lines) -> list:
  """The results page's lines (the wall unrounded, as measured)."""
  m = result['machine']
  overrides = result['overrides']
  return [
    f'# Cold-run profile ({result["date"]})',
    '',
    f'Machine: {m["cpus"]} CPUs, {m["cpu"]}, Python {m["python"]}. '
    f'Spec: `{result["spec"]}`'
    f'{" with " + ", ".join(overrides) if overrides else ""}. '
    f'Wall time {wall:.1f} s (whole process); blessed: '
    f'{result["blessed"]}.',
    '',
    'Seconds of the main thread, sampled every '
    f'{result["interval_seconds"] * 1000:.0f} ms (kinds: '
    'benchmarks/profile_benchmark.py).',
    '',
  ] + table_lines


def main():
  args = _arguments()
  wall, profile, summary = _profiled_run(args)
  durations = {c['id']: c['seconds'] for c in summary.get('components', [])}
  lines, totals = _table(profile['order'], profile['seconds'], durations)
  result = {
    'date': datetime.datetime.now().isoformat(timespec='seconds'),
    'spec': os.path.relpath(args.spec, REPO),
    'overrides': args.set,
    'interval_seconds': args.interval,
    'wall_seconds': round(wall, 2),
    'blessed': summary.get('blessed'),
    'components': {
      c: {k: round(v, 2) for k, v in profile['seconds'][c].items()}
      for c in profile['order']
    },
    'mlmd_seconds': durations,
    'by_kind': {k: round(v, 2) for k, v in totals.items()},
  }
  sys.path.insert(0, os.path.dirname(__file__))
  import machine  # pylint: disable=g-import-not-at-top

  result['machine'] = machine.describe()
  text = _markdown(result, wall, lines)
  machine.write_results(args.output, result, '\n'.join(text) + '\n')
  print('\n'.join(text))
  print(f'\nwritten: {args.output}.json, {args.output}.md')


if __name__ == '__main__':
  main()
