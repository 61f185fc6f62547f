"""The search space (model.search_space): what the Tuner may vary, and
the defaults the Trainer takes when no tuned values arrive."""

from typing import List, Literal

from pydantic import Field

from modules.config.base import FloatRange, IntRange, Strict

OPTIMIZERS = ('adam', 'sgd', 'rmsprop')
FINETUNE_STRATEGIES = (
  'feature_extraction',
  'full',
  'gradual_unfreezing',
  'discriminative_lr',
)


class FinetuneSpace(Strict):
  """What the Tuner may vary when fine-tuning (training.mode: finetune).

  The head's dropout, L1/L2, optimizer, learning rate and batch size come
  from the main search space; the backbone's learning rate is the head's
  times `backbone_lr_scale`, and under discriminative_lr each lower block's
  is the one above's times `lr_decay`. `unfreeze_blocks` counts backbone
  blocks from the top (capped at the backbone's block count);
  `epochs_per_stage` is gradual unfreezing's schedule: one more block thaws
  every that many epochs.
  """

  strategy: List[Literal[FINETUNE_STRATEGIES]] = Field(  # type: ignore[valid-type]
    default=list(FINETUNE_STRATEGIES),
    min_length=1,
    description=(
      'Fine-tuning strategies to choose between: '
      'feature_extraction, full, gradual_unfreezing, '
      'discriminative_lr.'
    ),
  )
  unfreeze_blocks: IntRange = Field(
    default=IntRange(min=1, max=3),
    description='Backbone blocks to unfreeze, counted from the top.',
  )
  head_units: List[int] = Field(
    default=[64, 0],
    min_length=1,
    description="Units of the new head's hidden layer (0: no hidden layer).",
  )
  backbone_lr_scale: FloatRange = Field(
    default=FloatRange(min=0.05, max=0.5, sampling='log'),
    description="The backbone's learning rate as a share of the head's.",
  )
  lr_decay: List[float] = Field(
    default=[0.5],
    min_length=1,
    description=(
      "Under discriminative_lr, each lower block's learning rate "
      "as a share of the one above's."
    ),
  )
  epochs_per_stage: List[int] = Field(
    default=[2],
    min_length=1,
    description=(
      'Under gradual_unfreezing, the epochs before one more block thaws.'
    ),
  )


class GbtSpace(Strict):
  """What the Tuner may vary for gradient boosted trees (model.builder
  gbt; modules/gbt.py): the first value of each list, and the minimum of
  each range, is the default."""

  num_trees: IntRange = Field(
    default=IntRange(min=100, max=300, step=100),
    description='Trees in the ensemble (boosting rounds).',
  )
  max_depth: IntRange = Field(
    default=IntRange(min=4, max=6), description='The depth of each tree.'
  )
  shrinkage: FloatRange = Field(
    default=FloatRange(min=0.05, max=0.2, sampling='log'),
    description='The learning rate: how much each tree corrects.',
  )
  min_examples: List[int] = Field(
    default=[5, 10, 20],
    min_length=1,
    description='The fewest training rows in a leaf.',
  )
  subsample: List[float] = Field(
    default=[1.0, 0.8],
    min_length=1,
    description='The share of rows each tree is trained on.',
  )


class SearchSpace(Strict):
  """The one search space shared by the Tuner and the Trainer.

  The first value of each list, and the minimum of each range, is the default
  the Trainer uses when no tuned hyperparameters arrive. From-scratch models
  search the architecture (num_layers, units, batch_norm); fine-tuning
  searches `finetune` instead, plus the shared optimizer settings. Field
  names are the Keras Tuner hyperparameter names (modules/search_space.py).
  """

  num_layers: IntRange = Field(
    default=IntRange(min=1, max=3),
    description='Hidden layers (cnn: conv blocks).',
  )
  units: IntRange = Field(
    default=IntRange(min=16, max=128, step=16),
    description=(
      "Units of each hidden layer (cnn: the first block's "
      'filters, doubling per block).'
    ),
  )
  dropout: FloatRange = Field(
    default=FloatRange(min=0.0, max=0.5, step=0.1),
    description='The dropout rate after each hidden layer.',
  )
  l1: List[float] = Field(
    default=[0.0], min_length=1, description='L1 regularisation factors.'
  )
  l2: List[float] = Field(
    default=[0.0, 1e-4, 1e-3],
    min_length=1,
    description='L2 regularisation factors.',
  )
  batch_norm: List[bool] = Field(
    default=[False, True],
    min_length=1,
    description='Whether to add batch normalisation.',
  )
  optimizer: List[Literal[OPTIMIZERS]] = Field(  # type: ignore[valid-type]
    default=['adam', 'rmsprop', 'sgd'],
    min_length=1,
    description='Optimizers to choose between: adam, rmsprop, sgd.',
  )
  learning_rate: FloatRange = Field(
    default=FloatRange(min=1e-4, max=1e-2, sampling='log'),
    description="The optimizer's learning rate.",
  )
  batch_size: List[int] = Field(
    default=[32, 16, 64], min_length=1, description='Training batch sizes.'
  )
  finetune: FinetuneSpace = Field(
    default=FinetuneSpace(),
    description='What the Tuner may vary when fine-tuning.',
  )
  gbt: GbtSpace = Field(
    default=GbtSpace(),
    description='What the Tuner may vary for gradient boosted trees.',
  )
  # The learned text encoder's embedding width (modules/encoders.py).
  embedding_dim: List[int] = Field(
    default=[64, 32],
    min_length=1,
    description="The learned text encoder's embedding width.",
  )
