"""Fine-tuning a pretrained model: the base, its blocks and four strategies.

The pretrained part, the *backbone*, is either
- a base model's: a Keras model over the same transformed features (a TFX
  Trainer's SavedModel, or any Keras SavedModel with matching inputs), up
  to the layer named `model.EMBEDDING` (else up to the input of its output
  layer); or
- the pretrained encoders of the spec's text and image columns
  (`model.encoders`: a BERT-family text encoder, an ImageNet CNN;
  modules/encoders.py), side by side. The other features (numbers,
  categories, learned encoders) then join the backbone's output in the
  head, and always train.
The backbone's *blocks* are its weighted layers grouped by name prefix,
bottom to top: `block<N>_` (this project's cnn), Keras Applications'
`block_<N>_` (MobileNetV2), `block<N><letter>_` (EfficientNet),
`conv<N>_block<M>_` (ResNet), `stem_` and `top_`, and a transformer's
`embeddings_` and `layer_<N>_` (modules/pretrained/bert.py); any other
weighted layer is a block of its own. A new head (dropout, an optional
hidden layer, the output layer) goes on top.

Strategies (each `trainable_blocks` + `learning_rates`):
- feature_extraction: the backbone frozen; only the head trains.
- full: every block trains, at the head's rate x backbone_lr_scale.
- gradual_unfreezing: the head first; one more block from the top thaws
  every `epochs_per_stage` epochs, up to `unfreeze_blocks` (ULMFiT); the
  model is re-compiled at each stage.
- discriminative_lr: the top `unfreeze_blocks` blocks train, each block's
  rate the one above's x lr_decay (the top block: head rate x
  backbone_lr_scale).
The backbone is always called with training=False, so its batch-norm layers
keep the base model's statistics (inference mode), frozen or not.
"""

import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf
import tf_keras as keras

from modules import model as model_lib
from modules.config import FINETUNE_STRATEGIES

STRATEGIES = FINETUNE_STRATEGIES
_BLOCK = re.compile(
  r'^((?:conv\d+_)?block_?\d+[a-z]?|layer_\d+|embeddings|stem|top)_'
)


class BaseModelError(ValueError):
  """The base model is missing, does not load, or does not fit the task.

  The message is one line naming the base model and what is wrong."""


def locate_saved_model(path: str) -> str:
  """The SavedModel directory for `path`: `path` itself, or the directory a
  TFX Model artifact keeps it in (`Format-Serving`), or the parent of that
  (an imported SavedModel whose artifact URI is the model directory)."""
  if not path:
    raise BaseModelError('base model: no path was given')
  candidates = [
    path,
    os.path.join(path, 'Format-Serving'),
    os.path.dirname(path.rstrip('/')),
  ]
  for candidate in candidates:
    if tf.io.gfile.exists(os.path.join(candidate, 'saved_model.pb')):
      return candidate
  raise BaseModelError(
    f'base model {path}: no SavedModel there (no saved_model.pb in it or in '
    f'its Format-Serving folder)'
  )


def load_base_model(path: str) -> keras.Model:
  """Loads the base model at `path` (see locate_saved_model) for training."""
  location = locate_saved_model(path)
  # A base model may hold a text encoder (its tokenizer's ops, TensorFlow
  # Text's, and its Keras layers) or an image decoder: registered first.
  # pylint: disable=g-import-not-at-top
  from modules import encoders  # noqa: F401
  from modules.pretrained import bert

  # pylint: enable=g-import-not-at-top
  bert.load_ops()
  try:
    model = keras.models.load_model(location, compile=False)
  except Exception as e:  # pylint: disable=broad-except
    reason = ' '.join(str(e).split()) or type(e).__name__
    raise BaseModelError(
      f'base model {location}: does not load as a Keras model: {reason}'
    ) from None
  if not isinstance(model, keras.Model) or not getattr(model, 'inputs', None):
    raise BaseModelError(
      f'base model {location}: loads, but is not a Keras '
      'model with named inputs'
    )
  return model


