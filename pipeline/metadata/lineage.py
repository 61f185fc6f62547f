"""Lineage from ML Metadata: which runs happened, and where a model came from.

`list_runs` summarises each pipeline run (per-component state, blessing,
pushed version); `trace` walks back from a pushed model, an artifact or a run
through every execution that produced its inputs, down to ExampleGen and its
input files. The store is opened read-only.
"""

import dataclasses
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from pipeline.errors import PipelineError, whole
from pipeline.metadata import results
from pipeline.metadata import store as metadata_lib
from pipeline.metadata.records import (
  Changes,
  ComponentsOnlyIn,
  ComponentStates,
  ConfigChange,
  MetricChange,
  RunDiff,
  ValueChange,
)
from pipeline.metadata.results import PUSH_RECORDED_BY, custom_property
from pipeline.metadata.summary import PushedVersion, RunListing
from pipeline.paths import atomic_file

_OUTPUTS = (
  metadata_store_pb2.Event.OUTPUT,
  metadata_store_pb2.Event.DECLARED_OUTPUT,
)
_INPUTS = (
  metadata_store_pb2.Event.INPUT,
  metadata_store_pb2.Event.DECLARED_INPUT,
)
# Artifact custom properties worth showing, by artifact type.
_SHOWN = {
  'Examples': ('span', 'input_fingerprint'),
  'ModelBlessing': ('blessed',),
  'PushedModel': (
    'pushed',
    'pushed_version',
    'pushed_destination',
    PUSH_RECORDED_BY,
  ),
}
_EXECUTION_SHOWN = ('input_base',)
_MAX_ID = 2**63 - 1  # ML Metadata's ids are int64


class LineageError(PipelineError):
  """A lineage query cannot be answered. The message is one line."""


def open_store(location: str) -> mlmd.MetadataStore:
  """Opens a store (a SQLite path, mysql:// or grpc:// URI; see
  pipeline/metadata.py) for reading, or says in one line why not."""
  try:
    return metadata_lib.open_store(location, readonly=True)
  except metadata_lib.MetadataError as e:
    raise LineageError(str(e)) from None


def _pipeline_of(store: mlmd.MetadataStore, execution_id: int) -> str:
  for ctx in store.get_contexts_by_execution(execution_id):
    if store.get_context_types_by_id([ctx.type_id])[0].name == 'pipeline':
      return ctx.name
  return ''


def run_record(
  store: mlmd.MetadataStore, run_id: str
) -> Optional[results.RunRecord]:
  """The RunRecord of run `run_id`; None when the store has no such run."""
  context = store.get_context_by_type_and_name('pipeline_run', run_id)
  executions = store.get_executions_by_context(context.id) if context else []
  if not executions:
    return None
  return results.RunRecord(store, _pipeline_of(store, executions[0].id), run_id)


def _node_contexts(store: mlmd.MetadataStore) -> Dict[int, Tuple[str, str]]:
  """execution id -> (pipeline, node id), from TFX's node contexts: one
  query per pipeline node, whatever the number of runs."""
  node_of = {}
  for ctx in store.get_contexts_by_type('node'):
    pipeline, _, node = ctx.name.partition('.')
    for execution in store.get_executions_by_context(ctx.id):
      node_of[execution.id] = (pipeline, node)
  return node_of


def _run_records(
  store: mlmd.MetadataStore, pipeline: Optional[str]
) -> List[Tuple[Any, results.RunRecord]]:
  """(run context, RunRecord) of every run with executions (of `pipeline`
  only, when given): every execution's node at once, then one query per
  run for its executions."""
  node_of = _node_contexts(store)
  engine_of = results.engines_of(store)
  records = []
  for ctx in store.get_contexts_by_type('pipeline_run'):
    executions = store.get_executions_by_context(ctx.id)
    if not executions:
      continue
    name = node_of.get(executions[0].id, ('', ''))[0]
    if pipeline and name != pipeline:
      continue
    record = results.RunRecord(
      store,
      name,
      ctx.name,
      executions,
      {e.id: node_of[e.id][1] for e in executions if e.id in node_of},
      engine_of,
    )
    records.append((ctx, record))
  return records


