"""The local runner: LocalDagRunner, Beam's DirectRunner, SQLite ML Metadata.

Thin on purpose: it checks the inputs, works out paths, calls the shared
`create_pipeline`, runs it, and reads what happened back from ML Metadata.
"""

import contextlib
import datetime
import json
import logging
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import absl.logging
from tfx.dsl.compiler import compiler, constants
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.portable import runtime_parameter_utils

from components import fault_points, parallel_search
from pipeline import paths
from pipeline.definition.pipeline import (
  TUNER_FN,
  Environment,
  create_pipeline,
  create_schema_pipeline,
  push_base_directory,
)
from pipeline.definition.spec import PipelineSpec
from pipeline.engines import registry as engines
from pipeline.errors import ComponentFailed, PipelineError, one_line
from pipeline.metadata import results
from pipeline.metadata import store as metadata_lib
from pipeline.metadata.summary import RunSummary
from pipeline.report import render
from pipeline.runners import preflight, session
from pipeline.runners import progress as progress_lib
from pipeline.runners.environment import build_environment
from pipeline.runners.signals import Terminated

Progress = Callable[[str], None]


def metadata_config(location: str):
  """SQLite file or mysql:// URI (pipeline/metadata/store.py)."""
  return metadata_lib.connection_config(location)


def local_environment(
  spec: PipelineSpec,
  base_model_uri: Optional[str] = None,
  column_kinds: Optional[Dict[str, str]] = None,
) -> Environment:
  return build_environment(
    pipeline_root=spec.runner.pipeline_root,
    beam_args=spec.runner.pipeline_args(),
    enable_cache=spec.runner.enable_cache,
    metadata_connection_config=metadata_config(spec.runner.metadata),
    base_model_uri=base_model_uri,
    column_kinds=column_kinds,
  )


class _ProgressHandler(logging.Handler):
  """Turns LocalDagRunner's 'Component X is running/finished.' log records,
  and the components' own progress records (progress.PROGRESS_LOGGER), into
  the reporter's events, and remembers the running component."""

  def __init__(self, reporter: progress_lib.Lines):
    super().__init__(level=logging.INFO)
    self._reporter = reporter
    self._started: Dict[str, float] = {}
    self.running: Optional[str] = None

  def emit(self, record: logging.LogRecord) -> None:
    if record.name == progress_lib.PROGRESS_LOGGER:
      if self.running and hasattr(record, 'steps'):
        self._reporter.advanced(
          self.running, record.getMessage(), record.step, record.steps
        )
      return
    if not record.name.startswith('absl') or len(record.args or ()) != 1:
      return
    node = str(record.args[0])
    if record.msg == 'Component %s is running.':
      self._started[node] = time.monotonic()
      self.running = node
      self._reporter.started(node)
    elif record.msg == 'Component %s is finished.':
      seconds = time.monotonic() - self._started.get(node, time.monotonic())
      self.running = None
      self._reporter.finished(node, seconds)


@contextlib.contextmanager
def _guarded(
  spec: PipelineSpec,
  env: Environment,
  run_id: str,
  progress: Progress,
  wait: bool,
):
  """Holds the pipeline's lock, registers the run in the store (the check
  that the store can be written), and gives the run its own temp folder;
  yields the store. How the run ended is recorded on the way out, an
  interruption (Ctrl-C) or SIGTERM (pipeline/runners/signals.py) included."""
  # The lock first: a run waiting for another is not a run yet, and does
  # not write to the store that the other is writing to.
  lock = session.PipelineLock(spec.runner.pipeline_root, spec.name)
  lock.acquire(run_id, wait=wait, progress=progress)
  try:
    store = session.register_run(
      env.metadata_connection_config,
      spec.name,
      run_id,
      metadata_lib.describe(spec.runner.metadata),
    )
    # The body sets succeeded, or failed and why, when it ends.
    outcome = ['failed', None]
    try:
      engine = engines.get(spec.runner.engine)
      with (
        session.scoped_tempdir(),
        session.local_beam_dependencies(engine.local_workers),
      ):
        yield store, outcome
    except KeyboardInterrupt:
      outcome[0] = 'interrupted'
      raise
    except Terminated:
      outcome[0] = 'terminated'
      raise
    finally:
      # Each record on its own: a failure to write where the Beam
      # components ran must not cost the record of how the run ended. The
      # run's own outcome (or error) matters more; these are logged.
      try:
        session.finish_run(store, run_id, outcome[0], outcome[1])
      except Exception as e:  # pylint: disable=broad-except
        logging.warning(
          'could not record how run %s ended: %s', run_id, one_line(e)
        )
      try:
        session.record_engine(
          store, spec.name, run_id, spec.runner.engine, engines.BEAM_COMPONENTS
        )
      except Exception as e:  # pylint: disable=broad-except
        logging.warning(
          'could not record where run %s ran its Beam jobs: %s',
          run_id,
          one_line(e),
        )
  finally:
    lock.release()


