"""docs/spec.md is generated from the schema: it is what the
generator writes today, and every key of the schema has a description."""

import os

from pipeline.definition import reference
from tests.conftest import REPO

PAGE = os.path.join(REPO, 'docs', 'spec.md')


def test_the_committed_reference_is_current():
  with open(PAGE, encoding='utf-8') as f:
    committed = f.read()
  assert committed == reference.render(), (
    'docs/spec.md is stale: run python -m '
    'pipeline.definition.reference and commit the page'
  )


def test_every_key_has_a_description():
  assert reference.undescribed() == []


def test_a_key_without_a_description_is_found():
  schema = {
    'properties': {
      'a': {'type': 'string', 'description': 'An a.'},
      'b': {'type': 'string'},
    },
    '$defs': {'Section': {'properties': {'c': {'type': 'integer'}}}},
  }
  assert reference.undescribed(schema) == ['PipelineSpec.b', 'Section.c']


def test_the_page_covers_every_section_and_key():
  text = reference.render()
  for heading in (
    '## Top level',
    '## `data`',
    '## `data.split`',
    '## `model.search_space.finetune`',
    '## `evaluation.slice_thresholds[]`',
    '## `kubeflow.resources.COMPONENT.gpu`',
  ):
    assert heading + '\n' in text
  # A required key, a default, and an alias (schema_file is `schema`).
  assert '| `name` | string (`^[a-z][a-z0-9_-]{0,62}$`) | required |' in text
  assert '| `max_trials` | integer (>= 1) | `10` |' in text
  assert '| `schema` | string or null | `null` |' in text
  # Keys the loader sets are no YAML keys.
  assert '`source`' not in text and '`label_stats`' not in text