def check_inputs(
  base: keras.Model, inputs: model_lib.ModelInputs, where: str
) -> None:
  """The base model takes exactly the transformed features, as [batch, 1].

  Raises:
    BaseModelError: naming the missing, extra or mis-shaped inputs.
  """
  expected = {k: tf.float32 for k in inputs.numeric}
  expected.update({k: tf.int64 for k in inputs.categorical})
  got = {
    layer_name: t
    for layer_name, t in zip(base.input_names, base.inputs, strict=True)
  }
  missing = sorted(set(expected) - set(got))
  extra = sorted(set(got) - set(expected))
  problems = []
  if missing:
    problems.append(f'missing {_few(missing)}')
  if extra:
    problems.append(f'unexpected {_few(extra)}')
  for name in sorted(set(expected) & set(got)):
    tensor = got[name]
    if tuple(tensor.shape[1:]) != (1,) or tensor.dtype != expected[name]:
      problems.append(
        f'{name} is {tensor.dtype.name}{list(tensor.shape)}, '
        f'expected {expected[name].name}[None, 1]'
      )
  if problems:
    raise BaseModelError(
      f'base model {where}: its inputs do not match the transformed '
      f'features: {"; ".join(problems[:3])}'
    )


def _few(names: Sequence[str], limit: int = 4) -> str:
  shown = ', '.join(names[:limit])
  return shown + (
    f' and {len(names) - limit} more' if len(names) > limit else ''
  )


def split_backbone(base: keras.Model) -> keras.Model:
  """The base model without its head: inputs -> EMBEDDING (or, failing
  that, the input of the base model's output layer)."""
  names = [layer.name for layer in base.layers]
  if model_lib.EMBEDDING in names:
    output = base.get_layer(model_lib.EMBEDDING).output
  elif 'backbone' in names:  # a model this module fine-tuned before
    # The nested backbone's output in `base`'s graph (its last node; node 0
    # is the nested model's own graph).
    output = base.get_layer('backbone').get_output_at(-1)
  else:
    output = base.layers[-1].input
  return keras.Model(base.input, output, name='backbone')


def _leaf_layers(model: keras.Model) -> List[keras.layers.Layer]:
  leaves = []
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      leaves += _leaf_layers(layer)
    else:
      leaves.append(layer)
  return leaves


def backbone_blocks(backbone: keras.Model) -> List[List[keras.layers.Layer]]:
  """The backbone's weighted layers grouped into blocks, bottom to top:
  layers named `block<N>_...` share block N; any other weighted layer is a
  block of its own."""
  blocks: List[List[keras.layers.Layer]] = []
  current_key: Optional[str] = None
  for layer in _leaf_layers(backbone):
    if not layer.weights:
      continue
    match = _BLOCK.match(layer.name)
    key = match.group(1) if match else None
    if key is not None and key == current_key:
      blocks[-1].append(layer)
    else:
      blocks.append([layer])
    current_key = key
  return blocks


