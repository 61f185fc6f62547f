"""docs/spec.md, written from the schema.

The reference lists each section of a spec and each key with its type,
default and description, all read from `PipelineSpec.model_json_schema()`:
a key added to the models is in the reference once it is regenerated, and
tests/unit/definition/test_spec_reference.py fails while the committed page
is stale.

    python -m pipeline.definition.reference   # rewrites the page
"""

import json
import os
import re
import sys
from typing import Any, Dict, List, Optional, Tuple

from pipeline.definition.schema import PipelineSpec

PAGE = os.path.join(
  os.path.dirname(os.path.abspath(__file__)),
  os.pardir,
  os.pardir,
  'docs',
  'spec.md',
)
TOP = 'Top level'
# How a key holding a mapping of sections names its own keys in a path.
_MAPPING_KEYS = {
  'preprocessing.impute.features': 'FEATURE',
  'model.encoders': 'COLUMN',
  'evaluation.thresholds': 'METRIC',
  'evaluation.slice_thresholds[].thresholds': 'METRIC',
  'kubeflow.resources': 'COMPONENT',
}
# JSON schema's constraint keywords, as the reference writes them.
_CONSTRAINTS = (
  ('minimum', '>= {}'),
  ('exclusiveMinimum', '> {}'),
  ('maximum', '<= {}'),
  ('exclusiveMaximum', '< {}'),
  ('minItems', 'at least {} item(s)'),
  ('pattern', '`{}`'),
)
_TYPES = {
  'string': 'string',
  'integer': 'integer',
  'number': 'number',
  'boolean': 'boolean',
  'null': 'null',
}


def anchor(heading: str) -> str:
  """GitHub's id for a heading (as tests/unit/project/test_docs.py computes
  it)."""
  text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
  return text.replace(' ', '-')


def _ref_name(node: Dict[str, Any]) -> Optional[str]:
  ref = node.get('$ref')
  return ref.rsplit('/', 1)[-1] if ref else None


class _Reference:
  """Walks the schema from the top, giving each section (a model) the first
  key path that reaches it, then renders every section's keys."""

  def __init__(self, schema: Dict[str, Any]):
    self.defs: Dict[str, Any] = schema.get('$defs', {})
    self.root = schema
    self.paths: Dict[str, List[str]] = {}  # model -> the paths it is at
    self.order: List[Tuple[str, Dict[str, Any]]] = [(TOP, schema)]
    self._walk(schema, '')

  def _walk(self, model: Dict[str, Any], prefix: str) -> None:
    found: List[Tuple[str, str]] = []
    for key, prop in model.get('properties', {}).items():
      path = f'{prefix}{key}'
      for name, suffix in self._models_in(prop, path):
        found.append((name, suffix))
    for name, path in found:
      seen = name in self.paths
      self.paths.setdefault(name, []).append(path)
      if not seen:
        self.order.append((name, self.defs[name]))
        self._walk(self.defs[name], path + '.')

  def _models_in(
    self, node: Dict[str, Any], path: str = ''
  ) -> List[Tuple[str, str]]:
    """(model name, key path) of every section `node`, at `path`, can
    hold."""
    name = _ref_name(node)
    if name:
      return [(name, path)]
    found = []
    for option in node.get('anyOf', []):
      found.extend(self._models_in(option, path))
    if 'items' in node:
      found.extend(self._models_in(node['items'], path + '[]'))
    if isinstance(node.get('additionalProperties'), dict):
      key = _MAPPING_KEYS.get(path, 'KEY')
      found.extend(
        self._models_in(node['additionalProperties'], f'{path}.{key}')
      )
    return found

  def heading(self, name: str) -> str:
    return TOP if name == TOP else f'`{self.paths[name][0]}`'

  def type_text(self, node: Dict[str, Any]) -> str:
    name = _ref_name(node)
    if name:
      return f'[{name}](#{anchor(self.heading(name))})'
    if 'anyOf' in node:
      options = [self.type_text(o) for o in node['anyOf']]
      return ' or '.join(dict.fromkeys(options))
    if 'const' in node:
      return f'`{json.dumps(node["const"])}`'
    if 'enum' in node:
      return 'one of ' + ', '.join(f'`{json.dumps(v)}`' for v in node['enum'])
    kind = node.get('type')
    if kind == 'array':
      text = 'list of ' + self.type_text(node.get('items', {}))
    elif kind == 'object':
      values = node.get('additionalProperties')
      keys = node.get('propertyNames')
      text = 'mapping'
      if keys:
        text += ' of ' + self.type_text(keys)
      if isinstance(values, dict):
        text += ' to ' + self.type_text(values)
    elif node.get('format') == 'date':
      text = 'date'
    else:
      text = _TYPES.get(kind, 'any')
    limits = [
      form.format(node[word]) for word, form in _CONSTRAINTS if word in node
    ]
    return text + (f' ({", ".join(limits)})' if limits else '')

  def default_text(
    self, model: Dict[str, Any], key: str, prop: Dict[str, Any]
  ) -> str:
    if 'default' not in prop:
      return 'required' if key in model.get('required', []) else ''
    value = prop['default']
    if isinstance(value, dict) and _ref_name(prop):
      return "its keys' defaults"
    return f'`{json.dumps(value)}`'

  def section(self, name: str, model: Dict[str, Any]) -> List[str]:
    lines = [f'## {self.heading(name)}', '']
    if name != TOP:
      lines += [
        f'Type `{name}`'
        + (
          '; also at ' + ', '.join(f'`{p}`' for p in self.paths[name][1:])
          if len(self.paths[name]) > 1
          else ''
        )
        + '.',
        '',
      ]
    lines += [
      '| key | type | default | description |',
      '| --- | --- | --- | --- |',
    ]
    for key, prop in model.get('properties', {}).items():
      cells = [
        f'`{key}`',
        self.type_text(prop),
        self.default_text(model, key, prop),
        prop.get('description', ''),
      ]
      lines.append('| ' + ' | '.join(_cell(c) for c in cells) + ' |')
    return lines + ['']


def _cell(text: str) -> str:
  """Text safe in a Markdown table cell, outside code spans too."""
  return re.sub(r'<(?=[A-Za-z/])', '&lt;', text.replace('|', '\\|'))


def undescribed(schema: Optional[Dict[str, Any]] = None) -> List[str]:
  """Keys of the schema without a description, as 'Model.key'."""
  schema = schema or PipelineSpec.model_json_schema(by_alias=True)
  models = [('PipelineSpec', schema), *schema.get('$defs', {}).items()]
  return [
    f'{name}.{key}'
    for name, model in models
    for key, prop in model.get('properties', {}).items()
    if not prop.get('description')
  ]


def render() -> str:
  """The reference page's text."""
  reference = _Reference(PipelineSpec.model_json_schema(by_alias=True))
  lines = [
    '# The spec, key by key',
    '',
    '[Back to the guide](spec-guide.md)',
    '',
    'Every key of a spec, with its type, default and description, '
    'generated from the schema',
    '(`pipeline/definition/schema.py` and the section models it uses) by',
    '`python -m pipeline.definition.reference`: edit the models, not this '
    'page.',
    '[Writing a spec](spec-guide.md) explains the sections and the rules '
    'across keys; a `[]` in a',
    'path is an item of a list.',
    '',
  ]
  for name, model in reference.order:
    lines += reference.section(name, model)
  return '\n'.join(lines).rstrip('\n') + '\n'


def main(argv: List[str]) -> int:
  del argv
  with open(PAGE, 'w', encoding='utf-8') as f:
    f.write(render())
  print(os.path.normpath(PAGE))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
