"""Every cross-field rule of a spec, in one place.

A rule that one field states (a type, a range, a pattern) is on the model;
what needs two fields, or the task the data decides, is here. Each rule
raises `SpecError` naming the file and the key. `check_consistency` runs
them all: once when the spec is read, and again when the runner has read
the task, the classes and the feature lists from the data
(`loading.resolve_spec`).
"""

import os
from typing import Any, Dict, Mapping, Union

import pydantic

from components.csv_format import DEFAULT_NULL_VALUES
from modules import kinds
from modules.config import (
  IMAGE_ENCODERS,
  NUMERIC_FILLS,
  TEXT_ENCODERS,
  FloatRange,
  IntRange,
  PretrainedEncoder,
)
from modules.tasks import is_known
from pipeline.definition.maxima import check_maxima
from pipeline.definition.schema import PipelineSpec, SpecError, is_uri
from pipeline.definition.sections import Bounds, Threshold, TimeSplit
from pipeline.engines import registry as engines


def _check(cond: bool, source: str, key: str, message: str) -> None:
  if not cond:
    raise SpecError(f'{source}: {key}: {message}')


def _check_range(source: str, key: str, r: Union[IntRange, FloatRange]):
  _check(
    r.min <= r.max, source, key, f'min ({r.min}) must not exceed max ({r.max})'
  )
  if isinstance(r, FloatRange) and r.sampling == 'log':
    _check(r.min > 0, source, key + '.min', 'must be > 0 with sampling: log')
    _check(
      r.step is None or r.step > 1,
      source,
      key + '.step',
      'with sampling: log, step is a factor and must be > 1',
    )


def _check_engine(
  source: str, key: str, name: str, options: Mapping[str, Any]
) -> None:
  """The engine is registered and its options are its own, well typed."""
  try:
    engine = engines.get(name)
  except ValueError as e:
    raise SpecError(f'{source}: {key}.engine: {e}') from None
  try:
    engine.options.model_validate(dict(options))
  except pydantic.ValidationError as e:
    err = e.errors()[0]
    where = '.'.join(str(p) for p in err['loc'])
    where = f'{key}.engine_options' + (f'.{where}' if where else '')
    if err['type'] == 'extra_forbidden':
      allowed = ', '.join(sorted(engine.options.model_fields)) or 'none'
      raise SpecError(
        f'{source}: {where}: not an option of the {name} '
        f'engine; its options: {allowed}'
      ) from None
    if err['type'] == 'missing':
      raise SpecError(
        f'{source}: {where}: required by the {name} engine'
      ) from None
    message = err['msg'].removeprefix('Value error, ')
    raise SpecError(
      f'{source}: {where}: {message} (got {err.get("input")!r})'
    ) from None


def check_consistency(spec: PipelineSpec) -> None:
  """Cross-key rules that single fields cannot express. Rules that depend
  on the number of classes or on the feature lists wait until the runner
  has read them from the data (`loading.resolve_spec`)."""
  for rule in _RULES:
    rule(spec)


_GROUPS = ('numeric', 'categorical', 'date', 'text', 'image', 'exclude')


def _declared(spec: PipelineSpec) -> Dict[str, str]:
  """Each declared feature or excluded column, and the list naming it
  (_check_feature_lists, run first, makes sure there is one)."""
  f = spec.features
  return {name: group for group in _GROUPS for name in getattr(f, group)}


def _check_feature_lists(spec: PipelineSpec) -> None:
  """A column is listed once, and the label in no list."""
  src, f = spec.source, spec.features
  seen: Dict[str, str] = {}
  for group in _GROUPS:
    for name in getattr(f, group):
      _check(
        name not in seen,
        src,
        f'features.{group}',
        f'{name!r} is listed twice (also in features.{seen.get(name)})',
      )
      seen[name] = group
  _check(
    f.label not in seen,
    src,
    'features.label',
    f'{f.label!r} is also listed in features.{seen.get(f.label)}; the '
    'label is neither a feature nor excluded',
  )


def _check_engines(spec: PipelineSpec) -> None:
  src = spec.source
  _check_engine(src, 'runner', spec.runner.engine, spec.runner.engine_options)
  _check_engine(
    src, 'kubeflow', spec.kubeflow.engine, spec.kubeflow.engine_options
  )


