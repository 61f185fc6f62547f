"""What one run did, gathered for its report from ML Metadata and the run's
own artifacts; no TensorFlow (the report and the dashboard answer fast).

Each section is plain data (dicts and lists of numbers and strings) that
the renderer draws and the tests compare with the artifacts:
- run: state, each component's state and times, blessing and why, push;
- data: StatisticsGen's per-feature statistics per split, and the anomalies
  ExampleValidator found;
- tuning: the Tuner's search report (every trial);
- training: the Trainer's per-epoch history, early stopping, the
  hyperparameters, and for fine-tuning the base model and its schedule;
- evaluation: TFMA's metrics per slice, candidate and baseline, the
  thresholds, the confusion matrix and the calibration buckets;
- lineage: the trace of the pushed (else the trained) model.
"""

import datetime
import json
import os
from typing import Any, Dict, List, Optional

import ml_metadata as mlmd

from modules import tasks
from pipeline.errors import PipelineError
from pipeline.metadata import lineage, results, tfma_files
from pipeline.metadata.results import custom_property
from pipeline.metadata.summary import RunOutcome

HPARAMS_FILE = 'hyperparameters.json'  # modules/train.py writes both
HISTORY_FILE = 'training_history.json'
PREDICTIONS_FILE = 'eval_predictions.json'  # regression: labels, predictions
HISTOGRAM_BUCKETS = 10
TOP_VALUES = 5
# The spec's metric names: TFMA's class -> the spec's name for it (metrics
# are reported by the spec's names, modules/tasks.py).
CLASS_TO_METRIC = {
  metric.tfma_class: name
  for task in tasks.TASKS.values()
  for name, metric in task.metrics.items()
}


class ReportError(PipelineError):
  """A report cannot be made (no such run, an unreadable artifact)."""


def find_run(
  store: mlmd.MetadataStore, run_id: Optional[str]
) -> results.RunRecord:
  """The run `run_id`, or the newest run in the store when it is None."""
  if run_id is None:
    contexts = store.get_contexts_by_type(results.RUN_CONTEXT_TYPE)
    if not contexts:
      raise ReportError('the store holds no run yet; run the pipeline first')
    run_id = max(contexts, key=lambda c: (c.create_time_since_epoch, c.id)).name
  record = lineage.run_record(store, run_id)
  if record is None:
    raise ReportError(
      f'{run_id}: no such run in the store (see `lineage runs`)'
    )
  return record


def run_section(record: results.RunRecord) -> Dict[str, Any]:
  context = record.store.get_context_by_type_and_name(
    results.RUN_CONTEXT_TYPE, record.run_id
  )
  components = []
  for component, execution in zip(
    record.components(), record.executions, strict=True
  ):
    if component.is_resolver:
      continue
    components.append(
      {
        'id': component.id,
        'state': component.state,
        'start_ms': execution.create_time_since_epoch,
        'end_ms': execution.last_update_time_since_epoch,
        'seconds': component.seconds,
        # Where its Beam jobs ran: pipeline/engines (None: no Beam, or cached).
        'engine': component.engine,
      }
    )
  start = min((c['start_ms'] for c in components), default=0)
  end = max((c['end_ms'] for c in components), default=0)
  status = results.run_status(context, [c['state'] for c in components])
  section = {
    'run_id': record.run_id,
    'pipeline': record.pipeline_name,
    'status': status,
    'started': results.iso_seconds(start) if start else None,
    'seconds': round((end - start) / 1000, 1),
    'components': components,
    'failure': custom_property(context, results.RUN_FAILURE),
    'executed': [c['id'] for c in components if c['state'] == 'complete'],
    'cached': [c['id'] for c in components if c['state'] == 'cached'],
  }
  section.update(outcome(record).to_json())
  section.pop('search', None)  # the tuning section has it whole
  return section


