"""`python -m pipeline ui`: a local web dashboard over one ML Metadata store.

Pages: the runs (filter by state, blessing, pipeline; tick two to compare),
a run's report (the same page `report` writes), the diff of two runs side
by side, the lineage of any artifact, and the pushed versions with their
metrics. It serves on loopback by default and opens the store read-only, so
a run can write to the store while the dashboard reads it; every page is
made from the store when it is asked for, off the server's loop: a store a
writer keeps locked makes the page a one-line 503 after `PAGE_SECONDS`, not
a stalled server. Served by Tornado (already the `serve` command's server;
Host check and connection bound in pipeline/web.py), templated with Jinja2,
like the report.
"""

import asyncio
import concurrent.futures
import html
import time
from typing import Callable, Dict, List, Optional, Tuple

from pipeline.errors import PipelineError
from pipeline.metadata import lineage
from pipeline.metadata.records import RunDiff
from pipeline.report import facts, graph, render

NAV = (
  '<a href="/">runs</a><a href="/pushed">pushed versions</a>'
  '<a href="/run/latest">latest run</a>'
)
STATES = (
  'complete',
  'failed',
  'running',
  'killed',
  'interrupted',
  'terminated',
)
# How long a page may wait for the store before it is answered 503.
PAGE_SECONDS = 5.0
BUSY = (
  f'the metadata store did not answer within {PAGE_SECONDS:g} s (a run '
  'may be writing to it); try again in a moment'
)


class DashboardError(PipelineError):
  """The dashboard cannot start. One line."""


class BadRequest(PipelineError):
  """A page asked for in a way it cannot be answered. One line."""


class StoreBusy(PipelineError):
  """The store gave no answer in time (locked by a writer). One line."""


def _two(chosen: List[str]) -> List[str]:
  if len(chosen) != 2:
    raise BadRequest(f'tick exactly two runs to compare ({len(chosen)} ticked)')
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
  state, blessed, pipeline = (
    query.get('state', ''),
    query.get('blessed', ''),
    query.get('pipeline', ''),
  )
  blessing = {'yes': True, 'no': False, 'unknown': None}
  shown = [
    r
    for r in reversed(runs)
    if (not state or r.status == state)
    and (not blessed or r.blessed is blessing.get(blessed, object()))
    and (not pipeline or r.pipeline == pipeline)
  ]
  return _page(
    'runs.html',
    location,
    title='Runs',
    runs=shown,
    total=len(runs),
    states=STATES,
    state=state,
    blessed=blessed,
    pipeline=pipeline,
    pipelines=sorted({r.pipeline for r in runs}),
  )


def run_page(store, run_id: Optional[str]) -> str:
  return render.to_html(facts.gather(store, run_id), nav=NAV)


def diff_page(store, location: str, run_a: str, run_b: str) -> str:
  return diff_view(location, lineage.diff(store, run_a, run_b))


def diff_view(location: str, result: RunDiff) -> str:
  """The page of a `lineage.diff` result."""
  return _page(
    'diff.html',
    location,
    title=f'{result.run_a} → {result.run_b}',
    diff=result,
    fmt=render.fmt,
  )


def lineage_page(store, location: str, artifact_id: int) -> str:
  tree = lineage.trace(store, f'artifact:{artifact_id}')
  return _page(
    'lineage.html',
    location,
    title=f'Lineage of artifact {artifact_id} ({tree.type})',
    artifact_id=artifact_id,
    svg=graph.to_svg(tree),
    nodes=_flatten(tree),
  )


def pushed_page(store, location: str) -> str:
  pushed = lineage.pushed_models(store)
  names = sorted({m for p in pushed for m in p.metrics})
  return _page(
    'pushed.html',
    location,
    title='Pushed versions',
    pushed=pushed,
    metric_names=names,
    fmt=render.fmt,
  )


def _error_page(title: str, message: str) -> str:
  return (
    f'<!doctype html><meta charset="utf-8"><title>{title}</title>'
    f'<nav>{NAV}</nav><p id="error">{html.escape(message)}</p>'
  )


class _StoreWorker:
  """Runs the store's queries on one thread of their own, so that a store
  that does not answer (a writer holds SQLite's lock: ML Metadata retries
  for about 13 s, then gives up) stalls neither the server's loop nor, past
  `PAGE_SECONDS`, the requests behind it: they are answered 503 at once
  until it answers again. One thread, because ML Metadata's store object is
  not known to be safe across threads."""

  def __init__(self):
    self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    self._running_since: Optional[float] = None

  def stuck(self) -> bool:
    since = self._running_since
    return since is not None and time.monotonic() - since > PAGE_SECONDS

  def _timed(self, make: Callable[[], str]) -> str:
    self._running_since = time.monotonic()
    try:
      return make()
    finally:
      self._running_since = None

  async def run(self, make: Callable[[], str]) -> str:
    """make()'s page; StoreBusy when the store gives none in time."""
    if self.stuck():
      raise StoreBusy(BUSY)
    future = self._pool.submit(self._timed, make)
    try:
      return await asyncio.wait_for(asyncio.wrap_future(future), PAGE_SECONDS)
    except asyncio.TimeoutError:
      raise StoreBusy(BUSY) from None