def _warm_tuning_workers(spec: PipelineSpec):
  """With parallel trials, their workers start as the run begins, so that
  they have imported TensorFlow by the time the Tuner needs them
  (components/parallel_search.py); stopped when the run ends."""
  asked = spec.tuner.parallel_trials  # a number, or 'auto'
  processes = (
    asked if isinstance(asked, int) else parallel_search.available_cores()
  )
  if not spec.tuner.enabled or processes < 2:
    return contextlib.nullcontext()
  preload = (
    None if spec.uses_module_file('tuner_fn') else TUNER_FN.rpartition('.')[0]
  )
  return parallel_search.warm_workers(processes - 1, preload)


def new_run_id() -> str:
  return datetime.datetime.now().isoformat()


def _execute(
  tfx_pipeline, run_id: str, progress: Progress
) -> Optional[Dict[str, str]]:
  """Runs a pipeline with LocalDagRunner; returns the failure, or None.

  A component failure does not raise; it is returned, named."""
  ir = compiler.Compiler().compile(tfx_pipeline)
  runtime_parameter_utils.substitute_runtime_parameter(
    ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
  )
  # Progress comes from LocalDagRunner's INFO records, so absl must emit INFO
  # (set through absl's verbosity flag: executors re-parse absl flags, which
  # would reset a plain logger level). Terminal noise is the handlers' job.
  reporter = progress_lib.as_reporter(progress)
  handler = _ProgressHandler(reporter)
  loggers = [
    logging.getLogger('absl'),
    logging.getLogger(progress_lib.PROGRESS_LOGGER),
  ]
  for logger in loggers:
    logger.addHandler(handler)
  loggers[1].setLevel(logging.INFO)
  previous_verbosity = absl.logging.get_verbosity()
  absl.logging.set_verbosity(absl.logging.INFO)
  failure = None
  try:
    LocalDagRunner().run_with_ir(ir)
  except Exception as e:  # pylint: disable=broad-except
    # Reported, not swallowed: the caller puts it in the summary or raises.
    failure = {'component': handler.running or 'unknown', 'reason': one_line(e)}
    reporter.failed(failure['component'])
  finally:
    for logger in loggers:
      logger.removeHandler(handler)
    absl.logging.set_verbosity(previous_verbosity)
  return failure


def run_local(
  spec: PipelineSpec,
  progress: Progress = print,
  summary_json: Optional[str] = None,
  wait: bool = True,
) -> RunSummary:
  """Pre-flight checks, then run_checked (below)."""
  started = time.monotonic()
  return run_checked(
    preflight.run_preflight(spec), progress, summary_json, wait, started
  )


class SummaryNotWritten(PipelineError):
  """The run ended, and its summary could not be written. One line."""


def _prepare(checked: preflight.Preflight, progress: Progress) -> Optional[str]:
  """Says what the run will read and makes the SQLite store's folder;
  returns the base model's location (preflight.locate_base_model), or
  None when the spec has none."""
  spec = checked.spec
  progress(f'pipeline {spec.name}: {checked.rows} rows in {spec.data.path}')
  base_model = preflight.locate_base_model(spec)
  if base_model:
    what = 'pretrained encoder' if spec.model.pretrained() else 'base model'
    progress(f'{what}: {base_model}')
  if metadata_lib.kind(spec.runner.metadata) == 'sqlite':
    os.makedirs(os.path.dirname(spec.runner.metadata), exist_ok=True)
  return base_model