def outcome(record: results.RunRecord) -> RunOutcome:
  """The run's blessing and why, metrics and push (results.summarize); not
  judged when the Evaluator did not finish."""
  evaluator = record.execution('Evaluator')
  if evaluator is not None and results.STATES.get(
    evaluator.last_known_state
  ) in ('complete', 'cached'):
    return results.summarize(record)
  return RunOutcome(
    blessed=None,
    blessing_reason=(
      'not judged: the Evaluator did not finish'
      if evaluator is not None
      else 'not judged: the run did not reach the Evaluator'
    ),
    baseline_model=None,
    metrics={},
    slices={},
    pushed=False,
    pushed_version=None,
    pushed_path=None,
    model_uri=None,
    search=None,
  )


def _feature_name(feature) -> str:
  return '.'.join(feature.path.step) or feature.name


def _histogram(num_stats) -> List[Dict[str, float]]:
  """The standard (equal-width) histogram's buckets."""
  for histogram in num_stats.histograms:
    if histogram.type == histogram.STANDARD:
      return [
        {'low': b.low_value, 'high': b.high_value, 'count': b.sample_count}
        for b in histogram.buckets
      ]
  return []


def _feature_stats(feature, text: bool = False) -> Dict[str, Any]:
  """One feature's statistics; `text`: a free-text column (the spec's
  `features.text`), whose values are each near-unique, so its top values
  say nothing and are not listed."""
  kind = feature.WhichOneof('stats')
  stats = getattr(feature, kind)
  common = stats.common_stats
  entry: Dict[str, Any] = {
    'name': _feature_name(feature),
    'kind': kind,
    'count': int(common.num_non_missing),
    'missing': int(common.num_missing),
  }
  if kind == 'num_stats':
    entry.update(
      {
        'mean': stats.mean,
        'std': stats.std_dev,
        'min': stats.min,
        'max': stats.max,
        'median': stats.median,
        'zeros': int(stats.num_zeros),
        'histogram': _histogram(stats),
      }
    )
  elif kind == 'string_stats':
    # TFDV keeps no binary value (an image's bytes): it names them all
    # BINARY_VALUE; a long text value (a review) is shown by its start.
    binary = bool(stats.top_values) and all(
      v.value == BINARY_VALUE for v in stats.top_values
    )
    entry.update(
      {
        'unique': int(stats.unique),
        'binary': binary,
        'text': text and not binary,
        'average_length': stats.avg_length,
        'top_values': []
        if binary or text
        else [
          {'value': _shortened(v.value), 'count': v.frequency}
          for v in stats.top_values[:TOP_VALUES]
        ],
      }
    )
  return entry


BINARY_VALUE = '__BYTES_VALUE__'
SHOWN_CHARACTERS = 60


def _shortened(text: str) -> str:
  if len(text) <= SHOWN_CHARACTERS:
    return text
  return text[: SHOWN_CHARACTERS - 1].rstrip() + '\u2026'


def _split_protos(artifacts, filename: str, message_type):
  """(split, parsed proto) for each Split-<name>/<filename> of `artifacts`."""
  for artifact in artifacts:
    for split in _splits(artifact.uri):
      path = os.path.join(artifact.uri, f'Split-{split}', filename)
      if os.path.isfile(path):
        with open(path, 'rb') as f:
          yield split, message_type.FromString(f.read())


def data_section(record: results.RunRecord) -> Dict[str, Any]:
  from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2  # pylint: disable=g-import-not-at-top

  section: Dict[str, Any] = {'splits': {}, 'anomalies': {}}
  text = set(text_columns(record))
  for split, stats in _split_protos(
    record.artifacts('StatisticsGen', 'statistics'),
    'FeatureStats.pb',
    statistics_pb2.DatasetFeatureStatisticsList,
  ):
    for dataset in stats.datasets:
      section['splits'][split] = {
        'examples': int(dataset.num_examples),
        'features': [
          _feature_stats(f, _feature_name(f) in text) for f in dataset.features
        ],
      }
  for split, anomalies in _split_protos(
    record.artifacts('ExampleValidator', 'anomalies'),
    'SchemaDiff.pb',
    anomalies_pb2.Anomalies,
  ):
    section['anomalies'][split] = [
      {
        'feature': name,
        'short': info.short_description,
        'description': info.description,
      }
      for name, info in sorted(anomalies.anomaly_info.items())
    ]
  return section


