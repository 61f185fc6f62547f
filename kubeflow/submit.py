"""Submits a compiled pipeline definition to a Kubeflow Pipelines API server
through kfp's own client (`python -m pipeline submit`)."""

import os
import re
from typing import Any, Dict, Optional

import yaml

from kubeflow.runner import KubeflowError
from pipeline.errors import whole


def _check_file(path: str) -> Dict[str, Any]:
  if not os.path.isfile(path):
    raise KubeflowError(
      f'{path}: no such pipeline file; compile one with '
      '`python -m pipeline compile SPEC --image IMAGE '
      '--output FILE`'
    )
  try:
    with open(path, encoding='utf-8') as f:
      spec = yaml.safe_load(f)
  except yaml.YAMLError:
    spec = None
  if (
    not isinstance(spec, dict)
    or 'root' not in spec
    or ('deploymentSpec' not in spec)
  ):
    raise KubeflowError(
      f'{path}: not a KFP v2 pipeline definition (a YAML '
      'PipelineSpec from `python -m pipeline compile`)'
    )
  return spec


def _reason(error: BaseException) -> str:
  """The server's or the network's reason, in one line."""
  status = getattr(error, 'status', None)
  reason = getattr(error, 'reason', None)
  body = getattr(error, 'body', None)
  if status:
    detail = ''
    if body:
      text = (
        body.decode(errors='replace') if isinstance(body, bytes) else str(body)
      )
      for key in ('message', 'error'):  # grpc-gateway's error JSON
        match = re.search(rf'"{key}"\s*:\s*"([^"]+)"', text)
        if match:
          detail = f': {match.group(1)}'
          break
    return f'HTTP {status} {reason or ""}{detail}'.strip()
  match = re.search(r'\[Errno -?\d+\] ([^\'")]+)', str(error))
  return (
    match.group(1).strip() if match else (whole(error) or type(error).__name__)
  )


def submit(
  path: str,
  host: str,
  experiment: str = 'Default',
  run_name: Optional[str] = None,
) -> Dict[str, str]:
  """Creates a run of the pipeline file on the KFP at `host`.

  Returns:
    {'run_id': ..., 'url': ...}

  Raises:
    KubeflowError: the file is not a pipeline definition, or the host cannot
      be reached or refuses the run (one line).
  """
  spec = _check_file(path)
  if not re.match(r'^https?://[^/\s]+', host or ''):
    raise KubeflowError(
      f'--host {host!r}: give the KFP API URL, e.g. '
      'http://localhost:8080 (a port-forward of ml-pipeline-ui)'
    )
  import kfp  # pylint: disable=g-import-not-at-top

  name = run_name or spec.get('pipelineInfo', {}).get('name', 'pipeline')
  try:
    client = kfp.Client(host=host)
    result = client.create_run_from_pipeline_package(
      path, arguments={}, run_name=name, experiment_name=experiment
    )
  except Exception as e:  # pylint: disable=broad-except
    # kfp raises urllib3, ApiException or ValueError types; all mean the
    # same to the user: this host did not take the run.
    raise KubeflowError(
      f'--host {host}: the KFP API did not take the run: {_reason(e)}'
    ) from None
  return {
    'run_id': result.run_id,
    'url': f'{host.rstrip("/")}/#/runs/details/{result.run_id}',
  }