# The output whose artifact decides a run's blessing and its push.
_DECIDING = (('Evaluator', 'blessing'), ('Pusher', 'pushed_model'))


def _deciding_outputs(
  store: mlmd.MetadataStore, records: List[results.RunRecord]
) -> Dict[int, metadata_store_pb2.Artifact]:
  """Execution id -> the artifact its _DECIDING output key holds, for the
  Evaluators and Pushers of all `records`: their events and artifacts in
  one query each."""
  wanted = {}  # execution id -> output key whose artifact decides
  for record in records:
    for node, key in _DECIDING:
      execution = record.execution(node)
      if execution is not None:
        wanted[execution.id] = key
  events = store.get_events_by_execution_ids(list(wanted)) if wanted else []
  decided = {
    ev.execution_id: ev.artifact_id
    for ev in events
    if ev.type in _OUTPUTS
    and any(s.key == wanted[ev.execution_id] for s in ev.path.steps)
  }
  artifacts = (
    {a.id: a for a in store.get_artifacts_by_id(sorted(set(decided.values())))}
    if decided
    else {}
  )
  return {
    execution: artifacts[artifact]
    for execution, artifact in decided.items()
    if artifact in artifacts
  }


def _listing(
  ctx,
  record: results.RunRecord,
  decided: Dict[int, metadata_store_pb2.Artifact],
) -> RunListing:
  """One run as `lineage runs` lists it; `decided`: _deciding_outputs."""

  def output(node: str) -> Optional[metadata_store_pb2.Artifact]:
    execution = record.execution(node)
    return decided.get(execution.id) if execution is not None else None

  executions = record.executions
  components = record.components()
  by_id = {c.id: c for c in components}
  start = min(e.create_time_since_epoch for e in executions)
  end = max(e.last_update_time_since_epoch for e in executions)
  # None: no Evaluator in the run, or one that never finished (killed,
  # interrupted): nothing was judged.
  blessed = None
  evaluator, blessing = by_id.get('Evaluator'), output('Evaluator')
  if evaluator and evaluator.state in ('complete', 'cached') and blessing:
    blessed = custom_property(blessing, 'blessed') == 1
  pushed_version = None
  pusher, push = by_id.get('Pusher'), output('Pusher')
  # A push the next run recorded (results.PUSH_RECORDED_BY) reached the
  # serving folder, though its execution never completed.
  if (
    pusher
    and push
    and custom_property(push, 'pushed') == 1
    and (
      pusher.state == 'complete'
      or custom_property(push, results.PUSH_RECORDED_BY)
    )
  ):
    pushed_version = custom_property(push, 'pushed_version')
  return RunListing(
    run_id=ctx.name,
    pipeline=record.pipeline_name,
    started=results.iso_seconds(start),
    seconds=round((end - start) / 1000, 1),
    status=results.run_status(ctx, [c.state for c in components]),
    components={c.id: c.state for c in components if not c.is_resolver},
    # Where each Beam component that ran in this run ran its jobs.
    engines={c.id: c.engine for c in components if c.engine},
    blessed=blessed,
    pushed_version=pushed_version,
    # A failed run's '<component> failed: <reason>', as the run said it.
    failure=custom_property(ctx, results.RUN_FAILURE),
  )


def list_runs(
  store: mlmd.MetadataStore, pipeline: Optional[str] = None
) -> List[RunListing]:
  """Every pipeline run, oldest first, with per-component states, the
  blessing, the version pushed by that run (None when it pushed none) and,
  for a failed run, the component and reason (None otherwise).

  The queries do not grow with the runs' executions: every execution's node
  at once, one query per run for its executions, then the blessings' and
  pushes' events and artifacts in one query each.
  """
  records = _run_records(store, pipeline)
  decided = _deciding_outputs(store, [record for _, record in records])
  runs = [_listing(ctx, record, decided) for ctx, record in records]
  runs.sort(key=lambda r: (r.started, r.run_id))
  return runs


