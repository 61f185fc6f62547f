"""The README is a front page under 10 KB, and every relative link in the
docs lands on a file that exists (and, with a #fragment, on one of its
headings), so moving a page or renaming a section cannot leave a dead link."""

import glob
import os
import re
from typing import List, Set

import pytest

from tests.conftest import REPO

FRONT_PAGE_MAX_BYTES = 10 * 1024
PAGES = sorted(
  {
    'README.md',
    'benchmarks/README.md',
    'kubeflow/README.md',
    *glob.glob('docs/*.md', root_dir=REPO),
  }
)
# [text](target) and ![alt](target), outside code; absolute URLs are not
# this test's to check (nothing here may reach the network).
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
FENCE = re.compile(r'^```.*?^```', re.M | re.S)
CODE = re.compile(r'`[^`\n]*`')


def anchor(heading: str) -> str:
  """GitHub's id for a heading: lower case, punctuation dropped, spaces to
  hyphens."""
  text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
  return text.replace(' ', '-')


def headings(path: str) -> Set[str]:
  with open(path, encoding='utf-8') as f:
    text = FENCE.sub('', f.read())
  return {anchor(m.group(1)) for m in re.finditer(r'^#{1,6} (.+)$', text, re.M)}


def links(root: str, page: str) -> List[str]:
  with open(os.path.join(root, page), encoding='utf-8') as f:
    text = CODE.sub('', FENCE.sub('', f.read()))
  return [
    m.group(1)
    for m in LINK.finditer(text)
    if not re.match(r'^[a-z]+:', m.group(1))
  ]


def dead_links(root: str, page: str) -> List[str]:
  dead = []
  for target in links(root, page):
    path, _, fragment = target.partition('#')
    where = (
      os.path.join(root, page)
      if not path
      else os.path.normpath(os.path.join(root, os.path.dirname(page), path))
    )
    if not os.path.exists(where):
      dead.append(f'{page}: {target}: no such file')
    elif fragment and fragment not in headings(where):
      dead.append(f'{page}: {target}: no heading #{fragment}')
  return dead


def test_the_readme_is_a_front_page():
  size = os.path.getsize(os.path.join(REPO, 'README.md'))
  assert size < FRONT_PAGE_MAX_BYTES, size


def test_every_docs_page_is_reached_from_the_readme():
  reached = {
    os.path.normpath(target.partition('#')[0])
    for target in links(REPO, 'README.md')
  }
  for page in PAGES:
    if page.startswith('docs/'):
      assert page in reached, f'README.md does not link {page}'


@pytest.mark.parametrize('page', PAGES)
def test_relative_links_land(page):
  assert not dead_links(REPO, page)


def test_the_link_check_finds_dead_links(tmp_path):
  # The check itself must be able to fail.
  assert anchor('Why Python 3.10, Keras 2, and a lock') == (
    'why-python-310-keras-2-and-a-lock'
  )
  (tmp_path / 'docs').mkdir()
  (tmp_path / 'docs' / 'there.md').write_text('# There\n')
  (tmp_path / 'page.md').write_text(
    '# Title\n\n[a](docs/there.md) [b](#title) [c](docs/there.md#there)\n'
    '[d](missing.md) [e](#nope) [f](docs/there.md#nope) `[g](code.md)`\n'
  )
  assert dead_links(str(tmp_path), 'page.md') == [
    'page.md: missing.md: no such file',
    'page.md: #nope: no heading #nope',
    'page.md: docs/there.md#nope: no heading #nope',
  ]
