"""Serving the pushed model: the push contract, `serve` speaking TF Serving's
REST API (answers equal to the SavedModel called in-process, hot reload,
4xx for malformed requests), and the `predict` client."""

import base64
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from components import pusher
from pipeline.serving import client as predict_client
from tests.conftest import DATA_CSV, MODEL, REPO

ROWS = 24
LABEL = 'diagnosis'


# --- the push contract ----------------------------------------------------


def _model(tmp_path, name, size=1):
  """A folder shaped like a SavedModel: saved_model.pb and variables."""
  folder = tmp_path / name
  (folder / 'variables').mkdir(parents=True)
  (folder / 'variables' / 'variables.data-00000-of-00001').write_bytes(
    os.urandom(size)
  )
  (folder / 'saved_model.pb').write_bytes(name.encode())
  return str(folder)


def test_versions_only_grow_and_nothing_is_overwritten(tmp_path):
  base = str(tmp_path / 'serving' / MODEL)
  frozen = lambda: 1_700_000_000  # noqa: E731  three pushes in one second
  pushed = [
    pusher.push(_model(tmp_path, f'm{i}'), base, clock=frozen) for i in range(3)
  ]
  assert [v for v, _ in pushed] == [1_700_000_000, 1_700_000_001, 1_700_000_002]
  for i, (_, folder) in enumerate(pushed):
    with open(os.path.join(folder, 'saved_model.pb'), 'rb') as f:
      assert f.read() == f'm{i}'.encode()  # each push kept its own model
  # A clock that went backwards still gives a newer version.
  version, _ = pusher.push(_model(tmp_path, 'late'), base, clock=lambda: 5)
  assert version == 1_700_000_003
  assert sorted(os.listdir(base)) == [
    str(v) for v in range(1_700_000_000, 1_700_000_004)
  ]


def test_a_push_is_never_visible_half_copied(tmp_path):
  base = str(tmp_path / 'serving' / MODEL)
  source = _model(tmp_path, 'big', size=200 * 1024 * 1024)
  expected = {
    name: os.path.getsize(os.path.join(root, name))
    for root, _, names in os.walk(source)
    for name in names
  }
  seen, done = [], threading.Event()

  def watch():
    while not done.is_set():
      for name in os.listdir(base) if os.path.isdir(base) else []:
        if name.isdigit():
          folder = os.path.join(base, name)
          sizes = {
            n: os.path.getsize(os.path.join(root, n))
            for root, _, names in os.walk(folder)
            for n in names
          }
          seen.append(sizes == expected)
      time.sleep(0.001)

  watcher = threading.Thread(target=watch)
  watcher.start()
  version, folder = pusher.push(source, base)
  time.sleep(0.05)
  done.set()
  watcher.join()
  assert seen and all(seen), 'a version folder was visible before complete'
  assert os.listdir(base) == [str(version)]  # no temporary folder left
  assert folder == os.path.join(base, str(version))


def test_a_failed_push_leaves_no_version(tmp_path):
  base = str(tmp_path / 'serving' / MODEL)
  with pytest.raises(pusher.PushError, match='no saved_model.pb'):
    pusher.push(str(tmp_path), base)
  source = _model(tmp_path, 'm')
  # A file that vanishes between listing and copying: a dangling link.
  os.symlink(
    str(tmp_path / 'gone'), os.path.join(source, 'variables', 'variables.index')
  )
  with pytest.raises(pusher.PushError, match='failed'):
    pusher.push(source, base)
  assert os.listdir(base) == []


@pytest.mark.e2e
def test_the_pipeline_push_is_recorded_in_ml_metadata(base, cold):
  _, summary = cold
  # results.summarize reads these from the Pusher's PushedModel artifact.
  assert summary['pushed'] is True
  folder = os.path.join(base, 'serving', MODEL, summary['pushed_version'])
  assert summary['pushed_path'] == folder
  assert os.path.isfile(os.path.join(folder, 'saved_model.pb'))
  assert not [
    n
    for n in os.listdir(os.path.dirname(folder))
    if n.startswith(pusher.TEMP_PREFIX)
  ]