def pushed_models(store: mlmd.MetadataStore) -> List[PushedVersion]:
  """Every model pushed from this store, newest first: its pipeline,
  version and folder, the run that pushed it, and that run's overall
  metrics (the evaluation that blessed it)."""
  pushes = [
    a
    for a in store.get_artifacts_by_type('PushedModel')
    if custom_property(a, 'pushed') == 1
  ]
  if not pushes:
    return []
  producer = {
    ev.artifact_id: ev.execution_id
    for ev in store.get_events_by_artifact_ids([a.id for a in pushes])
    if ev.type in _OUTPUTS
  }
  found = []
  for artifact in pushes:
    run, pipeline = None, ''
    execution_id = producer.get(artifact.id)
    for ctx in (
      store.get_contexts_by_execution(execution_id) if execution_id else []
    ):
      kind = store.get_context_types_by_id([ctx.type_id])[0].name
      if kind == results.RUN_CONTEXT_TYPE:
        run = ctx.name
      elif kind == 'pipeline':
        pipeline = ctx.name
    metrics = {}
    record = run_record(store, run) if run else None
    evaluations = record.artifacts('Evaluator', 'evaluation') if record else []
    if evaluations and os.path.isdir(evaluations[0].uri):
      metrics = results.metric_values(evaluations[0].uri)
    found.append(
      PushedVersion(
        artifact_id=artifact.id,
        pipeline=pipeline,
        run=run,
        version=custom_property(artifact, 'pushed_version'),
        destination=custom_property(artifact, 'pushed_destination'),
        metrics=metrics,
      )
    )
  found.sort(key=lambda p: (str(p.version), p.artifact_id), reverse=True)
  return found


@dataclasses.dataclass
class Node:
  """One step of a lineage tree: an artifact or the execution producing it."""

  kind: str  # 'artifact' | 'execution'
  id: int
  type: str
  key: str = ''  # the input key an artifact was read under
  uri: str = ''
  node: str = ''  # pipeline node id of an execution
  pipeline: str = ''  # the pipeline an execution ran in
  state: str = ''
  run: str = ''
  properties: Dict[str, Any] = dataclasses.field(default_factory=dict)
  children: List['Node'] = dataclasses.field(default_factory=list)
  repeated: bool = False  # shown in full elsewhere in the tree

  def to_json(self) -> Dict[str, Any]:
    data = {
      k: v
      for k, v in dataclasses.asdict(self).items()
      if k != 'children' and v not in ('', {}, False)
    }
    data['children'] = [c.to_json() for c in self.children]
    return data


