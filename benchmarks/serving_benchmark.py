"""Latency and throughput of `python -m pipeline serve`, measured from a
second process (this one) over HTTP, as a client would see them.

Starts the server on a free port over a pushed model, warms it up, then for
each scenario sends requests for a fixed time and records every request's
wall time: single-row and 64-row requests, serialized tf.Examples
(serving_default) and raw values (serving_raw), from one client and from
four concurrent clients (one keep-alive connection each). Writes
benchmarks/results/serving.{json,md}.

Usage: python benchmarks/serving_benchmark.py [--model-base DIR]
       [--model NAME] [--seconds 10] [--output PREFIX]
The default model base is serving/, where `make run` pushes.
"""

import argparse
import base64
import csv
import datetime
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List

import machine
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSV = os.path.join(REPO, 'data', 'breast_cancer', 'breast_cancer.csv')
LABEL = 'diagnosis'


def start_server(model_base: str):
  log = tempfile.TemporaryFile(mode='w+')
  proc = subprocess.Popen(
    [
      sys.executable,
      '-m',
      'pipeline',
      'serve',
      '--model-base',
      model_base,
      '--port',
      '0',
    ],
    cwd=REPO,
    stdout=subprocess.PIPE,
    stderr=log,
    text=True,
    env={**os.environ, 'PYTHONUNBUFFERED': '1'},
  )
  for line in proc.stdout:
    if line.startswith('serving ') and ' at http://' in line:
      url = line.split(' at ')[1].split(' ')[0]
      threading.Thread(
        target=lambda: [None for _ in proc.stdout], daemon=True
      ).start()
      return proc, url
  log.seek(0)
  raise SystemExit('serve did not start: ' + log.read()[-2000:])


def bodies(rows: List[Dict[str, str]], batch: int) -> Dict[str, bytes]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  chosen = rows[:batch]
  examples = []
  for row in chosen:
    example = tf.train.Example()
    for key, value in row.items():
      if key != LABEL:
        example.features.feature[key].float_list.value.append(float(value))
    examples.append(
      {'b64': base64.b64encode(example.SerializeToString()).decode()}
    )
  raw = [{k: float(v) for k, v in row.items() if k != LABEL} for row in chosen]
  return {
    'tf.Example': json.dumps({'instances': examples}).encode(),
    'raw values': json.dumps(
      {'signature_name': 'serving_raw', 'instances': raw}
    ).encode(),
  }


def run(
  url: str, path: str, body: bytes, seconds: float, clients: int
) -> Dict[str, Any]:
  host = url.split('://')[1]
  latencies: List[float] = []
  errors = [0]
  lock = threading.Lock()
  stop = time.monotonic() + seconds

  def client():
    connection = http.client.HTTPConnection(host, timeout=60)
    mine = []
    while time.monotonic() < stop:
      start = time.perf_counter()
      connection.request(
        'POST', path, body, {'Content-Type': 'application/json'}
      )
      response = connection.getresponse()
      response.read()
      mine.append(time.perf_counter() - start)
      if response.status != 200:
        with lock:
          errors[0] += 1
    connection.close()
    with lock:
      latencies.extend(mine)

  started = time.monotonic()
  threads = [threading.Thread(target=client) for _ in range(clients)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  elapsed = time.monotonic() - started
  ms = np.array(latencies) * 1000
  return {
    'requests': len(latencies),
    'errors': errors[0],
    'seconds': round(elapsed, 2),
    'p50_ms': round(float(np.percentile(ms, 50)), 2),
    'p99_ms': round(float(np.percentile(ms, 99)), 2),
    'mean_ms': round(float(ms.mean()), 2),
    'requests_per_s': round(len(latencies) / elapsed, 1),
  }


def _arguments() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--model-base', default=os.path.join(REPO, 'serving'))
  parser.add_argument('--model', default='breast_cancer')
  parser.add_argument('--seconds', type=float, default=10.0)
  parser.add_argument(
    '--output', default=os.path.join(REPO, 'benchmarks', 'results', 'serving')
  )
  return parser.parse_args()


def _scenarios(args: argparse.Namespace, rows) -> List[Dict[str, Any]]:
  """Each scenario's figures, from a server started for them."""
  proc, url = start_server(args.model_base)
  path = f'/v1/models/{args.model}:predict'
  results = []
  try:
    for batch in (1, 64):
      for kind, body in bodies(rows, batch).items():
        run(url, path, body, 2.0, 1)  # warm-up: traced, caches filled
        for clients in (1, 4):
          figures = run(url, path, body, args.seconds, clients)
          figures.update(
            {
              'rows_per_request': batch,
              'input': kind,
              'clients': clients,
              'rows_per_s': round(figures['requests_per_s'] * batch, 1),
            }
          )
          results.append(figures)
          print(json.dumps(figures), flush=True)
  finally:
    proc.terminate()
    proc.wait(timeout=30)
  return results


def _markdown(report: Dict[str, Any]) -> List[str]:
  """The results page's lines."""
  lines = [
    '# Serving benchmark',
    '',
    f'`{report["command"]}` on {report["date"]}: {report["machine"]["cpus"]}'
    f' CPUs, TensorFlow {report["machine"]["tensorflow"]}, model '
    f'`{report["model"]}`. The client is a second process on the same '
    'machine (HTTP keep-alive, one connection per client); each scenario '
    f'runs for {report["seconds_per_scenario"]:g} s after a 2 s warm-up. '
    'Latency is the wall time of one request as the client sees it.',
    '',
    '| rows/request | input | clients | requests | p50 ms | p99 ms | '
    'requests/s | rows/s | errors |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ]
  for r in report['results']:
    lines.append(
      f'| {r["rows_per_request"]} | {r["input"]} | {r["clients"]} '
      f'| {r["requests"]} | {r["p50_ms"]} | {r["p99_ms"]} | '
      f'{r["requests_per_s"]} | {r["rows_per_s"]} | {r["errors"]} |'
    )
  return lines


def main() -> None:
  args = _arguments()
  if not os.path.isdir(os.path.join(args.model_base, args.model)):
    raise SystemExit(
      f'{args.model_base}/{args.model}: no pushed model; run '
      '`make run` first (it pushes there)'
    )
  os.environ['TF_USE_LEGACY_KERAS'] = '1'
  with open(CSV, newline='') as f:
    rows = list(csv.DictReader(f))
  results = _scenarios(args, rows)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  report = {
    'date': datetime.datetime.now().isoformat(timespec='seconds'),
    'machine': {
      'cpus': os.cpu_count(),
      'platform': platform.platform(),
      'python': platform.python_version(),
      'tensorflow': tf.__version__,
    },
    'model': args.model,
    'seconds_per_scenario': args.seconds,
    'command': 'python benchmarks/serving_benchmark.py '
    + ' '.join(sys.argv[1:]),
    'results': results,
  }
  machine.write_results(
    args.output, report, '\n'.join(_markdown(report)) + '\n'
  )
  print(f'wrote {args.output}.json and .md')


if __name__ == '__main__':
  main()
