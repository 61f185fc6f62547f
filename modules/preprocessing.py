"""preprocessing_fn for TFX Transform: scale numbers, index categories."""

from typing import Any, Dict, Mapping

import tensorflow as tf
import tensorflow_transform as tft

from modules import features as features_lib
from modules.config import TransformConfig

_NUMERIC_SCALERS = {
    'z_score': tft.scale_to_z_score,
    'min_max': tft.scale_to_0_1,
    'none': lambda x: x,
}


def _dense(x: Any) -> tf.Tensor:
  """Required features arrive dense; a sparse one means the schema lacks shape."""
  if isinstance(x, tf.SparseTensor):
    raise ValueError(
        'a feature arrived as a SparseTensor: give it `shape { dim { size: 1 } }`'
        ' and presence min_fraction 1.0 in the schema')
  return x


def preprocessing_fn(inputs: Mapping[str, Any],
                     custom_config: Mapping[str, Any]) -> Dict[str, Any]:
  """Transforms raw features into model inputs.

  Numeric features are scaled as `preprocessing.numeric` says (z-score by
  default); categorical ones are mapped to integer ids over a vocabulary
  computed on the training split, with OOV buckets. The label is passed
  through.

  Args:
    inputs: raw feature tensors keyed by column name.
    custom_config: a TransformConfig as JSON (modules/config.py).

  Returns:
    Transformed tensors keyed by `features.transformed_name(column)`.
  """
  config = TransformConfig.from_custom_config(custom_config)
  feats = config.features
  scale = _NUMERIC_SCALERS[config.preprocessing.numeric]
  vocab = config.preprocessing.categorical
  outputs = {}
  for key in feats.numeric:
    outputs[features_lib.transformed_name(key)] = scale(
        tf.cast(_dense(inputs[key]), tf.float32))
  for key in feats.categorical:
    outputs[features_lib.transformed_name(key)] = (
        tft.compute_and_apply_vocabulary(
            _dense(inputs[key]), top_k=vocab.top_k,
            num_oov_buckets=vocab.num_oov_buckets, vocab_filename=key))
  outputs[feats.transformed_label] = tf.cast(_dense(inputs[feats.label]),
                                             tf.int64)
  return outputs
