"""`python -m pipeline serve`: TF Serving's REST API over pushed models.

For development and tests, where TensorFlow Serving's binary cannot run. It
keeps TF Serving's contract, so a client written against it works unchanged
against a real TF Serving:

- the model base holds `<model name>/<version>/` SavedModels (what the
  Pusher writes); each model serves its highest complete version (TF
  Serving's default "latest" version policy). The base is polled every
  `poll_seconds` (TF Serving's default: 1 s) and a newly pushed version
  replaces the old one without a restart; until it has loaded, the old one
  keeps answering. A version that fails to load is reported, and the old one
  stays.
- `GET /v1/models/NAME[/versions/N]`: version status.
  `GET /v1/models/NAME[/versions/N]/metadata`: the signature defs.
  `POST /v1/models/NAME[/versions/N]:predict`: `{"signature_name"?,
  "instances": [...]}` (row format, answered as `{"predictions": [...]}`) or
  `{"inputs": ...}` (columnar, answered as `{"outputs": ...}`). Binary
  values are `{"b64": "..."}`.
- errors answer `{"error": "..."}` with a 4xx status: unknown model or
  version (404), malformed or oversize body, missing, unknown or mistyped
  inputs (400, 413), a method the URL does not answer (405), a Host that
  is not this machine's (403). The server keeps serving.

Built on Tornado (an HTTP server kept up by the Jupyter project); bound to
127.0.0.1 unless told otherwise, its connections bounded and its Host header
checked as the dashboard's are (pipeline/web.py). Predictions run in a
thread pool, so status and metadata answer while a batch is scored.
"""

import asyncio
import base64
import binascii
import concurrent.futures
import dataclasses
import json
import logging
import os
import re
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from tornado.routing import PathMatches

from pipeline.errors import PipelineError, one_line, whole
from pipeline.web import GuardedHandler, application, listen

DEFAULT_PORT = 8501  # TF Serving's REST port
DEFAULT_MAX_BODY = 16 * 1024 * 1024
_TORNADO_MAX_BODY = 1 << 30
_LOG = logging.getLogger('pipeline.serving')
_MODEL_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')
# str.isdigit() also takes '٣' or '²', which int() reads or rejects.
_ASCII_DIGITS = re.compile(r'^[0-9]{1,18}$')


class ServeSetupError(PipelineError):
  """The server cannot start (no model base, port taken). One line."""


