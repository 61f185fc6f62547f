"""Times the run report and the dashboard on a store holding 200 runs, and
writes benchmarks/results/dashboard.{json,md}; with Chromium installed it
also screenshots the report's sections and the dashboard's pages into
docs/screenshots/ (docs/lineage.md shows them).

Usage: python benchmarks/dashboard_benchmark.py [SPEC] [--runs 200]
  [--workdir DIR] [--repeats 5]

The store is filled as the lineage benchmark fills it (one cold run, then
cached re-runs; `--workdir` of an earlier fill is reused as it is). Timed:
`report` of the newest run in process (facts gathered, charts drawn, the
file written; median of --repeats) and as a user runs it (a new process);
the dashboard's pages through HTTP from a `ui` process (median after a
first request).
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from urllib.parse import quote

import machine

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lineage_benchmark import DEFAULT_SETS, fill_store  # noqa: E402  pylint: disable=wrong-import-position

from pipeline.cli import DEFAULT_SPEC, configure_process, quiet_logs  # noqa: E402  pylint: disable=wrong-import-position

REPORT_TARGET_S = 5.0
RUNS_PAGE_TARGET_S = 1.0
SCREENSHOTS = os.path.join(REPO, 'docs', 'screenshots')
SECTIONS = ('run', 'data', 'tuning', 'training', 'evaluation', 'lineage')


def _get(url: str) -> bytes:
  with urllib.request.urlopen(url, timeout=60) as response:
    return response.read()


def _dashboard(store_path: str):
  proc = subprocess.Popen(  # pylint: disable=consider-using-with
    [
      sys.executable,
      '-m',
      'pipeline',
      'ui',
      '--store',
      store_path,
      '--port',
      '0',
    ],
    cwd=REPO,
    stdout=subprocess.PIPE,
    text=True,
  )
  line = proc.stdout.readline()
  if 'http://' not in line:
    proc.kill()
    raise SystemExit(f'ui did not start: {line}')
  return proc, line.split('http://', 1)[1].split('/', 1)[0]


def screenshots(report_html: str, address: str, run_id: str) -> list:
  """PNG of each report section and of each dashboard page, into
  docs/screenshots/; [] without Chromium."""
  from tests.support import browser  # pylint: disable=g-import-not-at-top

  if browser.binary() is None:
    return []
  os.makedirs(SCREENSHOTS, exist_ok=True)
  written = []
  with browser.Browser(width=1200, height=900) as b:
    b.open('file://' + os.path.abspath(report_html))
    for section in SECTIONS:
      path = os.path.join(SCREENSHOTS, f'report-{section}.png')
      b.screenshot(path, f'#{section}')
      written.append(path)
    pages = [('runs', '/'), ('pushed', '/pushed')]
    for name, page in pages:
      b.open(f'http://{address}{page}')
      if name == 'runs':
        newest = b.evaluate(
          'document.querySelector("#runs tr[data-run]").dataset.run'
        )
      path = os.path.join(SCREENSHOTS, f'dashboard-{name}.png')
      b.screenshot(path, whole=False)  # 200 runs: the first screenful
      written.append(path)
    b.open(f'http://{address}/diff?run={quote(run_id)}&run={quote(newest)}')
    path = os.path.join(SCREENSHOTS, 'dashboard-diff.png')
    b.screenshot(path, 'body')
    written.append(path)
    if b.console_errors:
      raise SystemExit(f'console errors: {b.console_errors}')
  return written


def _arguments() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('spec', nargs='?', default=DEFAULT_SPEC)
  parser.add_argument('--runs', type=int, default=200)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--workdir')
  parser.add_argument(
    '--output', default=os.path.join(REPO, 'benchmarks', 'results', 'dashboard')
  )
  return parser.parse_args()


def _store(args: argparse.Namespace, workdir: str):
  """(the store's path, the seconds filling it took; None when an earlier
  fill is reused)."""
  store_path = os.path.join(workdir, 'metadata.sqlite')
  fill_seconds = None
  if not os.path.exists(store_path):  # else an earlier fill, reused
    store_path, _, fill_seconds = fill_store(
      args.spec, workdir, args.runs, DEFAULT_SETS
    )
    fill_seconds = round(fill_seconds, 1)
  return store_path, fill_seconds


def _time_reports(store_path: str, workdir: str, first: str, repeats: int):
  """Writes the first run's report and times the newest run's, in process
  and as a user runs it: (first run's page, newest's page, in process s,
  new process s)."""
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top
  from pipeline.report import render  # pylint: disable=g-import-not-at-top

  report_html = os.path.join(workdir, 'report.html')
  first_html = os.path.join(workdir, 'first-run.html')
  render.write(lineage.open_store(store_path), first, first_html)
  in_process = machine.median_seconds(
    lambda: render.write(lineage.open_store(store_path), None, report_html),
    repeats,
  )
  started = time.monotonic()
  subprocess.run(
    [
      sys.executable,
      '-m',
      'pipeline',
      'report',
      '--store',
      store_path,
      '--output',
      report_html,
    ],
    cwd=REPO,
    check=True,
    capture_output=True,
  )
  return first_html, report_html, in_process, time.monotonic() - started


def _time_pages(store_path: str, first_html: str, first: str, repeats: int):
  """The dashboard's pages' median seconds by name, and the screenshots
  taken."""
  proc, address = _dashboard(store_path)
  try:
    pages = {
      'runs (/)': '/',
      'latest run (/run/latest)': '/run/latest',
      'pushed versions (/pushed)': '/pushed',
    }
    page_seconds = {}
    for name, path in pages.items():
      _get(f'http://{address}{path}')  # the first request warms the imports
      page_seconds[name] = round(
        machine.median_seconds(
          lambda p=path: _get(f'http://{address}{p}'), repeats
        ),
        4,
      )
    shots = screenshots(first_html, address, first)
  finally:
    proc.terminate()
    proc.wait(timeout=10)
  return page_seconds, shots


def _met(seconds: float, target: float) -> str:
  return 'yes' if seconds < target else 'NO'


def _markdown(result: dict, repeats: int) -> list:
  """The results page's lines."""
  in_process = result['report_in_process_median_s']
  report_cli = result['report_cli_wall_s']
  page_seconds = result['pages_median_s']
  lines = [
    f'# Run report and dashboard on a store of {result["runs_in_store"]} runs',
    '',
    f'Written by `python benchmarks/dashboard_benchmark.py` on '
    f'{result["written"]} ({result["machine"]["cpus"]} CPUs, '
    f'{result["machine"]["cpu"]}, Python {result["python"]}).',
    '',
    '| what | time | target | met |',
    '|---|---:|---:|:---:|',
    f'| report of the newest run, in process (median of {repeats}) | '
    f'{in_process:.2f} s | {REPORT_TARGET_S:.0f} s | '
    f'{_met(in_process, REPORT_TARGET_S)} |',
    f'| `python -m pipeline report` (a new process) | {report_cli:.2f} s | '
    f'{REPORT_TARGET_S:.0f} s | {_met(report_cli, REPORT_TARGET_S)} |',
  ]
  for name, seconds in page_seconds.items():
    target = RUNS_PAGE_TARGET_S if name.startswith('runs') else None
    lines.append(
      f'| dashboard {name} | {seconds:.3f} s | '
      f'{f"{target:.0f} s" if target else ""} | '
      f'{_met(seconds, target) if target else ""} |'
    )
  runs_page = page_seconds['runs (/)']
  lines += [
    '',
    f'The report file: {result["report_bytes"] / 1e3:.0f} kB, self-contained.',
    '',
    f'Runs page under {RUNS_PAGE_TARGET_S:.0f} s: '
    f'{"met" if runs_page < RUNS_PAGE_TARGET_S else "NOT met"}.',
  ]
  return lines


