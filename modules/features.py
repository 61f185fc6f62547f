"""The one features module: the label, the feature keys and transformed names.

`FeaturesSpec` is the spec's `features` section and the modules' view of it
(it travels to every callback inside the typed module config,
modules/config/), so preprocessing, the model, the evaluation and the tests
all read the feature lists from here. No TensorFlow: the spec imports it.
"""

import re
from typing import List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from modules.tasks import DEFAULT_MAX_CLASSES, TASK_KINDS

TRANSFORMED_SUFFIX = '_xf'

# What a feature's or the label's name may be. A name becomes part of
# TensorFlow op and name-scope names (the Transform's analyzers, a Keras
# input per transformed feature, its layers) and of vocabulary file
# names: TensorFlow's root scope rule, without its '/' and '>' (a scope or
# path separator here).
NAME_PATTERN = re.compile(r'[A-Za-z0-9.][A-Za-z0-9_.-]*')


def is_usable_name(key: str) -> bool:
  """Whether `key` can name a feature or the label (NAME_PATTERN)."""
  return NAME_PATTERN.fullmatch(key) is not None


def usable_name(key: str) -> str:
  """A name like `key` that NAME_PATTERN allows ('mean radius' ->
  'mean_radius'), to suggest a rename."""
  name = re.sub(r'[^A-Za-z0-9_.-]+', '_', key).strip('_-')
  return name if is_usable_name(name) else 'column_' + name


def transformed_name(key: str) -> str:
  """The Transform output name of raw feature `key`."""
  return key + TRANSFORMED_SUFFIX


def indicator_name(key: str) -> str:
  """The Transform output that is 1.0 where raw feature `key` was missing."""
  return transformed_name(key + '_missing')


class FeaturesSpec(BaseModel):
  """Which raw columns are the label and the features, and what to predict.

  `task`: classification or regression; left out, the data decides (a
  label holding numbers that are not all whole is regression; class names
  or whole numbers are classes). A classification label is an INT column of
  class indices (0/1, or 0..n-1) or a STRING column of class names (given
  ids by a vocabulary over the train split, most frequent first);
  `num_classes` is None until the runner counts them, and an INT label with
  more than `max_classes` distinct values is refused unless `task` says
  which it is. A regression label is a number (modules/tasks.py).
  `numeric`, `categorical`, `date`, `text`, `image`: the features by column kind
  (modules/kinds.py). `exclude`: columns the model must not see (an id, a
  leak); they are no input of any serving signature. With no feature
  listed, the runner takes every other column by the kind it recognises.
  """

  model_config = ConfigDict(extra='forbid', frozen=True, strict=True)

  label: str = Field(description='The column to predict.')
  task: Optional[Literal[TASK_KINDS]] = Field(  # type: ignore[valid-type]
    default=None,
    description='classification or regression; left out, the data decides.',
  )
  num_classes: Optional[int] = Field(
    default=None,
    ge=2,
    description=(
      "A classification label's classes; left out, counted in the data."
    ),
  )
  max_classes: int = Field(
    default=DEFAULT_MAX_CLASSES,
    ge=2,
    description=(
      'An INT label with more distinct values than this is '
      'refused unless task says which it is.'
    ),
  )
  numeric: List[str] = Field(
    default=[],
    description=(
      'Numeric feature columns (no feature listed: every other '
      'column by the kind it is recognised as).'
    ),
  )
  categorical: List[str] = Field(
    default=[], description='Categorical feature columns.'
  )
  date: List[str] = Field(default=[], description='Date feature columns.')
  text: List[str] = Field(default=[], description='Free-text feature columns.')
  image: List[str] = Field(default=[], description='Image feature columns.')
  exclude: List[str] = Field(
    default=[],
    description=(
      'Columns the model must not see (an id, a leak); in no serving signature.'
    ),
  )

  @property
  def keys(self) -> List[str]:
    """Raw feature keys (label excluded), numeric first."""
    return (
      list(self.numeric)
      + list(self.categorical)
      + list(self.date)
      + list(self.text)
      + list(self.image)
    )

  @property
  def listed(self) -> bool:
    """Whether the spec (or the runner) has listed the features."""
    return bool(self.keys)

  @property
  def transformed_label(self) -> str:
    return transformed_name(self.label)

  @property
  def transformed_keys(self) -> List[str]:
    return [transformed_name(k) for k in self.keys]
