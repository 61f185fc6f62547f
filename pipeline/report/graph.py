"""A lineage tree (pipeline/metadata/lineage.Node) drawn as SVG, without
Graphviz: one row per step back from the traced artifact, the input files
at the top and the traced model at the bottom, each artifact or execution
drawn once (a repeat in the tree becomes a second arrow).

Rows, not columns: a trained model is a dozen steps from its CSV, and a
dozen columns side by side are three times wider than the page, while a
step rarely has more artifacts than fit across it. A step with more
(`MAX_WIDTH`) goes on over several rows.
"""

import html
from typing import Dict, List, Tuple

from pipeline.metadata import lineage

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 168, 38, 16, 26, 8
MAX_WIDTH = 1040  # the report's page (style.css: 1100 px less its padding)
_FILL = {'artifact': '#eef5fc', 'execution': '#fdf3e7'}


def _label(node: lineage.Node) -> Tuple[str, str]:
  if node.kind == 'execution':
    return node.node or node.type, f'{node.state} · execution {node.id}'
  detail = f'{node.type} {node.id}'
  if node.properties.get('pushed_version'):
    detail += f' · v{node.properties["pushed_version"]}'
  elif 'blessed' in node.properties:
    detail += (
      ' · blessed' if node.properties['blessed'] == 1 else (' · not blessed')
    )
  return node.key or node.type, detail


Key = Tuple[str, int]  # (kind, id): an artifact or an execution
Edge = Tuple[Key, Key]  # (input, what consumed it)


def _walk(
  tree: lineage.Node,
) -> Tuple[Dict[Key, lineage.Node], Dict[Key, int], List[Edge]]:
  """Each node of the tree once (the occurrence that shows its children),
  its depth (steps back from the traced node) and the edges."""
  depth: Dict[Key, int] = {}
  nodes: Dict[Key, lineage.Node] = {}
  edges: List[Edge] = []

  def visit(node: lineage.Node, level: int) -> Key:
    key = (node.kind, node.id)
    if key not in nodes or not nodes[key].children and node.children:
      nodes[key] = node
    depth[key] = max(depth.get(key, 0), level)
    for child in node.children:
      edges.append((visit(child, level + 1), key))
    return key

  visit(tree, 0)
  _deepen(depth, edges, len(nodes))
  return nodes, depth, edges


def _deepen(depth: Dict[Key, int], edges: List[Edge], rounds: int) -> None:
  """Longest path from the traced node: each node above all its consumers,
  also where the tree showed it once, under another consumer."""
  for _ in range(rounds):
    moved = False
    for source, target in edges:
      if depth[source] < depth[target] + 1:
        depth[source] = depth[target] + 1
        moved = True
    if not moved:
      break


def _layout(
  nodes: Dict[Key, lineage.Node], depth: Dict[Key, int]
) -> Tuple[Dict[Key, Tuple[int, int]], int, int]:
  """Each box's top-left corner, the inputs at the top; and the picture's
  width and height."""
  deepest = max(depth.values())
  levels: Dict[int, List[Key]] = {}
  for key in nodes:
    levels.setdefault(deepest - depth[key], []).append(key)
  per_row = max(1, (MAX_WIDTH - 2 * PAD + GAP_X) // (BOX_W + GAP_X))
  where = {}
  row = 0
  for level in sorted(levels):
    for i, key in enumerate(levels[level]):
      where[key] = (
        PAD + i % per_row * (BOX_W + GAP_X),
        PAD + (row + i // per_row) * (BOX_H + GAP_Y),
      )
    row += -(-len(levels[level]) // per_row)
  across = min(per_row, max(len(k) for k in levels.values()))
  width = PAD * 2 + across * (BOX_W + GAP_X) - GAP_X
  height = PAD * 2 + row * (BOX_H + GAP_Y) - GAP_Y
  return where, width, height


def _box(node: lineage.Node, x: int, y: int) -> str:
  title, detail = _label(node)
  tip = html.escape(node.uri or node.run or '', quote=True)
  return (
    f'<g class="{node.kind}" data-id="{node.id}"><title>{tip}</title>'
    f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="5" '
    f'fill="{_FILL[node.kind]}" stroke="#999"/>'
    f'<text x="{x + 6}" y="{y + 15}" font-weight="bold">'
    f'{html.escape(title[:26])}</text>'
    f'<text x="{x + 6}" y="{y + 30}" fill="#555">'
    f'{html.escape(detail[:30])}</text></g>'
  )


def to_svg(tree: lineage.Node) -> str:
  """The tree as one standalone <svg> element."""
  nodes, depth, edges = _walk(tree)
  where, width, height = _layout(nodes, depth)
  parts = [
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
    f'height="{height}" viewBox="0 0 {width} {height}" '
    'class="lineage" font-family="sans-serif" font-size="11">',
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
    'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
    '<path d="M 0 0 L 10 5 L 0 10 z" fill="#888"/></marker></defs>',
  ]
  for source, target in sorted(set(edges)):
    x1, y1 = where[source]
    x2, y2 = where[target]
    parts.append(
      f'<line x1="{x1 + BOX_W / 2}" y1="{y1 + BOX_H}" '
      f'x2="{x2 + BOX_W / 2}" y2="{y2}" stroke="#888" '
      'marker-end="url(#arrow)"/>'
    )
  parts += [_box(node, *where[key]) for key, node in nodes.items()]
  parts.append('</svg>')
  return ''.join(parts)
