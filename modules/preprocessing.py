"""preprocessing_fn for TFX Transform: each feature by its column kind
(modules/kinds.py: fill gaps, scale numbers, index categories, expand
dates), and the label by the task (modules/tasks.py).

A feature the schema makes optional arrives as a SparseTensor (at most one
value a row); a value of it is *missing* when it is absent, NaN, or an empty
string (the serving_raw signature's way of leaving a value out,
modules/train.py). Missing values are filled by the spec's
`preprocessing.impute` rule with statistics that tf.Transform's analyzers
compute over the train split, so the same fill is applied inside the
serving graph; an indicator feature (1.0 where the value was missing) is
added where the rule asks for one. A required feature (a fixed shape in the
schema) arrives dense and has a value in every row: it is scaled or indexed
as it is, with no fill to compute.
"""

import dataclasses
from typing import Any, Dict, Mapping, Tuple, Union

import tensorflow as tf
import tensorflow_transform as tft

from modules import dates
from modules import features as features_lib
from modules import kinds as kinds_lib
from modules.config import ConstantToken, TransformConfig

# The category a missing value becomes under `missing_bucket`.
MISSING_TOKEN = '__missing__'
# The vocabulary of a STRING label's class names (most frequent first).
LABEL_VOCABULARY = 'label_classes'

_NUMERIC_SCALERS = {
  'z_score': tft.scale_to_z_score,
  'min_max': tft.scale_to_0_1,
  'none': lambda x: x,
}


def single_values(
  x: Union[tf.Tensor, tf.SparseTensor], default: Any
) -> Tuple[tf.Tensor, tf.Tensor]:
  """(values [batch, 1] with `default` where missing, missing [batch, 1])."""
  if isinstance(x, tf.SparseTensor):
    batch = x.dense_shape[0]
    x = tf.sparse.reset_shape(x, tf.stack([batch, tf.constant(1, tf.int64)]))
    values = tf.sparse.to_dense(x, default_value=default)
    present = (
      tf.sparse.to_dense(
        tf.SparseTensor(
          x.indices, tf.ones_like(x.values, tf.int32), x.dense_shape
        ),
        default_value=0,
      )
      > 0
    )
    values = tf.reshape(values, [-1, 1])  # a static shape for Transform
    missing = tf.reshape(tf.logical_not(present), [-1, 1])
  else:
    values = tf.reshape(x, [-1, 1])
    missing = tf.zeros_like(values, tf.bool)
  if values.dtype.is_floating:
    missing = tf.logical_or(missing, tf.math.is_nan(values))
  elif values.dtype == tf.string:
    missing = tf.logical_or(missing, tf.equal(tf.strings.strip(values), ''))
  return values, missing


def numeric_values(x) -> Tuple[tf.Tensor, tf.Tensor]:
  """(values [batch, 1] float32, NaN where missing; missing [batch, 1])."""
  if not isinstance(x, tf.SparseTensor):
    # A required feature (the schema gives it a fixed shape): every row has
    # a value, so no fill is computed. A fill would be an analyzer whose
    # output the scaling analyzes again: a second pass over the data.
    values = tf.reshape(tf.cast(x, tf.float32), [-1, 1])
    return values, tf.zeros_like(values, tf.bool)
  x = tf.SparseTensor(x.indices, tf.cast(x.values, tf.float32), x.dense_shape)
  return single_values(x, float('nan'))


