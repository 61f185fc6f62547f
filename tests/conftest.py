"""Shared fixtures. Keras 2 (tf_keras) is chosen here, before TensorFlow is
imported by any test module, as the CLI does at its entry point."""

import os
import random

os.environ['TF_USE_LEGACY_KERAS'] = '1'
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SPEC = os.path.join(REPO, 'pipeline', 'specs', 'breast_cancer.yaml')
DATA_CSV = os.path.join(REPO, 'data', 'breast_cancer', 'breast_cancer.csv')
SCHEMA = os.path.join(REPO, 'schemas', 'breast_cancer', 'schema.pbtxt')


@pytest.fixture(autouse=True)
def seeded():
  """Every test starts from the same seeds."""
  random.seed(0)
  np.random.seed(0)
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.random.set_seed(0)
  except ImportError:
    pass