def text_columns(record: results.RunRecord) -> List[str]:
  """The run's free-text columns, as its Transform was given them (the
  spec's `features.text`, in the custom_config it recorded)."""
  transform = record.execution('Transform')
  config = custom_property(transform, 'custom_config') if transform else None
  try:
    features = json.loads(config or '{}').get('features') or {}
  except (ValueError, AttributeError):
    return []
  return list(features.get('text') or [])


def _splits(uri: str) -> List[str]:
  if not os.path.isdir(uri):
    return []
  return sorted(
    name[len('Split-') :]
    for name in os.listdir(uri)
    if name.startswith('Split-')
  )


def tuning_section(record: results.RunRecord) -> Optional[Dict[str, Any]]:
  """The Tuner's search report, its trials and `summary`: its line."""
  section = results.search_report(record, trials=True)
  if section is None:
    return None
  section['summary'] = section.get('line', '')
  # A Hyperband trial may go on from its parent's epochs: then the epoch
  # it reached is not the epochs it trained, and the table shows both.
  section['continued'] = any(
    t.get('to_epoch') not in (None, t.get('epochs'))
    for t in section.get('trials', [])
  )
  return section


def training_section(record: results.RunRecord) -> Optional[Dict[str, Any]]:
  runs = record.artifacts('Trainer', 'model_run')
  if not runs:
    return None
  section: Dict[str, Any] = {
    'hyperparameters': {},
    'history': None,
    'base_model': None,
    'predictions': None,
  }
  for name, key in (
    (HPARAMS_FILE, 'hyperparameters'),
    (HISTORY_FILE, 'history'),
    (PREDICTIONS_FILE, 'predictions'),
  ):
    path = os.path.join(runs[0].uri, name)
    if os.path.isfile(path):
      with open(path) as f:
        section[key] = json.load(f)
  base = record.artifacts('Trainer', 'base_model', kinds=results.INPUT_EVENTS)
  if base:
    section['base_model'] = {'uri': base[0].uri, 'artifact_id': base[0].id}
  return section


def _thresholds(evaluation_uri: str) -> Dict[str, Dict[str, Any]]:
  """TFMA metric name -> the overall slice's threshold (lower, upper,
  change), from the eval config the Evaluator saved beside its results."""
  path = os.path.join(evaluation_uri, 'eval_config.json')
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    config = json.load(f).get('evalConfig', {})
  found: Dict[str, Dict[str, Any]] = {}
  for metrics_spec in config.get('metricsSpecs', []):
    for metric in metrics_spec.get('metrics', []):
      name = CLASS_TO_METRIC.get(metric.get('className'))
      for gate in metric.get('perSliceThresholds', []):
        overall = any(not spec for spec in gate.get('slicingSpecs', []))
        if not name or not overall:
          continue
        threshold = gate.get('threshold', {})
        value = threshold.get('valueThreshold', {})
        change = threshold.get('changeThreshold', {})
        found[name] = {
          'lower': value.get('lowerBound'),
          'upper': value.get('upperBound'),
          'change': change.get('absolute'),
          'direction': change.get('direction'),
        }
  return found


def _model_values(per_slice) -> Dict[str, Dict[str, float]]:
  """metric name -> {candidate, baseline, diff} for one slice."""
  values: Dict[str, Dict[str, float]] = {}
  for item in per_slice.metric_keys_and_values:
    key = item.key
    if not item.value.HasField('double_value'):
      continue
    role = (
      'diff'
      if key.is_diff
      else 'baseline'
      if key.model_name == 'baseline'
      else 'candidate'
    )
    values.setdefault(tasks.spec_name(key.name), {})[role] = (
      tasks.finite_or_none(item.value.double_value.value)
    )
  return values