# --- serve ----------------------------------------------------------------


def _rows(n=ROWS):
  with open(DATA_CSV, newline='') as f:
    return list(csv.DictReader(f))[:n]


def _features(rows):
  return [{k: float(v) for k, v in row.items() if k != LABEL} for row in rows]


def _examples(rows):
  serialized = []
  for row in _features(rows):
    example = tf.train.Example()
    for key, value in row.items():
      example.features.feature[key].float_list.value.append(value)
    serialized.append(example.SerializeToString())
  return serialized


def _http(url, body=None, method=None, raw=None):
  data = (
    raw
    if raw is not None
    else (json.dumps(body).encode() if body is not None else None)
  )
  request = urllib.request.Request(
    url, data=data, method=method or ('POST' if data is not None else 'GET')
  )
  try:
    with urllib.request.urlopen(request, timeout=60) as response:
      return response.status, json.loads(response.read())
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read())


class Server:
  """`python -m pipeline serve` in a subprocess, on a free port."""

  def __init__(self, model_base, poll_seconds=0.2):
    self.stderr = tempfile.TemporaryFile(mode='w+')
    self.proc = subprocess.Popen(
      [
        sys.executable,
        '-m',
        'pipeline',
        'serve',
        '--model-base',
        model_base,
        '--port',
        '0',
        '--poll-seconds',
        str(poll_seconds),
        '--max-request-mb',
        '1',
      ],
      cwd=REPO,
      stdout=subprocess.PIPE,
      stderr=self.stderr,
      text=True,
      env={**os.environ, 'PYTHONUNBUFFERED': '1'},
    )
    self.lines = []
    deadline = time.time() + 240
    while time.time() < deadline:
      line = self.proc.stdout.readline()
      if not line:
        self.stderr.seek(0)
        raise AssertionError('serve exited: ' + self.stderr.read()[-3000:])
      self.lines.append(line.strip())
      if line.startswith('serving ') and ' at http://' in line:
        self.url = line.split(' at ')[1].split(' ')[0]
        break
    else:
      raise AssertionError('serve did not start: ' + '\n'.join(self.lines))
    threading.Thread(target=self._drain, daemon=True).start()

  def _drain(self):
    for line in self.proc.stdout:
      self.lines.append(line.strip())

  def model(self, name=MODEL):
    return f'{self.url}/v1/models/{name}'

  def stop(self):
    self.proc.terminate()
    self.proc.wait(timeout=30)


@pytest.fixture(scope='module')
def served(cold, tmp_path_factory):
  """The cold run's pushed model, pushed again into a fresh model base, and
  `serve` over it."""
  _, summary = cold
  model_base = str(tmp_path_factory.mktemp('model-base'))
  version, folder = pusher.push(
    summary['pushed_path'], os.path.join(model_base, MODEL)
  )
  server = Server(model_base)
  yield server, model_base, version, folder
  server.stop()


def _in_process(folder, rows):
  model = tf.saved_model.load(folder)
  default = model.signatures['serving_default'](
    examples=tf.constant(_examples(rows))
  )['probability'].numpy()
  raw_inputs = {
    k: tf.constant([r[k] for r in _features(rows)], tf.float32)
    for k in _features(rows)[0]
  }
  raw = model.signatures['serving_raw'](**raw_inputs)['probability'].numpy()
  return default, raw


@pytest.fixture(scope='module')
def expected(served):
  """What the pushed SavedModel answers in-process for `_rows()`, through
  both signatures."""
  _, _, _, folder = served
  return _in_process(folder, _rows())


