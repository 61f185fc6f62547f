"""The typed records of what runs did, as they cross rooms: the run summary
`run` writes to JSON and prints (RunSummary), the blessing, metrics and push
read back from ML Metadata (RunOutcome: the report's too), each run as
`lineage runs` and the dashboard list it (RunListing), and each pushed
version (PushedVersion). Their base, Record, and what `lineage diff`
finds (RunDiff) are in pipeline/metadata/records.py.

Each is JSON data through `to_json` (the summary file, `lineage runs
--json`) and reads back from it, summary files already written included.
Light on purpose (pydantic only): the CLI prints a summary without loading
ML Metadata.
`python -m pipeline.metadata.summary` writes the summary's key reference
into docs/cli.md (tests/unit/report/test_report.py checks it is current).
"""

import json
import os
import typing
from typing import Any, Dict, List, Optional, Type, Union

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import PipelineError, one_line
from pipeline.metadata.records import Record


class SummaryError(PipelineError):
  """A summary file cannot be read as a run summary. One line."""


class ComponentRun(Record):
  """One execution of a run: a pipeline node or a resolver."""

  id: str = Field(
    description='The pipeline node id (`Trainer`), or the '
    "execution's type when it has none."
  )
  state: str = Field(
    description='complete, cached, failed, running, new, '
    "canceled or unknown (ML Metadata's last known state)."
  )
  seconds: float = Field(
    description='From its registration to its last '
    'update in the store, to the millisecond.'
  )
  execution_id: int = Field(description='Its ML Metadata execution id.')
  is_resolver: bool = Field(
    description='A resolver node (`*_resolver`): '
    'finds inputs, runs no code of its own.'
  )
  engine: Optional[str] = Field(
    None,
    description='Where its Beam jobs ran (direct, flink, ...); null '
    'for a component that runs no Beam, or one served from the cache.',
  )


class SliceMetrics(Record):
  """One slice's metrics (the spec's `evaluation.slices`)."""

  metrics: Dict[str, float] = Field(
    description="The slice's metric values by the spec's names."
  )
  undefined: List[str] = Field(
    description='Metrics undefined on this slice (two-class metrics on a '
    'one-class slice, or not a number): reported, never read as 0.'
  )
  reason: Optional[str] = Field(
    description='Why they are undefined; null when none is.'
  )


class BestTrial(Record):
  """The search's best trial."""

  trial_id: str = Field(description="Keras Tuner's trial id.")
  score: float = Field(description='Its objective.')
  epochs: Optional[int] = Field(description='The epoch it reached.')


class SearchReport(Record):
  """What the Tuner's search did (components/tuner.py writes it as
  search_report.json, with every trial, which the summary leaves out)."""

  model_config = ConfigDict(frozen=True, extra='allow')
  asked: Optional[str] = Field(
    None,
    description='The algorithm the spec '
    "asked for (null: a module file's tuner).",
  )
  algorithm: Optional[str] = Field(
    None, description='The algorithm that ran (modules/search_plan.py).'
  )
  max_trials: Optional[int] = Field(None, description='The trials planned.')
  max_epochs: Optional[int] = Field(None, description="A trial's most epochs.")
  space_size: Optional[int] = Field(
    None, description='Configurations in the search space (null: unbounded).'
  )
  note: Optional[str] = Field(
    None,
    description='Why the search did less '
    'than asked, or was made sensible; else null.',
  )
  objective: Optional[str] = Field(None, description='The metric searched.')
  processes: Optional[int] = Field(
    None, description='The processes that ran trials.'
  )
  trials_run: Optional[int] = Field(
    None, description='Trials completed with a score.'
  )
  epochs_trained: Optional[int] = Field(
    None, description='Epochs trained over all trials.'
  )
  trials_by_epochs: Optional[Dict[str, int]] = Field(
    None, description='Completed trials by the epoch they reached.'
  )
  best: Optional[BestTrial] = Field(
    None, description='The best trial, null before one scored.'
  )
  line: Optional[str] = Field(
    None, description='The search in one line (`run` prints it as `search:`).'
  )


