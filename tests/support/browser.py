"""A real headless Chromium, driven over the DevTools protocol, for the
report and dashboard tests: load a page, collect its console errors and
every request it made, read values from the DOM, and take screenshots.

Debian's `chromium` (installed by .ci/run); tests skip when it is absent.
The DevTools socket is spoken with Tornado's websocket client (in the lock
already for `serve`).
"""

import asyncio
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from typing import Any, Dict, List, Optional

CANDIDATES = ('chromium', 'chromium-browser', 'google-chrome')


def binary() -> Optional[str]:
  for name in CANDIDATES:
    path = shutil.which(name)
    if path:
      return path
  return None


class Browser:
  """One headless Chromium with one page. Use as a context manager."""

  def __init__(self, width: int = 1200, height: int = 900):
    self._width, self._height = width, height
    self._profile = tempfile.mkdtemp(prefix='chromium-')
    self._loop = asyncio.new_event_loop()
    self._id = 0
    self.console_errors: List[str] = []
    self.requests: List[str] = []

  def __enter__(self) -> 'Browser':
    self._process = subprocess.Popen(  # pylint: disable=consider-using-with
      [
        binary(),
        '--headless=new',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--no-default-browser-check',
        '--disable-extensions',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--hide-scrollbars',
        '--remote-debugging-port=0',
        '--remote-debugging-address=127.0.0.1',
        f'--window-size={self._width},{self._height}',
        f'--user-data-dir={self._profile}',
        'about:blank',
      ],
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
    )
    port_file = os.path.join(self._profile, 'DevToolsActivePort')
    deadline = time.monotonic() + 30
    while not os.path.exists(port_file) or not open(port_file).read().strip():
      if time.monotonic() > deadline or self._process.poll() is not None:
        raise RuntimeError('chromium did not open its DevTools port')
      time.sleep(0.1)
    port = int(open(port_file).read().split()[0])
    with urllib.request.urlopen(f'http://127.0.0.1:{port}/json') as r:
      page = next(t for t in json.load(r) if t['type'] == 'page')
    self._socket = self._run(self._connect(page['webSocketDebuggerUrl']))
    for domain in ('Page', 'Runtime', 'Log', 'Network'):
      self.call(f'{domain}.enable')
    return self

  def __exit__(self, *exc) -> None:
    self._socket.close()
    self._process.terminate()
    try:
      self._process.wait(timeout=10)
    except subprocess.TimeoutExpired:
      self._process.kill()
      self._process.wait()
    self._loop.close()
    shutil.rmtree(self._profile, ignore_errors=True)

  def _run(self, coroutine):
    return self._loop.run_until_complete(coroutine)

  async def _connect(self, url: str):
    from tornado import websocket  # pylint: disable=g-import-not-at-top

    return await websocket.websocket_connect(url, max_message_size=1 << 28)

  def _note(self, event: Dict[str, Any]) -> None:
    method, params = event.get('method'), event.get('params', {})
    if method == 'Runtime.exceptionThrown':
      self.console_errors.append(json.dumps(params['exceptionDetails'])[:300])
    elif method == 'Runtime.consoleAPICalled' and params['type'] == 'error':
      self.console_errors.append(json.dumps(params['args'])[:300])
    elif method == 'Log.entryAdded' and params['entry']['level'] == 'error':
      self.console_errors.append(params['entry']['text'])
    elif method == 'Network.requestWillBeSent':
      self.requests.append(params['request']['url'])

  async def _call(
    self, method: str, params: Dict[str, Any], until: Optional[str]
  ):
    self._id += 1
    ident = self._id
    await self._socket.write_message(
      json.dumps({'id': ident, 'method': method, 'params': params})
    )
    result, seen = None, until is None
    while result is None or not seen:
      message = await asyncio.wait_for(self._socket.read_message(), 60)
      if message is None:
        raise RuntimeError('chromium closed the DevTools socket')
      data = json.loads(message)
      if data.get('id') == ident:
        if 'error' in data:
          raise RuntimeError(f'{method}: {data["error"]}')
        result = data['result']
      else:
        self._note(data)
        seen = seen or data.get('method') == until
    return result

  def call(self, method: str, until: Optional[str] = None, **params):
    """Sends a DevTools command; with `until`, also waits for that event."""
    return self._run(self._call(method, params, until))

  def open(self, url: str) -> None:
    """Loads `url` and waits for its load event."""
    self.call('Page.navigate', until='Page.loadEventFired', url=url)

  def evaluate(self, expression: str) -> Any:
    result = self.call(
      'Runtime.evaluate', expression=expression, returnByValue=True
    )
    if 'exceptionDetails' in result:
      raise RuntimeError(f'{expression}: {result["exceptionDetails"]}')
    return result['result'].get('value')

  def screenshot(
    self, path: str, selector: Optional[str] = None, whole: bool = True
  ) -> None:
    """A PNG of the element `selector` matches, else of the whole page (of
    the window alone when not `whole`)."""
    params: Dict[str, Any] = {'format': 'png', 'captureBeyondViewport': whole}
    if selector:
      box = self.evaluate(
        f'(() => {{ const r = document.querySelector({json.dumps(selector)})'
        '.getBoundingClientRect(); return [r.x + window.scrollX, '
        'r.y + window.scrollY, r.width, r.height]; })()'
      )
      params['clip'] = {
        'x': box[0],
        'y': box[1],
        'width': max(box[2], 1),
        'height': max(box[3], 1),
        'scale': 1,
      }
    data = self.call('Page.captureScreenshot', **params)['data']
    with open(path, 'wb') as f:
      f.write(base64.b64decode(data))