class _Walker:
  """Walks artifacts back to the executions that produced them."""

  def __init__(self, store: mlmd.MetadataStore):
    self.store = store
    self.seen: Set[int] = set()
    self.seen_executions: Set[int] = set()
    self._type_names = {t.id: t.name for t in store.get_artifact_types()}
    self._exec_types = {t.id: t.name for t in store.get_execution_types()}

  def artifact(
    self, artifact: metadata_store_pb2.Artifact, key: str = ''
  ) -> Node:
    type_name = self._type_names.get(artifact.type_id, '?')
    node = Node(
      kind='artifact', id=artifact.id, type=type_name, key=key, uri=artifact.uri
    )
    for prop in _SHOWN.get(type_name, ()):
      value = custom_property(artifact, prop)
      if value is not None:
        node.properties[prop] = value
    if type_name == 'HyperParameters':
      node.properties.update(_hyperparameters(artifact.uri))
    if artifact.id in self.seen:
      node.repeated = True
      return node
    self.seen.add(artifact.id)
    producer = self._producer(artifact.id)
    if producer is not None:
      node.children.append(self.execution(producer))
    return node

  def _producer(
    self, artifact_id: int
  ) -> Optional[metadata_store_pb2.Execution]:
    ids = sorted(
      ev.execution_id
      for ev in self.store.get_events_by_artifact_ids([artifact_id])
      if ev.type in _OUTPUTS
    )
    return self.store.get_executions_by_id(ids[:1])[0] if ids else None

  def execution(self, execution: metadata_store_pb2.Execution) -> Node:
    node_id, run, pipeline = '', '', ''
    for ctx in self.store.get_contexts_by_execution(execution.id):
      kind = self.store.get_context_types_by_id([ctx.type_id])[0].name
      if kind == 'node':
        node_id = ctx.name.split('.', 1)[-1]
      elif kind == 'pipeline_run':
        run = ctx.name
      elif kind == 'pipeline':
        pipeline = ctx.name
    node = Node(
      kind='execution',
      id=execution.id,
      type=self._exec_types.get(execution.type_id, '?'),
      node=node_id,
      run=run,
      pipeline=pipeline,
      state=results.STATES.get(execution.last_known_state, '?'),
    )
    if execution.id in self.seen_executions:
      node.repeated = True
      return node
    self.seen_executions.add(execution.id)
    for prop in _EXECUTION_SHOWN:
      value = custom_property(execution, prop)
      if value is not None:
        node.properties[prop] = value
    if 'input_base' in node.properties:
      node.properties['input_files'] = _input_files(
        node.properties['input_base'], execution
      )
    events = [
      ev
      for ev in self.store.get_events_by_execution_ids([execution.id])
      if ev.type in _INPUTS
    ]
    keyed = sorted(
      (ev.path.steps[0].key if ev.path.steps else '', ev.artifact_id)
      for ev in events
    )
    artifacts = {
      a.id: a
      for a in self.store.get_artifacts_by_id(
        [artifact_id for _, artifact_id in keyed]
      )
    }
    for key, artifact_id in keyed:
      node.children.append(self.artifact(artifacts[artifact_id], key))
    return node


def _hyperparameters(uri: str) -> Dict[str, Any]:
  path = os.path.join(uri, 'best_hyperparameters.txt')
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    config = json.load(f)
  return {
    'values': {
      k: v
      for k, v in config.get('values', {}).items()
      if not k.startswith('tuner/')
    }
  }


def _input_files(
  input_base: str, execution: metadata_store_pb2.Execution
) -> List[str]:
  """The files ExampleGen's input config matches under input_base, as they
  are now (the fingerprint on the Examples artifact is what was read)."""
  patterns = ['*']
  config = custom_property(execution, 'input_config')
  if config:
    patterns = [
      s.get('pattern', '*') for s in json.loads(config).get('splits', [])
    ] or patterns
  files = []
  for pattern in patterns:
    files += sorted(glob.glob(os.path.join(input_base, pattern)))
  return files


def resolve_target(
  store: mlmd.MetadataStore, target: str
) -> metadata_store_pb2.Artifact:
  """A pushed model directory, `artifact:<id>` (or a bare id), or a run id,
  as the artifact to trace from."""
  text = target.strip()
  ident = text.split(':', 1)[1] if text.startswith('artifact:') else text
  # ASCII digits only (str.isdigit takes '²', which int() refuses), and no
  # id past ML Metadata's int64 ids, which its query cannot even be asked.
  if re.fullmatch(r'[0-9]+', ident) and not os.path.exists(text):
    found = (
      store.get_artifacts_by_id([int(ident)]) if int(ident) <= _MAX_ID else []
    )
    if not found:
      raise LineageError(f'{target}: no artifact with id {ident} in the store')
    return found[0]
  record = run_record(store, text)
  if record is not None:
    for node_id, key in (('Pusher', 'pushed_model'), ('Trainer', 'model')):
      artifacts = record.artifacts(node_id, key)
      if artifacts:
        return artifacts[0]
    raise LineageError(f'{target}: the run produced no model to trace')
  wanted = os.path.normpath(os.path.abspath(text))
  for artifact in store.get_artifacts_by_type('PushedModel'):
    destination = custom_property(artifact, 'pushed_destination')
    if destination and os.path.normpath(destination) == wanted:
      return artifact
  if os.path.exists(text):
    raise LineageError(
      f'{target}: no pushed model in this store was pushed to that directory'
    )
  raise LineageError(
    f'{target}: unknown target; give a pushed model '
    'directory, artifact:<id> or a run id (see `lineage '
    'runs`)'
  )


