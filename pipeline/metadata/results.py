"""What a run did, read back from ML Metadata: per-component state and
duration, the blessing and why, the key metrics and the push."""

import datetime
import json
import os
import socket
from typing import Any, Dict, List, Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from components import search_summary
from components.example_gens import EXAMPLE_GEN_IDS
from components.processes import process_alive
from modules import tasks
from pipeline.metadata import tfma_files
from pipeline.metadata.summary import (
  ComponentRun,
  RunOutcome,
  SearchReport,
  SliceMetrics,
)

STATES = {
  metadata_store_pb2.Execution.COMPLETE: 'complete',
  metadata_store_pb2.Execution.CACHED: 'cached',
  metadata_store_pb2.Execution.FAILED: 'failed',
  metadata_store_pb2.Execution.RUNNING: 'running',
  metadata_store_pb2.Execution.NEW: 'new',
  metadata_store_pb2.Execution.CANCELED: 'canceled',
}
_OUTPUT = (
  metadata_store_pb2.Event.OUTPUT,
  metadata_store_pb2.Event.DECLARED_OUTPUT,
)
_INPUT = (
  metadata_store_pb2.Event.INPUT,
  metadata_store_pb2.Event.DECLARED_INPUT,
)
INPUT_EVENTS = _INPUT  # for RunRecord.artifacts(kinds=...)
RESOLVER_SUFFIX = '_resolver'
NOT_PUSHED_REASON = 'not_pushed_reason'  # components/pusher.py writes it
PUSHED_MODEL_TYPE = 'PushedModel'
PUSHED_MODEL_KEY = 'pushed_model'  # the Pusher's output key
# On a PushedModel recorded after its run was stopped between the Pusher's
# rename and TFX's publish (pipeline/runners/session.py reconcile_pushes):
# the run that recorded it. Its Pusher execution never completed.
PUSH_RECORDED_BY = 'push_recorded_by'
# The local runner writes the run's context itself before TFX does
# (pipeline/runners/session.py), with who runs it and, at the end, how it
# ended; a run with executions still RUNNING and no outcome whose process
# is gone was killed.
RUN_CONTEXT_TYPE = 'pipeline_run'
RUN_HOST = 'runner_host'
RUN_PID = 'runner_pid'
RUN_PIPELINE = 'runner_pipeline'
RUN_OUTCOME = 'run_outcome'  # succeeded | failed | interrupted | terminated
RUN_FAILURE = 'run_failure'  # a failed run: '<component> failed: <reason>'
# The engine a Beam component's jobs ran on (pipeline/engines): a context
# of this type, named by the engine, with the executions that ran there
# attributed to it by the runner when the run ends. A context rather than a
# property of the execution: writing the execution again would move its
# last-update time, which is when it finished.
ENGINE_CONTEXT_TYPE = 'beam_engine'


def run_status(context, states: List[str]) -> str:
  """A run's status from its pipeline_run context and its executions'
  states: complete, failed, running, interrupted (Ctrl-C), terminated
  (SIGTERM), or killed (no outcome recorded and the runner's process is
  gone)."""
  outcome = custom_property(context, RUN_OUTCOME)
  if outcome in ('interrupted', 'terminated'):
    return outcome
  host = custom_property(context, RUN_HOST)
  pid = custom_property(context, RUN_PID)
  if outcome is None and pid and host == socket.gethostname():
    # A local run that has not said how it ended: running while its
    # process lives, else killed -- also when it died between components
    # (TFX logs a component as running before it registers its execution).
    return 'running' if process_alive(int(pid)) else 'killed'
  if 'running' in states:
    return 'running'
  if 'failed' in states or outcome == 'failed':
    return 'failed'
  return 'complete'


def iso_seconds(millis: int) -> str:
  """A store's millisecond timestamp as local ISO time, to the second."""
  return datetime.datetime.fromtimestamp(millis / 1000).isoformat(
    timespec='seconds'
  )


def engines_of(store: mlmd.MetadataStore) -> Dict[int, str]:
  """execution id -> the engine its Beam jobs ran on, for every execution
  the runner recorded one for (one query per engine)."""
  found = {}
  for ctx in store.get_contexts_by_type(ENGINE_CONTEXT_TYPE):
    for execution in store.get_executions_by_context(ctx.id):
      found[execution.id] = ctx.name
  return found