class ServingError(Exception):
  """A request error: answered as {"error": message} with `status`."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status
    self.message = message


@dataclasses.dataclass
class LoadedVersion:
  name: str
  version: int
  path: str
  signatures: Dict[str, Any]  # signature name -> concrete function
  signature_defs: Dict[str, Any]  # as JSON, TF Serving's metadata shape
  model: Any = None  # the loaded object, kept alive with its functions


def complete_versions(model_dir: str) -> List[int]:
  """Complete version folders of one model, ascending (the Pusher's rule)."""
  from components import pusher  # pylint: disable=g-import-not-at-top

  return pusher.versions(model_dir) if os.path.isdir(model_dir) else []


def _signature_defs(path: str) -> Dict[str, Any]:
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top

  saved = saved_model_pb2.SavedModel()
  with open(os.path.join(path, 'saved_model.pb'), 'rb') as f:
    saved.ParseFromString(f.read())
  defs = saved.meta_graphs[0].signature_def
  return {
    name: json_format.MessageToDict(
      defs[name], preserving_proto_field_name=True
    )
    for name in sorted(defs)
  }


def load_version(name: str, version: int, path: str) -> LoadedVersion:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from components import model_ops  # pylint: disable=g-import-not-at-top

  # A gbt model's graph runs TF-DF's ops, a BERT encoder's TensorFlow
  # Text's: each registered only once its library is imported (TF-DF
  # quietly: no engine log per load); other models load without.
  model_ops.ensure_ops(path)
  model = tf.saved_model.load(path)
  return LoadedVersion(
    name, version, path, dict(model.signatures), _signature_defs(path), model
  )


def folder_contents(path: str) -> Tuple:
  """(relative path, size, mtime) of every file under `path`: changes when
  a copy into it goes on."""
  found = []
  for root, _, files in os.walk(path):
    for file_name in files:
      full = os.path.join(root, file_name)
      try:
        stat = os.stat(full)
      except OSError:  # gone meanwhile: the folder is changing
        continue
      found.append(
        (os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns)
      )
  return tuple(sorted(found))


class Repository:
  """The models under a base folder and the version each serves."""

  def __init__(
    self,
    base: str,
    loader: Callable[[str, int, str], LoadedVersion] = load_version,
  ):
    self.base = os.path.abspath(base)
    self._loader = loader
    self._lock = threading.Lock()
    self._models: Dict[str, LoadedVersion] = {}
    # (model, version) -> (the folder's contents when it failed, why).
    self._failed: Dict[Tuple[str, int], Tuple[Tuple, str]] = {}

  def _model_dirs(self) -> Dict[str, str]:
    """name -> folder. A base that itself holds versions is one model."""
    if complete_versions(self.base):
      return {os.path.basename(self.base.rstrip('/')): self.base}
    if not os.path.isdir(self.base):
      return {}
    return {
      name: os.path.join(self.base, name)
      for name in sorted(os.listdir(self.base))
      if _MODEL_NAME.match(name)
      and os.path.isdir(os.path.join(self.base, name))
    }

  def poll(self) -> List[str]:
    """Loads each model's newest complete version if it is not served yet.
    Returns one line per change, for the log.

    A version that failed to load is tried again once its folder changes
    (as TF Serving retries): a copy made in steps (saved_model.pb, then the
    variables, as `cp -r` or rsync write them) loads when it is whole. Until
    then the previous version keeps serving."""
    changes = []
    for name, folder in self._model_dirs().items():
      versions = complete_versions(folder)
      if not versions:
        continue
      newest = versions[-1]
      current = self._models.get(name)
      if current is not None and current.version == newest:
        continue
      path = os.path.join(folder, str(newest))
      contents = folder_contents(path)
      failed = self._failed.get((name, newest))
      if failed is not None and failed[0] == contents:
        continue
      try:
        loaded = self._loader(name, newest, path)
      except Exception as e:  # pylint: disable=broad-except
        # Reported and remembered; the previous version keeps serving.
        self._failed[(name, newest)] = (contents, one_line(e))
        changes.append(
          f'{name}: version {newest} failed to load '
          f'({one_line(e)}); still serving '
          f'{current.version if current else "nothing"}; will '
          'try again when its folder changes'
        )
        continue
      self._failed.pop((name, newest), None)
      with self._lock:
        self._models[name] = loaded
      changes.append(
        f'{name}: serving version {newest}'
        + (f' (was {current.version})' if current else '')
      )
    return changes

  def names(self) -> List[str]:
    with self._lock:
      return sorted(self._models)

  def get(self, name: str, version: Optional[str] = None) -> LoadedVersion:
    with self._lock:
      loaded = self._models.get(name)
    if version is not None:
      if not _ASCII_DIGITS.match(version):
        raise ServingError(
          400,
          f'Malformed version: {version!r} (an integer version is expected)',
        )
      if loaded is None or loaded.version != int(version):
        raise ServingError(
          404, f'Servable not found for request: Specific({name}, {version})'
        )
    if loaded is None:
      raise ServingError(404, f'Servable not found for request: Latest({name})')
    return loaded


# --- request and response encoding (TF Serving's REST JSON) --------------


def _decode_value(value: Any, dtype, where: str) -> Any:
  """One JSON scalar as the signature input's dtype wants it."""
  if dtype.is_bool:
    if not isinstance(value, bool):
      raise ServingError(
        400, f'{where}: expected a boolean, got {json.dumps(value)[:40]}'
      )
    return value
  if dtype.name == 'string':
    if isinstance(value, dict):
      if set(value) != {'b64'} or not isinstance(value['b64'], str):
        raise ServingError(
          400,
          f'{where}: a binary value is {{"b64": "..."}}, '
          f'got keys {sorted(value)}',
        )
      try:
        return base64.b64decode(value['b64'], validate=True)
      except (binascii.Error, ValueError):
        raise ServingError(400, f'{where}: "b64" is not valid base64') from None
    if isinstance(value, str):
      return value.encode('utf-8')
    raise ServingError(
      400,
      f'{where}: expected a string or {{"b64": ...}}, got '
      f'{json.dumps(value)[:40]}',
    )
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ServingError(
      400,
      f'{where}: expected a number ({dtype.name}), got '
      f'{json.dumps(value)[:40]}',
    )
  if dtype.is_integer and not float(value).is_integer():
    raise ServingError(
      400, f'{where}: expected an integer ({dtype.name}), got {value}'
    )
  return value


def _tensor(values: Any, spec, where: str):
  """A JSON (nested) list as a tensor matching the input's TensorSpec."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def convert(v, depth):
    if isinstance(v, list):
      return [convert(x, depth + 1) for x in v]
    return _decode_value(v, spec.dtype, where)

  converted = convert(values, 0)
  try:
    array = np.array(
      converted,
      dtype=object
      if spec.dtype.name == 'string'
      else spec.dtype.as_numpy_dtype,
    )
  except (ValueError, OverflowError) as e:
    raise ServingError(400, f'{where}: {whole(e)}') from None
  if (
    array.dtype == object
    and array.ndim
    and any(isinstance(x, list) for x in array.flat)
  ):
    raise ServingError(
      400, f'{where}: ragged lists; every row needs the same shape'
    )
  if not tf.TensorShape(array.shape).is_compatible_with(spec.shape):
    raise ServingError(
      400,
      f'{where}: shape {list(array.shape)} does not match '
      f"the signature's {spec.shape.as_list()}",
    )
  return tf.constant(array, dtype=spec.dtype)


def _instances(body_instances: Any, specs: Dict[str, Any]) -> Dict[str, list]:
  """Row format -> one column per input."""
  if not isinstance(body_instances, list) or not body_instances:
    raise ServingError(400, "'instances' must be a non-empty list")
  names = sorted(specs)
  columns: Dict[str, list] = {name: [] for name in names}
  for i, instance in enumerate(body_instances):
    if len(names) == 1 and not (
      isinstance(instance, dict) and set(instance) == set(names)
    ):
      columns[names[0]].append(instance)  # the sole input's value
      continue
    if not isinstance(instance, dict):
      raise ServingError(
        400, f'instances[{i}]: expected an object with the inputs {names}'
      )
    missing = [n for n in names if n not in instance]
    unknown = sorted(set(instance) - set(names))
    if missing:
      raise ServingError(
        400,
        f'instances[{i}]: missing input(s) '
        f'{missing[:5]}{"..." if len(missing) > 5 else ""}',
      )
    if unknown:
      raise ServingError(
        400,
        f'instances[{i}]: unknown input(s) {unknown[:5]}; '
        f'the signature takes {names[:5]}...',
      )
    for name in names:
      columns[name].append(instance[name])
  return columns


def _inputs(body_inputs: Any, specs: Dict[str, Any]) -> Dict[str, Any]:
  """Columnar format -> one value per input."""
  names = sorted(specs)
  if not isinstance(body_inputs, dict) or (
    len(names) == 1 and set(body_inputs) != set(names)
  ):
    if len(names) == 1:
      return {names[0]: body_inputs}
    raise ServingError(
      400, f"'inputs' must be an object with the inputs {names[:5]}..."
    )
  missing = [n for n in names if n not in body_inputs]
  unknown = sorted(set(body_inputs) - set(names))
  if missing:
    raise ServingError(400, f'inputs: missing input(s) {missing[:5]}')
  if unknown:
    raise ServingError(400, f'inputs: unknown input(s) {unknown[:5]}')
  return dict(body_inputs)


def _json_value(array: np.ndarray) -> Any:
  """A numpy output as TF Serving writes it: numbers, strings, or
  {"b64": ...} for bytes that are not UTF-8."""

  def convert(value):
    if isinstance(value, list):
      return [convert(v) for v in value]
    if isinstance(value, bytes):
      try:
        return value.decode('utf-8')
      except UnicodeDecodeError:
        return {'b64': base64.b64encode(value).decode()}
    return value

  return convert(array.tolist())


def _check_body(body: Any) -> None:
  """A :predict body names its keys as TF Serving does, and holds one of
  'instances' (row format) or 'inputs' (columnar)."""
  if not isinstance(body, dict):
    raise ServingError(
      400, "the request body must be a JSON object with 'instances' or 'inputs'"
    )
  unknown = sorted(set(body) - {'signature_name', 'instances', 'inputs'})
  if unknown:
    raise ServingError(
      400,
      f'unknown request key(s) {unknown}; allowed: '
      'signature_name, instances, inputs',
    )
  if ('instances' in body) == ('inputs' in body):
    raise ServingError(
      400,
      "Missing 'inputs' or 'instances' key"
      if 'instances' not in body
      else "give 'instances' (row format) or 'inputs' (columnar), not both",
    )


def _signature(loaded: LoadedVersion, body: Dict[str, Any]) -> Any:
  """The concrete function the body's signature_name (by default
  serving_default) names."""
  name = body.get('signature_name') or 'serving_default'
  if not isinstance(name, str) or name not in loaded.signatures:
    raise ServingError(
      400,
      f'Serving signature name: {json.dumps(name)} not '
      f'found in signature def; the model has '
      f'{sorted(loaded.signatures)}',
    )
  return loaded.signatures[name]


def _answer(arrays: Dict[str, np.ndarray], row_format: bool) -> Dict[str, Any]:
  """The outputs as TF Serving answers them: {"predictions": rows} for the
  row format, {"outputs": columns} for the columnar one; a sole output
  without its name."""
  if not row_format:
    if len(arrays) == 1:
      return {'outputs': _json_value(next(iter(arrays.values())))}
    return {'outputs': {k: _json_value(v) for k, v in sorted(arrays.items())}}
  rows = len(next(iter(arrays.values())))
  if len(arrays) == 1:
    return {'predictions': _json_value(next(iter(arrays.values())))}
  columns = {k: _json_value(v) for k, v in sorted(arrays.items())}
  return {
    'predictions': [{k: columns[k][i] for k in columns} for i in range(rows)]
  }


def predict(loaded: LoadedVersion, body: Any) -> Dict[str, Any]:
  """TF Serving's :predict on a parsed JSON body."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  _check_body(body)
  function = _signature(loaded, body)
  specs = function.structured_input_signature[1]
  row_format = 'instances' in body
  values = (
    _instances(body['instances'], specs)
    if row_format
    else _inputs(body['inputs'], specs)
  )
  tensors = {
    key: _tensor(value, specs[key], f'input {key!r}')
    for key, value in values.items()
  }
  sizes = {int(t.shape[0]) for t in tensors.values() if t.shape.rank}
  if len(sizes) > 1:
    raise ServingError(
      400, f'inputs have different batch sizes {sorted(sizes)}'
    )
  try:
    outputs = function(**tensors)
  except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
    raise ServingError(
      400, f'the model rejected the input: {whole(e) or type(e).__name__}'
    ) from None
  arrays = {key: value.numpy() for key, value in outputs.items()}
  return _answer(arrays, row_format)