def trace(store: mlmd.MetadataStore, target: str) -> Node:
  """The lineage tree of `target` (see resolve_target)."""
  return _Walker(store).artifact(resolve_target(store, target))


def render(
  node: Node, prefix: str = '', last: bool = True, top: bool = True
) -> List[str]:
  """The tree as text lines, one artifact or execution a line."""
  if node.kind == 'artifact':
    label = (
      f'{node.key + ": " if node.key else ""}{node.type} #{node.id} {node.uri}'
    )
    props = {
      k: v
      for k, v in node.properties.items()
      if k not in ('pushed_destination',)
    }
    if props:
      label += ' ' + json.dumps(props, sort_keys=True, default=str)
    if node.repeated:
      label += ' (lineage shown above)'
  else:
    label = (
      f'{node.node or node.type} (execution #{node.id}, {node.state}, '
      f'pipeline {node.pipeline}, run {node.run})'
    )
    if node.properties:
      label += ' ' + json.dumps(node.properties, sort_keys=True)
    if node.repeated:
      label += ' (inputs shown above)'
  lines = [label if top else f'{prefix}{"└─ " if last else "├─ "}{label}']
  child_prefix = '' if top else prefix + ('   ' if last else '│  ')
  for i, child in enumerate(node.children):
    lines += render(child, child_prefix, i == len(node.children) - 1, False)
  return lines


def _dot_string(text: str) -> str:
  """A DOT string: backslashes and quotes escaped, line breaks as \\n
  (pydot keeps a string already quoted as it is)."""
  escaped = text.replace('\\', '\\\\').replace('"', '\\"')
  return '"' + escaped.replace('\n', '\\n') + '"'


def _dot_id(node: Node) -> str:
  return f'{"a" if node.kind == "artifact" else "e"}{node.id}'


def _dot_node(node: Node):
  """An artifact as a box, an execution as an ellipse."""
  import pydot  # pylint: disable=g-import-not-at-top

  if node.kind == 'artifact':
    label, shape = f'{node.type} #{node.id}\n{_short(node.uri)}', 'box'
  else:
    label = (
      f'{node.node or node.type} #{node.id}\n{node.pipeline}\n{node.state}'
    )
    shape = 'ellipse'
  return pydot.Node(_dot_id(node), label=_dot_string(label), shape=shape)


def to_dot(tree: Node) -> str:
  """The lineage tree as a Graphviz digraph (pydot): artifacts as boxes,
  executions as ellipses, edges in the direction data flowed; each artifact
  and execution once, however often the tree reaches it."""
  import pydot  # pylint: disable=g-import-not-at-top

  graph = pydot.Dot(graph_name='lineage', graph_type='digraph', rankdir='BT')
  graph.set_node_defaults(fontname='"Helvetica"', fontsize=10)
  seen: Set[str] = set()
  edges: Set[Tuple[str, str, str]] = set()

  def visit(node: Node) -> None:
    name = _dot_id(node)
    if name not in seen:
      seen.add(name)
      graph.add_node(_dot_node(node))
    for child in node.children:
      # Children are what a node came from: data flows child -> node.
      edges.add((_dot_id(child), name, child.key))
      visit(child)

  visit(tree)
  for source, target, key in sorted(edges):
    graph.add_edge(
      pydot.Edge(source, target, **({'label': _dot_string(key)} if key else {}))
    )
  return graph.to_string()


def _short(uri: str, keep: int = 3) -> str:
  parts = uri.rstrip('/').split('/')
  return '/'.join(parts[-keep:]) if len(parts) > keep else uri


GRAPH_FORMATS = ('.dot', '.svg', '.png')