def custom_property(message: Any, key: str) -> Any:
  """An artifact's or execution's custom property as a plain value, or None."""
  if key not in message.custom_properties:
    return None
  value = message.custom_properties[key]
  kind = value.WhichOneof('value')
  return getattr(value, kind) if kind else None


class RunRecord:
  """The executions and artifacts of one pipeline run in an MLMD store."""

  def __init__(
    self,
    store: mlmd.MetadataStore,
    pipeline_name: str,
    run_id: str,
    executions=None,
    node_of: Optional[Dict[int, str]] = None,
    engine_of: Optional[Dict[int, str]] = None,
  ):
    """`executions`, `node_of` (execution id -> node id) and `engine_of`
    (execution id -> engine), when given, spare the queries that find them
    (lineage.list_runs reads every run's at once)."""
    self.store = store
    self.pipeline_name = pipeline_name
    self.run_id = run_id
    if executions is None:
      context = store.get_context_by_type_and_name('pipeline_run', run_id)
      executions = (
        store.get_executions_by_context(context.id) if context else []
      )
    self.executions = sorted(executions, key=lambda e: e.id)
    if node_of is None:
      node_of = {}
      prefix = pipeline_name + '.'
      for execution in self.executions:
        for ctx in store.get_contexts_by_execution(execution.id):
          if ctx.name.startswith(prefix):
            node_of[execution.id] = ctx.name[len(prefix) :]
    self._node_of = node_of
    self._engine_of = engine_of if engine_of is not None else engines_of(store)

  def components(self) -> List[ComponentRun]:
    result = []
    for e in self.executions:
      node = self._node_of.get(e.id, e.type)
      seconds = (
        max(0, e.last_update_time_since_epoch - e.create_time_since_epoch)
        / 1000.0
      )
      result.append(
        ComponentRun(
          id=node,
          state=STATES.get(e.last_known_state, 'unknown'),
          seconds=round(seconds, 3),
          execution_id=e.id,
          is_resolver=node.endswith(RESOLVER_SUFFIX),
          engine=self._engine_of.get(e.id),
        )
      )
    return result

  def node_of(self, execution_id: int) -> Optional[str]:
    """The node id of one of the run's executions."""
    return self._node_of.get(execution_id)

  def execution(self, node_id: str) -> Optional[metadata_store_pb2.Execution]:
    found = [e for e in self.executions if self._node_of.get(e.id) == node_id]
    return found[-1] if found else None

  def artifacts(
    self, node_id: str, key: str, kinds=_OUTPUT
  ) -> List[metadata_store_pb2.Artifact]:
    """Artifacts an execution of `node_id` in this run read/wrote at `key`."""
    execution = self.execution(node_id)
    if execution is None:
      return []
    ids = [
      ev.artifact_id
      for ev in self.store.get_events_by_execution_ids([execution.id])
      if ev.type in kinds and any(s.key == key for s in ev.path.steps)
    ]
    return self.store.get_artifacts_by_id(ids) if ids else []

  def examples(self) -> List[metadata_store_pb2.Artifact]:
    """The Examples the run's ExampleGen wrote, whichever reader it was
    (CSV or TFRecord import)."""
    return [
      artifact
      for node in EXAMPLE_GEN_IDS
      for artifact in self.artifacts(node, 'examples')
    ]


def latest_blessed_model(
  store: mlmd.MetadataStore, pipeline_name: str
) -> Optional[metadata_store_pb2.Artifact]:
  """The newest Model the Evaluator of `pipeline_name` blessed, or None.

  Raises:
    LookupError: no pipeline of that name has run against this store.
  """
  context = store.get_context_by_type_and_name('pipeline', pipeline_name)
  if context is None:
    raise LookupError(pipeline_name)
  blessed_ids = {
    custom_property(a, 'current_model_id')
    for a in store.get_artifacts_by_context(context.id)
    if custom_property(a, 'blessed') == 1
    and custom_property(a, 'current_model_id') is not None
  }
  models = store.get_artifacts_by_id(sorted(blessed_ids)) if blessed_ids else []
  return max(models, key=lambda m: m.id) if models else None


