"""Text and image columns without a pipeline run: how they are recognised,
the Transform's tokens and TF-IDF weights against scikit-learn's, image
decoding in the graph, the encoders' blocks that fine-tuning freezes and
thaws, and the one-line refusals of bad encoders before anything runs."""

import io
import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from PIL import Image

from modules import encoders, finetune, kinds, search_space, tasks
from modules import model as model_lib
from modules.config import PretrainedEncoder, TrainerConfig, TransformConfig
from modules.features import FeaturesSpec
from tests.conftest import REPO, cli, one_line_error

MINILM = 'sentence-transformers/all-MiniLM-L6-v2'


def _facts(**values):
  return kinds.ColumnFacts(**{'csv_kind': 'STRING', **values})


@pytest.mark.parametrize(
  'facts,kind',
  [
    (_facts(distinct_share=0.99, mean_words=18.0), 'text'),
    (_facts(distinct_share=0.95, mean_words=2.0), 'categorical'),  # names
    (_facts(distinct_share=0.02, mean_words=12.0), 'categorical'),  # a few
    (_facts(distinct_share=1.0, mean_words=1.0, image_paths=True), 'image'),
    (_facts(distinct_share=1.0, mean_words=1.0, looks_like_date=True), 'date'),
    (_facts(csv_kind='FLOAT', distinct_share=1.0), 'numeric'),
  ],
)
def test_recognised_kinds(facts, kind):
  assert kinds.recognise(facts).name == kind


def _transform(texts, vocabulary_size=50):
  import tensorflow_transform.beam as tft_beam  # pylint: disable=g-import-not-at-top
  from tensorflow_transform.tf_metadata import (  # pylint: disable=g-import-not-at-top
    dataset_metadata,
    schema_utils,
  )

  from modules import preprocessing  # pylint: disable=g-import-not-at-top

  config = TransformConfig(
    features=FeaturesSpec(label='y', text=['review'], num_classes=2),
    preprocessing={
      'text': {
        'max_tokens': 12,
        'min_frequency': 1,
        'vocabulary_size': vocabulary_size,
      }
    },
  )
  rows = [{'review': t.encode(), 'y': i % 2} for i, t in enumerate(texts)]
  metadata = dataset_metadata.DatasetMetadata(
    schema_utils.schema_from_feature_spec(
      {
        'review': tf.io.FixedLenFeature([], tf.string),
        'y': tf.io.FixedLenFeature([], tf.int64),
      }
    )
  )
  temp = tempfile.mkdtemp()
  with tft_beam.Context(temp_dir=temp):
    (transformed, _), transform_fn = (
      rows,
      metadata,
    ) | tft_beam.AnalyzeAndTransformDataset(
      lambda inputs: preprocessing.preprocessing_fn(
        inputs, config.to_custom_config()
      ),
      output_record_batches=False,
    )
    _ = transform_fn | tft_beam.WriteTransformFn(temp)
  return transformed, temp


TEXTS = [
  'A moving film, moving and funny.',
  'Dull; dull and long.',
  'Funny? Not at all: long, dull, tedious.',
  "don't miss it",
  'Le film est très beau',
  '',
]


def test_text_tokens_and_tfidf_match_scikit_learn():
  from sklearn.feature_extraction.text import TfidfVectorizer  # pylint: disable=g-import-not-at-top

  transformed, _ = _transform(TEXTS)
  ids = np.stack([np.ravel(r['review_xf']) for r in transformed])
  weights = np.stack([np.ravel(r['review_weights_xf']) for r in transformed])
  assert ids.shape == (len(TEXTS), 12) and ids.dtype == np.int64
  # Padding is 0, after the words; the empty text has none.
  assert (ids[-1] == 0).all() and (weights[-1] == 0).all()
  assert (ids[1, 4:] == 0).all() and (ids[1, :4] > 0).all()
  # The same word, the same id: "dull" in rows 1 (twice) and 2.
  assert ids[1, 0] == ids[1, 1] == ids[2, 5]
  # Summed per word, the weights are the TF-IDF vector; normalised as the
  # bag encoder does, it is scikit-learn's on the same tokens.
  space = int(ids.max()) + 1
  ours = np.zeros((len(TEXTS), space))
  for row in range(len(TEXTS)):
    np.add.at(ours[row], ids[row], weights[row])
  ours[:, 0] = 0.0
  vectorizer = TfidfVectorizer(
    token_pattern=r"[^\W_]+(?:'[^\W_]+)*", lowercase=True
  )
  reference = vectorizer.fit_transform(TEXTS).toarray()
  norms = np.linalg.norm(ours, axis=1, keepdims=True)
  ours = np.divide(ours, norms, out=np.zeros_like(ours), where=norms > 0)
  # Rows compared as sorted weights: the two vocabularies order words
  # differently (frequency here, alphabet there).
  for row in range(len(TEXTS)):
    np.testing.assert_allclose(
      np.sort(ours[row][ours[row] > 0]),
      np.sort(reference[row][reference[row] > 0]),
      rtol=1e-5,
    )
  assert [
    r['review_text_xf'].ravel()[0]
    if hasattr(r['review_text_xf'], 'ravel')
    else r['review_text_xf']
    for r in transformed
  ][0] in (TEXTS[0].encode(), [TEXTS[0].encode()])