def _check_split(spec: PipelineSpec) -> None:
  """A time split is by a declared column other than the label; a hash
  split names train and eval, each with at least one bucket."""
  src, f, split = spec.source, spec.features, spec.data.split
  if isinstance(split, TimeSplit):
    _check(
      split.by != f.label,
      src,
      'data.split.by',
      'split by a feature or an excluded column, not the label',
    )
    _check(
      not f.listed or split.by in _declared(spec),
      src,
      'data.split.by',
      f'{split.by!r} is not a declared feature or excluded column',
    )
    return
  _check(
    set(split) == {'train', 'eval'},
    src,
    'data.split',
    f'must name exactly the splits train and eval (got {sorted(split)})',
  )
  for name, buckets in split.items():
    _check(
      buckets >= 1,
      src,
      f'data.split.{name}',
      f'hash buckets must be >= 1 (got {buckets})',
    )


def _check_task(spec: PipelineSpec) -> None:
  """The rules that depend on the task, once the label decides it."""
  if not is_known(spec.features):
    return
  for rule in _TASK_RULES:
    rule(spec)


def _check_num_classes(spec: PipelineSpec) -> None:
  _check(
    spec.task.classifies or spec.features.num_classes is None,
    spec.source,
    'features.num_classes',
    'a regression label has no classes',
  )


def _check_slices(spec: PipelineSpec) -> None:
  """Slices and slice gates name declared columns (once they are known)."""
  if not spec.is_resolved:
    return
  src, seen = spec.source, _declared(spec)
  for i, slice_keys in enumerate(spec.evaluation.slices):
    _check(
      bool(slice_keys),
      src,
      f'evaluation.slices.{i}',
      'a slice names at least one feature (the overall slice is always '
      'computed)',
    )
    for key in slice_keys:
      _check(
        key in seen,
        src,
        f'evaluation.slices.{i}',
        f'{key!r} is not a declared feature or excluded column',
      )
  for i, gate in enumerate(spec.evaluation.slice_thresholds):
    for key in gate.features:
      _check(
        key in seen,
        src,
        f'evaluation.slice_thresholds.{i}.slice',
        f'{key!r} is not a declared feature or excluded column',
      )


def _check_metadata(spec: PipelineSpec) -> None:
  metadata = spec.runner.metadata
  _check(
    not is_uri(metadata) or metadata.startswith('mysql://'),
    spec.source,
    'runner.metadata',
    'give a SQLite file path or a '
    'mysql://user@host:port/database URI (grpc:// stores are read by the '
    'lineage commands only)',
  )


def _check_data(spec: PipelineSpec) -> None:
  """One data key; the CSV reading rules are not offered for tf.Examples,
  whose values are typed and whose missing values are absent features."""
  src, data = spec.source, spec.data
  given = [k for k in ('csv', 'tfrecord') if getattr(data, k) is not None]
  _check(
    len(given) == 1,
    src,
    'data',
    f'give exactly one of csv, tfrecord (got {" and ".join(given) or "none"})',
  )
  _check(bool(data.path), src, data.key, 'must name a folder or a file')
  if data.format != 'tfrecord':
    return
  _check(
    list(data.null_values) == list(DEFAULT_NULL_VALUES),
    src,
    'data.null_values',
    'only CSV cells are read as missing by their '
    'text; in tf.Examples a missing value is an absent or empty feature '
    '(remove null_values)',
  )
  _check(
    not isinstance(data.split, TimeSplit),
    src,
    'data.split',
    'a time split reads CSV; TFRecords are split by hash buckets '
    '({train: 4, eval: 1})',
  )


def _check_search_space(spec: PipelineSpec) -> None:
  src, space = spec.source, spec.model.search_space
  for name in ('num_layers', 'units', 'dropout', 'learning_rate'):
    _check_range(src, f'model.search_space.{name}', getattr(space, name))
  _check(
    space.num_layers.min >= 1,
    src,
    'model.search_space.num_layers.min',
    'must be >= 1',
  )
  _check(
    space.units.min >= 1, src, 'model.search_space.units.min', 'must be >= 1'
  )
  _check(
    space.dropout.max < 1, src, 'model.search_space.dropout.max', 'must be < 1'
  )
  _check(
    space.learning_rate.min > 0,
    src,
    'model.search_space.learning_rate.min',
    'must be > 0',
  )
  _check(
    all(b >= 1 for b in space.batch_size),
    src,
    'model.search_space.batch_size',
    'every batch size must be >= 1',
  )
  for name in ('l1', 'l2'):
    _check(
      all(v >= 0 for v in getattr(space, name)),
      src,
      f'model.search_space.{name}',
      'values must be >= 0',
    )


