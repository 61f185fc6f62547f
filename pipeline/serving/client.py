"""`python -m pipeline predict`: send rows to a TF Serving REST endpoint.

Speaks only TF Serving's documented REST API (GET .../metadata, POST
...:predict), so it works the same against `python -m pipeline serve` and a
real TensorFlow Serving. Rows come from a CSV file (header row; columns the
model does not take, such as the label, are left out) or a JSON file (a list
of objects, or {"instances": [...]}).

Signatures: `serving_raw` takes each raw feature as a plain value (typed by
the signature); `serving_default` takes serialized tf.Examples, which the
client builds (typed by serving_raw's dtypes when the model has it, else
numbers as floats and the rest as bytes) and sends base64-encoded.
"""

import base64
import csv
import io
import json
import os
import re
import threading
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, List, Optional, Tuple

from pipeline.errors import PipelineError, whole

RAW_SIGNATURE = 'serving_raw'
DEFAULT_SIGNATURE = 'serving_default'
_FLOATS = ('DT_FLOAT', 'DT_DOUBLE', 'DT_HALF', 'DT_BFLOAT16')
_INTS = ('DT_INT64', 'DT_INT32', 'DT_INT16', 'DT_INT8', 'DT_UINT8')
# What a missing value looks like in a row: null, or an empty cell.
DEFAULT_NULL_VALUES = ('',)
# Seconds a request (connecting, sending, the whole answer) may take.
DEFAULT_TIMEOUT = 60.0


class PredictError(PipelineError):
  """The rows or the server's answer could not be used. One line."""


def model_url(url: str) -> str:
  """http://HOST:PORT/v1/models/NAME[/versions/N], from that or from
  HOST:PORT + --model."""
  url = url.rstrip('/')
  if not re.match(r'^https?://[^/\s]+/v1/models/[^/:]+(/versions/\d+)?$', url):
    raise PredictError(
      f'--url {url}: give the model URL, e.g. '
      'http://127.0.0.1:8501/v1/models/breast_cancer (optionally '
      '/versions/N)'
    )
  return url


def _request(
  url: str,
  body: Optional[Dict[str, Any]] = None,
  timeout: float = DEFAULT_TIMEOUT,
) -> Dict[str, Any]:
  """The server's JSON answer (an object) to one request, within `timeout`
  seconds in all: a socket timeout bounds each read, not a server that
  answers a byte at a time or never finishes, so the request runs on a
  thread of its own that is given up on when the time is out."""
  outcome: Dict[str, Any] = {}

  def attempt():
    try:
      outcome['answer'] = _attempt(url, body, timeout)
    except PredictError as e:
      outcome['error'] = e

  thread = threading.Thread(target=attempt, daemon=True)
  thread.start()
  thread.join(timeout)
  if 'error' in outcome:
    raise outcome['error']
  if 'answer' not in outcome:
    raise PredictError(
      f'{url}: the server did not answer within {timeout:g} s (see --timeout)'
    )
  if not isinstance(outcome['answer'], dict):
    raise PredictError(
      f'{url}: the answer is JSON but not an object; is this '
      'a TF Serving REST endpoint?'
    )
  return outcome['answer']


def _attempt(url: str, body: Optional[Dict[str, Any]], timeout: float) -> Any:
  data = json.dumps(body).encode() if body is not None else None
  request = urllib.request.Request(
    url,
    data=data,
    headers={'Content-Type': 'application/json'},
    method='POST' if data is not None else 'GET',
  )
  try:
    with urllib.request.urlopen(request, timeout=timeout) as response:
      return json.loads(response.read())
  except urllib.error.HTTPError as e:
    text = e.read(4096).decode(errors='replace')
    try:
      answer = json.loads(text)
      message = answer.get('error', text) if isinstance(answer, dict) else text
    except ValueError:
      message = text
    message = whole(str(message))[:200] or e.reason
    raise PredictError(f'{url}: HTTP {e.code}: {message}') from None
  except (urllib.error.URLError, OSError) as e:
    reason = getattr(e, 'reason', e)
    raise PredictError(f'{url}: cannot reach the server: {reason}') from None
  except (ValueError, RecursionError):
    raise PredictError(f'{url}: the answer is not JSON') from None


