"""A lineage tree (pipeline/metadata/lineage.Node) drawn as SVG, without
Graphviz: one column per step back from the traced artifact, the input
files on the left and the traced model on the right, each artifact or
execution drawn once (a repeat in the tree becomes a second arrow)."""

import html
from typing import Dict, List, Tuple

from pipeline.metadata import lineage

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 168, 38, 44, 12, 8
_FILL = {'artifact': '#eef5fc', 'execution': '#fdf3e7'}


def _label(node: lineage.Node) -> Tuple[str, str]:
  if node.kind == 'execution':
    return node.node or node.type, f'{node.state} · execution {node.id}'
  detail = f'{node.type} {node.id}'
  if node.properties.get('pushed_version'):
    detail += f' · v{node.properties["pushed_version"]}'
  elif 'blessed' in node.properties:
    detail += ' · blessed' if node.properties['blessed'] == 1 else (
        ' · not blessed')
  return node.key or node.type, detail


def to_svg(tree: lineage.Node) -> str:
  """The tree as one standalone <svg> element."""
  depth: Dict[Tuple[str, int], int] = {}
  nodes: Dict[Tuple[str, int], lineage.Node] = {}
  edges: List[Tuple[Tuple[str, int], Tuple[str, int]]] = []

  def visit(node: lineage.Node, level: int) -> Tuple[str, int]:
    key = (node.kind, node.id)
    if key not in nodes or not nodes[key].children and node.children:
      nodes[key] = node
    depth[key] = max(depth.get(key, 0), level)
    for child in node.children:
      edges.append((visit(child, level + 1), key))
    return key

  visit(tree, 0)
  # Longest path from the traced node: each node left of all its consumers,
  # also where the tree showed it once, under another consumer.
  for _ in range(len(nodes)):
    moved = False
    for source, target in edges:
      if depth[source] < depth[target] + 1:
        depth[source] = depth[target] + 1
        moved = True
    if not moved:
      break
  deepest = max(depth.values())
  columns: Dict[int, List[Tuple[str, int]]] = {}
  for key in nodes:
    columns.setdefault(deepest - depth[key], []).append(key)
  where = {}
  for column, keys in columns.items():
    for row, key in enumerate(keys):
      where[key] = (PAD + column * (BOX_W + GAP_X),
                    PAD + row * (BOX_H + GAP_Y))
  width = PAD * 2 + (deepest + 1) * (BOX_W + GAP_X) - GAP_X
  height = PAD * 2 + max(len(k) for k in columns.values()) * (
      BOX_H + GAP_Y) - GAP_Y
  parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" '
           'class="lineage" font-family="sans-serif" font-size="11">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
           'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
           '<path d="M 0 0 L 10 5 L 0 10 z" fill="#888"/></marker></defs>']
  for source, target in sorted(set(edges)):
    x1, y1 = where[source]
    x2, y2 = where[target]
    parts.append(f'<line x1="{x1 + BOX_W}" y1="{y1 + BOX_H / 2}" '
                 f'x2="{x2}" y2="{y2 + BOX_H / 2}" stroke="#888" '
                 'marker-end="url(#arrow)"/>')
  for key, node in nodes.items():
    x, y = where[key]
    title, detail = _label(node)
    tip = html.escape(node.uri or node.run or '', quote=True)
    parts.append(
        f'<g class="{node.kind}" data-id="{node.id}"><title>{tip}</title>'
        f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="5" '
        f'fill="{_FILL[node.kind]}" stroke="#999"/>'
        f'<text x="{x + 6}" y="{y + 15}" font-weight="bold">'
        f'{html.escape(title[:26])}</text>'
        f'<text x="{x + 6}" y="{y + 30}" fill="#555">'
        f'{html.escape(detail[:30])}</text></g>')
  parts.append('</svg>')
  return ''.join(parts)