def _confusion(plot) -> Optional[Dict[str, Any]]:
  """The confusion matrix a plot holds: binary at the threshold nearest
  0.5, or the multiclass matrix."""
  if plot.HasField('confusion_matrix_at_thresholds'):
    matrices = plot.confusion_matrix_at_thresholds.matrices
    if not matrices:
      return None
    m = min(matrices, key=lambda m: abs(m.threshold - 0.5))
    return {
      'threshold': m.threshold,
      'labels': ['0', '1'],
      'rows': [
        [m.true_negatives, m.false_positives],
        [m.false_negatives, m.true_positives],
      ],
    }
  if plot.HasField('multi_class_confusion_matrix_at_thresholds'):
    matrices = plot.multi_class_confusion_matrix_at_thresholds.matrices
    if not matrices:
      return None
    entries = matrices[0].entries
    classes = sorted(
      {e.actual_class_id for e in entries}
      | {e.predicted_class_id for e in entries if e.predicted_class_id >= 0}
    )
    index = {c: i for i, c in enumerate(classes)}
    rows = [[0.0] * len(classes) for _ in classes]
    for e in entries:
      if e.predicted_class_id in index and e.actual_class_id in index:
        rows[index[e.actual_class_id]][index[e.predicted_class_id]] += (
          e.num_weighted_examples
        )
    return {
      'threshold': matrices[0].threshold,
      'labels': [str(c) for c in classes],
      'rows': rows,
    }
  return None


# The Transform's vocabulary of a STRING label's class names, by class id
# (modules/preprocessing.py LABEL_VOCABULARY), inside its transform graph.
LABEL_CLASSES = os.path.join('transform_fn', 'assets', 'label_classes')


def class_names(record: results.RunRecord) -> Optional[List[str]]:
  """A STRING label's class names by class id, from the run's Transform
  graph; None for class indices (or no Transform)."""
  graphs = record.artifacts('Transform', 'transform_graph')
  if not graphs:
    return None
  path = os.path.join(graphs[0].uri, LABEL_CLASSES)
  if not os.path.isfile(path):
    return None
  with open(path, encoding='utf-8', errors='replace') as f:
    return [line.rstrip('\n') for line in f]


def with_class_names(
  matrix: Dict[str, Any], names: Optional[List[str]]
) -> Dict[str, Any]:
  """The matrix with each class id's name (when the label has names) and
  per-class precision and recall (None where a class was never predicted,
  or never present)."""
  if names:
    matrix['labels'] = [
      names[int(c)] if int(c) < len(names) else c for c in matrix['labels']
    ]
  rows = matrix['rows']
  per_class = []
  for i, label in enumerate(matrix['labels']):
    predicted = sum(row[i] for row in rows)
    actual = sum(rows[i])
    per_class.append(
      {
        'class': label,
        'support': actual,
        'precision': rows[i][i] / predicted if predicted else None,
        'recall': rows[i][i] / actual if actual else None,
      }
    )
  matrix['per_class'] = per_class
  return matrix


def _calibration(plot, bins: int = 10) -> Optional[List[Dict[str, float]]]:
  """TFMA's calibration histogram (a thousand buckets by prediction) in
  `bins` equal-width bins: per bin the examples, the mean prediction and
  the observed rate of the positive label."""
  if not plot.HasField('calibration_histogram_buckets'):
    return None
  sums = [[0.0, 0.0, 0.0] for _ in range(bins)]  # examples, predicted, label
  for b in plot.calibration_histogram_buckets.buckets:
    count = b.num_weighted_examples.value
    if count <= 0:
      continue
    low = min(max(b.lower_threshold_inclusive, 0.0), 1.0)
    index = min(int(low * bins), bins - 1)
    sums[index][0] += count
    sums[index][1] += b.total_weighted_refined_prediction.value
    sums[index][2] += b.total_weighted_label.value
  return [
    {
      'low': i / bins,
      'high': (i + 1) / bins,
      'count': n,
      'predicted': p / n,
      'observed': y / n,
    }
    for i, (n, p, y) in enumerate(sums)
    if n > 0
  ]


