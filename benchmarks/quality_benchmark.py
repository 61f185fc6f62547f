"""Model quality on the bundled data sets: the pipeline against scikit-learn
baselines on the same train/eval split, and writes benchmarks/results/
quality.{json,md}.

Usage: python benchmarks/quality_benchmark.py [--datasets a,b]
  [--builders dnn,gbt,tuner] [--workdir DIR] [--timeout SECONDS]
  [--output PREFIX]

For each data set (a spec under pipeline/specs/ that is a task; the digits
specs are a fine-tuning pair, measured by `python -m pipeline compare`) the
pipeline runs once per builder, each the real command line in a fresh
process, from an empty pipeline root, metadata store and push destination:

- `dnn`: `--set model.builder=dnn`;
- `gbt`: `--set model.builder=gbt`;
- `tuner`: `--set 'model.builder=[dnn, gbt]'`, the Tuner chooses.

Its eval metrics are the run summary's (TFMA on the eval split, overall
slice); its time is the process's wall time. A run that fails (a builder or
spec key the core does not have yet, a failed component, a time-out) is
recorded with its one-line reason, and the rest go on.

The baselines train on the pipeline's own split, read back from the
ExampleGen's output of the first run that has one
(pipeline/experiments/splits.py), so the rows are the same:

- `hgb`: HistGradientBoostingClassifier / Regressor, default settings;
  numbers as they are (a gap stays NaN: the trees route it), text ordinal-
  encoded and declared categorical.
- `linear`: LogisticRegression / Ridge (default strength); numbers imputed
  with the train median and standardised, text imputed with the most
  frequent value and one-hot encoded (an unseen value: all zeros).

Both use the spec's features: its feature lists when it names them, else
every column but the label and `features.exclude`. A date column (ISO text)
becomes three numbers for both: year, month, day of the year. Fit time is
the preprocessing's and the model's fit, wall seconds, the median of three
fits.

The metric compared is the task's main one: accuracy (multiclass), AUC
(binary; accuracy beside it, and the area under the precision-recall curve
where the spec asks for `auc_pr`), RMSE (regression; MAE and R2 beside it).
scikit-learn's average precision stands for TFMA's AUC-PR (TFMA interpolates
the curve; the two differ in the third decimal on these sets). The verdict
compares the best pipeline run with the best baseline: `ahead` when better,
`at` when worse by less than the baseline's bootstrap standard error on the
eval rows (its noise from the eval split alone), else `behind`. The
pipeline's Tuner and early stopping watch the eval split (it is their
validation data), so its figure has seen those rows and the baselines', at
default settings, have not: a tie leans the pipeline's way.

The specs are read as YAML, not through the typed spec: a spec may use a key
the core is still being taught, and then the pipeline's refusal is the
result to record.
"""

import argparse
import datetime
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import machine
import numpy as np
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = os.path.join(REPO, 'pipeline', 'specs')
DATASETS = ('breast_cancer', 'cars', 'diabetes', 'weather', 'chicago_taxi')
BUILDERS = {'dnn': 'dnn', 'gbt': 'gbt', 'tuner': '[dnn, gbt]'}
BASELINES = ('hgb', 'linear')
SEED = 0
BOOTSTRAP = 200
FITS = 3  # fits per baseline, timed; the same seed, so the same model

# The names a run summary may give each metric (TFMA's, or the spec's).
METRIC_NAMES = {
  'accuracy': (
    'accuracy',
    'binary_accuracy',
    'sparse_categorical_accuracy',
    'categorical_accuracy',
  ),
  'auc': ('auc',),
  'auc_pr': ('auc_pr', 'auc_precision_recall'),
  'rmse': ('rmse', 'root_mean_squared_error'),
  'mae': ('mae', 'mean_absolute_error'),
  'r2': ('r2',),
}
HIGHER_IS_BETTER = {
  'accuracy': True,
  'auc': True,
  'auc_pr': True,
  'rmse': False,
  'mae': False,
  'r2': True,
}
DATE = re.compile(r'\d{4}-\d{2}-\d{2}([ T].*)?$')


def _spec(name: str) -> Tuple[str, Dict[str, Any]]:
  path = os.path.join(SPECS, name + '.yaml')
  with open(path) as f:
    return path, yaml.safe_load(f)


