"""The base of the typed records that cross rooms (`Record`), and what
`lineage diff` finds between two runs (RunDiff): the CLI prints it as text
or JSON (`to_json`), the dashboard's diff page shows it.

The run summary, the run listings and the pushed versions are in
pipeline/metadata/summary.py. Light on purpose (pydantic only).
"""

from typing import Any, Dict, List, Optional, Tuple

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
  """A record that `to_json` gives as JSON data. A field with a default
  that was never set is left out: the keys a record has only sometimes
  (`not_pushed_reason`), or that files written before the key was added
  lack, stay out of it as they were."""

  model_config = ConfigDict(frozen=True, extra='forbid')

  def to_json(self) -> Dict[str, Any]:
    return self.model_dump(mode='json', exclude_unset=True)


class ValueChange(Record):
  """A value that differs between the two runs."""

  a: Any = Field(description="The first run's value; null: it had none.")
  b: Any = Field(description="The second run's value; null: it had none.")


class MetricChange(Record):
  """A metric whose value differs between the two runs."""

  a: Optional[float] = Field(
    description="The first run's value; null: it lacks the metric."
  )
  b: Optional[float] = Field(
    description="The second run's value; null: it lacks the metric."
  )
  delta: Optional[float] = Field(
    description='b - a, to 6 decimals; null where a run lacks the metric.'
  )


class ConfigChange(Record):
  """A key of what the components were given (`features.exclude`) that a
  component of both runs recorded with another value."""

  a: Any = Field(
    description="The first of `components`' value in the first run; "
    'null: it did not record the key.'
  )
  b: Any = Field(
    description='Its value in the second run; null: it did not record the key.'
  )
  components: List[str] = Field(
    description='The components of both runs that recorded another value.'
  )


class ComponentsOnlyIn(Record):
  """Components that ran in one of the two runs only."""

  a: List[str] = Field(description='Those only in the first run.')
  b: List[str] = Field(description='Those only in the second run.')


class ComponentStates(Record):
  """A component's state in each run (complete, cached, failed, ...)."""

  a: Optional[str] = Field(
    description='Its state in the first run; null: it did not run there.'
  )
  b: str = Field(description='Its state in the second run.')


class Changes(Record):
  """What differs between the two runs; a key is there only when its
  part changed, in this order."""

  model_config = ConfigDict(
    frozen=True,
    extra='forbid',
    validate_by_name=True,
    validate_by_alias=True,
    serialize_by_alias=True,
  )

  data_fingerprint: Optional[ValueChange] = Field(
    None, description="The input data's fingerprint (ExampleGen's)."
  )
  # `schema` would shadow BaseModel.schema: only its JSON key is `schema`.
  schema_: Optional[ValueChange] = Field(
    None,
    alias='schema',
    description="The imported schema's hash (sha256, 16 hex digits).",
  )
  code_version: Optional[ValueChange] = Field(
    None, description="The module code's version the Trainer recorded."
  )
  training: Optional[ValueChange] = Field(
    None, description="The spec's training settings the Trainer was given."
  )
  hyperparameters: Optional[Dict[str, ValueChange]] = Field(
    None, description='Each hyperparameter the Trainer used that differs.'
  )
  config: Optional[Dict[str, ConfigChange]] = Field(
    None,
    description='Each dotted key of what the components were given (the '
    'spec as they saw it) that differs.',
  )
  components: Optional[ComponentsOnlyIn] = Field(
    None, description='Components that ran in one run only.'
  )
  metrics: Optional[Dict[str, MetricChange]] = Field(
    None, description="Each overall metric of the Evaluator's that differs."
  )

  def changed(self) -> List[Tuple[str, Any]]:
    """(JSON key, change) of each part that changed, in the JSON's order."""
    return [
      (field.alias or name, getattr(self, name))
      for name, field in type(self).model_fields.items()
      if getattr(self, name) is not None
    ]


class RunDiff(Record):
  """What differs between two runs, and what the second reused from the
  cache (`lineage diff`, the dashboard's diff page)."""

  run_a: str = Field(description='The first run id.')
  run_b: str = Field(description='The second run id.')
  changes: Changes = Field(description='What differs, part by part.')
  unchanged: List[str] = Field(
    description='The parts that are the same (data_fingerprint, schema, '
    'code_version, training, config, hyperparameters, metrics).'
  )
  components: Dict[str, ComponentStates] = Field(
    description="Each of the second run's components (not resolvers), in "
    'its order, with its state in each run.'
  )
  reused_from_cache: List[str] = Field(
    description='The components the second run served from the cache.'
  )


DIFF_RECORDS = (
  RunDiff,
  Changes,
  ValueChange,
  MetricChange,
  ConfigChange,
  ComponentsOnlyIn,
  ComponentStates,
)