def status(loaded: LoadedVersion) -> Dict[str, Any]:
  return {
    'model_version_status': [
      {
        'version': str(loaded.version),
        'state': 'AVAILABLE',
        'status': {'error_code': 'OK', 'error_message': ''},
      }
    ]
  }


def metadata(loaded: LoadedVersion) -> Dict[str, Any]:
  return {
    'model_spec': {
      'name': loaded.name,
      'signature_name': '',
      'version': str(loaded.version),
    },
    # The Any's JSON form, as TF Serving writes GetModelMetadataResponse.
    'metadata': {
      'signature_def': {
        '@type': 'type.googleapis.com/tensorflow.serving.SignatureDefMap',
        'signature_def': loaded.signature_defs,
      }
    },
  }


# --- the HTTP server ------------------------------------------------------

# /v1/models/NAME[/versions/N], then /metadata, :VERB or nothing.
_MODEL_URL = r'/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?'


class _AsSent(PathMatches):
  """A URL pattern whose groups reach the handler as sent: TF Serving reads
  a model name or version without percent-decoding it (Tornado's own
  matcher decodes them, and refuses bytes that are not UTF-8 before the
  Host check)."""

  def match(self, request):
    found = self.regex.match(request.path)
    if found is None:
      return None
    return {'path_args': [], 'path_kwargs': found.groupdict()}