def _failure_line(
  proc: subprocess.CompletedProcess, summary: Optional[Dict[str, Any]]
) -> str:
  """Why a run failed, in one line: the summary's component and reason, else
  the last line the CLI wrote on stderr."""
  if summary and summary.get('status') not in (None, 'succeeded'):
    line = f'{summary.get("failed_component")} failed: {summary.get("reason")}'
  else:
    lines = [
      ln.strip() for ln in (proc.stderr or '').splitlines() if ln.strip()
    ]
    line = lines[-1] if lines else f'exit {proc.returncode}, no message'
  # Paths as the repository names them; the CLI's own "error: " prefix off.
  return re.sub(r'^error: ', '', line.replace(REPO + os.sep, ''))


def _chosen_builder(pipeline_root: str) -> Optional[str]:
  """The builder of the Tuner's best trial, when the search had a choice."""
  folder = os.path.join(pipeline_root, 'Tuner', 'best_hyperparameters')
  try:
    newest = max(os.listdir(folder), key=int)
    with open(os.path.join(folder, newest, 'best_hyperparameters.txt')) as f:
      values = json.load(f).get('values', {})
  except (OSError, ValueError):
    return None
  return values.get('builder')


def _run_command(spec: str, builder: str, workdir: str) -> List[str]:
  """The `python -m pipeline run` argv of one cold run into `workdir`."""
  return [
    sys.executable,
    '-m',
    'pipeline',
    'run',
    spec,
    '--summary-json',
    os.path.join(workdir, 'summary.json'),
    '--set',
    f'model.builder={BUILDERS[builder]}',
    '--set',
    f'runner.pipeline_root={workdir}/root',
    '--set',
    f'runner.metadata={workdir}/metadata.sqlite',
    '--set',
    f'push.destination={workdir}/serving',
  ]


def run_pipeline(
  spec: str, builder: str, workdir: str, timeout: float
) -> Dict[str, Any]:
  """One cold run of `spec` with `builder` into `workdir`.

  Returns:
    status ('succeeded' or 'failed'), wall_seconds, and either the summary's
    metrics, blessing and search, or the failure's one line.
  """
  os.makedirs(workdir, exist_ok=True)
  args = _run_command(spec, builder, workdir)
  env = dict(os.environ, TF_USE_LEGACY_KERAS='1')
  started = time.monotonic()
  try:
    proc = subprocess.run(
      args,
      cwd=REPO,
      capture_output=True,
      text=True,
      check=False,
      env=env,
      timeout=timeout,
    )
  except subprocess.TimeoutExpired:
    return {
      'status': 'failed',
      'root': f'{workdir}/root',
      'wall_seconds': round(time.monotonic() - started, 1),
      'failure': f'timed out after {timeout:.0f} s',
    }
  return _run_result(proc, workdir, time.monotonic() - started)


def _run_result(
  proc: subprocess.CompletedProcess, workdir: str, wall: float
) -> Dict[str, Any]:
  """`run_pipeline`'s result for a run that ended in `wall` seconds, read
  from the summary it wrote in `workdir` (if any) and its exit."""
  summary_path = os.path.join(workdir, 'summary.json')
  summary = None
  if os.path.exists(summary_path):
    with open(summary_path) as f:
      summary = json.load(f)
  result = {
    'status': 'succeeded',
    'root': f'{workdir}/root',
    'wall_seconds': round(wall, 1),
  }
  if (
    proc.returncode != 0
    or not summary
    or (summary.get('status') != 'succeeded')
  ):
    result.update(status='failed', failure=_failure_line(proc, summary))
    return result
  result.update(
    in_process_seconds=summary.get('total_seconds'),
    metrics=summary.get('metrics') or {},
    blessed=summary.get('blessed'),
    blessing_reason=summary.get('blessing_reason'),
    search=(summary.get('search') or {}).get('line'),
    chosen_builder=_chosen_builder(f'{workdir}/root'),
  )
  return result


def pipeline_metric(run: Dict[str, Any], metric: str) -> Optional[float]:
  for name in METRIC_NAMES[metric]:
    value = (run.get('metrics') or {}).get(name)
    if value is not None:
      return float(value)
  return None