# Binary metrics that need both classes in a slice (TFMA names); on a slice
# whose labels are all one class they are undefined, whatever TFMA shows.
TWO_CLASS_METRICS = tasks.BinaryTask.two_class_metrics
MEAN_LABEL = 'mean_label'


def slice_name(slice_key) -> str:
  """'overall', or 'feature=value[, feature=value]' for a TFMA slice key."""
  parts = []
  for key in slice_key.single_slice_keys:
    kind = key.WhichOneof('kind')
    value = getattr(key, kind) if kind else ''
    if isinstance(value, bytes):
      value = value.decode(errors='replace')
    parts.append(
      f'{key.column}={value:g}'
      if isinstance(value, float)
      else f'{key.column}={value}'
    )
  return ', '.join(parts) or 'overall'


def _values(per_slice) -> Dict[str, Optional[float]]:
  """A slice's metrics by the spec's names (modules/tasks.py); a value
  that is not a number (NaN: undefined on this slice) is None."""
  values = {}
  for item in per_slice.metric_keys_and_values:
    key = item.key
    if key.is_diff or key.model_name not in ('', 'candidate'):
      continue
    if item.value.HasField('double_value'):
      value = tasks.finite_or_none(item.value.double_value.value)
      values[tasks.spec_name(key.name)] = (
        None if value is None else round(value, 6)
      )
  return values


def one_class(values: Dict[str, float]) -> bool:
  """A binary slice whose labels are all one class (mean label 0 or 1)."""
  mean = values.get(MEAN_LABEL)
  return mean is not None and mean in (0.0, 1.0)


def undefined_metrics(values: Dict[str, Optional[float]]) -> List[str]:
  """The metrics of a slice's `values` that are undefined there: the
  two-class ones, on a slice whose labels are all one class, and any that
  is not a number."""
  return sorted(
    m
    for m in values
    if values[m] is None or (one_class(values) and m in TWO_CLASS_METRICS)
  )


def slice_metrics(evaluation_uri: str) -> Dict[str, Dict[str, Any]]:
  """Per slice name: its metric values, and the metrics undefined there
  (two-class metrics on a one-class slice: reported, never read as 0)."""
  result = {}
  for per_slice in tfma_files.load_metrics(evaluation_uri):
    values = _values(per_slice)
    undefined = undefined_metrics(values)
    reason = None
    if undefined:
      reason = (
        f'one class in the slice (mean label {values[MEAN_LABEL]:g})'
        if one_class(values)
        else 'not a number on this slice (e.g. '
        'r2 where every label is the same)'
      )
    result[slice_name(per_slice.slice_key)] = {
      'metrics': {k: v for k, v in values.items() if k not in undefined},
      'undefined': undefined,
      'reason': reason,
    }
  return result


def metric_values(evaluation_uri: str) -> Dict[str, float]:
  """The overall slice's metric values."""
  return slice_metrics(evaluation_uri).get('overall', {}).get('metrics', {})


def _failures(
  evaluation_uri: str, slices: Optional[Dict[str, Dict[str, Any]]] = None
) -> List[str]:
  result = tfma_files.load_validation_result(evaluation_uri)
  if result is None:
    return ['the Evaluator wrote no validation result']
  slices = slices or {}
  lines = []
  for per_slice in result.metric_validations_per_slice:
    name = slice_name(per_slice.slice_key)
    where = '' if name == 'overall' else f' (slice {name})'
    undefined = slices.get(name, {}).get('undefined', [])
    for failure in per_slice.failures:
      key = failure.metric_key
      metric = tasks.spec_name(key.name)
      what = f'{metric} change vs. baseline' if key.is_diff else metric
      if metric in undefined:
        lines.append(
          f'{what} is undefined{where}: '
          f'{slices[name]["reason"]}; gate a wider slice or drop '
          'this slice threshold'
        )
        continue
      value = failure.metric_value
      shown = (
        f'{value.double_value.value:.4f}'
        if value.HasField('double_value')
        else '?'
      )
      lines.append(
        f'{what} = {shown} fails '
        f'{_threshold_text(failure.metric_threshold)}{where}'
      )
  if result.missing_thresholds:
    lines.append('a thresholded metric could not be computed')
  for missing in result.missing_slices:
    lines.append(f'slice {missing} is missing from the eval data')
  return lines