class _Handler(GuardedHandler):
  """The base of every route: answers JSON, errors as {"error": ...}. A URL
  no route takes is 404, and so is a method a route has no use for; every
  route answers GET and POST, so any other method is 405 with the same
  `Allow`."""

  def initialize(
    self,
    repository: Repository,
    max_body: int,
    pool: concurrent.futures.Executor,
  ):
    self.repository = repository
    self.max_body = max_body
    self.pool = pool

  def body_limit(self) -> int:
    # An oversize :predict body is read to its end and dropped, then
    # answered 413 (a client that is still sending would miss an answer
    # given at the headers); only Tornado's own limit cuts it off.
    return _TORNADO_MAX_BODY if self.request.method == 'POST' else 0

  def refuse(self, status: int, message: str) -> None:
    # Refusals, Tornado's own included, answer TF Serving's shape.
    self._reply(status, {'error': message})

  def prepare(self):
    self._chunks, self._size, self._too_big = [], 0, False
    length = self.request.headers.get('Content-Length')
    if length and _ASCII_DIGITS.match(length) and int(length) > self.max_body:
      self._too_big = True
    super().prepare()

  def data_received(self, chunk):
    self._size += len(chunk)
    if self._size > self.max_body:
      self._too_big = True
      self._chunks = []
    elif not self._too_big:
      self._chunks.append(chunk)

  def _reply(self, status_code: int, body: Dict[str, Any]):
    self.set_status(status_code)
    self.set_header('Content-Type', 'application/json')
    self.finish(json.dumps(body))

  def malformed(self) -> str:
    return f'Malformed request: {self.request.method} {self.request.path}'

  def answer_get(self, **url) -> Dict[str, Any]:
    raise ServingError(404, self.malformed())

  async def answer_post(self, **url) -> Dict[str, Any]:
    raise ServingError(404, self.malformed())

  async def get(self, **url):
    try:
      self._reply(200, self.answer_get(**url))
    except ServingError as e:
      self._reply(e.status, {'error': e.message})

  async def post(self, **url):
    try:
      if self._too_big:
        raise ServingError(
          413,
          f'request body over {self.max_body} bytes; '
          'send fewer rows per request',
        )
      self._reply(200, await self.answer_post(**url))
    except ServingError as e:
      self._reply(e.status, {'error': e.message})