def fill_numeric(
  columns: Mapping[str, Tuple[tf.Tensor, tf.Tensor]], rules: Mapping[str, Any]
) -> Dict[str, tf.Tensor]:
  """Each (values, missing) column with a rule, its gaps filled by it: the
  mean or median of its present values in the train split, zero, or a
  number; a column without a rule (a required feature) as it is. The means
  of all columns come from one analyzer (sums of the present values and
  their counts, per column, side by side); a column with no value at all
  in the train split fills with 0."""
  fills = {}
  means = [k for k in columns if rules.get(k) == 'mean']
  if means:
    present = [
      tf.cast(tf.logical_not(columns[k][1]), tf.float64) for k in means
    ]
    values = [
      tf.where(
        columns[k][1],
        tf.zeros_like(columns[k][0], tf.float64),
        tf.cast(columns[k][0], tf.float64),
      )
      for k in means
    ]
    sums = tft.sum(
      tf.concat(values + present, axis=1),
      reduce_instance_dims=False,
      name='numeric_fill_mean',
    )
    for i, key in enumerate(means):
      fills[key] = tf.cast(
        tf.math.divide_no_nan(sums[i], sums[len(means) + i]), tf.float32
      )
  for key, (values, missing) in columns.items():
    rule = rules.get(key)
    if rule is None or rule == 'mean':
      continue
    if rule == 'median':
      # Named after its feature: tf.Transform finds it again when it
      # traces this function twice (and caches it by name).
      median = tf.reshape(
        tft.quantiles(
          tf.boolean_mask(values, tf.logical_not(missing)),
          num_buckets=2,
          epsilon=1e-3,
          name=f'{key}_fill_median',
        ),
        [-1],
      )[0]
      fills[key] = tf.where(tf.math.is_nan(median), 0.0, median)
    elif rule == 'zero':
      fills[key] = tf.constant(0.0)
    else:
      fills[key] = tf.constant(float(rule))
  return {
    key: tf.where(missing, fills[key], values) if key in fills else values
    for key, (values, missing) in columns.items()
  }


def scale_numeric(
  columns: Mapping[str, tf.Tensor], scaling: str
) -> Dict[str, tf.Tensor]:
  """Each [batch, 1] column scaled by its own statistics over the train
  split, all columns by one analyzer: they are stacked side by side and
  scaled elementwise (per column), then split again. One analyzer instead
  of one per feature is one Beam combine instead of dozens, the same
  numbers."""
  if scaling == 'none' or not columns:
    return dict(columns)
  keys = list(columns)
  stacked = tf.concat([columns[k] for k in keys], axis=1)
  scaled = _NUMERIC_SCALERS[scaling](
    stacked, elementwise=True, name=f'numeric_{scaling}'
  )
  return {k: scaled[:, i : i + 1] for i, k in enumerate(keys)}


def categorical_ids(x, key: str, fill, vocab) -> Tuple[tf.Tensor, tf.Tensor]:
  """(ids [batch, 1] over the train split's vocabulary, missing [batch, 1])."""
  values, missing = single_values(x, '' if x.dtype == tf.string else 0)
  if values.dtype != tf.string:
    values = tf.strings.as_string(values)
  if not isinstance(x, tf.SparseTensor):  # required: nothing to fill
    return tft.compute_and_apply_vocabulary(
      values,
      top_k=vocab.top_k,
      num_oov_buckets=vocab.num_oov_buckets,
      vocab_filename=key,
      name=f'{key}_vocabulary',
    ), missing
  if fill == 'most_frequent':
    # The vocabulary is ordered by frequency: id 0 is the most frequent.
    present = tf.boolean_mask(values, tf.logical_not(missing))
    vocabulary = tft.vocabulary(
      present, top_k=vocab.top_k, vocab_filename=key, name=f'{key}_vocabulary'
    )
    ids = tft.apply_vocabulary(
      values, vocabulary, num_oov_buckets=vocab.num_oov_buckets
    )
    return tf.where(missing, tf.zeros_like(ids), ids), missing
  token = fill.constant if isinstance(fill, ConstantToken) else MISSING_TOKEN
  filled = tf.where(missing, tf.fill(tf.shape(values), token), values)
  ids = tft.compute_and_apply_vocabulary(
    filled,
    top_k=vocab.top_k,
    num_oov_buckets=vocab.num_oov_buckets,
    vocab_filename=key,
    name=f'{key}_vocabulary',
  )
  return ids, missing


@dataclasses.dataclass
class Transformed:
  """One column's Transform outputs, before the shared numeric steps:
  `scaled` floats still to fill and scale (output name -> (values [batch,
  1], missing [batch, 1], fill rule or None for no gaps)), `direct` outputs
  that are final, and the column's `missing` mask (for an indicator)."""

  scaled: Dict[str, Tuple[tf.Tensor, tf.Tensor, Any]]
  direct: Dict[str, tf.Tensor]
  missing: tf.Tensor


def numeric_column(x, key: str, rule, options) -> Transformed:
  """A number: its gaps filled by `rule` (a required feature has none),
  then scaled with the others."""
  values, missing = numeric_values(x)
  optional = isinstance(x, tf.SparseTensor)
  return Transformed(
    scaled={
      features_lib.transformed_name(key): (
        values,
        missing,
        rule if optional else None,
      )
    },
    direct={},
    missing=missing,
  )


