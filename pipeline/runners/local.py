"""The local runner: LocalDagRunner, Beam's DirectRunner, SQLite ML Metadata.

Thin on purpose: it checks the inputs, works out paths, calls the shared
`create_pipeline`, runs it, and reads what happened back from ML Metadata.
"""

import datetime
import json
import logging
import os
import time
from typing import Any, Callable, Dict, List, Optional

import absl.logging
import ml_metadata as mlmd
from tfx import v1 as tfx
from tfx.dsl.compiler import compiler, constants
from tfx.orchestration.portable import runtime_parameter_utils

from pipeline.definition.pipeline import Environment, create_pipeline
from pipeline.definition.spec import PipelineSpec
from pipeline.metadata import results
from pipeline.metadata import store as metadata_lib
from pipeline.runners import preflight
from pipeline.runners.environment import build_environment

Progress = Callable[[str], None]


def metadata_config(location: str):
  """SQLite file or mysql:// URI (pipeline/metadata/store.py)."""
  return metadata_lib.connection_config(location)


def local_environment(spec: PipelineSpec,
                      base_model_uri: Optional[str] = None) -> Environment:
  return build_environment(
      pipeline_root=spec.runner.pipeline_root,
      beam_args=spec.runner.beam_args,
      enable_cache=spec.runner.enable_cache,
      metadata_connection_config=metadata_config(spec.runner.metadata),
      base_model_uri=base_model_uri)


class _ProgressHandler(logging.Handler):
  """Turns LocalDagRunner's 'Component X is running/finished.' log records
  into progress lines with durations, and remembers the running one."""

  def __init__(self, progress: Progress):
    super().__init__(level=logging.INFO)
    self._progress = progress
    self._started: Dict[str, float] = {}
    self.running: Optional[str] = None

  def emit(self, record: logging.LogRecord) -> None:
    if not record.name.startswith('absl') or len(record.args or ()) != 1:
      return
    node = str(record.args[0])
    if record.msg == 'Component %s is running.':
      self._started[node] = time.monotonic()
      self.running = node
      self._progress(f'  {node} ...')
    elif record.msg == 'Component %s is finished.':
      seconds = time.monotonic() - self._started.get(node, time.monotonic())
      self.running = None
      self._progress(f'  {node} done in {seconds:.1f}s')


def one_line(error: BaseException, limit: int = 600) -> str:
  """An exception as one line: its type and first line of message."""
  text = str(error).strip().splitlines()
  message = text[0] if text else ''
  line = f'{type(error).__name__}: {message}' if message else type(error).__name__
  return line if len(line) <= limit else line[:limit - 3] + '...'


def run_local(spec: PipelineSpec, progress: Progress = print,
              summary_json: Optional[str] = None) -> Dict[str, Any]:
  """Runs the pipeline locally and returns the run's summary.

  Bad input (preflight.PreflightError) is raised before anything runs. A
  component failure does not raise: the summary says which one and why
  (status 'failed'), and is written to JSON like a success.

  Args:
    spec: a validated spec.
    progress: called with one line per component start and finish.
    summary_json: where to write the summary; by default
      <pipeline_root>/summaries/<run id>.json.

  Returns:
    The summary dict (see README, "What a run produces").
  """
  started = time.monotonic()
  rows = preflight.run_preflight(spec)
  progress(f'pipeline {spec.name}: {rows} rows in {spec.data.csv}')
  base_model = preflight.locate_base_model(spec)
  if base_model:
    progress(f'base model: {base_model}')
  if metadata_lib.kind(spec.runner.metadata) == 'sqlite':
    os.makedirs(os.path.dirname(spec.runner.metadata), exist_ok=True)
  env = local_environment(spec, base_model)
  ir = compiler.Compiler().compile(create_pipeline(spec, env))
  run_id = datetime.datetime.now().isoformat()
  runtime_parameter_utils.substitute_runtime_parameter(
      ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id})

  # Progress comes from LocalDagRunner's INFO records, so absl must emit INFO
  # (set through absl's verbosity flag: executors re-parse absl flags, which
  # would reset a plain logger level). Terminal noise is the handlers' job.
  handler = _ProgressHandler(progress)
  absl_logger = logging.getLogger('absl')
  absl_logger.addHandler(handler)
  previous_verbosity = absl.logging.get_verbosity()
  absl.logging.set_verbosity(absl.logging.INFO)
  failure = None
  try:
    tfx.orchestration.LocalDagRunner().run_with_ir(ir)
  except Exception as e:  # pylint: disable=broad-except
    # Reported, not swallowed: the summary carries it and the CLI exits 1.
    failure = {'component': handler.running or 'unknown', 'reason': one_line(e)}
    progress(f'  {failure["component"]} FAILED')
  finally:
    absl_logger.removeHandler(handler)
    absl.logging.set_verbosity(previous_verbosity)

  store = mlmd.MetadataStore(env.metadata_connection_config)
  record = results.RunRecord(store, spec.name, run_id)
  summary: Dict[str, Any] = {
      'pipeline': spec.name,
      'run_id': run_id,
      'status': 'failed' if failure else 'succeeded',
      'failed_component': failure and failure['component'],
      'reason': failure and failure['reason'],
      'components': [c.__dict__ for c in record.components()],
  }
  summary.update(results.summarize(record))
  summary.update({
      'metadata': metadata_lib.describe(spec.runner.metadata),
      'pipeline_root': spec.runner.pipeline_root,
      'total_seconds': round(time.monotonic() - started, 2),
  })
  path = summary_json or os.path.join(
      spec.runner.pipeline_root, 'summaries',
      run_id.replace(':', '-') + '.json')
  summary['summary_json'] = path
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(summary, f, indent=2, sort_keys=True)
  return summary


def executed(summary: Dict[str, Any]) -> List[str]:
  """Components (not resolvers) that really executed in a run."""
  return [c['id'] for c in summary['components']
          if not c['is_resolver'] and c['state'] != 'cached']
