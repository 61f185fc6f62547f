"""The pipeline spec's schema: `PipelineSpec`, the whole typed spec.

Its sections are modules/config's (what the module callbacks read) and
sections.py's (the rest). A `PipelineSpec` is built by loading.py, which
checks it against checks.py's cross-field rules; this module knows neither.
"""

import re
from typing import Dict, List, Optional, Tuple, Type, TypeVar

from pydantic import ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from modules import kinds
from modules.config import (
  ModelSpec,
  ModuleConfig,
  PreprocessingSpec,
  TunerSpec,
)
from modules.config import Strict as _Strict
from modules.features import FeaturesSpec
from modules.tasks import LabelStats, Task, is_known, task_for
from pipeline.definition.sections import (
  NAME_PATTERN,
  DataSpec,
  EvaluationSpec,
  KubeflowSpec,
  PushSpec,
  RunnerSpec,
  SpecTrainingSpec,
)
from pipeline.errors import PipelineError

_Config = TypeVar('_Config', bound=ModuleConfig)


class SpecError(PipelineError):
  """A spec is invalid. The message is one line naming the file and key."""


class PipelineSpec(_Strict):
  """A whole, validated pipeline spec. Paths are absolute or URIs.

  `schema`: a curated schema, or None: SchemaGen infers one from the data.
  `module_file`: a TFX module file whose preprocessing_fn, tuner_fn and
  run_fn (those it defines) replace the project's.
  """

  name: str = Field(
    pattern=NAME_PATTERN, description="The pipeline's name, [a-z][a-z0-9_-]*."
  )
  data: DataSpec = Field(
    description='Where the rows are read from, and how they are split.'
  )
  schema_file: Optional[str] = Field(
    default=None,
    alias='schema',
    description=(
      'A curated schema.pbtxt imported by ImportSchemaGen; left '
      'out, SchemaGen infers one from the data on each run.'
    ),
  )
  module_file: Optional[str] = Field(
    default=None,
    description=(
      'A TFX module file whose preprocessing_fn, tuner_fn and '
      "run_fn (those it defines) replace the project's."
    ),
  )
  features: FeaturesSpec = Field(
    description=(
      'Which columns are the label and the features, and what to predict.'
    )
  )
  preprocessing: PreprocessingSpec = Field(
    default=PreprocessingSpec(),
    description=('How the Transform scales, encodes and imputes the features.'),
  )
  model: ModelSpec = Field(
    default=ModelSpec(),
    description=(
      'Which model is built, and the search space the Tuner and '
      'the Trainer share.'
    ),
  )
  tuner: TunerSpec = Field(
    default=TunerSpec(), description='Keras Tuner settings.'
  )
  training: SpecTrainingSpec = Field(
    default=SpecTrainingSpec(),
    description='How the Trainer trains, and where fine-tuning starts from.',
  )
  evaluation: EvaluationSpec = Field(
    default=EvaluationSpec(),
    description=(
      "TFMA's metrics and slices, and the thresholds that bless a model."
    ),
  )
  push: PushSpec = Field(
    description='Where blessed models are pushed for TF Serving.'
  )
  runner: RunnerSpec = Field(
    description=(
      'Where the pipeline runs locally: its root, metadata store '
      'and Beam engine.'
    )
  )
  kubeflow: KubeflowSpec = Field(
    default=KubeflowSpec(),
    description=(
      'How `python -m pipeline compile` builds the Kubeflow '
      'pipeline (docs/kubeflow.md).'
    ),
  )
  # Set by the loader and the runner, never a YAML key: left out of dumps
  # and of the JSON schema (the reference lists YAML keys only).
  # Where the spec was read from (set by load_spec).
  source: SkipJsonSchema[str] = Field(default='<dict>', exclude=True)
  # The module_file.MODULE_FUNCTIONS module_file defines (read by
  # spec_from_dict).
  module_functions: SkipJsonSchema[Tuple[str, ...]] = Field(
    default=(), exclude=True
  )
  # The step counts (module_file.STEP_ARGS) module_file reads from fn_args
  # with no fallback of its own (read by spec_from_dict).
  module_steps: SkipJsonSchema[Tuple[str, ...]] = Field(
    default=(), exclude=True
  )
  # What the pre-flight scan saw of the label (set by
  # `loading.resolve_spec`).
  label_stats: SkipJsonSchema[Optional[LabelStats]] = Field(
    default=None, exclude=True
  )

  model_config = ConfigDict(
    extra='forbid',
    frozen=True,
    populate_by_name=True,
    strict=True,
    allow_inf_nan=False,
  )

  @property
  def feature_keys(self) -> List[str]:
    return self.features.keys

  @property
  def is_resolved(self) -> bool:
    """Whether what the data decides (the task and its classes, the
    feature lists when the spec leaves them out) is known."""
    return is_known(self.features) and self.features.listed

  @property
  def task(self) -> Task:
    """The task (the spec must be resolved)."""
    return task_for(self.features)

  def default_thresholds(self) -> Dict[str, float]:
    """The default rule's bounds (`EvaluationSpec.uses_default_rule`):
    the task's naive baseline on the data the pre-flight scan read; none
    without that scan (a Kubeflow compile), where only "no worse than the
    last blessed model" applies."""
    if not self.evaluation.uses_default_rule or self.label_stats is None:
      return {}
    return self.task.naive_thresholds(self.label_stats)

  def blessing_rule(self) -> str:
    """What blesses a model, in words (validate, the run summary)."""
    if not self.evaluation.uses_default_rule:
      return 'the thresholds in evaluation'
    return 'default rule: ' + self.default_rule()

  def default_rule(self) -> str:
    """The default rule in words (`EvaluationSpec.uses_default_rule`)."""
    task = self.task
    if self.label_stats is None:
      return f"{task.main_metric} no worse than the last blessed model's"
    return task.naive_rule(self.label_stats)

  def uses_module_file(self, function: str) -> bool:
    """Whether `module_file` replaces the project's `function`."""
    return function in self.module_functions

  def columns_by_kind(self) -> List[Tuple[str, List[str]]]:
    """(column kind, its features) for each kind with a feature, in the
    registry's order (modules/kinds.py)."""
    return [
      (name, list(getattr(self.features, name)))
      for name in kinds.KINDS
      if getattr(self.features, name)
    ]

  def module_config(
    self, config_type: Type[_Config], code_version: str = ''
  ) -> _Config:
    """The typed module config of one component: the spec sections it
    reads (`config_type.sections()`), each with the fields its section type
    declares, as the callback will parse them."""
    sections = {}
    for name in config_type.sections():
      section_type = config_type.model_fields[name].annotation
      sections[name] = getattr(self, name).model_dump(
        include=set(section_type.model_fields)
      )
    return config_type.model_validate(
      {**sections, 'code_version': code_version}
    )


def is_uri(path: str) -> bool:
  """Whether `path` is a URI (gs://, s3://, mysql://, ...), kept as written
  where a local path is resolved against the spec's folder."""
  return bool(re.match(r'^[a-z][a-z0-9+.-]*://', path))