def _predict_requests(rows):
  """The same rows in every request shape TF Serving's REST API accepts."""
  examples = [{'b64': base64.b64encode(e).decode()} for e in _examples(rows)]
  features = _features(rows)
  return {
    'rows, tf.Examples': {'instances': examples},
    'rows, tf.Examples, named': {
      'signature_name': 'serving_default',
      'instances': [{'examples': e} for e in examples],
    },
    'columns, tf.Examples': {'inputs': {'examples': examples}},
    'rows, raw values': {
      'signature_name': 'serving_raw',
      'instances': features,
    },
    'columns, raw values': {
      'signature_name': 'serving_raw',
      'inputs': {k: [f[k] for f in features] for k in features[0]},
    },
  }


def _probabilities_and_classes(body, answer):
  """Two outputs: TF Serving's REST answers a mapping per row (row format)
  or per output (column format)."""
  if 'instances' in body:
    predictions = answer['predictions']
    return (
      [p['probability'] for p in predictions],
      [p['class_id'] for p in predictions],
    )
  return answer['outputs']['probability'], answer['outputs']['class_id']


@pytest.mark.e2e
def test_served_predictions_equal_the_saved_model_in_process(served, expected):
  server, _, version, _ = served
  default, raw = expected
  np.testing.assert_allclose(default, raw, rtol=1e-5)
  for label, body in _predict_requests(_rows()).items():
    for url in (server.model(), f'{server.model()}/versions/{version}'):
      status, answer = _http(url + ':predict', body)
      assert status == 200, (label, answer)
      got, classes = _probabilities_and_classes(body, answer)
      np.testing.assert_allclose(
        np.array(got, dtype=np.float32),
        default,
        rtol=1e-5,
        atol=1e-6,
        err_msg=label,
      )
      assert classes == [int(p[0] >= 0.5) for p in default], label


@pytest.mark.e2e
def test_served_status_and_metadata_name_the_pushed_version(served):
  server, _, version, _ = served
  status, answer = _http(server.model())
  assert status == 200 and answer == {
    'model_version_status': [
      {
        'version': str(version),
        'state': 'AVAILABLE',
        'status': {'error_code': 'OK', 'error_message': ''},
      }
    ]
  }
  status, meta = _http(server.model() + '/metadata')
  defs = meta['metadata']['signature_def']['signature_def']
  assert defs['serving_default']['inputs']['examples']['dtype'] == 'DT_STRING'
  assert set(defs['serving_raw']['inputs']) == set(_features(_rows())[0])
  assert meta['model_spec'] == {
    'name': MODEL,
    'signature_name': '',
    'version': str(version),
  }


