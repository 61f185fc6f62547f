"""The one features module: feature keys, the label and transformed names.

Feature lists come from the spec (passed to every module callback as
`custom_config['features']`), so preprocessing, the model, the evaluation and
the tests all read them from here.
"""

import dataclasses
from typing import Any, List, Mapping

TRANSFORMED_SUFFIX = '_xf'


def transformed_name(key: str) -> str:
  """The Transform output name of raw feature `key`."""
  return key + TRANSFORMED_SUFFIX


@dataclasses.dataclass(frozen=True)
class Features:
  """Which raw columns are the label, numeric and categorical features."""
  label: str
  numeric: List[str]
  categorical: List[str]

  @classmethod
  def from_config(cls, custom_config: Mapping[str, Any]) -> 'Features':
    f = custom_config['features']
    return cls(label=f['label'], numeric=list(f.get('numeric', [])),
               categorical=list(f.get('categorical', [])))

  @property
  def keys(self) -> List[str]:
    """Raw feature keys (label excluded), numeric first."""
    return self.numeric + self.categorical

  @property
  def transformed_label(self) -> str:
    return transformed_name(self.label)

  @property
  def transformed_keys(self) -> List[str]:
    return [transformed_name(k) for k in self.keys]