def evaluation_section(record: results.RunRecord) -> Optional[Dict[str, Any]]:
  found = record.artifacts('Evaluator', 'evaluation')
  if not found or not os.path.isdir(found[0].uri):
    return None
  uri = found[0].uri
  slices = {}
  for per_slice in tfma_files.load_metrics(uri):
    name = results.slice_name(per_slice.slice_key)
    values = _model_values(per_slice)
    candidate = {
      k: v['candidate'] for k, v in values.items() if 'candidate' in v
    }
    undefined = results.undefined_metrics(candidate)
    slices[name] = {
      'metrics': {
        k: v
        for k, v in values.items()
        if k not in undefined and k != results.MEAN_LABEL
      },
      'undefined': undefined,
    }
  section: Dict[str, Any] = {
    'slices': slices,
    'thresholds': _thresholds(uri),
    'confusion': None,
    'calibration': None,
  }
  for per_slice in tfma_files.load_plots(uri):
    if results.slice_name(per_slice.slice_key) != 'overall':
      continue
    for item in per_slice.plot_keys_and_values:
      if item.key.model_name not in ('', 'candidate'):
        continue
      section['confusion'] = section['confusion'] or _confusion(item.value)
      section['calibration'] = section['calibration'] or _calibration(
        item.value
      )
  if section['confusion']:
    section['confusion'] = with_class_names(
      section['confusion'], class_names(record)
    )
  return section


def input_files(tree: lineage.Node) -> List[Dict[str, Any]]:
  """The files ExampleGen read, each with TFX's fingerprint of its input
  (on the Examples artifact above ExampleGen's execution in the tree)."""
  files: Dict[str, Dict[str, Any]] = {}

  def visit(node: lineage.Node, parent: Optional[lineage.Node]) -> None:
    for path in node.properties.get('input_files', []):
      files[path] = {
        'path': path,
        'fingerprint': (
          parent.properties.get('input_fingerprint') if parent else None
        ),
      }
    for child in node.children:
      visit(child, node)

  visit(tree, None)
  return list(files.values())


def lineage_section(record: results.RunRecord) -> Optional[Dict[str, Any]]:
  """The lineage of the model the run pushed, else of the model it
  trained. A Pusher that pushed nothing still records a PushedModel
  artifact (pushed = 0): that is not a model that came from anywhere."""
  pushed = [
    a
    for a in record.artifacts('Pusher', 'pushed_model')
    if custom_property(a, 'pushed') == 1
  ]
  if pushed:
    version = custom_property(pushed[0], 'pushed_version')
    what = (
      f'the pushed model (version {version})'
      if version
      else ('the pushed model')
    )
    artifact = pushed[0]
  else:
    trained = record.artifacts('Trainer', 'model')
    if not trained:
      return None
    what, artifact = 'the trained model (nothing was pushed)', trained[0]
  tree = lineage.trace(record.store, f'artifact:{artifact.id}')
  return {
    'from': what,
    'artifact_id': artifact.id,
    'tree': tree,
    'input_files': input_files(tree),
  }


def gather(
  store: mlmd.MetadataStore, run_id: Optional[str] = None
) -> Dict[str, Any]:
  """Every section of run `run_id`'s report (the newest run when None)."""
  record = find_run(store, run_id)
  return {
    'run': run_section(record),
    'data': data_section(record),
    'tuning': tuning_section(record),
    'training': training_section(record),
    'evaluation': evaluation_section(record),
    'lineage': lineage_section(record),
    'generated': datetime.datetime.now().isoformat(timespec='seconds'),
  }
