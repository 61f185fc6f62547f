"""Reading a spec: YAML, `--set` overrides, paths, one-line errors.

`load_spec(path)` parses and validates a spec into a typed, frozen
`PipelineSpec` before anything runs. Every bad key, type or value raises
`SpecError`, whose message is one line naming the file, the key and what is
allowed. Relative paths in a spec are resolved against the spec file's folder;
URIs (gs://, s3://, ...) are kept as they are. `resolve_spec` fills in what
the data decides and checks the spec again.
"""

import copy
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

import pydantic
import yaml
from pydantic import BaseModel

from modules.tasks import LabelStats
from pipeline.definition.checks import check_consistency
from pipeline.definition.module_file import ModuleFile, read_module
from pipeline.definition.schema import PipelineSpec, SpecError, is_uri
from pipeline.errors import whole
from pipeline.paths import special_kind

# model.encoders.<column> keys that hold paths, resolved the same way.
_ENCODER_PATH_KEYS = ('huggingface', 'weights', 'keras_file', 'saved_model')
# PipelineSpec fields the loader and the runner set, never a YAML key.
_INTERNAL = ('source', 'module_functions', 'module_steps', 'label_stats')
# Keys that hold paths, resolved against the spec's folder.
_PATH_KEYS = (
  ('data', 'csv'),
  ('data', 'tfrecord'),
  ('schema',),
  ('module_file',),
  ('push', 'destination'),
  ('runner', 'pipeline_root'),
  ('runner', 'metadata'),
  ('training', 'base_model', 'path'),
)


def _resolve_paths(raw: Dict[str, Any], base_dir: str) -> None:
  encoders = (
    (raw.get('model') or {}).get('encoders')
    if isinstance(raw.get('model'), dict)
    else None
  )
  for chosen in (encoders or {}).values() if isinstance(encoders, dict) else ():
    if not isinstance(chosen, dict):
      continue
    for key in _ENCODER_PATH_KEYS:
      value = chosen.get(key)
      if not isinstance(value, str) or not value or is_uri(value):
        continue
      relative = os.path.join(base_dir, os.path.expanduser(value))
      # A Hugging Face model name (owner/name) is left as it is unless a
      # folder of that name is beside the spec; `weights: imagenet` too.
      if key == 'huggingface' and not (
        value.startswith(('.', '/', '~')) or os.path.exists(relative)
      ):
        continue
      if key == 'weights' and value == 'imagenet':
        continue
      chosen[key] = os.path.normpath(relative)
  for keys in _PATH_KEYS:
    node = raw
    for key in keys[:-1]:
      node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict):
      continue
    value = node.get(keys[-1])
    if isinstance(value, str) and value and not is_uri(value):
      node[keys[-1]] = os.path.normpath(
        os.path.join(base_dir, os.path.expanduser(value))
      )


def _allowed_keys(model: type, loc: Tuple[Any, ...]) -> List[str]:
  """Names the keys allowed at `loc`'s parent, for 'unknown key' errors."""
  current: Any = model
  for part in loc[:-1]:
    if isinstance(part, int) or current is None:
      return []
    field = current.model_fields.get(part) or next(
      (f for f in current.model_fields.values() if f.alias == part), None
    )
    annotation = field.annotation if field else None
    current = (
      annotation
      if isinstance(annotation, type) and issubclass(annotation, BaseModel)
      else None
    )
  if current is None:
    return []
  return sorted(
    f.alias or name
    for name, f in current.model_fields.items()
    if name not in _INTERNAL
  )


def _key_path(loc: Tuple[Any, ...]) -> Tuple[Any, ...]:
  """A pydantic error location without its union-member tags (e.g.
  "literal['mean','median']", "float", "constrained-int"): the keys a user
  wrote."""
  return tuple(
    p
    for p in loc
    if isinstance(p, int)
    or re.match(r'^[A-Za-z_][\w-]*$', p)
    and p not in ('float', 'int', 'str', 'bool', 'dict', 'list')
    and not p.startswith('constrained-')
    and not p[0].isupper()
  )