def trainable_blocks(
  strategy: str,
  num_blocks: int,
  unfreeze_blocks: int,
  epoch: int = 0,
  epochs_per_stage: int = 1,
) -> int:
  """How many backbone blocks, from the top, train at `epoch` (0-based)."""
  if strategy == 'feature_extraction':
    return 0
  if strategy == 'full':
    return num_blocks
  limit = min(int(unfreeze_blocks), num_blocks)
  if strategy == 'discriminative_lr':
    return limit
  if strategy == 'gradual_unfreezing':
    return min(limit, epoch // max(1, int(epochs_per_stage)))
  raise ValueError(
    f'unknown fine-tuning strategy {strategy!r}; allowed: '
    f'{", ".join(STRATEGIES)}'
  )


def learning_rates(
  strategy: str,
  head_lr: float,
  backbone_lr_scale: float,
  lr_decay: float,
  thawed: int,
) -> List[float]:
  """Learning rates of the `thawed` top blocks, top first."""
  top = head_lr * backbone_lr_scale
  if strategy == 'discriminative_lr':
    return [top * lr_decay**depth for depth in range(thawed)]
  return [top] * thawed


def stages(
  strategy: str,
  num_blocks: int,
  hparams: Mapping[str, Any],
  initial_epoch: int,
  epochs: int,
) -> List[Tuple[int, int, int]]:
  """(first epoch, end epoch, thawed blocks) for each fit between
  re-compilations, covering [initial_epoch, epochs)."""
  result: List[Tuple[int, int, int]] = []
  for epoch in range(initial_epoch, epochs):
    thawed = trainable_blocks(
      strategy,
      num_blocks,
      hparams['unfreeze_blocks'],
      epoch,
      hparams['epochs_per_stage'],
    )
    if result and result[-1][2] == thawed:
      result[-1] = (result[-1][0], epoch + 1, thawed)
    else:
      result.append((epoch, epoch + 1, thawed))
  return result


class FinetuneModel(keras.Model):
  """A functional model whose train_step applies one optimizer per group of
  variables (the head, then each thawed block), so that each group learns at
  its own rate. Build with `build_finetune_model`."""

  def set_groups(
    self, groups: List[Tuple[keras.optimizers.Optimizer, List[tf.Variable]]]
  ) -> None:
    # Held in a plain object so that Keras does not track the optimizers as
    # part of the model: Keras Tuner's checkpoints then hold only weights.
    self._holder = _Groups(groups)

  def train_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    with tf.GradientTape() as tape:
      y_pred = self(x, training=True)
      loss = self.compute_loss(x, y, y_pred, sample_weight)
    variables = self.trainable_variables
    gradients = dict(
      zip(
        (v.ref() for v in variables),
        tape.gradient(loss, variables),
        strict=True,
      )
    )
    for optimizer, group in self._holder.groups:
      pairs = [
        (gradients[v.ref()], v)
        for v in group
        if gradients.get(v.ref()) is not None
      ]
      if pairs:
        optimizer.apply_gradients(pairs)
    return self.compute_metrics(x, y, y_pred, sample_weight)


class _Groups:
  def __init__(self, groups):
    self.groups = groups


def load_checked(
  path: Optional[str], inputs: model_lib.ModelInputs
) -> keras.Model:
  """load_base_model + check_inputs; a missing path is a BaseModelError."""
  if not path:
    raise BaseModelError(
      'base model: training.mode is finetune but no base '
      'model reached the component'
    )
  base = load_base_model(path)
  check_inputs(base, inputs, path)
  return base


def _backbone_features(
  base: Optional[keras.Model],
  inputs: model_lib.ModelInputs,
  hparams: Mapping[str, Any],
  model_inputs: Dict[str, Any],
  inference_backbone: bool,
) -> Tuple[keras.Model, Any]:
  """(the backbone, its output on `model_inputs`): the base model's
  backbone, or the pretrained encoders' with the side features beside
  them (Finetuner's arguments)."""
  training = False if inference_backbone else None
  if base is not None:
    backbone = split_backbone(base)
    x = backbone(
      {k: model_inputs[k] for k in backbone.input_names},
      training=training,
    )
    return backbone, x
  backbone = model_lib.pretrained_backbone(inputs)
  if backbone is None:
    raise BaseModelError(
      'training.mode is finetune, but there is neither'
      ' a base model nor a pretrained encoder'
    )
  x = backbone(
    model_lib.backbone_entries(inputs, model_inputs), training=training
  )
  side = inputs.side_features(model_inputs, hparams)
  if side:
    x = keras.layers.Concatenate(name='head_features')([x, *side])
  return backbone, x


def _head_features(x: Any, hparams: Mapping[str, Any]) -> Any:
  """The new head's dropout and hidden layer over `x`, each when asked
  for; the task's output layer goes on top."""
  if hparams['dropout'] > 0:
    x = keras.layers.Dropout(float(hparams['dropout']), name='head_dropout')(x)
  if int(hparams['head_units']) > 0:
    x = keras.layers.Dense(
      int(hparams['head_units']),
      activation='relu',
      kernel_regularizer=keras.regularizers.L1L2(
        l1=float(hparams['l1']), l2=float(hparams['l2'])
      ),
      name='head_dense',
    )(x)
  return x


class Finetuner:
  """A base model's backbone with a new head, trained by one strategy.

  Attributes:
    model: the FinetuneModel being trained.
    backbone: the base model's backbone (a nested model inside `model`).
    blocks: backbone_blocks(backbone), bottom to top.
    trainable_history: per epoch trained, the number of trainable weights.
  """

  def __init__(
    self,
    base: Optional[keras.Model],
    inputs: model_lib.ModelInputs,
    hparams: Mapping[str, Any],
    inference_backbone: bool = True,
  ):
    """Args:
    base: the base model (see split_backbone), or None to fine-tune the
      pretrained encoders of `inputs` (model_lib.pretrained_backbone).
    inputs: the transformed features and classes of the new task.
    hparams: search_space.sample values in finetune mode.
    inference_backbone: call the backbone with training=False (its
      batch-norm statistics stay the base model's). Only a backbone
      trained from fresh weights (the comparison's scratch) sets False.
    """
    if hparams['strategy'] not in STRATEGIES:
      raise ValueError(
        f'unknown fine-tuning strategy {hparams["strategy"]!r};'
        f' allowed: {", ".join(STRATEGIES)}'
      )
    self.hparams = dict(hparams)
    # Built under a distribution strategy's scope (modules/distribute.py),
    # the optimizers prepare() creates must be made under it too.
    self.strategy = tf.distribute.get_strategy()
    self.task = inputs.task
    model_inputs = inputs.input_layers()
    self.backbone, x = _backbone_features(
      base, inputs, hparams, model_inputs, inference_backbone
    )
    self.blocks = backbone_blocks(self.backbone)
    x = _head_features(x, hparams)
    self.model = FinetuneModel(inputs=model_inputs, outputs=inputs.task.head(x))
    self.head_layers = [
      layer
      for layer in self.model.layers
      if layer is not self.backbone and layer.weights
    ]
    self.trainable_history: List[int] = []

  def prepare(self, thawed: int) -> None:
    """Freezes all but the top `thawed` blocks and re-compiles with one
    optimizer per group at its learning rate."""
    with self.strategy.scope():
      self._prepare(thawed)

  def _prepare(self, thawed: int) -> None:
    self.backbone.trainable = True
    for layer in _leaf_layers(self.backbone):
      layer.trainable = False
    top_first = list(reversed(self.blocks))[:thawed]
    for block in top_first:
      for layer in block:
        layer.trainable = True
    h = self.hparams
    rates = learning_rates(
      h['strategy'],
      float(h['learning_rate']),
      float(h['backbone_lr_scale']),
      float(h['lr_decay']),
      thawed,
    )
    head_vars = [
      v for layer in self.head_layers for v in layer.trainable_weights
    ]
    groups = [
      (model_lib.make_optimizer(h['optimizer'], h['learning_rate']), head_vars)
    ]
    for block, rate in zip(top_first, rates, strict=True):
      groups.append(
        (
          model_lib.make_optimizer(h['optimizer'], rate),
          [v for layer in block for v in layer.trainable_weights],
        )
      )
    self.model.set_groups(groups)
    self.model.compile(
      optimizer=groups[0][0],
      **model_lib.loss_and_metrics(self.task, self.hparams),
    )

  def fit(
    self,
    train: tf.data.Dataset,
    validation_data: tf.data.Dataset,
    epochs: int,
    initial_epoch: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 0,
    class_weight: Optional[Dict[int, float]] = None,
  ) -> keras.callbacks.History:
    """Trains epochs [initial_epoch, epochs) stage by stage; returns one
    History over all stages. Stops early when a callback stops a stage."""
    merged = keras.callbacks.History()
    merged.history, merged.epoch = {}, []
    recorder = _TrainableRecorder(self.trainable_history)
    for first, end, thawed in stages(
      self.hparams['strategy'],
      len(self.blocks),
      self.hparams,
      initial_epoch,
      epochs,
    ):
      self.prepare(thawed)
      history = self.model.fit(
        train,
        validation_data=validation_data,
        initial_epoch=first,
        epochs=end,
        callbacks=[recorder, *callbacks],
        verbose=verbose,
        class_weight=class_weight,
      )
      merged.epoch += history.epoch
      for key, values in history.history.items():
        merged.history.setdefault(key, []).extend(values)
      if self.model.stop_training:
        break
    merged.model = self.model
    return merged

  def schedule(self, epochs: int) -> Dict[str, Any]:
    """Which backbone blocks trained when, and at what rates: the strategy,
    the blocks, and per stage its epochs (1-based, inclusive), the blocks
    thawed from the top and their learning rates (top first); the epochs
    after an early stop are left out."""
    h = self.hparams
    ran = len(self.trainable_history) or epochs
    result = []
    for first, end, thawed in stages(
      h['strategy'], len(self.blocks), h, 0, epochs
    ):
      if first >= ran:
        break
      result.append(
        {
          'first_epoch': first + 1,
          'last_epoch': min(end, ran),
          'thawed_blocks': thawed,
          'learning_rates': learning_rates(
            h['strategy'],
            float(h['learning_rate']),
            float(h['backbone_lr_scale']),
            float(h['lr_decay']),
            thawed,
          ),
        }
      )
    return {
      'strategy': h['strategy'],
      'blocks': len(self.blocks),
      'head_learning_rate': float(h['learning_rate']),
      'stages': result,
    }

  def export_model(self) -> keras.Model:
    """A plain functional model over the same layers (no custom train_step),
    for serving and for use as a later base model."""
    return keras.Model(self.model.input, self.model.output)


class _TrainableRecorder(keras.callbacks.Callback):
  def __init__(self, sink: List[int]):
    super().__init__()
    self._sink = sink

  def on_epoch_begin(self, epoch, logs=None):
    self._sink.append(len(self.model.trainable_weights))
