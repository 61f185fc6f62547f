"""Every cross-field rule of a spec, run in order.

A rule that one field states (a type, a range, a pattern) is on the model;
what needs two fields, or the task the data decides, is a rule. Each rule
raises `SpecError` naming the file and the key. `check_consistency` runs
them all: once when the spec is read, and again when the runner has read
the task, the classes and the feature lists from the data
(`loading.resolve_spec`).

The rules live beside this module, by subject: checks_data.py (features,
data, split, imputation, slices), checks_model.py (search space, builders,
image layout, encoders, fine-tuning, training, module file),
checks_evaluation.py (classes, metrics and thresholds, monitors, losses)
and checks_runner.py (engines, metadata store); checks_common.py holds what
they share.
"""

from modules.tasks import is_known
from pipeline.definition import (
  checks_data,
  checks_evaluation,
  checks_model,
  checks_runner,
)
from pipeline.definition.maxima import check_maxima
from pipeline.definition.schema import PipelineSpec


def check_consistency(spec: PipelineSpec) -> None:
  """Cross-key rules that single fields cannot express. Rules that depend
  on the number of classes or on the feature lists wait until the runner
  has read them from the data (`loading.resolve_spec`)."""
  for rule in _RULES:
    rule(spec)


def _check_task(spec: PipelineSpec) -> None:
  """The rules that depend on the task, once the label decides it."""
  if not is_known(spec.features):
    return
  for rule in _TASK_RULES:
    rule(spec)


# In the order they run: the first broken rule is the one reported.
_RULES = (
  checks_data.check_feature_lists,
  checks_data.check_data,
  checks_runner.check_engines,
  checks_data.check_split,
  check_maxima,
  checks_model.check_search_space,
  checks_model.check_builders,
  checks_model.check_image_layout,
  checks_model.check_encoders,
  checks_model.check_finetune_space,
  checks_model.check_training,
  checks_model.check_module_file,
  checks_data.check_impute,
  _check_task,
  checks_data.check_slices,
  checks_runner.check_metadata,
)
_TASK_RULES = (
  checks_evaluation.check_num_classes,
  checks_evaluation.check_metrics,
  checks_evaluation.check_monitors,
  checks_evaluation.check_losses,
)
