"""The last blessed model on Kubeflow, read from the push destination.

Open-source Kubeflow Pipelines cannot execute TFX Resolver nodes, so the
local pipeline's baseline Resolver (components/baseline.py) has no KFP
equivalent. What KFP does have is the push destination: the Pusher writes
only blessed models, as `<base>/<version>/` with increasing integer versions
(TF Serving's layout). `PushedModel` copies the newest version there into a
Model artifact:

- as the Evaluator's baseline it also takes the candidate, and skips a pushed
  version that *is* the candidate (same SavedModel fingerprint), so a re-run
  compares against the model blessed before the candidate, as locally;
- as a fine-tuning base model (`required=True`) it fails in one line when
  nothing has been pushed yet.

When no version exists the artifact holds no SavedModel and its
`pushed_version` is 0; `Evaluator` (below) then evaluates without a baseline,
as TFX does on a pipeline's first run.
"""

import os
from typing import List, Optional, Tuple

from tfx.dsl.component.experimental.annotations import (
  InputArtifact,
  OutputArtifact,
  Parameter,
)
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import io_utils, path_utils

from components import evaluator, pusher

SAVED_MODEL = pusher.SAVED_MODEL
VERSION_PROPERTY = 'pushed_version'
SOURCE_PROPERTY = 'pushed_uri'


class NoPushedModel(RuntimeError):
  """A required pushed model does not exist. The message is one line."""


def pushed_versions(base: str) -> List[Tuple[int, str]]:
  """(version, path) of each complete version under a push base, newest
  first (a push still being copied is not a version yet)."""
  return [
    (version, os.path.join(base, str(version)))
    for version in reversed(pusher.versions(base))
  ]


def choose_version(
  base: str, candidate_dir: Optional[str]
) -> Optional[Tuple[int, str]]:
  """The newest pushed version that is not the candidate; None if none."""
  candidate = pusher.identity(candidate_dir) if candidate_dir else None
  for version, path in pushed_versions(base):
    if candidate is None or pusher.identity(path) != candidate:
      return version, path
  return None


def has_saved_model(model: standard_artifacts.Model) -> bool:
  return fileio.exists(
    os.path.join(path_utils.serving_model_path(model.uri), SAVED_MODEL)
  )


@component
def PushedModel(  # pylint: disable=invalid-name
  model: OutputArtifact[standard_artifacts.Model],
  push_base: Parameter[str],
  required: Parameter[int] = 0,
  candidate: InputArtifact[  # pytype: disable=invalid-annotation
    standard_artifacts.Model
  ] = None,
) -> None:
  """Copies the newest model pushed under `push_base` (other than
  `candidate`) into `model`'s Format-Serving folder."""
  candidate_dir = (
    path_utils.serving_model_path(candidate.uri)
    if candidate is not None
    else None
  )
  chosen = choose_version(push_base, candidate_dir)
  if chosen is None:
    if required:
      raise NoPushedModel(
        f'no model has been pushed under {push_base} yet: run the pipeline '
        'that pushes there first (nothing to fine-tune from)'
      )
    model.set_int_custom_property(VERSION_PROPERTY, 0)
    return
  version, path = chosen
  io_utils.copy_dir(path, path_utils.serving_model_dir(model.uri))
  model.set_int_custom_property(VERSION_PROPERTY, version)
  model.set_string_custom_property(SOURCE_PROPERTY, path)


def without_empty_baseline(input_dict):
  """The Evaluator's inputs, less a baseline Model artifact that holds no
  SavedModel (PushedModel found nothing): TFX then evaluates without one."""
  key = standard_component_specs.BASELINE_MODEL_KEY
  baselines = input_dict.get(key) or []
  if baselines and not has_saved_model(baselines[0]):
    return {k: v for k, v in input_dict.items() if k != key}
  return input_dict


class BaselineAwareExecutor(evaluator.Executor):
  """The Evaluator's executor over `without_empty_baseline`'s inputs."""

  def Do(self, input_dict, output_dict, exec_properties):
    return super().Do(
      without_empty_baseline(input_dict), output_dict, exec_properties
    )


class Evaluator(evaluator.Evaluator):
  """The Evaluator with BaselineAwareExecutor (for the Kubeflow route)."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(BaselineAwareExecutor)