def write_graph(tree: Node, output: str) -> str:
  """Writes the tree to `output` (.dot, or .svg/.png through Graphviz's
  `dot` program); the file appears whole or not at all."""
  extension = os.path.splitext(output)[1].lower()
  if extension not in GRAPH_FORMATS:
    raise LineageError(
      f'{output}: the graph file must end in {", ".join(GRAPH_FORMATS)}'
    )
  dot = to_dot(tree)
  program = None
  if extension != '.dot':
    program = shutil.which('dot')
    if program is None:
      raise LineageError(
        f"{output}: writing {extension[1:]} needs Graphviz's `dot` program "
        '(apt-get install graphviz); a .dot file needs nothing'
      )
  with atomic_file(
    output, LineageError, 'the graph', mode='wb', encoding=None
  ) as f:
    if program is None:
      f.write(dot.encode('utf-8'))
    else:
      proc = subprocess.run(
        [program, f'-T{extension[1:]}'],
        input=dot.encode('utf-8'),
        stdout=f,
        stderr=subprocess.PIPE,
        check=False,
      )
      if proc.returncode != 0:
        message = whole(proc.stderr.decode('utf-8', 'replace'))
        raise LineageError(
          f'{output}: Graphviz failed: {message or "no message"}'
        )
  return output


@dataclasses.dataclass(frozen=True)
class _RunFacts:
  """What a run consumed and produced, for diffing two runs."""

  components: Dict[str, str]  # each component (not resolvers) -> its state
  data_fingerprint: Optional[str]
  schema: Optional[str]  # the imported schema's sha256, 16 hex digits
  hyperparameters: Dict[str, Any]
  code_version: Any
  training: Any
  config: Dict[str, Dict[str, Any]]  # _recorded_config
  metrics: Dict[str, float]


def _schema_hash(record: results.RunRecord) -> Optional[str]:
  schemas = record.artifacts('ImportSchemaGen', 'schema')
  path = os.path.join(schemas[0].uri, 'schema.pbtxt') if schemas else ''
  if not os.path.isfile(path):
    return None
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()[:16]


def _run_facts(store: mlmd.MetadataStore, run_id: str) -> _RunFacts:
  record = run_record(store, run_id)
  if record is None:
    raise LineageError(
      f'{run_id}: no such run in the store (see `lineage runs`)'
    )
  examples = record.examples()
  trainer = record.execution('Trainer')
  config = (
    json.loads(custom_property(trainer, 'custom_config') or '{}')
    if trainer
    else {}
  )
  evaluations = record.artifacts('Evaluator', 'evaluation')
  return _RunFacts(
    components={
      c.id: c.state for c in record.components() if not c.is_resolver
    },
    data_fingerprint=(
      custom_property(examples[0], 'input_fingerprint') if examples else None
    ),
    schema=_schema_hash(record),
    hyperparameters=_trained_with(record),
    code_version=config.get('code_version'),
    training=config.get('training'),
    config=_recorded_config(record),
    metrics=(results.metric_values(evaluations[0].uri) if evaluations else {}),
  )


# What each component was given, as its execution recorded it: the spec's
# sections in the components' custom_config (pipeline/definition), the
# Evaluator's thresholds, ExampleGen's split. The spec file itself is not in
# the store; these are the whole of it that reaches a component.
_CONFIG_PROPERTIES = ('custom_config', 'output_config')
# Said on their own line of a diff already.
_CONFIG_SHOWN_ELSEWHERE = ('code_version',)


def _json_property(execution, name: str) -> Any:
  text = custom_property(execution, name)
  try:
    value = json.loads(text) if text else None
  except ValueError:
    return text
  # A TFX component spec's own custom_config (CsvExampleGen's) is stored
  # wrapped in a protobuf Any holding the JSON text.
  if (
    isinstance(value, dict)
    and set(value) == {'custom_config'}
    and isinstance(value['custom_config'], dict)
    and 'value' in value['custom_config']
  ):
    return _json_text(value['custom_config']['value'])
  return value


def _json_text(text: str) -> Any:
  try:
    return json.loads(text)
  except ValueError:
    return text


def _flat(value: Any, prefix: str, into: Dict[str, Any]) -> None:
  """Nested dicts as dotted keys; a list or scalar is one value."""
  if isinstance(value, dict) and value:
    for key, inner in value.items():
      _flat(inner, f'{prefix}.{key}' if prefix else str(key), into)
  elif prefix:
    into[prefix] = value


