"""Transfer learning on text and images: fine-tuning a pretrained encoder
against training from scratch, at a few labelled-set sizes, and writes
benchmarks/results/transfer_text.{json,md,png} and
benchmarks/results/transfer_image.{json,md,png}.

Usage: python benchmarks/transfer_benchmark.py [--only text|image]
  [--repeats 3] [--output-dir DIR]

Each comparison is one `python -m pipeline compare` of a bundled spec, the
real command line in a fresh process (pipeline/experiments/compare.py says
what it measures; its report's first paragraph is the conclusion):

- text: pipeline/specs/rotten_tomatoes.yaml over all 12,752 snippets
  (`data.csv` set to data/rotten_tomatoes/rotten_tomatoes.csv), 800 of
  them held out as the test set. all-MiniLM-L6-v2 reads up to 48
  wordpieces a snippet (nearly all of them fit) and the learned encoders
  the first 48 words; 8 epochs at batch 16; sizes 50 and 200.
- image: pipeline/specs/fashion_mnist.yaml: labelled sets drawn from its
  1,200 bundled training images, tested on 1,000 of Fashion-MNIST's
  held-out test images (`datasets.fashion_mnist_test`, written as PNGs
  with a CSV in a temporary folder and passed as `--test-csv`, so no
  training image is held out). Images at 64 px for EfficientNet-Lite0 and
  the learned cnn alike; 20 epochs at batch 32 (a cnn from scratch needs
  the steps: at the spec's 6 epochs, 24 steps on 100 images, it stayed at
  chance); sizes 100 and 500; full fine-tuning and feature extraction.

Text tries all four fine-tuning strategies (the specs list two), images
the two that bound them (the best and the cheapest), and every learned
encoder of the column's kind from scratch, 3 repeats, the specs' default
hyperparameters otherwise. Sizes and epochs are set so that both
finish in about half an hour on 2 CPUs. The machine and the wall time of
each comparison are added to its JSON and Markdown.
"""

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

import machine

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = os.path.join(REPO, 'pipeline', 'specs')
RESULTS = os.path.join(REPO, 'benchmarks', 'results')
ALL_STRATEGIES = (
  'model.search_space.finetune.strategy=[full, '
  'feature_extraction, gradual_unfreezing, discriminative_lr]'
)
IMAGE_TEST_ROWS = 1000

# Each comparison: its spec, `--set` overrides and the other arguments.
COMPARISONS: Dict[str, Dict[str, Any]] = {
  'text': {
    'spec': os.path.join(SPECS, 'rotten_tomatoes.yaml'),
    'sets': [
      'data.csv='
      + os.path.join(REPO, 'data', 'rotten_tomatoes', 'rotten_tomatoes.csv'),
      'preprocessing.text.max_tokens=48',
      'model.encoders.review.max_tokens=48',
      ALL_STRATEGIES,
    ],
    'args': ['--sizes', '50,200', '--epochs', '8', '--test-rows', '800'],
  },
  'image': {
    'spec': os.path.join(SPECS, 'fashion_mnist.yaml'),
    'sets': [
      'preprocessing.image_size=64',
      'model.search_space.finetune.strategy=[full, feature_extraction]',
    ],
    'args': ['--sizes', '100,500', '--epochs', '20'],
    'note': f"The test set is {IMAGE_TEST_ROWS} of Fashion-MNIST's "
    'held-out test images (`pipeline.datasets.'
    'fashion_mnist_test`, class-balanced), written as PNGs with '
    'a CSV to a temporary folder for `--test-csv`.',
  },
}


def write_image_test_set(folder: str, rows: int = IMAGE_TEST_ROWS) -> str:
  """Fashion-MNIST's held-out test images (a class-balanced sample of
  `rows`) as PNGs and a CSV of the bundled spec's columns; its path."""
  sys.path.insert(0, REPO)
  # pylint: disable=g-import-not-at-top
  from pipeline import datasets

  # pylint: enable=g-import-not-at-top
  images, names = datasets.fashion_mnist_test(rows)
  os.makedirs(os.path.join(folder, 'images'), exist_ok=True)
  path = os.path.join(folder, 'test.csv')
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(datasets.FASHION_MNIST_COLUMNS)
    for i, (pixels, name) in enumerate(zip(images, names, strict=True)):
      relative = f'images/test_{i:05d}.png'
      with open(os.path.join(folder, relative), 'wb') as png:
        png.write(datasets.fashion_mnist_png(pixels[..., 0]))
      writer.writerow([relative, str(name)])
  return path