def categorical_column(x, key: str, rule, options) -> Transformed:
  """A category: ids over the train split's vocabulary."""
  ids, missing = categorical_ids(x, key, rule, options.categorical)
  return Transformed(
    scaled={}, direct={features_lib.transformed_name(key): ids}, missing=missing
  )


def date_column(x, key: str, rule, options) -> Transformed:
  """A date: the year filled by the numeric `rule` and scaled with the
  numbers; the cyclic parts as they are (0 where missing)."""
  del options  # dates take no vocabulary or scaling options of their own
  text, _ = single_values(x, '')
  parts, missing = dates.date_parts(text)
  name = features_lib.transformed_name
  return Transformed(
    scaled={
      name(dates.part_name(key, 'year')): (parts.pop('year'), missing, rule)
    },
    direct={
      name(dates.part_name(key, part)): value for part, value in parts.items()
    },
    missing=missing,
  )


# A word of free text for the learned encoders: a run of letters, digits
# and apostrophes (so "don't" stays one word), after lower-casing.
_NOT_WORD = r"[^\pL\pN']+"
PAD_ID = 0  # a text's token ids are shifted by one: 0 pads a short text


def text_vocabulary_name(key: str) -> str:
  """The vocabulary file of text column `key`'s words."""
  return f'{key}_words'


def text_id_space(vocabulary_size: int) -> int:
  """Token ids a text column's ids can take: padding, the vocabulary's
  words and one out-of-vocabulary bucket."""
  return vocabulary_size + 2


def tokenize(text: tf.Tensor, max_tokens: int) -> tf.SparseTensor:
  """Text [batch, 1] -> its first `max_tokens` lower-cased words, as a
  SparseTensor [batch, max_tokens] of strings."""
  lowered = tf.strings.lower(tf.reshape(text, [-1]), encoding='utf-8')
  spaced = tf.strings.regex_replace(lowered, _NOT_WORD, ' ')
  words = tf.strings.split(tf.strings.strip(spaced))[:, :max_tokens]
  sparse = words.to_sparse()
  return tf.SparseTensor(
    sparse.indices,
    sparse.values,
    tf.stack([sparse.dense_shape[0], tf.constant(max_tokens, tf.int64)]),
  )


def text_column(x, key: str, rule, options) -> Transformed:
  """Free text: the raw string (for a pretrained encoder's own tokenizer,
  `transformed_name(key + '_text')`), and for the learned encoders its
  first `max_tokens` words as ids over the train split's vocabulary
  (shifted by one: 0 pads, the last id is out of vocabulary) with each
  position's TF-IDF weight (the word's inverse document frequency over
  the train split, divided by the text's length: summed per word, the
  text's TF-IDF vector). Missing text is the empty string: no words."""
  del rule  # missing text is no text
  text_options = options.text
  max_tokens = text_options.max_tokens
  text, missing = single_values(x, '')
  words = tokenize(text, max_tokens)
  ids = tft.compute_and_apply_vocabulary(
    words,
    top_k=text_options.vocabulary_size,
    frequency_threshold=text_options.min_frequency,
    num_oov_buckets=1,
    vocab_filename=text_vocabulary_name(key),
    name=f'{key}_words',
  )
  ids = tf.SparseTensor(ids.indices, ids.values + 1, ids.dense_shape)
  dense = tf.sparse.to_dense(ids, default_value=PAD_ID)
  dense = tf.reshape(dense, [-1, max_tokens])  # a static shape for Transform
  # Document frequencies: each (row, id) pair once, counted per id, summed
  # over the train split by one analyzer. The id space is bounded by the
  # vocabulary's top_k, known now; the vocabulary's own size is not.
  space = text_id_space(text_options.vocabulary_size)
  pairs, _ = tf.unique(ids.indices[:, 0] * space + ids.values)
  in_batch = tf.math.bincount(
    tf.cast(pairs % space, tf.int32),
    minlength=space,
    maxlength=space,
    dtype=tf.float32,
  )
  frequency = tft.sum(
    tf.expand_dims(in_batch, 0),
    reduce_instance_dims=False,
    name=f'{key}_document_frequency',
  )
  rows = tft.sum(tf.ones_like(dense[:, 0], tf.float32), name=f'{key}_documents')
  # Smoothed as scikit-learn's TfidfVectorizer smooths it: no word's
  # weight is zero, none infinite.
  idf = tf.math.log((1.0 + rows) / (1.0 + frequency)) + 1.0
  present = tf.cast(dense != PAD_ID, tf.float32)
  length = tf.maximum(tf.reduce_sum(present, axis=1, keepdims=True), 1.0)
  weights = tf.reshape(
    tf.gather(idf, dense) * present / length, [-1, max_tokens]
  )
  name = features_lib.transformed_name
  return Transformed(
    scaled={},
    direct={
      name(key): dense,
      name(key + '_weights'): weights,
      name(key + '_text'): tf.strings.strip(text),
    },
    missing=missing,
  )


