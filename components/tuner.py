"""Tuner: TFX's, whose executor also says what the search did.

TFX's Tuner writes the best hyperparameters and the completed trials
(`tuner_results.json`). Beside them this one writes `search_report.json`:
the algorithm asked for and the one that ran (modules/search_plan.py may
switch a degenerate Hyperband to a grid), the trials and epochs asked for
and run, the best objective, and a note when the search did less than
asked; and it logs that as one line. The report is a pure function of the
plan and the trials (`search_report`). With TuneArgs.num_parallel_trials
above 1 the trials run in that many processes (components/parallel_search.py)
or, given a meeting place (`meeting_root`, `run_id`: Kubeflow), in that many
pods: the Tuner's and those of its TunerWorker components.
"""

import collections
import json
import logging
import os
import time
from typing import Any, Dict, List, Optional

from keras_tuner.engine import trial as trial_module
from tfx import types
from tfx.components.tuner import component as tfx_tuner
from tfx.components.tuner import executor as tuner_executor
from tfx.components.util import udf_utils
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.proto import trainer_pb2, tuner_pb2
from tfx.types import (
  artifact_utils,
  standard_artifacts,
  standard_component_specs,
)
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils, json_utils

from components import parallel_search
from components.search_summary import describe
from modules.progress import PROGRESS_LOGGER

REPORT_FILE = 'search_report.json'
AUTO = -1  # TuneArgs.num_parallel_trials for "the cores available"
MEETING_ROOT_KEY = 'meeting_root'  # where pods meet, a run's folder each
RUN_ID_KEY = 'run_id'  # which run's: KFP puts its id in place of RUN_ID
RUN_ID = '{{$.pipeline_job_uuid}}'  # KFP's (and Vertex's) run id placeholder
WORKER_KEY = 'worker'  # a TunerWorker's number, 1 to N - 1


def trial_records(
  tuner, timings: Optional[Dict[str, Dict[str, Any]]] = None
) -> List[Dict[str, Any]]:
  """Each trial of a finished Keras Tuner search: id, status, score, the
  epochs it trained in this trial and up to which epoch (a Hyperband trial
  continues its parent's), and its hyperparameters. The epochs come from
  the project's tuners (modules/tuner.py records them); for another tuner,
  Hyperband's target epochs or 0. With `timings` (report_trials'), also
  the process that ran it and its seconds, from the oracle's begin to its
  end."""
  trained = getattr(tuner, 'epochs_trained', {})
  timings = timings or {}
  records = []
  for trial in tuner.oracle.trials.values():
    values = dict(trial.hyperparameters.values)
    start = values.get('tuner/initial_epoch', 0)
    epochs = trained.get(trial.trial_id)
    if epochs is None:
      epochs = values.get('tuner/epochs', start) - start
    timing = timings.get(trial.trial_id, {})
    records.append(
      {
        'trial_id': trial.trial_id,
        'status': str(trial.status),
        'score': trial.score,
        'epochs': epochs,
        'to_epoch': start + epochs,
        'process': timing.get('process'),
        'seconds': timing.get('seconds'),
        'hyperparameters': {
          k: v for k, v in values.items() if not k.startswith('tuner/')
        },
      }
    )
  return records


def search_report(
  plan: Optional[Dict[str, Any]],
  objective: str,
  direction: str,
  trials: List[Dict[str, Any]],
  processes: int = 1,
) -> Dict[str, Any]:
  """What the search did, from its plan (None for a module file's tuner),
  its trial records and how many processes ran trials."""
  done = [
    t for t in trials if t['status'] == 'COMPLETED' and t['score'] is not None
  ]
  best = (
    (min if direction == 'min' else max)(done, key=lambda t: t['score'])
    if done
    else None
  )
  epochs = collections.Counter(t['to_epoch'] for t in done)
  report = {
    'asked': plan and plan['asked'],
    'algorithm': plan and plan['algorithm'],
    'max_trials': plan and plan['max_trials'],
    'max_epochs': plan and plan['max_epochs'],
    'space_size': plan and plan['space_size'],
    'note': plan and plan['note'],
    'objective': objective,
    'processes': processes,
    'trials_run': len(done),
    'epochs_trained': sum(t['epochs'] for t in done),
    'trials_by_epochs': {str(k): epochs[k] for k in sorted(epochs)},
    'best': best
    and {
      'trial_id': best['trial_id'],
      'score': best['score'],
      'epochs': best['to_epoch'],
    },
    'trials': trials,
  }
  if plan and len(done) < plan['max_trials'] and not plan['note']:
    report['note'] = (
      f'the search stopped after {len(done)} of '
      f'{plan["max_trials"]} trials: its oracle ran out of '
      'new configurations'
    )
  report['line'] = describe(report)
  return report