def _rows_csv(tmp_path, rows):
  """The rows as a CSV file, with the label column: the client drops it."""
  csv_path = tmp_path / 'rows.csv'
  with open(csv_path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  return csv_path


def _rows_json(tmp_path, rows):
  json_path = tmp_path / 'rows.json'
  json_path.write_text(json.dumps(_features(rows)))
  return json_path


def _predict_cli(url, path):
  return subprocess.run(
    [sys.executable, '-m', 'pipeline', 'predict', '--url', url, str(path)],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )


@pytest.mark.e2e
@pytest.mark.parametrize(
  'write, signature, fmt',
  [
    (_rows_csv, 'auto', 'rows'),
    (_rows_csv, 'serving_default', 'columns'),
    (_rows_json, 'serving_raw', 'columns'),
  ],
)
def test_predict_file_answers_the_saved_model_predictions(
  served, expected, tmp_path, write, signature, fmt
):
  server, _, _, _ = served
  default, _ = expected
  used, results = predict_client.predict_file(
    server.model(),
    str(write(tmp_path, _rows())),
    signature=signature,
    row_format=fmt == 'rows',
    batch_size=10,
  )
  assert used == ('serving_raw' if signature == 'auto' else signature)
  np.testing.assert_allclose(
    np.array([r['probability'] for r in results], dtype=np.float32),
    default,
    rtol=1e-5,
    atol=1e-6,
  )


@pytest.mark.e2e
def test_predict_client_prints_the_same_predictions(served, expected, tmp_path):
  server, _, _, _ = served
  default, _ = expected
  proc = _predict_cli(server.model(), _rows_csv(tmp_path, _rows()))
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = [json.loads(line) for line in proc.stdout.splitlines()]
  assert [line['row'] for line in lines] == list(range(1, ROWS + 1))
  np.testing.assert_allclose(
    [line['prediction']['probability'] for line in lines],
    default,
    rtol=1e-5,
    atol=1e-6,
  )


@pytest.mark.e2e
def test_predict_client_names_an_unknown_model_in_one_line(served, tmp_path):
  server, _, _, _ = served
  bad = _predict_cli(server.model('nope'), _rows_csv(tmp_path, _rows()))
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines() == [
    f'error: {server.model("nope")}/metadata: HTTP 404: Servable not found '
    'for request: Latest(nope)'
  ]


class _Flipped(tf.Module):
  """A different model for version 2: 1 - the original's probability."""

  def __init__(self, folder):
    super().__init__()
    self._original = tf.saved_model.load(folder)
    default = self._original.signatures['serving_default']
    raw = self._original.signatures['serving_raw']
    self.default = tf.function(
      lambda examples: {
        'probability': 1.0 - default(examples=examples)['probability']
      },
      input_signature=[tf.TensorSpec([None], tf.string, name='examples')],
    )
    self.raw = tf.function(
      lambda features: {'probability': 1.0 - raw(**features)['probability']},
      input_signature=[raw.structured_input_signature[1]],
    )


@pytest.mark.e2e
def test_a_newly_pushed_version_is_served_without_a_restart(served, tmp_path):
  server, model_base, version, folder = served
  rows = _rows(8)
  default, _ = _in_process(folder, rows)
  body = {
    'instances': [
      {'b64': base64.b64encode(e).decode()} for e in _examples(rows)
    ]
  }
  flipped = _Flipped(folder)
  export = str(tmp_path / 'flipped')
  tf.saved_model.save(
    flipped,
    export,
    signatures={
      'serving_default': flipped.default.get_concrete_function(),
      'serving_raw': flipped.raw.get_concrete_function(),
    },
  )
  pid = server.proc.pid
  new_version, _ = pusher.push(export, os.path.join(model_base, MODEL))
  assert new_version > version
  deadline = time.time() + 120
  while time.time() < deadline:
    status, answer = _http(server.model())
    if answer['model_version_status'][0]['version'] == str(new_version):
      break
    # Until the new version has loaded, the old one answers.
    assert status == 200
    time.sleep(0.2)
  else:
    raise AssertionError(
      'the new version was not picked up: ' + '\n'.join(server.lines)
    )
  status, answer = _http(server.model() + ':predict', body)
  assert status == 200
  np.testing.assert_allclose(
    answer['predictions'], 1.0 - default, rtol=1e-5, atol=1e-6
  )
  status, answer = _http(f'{server.model()}/versions/{version}:predict', body)
  assert status == 404  # TF Serving's default policy serves the latest only
  assert answer == {
    'error': f'Servable not found for request: Specific({MODEL}, {version})'
  }
  assert server.proc.poll() is None and server.proc.pid == pid
  assert any(
    f'serving version {new_version} (was {version})' in line
    for line in server.lines
  )


def _malformed_routes(server, example):
  """Requests to a model, version, verb or path that is not there."""
  model = server.model()
  return {
    'unknown model': (
      'POST',
      server.model('nope') + ':predict',
      {'instances': [example]},
      404,
    ),
    'unknown version': (
      'POST',
      model + '/versions/1:predict',
      {'instances': [example]},
      404,
    ),
    'non-integer version': ('GET', model + '/versions/latest', None, 400),
    'unknown verb': ('POST', model + ':explain', {'instances': []}, 404),
    'unknown path': ('GET', server.url + '/v2/models', None, 404),
    'predict by GET': ('GET', model + ':predict', None, 405),
  }


def _malformed_bodies(model, example):
  """Predict bodies that are not a request, or carry no usable tf.Example."""
  return {
    'body is not JSON': ('POST', model + ':predict', b'{"instances": [', 400),
    'body is a JSON list': ('POST', model + ':predict', [example], 400),
    'no instances or inputs': ('POST', model + ':predict', {'rows': []}, 400),
    'both instances and inputs': (
      'POST',
      model + ':predict',
      {'instances': [example], 'inputs': [example]},
      400,
    ),
    'empty instances': ('POST', model + ':predict', {'instances': []}, 400),
    'unknown signature': (
      'POST',
      model + ':predict',
      {'signature_name': 'nope', 'instances': [example]},
      400,
    ),
    'number for a tf.Example': (
      'POST',
      model + ':predict',
      {'instances': [1.5]},
      400,
    ),
    'invalid base64': (
      'POST',
      model + ':predict',
      {'instances': [{'b64': '%%%'}]},
      400,
    ),
    'bytes that are not a tf.Example': (
      'POST',
      model + ':predict',
      {'instances': [{'b64': base64.b64encode(b'junk').decode()}]},
      400,
    ),
  }


def _malformed_features(model, features):
  """Raw-value bodies whose features do not fit the serving_raw signature."""
  missing = {k: v for k, v in features.items() if k != 'mean_radius'}
  columns = {k: [v] for k, v in features.items()}
  raw = lambda body: ('POST', model + ':predict', body, 400)  # noqa: E731
  return {
    'missing feature': raw(
      {'signature_name': 'serving_raw', 'instances': [missing]}
    ),
    'unknown feature': raw(
      {
        'signature_name': 'serving_raw',
        'instances': [{**features, 'colour': 1.0}],
      }
    ),
    'string for a number': raw(
      {
        'signature_name': 'serving_raw',
        'instances': [{**features, 'mean_radius': 'large'}],
      }
    ),
    'nested list for a scalar': raw(
      {
        'signature_name': 'serving_raw',
        'inputs': {**columns, 'mean_radius': [[1.0, 2.0]]},
      }
    ),
    'columns of different lengths': raw(
      {
        'signature_name': 'serving_raw',
        'inputs': {**columns, 'mean_radius': [1.0, 2.0]},
      }
    ),
  }


def _malformed(server):
  model = server.model()
  example = {'b64': base64.b64encode(_examples(_rows(1))[0]).decode()}
  features = _features(_rows(1))[0]
  return {
    **_malformed_routes(server, example),
    **_malformed_bodies(model, example),
    **_malformed_features(model, features),
    'oversize body': (
      'POST',
      model + ':predict',
      {'instances': [example] * 20000},
      413,
    ),
  }


@pytest.mark.e2e
def test_malformed_requests_get_4xx_and_the_server_keeps_serving(served):
  server, _, version, _ = served
  cases = _malformed(server)
  assert len(cases) >= 10
  for label, (method, url, body, expected) in cases.items():
    raw = body if isinstance(body, bytes) else None
    status, answer = _http(url, None if raw else body, method=method, raw=raw)
    assert status == expected, (label, status, answer)
    assert set(answer) == {'error'} and isinstance(answer['error'], str), label
    assert answer['error'] and '\n' not in answer['error'], label
    # Still serving after each.
    status, answer = _http(server.model())
    assert status == 200, label
  assert server.proc.poll() is None
  status, answer = _http(
    server.model() + ':predict',
    {
      'instances': [
        {'b64': base64.b64encode(e).decode()} for e in _examples(_rows(2))
      ]
    },
  )
  assert status == 200 and len(answer['predictions']) == 2
  del version


def test_serve_refuses_a_missing_model_base_in_one_line(tmp_path):
  proc = subprocess.run(
    [
      sys.executable,
      '-m',
      'pipeline',
      'serve',
      '--model-base',
      str(tmp_path / 'none'),
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
    f'error: --model-base {tmp_path / "none"}: no such folder; run the '
    'pipeline first (it pushes there) or name the folder holding '
    '<model>/<version>/'
  ]


@pytest.mark.e2e
def test_serve_binds_to_loopback_by_default(served):
  server, _, _, _ = served
  assert server.url.startswith('http://127.0.0.1:')


# --- Kubernetes manifests -------------------------------------------------


def test_serving_manifests_agree_with_the_spec_and_the_lock():
  import yaml  # pylint: disable=g-import-not-at-top

  from pipeline.definition import spec as spec_lib  # pylint: disable=g-import-not-at-top

  spec = spec_lib.load_spec(
    os.path.join(REPO, 'pipeline', 'specs', 'breast_cancer.yaml')
  )
  with open(os.path.join(REPO, 'requirements.lock')) as f:
    serving_api = [
      line.split('==')[1].strip()
      for line in f
      if line.startswith('tensorflow-serving-api==')
    ][0]
  folder = os.path.join(REPO, 'kubeflow', 'serving')
  with open(os.path.join(folder, 'tf-serving.yaml')) as f:
    deployment, service = yaml.safe_load_all(f)
  assert (deployment['kind'], service['kind']) == ('Deployment', 'Service')
  pod = deployment['spec']['template']
  assert (
    deployment['spec']['selector']['matchLabels']
    == pod['metadata']['labels']
    == service['spec']['selector']
  )
  (container,) = pod['spec']['containers']
  assert container['image'] == f'tensorflow/serving:{serving_api}'
  args = dict(a[2:].split('=', 1) for a in container['args'])
  name = spec.push.model_name
  assert args['model_name'] == name
  assert args['model_base_path'].endswith(f'/serving/{name}')
  ports = {p['name']: p['containerPort'] for p in container['ports']}
  assert ports == {
    'grpc': int(args['port']),
    'http': int(args['rest_api_port']),
  }
  assert {p['targetPort'] for p in service['spec']['ports']} == set(ports)
  assert container['readinessProbe']['httpGet'] == {
    'path': f'/v1/models/{name}',
    'port': 'http',
  }
  with open(os.path.join(folder, 'kserve.yaml')) as f:
    inference = yaml.safe_load(f)
  assert inference['apiVersion'] == 'serving.kserve.io/v1beta1'
  assert inference['kind'] == 'InferenceService'
  tensorflow = inference['spec']['predictor']['tensorflow']
  assert tensorflow['storageUri'] == args['model_base_path']
  assert tensorflow['runtimeVersion'] == serving_api


def test_multiclass_outputs_in_both_formats(tmp_path):
  """A model with two outputs (probabilities, class_id), as multiclass
  exports answer: rows get one object per instance, columns one list per
  output."""
  from pipeline.serving import server as serve  # pylint: disable=g-import-not-at-top

  class Multiclass(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name='x')])
    def scores(self, x):
      probabilities = tf.stack([x, 1 - x], axis=-1)
      return {
        'probabilities': probabilities,
        'class_id': tf.argmax(probabilities, axis=-1),
      }

  module = Multiclass()
  folder = str(tmp_path / 'm' / '1')
  tf.saved_model.save(
    module,
    folder,
    signatures={'serving_default': module.scores.get_concrete_function()},
  )
  loaded = serve.load_version('m', 1, folder)
  rows = serve.predict(loaded, {'instances': [0.9, 0.2]})
  assert rows == {
    'predictions': [
      {
        'class_id': 0,
        'probabilities': [pytest.approx(0.9), pytest.approx(0.1)],
      },
      {
        'class_id': 1,
        'probabilities': [pytest.approx(0.2), pytest.approx(0.8)],
      },
    ]
  }
  columns = serve.predict(loaded, {'inputs': {'x': [0.9, 0.2]}})
  assert columns['outputs']['class_id'] == [0, 1]
  np.testing.assert_allclose(
    columns['outputs']['probabilities'], [[0.9, 0.1], [0.2, 0.8]], rtol=1e-6
  )
  with pytest.raises(serve.ServingError) as raised:
    serve.predict(loaded, {'instances': [True]})
  assert raised.value.status == 400