class RunOutcome(Record):
  """A run's blessing (and why), metrics, baseline and push, read back
  from ML Metadata (results.summarize)."""

  blessed: Optional[bool] = Field(
    description='Whether the Evaluator blessed the model; null: not judged.'
  )
  blessing_reason: Optional[str] = Field(
    description='Why: the rule met, or each failed threshold with its value.'
  )
  baseline_model: Optional[str] = Field(
    description='The URI of the last blessed model it was compared with; '
    'null when there was none.'
  )
  metrics: Dict[str, float] = Field(
    description="The eval split's overall metrics by the spec's names "
    '(those undefined there left out).'
  )
  slices: Dict[str, SliceMetrics] = Field(
    description="Each slice's metrics, by slice name (`feature=value`)."
  )
  pushed: bool = Field(
    description='Whether this run (or the run whose '
    'cached Pusher it reused) pushed the model.'
  )
  pushed_version: Optional[str] = Field(
    description="The version pushed (the serving folder's name)."
  )
  pushed_path: Optional[str] = Field(description='The folder pushed to.')
  model_uri: Optional[str] = Field(
    description="The Trainer's Model artifact URI."
  )
  search: Optional[SearchReport] = Field(
    description="What the Tuner's search did; null when no Tuner ran."
  )
  not_pushed_reason: Optional[str] = Field(
    None,
    description='Present when the Pusher ran and pushed nothing: '
    'why (components/pusher.py).',
  )


class RunSummary(RunOutcome):
  """The run summary: what `run` prints, writes to JSON and returns."""

  pipeline: str = Field(description="The spec's pipeline name.")
  run_id: str = Field(description='The run id (its start time).')
  status: str = Field(description='succeeded or failed.')
  failed_component: Optional[str] = Field(
    description='The component that failed; null when none did.'
  )
  reason: Optional[str] = Field(description='Why it failed, in one line.')
  components: List[ComponentRun] = Field(
    description='Each execution of the run, in order.'
  )
  task: Optional[str] = Field(
    None,
    description="The spec's task (binary, multiclass, regression); "
    'absent from summaries written before it was added.',
  )
  blessing_rule: Optional[str] = Field(
    None,
    description='The rule that blesses a model, as `validate` says '
    'it; absent from summaries written before it was added.',
  )
  metadata: str = Field(description='The ML Metadata store.')
  pipeline_root: str = Field(description="The run's pipeline root.")
  summary_json: Optional[str] = Field(
    description='Where this summary was written; null when it could not be.'
  )
  summary_error: Optional[str] = Field(
    None,
    description='Why the summary could not be written; null when '
    'it was (only in what `run` prints and returns: the file, written '
    'before this is known, has no such key).',
  )
  report: Optional[str] = Field(
    description="The run's HTML report; null when it could not be written."
  )
  report_error: Optional[str] = Field(
    None,
    description='Why the report could not be written; else null '
    '(absent from summaries written before it was added).',
  )
  total_seconds: float = Field(
    description="The command's time: checks, TFX's import, the run, and "
    'writing the summary and report.'
  )

  def executed(self) -> List[str]:
    """Components (not resolvers) that really executed in the run."""
    return [
      c.id for c in self.components if not c.is_resolver and c.state != 'cached'
    ]

  @classmethod
  def read(cls, path: str) -> 'RunSummary':
    """The summary in the JSON file at `path`.

    Raises:
      SummaryError: it cannot be read, or is no run summary (one line).
    """
    try:
      with open(path, encoding='utf-8') as f:
        return cls.model_validate(json.load(f))
    except (OSError, ValueError) as e:
      raise SummaryError(f'{path}: not a run summary: {_why(e)}') from None


def _why(error: Exception) -> str:
  if isinstance(error, pydantic.ValidationError):
    first = error.errors()[0]
    where = '.'.join(str(part) for part in first['loc']) or 'the file'
    more = error.error_count() - 1
    return f'{where}: {first["msg"]}' + (f' (and {more} more)' if more else '')
  return one_line(error)


class RunListing(Record):
  """One run as `lineage runs` lists it (and the dashboard's runs page)."""

  run_id: str = Field(description='The run id.')
  pipeline: str = Field(description='The pipeline it ran.')
  started: str = Field(description='When its first execution started.')
  seconds: float = Field(
    description='From its first execution to its last update.'
  )
  status: str = Field(
    description='complete, failed, running, interrupted, '
    'terminated or killed (results.run_status).'
  )
  components: Dict[str, str] = Field(
    description='Each component (not resolvers) -> its state.'
  )
  engines: Dict[str, str] = Field(
    description='Each Beam component that ran -> the engine it ran on.'
  )
  blessed: Optional[bool] = Field(description='null: nothing was judged.')
  pushed_version: Optional[str] = Field(
    description='The version this run pushed; null when it pushed none.'
  )
  failure: Optional[str] = Field(
    description="A failed run's '<component> failed: <reason>'."
  )