def _summarized(
  spec: PipelineSpec,
  store,
  run_id: str,
  failure: Optional[Dict[str, str]],
  summary_json: Optional[str],
  started: float,
) -> RunSummary:
  """The finished run's summary, written to `summary_json` (by default
  <pipeline_root>/summaries/<run id>.json) with its HTML report beside it;
  what could not be written, the summary says (`summary_error`,
  `report_error`)."""
  path = summary_json or os.path.join(
    spec.runner.pipeline_root, 'summaries', run_id.replace(':', '-') + '.json'
  )
  report, report_error = _write_report(
    store, run_id, os.path.splitext(path)[0] + '.html'
  )
  summary = _summary(
    spec,
    results.RunRecord(store, spec.name, run_id),
    failure,
    path,
    (report, report_error),
    started,
  )
  error = _write_summary(summary, path)
  if error:
    return summary.model_copy(
      update={'summary_error': error, 'summary_json': None}
    )
  return summary.model_copy(update={'summary_error': None})


def run_checked(
  checked: preflight.Preflight,
  progress: Progress = print,
  summary_json: Optional[str] = None,
  wait: bool = True,
  started: Optional[float] = None,
) -> RunSummary:
  """Runs the pipeline locally and returns the run's summary.

  Bad input (preflight.PreflightError) is raised before anything runs. A
  component failure does not raise: the summary says which one and why
  (status 'failed'), and is written to JSON like a success. Neither does a
  summary or report that cannot be written (a full disk): the summary
  says so (`summary_error`, `report_error`) and the run's outcome, already
  recorded in the store, stands.

  Args:
    checked: the pre-flight checks' result: the spec resolved against its
      data (preflight.run_preflight, which the CLI runs before it loads TFX,
      so that bad input is refused at once).
    progress: called with one line per component start and finish.
    summary_json: where to write the summary; by default
      <pipeline_root>/summaries/<run id>.json.
    wait: when another run of the pipeline holds its lock, wait for it
      (True) or raise session.RunRefused.
    started: time.monotonic() when the command started (the checks and
      TFX's import count towards the run's total time); by default, now.

  Returns:
    The summary (its keys: docs/cli.md, "The run summary's keys").
  """
  started = time.monotonic() if started is None else started
  spec = checked.spec
  base_model = _prepare(checked, progress)
  env = local_environment(spec, base_model, checked.column_kinds)
  tfx_pipeline = create_pipeline(spec, env)
  run_id = new_run_id()
  with (
    _guarded(spec, env, run_id, progress, wait) as (store, outcome),
    _warm_tuning_workers(spec),
  ):
    _record_stopped_pushes(store, spec, run_id, progress)
    failure = _execute(tfx_pipeline, run_id, progress)
    outcome[:] = (
      ['failed', f'{failure["component"]} failed: {failure["reason"]}']
      if failure
      else ['succeeded', None]
    )
  return _summarized(spec, store, run_id, failure, summary_json, started)


def _summary(
  spec: PipelineSpec,
  record: results.RunRecord,
  failure: Optional[Dict[str, str]],
  path: str,
  report: Tuple[Optional[str], Optional[str]],
  started: float,
) -> RunSummary:
  """The run's summary, as it is written to `path` (whether it could be is
  for the caller to add); `report`: its path or why not (_write_report)."""
  outcome = results.summarize(record)
  reason = outcome.blessing_reason
  if outcome.blessed and spec.evaluation.uses_default_rule:
    reason = 'default rule met: ' + spec.default_rule()
  return RunSummary(
    **{
      name: getattr(outcome, name)
      for name in outcome.model_fields_set
      if name != 'blessing_reason'
    },
    pipeline=spec.name,
    run_id=record.run_id,
    status='failed' if failure else 'succeeded',
    failed_component=failure and failure['component'],
    reason=failure and failure['reason'],
    components=record.components(),
    task=spec.task.name,
    blessing_rule=spec.blessing_rule(),
    blessing_reason=reason,
    metadata=metadata_lib.describe(spec.runner.metadata),
    pipeline_root=spec.runner.pipeline_root,
    summary_json=path,
    report=report[0],
    report_error=report[1],
    # The run's time is the command's: the report is part of it.
    total_seconds=round(time.monotonic() - started, 2),
  )


def _record_stopped_pushes(
  store, spec: PipelineSpec, run_id: str, progress: Progress
) -> None:
  """Records the pushes of earlier runs stopped between the Pusher's rename
  and its record (session.reconcile_pushes), before this run's Pusher
  compares its model with the newest version."""
  base = push_base_directory(spec)
  try:
    found = session.reconcile_pushes(store, spec.name, base, run_id)
  except Exception as e:  # pylint: disable=broad-except
    # The run itself does not depend on it; the next run tries again.
    progress(f'could not record the pushes found in {base}: {one_line(e)}')
    return
  for push in found:
    progress(
      f'recorded the push of version {push["version"]} by run '
      f'{push["run_id"]}, which stopped before it could '
      f'({push["path"]})'
    )