def _format_error(source: str, errors: List[Dict[str, Any]]) -> str:
  """The first error as one line; the alternatives of a union (a fill that
  is a keyword or a number, say) joined with "or"."""
  err = errors[0]
  loc = _key_path(tuple(err['loc']))
  key = '.'.join(str(p) for p in loc) or '<top level>'
  if key.startswith('schema_file'):
    key = 'schema' + key[len('schema_file') :]
  if err['type'] == 'extra_forbidden':
    allowed = _allowed_keys(PipelineSpec, loc)
    return (
      f'{source}: {key}: unknown key; allowed keys here: {", ".join(allowed)}'
    )
  if err['type'] == 'missing':
    return f'{source}: {key}: required key is missing'
  alternatives = []
  for other in errors:
    if _key_path(tuple(other['loc'])) == loc and other['type'] != 'missing':
      msg = other['msg'].replace('Input should be ', '')
      if msg not in alternatives:
        alternatives.append(msg)
  got = repr(err.get('input'))
  # A long value is shown by its start: the line names the key anyway.
  got = got if len(got) <= 60 else got[:57] + '...'
  return f'{source}: {key}: must be {"; or ".join(alternatives)} (got {got})'


def spec_from_dict(
  raw: Mapping[str, Any], base_dir: str, source: str = '<dict>'
) -> PipelineSpec:
  """Validates a parsed spec. Relative paths resolve against `base_dir`."""
  if not isinstance(raw, Mapping):
    raise SpecError(
      f'{source}: the spec must be a YAML mapping of keys '
      f'(got {type(raw).__name__})'
    )
  data = copy.deepcopy(dict(raw))
  for internal in _INTERNAL:
    if internal in data:
      raise SpecError(
        f'{source}: {internal}: unknown key; allowed keys here: '
        f'{", ".join(_allowed_keys(PipelineSpec, (internal,)))}'
      )
  _resolve_paths(data, base_dir)
  module_file = data.get('module_file')
  module = (
    read_module(module_file, source)
    if isinstance(module_file, str)
    else ModuleFile((), ())
  )
  try:
    spec = PipelineSpec.model_validate(
      {
        **data,
        'source': source,
        'module_functions': module.functions,
        'module_steps': module.steps,
      }
    )
  except pydantic.ValidationError as e:
    raise SpecError(_format_error(source, e.errors())) from None
  check_consistency(spec)
  return spec


def resolve_spec(
  spec: PipelineSpec,
  task: str,
  num_classes: Optional[int] = None,
  columns: Optional[Mapping[str, List[str]]] = None,
  label_stats: Optional[LabelStats] = None,
) -> PipelineSpec:
  """`spec` with what the data decided filled in, checked again.

  Args:
    spec: a loaded spec.
    task: classification or regression (kept when the spec gives it).
    num_classes: classes of a classification label (kept when the spec
      gives it).
    columns: column kind -> the columns of that kind (used when the spec
      lists no feature).
    label_stats: what the scan saw of the label.

  Raises:
    SpecError: a rule that depends on the task or the features fails.
  """
  f = spec.features
  update: Dict[str, Any] = {'task': f.task or task}
  if num_classes is not None and f.num_classes is None:
    update['num_classes'] = num_classes
  if not f.listed:
    columns = {
      kind: list(names) for kind, names in (columns or {}).items() if names
    }
    if not columns:
      raise SpecError(
        f'{spec.source}: features: the data has no column '
        'besides the label and the excluded ones'
      )
    update.update(columns)
  resolved = spec.model_copy(
    update={'features': f.model_copy(update=update), 'label_stats': label_stats}
  )
  check_consistency(resolved)
  return resolved


# A spec is a page of settings; a larger file is not one.
MAX_SPEC_BYTES = 1024 * 1024


