"""The one features module: the label, the feature keys and transformed names.

`FeaturesSpec` is the spec's `features` section and the modules' view of it
(it travels to every callback inside the typed module config,
modules/config.py), so preprocessing, the model, the evaluation and the tests
all read the feature lists from here. No TensorFlow: the spec imports it.
"""

from typing import List

from pydantic import BaseModel, ConfigDict, Field

TRANSFORMED_SUFFIX = '_xf'


def transformed_name(key: str) -> str:
  """The Transform output name of raw feature `key`."""
  return key + TRANSFORMED_SUFFIX


class FeaturesSpec(BaseModel):
  """Which raw columns are the label, numeric and categorical features.

  `num_classes` 2: a 0/1 label and a sigmoid output; more: class indices
  0..n-1 and a softmax output.
  """
  model_config = ConfigDict(extra='forbid', frozen=True)

  label: str
  num_classes: int = Field(default=2, ge=2)
  numeric: List[str] = []
  categorical: List[str] = []

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