class _Status(_Handler):
  """GET /v1/models/NAME[/versions/N]."""

  def answer_get(self, name: str, version: Optional[str]):
    return status(self.repository.get(name, version))


class _Metadata(_Handler):
  """GET /v1/models/NAME[/versions/N]/metadata."""

  def answer_get(self, name: str, version: Optional[str]):
    return metadata(self.repository.get(name, version))


class _Verb(_Handler):
  """POST /v1/models/NAME[/versions/N]:predict, and the verbs of TF Serving
  this server does not answer."""

  def answer_get(self, name: str, version: Optional[str], verb: str):
    raise ServingError(405, f'{self.malformed()} (:{verb} takes POST)')

  async def answer_post(self, name: str, version: Optional[str], verb: str):
    if verb != 'predict':
      raise ServingError(
        400 if verb in ('classify', 'regress') else 404,
        f'{self.malformed()} (this server answers :predict; the models '
        'export predict signatures)',
      )
    loaded = self.repository.get(name, version)
    body = _json_body(b''.join(self._chunks))
    loop = asyncio.get_running_loop()
    try:
      return await loop.run_in_executor(self.pool, predict, loaded, body)
    except RecursionError:
      raise ServingError(
        400, "the request nests lists too deeply for the signature's inputs"
      ) from None