def _png(pixels):
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format='PNG')
  return out.getvalue()


def test_images_decode_in_the_graph_to_rgb_of_the_encoder_s_size():
  grey = np.tile(np.arange(28, dtype=np.uint8)[None, :] * 9, (28, 1))
  layer = encoders.DecodeImage(56)
  out = layer(tf.constant([[_png(grey)], [b'']])).numpy()
  assert out.shape == (2, 56, 56, 3)
  assert np.allclose(out[0, ..., 0], out[0, ..., 1])  # grey: channels equal
  assert out[0, 0, -1, 0] > out[0, 0, 0, 0]  # brighter to the right
  assert (out[1] == 0).all()  # a missing image is black


def _text_column(location):
  return encoders.EncodedColumn(
    column='review',
    kind='text',
    pretrained=PretrainedEncoder(huggingface=MINILM, max_tokens=16),
    location=location,
  )


@pytest.fixture(scope='module')
def minilm_dir():
  from modules.pretrained import bert  # pylint: disable=g-import-not-at-top

  try:
    return bert.bundled_minilm_dir()
  except bert.EncoderError as e:
    pytest.skip(str(e))


def test_a_transformer_s_blocks_are_its_embeddings_and_layers(minilm_dir):
  inputs = model_lib.ModelInputs(
    numeric=[],
    categorical={},
    task=tasks.BinaryTask(),
    encoded={'review': _text_column(minilm_dir)},
  )
  hparams = dict(
    strategy='discriminative_lr',
    unfreeze_blocks=2,
    head_units=0,
    backbone_lr_scale=0.1,
    lr_decay=0.5,
    epochs_per_stage=1,
    dropout=0.0,
    l1=0.0,
    l2=0.0,
    optimizer='adam',
    learning_rate=1e-3,
    batch_size=4,
  )
  tuner = finetune.Finetuner(None, inputs, hparams)
  names = [
    block[0].name.split('_')[0] + '_' + block[0].name.split('_')[1]
    for block in tuner.blocks
  ]
  assert names == ['embeddings_word'] + [f'layer_{i}' for i in range(6)]
  tuner.prepare(2)
  trainable = {
    layer.name
    for layer in finetune._leaf_layers(tuner.backbone)  # pylint: disable=protected-access
    if layer.trainable and layer.weights
  }
  assert trainable and all(
    n.startswith(('layer_4_', 'layer_5_')) for n in trainable
  )
  x = {'review_text_xf': tf.constant([['a fine film'], ['awful']] * 2)}
  y = tf.constant([[1], [0]] * 2)
  before = [
    w.numpy().copy()
    for w in tuner.backbone.get_layer('review_encoder')
    .get_layer('layer_0_intermediate')
    .weights
  ]
  tuner.fit(
    tf.data.Dataset.from_tensor_slices((x, y)).batch(2),
    validation_data=tf.data.Dataset.from_tensor_slices((x, y)).batch(2),
    epochs=1,
  )
  after = (
    tuner.backbone.get_layer('review_encoder')
    .get_layer('layer_0_intermediate')
    .weights
  )
  assert all(
    np.array_equal(b, a.numpy()) for b, a in zip(before, after, strict=True)
  )


def test_an_efficientnet_s_blocks_follow_keras_applications_names():
  from modules.pretrained import efficientnet_lite  # pylint: disable=g-import-not-at-top

  backbone = efficientnet_lite.efficientnet_lite0(None, (32, 32, 3))
  keys = [
    finetune._BLOCK.match(block[0].name).group(1)  # pylint: disable=protected-access
    for block in finetune.backbone_blocks(backbone)
  ]
  assert keys[0] == 'stem' and keys[-1] == 'top'
  assert keys[1:4] == ['block1a', 'block2a', 'block2b']
  assert len(keys) == len(set(keys)) == 2 + 16  # Lite0: 16 MBConv blocks


def test_the_tuner_chooses_a_text_column_s_learned_encoder():
  config = TrainerConfig(
    features=FeaturesSpec(label='y', text=['review'], num_classes=2)
  )
  import keras_tuner  # pylint: disable=g-import-not-at-top

  hp = keras_tuner.HyperParameters()
  values = search_space.sample_config(hp, config)
  assert values['encoder_review'] == 'bag'
  assert hp.get('embedding_dim') == 64
  assert (
    'embedding'
    in hp.space[[p.name for p in hp.space].index('encoder_review')].values
  )