# The task, the features and the baselines' preprocessing.


def task_of(raw: Dict[str, Any], labels) -> str:
  if (raw.get('features') or {}).get('task') == 'regression':
    return 'regression'
  return 'binary' if labels.nunique() == 2 else 'multiclass'


def metrics_of(task: str, raw: Dict[str, Any]) -> List[str]:
  """The metrics reported for a task, the main one first."""
  if task == 'regression':
    return ['rmse', 'mae', 'r2']
  if task == 'multiclass':
    return ['accuracy']
  asked = (raw.get('evaluation') or {}).get('metrics') or ()
  return ['auc', 'accuracy'] + (['auc_pr'] if 'auc_pr' in asked else [])


def feature_columns(raw: Dict[str, Any], frame) -> List[str]:
  """The spec's features: its lists, or every column but the label and the
  excluded ones (as the pipeline resolves them)."""
  features = raw.get('features') or {}
  named = list(features.get('numeric') or []) + list(
    features.get('categorical') or []
  )
  if named:
    return named
  dropped = {features['label']} | set(features.get('exclude') or [])
  return [c for c in frame.columns if c not in dropped]


def _is_date(column) -> bool:
  present = column.dropna()
  return (
    column.dtype == object
    and len(present) > 0
    and all(isinstance(v, str) and DATE.match(v) for v in present)
  )


def expand_dates(frame, columns: List[str]):
  """`frame[columns]` with each date column replaced by its year, month and
  day of the year (numbers), and the list of text columns left."""
  import pandas as pd  # pylint: disable=g-import-not-at-top

  out = frame[columns].copy()
  text = []
  for name in columns:
    if _is_date(out[name]):
      when = pd.to_datetime(out.pop(name), utc=True)
      out[f'{name}_year'] = when.dt.year
      out[f'{name}_month'] = when.dt.month
      out[f'{name}_day_of_year'] = when.dt.dayofyear
    elif out[name].dtype == object:
      text.append(name)
  return out, text


def _model(baseline: str, task: str, numeric: List[str], text: List[str]):
  """A scikit-learn pipeline: the baseline's preprocessing and model."""
  # pylint: disable=g-import-not-at-top
  from sklearn.compose import ColumnTransformer
  from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
  )
  from sklearn.impute import SimpleImputer
  from sklearn.linear_model import LogisticRegression, Ridge
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import (
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
  )

  # pylint: enable=g-import-not-at-top
  if baseline == 'hgb':
    columns = ColumnTransformer(
      [
        ('numeric', 'passthrough', numeric),
        (
          'text',
          OrdinalEncoder(
            handle_unknown='use_encoded_value',
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
          ),
          text,
        ),
      ],
      verbose_feature_names_out=False,
    )
    categorical = [False] * len(numeric) + [True] * len(text)
    model = (
      HistGradientBoostingRegressor
      if task == 'regression'
      else HistGradientBoostingClassifier
    )(categorical_features=categorical or None, random_state=SEED)
    return make_pipeline(columns, model)
  columns = ColumnTransformer(
    [
      (
        'numeric',
        make_pipeline(SimpleImputer(strategy='median'), StandardScaler()),
        numeric,
      ),
      (
        'text',
        make_pipeline(
          SimpleImputer(strategy='most_frequent', missing_values=None),
          OneHotEncoder(handle_unknown='ignore'),
        ),
        text,
      ),
    ]
  )
  model = Ridge() if task == 'regression' else LogisticRegression(max_iter=5000)
  return make_pipeline(columns, model)


def score(metric: str, y_true, predicted, probability) -> float:
  """One metric from labels, predictions and (binary) P(class 1)."""
  # pylint: disable=g-import-not-at-top
  from sklearn import metrics as skm

  # pylint: enable=g-import-not-at-top
  if metric == 'accuracy':
    return float(skm.accuracy_score(y_true, predicted))
  if metric == 'auc':
    return float(skm.roc_auc_score(y_true, probability))
  if metric == 'auc_pr':
    return float(skm.average_precision_score(y_true, probability))
  if metric == 'rmse':
    return float(math.sqrt(skm.mean_squared_error(y_true, predicted)))
  if metric == 'mae':
    return float(skm.mean_absolute_error(y_true, predicted))
  if metric == 'r2':
    return float(skm.r2_score(y_true, predicted))
  raise ValueError(metric)