class PushedVersion(Record):
  """A model pushed from a store (the dashboard's pushed versions)."""

  artifact_id: int = Field(description='Its PushedModel artifact id.')
  pipeline: str = Field(description='The pipeline that pushed it.')
  run: Optional[str] = Field(description='The run that pushed it.')
  version: Optional[str] = Field(description='The version pushed.')
  destination: Optional[str] = Field(description='The folder pushed to.')
  metrics: Dict[str, float] = Field(description="That run's overall metrics.")


# The summary's key reference in the docs, between these lines.
DOCS_PAGE = os.path.normpath(
  os.path.join(os.path.dirname(__file__), '..', '..', 'docs', 'cli.md')
)
BEGIN = (
  "<!-- The run summary's keys, generated from pipeline/metadata/"
  'summary.py: python -m pipeline.metadata.summary -->'
)
END = "<!-- end of the run summary's keys -->"
_SECTIONS = (
  ('', RunSummary),
  ('components[]', ComponentRun),
  ('slices.NAME', SliceMetrics),
  ('search', SearchReport),
  ('search.best', BestTrial),
)


_JSON_TYPES = {
  str: 'string',
  int: 'integer',
  float: 'number',
  bool: 'boolean',
  type(None): 'null',
}


def _type_text(annotation: Any) -> str:
  """A field's type in JSON's words: `string or null`, `list of
  ComponentRun`, `object of number`."""
  origin, args = typing.get_origin(annotation), typing.get_args(annotation)
  if origin is Union:
    named = [_type_text(arg) for arg in args if arg is not type(None)]
    return ' or '.join(named + ['null'] * (type(None) in args))
  if origin is list:
    return f'list of {_type_text(args[0])}'
  if origin is dict:
    return f'object of {_type_text(args[1])}'
  return _JSON_TYPES.get(annotation, getattr(annotation, '__name__', '?'))


def _fields(model: Type[BaseModel]) -> List[str]:
  """The model's fields, its own before those it inherits."""
  inherited = [
    name
    for base in model.__bases__
    for name in getattr(base, 'model_fields', {})
  ]
  return [name for name in model.model_fields if name not in inherited] + [
    name for name in model.model_fields if name in inherited
  ]


def reference() -> str:
  """The summary's keys, each with its type and description, as the
  Markdown docs/cli.md holds between BEGIN and END."""
  lines = [BEGIN]
  for prefix, model in _SECTIONS:
    about = ' '.join(model.__doc__.split('\n\n')[0].split())
    lines += [
      '',
      f'`{prefix}`: {about}' if prefix else f'The top level: {about}',
      '',
      '| key | type | description |',
      '| --- | --- | --- |',
    ]
    for name in _fields(model):
      field = model.model_fields[name]
      lines.append(
        f'| `{name}` | {_type_text(field.annotation)} | {field.description} |'
      )
  return '\n'.join(lines + ['', END])


def undescribed(models: Optional[List[Type[BaseModel]]] = None) -> List[str]:
  """Fields without a description, as Model.field."""
  return [
    f'{model.__name__}.{name}'
    for model in models or [m for _, m in _SECTIONS]
    for name, field in model.model_fields.items()
    if not field.description
  ]


def docs_block(text: str) -> str:
  """The part of a docs page between BEGIN and END, both included."""
  start, end = text.find(BEGIN), text.find(END)
  if start < 0 or end < start:
    raise SummaryError(f'{DOCS_PAGE}: no run summary key reference in it')
  return text[start : end + len(END)]


def main() -> None:
  """Writes the reference into DOCS_PAGE, in place of the one there."""
  with open(DOCS_PAGE, encoding='utf-8') as f:
    text = f.read()
  text = text.replace(docs_block(text), reference())
  with open(DOCS_PAGE, 'w', encoding='utf-8') as f:
    f.write(text)


if __name__ == '__main__':
  main()