def _check_thresholds(
  spec: PipelineSpec, key: str, thresholds: Mapping[str, Threshold]
) -> None:
  src, task = spec.source, spec.task
  metrics = spec.evaluation.metric_names(task)
  for metric, bound in thresholds.items():
    where = f'{key}.{metric}'
    _check(
      metric in metrics,
      src,
      where,
      f'metric {metric!r} is not in evaluation.metrics '
      f'({", ".join(metrics)}); add it there first',
    )
    _check(
      isinstance(bound, Bounds) or task.direction(metric) is not None,
      src,
      where,
      f'{metric} has no better direction: give {{lower: .., upper: ..}}',
    )
    if isinstance(bound, Bounds):
      _check(
        bound.lower is not None or bound.upper is not None,
        src,
        where,
        'give lower, upper or both',
      )
      if bound.lower is not None and bound.upper is not None:
        _check(
          bound.lower <= bound.upper, src, where, 'lower must not exceed upper'
        )


def _check_metrics(spec: PipelineSpec) -> None:
  """The metrics, their thresholds and the decision threshold fit the
  task."""
  src, ev, task = spec.source, spec.evaluation, spec.task
  for metric in ev.metric_names(task):
    _check(
      metric in task.metrics,
      src,
      'evaluation.metrics',
      f'{metric!r} is not a {task.description} metric; use: '
      f'{", ".join(task.metrics)}',
    )
  _check_thresholds(spec, 'evaluation.thresholds', ev.thresholds)
  for i, gate in enumerate(ev.slice_thresholds):
    _check_thresholds(
      spec, f'evaluation.slice_thresholds.{i}.thresholds', gate.thresholds
    )
  for metric, value in ev.change_thresholds.items():
    _check_thresholds(spec, 'evaluation.change_thresholds', {metric: value})
    _check(
      task.direction(metric) is not None,
      src,
      f'evaluation.change_thresholds.{metric}',
      f'{metric} has no better direction; allowed: '
      + ', '.join(m for m in task.metrics if task.direction(m)),
    )
  _check(
    ev.decision_threshold == 0.5 or bool(task.thresholded_metrics),
    src,
    'evaluation.decision_threshold',
    f'only a binary label has one (this is {task.description})',
  )


def _check_monitors(spec: PipelineSpec) -> None:
  """The tuner's objective and early stopping watch a metric the task
  reports."""
  src, task = spec.source, spec.task
  monitors = task.monitors
  _check(
    spec.tuner.objective in monitors,
    src,
    'tuner.objective',
    f'{spec.tuner.objective!r} is not reported for {task.description}; '
    f'allowed: {", ".join(monitors)}',
  )
  early = spec.training.early_stopping
  _check(
    early is None or early.monitor in monitors,
    src,
    'training.early_stopping.monitor',
    f'{early and early.monitor!r} is not reported for '
    f'{task.description}; allowed: {", ".join(monitors)}',
  )


def _check_losses(spec: PipelineSpec) -> None:
  """Only regression chooses a loss, one loss when the objective is
  val_loss, and only a classifier weighs classes."""
  src, task = spec.source, spec.task
  choices = spec.training.choices()
  _check(
    task.losses != () or choices['loss'] == ['mse'],
    src,
    'training.loss',
    f'only regression chooses a loss ({task.description}'
    ' trains by cross-entropy)',
  )
  _check(
    len(choices['loss']) == 1 or spec.tuner.objective != 'val_loss',
    src,
    'tuner.objective',
    'val_loss means another thing under each '
    'loss: with a searched training.loss use val_rmse or val_mae',
  )
  _check(
    task.classifies or choices['class_weight'] == ['none'],
    src,
    'training.class_weight',
    'only a classification label has classes to weigh',
  )


