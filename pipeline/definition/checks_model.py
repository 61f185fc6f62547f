"""The cross-field rules of the model and its training: the search space,
the builders, the cnn's image layout, the encoders, fine-tuning and a
module file's callbacks (checks.py runs them in order)."""

import os

from modules import kinds
from modules.config import IMAGE_ENCODERS, TEXT_ENCODERS, PretrainedEncoder
from pipeline.definition.checks_common import check, check_range
from pipeline.definition.schema import PipelineSpec


def check_search_space(spec: PipelineSpec) -> None:
  src, space = spec.source, spec.model.search_space
  for name in ('num_layers', 'units', 'dropout', 'learning_rate'):
    check_range(src, f'model.search_space.{name}', getattr(space, name))
  check(
    space.num_layers.min >= 1,
    src,
    'model.search_space.num_layers.min',
    'must be >= 1',
  )
  check(
    space.units.min >= 1, src, 'model.search_space.units.min', 'must be >= 1'
  )
  check(
    space.dropout.max < 1, src, 'model.search_space.dropout.max', 'must be < 1'
  )
  check(
    space.learning_rate.min > 0,
    src,
    'model.search_space.learning_rate.min',
    'must be > 0',
  )
  check(
    all(b >= 1 for b in space.batch_size),
    src,
    'model.search_space.batch_size',
    'every batch size must be >= 1',
  )
  for name in ('l1', 'l2'):
    check(
      all(v >= 0 for v in getattr(space, name)),
      src,
      f'model.search_space.{name}',
      'values must be >= 0',
    )


def check_builders(spec: PipelineSpec) -> None:
  """cnn is given alone; gbt trees train from scratch."""
  src, builders = spec.source, spec.model.builders
  check(
    len(builders) == 1 or 'cnn' not in builders,
    src,
    'model.builder',
    'cnn lays the features out as an image: it is not chosen between '
    '(give it alone)',
  )
  check(
    'gbt' not in builders or spec.training.mode == 'scratch',
    src,
    'model.builder',
    'gbt trees are trained from scratch; fine-tuning '
    'needs the dnn or cnn builder (training.mode: finetune)',
  )


def check_image_layout(spec: PipelineSpec) -> None:
  """The cnn builder's image layout holds the numeric features as pixels,
  and no other builder has one."""
  src, model, f = spec.source, spec.model, spec.features
  if model.builders == ['cnn']:
    check(
      model.image is not None,
      src,
      'model.image',
      'the cnn builder needs {height, width, channels}',
    )
    pixels = model.image.height * model.image.width * model.image.channels
    listed = f.listed
    check(
      not listed
      or (pixels == len(f.numeric) and not f.categorical and not f.date),
      src,
      'model.image',
      f'height x width x channels is {pixels} but the cnn builder takes '
      f'the numeric features as pixels ({len(f.numeric)} numeric, '
      f'{len(f.categorical)} categorical)',
    )
    check(
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
    check(
      model.image is None,
      src,
      'model.image',
      'only the cnn builder takes an image layout',
    )


def check_encoders(spec: PipelineSpec) -> None:
  """model.encoders: each names a text or image feature (once the features
  are known), with an encoder of its kind; trees take no encoded column;
  one pretrained encoder at most (it reaches the Trainer, and lineage,
  through the one base_model channel), not beside a base model."""
  src, model, f = spec.source, spec.model, spec.features
  encoded = {key: kind.name for key, kind in kinds.encoded_columns(f)}
  for column, chosen in model.encoders.items():
    key = f'model.encoders.{column}'
    if f.listed:
      check(
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
    check(
      not wrong,
      src,
      key,
      f'{", ".join(wrong)} does not encode '
      f'{kind}; a {kind} column takes {", ".join(allowed)} or a '
      'pretrained encoder',
    )
  check(
    not encoded or 'gbt' not in model.builders,
    src,
    'model.builder',
    f'gbt trees take no text or image column ({", ".join(encoded)}); '
    'use the dnn builder',
  )
  pretrained = model.pretrained()
  check(
    len(pretrained) <= 1,
    src,
    'model.encoders',
    f'one pretrained encoder per pipeline (got {", ".join(pretrained)})',
  )
  check(
    not pretrained or spec.training.base_model is None,
    src,
    'training.base_model',
    'fine-tuning tunes the pretrained encoder '
    'of model.encoders; remove base_model (or the pretrained encoder)',
  )


def check_finetune_space(spec: PipelineSpec) -> None:
  """model.search_space.finetune: its ranges, and each value in its
  range."""
  src, ft = spec.source, spec.model.search_space.finetune
  key = 'model.search_space.finetune'
  check_range(src, f'{key}.unfreeze_blocks', ft.unfreeze_blocks)
  check_range(src, f'{key}.backbone_lr_scale', ft.backbone_lr_scale)
  check(
    ft.backbone_lr_scale.min > 0 and ft.backbone_lr_scale.max <= 1,
    src,
    f'{key}.backbone_lr_scale',
    'must lie in (0, 1]: the backbone learns at most as fast as the head',
  )
  check(
    all(0 < v <= 1 for v in ft.lr_decay),
    src,
    f'{key}.lr_decay',
    'values must lie in (0, 1]',
  )
  check(
    all(v >= 0 for v in ft.head_units),
    src,
    f'{key}.head_units',
    'values must be >= 0 (0: no hidden layer in the new head)',
  )
  check(
    all(v >= 1 for v in ft.epochs_per_stage),
    src,
    f'{key}.epochs_per_stage',
    'values must be >= 1',
  )


def check_training(spec: PipelineSpec) -> None:
  src, training = spec.source, spec.training
  base = training.base_model
  if training.mode == 'finetune' and spec.model.pretrained():
    return  # the pretrained encoders are what is fine-tuned
  if training.mode == 'scratch':
    check(
      base is None,
      src,
      'training.base_model',
      'only used with training.mode: finetune (set it, or remove base_model)',
    )
    return
  check(
    base is not None,
    src,
    'training.base_model',
    'training.mode finetune needs a base model: give path or latest_blessed',
  )
  given = [k for k in ('path', 'latest_blessed') if getattr(base, k)]
  check(
    len(given) == 1,
    src,
    'training.base_model',
    f'give exactly one of path, latest_blessed (got {given or "none"})',
  )


def check_module_file(spec: PipelineSpec) -> None:
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
    check(
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
  check(
    has_tuner == has_run,
    spec.source,
    'module_file',
    f'{spec.module_file} defines {"tuner_fn" if has_tuner else "run_fn"} '
    f'but not {"run_fn" if has_tuner else "tuner_fn"}: with the Tuner on, '
    'the module file defines both or neither (or set tuner.enabled: '
    'false)',
  )
