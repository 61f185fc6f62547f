"""TFRecords of tf.Examples as the data (`data.tfrecord`), read by TFX's
ImportExampleGen: 300 Fashion-MNIST garments as encoded PNG bytes with
their class names, gzipped, in two shards. Nothing but the label is named:
the pre-flight scan recognises the image feature by its bytes' signature.
The learned CNN encoder trains on them, the model is evaluated and pushed,
and a new process classifies PNG bytes with it. Bad TFRecord data is
refused by `validate` in one line, before anything runs; Kubeflow compiles
the ImportExampleGen with the cluster's data URI and its resources."""

import csv
import gzip
import io
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from PIL import Image

from kubeflow import runner
from modules import kinds
from pipeline.definition import spec as spec_lib
from pipeline.experiments.splits import pipeline_split
from tests.conftest import (
  REPO,
  cli,
  one_line_error,
  pipeline_fixture,
  report_page,
  run_spec,
)

FASHION = os.path.join(REPO, 'data', 'fashion_mnist')
ROWS = 300

SPEC = """
name: garments
data:
  tfrecord: {data}
features:
  label: {label}
preprocessing:
  image_size: 32
model:
  # With the Tuner off the first choices train: small batches, so that in
  # a few epochs of 240 images the CNN's batch normalization has taken
  # enough steps for the moving statistics evaluation uses (until then
  # the validation loss rises, and early stopping would keep epoch 1).
  search_space:
    learning_rate: {{min: 0.003, max: 0.01, sampling: log}}
    units: {{min: 32, max: 64}}
    batch_size: [8]
tuner:
  enabled: false
training:
  epochs: 12
  early_stopping: null
  seed: 42
evaluation:
  thresholds: {{accuracy: 0.2}}
push:
  destination: serving
  model_name: garments
runner:
  pipeline_root: root
  metadata: metadata.sqlite
"""


def _garments(rows=ROWS):
  """(PNG bytes, class name) of the first `rows` bundled images."""
  with open(os.path.join(FASHION, 'fashion_mnist.csv'), newline='') as f:
    listed = list(csv.DictReader(f))[:rows]
  found = []
  for row in listed:
    with open(os.path.join(FASHION, row['image']), 'rb') as f:
      found.append((f.read(), row['label']))
  return found


def _example(features):
  """A tf.Example of {name: bytes, int, float or a list of them}."""

  def feature(value):
    values = value if isinstance(value, list) else [value]
    if isinstance(values[0], bytes):
      return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    if isinstance(values[0], int):
      return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))

  return tf.train.Example(
    features=tf.train.Features(
      feature={k: feature(v) for k, v in features.items()}
    )
  )


def write_tfrecords(folder, examples, shards=2, gzipped=True):
  """`examples` (tf.Examples) as TFRecord shards in `folder`, gzipped and
  named .gz, or plain and named .tfrecord."""
  os.makedirs(folder, exist_ok=True)
  options = tf.io.TFRecordOptions(compression_type='GZIP' if gzipped else '')
  ending = 'tfrecord.gz' if gzipped else 'tfrecord'
  for shard in range(shards):
    path = os.path.join(
      folder, f'garments-{shard:05d}-of-{shards:05d}.{ending}'
    )
    with tf.io.TFRecordWriter(path, options) as writer:
      for example in examples[shard::shards]:
        writer.write(example.SerializeToString())
  return folder


def garment_examples(rows=ROWS):
  return [
    _example({'image': png, 'label': name.encode('utf-8')})
    for png, name in _garments(rows)
  ]


def _spec(tmp_path, data, label='label', extra=''):
  path = os.path.join(str(tmp_path), 'garments.yaml')
  with open(path, 'w') as f:
    f.write(SPEC.format(data=data, label=label) + extra)
  return path


# Without a run: recognition, and one-line refusals.


def _encoded(image_format):
  out = io.BytesIO()
  Image.new('RGB', (4, 3), (200, 10, 10)).save(out, format=image_format)
  return out.getvalue()


def test_encoded_images_are_told_by_their_first_bytes():
  for image_format in ('PNG', 'JPEG', 'GIF', 'BMP'):
    assert kinds.is_image_bytes(_encoded(image_format)), image_format
  for text in (b'BMW 320d, 2011', b'GIF is a format', b'', b'\x89PN'):
    assert not kinds.is_image_bytes(text), text
  facts = kinds.ColumnFacts(
    csv_kind='STRING', distinct_share=1.0, image_bytes=True
  )
  assert kinds.recognise(facts).name == 'image'


def test_validate_recognises_the_image_feature(tmp_path):
  data = write_tfrecords(str(tmp_path / 'examples'), garment_examples(60))
  proc = cli('validate', _spec(tmp_path, data))
  assert proc.returncode == 0, proc.stderr
  assert '60 rows' in proc.stdout and 'columns: image image' in proc.stdout
  assert 'warning' not in proc.stdout