def bootstrap_se(metric: str, y_true, predicted, probability) -> float:
  """The standard error of `metric` over bootstrap resamples of the eval
  rows: how much the figure moves with the eval split alone."""
  rng = np.random.default_rng(SEED)
  y_true, predicted = np.asarray(y_true), np.asarray(predicted)
  values = []
  for _ in range(BOOTSTRAP):
    rows = rng.integers(0, len(y_true), len(y_true))
    if metric in ('auc', 'auc_pr') and len(set(y_true[rows])) < 2:
      continue
    values.append(
      score(
        metric,
        y_true[rows],
        predicted[rows],
        None if probability is None else np.asarray(probability)[rows],
      )
    )
  return float(np.std(values, ddof=1))


def labels_of(task: str, train, evaluation) -> Tuple[Any, Any]:
  """The label as the pipeline reads it: a number for regression; for two
  classes, class 1 is an INT label's 1 or a STRING label's less frequent
  name in the train split."""
  if task != 'binary' or train.dtype != object:
    return train, evaluation
  positive = train.value_counts().sort_index().idxmin()
  return (train == positive).astype(int), (evaluation == positive).astype(int)


def run_baselines(raw: Dict[str, Any], split) -> Dict[str, Any]:
  """Fits and scores each baseline on the pipeline's train/eval split."""
  label = raw['features']['label']
  train, evaluation = split['train'], split['eval']
  task = task_of(raw, train[label])
  metrics = metrics_of(task, raw)
  columns = feature_columns(raw, train)
  x_train, text = expand_dates(train, columns)
  x_eval, _ = expand_dates(evaluation, columns)
  numeric = [c for c in x_train.columns if c not in text]
  y_train, y_eval = labels_of(task, train[label], evaluation[label])
  results = {}
  for baseline in BASELINES:
    seconds = []
    for _ in range(FITS):  # the median: a shared machine's noise is large
      model = _model(baseline, task, numeric, text)
      started = time.perf_counter()
      model.fit(x_train, y_train)
      seconds.append(time.perf_counter() - started)
    fit = statistics.median(seconds)
    predicted = model.predict(x_eval)
    probability = (
      model.predict_proba(x_eval)[:, 1] if task == 'binary' else None
    )
    results[baseline] = {
      'fit_seconds': round(fit, 3),
      'metrics': {
        m: round(score(m, y_eval, predicted, probability), 4) for m in metrics
      },
      'main_se': round(
        bootstrap_se(metrics[0], y_eval, predicted, probability), 4
      ),
    }
  return {
    'task': task,
    'metrics': metrics,
    'features': len(columns),
    'rows': {'train': len(train), 'eval': len(evaluation)},
    'baselines': results,
  }


def verdict(
  main: str, runs: Dict[str, Any], baselines: Dict[str, Any]
) -> Optional[Dict[str, Any]]:
  """The best pipeline run against the best baseline on the main metric."""
  sign = 1 if HIGHER_IS_BETTER[main] else -1
  ran = {b: pipeline_metric(r, main) for b, r in runs.items()}
  ran = {b: v for b, v in ran.items() if v is not None}
  if not ran or not baselines:
    return None
  pipe = max(ran, key=lambda b: sign * ran[b])
  base = max(baselines, key=lambda b: sign * baselines[b]['metrics'][main])
  # Rounded as shown: a difference below the fourth decimal is a tie.
  margin = round(sign * (ran[pipe] - baselines[base]['metrics'][main]), 4)
  word = (
    'ahead'
    if margin > 0
    else ('at' if -margin <= baselines[base]['main_se'] else 'behind')
  )
  return {'pipeline': pipe, 'baseline': base, 'margin': margin, 'word': word}