def _write_summary(summary: RunSummary, path: str) -> Optional[str]:
  """Writes the summary JSON whole or not at all (paths.atomic_file); None,
  or why not in one line (the run's outcome stands; the CLI says it)."""
  try:
    with paths.atomic_file(path, SummaryNotWritten, 'the run summary') as f:
      json.dump(summary.to_json(), f, indent=2, sort_keys=True)
      # Written, not yet flushed: where a full disk says so.
      fault_points.reached('run.write_summary')
  except SummaryNotWritten as e:
    return str(e)
  return None


def _write_report(
  store, run_id: str, output: str
) -> Tuple[Optional[str], Optional[str]]:
  """The run's HTML report beside its summary (pipeline/report), written
  whole or not at all: (its path, None), or (None, why not in one line).
  The run's own outcome stands either way; the summary says which."""
  try:
    render.write(store, run_id, output)
  except Exception as e:  # pylint: disable=broad-except
    return None, one_line(e)
  return output, None


SCHEMA_FILE = 'schema.pbtxt'  # in a SchemaGen artifact


def for_serving(schema, spec: PipelineSpec):
  """An inferred schema made ready to curate: the TRAINING and SERVING
  environments, with the label and the excluded columns kept out of SERVING
  (requests carry neither)."""
  del schema.default_environment[:]
  schema.default_environment.extend(['TRAINING', 'SERVING'])
  for feature in schema.feature:
    if (
      feature.name in [spec.features.label, *spec.features.exclude]
      and 'SERVING' not in feature.not_in_environment
    ):
      feature.not_in_environment.append('SERVING')
  return schema


def infer_schema(
  checked: preflight.Preflight, output: str, progress: Progress = print
) -> Dict[str, Any]:
  """Infers a schema from the spec's data (ExampleGen, StatisticsGen and
  SchemaGen, in the spec's pipeline root and store, so that a later run
  reuses the first two from the cache) and writes it to `output` as text,
  ready to curate and commit.

  Returns:
    {'schema': output, 'features': ..., 'optional': [...], 'run_id': ...}

  Raises:
    ComponentFailed: a component failed.
  """
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=g-import-not-at-top

  spec = checked.spec
  progress(f'pipeline {spec.name}: {checked.rows} rows in {spec.data.path}')
  if metadata_lib.kind(spec.runner.metadata) == 'sqlite':
    os.makedirs(os.path.dirname(spec.runner.metadata), exist_ok=True)
  env = local_environment(spec, column_kinds=checked.column_kinds)
  tfx_pipeline = create_schema_pipeline(spec, env)
  run_id = new_run_id()
  with _guarded(spec, env, run_id, progress, wait=True) as (store, outcome):
    failure = _execute(tfx_pipeline, run_id, progress)
    outcome[0] = 'failed' if failure else 'succeeded'
  if failure:
    raise ComponentFailed(f'{failure["component"]} failed: {failure["reason"]}')
  artifact = results.RunRecord(store, spec.name, run_id).artifacts(
    'SchemaGen', 'schema'
  )[0]
  schema = schema_pb2.Schema()
  with open(os.path.join(artifact.uri, SCHEMA_FILE)) as f:
    text_format.Parse(f.read(), schema)
  for_serving(schema, spec)
  optional = [f.name for f in schema.feature if preflight.is_optional(f)]
  header = (
    f'# Inferred by `python -m pipeline schema` from {spec.data.path} '
    f'({checked.rows} rows, {datetime.date.today().isoformat()}).\n'
    '# Curate it (domains, presence, value ranges), commit it, and name it\n'
    "# in the spec's `schema:`; ExampleValidator then checks new data "
    'against it.\n'
  )
  paths.write_text(
    output,
    header + text_format.MessageToString(schema),
    preflight.PreflightError,
    'the schema',
  )
  return {
    'schema': output,
    'run_id': run_id,
    'features': len(schema.feature),
    'optional': optional,
  }


def executed(summary: RunSummary) -> List[str]:
  """Components (not resolvers) that really executed in a run."""
  return summary.executed()
