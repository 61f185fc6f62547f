"""The typed module config: what the spec hands the module callbacks.

The spec (pipeline/definition/schema.py) is built from these sections; the
pipeline definition serialises the ones a component reads into its
`custom_config` (JSON: all that travels into a Kubeflow container), and
each callback parses it back, at its first line, into the same types:

    config = TrainerConfig.from_custom_config(fn_args.custom_config)
    config.training.epochs

Each default is stated here, once. No TensorFlow: the spec imports this.

- `TransformConfig`: preprocessing_fn (features, preprocessing).
- `TrainerConfig`: run_fn (+ model, training).
- `TunerConfig`: tuner_fn (+ tuner).

One module per job, every name re-exported here (`modules.config.X`):
`base.py` (the strict base, the searched ranges), `search.py` (the search
space), `preprocessing.py`, `model.py` (the model section and the exported
model's contract), `training.py` (training, tuner, evaluation) and
`callbacks.py` (the configs above, parsed from custom_config).
"""

from modules.config.base import FloatRange, IntRange, Strict
from modules.config.callbacks import (
  ConfigError,
  ModuleConfig,
  TrainerConfig,
  TransformConfig,
  TunerConfig,
  TuningTrainingSpec,
)
from modules.config.model import (
  IMAGE_ENCODERS,
  LEARNED_ENCODERS,
  MODEL_BUILDERS,
  PREDICTION,
  PRETRAINED_SOURCES,
  PROBABILITIES,
  PROBABILITY,
  RAW_SIGNATURE,
  TEXT_ENCODERS,
  TRANSFORM_FEATURES_SIGNATURE,
  Builder,
  EncoderChoice,
  ImageSpec,
  Learned,
  ModelSpec,
  PretrainedEncoder,
)
from modules.config.preprocessing import (
  CATEGORICAL_FILLS,
  NUMERIC_FILLS,
  NUMERIC_SCALINGS,
  AugmentSpec,
  CategoricalFill,
  ConstantToken,
  FeatureImpute,
  ImputeSpec,
  NumericFill,
  PreprocessingSpec,
  TextSpec,
  VocabularySpec,
)
from modules.config.search import (
  FINETUNE_STRATEGIES,
  OPTIMIZERS,
  FinetuneSpace,
  GbtSpace,
  SearchSpace,
)
from modules.config.training import (
  MONITOR_DIRECTIONS,
  MONITORS,
  PARALLEL_AUTO,
  TUNER_ALGORITHMS,
  ClassWeight,
  DecisionSpec,
  EarlyStoppingSpec,
  Loss,
  TrainingSpec,
  TrialTrainingSpec,
  TunerSpec,
)
from modules.features import FeaturesSpec, indicator_name

__all__ = [
  'AugmentSpec',
  'Builder',
  'CATEGORICAL_FILLS',
  'CategoricalFill',
  'ClassWeight',
  'ConfigError',
  'ConstantToken',
  'DecisionSpec',
  'EarlyStoppingSpec',
  'EncoderChoice',
  'FINETUNE_STRATEGIES',
  'FeatureImpute',
  'FeaturesSpec',
  'FinetuneSpace',
  'FloatRange',
  'GbtSpace',
  'IMAGE_ENCODERS',
  'ImageSpec',
  'ImputeSpec',
  'IntRange',
  'LEARNED_ENCODERS',
  'Learned',
  'Loss',
  'MODEL_BUILDERS',
  'MONITOR_DIRECTIONS',
  'MONITORS',
  'ModelSpec',
  'ModuleConfig',
  'NUMERIC_FILLS',
  'NUMERIC_SCALINGS',
  'NumericFill',
  'OPTIMIZERS',
  'PARALLEL_AUTO',
  'PREDICTION',
  'PRETRAINED_SOURCES',
  'PROBABILITIES',
  'PROBABILITY',
  'PreprocessingSpec',
  'PretrainedEncoder',
  'RAW_SIGNATURE',
  'SearchSpace',
  'Strict',
  'TEXT_ENCODERS',
  'TRANSFORM_FEATURES_SIGNATURE',
  'TUNER_ALGORITHMS',
  'TextSpec',
  'TrainerConfig',
  'TrainingSpec',
  'TransformConfig',
  'TrialTrainingSpec',
  'TunerConfig',
  'TunerSpec',
  'TuningTrainingSpec',
  'VocabularySpec',
  'indicator_name',
]