def read_rows(path: str) -> List[Dict[str, Any]]:
  if not os.path.isfile(path):
    raise PredictError(f'{path}: no such file')
  if path.lower().endswith('.json'):
    try:
      with open(path, encoding='utf-8') as f:
        data = json.load(f)
    except ValueError as e:
      raise PredictError(f'{path}: not valid JSON: {e}') from None
    if isinstance(data, dict) and 'instances' in data:
      data = data['instances']
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
      raise PredictError(
        f'{path}: expected a list of objects (one per row) '
        'or {"instances": [...]}'
      )
    rows = data
  else:
    rows = _csv_rows(path)
  if not rows:
    raise PredictError(f'{path}: no rows')
  return rows


def _csv_rows(path: str) -> List[Dict[str, Any]]:
  with open(path, 'rb') as f:
    data = f.read()
  try:
    text = data.decode('utf-8')
  except UnicodeDecodeError as e:
    line = data.count(b'\n', 0, e.start) + 1
    raise PredictError(
      f'{path}: line {line}: not UTF-8 text; save the file as UTF-8'
    ) from None
  reader = csv.DictReader(io.StringIO(text, newline=''))
  try:
    return list(reader)
  except csv.Error as e:
    raise PredictError(
      f'{path}: line {reader.line_num}: not a CSV row ({whole(e)})'
    ) from None


def is_missing(value: Any, null_values=DEFAULT_NULL_VALUES) -> bool:
  """An absent value: None (JSON null), an empty cell or a null token."""
  return value is None or (
    isinstance(value, str) and value.strip() in null_values
  )


def _typed(
  value: Any, dtype: str, where: str, null_values=DEFAULT_NULL_VALUES
) -> Any:
  """A row's value as the input's dtype wants it. A missing value is NaN
  for a float input and "" for a string one (the serving_raw signature's
  way of leaving a value out); an integer input needs a value."""
  if is_missing(value, null_values):
    if dtype in _FLOATS:
      return float('nan')
    if dtype in _INTS:
      raise PredictError(f'{where}: missing, but the model needs a value here')
    return ''
  if dtype in _FLOATS or dtype in _INTS:
    try:
      number = float(value)
    except (TypeError, ValueError):
      raise PredictError(f'{where}: {value!r} is not a number') from None
    if dtype in _INTS:
      if not number.is_integer():
        raise PredictError(f'{where}: {value!r} is not an integer')
      return int(number)
    return number
  return str(value)


def signature_inputs(metadata: Dict[str, Any], name: str) -> Dict[str, str]:
  """input name -> dtype ('DT_FLOAT', ...) of a signature in the model's
  metadata (TF Serving's GET .../metadata answer)."""
  defs = signature_defs(metadata)
  if name not in defs:
    raise PredictError(
      f'the model has no signature {name!r}; it has '
      f'{sorted(k for k in defs if not k.startswith("__"))}'
    )
  return {
    key: value.get('dtype', 'DT_STRING')
    for key, value in defs[name].get('inputs', {}).items()
  }


def signature_defs(metadata: Dict[str, Any]) -> Dict[str, Any]:
  """The signature defs in a GET .../metadata answer, checked for the shape
  TF Serving gives them; another server's JSON is refused in one line."""
  defs = metadata.get('metadata', {})
  defs = defs.get('signature_def', {}) if isinstance(defs, dict) else None
  defs = defs.get('signature_def') if isinstance(defs, dict) else None
  if not isinstance(defs, dict) or not all(
    isinstance(d, dict)
    and isinstance(d.get('inputs', {}), dict)
    and all(isinstance(i, dict) for i in d.get('inputs', {}).values())
    for d in defs.values()
  ):
    raise PredictError(
      'the metadata answer has no signature defs '
      '(metadata.signature_def.signature_def); is the URL '
      'a TF Serving model?'
    )
  return defs