def _spec(tmp_path, encoder):
  data = os.path.join(
    REPO, 'data', 'rotten_tomatoes', 'rotten_tomatoes_1000.csv'
  )
  path = tmp_path / 'spec.yaml'
  path.write_text(f"""
name: t
data: {{csv: {data}}}
features: {{label: sentiment, text: [review]}}
model:
  encoders:
    review: {encoder}
push: {{destination: serving, model_name: t}}
runner: {{pipeline_root: root, metadata: metadata.sqlite}}
""")
  return str(path)


def test_a_broken_encoder_path_stops_in_one_line(tmp_path):
  proc = cli('validate', _spec(tmp_path, '{huggingface: ./no/such/model}'))
  one_line_error(
    proc,
    'model.encoders.review.huggingface',
    str(tmp_path / 'no' / 'such' / 'model'),
    'does not exist',
  )


def test_a_tokenizer_that_does_not_match_its_model_stops_in_one_line(
  tmp_path, minilm_dir
):
  copy = tmp_path / 'minilm'
  copy.mkdir()
  for name in os.listdir(minilm_dir):
    source = os.path.join(minilm_dir, name)
    if name == 'vocab.txt':
      with open(source, encoding='utf-8') as f:
        words = f.read().splitlines()
      (copy / name).write_text('\n'.join(words[:20000]) + '\n')
    else:
      os.symlink(source, copy / name)
  proc = cli('validate', _spec(tmp_path, f'{{huggingface: {copy}}}'))
  one_line_error(proc, 'model.encoders.review.huggingface', 'vocab')


def test_encoders_that_do_not_fit_their_column_are_refused(tmp_path):
  proc = cli('validate', _spec(tmp_path, 'cnn'))
  one_line_error(proc, 'model.encoders.review', 'does not encode text')
  proc = cli(
    'validate', _spec(tmp_path, '{keras_application: EfficientNetLite0}')
  )
  one_line_error(proc, 'encodes image', 'text column')


def test_trees_take_no_text(tmp_path):
  spec = _spec(tmp_path, 'bag')
  with open(spec) as f:
    text = f.read().replace('model:\n', 'model:\n  builder: gbt\n')
  with open(spec, 'w') as f:
    f.write(text)
  one_line_error(
    cli('validate', spec),
    'model.builder',
    'gbt trees take no text or image column',
  )


def test_an_encoder_model_with_the_wrong_input_is_refused(tmp_path):
  numbers = keras.Input((4,))
  model = keras.Model(numbers, keras.layers.Dense(2)(numbers))
  path = str(tmp_path / 'numbers.keras')
  model.save(path)
  one_line_error(
    cli('validate', _spec(tmp_path, f'{{keras_file: {path}}}')),
    'model.encoders.review.keras_file',
    'raw string',
  )


def test_run_stops_on_a_broken_encoder_before_writing_anything(tmp_path):
  proc = cli('run', _spec(tmp_path, '{huggingface: ./no/such/model}'))
  one_line_error(proc, 'model.encoders.review.huggingface', 'does not exist')
  assert not (tmp_path / 'root').exists()
  assert not (tmp_path / 'metadata.sqlite').exists()
  assert not (tmp_path / 'serving').exists()


def test_an_encoder_at_a_uri_is_copied_here_once_and_loads(minilm_dir):
  uri = 'file://' + minilm_dir
  column = _text_column(uri)
  location = encoders.locate(
    'review', 'text', PretrainedEncoder(huggingface=uri, max_tokens=16)
  )
  assert location == uri
  copy = encoders.local_copy(uri)
  assert copy != minilm_dir and os.path.isfile(
    os.path.join(copy, 'model.safetensors')
  )
  assert sorted(os.listdir(copy)) == sorted(os.listdir(minilm_dir))
  assert encoders.local_copy(uri) == copy  # once
  encoder = encoders.load(column)
  out = encoder(tf.constant([['a fine film']]))
  assert out.shape == (1, 384)


@pytest.mark.parametrize('encoder', ['bag', 'embedding'])
def test_an_empty_text_encodes_to_finite_features(encoder):
  column = encoders.EncodedColumn(
    column='review', kind='text', choices=(encoder,), id_space=10, max_tokens=3
  )
  layers = {
    name: keras.Input(shape=shape, dtype=dtype, name=name)
    for name, (shape, dtype) in column.input_specs().items()
  }
  model = keras.Model(
    layers, encoders.learned(column, layers, {'embedding_dim': 4})
  )
  out = model(
    {
      'review_xf': tf.constant([[0, 0, 0], [3, 4, 0]], tf.int64),
      'review_weights_xf': tf.constant([[0.0, 0, 0], [0.5, 0.5, 0]]),
    }
  )
  out = out.numpy()
  assert np.isfinite(out).all() and (out[0] == 0).all()
  assert (out[1] != 0).any()
