"""The Evaluator: TFX's, loading the custom ops its models need first, and
sparing TFMA work that does not change its results.

A gradient boosted trees model needs TF-DF's ops, a BERT-family text
encoder TensorFlow Text's (components/model_ops.py), in every process that
loads it. TFMA loads the model again in Beam's workers; a multi-process
direct runner starts fresh processes that never import those libraries, so
for such a model the Evaluator runs its Beam pipeline in this process
instead (`--direct_running_mode=in_memory`). Node id Evaluator, as
TFX's.

Two hooks of TFX's Evaluator, set unless the component has a module file
of its own:
- `lean_extractors` (custom_extractors): TFMA computes metrics example by
  example, splitting each batch of extracts into one dict per example with
  every raw and every transformed feature, though the default metrics read
  only the label, the prediction and the example weight. These are TFMA's
  own extractors with the features that neither a slice nor a metric reads
  dropped before that split.
- `keyword_eval_shared_model` (custom_eval_shared_model): TFMA's shared
  model, whose signatures it calls by keyword (`_KeywordCall`).
On the default spec's 200k-row eval split (1M rows in all), the executor
with Beam's two worker processes took 98 s without either and 68 s with
both (the same machine load); in one process, 88-98 s CPU with the
features and 67 s without, 1.1 GiB peak RSS instead of 1.5. The metrics
are the same (the calibration to the last bit of a sum).
"""

import collections.abc
import functools
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional

import apache_beam as beam
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants as tfma_constants
from tensorflow_model_analysis.extractors import extractor as tfma_extractor
from tensorflow_model_analysis.extractors import unbatch_extractor
from tensorflow_model_analysis.metrics import metric_specs, metric_types
from tfx.components.evaluator import component as tfx_evaluator
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs
from tfx.utils import path_utils

from components import model_ops

_IN_PROCESS = '--direct_running_mode=in_memory'
_MODULE_KEYS = ('module_file', 'module_path')
_HOOKS = {
  'custom_extractors': 'components.evaluator.lean_extractors',
  'custom_eval_shared_model': 'components.evaluator.keyword_eval_shared_model',
}
_FEATURES = tfma_constants.FEATURES_KEY
_TRANSFORMED = tfma_constants.TRANSFORMED_FEATURES_KEY


def _models(input_dict: Dict[str, List[Any]]) -> List[str]:
  keys = (
    standard_component_specs.MODEL_KEY,
    standard_component_specs.BASELINE_MODEL_KEY,
  )
  return [
    path_utils.serving_model_path(model.uri)
    for key in keys
    for model in input_dict.get(key) or []
  ]


def _slicing_specs(config: tfma.EvalConfig) -> List[tfma.SlicingSpec]:
  specs = list(config.slicing_specs)
  for cross in config.cross_slicing_specs:
    specs += [cross.baseline_spec, *cross.slicing_specs]
  for metrics in config.metrics_specs:
    for metric in metrics.metrics:
      for threshold in metric.per_slice_thresholds:
        specs += threshold.slicing_specs
      for threshold in metric.cross_slice_thresholds:
        for cross in threshold.cross_slicing_specs:
          specs += [cross.baseline_spec, *cross.slicing_specs]
  return specs


def features_read(config: tfma.EvalConfig) -> Optional[FrozenSet[str]]:
  """The features a slice or a metric of `config` reads by name, or None
  when that cannot be told (a SQL slice; a metric whose preprocessor is not
  TFMA's standard one, or that takes every feature)."""
  names = set()
  for spec in _slicing_specs(config):
    if spec.slice_keys_sql:
      return None
    names.update(spec.feature_keys)
    names.update(spec.feature_values)
  for computation in metric_specs.to_computations(
    list(config.metrics_specs), eval_config=config
  ):
    # A derived computation reads other computations' results, not extracts.
    for preprocessor in getattr(computation, 'preprocessors', None) or ():
      if type(preprocessor) is not (  # pylint: disable=unidiomatic-typecheck
        metric_types.StandardMetricInputsPreprocessor
      ):
        return None
      for key in (_FEATURES, _TRANSFORMED):
        wanted = preprocessor.include_filter.get(key)
        if wanted is None:
          continue
        if not wanted:  # {}: every feature
          return None
        names.update(wanted)
  return frozenset(names)