def benchmark(
  name: str, builders: List[str], workdir: str, timeout: float
) -> Dict[str, Any]:
  """Every pipeline run and baseline for one data set."""
  spec, raw = _spec(name)
  runs = {}
  for builder in builders:
    print(f'{name}: pipeline, builder {builder} ...', flush=True)
    runs[builder] = run_pipeline(
      spec, builder, os.path.join(workdir, name, builder), timeout
    )
    run = runs[builder]
    print(
      f'  {run["status"]} in {run["wall_seconds"]} s'
      f'{": " + run["failure"] if "failure" in run else ""}',
      flush=True,
    )
  result = {'spec': os.path.relpath(spec, REPO), 'runs': runs}
  # pylint: disable=g-import-not-at-top
  from pipeline.experiments import splits

  # pylint: enable=g-import-not-at-top
  roots = [runs[b]['root'] for b in ('dnn', 'gbt', 'tuner') if b in runs]
  for root in roots:
    try:
      split = splits.pipeline_split(root, splits=['train', 'eval'])
    except splits.SplitError:
      continue  # the run stopped before its ExampleGen
    result['split_from'] = os.path.relpath(root, workdir)
    print(f'{name}: baselines on {result["split_from"]} ...', flush=True)
    result.update(run_baselines(raw, split))
    break
  else:
    result['split_failure'] = (
      'no run reached the ExampleGen' if roots else 'no pipeline run'
    )
  if 'metrics' in result:
    result['verdict'] = verdict(result['metrics'][0], runs, result['baselines'])
  return result


# The Markdown table.

NAMES = {
  'accuracy': 'accuracy',
  'auc': 'AUC',
  'auc_pr': 'AUC-PR',
  'rmse': 'RMSE',
  'mae': 'MAE',
  'r2': 'R2',
}


def _cell_text(text: str, limit: int = 110) -> str:
  text = text.replace('|', '/')
  return text if len(text) <= limit else text[: limit - 1] + '…'


def _figures(metrics: List[str], get) -> str:
  values = [(m, get(m)) for m in metrics]
  shown = [
    f'{NAMES[m]} {v:.4f}' if i == 0 else f'{NAMES[m]} {v:.3f}'
    for i, (m, v) in enumerate(values)
    if v is not None
  ]
  return ', '.join(shown) or 'no metric'


def _pipeline_cell(run: Optional[Dict[str, Any]], metrics: List[str]) -> str:
  """One builder's pipeline run: its figures and seconds, or why not."""
  if run is None:
    return 'not run'
  if run['status'] != 'succeeded':
    return f'failed ({run["wall_seconds"]:.1f} s): {_cell_text(run["failure"])}'
  shown = metrics or ['auc', 'accuracy', 'rmse']
  chosen = (
    f', chose {run["chosen_builder"]}' if run.get('chosen_builder') else ''
  )
  figures = _figures(shown, lambda m, r=run: pipeline_metric(r, m))
  return f'{figures} ({run["wall_seconds"]:.1f} s{chosen})'


def _baseline_cell(
  row: Dict[str, Any], baseline: str, metrics: List[str]
) -> str:
  fit = (row.get('baselines') or {}).get(baseline)
  if fit is None:
    return f'no split: {_cell_text(row.get("split_failure", "-"))}'
  return f'{_figures(metrics, fit["metrics"].get)} ({fit["fit_seconds"]:.2f} s)'


def _verdict_cell(row: Dict[str, Any], metrics: List[str]) -> str:
  judged = row.get('verdict')
  if not judged:
    return '-'
  main = NAMES[metrics[0]]
  se = row['baselines'][judged['baseline']]['main_se']
  return (
    f'**{judged["word"]}**: {judged["pipeline"]} vs '
    f'{judged["baseline"]}, {main} {judged["margin"]:+.4f} '
    f'(better is +; baseline s.e. {se:.4f})'
  )


def _row_line(name: str, row: Dict[str, Any]) -> str:
  """One data set's table row."""
  metrics = row.get('metrics') or []
  cells = [name]
  if metrics:
    cells.append(
      f'{row["task"]} ({row["rows"]["train"]}/{row["rows"]["eval"]})'
    )
  else:
    cells.append('-')
  cells += [
    _pipeline_cell(row['runs'].get(builder), metrics) for builder in BUILDERS
  ]
  cells += [_baseline_cell(row, baseline, metrics) for baseline in BASELINES]
  cells.append(_verdict_cell(row, metrics))
  return '| ' + ' | '.join(cells) + ' |'