def image_column(x, key: str, rule, options) -> Transformed:
  """An image: its encoded bytes as they are (PNG, JPEG, GIF or BMP), the
  model decodes and resizes them for its encoder (modules/encoders.py);
  missing is the empty string (a blank image)."""
  del rule, options
  data, missing = single_values(x, '')
  return Transformed(
    scaled={},
    direct={features_lib.transformed_name(key): data},
    missing=missing,
  )


# Each column kind's Transform (modules/kinds.py declares the kinds).
KIND_TRANSFORMS = {
  'numeric': numeric_column,
  'categorical': categorical_column,
  'date': date_column,
  'text': text_column,
  'image': image_column,
}


def class_label(x) -> tf.Tensor:
  """INT class indices as they are; STRING class names as their index in
  LABEL_VOCABULARY (over the train split, most frequent first; a name
  never seen in training is -1)."""
  if x.dtype == tf.string:
    values, _ = single_values(x, '')
    return tft.compute_and_apply_vocabulary(
      tf.strings.strip(values),
      num_oov_buckets=0,
      default_value=-1,
      vocab_filename=LABEL_VOCABULARY,
      name='label_vocabulary',
    )
  values, _ = single_values(x, 0)
  return tf.cast(values, tf.int64)


def number_label(x) -> tf.Tensor:
  """A regression label as float32 [batch, 1], on its own scale (the
  Trainer standardises it for training and restores it when serving)."""
  values, _ = single_values(x, float('nan') if x.dtype.is_floating else 0)
  return tf.cast(values, tf.float32)


# Each task's label Transform (modules/tasks.py: Task.label_transform).
LABEL_TRANSFORMS = {'class': class_label, 'number': number_label}


def preprocessing_fn(
  inputs: Mapping[str, Any], custom_config: Mapping[str, Any]
) -> Dict[str, Any]:
  """Transforms raw features into model inputs.

  Each feature is transformed by its column kind (modules/kinds.py):
  numbers filled where missing and scaled as `preprocessing.numeric` says
  (z-score by default, all columns by one analyzer), categories filled and
  mapped to integer ids over a vocabulary of the train split with OOV
  buckets, dates expanded into a scaled year and cyclic parts. The label is
  transformed by the task (class indices, or a number).

  Args:
    inputs: raw feature tensors keyed by column name.
    custom_config: a TransformConfig as JSON (modules/config/).

  Returns:
    Transformed tensors keyed by `features.transformed_name(output)`, and
    `features.indicator_name(column)` for each indicator.
  """
  config = TransformConfig.from_custom_config(custom_config)
  feats = config.features
  options = config.preprocessing
  outputs, missing, scaled, rules = {}, {}, {}, {}
  for key, kind in kinds_lib.columns(feats):
    rule, _ = options.impute.rule(key, categorical=not kind.fill_is_numeric)
    done = KIND_TRANSFORMS[kind.name](inputs[key], key, rule, options)
    missing[key] = done.missing
    outputs.update(done.direct)
    for name, (values, gaps, fill) in done.scaled.items():
      scaled[name] = (values, gaps)
      if fill is not None:  # required features have no gaps
        rules[name] = fill
  filled = fill_numeric(scaled, rules)
  outputs.update(scale_numeric(filled, options.numeric))
  for key in config.indicators():
    outputs[features_lib.indicator_name(key)] = tf.cast(
      missing[key], tf.float32
    )
  outputs[feats.transformed_label] = LABEL_TRANSFORMS[config.label_transform](
    inputs[feats.label]
  )
  return outputs