def best_score(oracle) -> Optional[float]:
  """The best objective among the trials ended so far, None before one.

  Safe while another thread ends a trial, as the chief's gRPC threads do
  for the workers' trials: Keras Tuner's `end_trial` marks a trial
  COMPLETED before it scores it (under the oracle's lock, which a reader
  outside the oracle does not take), and its `get_best_trials` then fails
  comparing that trial's score, None, with a number."""
  scores = [
    t.score
    for t in list(oracle.trials.values())
    if t.status == trial_module.TrialStatus.COMPLETED and t.score is not None
  ]
  if not scores:
    return None
  return min(scores) if oracle.objective.direction == 'min' else max(scores)


def report_trials(oracle) -> Dict[str, Dict[str, Any]]:
  """Has `oracle` say each trial's end on PROGRESS_LOGGER (trial i of N, the
  best objective so far), wherever the trial ran; returns the trials'
  timings, filled in as they run: by trial id, the process that asked for
  it (Keras Tuner's tuner id: the chief's, or a worker's) and its seconds
  from the oracle handing it out to the oracle hearing its end."""
  create_trial, end_trial = oracle.create_trial, oracle.end_trial
  ended = []
  timings: Dict[str, Dict[str, Any]] = {}
  logger = logging.getLogger(PROGRESS_LOGGER)

  def timed(tuner_id, *args, **kwargs):
    trial = create_trial(tuner_id, *args, **kwargs)
    if trial.status == trial_module.TrialStatus.RUNNING:
      timings[trial.trial_id] = {'process': tuner_id, 'began': time.monotonic()}
    return trial

  def reported(trial, *args, **kwargs):
    done = end_trial(trial, *args, **kwargs)
    timing = timings.get(trial.trial_id)
    if timing:
      timing['seconds'] = round(time.monotonic() - timing.pop('began'), 3)
    ended.append(trial.trial_id)
    steps = oracle.max_trials or 0
    detail = f'trial {len(ended)}' + (f' of {steps}' if steps else '')
    best = best_score(oracle)
    if best is not None:
      detail += f', best {oracle.objective.name} {best:.4f}'
    logger.info(detail, extra={'step': len(ended), 'steps': steps})
    return done

  oracle.create_trial, oracle.end_trial = timed, reported
  return timings


def parallel_trials(exec_properties: Dict[str, Any]) -> int:
  """How many trials run at once: TuneArgs.num_parallel_trials (TFX's own
  field for it), AUTO for the cores available here, 1 without TuneArgs."""
  tune_args = tuner_executor.get_tune_args(exec_properties)
  asked = tune_args.num_parallel_trials if tune_args else 1
  if asked == AUTO and exec_properties.get(MEETING_ROOT_KEY):
    raise ValueError(
      'num_parallel_trials "auto" counts one machine\'s '
      'cores; with Tuner pods give their number'
    )
  if asked == AUTO:
    return parallel_search.available_cores()
  if asked < 1:
    raise ValueError(
      f'num_parallel_trials {asked}: give 1 or more, or '
      f'{AUTO} for the cores available'
    )
  return asked


