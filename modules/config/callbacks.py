"""The configs the module callbacks parse from a component's
custom_config: one per callback, each carrying the sections it reads."""

from typing import Any, Dict, List, Mapping, Optional, Type, TypeVar

import pydantic

from modules import kinds, tasks
from modules.config.base import Strict
from modules.config.model import ModelSpec
from modules.config.preprocessing import PreprocessingSpec
from modules.config.training import (
  DecisionSpec,
  TrainingSpec,
  TrialTrainingSpec,
  TunerSpec,
)
from modules.features import FeaturesSpec, indicator_name


class ConfigError(ValueError):
  """A custom_config that is not this project's module config (e.g. a
  pipeline compiled by another version of the project). One line."""


_C = TypeVar('_C', bound='ModuleConfig')


class ModuleConfig(Strict):
  """A component's module config; `code_version` fingerprints the module
  code (TFX does not fingerprint code taken by import path, so it goes into
  the cache key through custom_config)."""

  code_version: str = ''

  def to_custom_config(self) -> Dict[str, Any]:
    """Plain JSON values, for a component's custom_config."""
    return self.model_dump(mode='json')

  @classmethod
  def from_custom_config(
    cls: Type[_C], custom_config: Optional[Mapping[str, Any]]
  ) -> _C:
    """Parses a callback's custom_config back into this type.

    Raises:
      ConfigError: naming the first key that does not fit.
    """
    try:
      return cls.model_validate(dict(custom_config or {}))
    except pydantic.ValidationError as e:
      first = e.errors()[0]
      key = '.'.join(str(p) for p in first['loc']) or '<top level>'
      raise ConfigError(
        f'custom_config is not a {cls.__name__}: {key}: {first["msg"]}; '
        'recompile the pipeline with this version of the project'
      ) from None

  @classmethod
  def sections(cls) -> List[str]:
    """The spec sections this config carries."""
    return [name for name in cls.model_fields if name != 'code_version']


class TransformConfig(ModuleConfig):
  """What preprocessing_fn reads. The task is known by now (the runner
  reads it from the data when the spec leaves it out)."""

  features: FeaturesSpec
  preprocessing: PreprocessingSpec = PreprocessingSpec()

  @property
  def task(self) -> tasks.Task:
    """The task (known for a model config; raises while the classes are
    not counted)."""
    return tasks.task_for(self.features)

  @property
  def label_transform(self) -> str:
    return tasks.label_transform(self.features)

  def indicators(self) -> List[str]:
    """The features whose was-missing indicator the Transform adds."""
    impute = self.preprocessing.impute
    return [
      key
      for key, kind in kinds.columns(self.features)
      if impute.rule(key, not kind.fill_is_numeric)[1]
    ]

  def numeric_inputs(self) -> List[str]:
    """The model's float inputs: each feature's by its kind, then the
    indicators."""
    return [
      name
      for key, kind in kinds.columns(self.features)
      for name in kind.float_inputs(key)
    ] + [indicator_name(k) for k in self.indicators()]

  def id_inputs(self) -> Dict[str, str]:
    """The model's id inputs (transformed name -> raw column)."""
    return {
      name: key
      for key, kind in kinds.columns(self.features)
      for name in kind.id_inputs(key)
    }


class _ModelConfig(TransformConfig):
  """A config that builds models. The task is known by now (the runner
  reads it from the data when the spec leaves it out)."""

  model: ModelSpec = ModelSpec()

  @pydantic.model_validator(mode='after')
  def _task_known(self):
    if not tasks.is_known(self.features):
      raise ValueError('features.task or features.num_classes is not resolved')
    return self


class TrainerConfig(_ModelConfig):
  """What run_fn reads."""

  training: TrainingSpec = TrainingSpec()
  evaluation: DecisionSpec = DecisionSpec()


class TuningTrainingSpec(TrialTrainingSpec):
  """The part of `training` a tuning trial uses. Not the epochs or the
  seed, which are the Trainer's: changing them re-runs the Trainer, not
  the Tuner."""


class TunerConfig(_ModelConfig):
  """What tuner_fn reads."""

  training: TuningTrainingSpec = TuningTrainingSpec()
  tuner: TunerSpec = TunerSpec()
