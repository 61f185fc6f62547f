"""Google Cloud Dataflow: Beam's DataflowRunner, a managed service that
starts its own workers. Nothing here can reach it: the options are checked
for shape only (a project, a region, gs:// locations), and Dataflow's own
errors say the rest when the job is submitted."""

import re
from typing import List, Optional

from pydantic import field_validator

from pipeline.engines.base import Engine, Options, register


class DataflowOptions(Options):
  project: str
  region: str
  temp_location: str
  # Workers need the project's code: a container image with it installed
  # (kubeflow/Dockerfile builds one), or TFX stages a package of it.
  sdk_container_image: Optional[str] = None
  max_workers: Optional[int] = None
  machine_type: Optional[str] = None

  @field_validator('temp_location')
  @classmethod
  def _on_gcs(cls, value: str) -> str:
    if not value.startswith('gs://'):
      raise ValueError(
        f'{value!r} is not a gs:// location; Dataflow workers '
        'read and write Cloud Storage'
      )
    return value

  @field_validator('project')
  @classmethod
  def _project_id(cls, value: str) -> str:
    if not re.fullmatch(r'[a-z][a-z0-9-:.]{4,61}[a-z0-9]', value):
      raise ValueError(f'{value!r} is not a Google Cloud project id')
    return value


def _beam_args(options: DataflowOptions) -> List[str]:
  args = [
    '--runner=DataflowRunner',
    f'--project={options.project}',
    f'--region={options.region}',
    f'--temp_location={options.temp_location}',
  ]
  if options.sdk_container_image:
    args.append(f'--sdk_container_image={options.sdk_container_image}')
  if options.max_workers:
    args.append(f'--max_num_workers={options.max_workers}')
  if options.machine_type:
    args.append(f'--machine_type={options.machine_type}')
  return args


register(
  Engine(
    name='dataflow',
    options=DataflowOptions,
    beam_args=_beam_args,
    problem=lambda options: None,
    local_workers=False,
    description='Google Cloud Dataflow (project, region, temp_location)',
  )
)