def main() -> None:
  args = _arguments()
  configure_process()
  quiet_logs(verbose=False)
  from pipeline.metadata import lineage  # pylint: disable=g-import-not-at-top

  workdir = args.workdir or tempfile.mkdtemp(prefix='dashboard_benchmark_')
  store_path, fill_seconds = _store(args, workdir)
  runs = lineage.list_runs(lineage.open_store(store_path))
  first = runs[0].run_id
  first_html, report_html, in_process, report_cli = _time_reports(
    store_path, workdir, first, args.repeats
  )
  page_seconds, shots = _time_pages(store_path, first_html, first, args.repeats)
  result = {
    'written': datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec='seconds'
    ),
    'machine': machine.describe(),
    'python': platform.python_version(),
    'runs_in_store': len(runs),
    'fill_seconds': fill_seconds,
    'report_in_process_median_s': round(in_process, 3),
    'report_cli_wall_s': round(report_cli, 2),
    'report_target_s': REPORT_TARGET_S,
    'pages_median_s': page_seconds,
    'runs_page_target_s': RUNS_PAGE_TARGET_S,
    'report_bytes': os.path.getsize(report_html),
    'screenshots': [os.path.relpath(p, REPO) for p in shots],
  }
  lines = _markdown(result, args.repeats)
  machine.write_results(args.output, result, '\n'.join(lines) + '\n')
  print('\n'.join(lines))


if __name__ == '__main__':
  main()