def meeting(exec_properties: Dict[str, Any]) -> Optional[str]:
  """The folder where this run's Tuner pods meet; None for processes."""
  root = exec_properties.get(MEETING_ROOT_KEY)
  if not root:
    return None
  run_id = exec_properties.get(RUN_ID_KEY) or ''
  if not run_id or '{{' in run_id:
    raise ValueError(
      f"run_id reached the task as {run_id!r}, not the run's id: this "
      'Kubeflow Pipelines does not replace ' + RUN_ID + ' (KFP 2.5 and '
      'later, and Vertex AI, do); upgrade it, or set tuner.parallel_trials: '
      '1 to tune in one pod'
    )
  return os.path.join(root, run_id)


class ReportingExecutor(tuner_executor.Executor):
  """TFX's Tuner executor, with trials in parallel processes when TuneArgs
  asks for more than one (components/parallel_search.py), plus
  search_report.json and its one line."""

  def Do(self, input_dict, output_dict, exec_properties) -> None:
    working_dir = self._get_tmp_dir()
    processes = parallel_trials(exec_properties)
    pods = meeting(exec_properties)
    if pods:  # every pod reads the checkpoints any pod wrote
      working_dir = os.path.join(pods, 'search')
    if processes > 1:
      with parallel_search.Chief(
        input_dict,
        exec_properties,
        working_dir,
        workers=processes - 1,
        meeting=pods,
      ) as chief:
        result = parallel_search.build(input_dict, exec_properties, working_dir)
        timings = report_trials(result.tuner.oracle)
        chief.search(result)
      tuner = result.tuner
    else:
      # As TFX's executor searches, without Keras Tuner's printed summaries
      # (the space, then every trial, ~150 lines on stdout): the progress
      # records and the report's one line say what it did.
      result = parallel_search.build(input_dict, exec_properties, working_dir)
      tuner = result.tuner
      timings = report_trials(tuner.oracle)
      tuner.search(**result.fit_kwargs)
    tuner_executor.write_best_hyperparameters(tuner, output_dict)
    if pods:  # the trials' checkpoints, which no one reads now
      fileio.rmtree(working_dir)
    plan = getattr(tuner, 'search_plan', None)
    report = search_report(
      plan.to_json() if plan else None,
      tuner.oracle.objective.name,
      tuner.oracle.objective.direction,
      trial_records(tuner, timings),
      processes,
    )
    results_dir = artifact_utils.get_single_uri(
      output_dict[standard_component_specs.TUNER_RESULTS_KEY]
    )
    io_utils.write_string_file(
      os.path.join(results_dir, REPORT_FILE),
      json.dumps(report, indent=2, default=str),
    )
    logging.info('search: %s', report['line'])


MEETING_PARAMETERS = {
  MEETING_ROOT_KEY: ExecutionParameter(type=str, optional=True),
  RUN_ID_KEY: ExecutionParameter(type=str, optional=True),
}


class TunerSpec(standard_component_specs.TunerSpec):
  """TFX's TunerSpec, plus where its pods meet."""

  PARAMETERS = {
    **standard_component_specs.TunerSpec.PARAMETERS,
    **MEETING_PARAMETERS,
  }