class LoadSampler:
  """The machine's 1-minute load average every `every` seconds while a
  comparison runs: other work on the CPUs shows in its seconds."""

  def __init__(self, every: float = 30.0):
    self._every = every
    self._done = threading.Event()
    self.samples: List[float] = []
    self._thread = threading.Thread(target=self._run, daemon=True)

  def _run(self) -> None:
    while True:
      self.samples.append(round(os.getloadavg()[0], 2))
      if self._done.wait(self._every):
        return

  def __enter__(self) -> 'LoadSampler':
    self._thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._done.set()
    self._thread.join()

  def summary(self) -> Dict[str, float]:
    return {
      'mean': round(sum(self.samples) / len(self.samples), 2),
      'max': max(self.samples),
      'samples': len(self.samples),
    }


def run_comparison(
  name: str, repeats: int, output: str, workdir: str
) -> Dict[str, Any]:
  """One `python -m pipeline compare`, its output streamed; the wall time,
  exit code and the machine's load meanwhile."""
  setup = COMPARISONS[name]
  args = [sys.executable, '-m', 'pipeline', 'compare', setup['spec']]
  for value in setup['sets']:
    args += ['--set', value]
  args += [*setup['args'], '--repeats', str(repeats), '--output', output]
  if name == 'image':
    args += [
      '--test-csv',
      write_image_test_set(os.path.join(workdir, 'image_test')),
    ]
  print(f'{name}: {" ".join(args[1:])}', flush=True)
  started = time.monotonic()
  with LoadSampler() as load:
    proc = subprocess.run(args, cwd=REPO, check=False)
  return {
    'command': args[1:],
    'exit_code': proc.returncode,
    'wall_seconds': round(time.monotonic() - started, 1),
    'load_average': load.summary(),
  }


def annotate(
  output: str,
  run: Dict[str, Any],
  about: Dict[str, Any],
  note: Optional[str] = None,
) -> None:
  """Adds the benchmark's facts (machine, code, wall time) to the report
  compare wrote: a `benchmark` entry in its JSON, a closing line in its
  Markdown."""
  with open(output + '.json') as f:
    report = json.load(f)
  report['benchmark'] = {
    **about,
    'wall_seconds': run['wall_seconds'],
    'load_average': run['load_average'],
    'note': note,
  }
  with open(output + '.json', 'w') as f:
    json.dump(report, f, indent=2, sort_keys=True)
  cpu = about['machine']
  with open(output + '.md', 'a') as f:
    f.write(
      f'\nMeasured by `benchmarks/transfer_benchmark.py` on '
      f'{about["date"]}: {cpu["cpus"]} CPUs, {cpu["cpu"]}, Python '
      f'{cpu["python"]}; code at {about["code"] or "unknown"}; '
      f'{run["wall_seconds"] / 60:.1f} min for this comparison, '
      'process start to end, the 1-minute load average '
      f'{run["load_average"]["mean"]:.1f} on average meanwhile (the '
      'comparison alone keeps about 2 CPUs busy; more is other work '
      'slowing its seconds down).' + (f' {note}' if note else '') + '\n'
    )


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    '--only',
    choices=sorted(COMPARISONS),
    help='run one comparison (default: both)',
  )
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument(
    '--output-dir',
    default=RESULTS,
    help='where transfer_<name>.* go (default: benchmarks/results)',
  )
  args = parser.parse_args()
  os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  names: List[str] = [args.only] if args.only else list(COMPARISONS)
  about = {
    'date': datetime.datetime.now().isoformat(timespec='seconds'),
    'machine': machine.describe(),
    'code': machine.code_version(),
  }
  failed = 0
  with tempfile.TemporaryDirectory(prefix='transfer-bench-') as workdir:
    for name in names:
      output = os.path.join(args.output_dir, f'transfer_{name}')
      run = run_comparison(name, args.repeats, output, workdir)
      if run['exit_code'] != 0:
        print(
          f'{name}: failed (exit code {run["exit_code"]}) after '
          f'{run["wall_seconds"]} s',
          flush=True,
        )
        failed += 1
        continue
      annotate(output, run, about, COMPARISONS[name].get('note'))
      print(
        f'{name}: {run["wall_seconds"] / 60:.1f} min; wrote '
        f'{output}.json, .md and .png',
        flush=True,
      )
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