_NOTES = (
  'HGB: HistGradientBoosting, default settings, gaps kept as '
  'NaN, text ordinal-encoded as categorical. linear: '
  'LogisticRegression or Ridge over median-imputed, standardised '
  'numbers and most-frequent-imputed, one-hot text. A date column '
  'is year, month and day of the year for both. AUC-PR: the '
  "pipeline's is TFMA's, the baselines' scikit-learn's average "
  'precision. Verdict: the best pipeline run against the best '
  'baseline on the main metric; `at`: worse by less than the '
  "baseline's bootstrap standard error on the eval rows. The "
  "pipeline's Tuner and early stopping watch the eval split, so "
  'its figures have seen those rows; the baselines, at default '
  'settings, have not.'
)


def markdown(result: Dict[str, Any]) -> str:
  builders, rows = result['builders'], result['datasets']
  lines = [
    f'# Model quality: the pipeline against scikit-learn baselines '
    f'({result["date"]})',
    '',
    f'Machine: {result["machine"]["cpus"]} CPUs, {result["machine"]["cpu"]}'
    f', Python {result["machine"]["python"]}; code at '
    f'{result["code"] or "unknown"}. Each pipeline run is a cold '
    f'`python -m pipeline run` of the spec with `model.builder` set, in a '
    f"fresh process (wall seconds); the baselines train on that run's own "
    f'train/eval split (fit seconds, median of {FITS}). Metrics on the '
    f'eval split; the first is the main one. Builders run: '
    f'{", ".join(builders)}. How it is measured: '
    f"`benchmarks/quality_benchmark.py`'s docstring.",
    '',
    '| data set | task (rows train/eval) | pipeline dnn | pipeline gbt | '
    "pipeline, tuner's choice | HGB | linear | pipeline vs best baseline |",
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ]
  lines += [_row_line(name, row) for name, row in rows.items()]
  lines += ['', _NOTES]
  return '\n'.join(lines) + '\n'


def _parse_args() -> Tuple[argparse.Namespace, List[str], List[str]]:
  """The command line, and the data sets and builders it names (checked)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    '--datasets',
    default=','.join(DATASETS),
    help='comma-separated, from: ' + ', '.join(DATASETS),
  )
  parser.add_argument(
    '--builders',
    default=','.join(BUILDERS),
    help='comma-separated, from: ' + ', '.join(BUILDERS),
  )
  parser.add_argument(
    '--workdir', help='where runs go (default: a temp dir, removed afterwards)'
  )
  parser.add_argument(
    '--timeout',
    type=float,
    default=1800,
    help='seconds one pipeline run may take',
  )
  parser.add_argument(
    '--output', default=os.path.join(REPO, 'benchmarks', 'results', 'quality')
  )
  args = parser.parse_args()
  datasets = [d for d in args.datasets.split(',') if d]
  builders = [b for b in args.builders.split(',') if b]
  unknown = sorted(set(datasets) - set(DATASETS)) + sorted(
    set(builders) - set(BUILDERS)
  )
  if unknown:
    parser.error(f'unknown: {", ".join(unknown)}')
  return args, datasets, builders


def main():
  args, datasets, builders = _parse_args()
  os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  workdir = args.workdir or tempfile.mkdtemp(prefix='quality-bench-')
  started = datetime.datetime.now().isoformat(timespec='seconds')
  # Before the runs: the tree may change under them.
  code = machine.code_version()
  try:
    rows = {
      name: benchmark(name, builders, workdir, args.timeout)
      for name in datasets
    }
  finally:
    if not args.workdir:
      shutil.rmtree(workdir, ignore_errors=True)
  for row in rows.values():  # the temp folders are gone
    for run in row['runs'].values():
      run.pop('root', None)

  result = {
    'date': started,
    'machine': machine.describe(),
    'code': code,
    'builders': builders,
    'datasets': rows,
  }
  text = markdown(result)
  machine.write_results(args.output, result, text)
  print(text)
  print(f'written: {args.output}.json, {args.output}.md')


if __name__ == '__main__':
  main()
