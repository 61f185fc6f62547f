"""Runs one task of a compiled KFP v2 pipeline as KFP's launcher would.

KFP's launcher resolves a task's inputs into an ExecutorInput message (input
artifacts with uri, type and metadata; parameter values; output artifacts
with the URIs it allocated; the executor output file), substitutes it for the
`{{$}}` placeholder in the container's arguments, and runs the container's
command. Here the "container" is this machine's Python with the project
installed, started in a folder outside the repository, so the project's code
is found by import path exactly as in the image.
"""

import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Mapping, Optional, Tuple

PLACEHOLDER = '{{$}}'
RUN_ID_PLACEHOLDER = '{{$.pipeline_job_uuid}}'


def _component(pipeline_spec: Mapping[str, Any], task: str):
  task_spec = pipeline_spec['root']['dag']['tasks'][task]
  component = pipeline_spec['components'][task_spec['componentRef']['name']]
  executor = pipeline_spec['deploymentSpec']['executors'][
    component['executorLabel']
  ]
  return task_spec, component, executor


def executor_input(
  pipeline_spec: Mapping[str, Any],
  task: str,
  inputs: Mapping[str, Tuple[str, Dict[str, Any]]],
  output_root: str,
  run_id: str = 'run-1',
) -> Dict[str, Any]:
  """The ExecutorInput (as JSON) for `task`.

  Args:
    pipeline_spec: the compiled PipelineSpec.
    task: the task's name.
    inputs: input artifact name -> (uri, metadata: properties and custom
      properties, as KFP passes them).
    output_root: where output artifacts and the executor output file go.
    run_id: the run's id, for a parameter that is KFP's placeholder of it.
  """
  task_spec, component, _ = _component(pipeline_spec, task)
  definitions = component.get('inputDefinitions', {})
  artifacts = {}
  for name, (uri, metadata) in inputs.items():
    artifact_type = definitions['artifacts'][name]['artifactType']
    artifacts[name] = {
      'artifacts': [
        {
          'name': f'{task}-input-{name}',
          'uri': uri,
          'metadata': metadata,
          'type': artifact_type,
        }
      ]
    }
  values = {}
  for name, value in task_spec.get('inputs', {}).get('parameters', {}).items():
    values[name] = value['runtimeValue']['constant']
    if values[name] == RUN_ID_PLACEHOLDER:  # KFP's driver puts the run's id
      values[name] = run_id
  outputs = {}
  for name, definition in (
    component.get('outputDefinitions', {}).get('artifacts', {}).items()
  ):
    outputs[name] = {
      'artifacts': [
        {
          'name': f'{task}-output-{name}',
          'uri': os.path.join(output_root, task, name),
          'type': definition['artifactType'],
          'metadata': {},
        }
      ]
    }
  return {
    'inputs': {'artifacts': artifacts, 'parameterValues': values},
    'outputs': {
      'artifacts': outputs,
      'outputFile': os.path.join(output_root, task, 'executor_output.json'),
    },
  }


def command(
  pipeline_spec: Mapping[str, Any], task: str, invocation: Mapping[str, Any]
) -> List[str]:
  """The container's command and arguments with the placeholder filled."""
  _, _, executor = _component(pipeline_spec, task)
  container = executor['container']
  text = json.dumps(invocation)
  return list(container['command']) + [
    text if arg == PLACEHOLDER else arg for arg in container['args']
  ]


def start(
  pipeline_spec: Mapping[str, Any],
  task: str,
  inputs: Mapping[str, Tuple[str, Dict[str, Any]]],
  output_root: str,
  cwd: str,
  env: Optional[Mapping[str, str]] = None,
  run_id: str = 'run-1',
) -> subprocess.Popen:
  """Starts `task` in a subprocess (`python` is this interpreter), its
  stdout and stderr piped."""
  invocation = executor_input(pipeline_spec, task, inputs, output_root, run_id)
  argv = command(pipeline_spec, task, invocation)
  environ = {**os.environ, **(env or {})}
  environ['PATH'] = (
    os.path.dirname(sys.executable) + os.pathsep + environ['PATH']
  )
  environ.pop('PYTHONPATH', None)
  return subprocess.Popen(
    argv,
    cwd=cwd,
    env=environ,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def run(
  pipeline_spec: Mapping[str, Any],
  task: str,
  inputs: Mapping[str, Tuple[str, Dict[str, Any]]],
  output_root: str,
  cwd: str,
  timeout: int = 900,
  **kwargs,
) -> subprocess.CompletedProcess:
  """Runs `task` to its end (see `start`)."""
  proc = start(pipeline_spec, task, inputs, output_root, cwd, **kwargs)
  try:
    out, err = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    raise
  return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def executor_output(output_root: str, task: str) -> Dict[str, Any]:
  with open(os.path.join(output_root, task, 'executor_output.json')) as f:
    return json.load(f)
