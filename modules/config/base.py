"""The sections' base: a strict, frozen model, and the searched ranges."""

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
  """A frozen section that refuses unknown keys, and values of another
  type than its fields': no `true` for a number, no "3" for an int, no
  NaN or infinity anywhere a number is expected (strict pydantic; an
  int is still a float)."""

  model_config = ConfigDict(
    extra='forbid', frozen=True, strict=True, allow_inf_nan=False
  )


class IntRange(Strict):
  """An integer hyperparameter: searched over [min, max] in `step`s."""

  min: int = Field(
    ge=0, description='The smallest value searched (the default).'
  )
  max: int = Field(ge=0, description='The largest value searched.')
  step: int = Field(
    default=1, ge=1, description='The step between values searched.'
  )


class FloatRange(Strict):
  """A float hyperparameter: searched over [min, max]."""

  min: float = Field(
    ge=0, description='The smallest value searched (the default).'
  )
  max: float = Field(ge=0, description='The largest value searched.')
  step: Optional[float] = Field(
    default=None,
    gt=0,
    description=(
      'The step between values searched (with log sampling, a '
      'factor); left out, any value.'
    ),
  )
  sampling: Literal['linear', 'log'] = Field(
    default='linear',
    description='linear or log: how values between min and max are sampled.',
  )