def _thresholds(eval_config: Any) -> Dict[str, Any]:
  """The Evaluator's overall-slice thresholds by TFMA metric class, and
  the metrics it computes (its eval_config, as recorded)."""
  found: Dict[str, Any] = {}
  if not isinstance(eval_config, dict):
    return found
  names = []
  for metrics_spec in eval_config.get('metrics_specs', []):
    for metric in metrics_spec.get('metrics', []):
      name = metric.get('class_name')
      names.append(name)
      for gate in metric.get('per_slice_thresholds', []):
        if any(not spec for spec in gate.get('slicing_specs', [])):
          found[f'thresholds.{name}'] = gate.get('threshold')
  found['metrics'] = sorted(n for n in names if n)
  return found


def _recorded_config(record: results.RunRecord) -> Dict[str, Dict[str, Any]]:
  """{dotted key: {component: value}} of what the run's components were
  given (Transform's `features.exclude`, the Evaluator's
  `thresholds.AUC`)."""
  config: Dict[str, Dict[str, Any]] = {}
  for component in record.components():
    if component.is_resolver:
      continue
    execution = record.execution(component.id)
    if execution is None:
      continue
    flat: Dict[str, Any] = {}
    for name in _CONFIG_PROPERTIES:
      value = _json_property(execution, name)
      if value is not None:
        _flat(value, name if name != 'custom_config' else '', flat)
    _flat(_thresholds(_json_property(execution, 'eval_config')), '', flat)
    for key, value in flat.items():
      if key.split('.')[-1] not in _CONFIG_SHOWN_ELSEWHERE:
        config.setdefault(key, {})[component.id] = value
  return config


def _config_changes(
  a: Dict[str, Dict[str, Any]], b: Dict[str, Dict[str, Any]], both: Set[str]
) -> Dict[str, ConfigChange]:
  """Each key a component of both runs (`both`) recorded with another
  value, by key: a ConfigChange, None where a run did not record it.
  A component in one run only is said once, not key by key."""
  changes = {}
  for key in sorted(set(a) | set(b)):
    in_a, in_b = a.get(key, {}), b.get(key, {})
    components = [
      c
      for c in dict.fromkeys([*in_a, *in_b])
      if c in both and in_a.get(c) != in_b.get(c)
    ]
    if components:
      first = components[0]
      changes[key] = ConfigChange(
        a=in_a.get(first), b=in_b.get(first), components=components
      )
  return changes


def _trained_with(record: results.RunRecord) -> Dict[str, Any]:
  """The hyperparameters the Trainer used: what run_fn recorded beside its
  TensorBoard logs (tuned or defaults), else the Tuner's best."""
  for run_dir in record.artifacts('Trainer', 'model_run'):
    path = os.path.join(run_dir.uri, 'hyperparameters.json')
    if os.path.isfile(path):
      with open(path) as f:
        return json.load(f)
  tuned = record.artifacts('Trainer', 'hyperparameters', kinds=_INPUTS)
  return _hyperparameters(tuned[0].uri).get('values', {}) if tuned else {}


def _hyperparameter_changes(
  a: Mapping[str, Any], b: Mapping[str, Any]
) -> Dict[str, ValueChange]:
  """Each hyperparameter whose value differs between two runs (`a`, `b`:
  their hyperparameters; one a run lacks is None there), by name."""
  return {
    k: ValueChange(a=a.get(k), b=b.get(k))
    for k in sorted(set(a) | set(b))
    if a.get(k) != b.get(k)
  }


def _metric_changes(
  a: Mapping[str, Any], b: Mapping[str, Any]
) -> Dict[str, MetricChange]:
  """Each metric whose value differs between two runs (`a`, `b`: their
  metrics), by name, with b's change from a (`delta`; None where a run
  lacks the metric)."""
  metrics = {}
  for k in sorted(set(a) | set(b)):
    va, vb = a.get(k), b.get(k)
    if va != vb:
      metrics[k] = MetricChange(
        a=va,
        b=vb,
        delta=round(vb - va, 6) if None not in (va, vb) else None,
      )
  return metrics


