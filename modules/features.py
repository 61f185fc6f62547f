"""The one features module: the label, the feature keys and transformed names.

`FeaturesSpec` is the spec's `features` section and the modules' view of it
(it travels to every callback inside the typed module config,
modules/config.py), so preprocessing, the model, the evaluation and the tests
all read the feature lists from here. No TensorFlow: the spec imports it.
"""

from typing import List, Optional

from pydantic import BaseModel, ConfigDict, Field

TRANSFORMED_SUFFIX = '_xf'


def transformed_name(key: str) -> str:
  """The Transform output name of raw feature `key`."""
  return key + TRANSFORMED_SUFFIX


def indicator_name(key: str) -> str:
  """The Transform output that is 1.0 where raw feature `key` was missing."""
  return transformed_name(key + '_missing')


class FeaturesSpec(BaseModel):
  """Which raw columns are the label, numeric and categorical features.

  The label is an INT column of class indices (0/1, or 0..n-1) or a STRING
  column of class names (given ids by a vocabulary over the train split,
  most frequent first). `num_classes` 2: a sigmoid output and binary
  metrics; more: a softmax output; None until the runner counts the classes
  in the data. `exclude`: columns in the data the model must not see (an
  id, a leak); they are no input of any serving signature. With neither
  numeric nor categorical features listed, the runner takes every other
  column: numbers as numeric, text as categorical.
  """
  model_config = ConfigDict(extra='forbid', frozen=True, strict=True)

  label: str
  num_classes: Optional[int] = Field(default=None, ge=2)
  numeric: List[str] = []
  categorical: List[str] = []
  exclude: List[str] = []

  @property
  def keys(self) -> List[str]:
    """Raw feature keys (label excluded), numeric first."""
    return list(self.numeric) + list(self.categorical)

  @property
  def transformed_label(self) -> str:
    return transformed_name(self.label)

  @property
  def transformed_keys(self) -> List[str]:
    return [transformed_name(k) for k in self.keys]