def _json_body(data: bytes) -> Any:
  """A :predict request's body, parsed (an empty one is null)."""
  try:
    return json.loads(data or b'null')
  except (ValueError, UnicodeDecodeError) as e:
    raise ServingError(400, f'JSON Parse error: {whole(e)}') from None
  except RecursionError:
    raise ServingError(400, 'JSON Parse error: nested too deeply') from None


def make_app(
  repository: Repository,
  max_body: int = DEFAULT_MAX_BODY,
  workers: int = 4,
  host: str = '127.0.0.1',
  allow_hosts: Tuple[str, ...] = (),
):
  """The Tornado application serving `repository` to requests whose Host
  names `host` (or one of `allow_hosts`; see pipeline/web.py)."""
  given = dict(
    repository=repository,
    max_body=max_body,
    pool=concurrent.futures.ThreadPoolExecutor(max_workers=workers),
  )
  return application(
    [
      (_AsSent(_MODEL_URL + '$'), _Status, given),
      (_AsSent(_MODEL_URL + '/metadata$'), _Metadata, given),
      (_AsSent(_MODEL_URL + r':(?P<verb>[a-z]+)$'), _Verb, given),
      (r'/.*', _Handler, given),
    ],
    host,
    allow_hosts,
  )


def serve(
  base: str,
  host: str = '127.0.0.1',
  port: int = DEFAULT_PORT,
  poll_seconds: float = 1.0,
  max_body: int = DEFAULT_MAX_BODY,
  announce: Callable[[str], None] = print,
  allow_hosts: Tuple[str, ...] = (),
  max_connections: int = 0,
) -> None:
  """Serves until interrupted. `port` 0 picks a free port (announced);
  `max_connections` 0 is half the open-file limit (pipeline/web.py)."""
  import tornado.ioloop  # pylint: disable=g-import-not-at-top

  repository = Repository(base)
  for line in repository.poll():
    announce(line)
  app = make_app(repository, max_body, host=host, allow_hosts=allow_hosts)
  # The handler answers oversize bodies itself (413, TF Serving's JSON);
  # Tornado's own limit, which answers with a bare 400, is set far above.
  bound = listen(
    app, host, port, max_connections, max_body_size=_TORNADO_MAX_BODY
  )
  names = repository.names()
  announce(
    f'serving {len(names)} model(s) from {repository.base} at '
    f'http://{host}:{bound} ({", ".join(names) or "none yet"}); '
    f'polling every {poll_seconds:g}s'
  )

  polling = threading.Lock()

  def poll_in_background():
    if not polling.acquire(blocking=False):
      return  # the previous poll (a load) is still running

    def work():
      try:
        for line in repository.poll():
          announce(line)
      finally:
        polling.release()

    threading.Thread(target=work, daemon=True).start()

  tornado.ioloop.PeriodicCallback(
    poll_in_background, poll_seconds * 1000
  ).start()
  tornado.ioloop.IOLoop.current().start()