def _page_handler(worker: _StoreWorker):
  """The base of every page's handler: HTML, or a one-line error page with
  its status (400 for a request that cannot be answered as asked, 404 for
  what the store does not hold, 503 while the store does not answer)."""
  from ml_metadata import errors as mlmd_errors  # pylint: disable=g-import-not-at-top

  from pipeline.web import GuardedHandler  # pylint: disable=g-import-not-at-top

  # What ML Metadata raises when the store is locked or away.
  unavailable = (
    mlmd_errors.AbortedError,
    mlmd_errors.UnavailableError,
    mlmd_errors.DeadlineExceededError,
  )

  class Page(GuardedHandler):
    """A page made by the store's worker."""

    def refuse(self, status: int, message: str) -> None:
      self.set_status(status)
      self._send(_error_page('refused', message))

    def _send(self, body: str) -> None:
      self.set_header('Content-Type', 'text/html; charset=utf-8')
      # Everything is inline: the page may not load anything from anywhere.
      self.set_header(
        'Content-Security-Policy',
        "default-src 'none'; style-src 'unsafe-inline'; "
        "img-src data:; form-action 'self'",
      )
      self.finish(body)

    async def answer(self, make: Callable[[], str]) -> None:
      try:
        body = await worker.run(make)
      except StoreBusy as e:
        self.set_status(503)
        self.set_header('Retry-After', str(int(PAGE_SECONDS)))
        body = _error_page('store busy', str(e))
      except unavailable:
        self.set_status(503)
        body = _error_page('store busy', BUSY)
      except PipelineError as e:
        self.set_status(400 if isinstance(e, BadRequest) else 404)
        body = _error_page('not found', str(e))
      self._send(body)

  return Page


def _routes(store, location: str, page) -> List[Tuple[str, type]]:
  """The dashboard's pages over `store`, each a subclass of `page`."""

  class Runs(page):
    async def get(self):
      query = {
        k: self.get_argument(k, '') for k in ('state', 'blessed', 'pipeline')
      }
      await self.answer(lambda: runs_page(store, location, query))

  class Run(page):
    async def get(self, run_id):
      await self.answer(
        lambda: run_page(store, None if run_id == 'latest' else run_id)
      )

  class Diff(page):
    async def get(self):
      chosen = self.get_arguments('run')
      await self.answer(lambda: diff_page(store, location, *_two(chosen)))

  class Lineage(page):
    async def get(self, artifact_id):
      await self.answer(lambda: lineage_page(store, location, int(artifact_id)))

  class Pushed(page):
    async def get(self):
      await self.answer(lambda: pushed_page(store, location))

  return [
    (r'/', Runs),
    (r'/run/(.+)', Run),
    (r'/diff', Diff),
    (r'/lineage/([0-9]+)', Lineage),
    (r'/pushed', Pushed),
  ]


def make_app(
  location: str, host: str = '127.0.0.1', allow_hosts: Tuple[str, ...] = ()
):
  """The Tornado application over the store at `location`, answering
  requests whose Host names `host` (or `allow_hosts`; pipeline/web.py)."""
  from pipeline.web import application  # pylint: disable=g-import-not-at-top

  store = lineage.open_store(location)
  page = _page_handler(_StoreWorker())

  class NotFound(page):
    def get(self):
      self.refuse(404, f'{self.request.path[:120]}: no such page')

  return application(
    _routes(store, location, page),
    host,
    allow_hosts,
    default_handler_class=NotFound,
  )


def serve(
  location: str,
  host: str = '127.0.0.1',
  port: int = 8080,
  announce: Callable[[str], None] = print,
  allow_hosts: Tuple[str, ...] = (),
  max_connections: int = 0,
) -> None:
  """Serves the dashboard until interrupted. `max_connections` 0 is half
  the open-file limit (pipeline/web.py)."""
  import tornado.ioloop  # pylint: disable=g-import-not-at-top

  from pipeline.web import listen  # pylint: disable=g-import-not-at-top

  bound = listen(
    make_app(location, host, allow_hosts), host, port, max_connections
  )
  announce(
    f'dashboard on http://{host}:{bound}/ over {location} '
    '(read-only; Ctrl-C stops)'
  )
  tornado.ioloop.IOLoop.current().start()