def _example(
  row: Dict[str, Any],
  types: Dict[str, str],
  index: int,
  null_values=DEFAULT_NULL_VALUES,
) -> bytes:
  """A row as a serialized tf.Example; missing values are left out."""
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top

  example = example_pb2.Example()
  for key, value in row.items():
    if is_missing(value, null_values):
      continue
    dtype = types.get(key)
    feature = example.features.feature[key]
    if dtype is None:  # no raw signature to say: numbers are floats
      try:
        feature.float_list.value.append(float(value))
      except (TypeError, ValueError):
        feature.bytes_list.value.append(str(value).encode())
      continue
    typed = _typed(value, dtype, f'row {index + 1}, {key}')
    if dtype in _FLOATS:
      feature.float_list.value.append(typed)
    elif dtype in _INTS:
      feature.int64_list.value.append(typed)
    else:
      feature.bytes_list.value.append(typed.encode())
  return example.SerializeToString()


def build_requests(
  rows: List[Dict[str, Any]],
  metadata: Dict[str, Any],
  signature: str = 'auto',
  row_format: bool = True,
  batch_size: int = 64,
  null_values=DEFAULT_NULL_VALUES,
) -> Iterator[Dict[str, Any]]:
  """TF Serving predict bodies for `rows`, `batch_size` rows each. A value
  that is missing (absent, null, empty, or a null token) is NaN or "" for
  serving_raw, and left out of a tf.Example."""
  defs = signature_defs(metadata)
  if signature == 'auto':
    signature = RAW_SIGNATURE if RAW_SIGNATURE in defs else DEFAULT_SIGNATURE
  inputs = signature_inputs(metadata, signature)
  raw_types = (
    signature_inputs(metadata, RAW_SIGNATURE) if (RAW_SIGNATURE in defs) else {}
  )
  # A single string input that is not one of the rows' columns takes
  # serialized tf.Examples (serving_default's `examples`).
  takes_examples = (
    len(inputs) == 1
    and list(inputs.values()) == ['DT_STRING']
    and next(iter(inputs)) not in rows[0]
  )
  if not takes_examples:
    instances = []
    for i, row in enumerate(rows):
      instances.append(
        {
          k: _typed(row.get(k), inputs[k], f'row {i + 1}, {k}', null_values)
          for k in inputs
        }
      )
  else:  # one serialized tf.Example input
    (name,) = inputs
    feature_types = raw_types or {}
    instances = []
    for i, row in enumerate(rows):
      kept = {
        k: v for k, v in row.items() if not feature_types or k in feature_types
      }
      instances.append(
        {
          name: {
            'b64': base64.b64encode(
              _example(kept, feature_types, i, null_values)
            ).decode()
          }
        }
      )
  for start in range(0, len(instances), batch_size):
    batch = instances[start : start + batch_size]
    if row_format:
      yield {'signature_name': signature, 'instances': batch}
    else:
      yield {
        'signature_name': signature,
        'inputs': {k: [row[k] for row in batch] for k in batch[0]},
      }


def predictions(answer: Dict[str, Any], rows: int) -> List[Any]:
  """Per-row predictions from either answer format, one for each of the
  `rows` rows sent."""
  found = answer.get('predictions', answer.get('outputs'))
  if (
    isinstance(found, dict)
    and found
    and all(isinstance(v, list) and len(v) == rows for v in found.values())
  ):
    keys = sorted(found)
    found = [{k: found[k][i] for k in keys} for i in range(rows)]
  if not isinstance(found, list) or len(found) != rows:
    raise PredictError(
      f"the answer is not a model's answer for {rows} "
      'row(s): expected "predictions" or "outputs" with one '
      'value per row'
    )
  return found


def predict_file(
  url: str,
  path: str,
  signature: str = 'auto',
  row_format: bool = True,
  batch_size: int = 64,
  null_values=DEFAULT_NULL_VALUES,
  timeout: float = DEFAULT_TIMEOUT,
) -> Tuple[str, List[Any]]:
  """Sends every row of `path`, each request answered within `timeout`
  seconds; returns (signature used, predictions)."""
  url = model_url(url)
  rows = read_rows(path)
  metadata = _request(url + '/metadata', timeout=timeout)
  results: List[Any] = []
  used = signature
  for body in build_requests(
    rows, metadata, signature, row_format, batch_size, null_values
  ):
    used = body['signature_name']
    sent = (
      len(body['instances'])
      if row_format
      else len(next(iter(body['inputs'].values())))
    )
    results.extend(predictions(_request(url + ':predict', body, timeout), sent))
  return used, results