def drop_unread(
  extracts: Mapping[str, Any], keep: FrozenSet[str]
) -> Dict[str, Any]:
  """A batch of extracts with only the raw features in `keep`, and without
  the transformed ones unless `keep` names one that is not raw."""
  lean = dict(extracts)
  raw = lean.pop(_FEATURES, None)
  kept = {k: v for k, v in (raw or {}).items() if k in keep}
  if kept:
    lean[_FEATURES] = kept
  if keep <= set(kept):
    lean.pop(_TRANSFORMED, None)
  return lean


def lean_extractors(
  eval_shared_model, eval_config: tfma.EvalConfig, tensor_adapter_config=None
) -> List[Any]:
  """TFMA's default extractors, with `drop_unread` before TFMA splits the
  batches into examples (its UnbatchExtractor); TFMA's own when
  `features_read` cannot tell what is read."""
  extractors = tfma.default_extractors(
    eval_shared_model=eval_shared_model,
    eval_config=eval_config,
    tensor_adapter_config=tensor_adapter_config,
  )
  keep = features_read(eval_config)
  stages = [e.stage_name for e in extractors]
  unbatch = unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME
  if keep is None or unbatch not in stages:
    return extractors
  drop = tfma_extractor.Extractor(
    stage_name='DropUnreadFeatures', ptransform=beam.Map(drop_unread, keep)
  )
  at = stages.index(unbatch)
  return extractors[:at] + [drop] + extractors[at:]


class _KeywordCall:
  """A model's signature that TFMA may call with its one input by
  position (serialized examples), called by keyword instead."""

  def __init__(self, function):
    self._function = function

  def __getattr__(self, name):  # structured_input_signature, ...
    return getattr(self._function, name)

  def __call__(self, *args, **kwargs):
    if len(args) == 1 and not kwargs:
      names = list(self._function.structured_input_signature[1])
      if len(names) == 1:
        return self._function(**{names[0]: args[0]})
    return self._function(*args, **kwargs)


class _KeywordSignatures(collections.abc.Mapping):
  """A loaded model's signatures, each a `_KeywordCall`."""

  def __init__(self, signatures: Mapping[str, Any]):
    self._signatures = signatures

  def __getitem__(self, name: str) -> _KeywordCall:
    return _KeywordCall(self._signatures[name])

  def __iter__(self):
    return iter(self._signatures)

  def __len__(self) -> int:
    return len(self._signatures)


def _with_keyword_signatures(construct: Callable[[], Any]) -> Any:
  model = construct()
  if isinstance(getattr(model, 'signatures', None), Mapping):
    model.signatures = _KeywordSignatures(model.signatures)
  return model


def keyword_eval_shared_model(
  eval_saved_model_path: str,
  model_name: str,
  eval_config: tfma.EvalConfig,
  add_metrics_callbacks=None,
):
  """TFMA's shared model (TFX's `custom_eval_shared_model` hook), whose
  signatures TFMA calls by keyword.

  TFMA calls a signature on a batch of serialized examples by position;
  a loaded signature takes keywords only, so TensorFlow first tries to
  bind the call, fails, and formats its error (discarded) with the whole
  batch printed by numpy, then calls it by its flat signature. That
  printing was 22 % of the Evaluator's Beam workers' CPU on the default
  spec at 1M rows (9 % in one process).
  """
  shared = tfma.default_eval_shared_model(
    eval_saved_model_path=eval_saved_model_path,
    model_name=model_name,
    eval_config=eval_config,
    add_metrics_callbacks=add_metrics_callbacks,
  )
  loader = shared.model_loader
  loader.construct_fn = functools.partial(
    _with_keyword_signatures, loader.construct_fn
  )
  return shared


class Executor(evaluator_executor.Executor):
  """TFX's Evaluator executor, with the ops its models need and, unless
  the component has a module of its own, `lean_extractors`."""

  def Do(self, input_dict, output_dict, exec_properties):
    custom = [model_ops.ensure_ops(path) for path in _models(input_dict)]
    if any(custom):
      self._beam_pipeline_args = [
        _IN_PROCESS if arg.startswith('--direct_running_mode') else arg
        for arg in self._beam_pipeline_args or []
      ]
    # TFX imports a hook by the path under its name, unless the component
    # has a module of its own (udf_utils.get_fn).
    if not any(exec_properties.get(key) for key in _MODULE_KEYS):
      exec_properties = dict(exec_properties)
      for hook, path in _HOOKS.items():
        if not exec_properties.get(hook):
          exec_properties[hook] = path
    return super().Do(input_dict, output_dict, exec_properties)


class Evaluator(tfx_evaluator.Evaluator):
  """TFX's Evaluator with `Executor` (node id Evaluator, as TFX's)."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
