"""`python -m pipeline ui`: a local web dashboard over one ML Metadata store.

Pages: the runs (filter by state, blessing, pipeline; tick two to compare),
a run's report (the same page `report` writes), the diff of two runs side
by side, the lineage of any artifact, and the pushed versions with their
metrics. It serves on loopback by default and opens the store read-only, so
a run can write to the store while the dashboard reads it; every page is
made from the store when it is asked for. Served by Tornado (already the
`serve` command's server), templated with Jinja2, like the report.
"""

import html
from typing import Callable, Dict, List, Optional

from pipeline.errors import PipelineError
from pipeline.metadata import lineage
from pipeline.report import facts, graph, render

NAV = ('<a href="/">runs</a><a href="/pushed">pushed versions</a>'
       '<a href="/run/latest">latest run</a>')
STATES = ('complete', 'failed', 'running', 'killed', 'interrupted')


class DashboardError(PipelineError):
  """The dashboard cannot start. One line."""


class BadRequest(PipelineError):
  """A page asked for in a way it cannot be answered. One line."""


def _two(chosen: List[str]) -> List[str]:
  if len(chosen) != 2:
    raise BadRequest(f'tick exactly two runs to compare ({len(chosen)} '
                     'ticked)')
  return chosen


def _page(name: str, store: str, **values) -> str:
  env = render.environment()
  return env.get_template(name).render(nav=NAV, store=store, **values)


def _flatten(node: lineage.Node, seen=None) -> List[lineage.Node]:
  seen = set() if seen is None else seen
  found = []
  if (node.kind, node.id) not in seen:
    seen.add((node.kind, node.id))
    found.append(node)
  for child in node.children:
    found += _flatten(child, seen)
  return found


def runs_page(store, location: str, query: Dict[str, str]) -> str:
  runs = lineage.list_runs(store)
  state, blessed, pipeline = (query.get('state', ''), query.get('blessed', ''),
                              query.get('pipeline', ''))
  blessing = {'yes': True, 'no': False, 'unknown': None}
  shown = [r for r in reversed(runs)
           if (not state or r['status'] == state) and
           (not blessed or r['blessed'] is blessing.get(blessed, object())) and
           (not pipeline or r['pipeline'] == pipeline)]
  return _page('runs.html', location, title='Runs', runs=shown,
               total=len(runs), states=STATES, state=state, blessed=blessed,
               pipeline=pipeline,
               pipelines=sorted({r['pipeline'] for r in runs}))


def run_page(store, run_id: Optional[str]) -> str:
  return render.to_html(facts.gather(store, run_id), nav=NAV)


def diff_page(store, location: str, run_a: str, run_b: str) -> str:
  return _page('diff.html', location, title=f'{run_a} → {run_b}',
               diff=lineage.diff(store, run_a, run_b), fmt=render.fmt)


def lineage_page(store, location: str, artifact_id: int) -> str:
  tree = lineage.trace(store, f'artifact:{artifact_id}')
  return _page('lineage.html', location,
               title=f'Lineage of artifact {artifact_id} ({tree.type})',
               artifact_id=artifact_id, svg=graph.to_svg(tree),
               nodes=_flatten(tree))


def pushed_page(store, location: str) -> str:
  pushed = lineage.pushed_models(store)
  names = sorted({m for p in pushed for m in p['metrics']})
  return _page('pushed.html', location, title='Pushed versions',
               pushed=pushed, metric_names=names, fmt=render.fmt)


def make_app(location: str):
  """The Tornado application over the store at `location`."""
  import tornado.web  # pylint: disable=g-import-not-at-top
  store = lineage.open_store(location)

  class Page(tornado.web.RequestHandler):
    """Each page: HTML, or a one-line error page with its status (400
    for a request that cannot be answered as asked, 404 for what the store
    does not hold)."""

    def answer(self, make: Callable[[], str]) -> None:
      try:
        body = make()
      except PipelineError as e:
        self.set_status(400 if isinstance(e, BadRequest) else 404)
        body = (f'<!doctype html><meta charset="utf-8"><title>not found'
                f'</title><nav>{NAV}</nav><p id="error">'
                f'{html.escape(str(e))}</p>')
      self.set_header('Content-Type', 'text/html; charset=utf-8')
      # Everything is inline: the page may not load anything from anywhere.
      self.set_header('Content-Security-Policy',
                      "default-src 'none'; style-src 'unsafe-inline'; "
                      "img-src data:; form-action 'self'")
      self.write(body)

  class Runs(Page):
    def get(self):
      query = {k: self.get_argument(k, '') for k in
               ('state', 'blessed', 'pipeline')}
      self.answer(lambda: runs_page(store, location, query))

  class Run(Page):
    def get(self, run_id):
      self.answer(lambda: run_page(store, None if run_id == 'latest'
                                   else run_id))

  class Diff(Page):
    def get(self):
      chosen = self.get_arguments('run')
      self.answer(lambda: diff_page(store, location, *_two(chosen)))

  class Lineage(Page):
    def get(self, artifact_id):
      self.answer(lambda: lineage_page(store, location, int(artifact_id)))

  class Pushed(Page):
    def get(self):
      self.answer(lambda: pushed_page(store, location))

  return tornado.web.Application([
      (r'/', Runs), (r'/run/(.+)', Run), (r'/diff', Diff),
      (r'/lineage/([0-9]+)', Lineage), (r'/pushed', Pushed)])


def serve(location: str, host: str = '127.0.0.1', port: int = 8080,
          announce: Callable[[str], None] = print) -> None:
  """Serves the dashboard until interrupted."""
  import tornado.httpserver  # pylint: disable=g-import-not-at-top
  import tornado.ioloop  # pylint: disable=g-import-not-at-top
  import tornado.netutil  # pylint: disable=g-import-not-at-top
  server = tornado.httpserver.HTTPServer(make_app(location))
  sockets = tornado.netutil.bind_sockets(port, address=host)
  server.add_sockets(sockets)
  bound = sockets[0].getsockname()[1]
  announce(f'dashboard on http://{host}:{bound}/ over {location} '
           '(read-only; Ctrl-C stops)')
  tornado.ioloop.IOLoop.current().start()