def test_every_kind_is_recognised_from_the_value_lists(tmp_path):
  examples = []
  for i, (png, name) in enumerate(_garments(40)):
    examples.append(
      _example(
        {
          'label': name.encode('utf-8'),
          'image': png,
          'count': i % 7,
          'weight': 0.5 * i,
          'day': f'2024-01-{i % 28 + 1:02d}'.encode(),
          'shop': [b'north', b'south'][i % 2],
        }
      )
    )
  # A missing value: the feature left out, or present and empty.
  examples[3].features.feature.pop('weight')
  del examples[4].features.feature['shop'].bytes_list.value[:]
  data = write_tfrecords(str(tmp_path / 'examples'), examples)
  proc = cli('validate', _spec(tmp_path, data))
  assert proc.returncode == 0, proc.stderr
  assert (
    'columns: numeric count, weight; categorical shop; date day; image image'
  ) in proc.stdout, proc.stdout


def test_one_plain_file_is_read_too(tmp_path):
  folder = write_tfrecords(
    str(tmp_path / 'plain'), garment_examples(40), shards=1, gzipped=False
  )
  path = os.path.join(folder, os.listdir(folder)[0])
  proc = cli('validate', _spec(tmp_path, path))
  assert proc.returncode == 0, proc.stderr
  assert '40 rows' in proc.stdout and 'columns: image image' in proc.stdout


def test_a_csv_file_given_as_tfrecords_is_refused_in_one_line(tmp_path):
  folder = tmp_path / 'not_tfrecords'
  folder.mkdir()
  with open(os.path.join(FASHION, 'fashion_mnist.csv'), 'rb') as f:
    (folder / 'fashion_mnist.csv').write_bytes(f.read())
  proc = cli('validate', _spec(tmp_path, str(folder)))
  one_line_error(
    proc,
    str(folder / 'fashion_mnist.csv'),
    'not a TFRecord file',
    'data.tfrecord',
  )


def test_a_missing_label_feature_is_refused_in_one_line(tmp_path):
  data = write_tfrecords(
    str(tmp_path / 'examples'), garment_examples(10), shards=1
  )
  proc = cli('validate', _spec(tmp_path, data, label='garment'))
  one_line_error(
    proc,
    'garments-00000-of-00001.tfrecord.gz: record 1',
    "no feature 'garment' (features.label)",
    'image, label',
  )


def test_several_values_a_row_are_refused_in_one_line(tmp_path):
  examples = [_example({'label': b'Bag', 'sizes': [1.0, 2.0]})]
  data = write_tfrecords(str(tmp_path / 'examples'), examples, shards=1)
  proc = cli('validate', _spec(tmp_path, data))
  one_line_error(
    proc,
    'record 1, feature sizes',
    '2 values',
    'only one value per row is read',
  )


def test_a_gzipped_file_must_be_named_so(tmp_path):
  folder = tmp_path / 'examples'
  folder.mkdir()
  record = garment_examples(1)[0].SerializeToString()
  with tf.io.TFRecordWriter(str(folder / 'plain.tfrecord')) as writer:
    writer.write(record)
  data = (folder / 'plain.tfrecord').read_bytes()
  (folder / 'plain.tfrecord').write_bytes(gzip.compress(data))
  proc = cli('validate', _spec(tmp_path, str(folder)))
  one_line_error(
    proc, 'plain.tfrecord: gzipped, but its name does not end in .gz'
  )


def test_binary_bytes_that_are_no_image_are_refused(tmp_path):
  examples = [
    _example({'label': b'Bag', 'blob': b'\x00\xff\xfe'}),
    _example({'label': b'Coat', 'blob': b'\x01\xff'}),
  ]
  data = write_tfrecords(str(tmp_path / 'examples'), examples, shards=1)
  proc = cli('validate', _spec(tmp_path, data))
  one_line_error(
    proc,
    'record 1, feature blob',
    'no PNG, JPEG, GIF or BMP image',
    'features.exclude',
  )


def test_a_schema_is_checked_against_the_value_lists(tmp_path):
  data = write_tfrecords(
    str(tmp_path / 'examples'), garment_examples(20), shards=1
  )
  schema = tmp_path / 'schema.pbtxt'
  feature = 'feature {{ name: "{}" type: {} shape {{ dim {{ size: 1 }} }} }}\n'
  schema.write_text(
    feature.format('image', 'BYTES') + feature.format('label', 'BYTES')
  )
  extra = f'schema: {schema}\n'
  proc = cli('validate', _spec(tmp_path, data, extra=extra))
  assert proc.returncode == 0, proc.stderr
  assert 'columns: image image' in proc.stdout
  schema.write_text(
    feature.format('image', 'BYTES') + feature.format('label', 'INT')
  )
  one_line_error(
    cli('validate', _spec(tmp_path, data, extra=extra)),
    'record 1, feature label: a bytes_list, but the schema '
    'says INT (an int64_list)',
  )