def _threshold_text(threshold) -> str:
  parts = []
  if threshold.HasField('value_threshold'):
    v = threshold.value_threshold
    if v.HasField('lower_bound'):
      parts.append(f'>= {v.lower_bound.value:g}')
    if v.HasField('upper_bound'):
      parts.append(f'<= {v.upper_bound.value:g}')
  if threshold.HasField('change_threshold'):
    c = threshold.change_threshold
    sign = '>=' if c.direction == 2 else '<='  # 2: HIGHER_IS_BETTER
    parts.append(f'change {sign} {c.absolute.value + 0.0:g}')  # no -0
  return ' and '.join(parts) or 'threshold'


SEARCH_REPORT = 'search_report.json'  # components/tuner.py writes it


def search_report(
  record: RunRecord, trials: bool = False
) -> Optional[Dict[str, Any]]:
  """What the run's Tuner search did (its report; with `trials`, each
  trial's record too), or None when no Tuner ran. Its `line` is said anew
  from the trials, so a run the Tuner reported in older words reads as a new
  one does."""
  results = record.artifacts('Tuner', 'tuner_results')
  if not results:
    return None
  path = os.path.join(results[0].uri, SEARCH_REPORT)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    report = json.load(f)
  if report.get('trials'):
    report['line'] = search_summary.describe(report)
  if not trials:
    report.pop('trials', None)
  return report


def _blessing(
  record: RunRecord,
  slices: Dict[str, Dict[str, Any]],
  judged_against_baseline: bool,
) -> Dict[str, Any]:
  """`blessed` and `blessing_reason` of a run whose Evaluator blessed or
  not (both None when it wrote no blessing)."""
  blessings = record.artifacts('Evaluator', 'blessing')
  if not blessings:
    return {'blessed': None, 'blessing_reason': None}
  blessed = custom_property(blessings[0], 'blessed') == 1
  if blessed:
    reason = 'all thresholds met' + (
      ' against the last blessed model'
      if judged_against_baseline
      else ' (no earlier blessed model to compare)'
    )
  else:
    evaluations = record.artifacts('Evaluator', 'evaluation')
    failures = _failures(evaluations[0].uri, slices) if evaluations else []
    reason = '; '.join(failures) or 'not blessed'
  return {'blessed': blessed, 'blessing_reason': reason}


def _push(record: RunRecord) -> Dict[str, Any]:
  """`pushed`, its version and folder; and, when the Pusher ran and pushed
  nothing, why (components/pusher.py)."""
  push = {'pushed': False, 'pushed_version': None, 'pushed_path': None}
  pushes = record.artifacts('Pusher', PUSHED_MODEL_KEY)
  if pushes and custom_property(pushes[0], 'pushed') == 1:
    push.update(
      pushed=True,
      pushed_version=custom_property(pushes[0], 'pushed_version'),
      pushed_path=custom_property(pushes[0], 'pushed_destination'),
    )
  elif pushes:
    push['not_pushed_reason'] = custom_property(pushes[0], NOT_PUSHED_REASON)
  return push


def summarize(record: RunRecord) -> RunOutcome:
  """Blessing (with reasons), metrics, baseline and push of a run."""
  models = record.artifacts('Trainer', 'model')
  baseline = record.artifacts('Evaluator', 'baseline_model', kinds=_INPUT)
  evaluations = record.artifacts('Evaluator', 'evaluation')
  slices = slice_metrics(evaluations[0].uri) if evaluations else {}
  search = search_report(record)
  return RunOutcome(
    **_blessing(record, slices, bool(baseline)),
    baseline_model=baseline[0].uri if baseline else None,
    metrics=slices.get('overall', {}).get('metrics', {}),
    slices={
      name: SliceMetrics(**entry)
      for name, entry in slices.items()
      if name != 'overall'
    },
    model_uri=models[0].uri if models else None,
    search=None if search is None else SearchReport(**search),
    **_push(record),
  )