# The parts of two runs a diff compares, as `unchanged` names them.
_COMPARED = (
  'data_fingerprint',
  'schema',
  'code_version',
  'training',
  'config',
  'hyperparameters',
  'metrics',
)


def _changes(a: _RunFacts, b: _RunFacts) -> Changes:
  """What differs between two runs' facts; only the parts that do."""
  changed: Dict[str, Any] = {}
  for key in ('data_fingerprint', 'schema', 'code_version', 'training'):
    if getattr(a, key) != getattr(b, key):
      changed[key] = ValueChange(a=getattr(a, key), b=getattr(b, key))
  changed['hyperparameters'] = _hyperparameter_changes(
    a.hyperparameters, b.hyperparameters
  )
  both = set(a.components) & set(b.components)
  changed['config'] = _config_changes(a.config, b.config, both)
  only = ComponentsOnlyIn(
    a=[c for c in a.components if c not in both],
    b=[c for c in b.components if c not in both],
  )
  changed['components'] = only if only.a or only.b else None
  changed['metrics'] = _metric_changes(a.metrics, b.metrics)
  return Changes(**{k: v for k, v in changed.items() if v})


def diff(store: mlmd.MetadataStore, run_a: str, run_b: str) -> RunDiff:
  """What differs between two runs: data fingerprint, schema, hyperparameters,
  module code version, training settings, every key of the configuration
  each component recorded (`config`: the spec as the components saw it),
  metrics; and which of run_b's components were served from the cache."""
  a, b = _run_facts(store, run_a), _run_facts(store, run_b)
  changes = _changes(a, b)
  changed = {key for key, _ in changes.changed()}
  return RunDiff(
    run_a=run_a,
    run_b=run_b,
    changes=changes,
    unchanged=[k for k in _COMPARED if k not in changed],
    components={
      k: ComponentStates(a=a.components.get(k), b=v)
      for k, v in b.components.items()
    },
    reused_from_cache=[k for k, v in b.components.items() if v == 'cached'],
  )


def _shown(value: Any) -> str:
  return 'unset' if value is None else json.dumps(value, sort_keys=True)


def _config_line(key: str, change: ConfigChange) -> str:
  """`  key (components): old -> new`; of two lists, what left and came."""
  where = ', '.join(change.components)
  old, new = change.a, change.b
  if isinstance(old, list) and isinstance(new, list):
    gone = [v for v in old if v not in new]
    came = [v for v in new if v not in old]
    if gone or came:
      parts = ([f'removed {_shown(gone)[1:-1]}'] if gone else []) + (
        [f'added {_shown(came)[1:-1]}'] if came else []
      )
      return f'  {key} ({where}): {"; ".join(parts)}'
  return f'  {key} ({where}): {_shown(old)} -> {_shown(new)}'


def render_diff(result: RunDiff) -> List[str]:
  """The diff as `lineage diff` prints it, one change a line."""
  lines = [f'{result.run_a} -> {result.run_b}']
  changes = result.changes
  for key, change in changes.changed():
    if key == 'training' and changes.config is not None:
      continue  # each changed key of it is under config
    if key == 'config':
      lines.append('config (what each component was given):')
      lines.extend(_config_line(k, v) for k, v in change.items())
    elif key == 'components':
      lines.extend(
        f'components only in the {which} run: {", ".join(names)}'
        for which, names in (('first', change.a), ('second', change.b))
        if names
      )
    elif key in ('hyperparameters', 'metrics'):
      lines.append(f'{key}:')
      for name, values in change.items():
        delta = getattr(values, 'delta', None)
        lines.append(
          f'  {name}: {values.a} -> {values.b}'
          + (f' ({delta:+g})' if delta is not None else '')
        )
    else:
      lines.append(f'{key}: {change.a} -> {change.b}')
  if result.unchanged:
    lines.append('unchanged: ' + ', '.join(result.unchanged))
  lines.append(
    'reused from the cache in the second run: '
    + (', '.join(result.reused_from_cache) or 'nothing')
  )
  return lines