class _StrictLoader(yaml.SafeLoader):
  """YAML's safe loader without the two ways a spec can say what it does not
  mean: a key given twice (YAML keeps the last, silently) and aliases
  (`*name`, which can also multiply a small file into gigabytes)."""

  def compose_node(self, parent, index):
    if self.check_event(yaml.AliasEvent):
      event = self.peek_event()
      raise yaml.MarkedYAMLError(
        problem='aliases (*name) are not allowed in a spec; write the '
        'value out',
        problem_mark=event.start_mark,
      )
    return super().compose_node(parent, index)

  def construct_mapping(self, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
      if not isinstance(key_node, yaml.ScalarNode):
        raise yaml.MarkedYAMLError(
          problem='a key must be a plain value, not a list or mapping',
          problem_mark=key_node.start_mark,
        )
      key = self.construct_object(key_node, deep=True)
      if key in seen:
        raise yaml.MarkedYAMLError(
          problem=f'key {key!r} is given twice (first on line {seen[key]}); '
          'keep one',
          problem_mark=key_node.start_mark,
        )
      seen[key] = key_node.start_mark.line + 1
    return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> Any:
  """YAML text by the strict loader; errors are one line naming `where`."""
  try:
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (safe loader)
  except yaml.YAMLError as e:
    mark = getattr(e, 'problem_mark', None)
    at = f' (line {mark.line + 1}, column {mark.column + 1})' if mark else ''
    problem = getattr(e, 'problem', None) or whole(e)
    raise SpecError(f'{where}: not valid YAML{at}: {problem}') from None
  except RecursionError:
    raise SpecError(f'{where}: not valid YAML: nested too deeply') from None


def read_yaml(path: str) -> Dict[str, Any]:
  """Reads a spec file's YAML, with one-line errors for unreadable files."""
  if os.path.isdir(path):
    raise SpecError(f'{path}: a folder, not a spec file')
  if not os.path.isfile(path):
    kind = special_kind(path)
    raise SpecError(
      f'{path}: {kind}, not a spec file'
      if kind
      else f'{path}: spec file not found'
    )
  try:
    size = os.path.getsize(path)
    if size > MAX_SPEC_BYTES:
      raise SpecError(
        f'{path}: {size} bytes; a spec is at most '
        f'{MAX_SPEC_BYTES // 1024} KiB of YAML'
      )
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise SpecError(f'{path}: cannot be read ({e.strerror or e})') from None
  try:
    text = data.decode('utf-8-sig')
  except UnicodeDecodeError as e:
    raise SpecError(
      f'{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at '
      f'offset {e.start}); a spec is a YAML text file'
    ) from None
  if '\x00' in text:
    raise SpecError(f'{path}: a binary file, not a YAML spec')
  raw = parse_yaml(text, path)
  if raw is None:
    raise SpecError(f'{path}: the spec file is empty')
  return raw


def load_spec(
  path: str, overrides: Optional[Mapping[str, Any]] = None
) -> PipelineSpec:
  """Reads and validates the spec at `path`.

  Args:
    path: a YAML spec file.
    overrides: dotted keys to values, applied before validation
      (e.g. {'tuner.max_trials': 2}); used by `--set` and by tests.

  Returns:
    The validated PipelineSpec.

  Raises:
    SpecError: with a one-line message naming the file and the key.
  """
  raw = read_yaml(path)
  for dotted, value in (overrides or {}).items():
    set_dotted(raw, dotted, value)
  return spec_from_dict(
    raw, os.path.dirname(os.path.abspath(path)), source=path
  )


def set_dotted(raw: Dict[str, Any], dotted: str, value: Any) -> None:
  """Sets raw['a']['b'] = value for dotted='a.b', creating mappings."""
  node = raw
  parts = dotted.split('.')
  for part in parts[:-1]:
    child = node.get(part)
    if child is None:
      child = node[part] = {}
    if not isinstance(child, dict):
      raise SpecError(f'--set {dotted}: {part!r} is not a mapping')
    node = child
  node[parts[-1]] = value


def parse_override(text: str) -> Tuple[str, Any]:
  """Parses 'key.path=value' (value as YAML) from the command line."""
  if '=' not in text:
    raise SpecError(
      f'--set {text}: expected KEY=VALUE, e.g. tuner.max_trials=2'
    )
  key, value = text.split('=', 1)
  return key.strip(), parse_yaml(value, f'--set {text}')