def test_what_tfrecords_cannot_take_is_refused_by_the_spec(tmp_path):
  def load(**data):
    return spec_lib.spec_from_dict(
      {
        'name': 'garments',
        'data': data,
        'features': {'label': 'label'},
        'push': {'destination': 'serving', 'model_name': 'garments'},
        'runner': {'pipeline_root': 'root', 'metadata': 'm.sqlite'},
      },
      str(tmp_path),
      'garments.yaml',
    )

  spec = load(tfrecord='examples')
  assert spec.data.path == str(tmp_path / 'examples')
  assert spec.data.example_gen_id == 'ImportExampleGen'
  assert not spec.data.single_file
  assert load(tfrecord='a.tfrecord.gz').data.single_file
  with pytest.raises(
    spec_lib.SpecError, match='data: give exactly one of csv, tfrecord'
  ):
    load(tfrecord='examples', csv='data.csv')
  with pytest.raises(
    spec_lib.SpecError, match='data.split: a time split reads CSV'
  ):
    load(tfrecord='examples', split={'by': 'day', 'eval_from': 3})
  with pytest.raises(spec_lib.SpecError, match='data.null_values'):
    load(tfrecord='examples', null_values=['NA'])


def test_kubeflow_compiles_the_import_example_gen(tmp_path):
  data = write_tfrecords(str(tmp_path / 'examples'), garment_examples(30))
  spec = spec_lib.load_spec(
    _spec(tmp_path, data),
    {
      'kubeflow.pipeline_root': 'gs://bucket/root',
      'kubeflow.data': 'gs://bucket/garments/',
      'kubeflow.push_destination': 'gs://bucket/serving',
      'kubeflow.resources': {'example_gen': {'cpu': 2, 'memory_gb': 8}},
    },
  )
  settings = runner.cluster_settings(spec, image='registry.example.com/p:1')
  assert runner.cluster_spec(spec, settings).data.tfrecord == (
    'gs://bucket/garments'
  )
  output = str(tmp_path / 'compiled.yaml')
  runner.compile_pipeline(spec, settings, output)
  with open(output) as f:
    proto = json_format.ParseDict(
      yaml.safe_load(f), pipeline_spec_pb2.PipelineSpec()
    )
  tasks = proto.root.dag.tasks
  assert 'ImportExampleGen' in tasks and 'CsvExampleGen' not in tasks
  assert set(tasks['StatisticsGen'].dependent_tasks) == {'ImportExampleGen'}
  base = tasks['ImportExampleGen'].inputs.parameters['input_base']
  assert base.runtime_value.constant.string_value == 'gs://bucket/garments'
  executor = json_format.MessageToDict(proto.deployment_spec)['executors'][
    'ImportExampleGen_executor'
  ]
  assert executor['container']['resources'] == {
    'cpuLimit': 2.0,
    'memoryLimit': 8.0,
  }


# One run.


@pipeline_fixture(scope='module')
def garments(tmp_path_factory):
  base = str(tmp_path_factory.mktemp('garments'))
  data = write_tfrecords(os.path.join(base, 'examples'), garment_examples())
  spec = _spec(base, data)
  proc, summary = run_spec(spec, base, 'garments')
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return base, summary


@pytest.mark.e2e
def test_import_example_gen_reads_them_and_the_model_is_pushed(garments):
  base, summary = garments
  assert summary['status'] == 'succeeded'
  assert summary['blessed'] is True and summary['pushed'] is True
  split = pipeline_split(os.path.join(base, 'root'))
  assert os.path.isdir(os.path.join(base, 'root', 'ImportExampleGen'))
  assert len(split['train']) + len(split['eval']) == ROWS
  assert summary['metrics']['example_count'] == len(split['eval'])
  # Ten classes, about as many rows each: chance is about 0.1.
  assert summary['metrics']['accuracy'] >= 0.2, summary['metrics']
  # The report's lineage names the files ImportExampleGen read.
  page = report_page(summary)
  for shard in ('00000', '00001'):
    assert f'garments-{shard}-of-00002.tfrecord.gz' in page


@pytest.mark.e2e
def test_a_new_process_classifies_png_bytes(garments):
  _, summary = garments
  garments_ = _garments(ROWS + 20)[ROWS:]
  images = [png for png, _ in garments_]
  code = f"""
import json, os, sys
os.environ['TF_USE_LEGACY_KERAS'] = '1'
import tensorflow as tf
images = json.loads(sys.stdin.read())
model = tf.saved_model.load({summary['pushed_path']!r})
raw = model.signatures['serving_raw']
out = raw(image=tf.constant([bytes.fromhex(i) for i in images]))
print(json.dumps({{k: v.numpy().tolist() for k, v in out.items()}},
                 default=bytes.decode))
"""
  proc = subprocess.run(
    [sys.executable, '-c', code],
    input=json.dumps([png.hex() for png in images]),
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
    env={**os.environ, 'TF_USE_LEGACY_KERAS': '1'},
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  names = {name for _, name in _garments()}
  assert len(out['probabilities']) == len(images)
  for row in out['probabilities']:
    assert len(row) == len(names) and abs(sum(row) - 1) < 1e-3
  assert set(out['class_name']) <= names, out['class_name']