class Tuner(tfx_tuner.Tuner):
  """TFX's Tuner with ReportingExecutor; with `meeting_root` and `run_id`
  its parallel trials run in TunerWorker pods (Kubeflow)."""

  SPEC_CLASS = TunerSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ReportingExecutor)

  def __init__(
    self,  # pylint: disable=super-init-not-called
    examples: types.BaseChannel,
    schema: Optional[types.BaseChannel] = None,
    transform_graph: Optional[types.BaseChannel] = None,
    base_model: Optional[types.BaseChannel] = None,
    module_file: Optional[str] = None,
    tuner_fn: Optional[str] = None,
    train_args: Optional[trainer_pb2.TrainArgs] = None,
    eval_args: Optional[trainer_pb2.EvalArgs] = None,
    tune_args: Optional[tuner_pb2.TuneArgs] = None,
    custom_config: Optional[Dict[str, Any]] = None,
    meeting_root: Optional[str] = None,
    run_id: Optional[str] = None,
  ):
    """TFX's Tuner's arguments (its __init__, which builds TFX's own spec,
    is not called), plus `meeting_root` and `run_id`."""
    if bool(module_file) == bool(tuner_fn):
      raise ValueError(
        "Exactly one of 'module_file' or 'tuner_fn' must be supplied"
      )
    spec = TunerSpec(
      examples=examples,
      schema=schema,
      transform_graph=transform_graph,
      base_model=base_model,
      module_file=module_file,
      tuner_fn=tuner_fn,
      train_args=train_args or trainer_pb2.TrainArgs(),
      eval_args=eval_args or trainer_pb2.EvalArgs(),
      tune_args=tune_args,
      custom_config=json_utils.dumps(custom_config),
      meeting_root=meeting_root,
      run_id=run_id,
      best_hyperparameters=types.Channel(
        type=standard_artifacts.HyperParameters
      ),
      tuner_results=types.Channel(type=standard_artifacts.TunerResults),
    )
    base_component.BaseComponent.__init__(self, spec=spec)
    _package_module_file(self)


def _package_module_file(component) -> None:
  if udf_utils.should_package_user_modules():
    udf_utils.add_user_module_dependency(
      component,
      standard_component_specs.MODULE_FILE_KEY,
      standard_component_specs.MODULE_PATH_KEY,
    )


class TunerWorkerSpec(types.ComponentSpec):
  """A TunerWorker reads what the Tuner reads; it writes what it did
  (`work`: worker.json, whether it joined the search and what its trials
  trained), a TunerResults as the Tuner's own part is."""

  PARAMETERS = {
    **TunerSpec.PARAMETERS,
    WORKER_KEY: ExecutionParameter(type=int),
  }
  INPUTS = dict(TunerSpec.INPUTS)
  OUTPUTS = {'work': ChannelParameter(type=standard_artifacts.TunerResults)}


class WorkerExecutor(base_executor.BaseExecutor):
  """Joins the run's Tuner (components/parallel_search.py, `join`) as
  worker `tuner<N>` and runs the trials its oracle gives."""

  def Do(self, input_dict, output_dict, exec_properties) -> None:
    folder = meeting(exec_properties)
    if not folder:
      raise ValueError(
        f'a TunerWorker needs {MEETING_ROOT_KEY} and {RUN_ID_KEY}'
      )
    tuner_id = f'tuner{int(exec_properties[WORKER_KEY])}'  # KFP: a float
    did = parallel_search.join(folder, tuner_id, input_dict, exec_properties)
    out = artifact_utils.get_single_uri(output_dict['work'])
    io_utils.write_string_file(
      os.path.join(out, 'worker.json'),
      json.dumps({'tuner_id': tuner_id, **did}),
    )
    logging.info(
      'tuning worker %s: %s',
      tuner_id,
      'the search had ended before it started'
      if not did['joined']
      else 'stopped: the search ended'
      if did.get('stopped')
      else 'its part of the search is done',
    )


class TunerWorker(base_component.BaseComponent):
  """One more pod for the Tuner's trials, on Kubeflow: takes the Tuner's
  inputs and arguments, runs beside it and meets it through the pipeline
  root."""

  SPEC_CLASS = TunerWorkerSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(WorkerExecutor)

  def __init__(self, tuner: Tuner, worker: int):
    """Worker `worker` (1 to N - 1) of `tuner`, which must have a meeting
    place: its inputs and its arguments, as the Tuner holds them."""
    if not tuner.exec_properties.get(MEETING_ROOT_KEY):
      raise ValueError(
        f'a TunerWorker needs a Tuner with {MEETING_ROOT_KEY} and {RUN_ID_KEY}'
      )
    arguments = {
      key: value
      for key, value in tuner.exec_properties.items()
      if key in TunerSpec.PARAMETERS
    }
    super().__init__(
      spec=TunerWorkerSpec(
        **tuner.inputs,
        **arguments,
        worker=worker,
        work=types.Channel(type=standard_artifacts.TunerResults),
      )
    )
    _package_module_file(self)