def _check_impute(spec: PipelineSpec) -> None:
  """Per-feature imputation rules name features, with a fill of their kind."""
  src, impute = spec.source, spec.preprocessing.impute
  seen = _declared(spec)
  listed = spec.features.listed
  for name, rule in impute.features.items():
    key = f'preprocessing.impute.features.{name}'
    group = seen.get(name)
    if listed:
      _check(
        group in ('numeric', 'categorical', 'date'),
        src,
        key,
        f'{name!r} is not a numeric, categorical or date feature',
      )
    if rule.fill is None or group is None:
      continue
    numeric_fill = isinstance(rule.fill, float) or rule.fill in NUMERIC_FILLS
    if group in ('numeric', 'date'):
      _check(
        numeric_fill,
        src,
        f'{key}.fill',
        f'{name} is numeric: use mean, median, zero or a number',
      )
    else:
      _check(
        not numeric_fill,
        src,
        f'{key}.fill',
        f'{name} is categorical: use missing_bucket, most_frequent or '
        '{constant: TOKEN}',
      )


def _check_module_file(spec: PipelineSpec) -> None:
  """A module file's tuner_fn and run_fn come as a pair when the Tuner runs:
  the project's run_fn cannot train on another search space's values, nor
  the module's run_fn on the project's. A step count they read is set:
  TFX hands them None otherwise, and TFX's penguin module then fails every
  tuning trial (Keras Tuner stops after three, with a traceback for a
  message)."""
  if not spec.module_file:
    return
  trains = spec.uses_module_file('run_fn') or (
    spec.tuner.enabled and spec.uses_module_file('tuner_fn')
  )
  for name in spec.module_steps if trains else ():
    _check(
      getattr(spec.training, name) is not None,
      spec.source,
      f'training.{name}',
      f'module_file {os.path.basename(spec.module_file)} reads '
      f'fn_args.{name}, which is None unless set: give the number of '
      f"steps (TFX's penguin example: train_steps 100, eval_steps 5)",
    )
  if not spec.tuner.enabled:
    return
  has_tuner = spec.uses_module_file('tuner_fn')
  has_run = spec.uses_module_file('run_fn')
  _check(
    has_tuner == has_run,
    spec.source,
    'module_file',
    f'{spec.module_file} defines {"tuner_fn" if has_tuner else "run_fn"} '
    f'but not {"run_fn" if has_tuner else "tuner_fn"}: with the Tuner on, '
    'the module file defines both or neither (or set tuner.enabled: '
    'false)',
  )


def _check_builders(spec: PipelineSpec) -> None:
  """cnn is given alone; gbt trees train from scratch."""
  src, builders = spec.source, spec.model.builders
  _check(
    len(builders) == 1 or 'cnn' not in builders,
    src,
    'model.builder',
    'cnn lays the features out as an image: it is not chosen between '
    '(give it alone)',
  )
  _check(
    'gbt' not in builders or spec.training.mode == 'scratch',
    src,
    'model.builder',
    'gbt trees are trained from scratch; fine-tuning '
    'needs the dnn or cnn builder (training.mode: finetune)',
  )


def _check_image_layout(spec: PipelineSpec) -> None:
  """The cnn builder's image layout holds the numeric features as pixels,
  and no other builder has one."""
  src, model, f = spec.source, spec.model, spec.features
  if model.builders == ['cnn']:
    _check(
      model.image is not None,
      src,
      'model.image',
      'the cnn builder needs {height, width, channels}',
    )
    pixels = model.image.height * model.image.width * model.image.channels
    listed = f.listed
    _check(
      not listed
      or (pixels == len(f.numeric) and not f.categorical and not f.date),
      src,
      'model.image',
      f'height x width x channels is {pixels} but the cnn builder takes '
      f'the numeric features as pixels ({len(f.numeric)} numeric, '
      f'{len(f.categorical)} categorical)',
    )
    _check(
      not spec.preprocessing.impute.indicator
      and not any(
        rule.indicator for rule in spec.preprocessing.impute.features.values()
      ),
      src,
      'preprocessing.impute.indicator',
      'the cnn builder takes the '
      'numeric features as pixels only; indicators need the dnn builder',
    )
  else:
    _check(
      model.image is None,
      src,
      'model.image',
      'only the cnn builder takes an image layout',
    )


def _check_finetune_space(spec: PipelineSpec) -> None:
  """model.search_space.finetune: its ranges, and each value in its
  range."""
  src, ft = spec.source, spec.model.search_space.finetune
  key = 'model.search_space.finetune'
  _check_range(src, f'{key}.unfreeze_blocks', ft.unfreeze_blocks)
  _check_range(src, f'{key}.backbone_lr_scale', ft.backbone_lr_scale)
  _check(
    ft.backbone_lr_scale.min > 0 and ft.backbone_lr_scale.max <= 1,
    src,
    f'{key}.backbone_lr_scale',
    'must lie in (0, 1]: the backbone learns at most as fast as the head',
  )
  _check(
    all(0 < v <= 1 for v in ft.lr_decay),
    src,
    f'{key}.lr_decay',
    'values must lie in (0, 1]',
  )
  _check(
    all(v >= 0 for v in ft.head_units),
    src,
    f'{key}.head_units',
    'values must be >= 0 (0: no hidden layer in the new head)',
  )
  _check(
    all(v >= 1 for v in ft.epochs_per_stage),
    src,
    f'{key}.epochs_per_stage',
    'values must be >= 1',
  )


def _check_encoders(spec: PipelineSpec) -> None:
  """model.encoders: each names a text or image feature (once the features
  are known), with an encoder of its kind; trees take no encoded column;
  one pretrained encoder at most (it reaches the Trainer, and lineage,
  through the one base_model channel), not beside a base model."""
  src, model, f = spec.source, spec.model, spec.features
  encoded = {key: kind.name for key, kind in kinds.encoded_columns(f)}
  for column, chosen in model.encoders.items():
    key = f'model.encoders.{column}'
    if f.listed:
      _check(
        column in encoded,
        src,
        key,
        f'{column!r} is no text or image feature (features.text: '
        f'{f.text}, features.image: {f.image})',
      )
    kind = encoded.get(column)
    if kind is None or isinstance(chosen, PretrainedEncoder):
      continue
    names = chosen if isinstance(chosen, list) else [chosen]
    allowed = TEXT_ENCODERS if kind == 'text' else IMAGE_ENCODERS
    wrong = [n for n in names if n not in allowed]
    _check(
      not wrong,
      src,
      key,
      f'{", ".join(wrong)} does not encode '
      f'{kind}; a {kind} column takes {", ".join(allowed)} or a '
      'pretrained encoder',
    )
  _check(
    not encoded or 'gbt' not in model.builders,
    src,
    'model.builder',
    f'gbt trees take no text or image column ({", ".join(encoded)}); '
    'use the dnn builder',
  )
  pretrained = model.pretrained()
  _check(
    len(pretrained) <= 1,
    src,
    'model.encoders',
    f'one pretrained encoder per pipeline (got {", ".join(pretrained)})',
  )
  _check(
    not pretrained or spec.training.base_model is None,
    src,
    'training.base_model',
    'fine-tuning tunes the pretrained encoder '
    'of model.encoders; remove base_model (or the pretrained encoder)',
  )


def _check_training(spec: PipelineSpec) -> None:
  src, training = spec.source, spec.training
  base = training.base_model
  if training.mode == 'finetune' and spec.model.pretrained():
    return  # the pretrained encoders are what is fine-tuned
  if training.mode == 'scratch':
    _check(
      base is None,
      src,
      'training.base_model',
      'only used with training.mode: finetune (set it, or remove base_model)',
    )
    return
  _check(
    base is not None,
    src,
    'training.base_model',
    'training.mode finetune needs a base model: give path or latest_blessed',
  )
  given = [k for k in ('path', 'latest_blessed') if getattr(base, k)]
  _check(
    len(given) == 1,
    src,
    'training.base_model',
    f'give exactly one of path, latest_blessed (got {given or "none"})',
  )


# In the order they run: the first broken rule is the one reported.
_RULES = (
  _check_feature_lists,
  _check_data,
  _check_engines,
  _check_split,
  check_maxima,
  _check_search_space,
  _check_builders,
  _check_image_layout,
  _check_encoders,
  _check_finetune_space,
  _check_training,
  _check_module_file,
  _check_impute,
  _check_task,
  _check_slices,
  _check_metadata,
)
_TASK_RULES = (
  _check_num_classes,
  _check_metrics,
  _check_monitors,
  _check_losses,
)
