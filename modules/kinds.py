"""The column-kind registry: how each kind of input column is recognised,
transformed, fed to the model and served.

A kind is one of the `features` lists of the spec (`numeric`,
`categorical`, `date`, `text`, `image`). Each declares:
- `recognise(facts)`: whether a column the spec does not list is of this
  kind, from what the pre-flight scan saw of it (`ColumnFacts`; no
  TensorFlow: pipeline/runners/preflight/ asks);
- `schema_types`: the schema feature types it accepts;
- its tf.Transform graph, `modules/preprocessing.py`'s KIND_TRANSFORMS
  entry of its name (run over the train split, and again inside the
  serving graph, so serving takes the raw value);
- `float_inputs(key)` / `id_inputs(key)`: the model inputs it makes;
  `encoded`: a kind whose columns each go through an encoder
  (modules/encoders.py: learned, or pretrained and fine-tuned) rather
  than straight into the dense layers.
The run report shows each raw column by StatisticsGen's statistics of it.
The rest of the code asks the kind of a feature; nothing else lists kinds.
"""

import dataclasses
from typing import Dict, List, Optional, Tuple

from modules.features import FeaturesSpec, transformed_name

# CSV column kinds as components/csv_format.py names them.
_INT, _FLOAT, _STRING = 'INT', 'FLOAT', 'STRING'
# Free text, told from a category: most values distinct, and several words
# a value on average. Product names and addresses are mostly distinct too,
# but short; a review, a title with its blurb, a complaint are long.
TEXT_MIN_DISTINCT_SHARE = 0.5
TEXT_MIN_MEAN_WORDS = 5.0
# Image files named by path (relative to the CSV), by their extension.
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.gif', '.bmp')
# Encoded images (a tf.Example's bytes), by their first bytes: the formats
# tf.io.decode_image reads. BMP's two letters also begin text ("BMW"), so
# its header is checked further (`is_image_bytes`).
IMAGE_SIGNATURES = (b'\x89PNG\r\n\x1a\n', b'\xff\xd8\xff', b'GIF87a', b'GIF89a')
# A BMP's info header sizes (its versions' and OS/2's).
_BMP_HEADER_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)


def is_image_bytes(data: bytes) -> bool:
  """Whether `data` is an encoded PNG, JPEG, GIF or BMP image, by its
  signature (a BMP: "BM", zero reserved bytes and a known header size)."""
  if data.startswith(IMAGE_SIGNATURES):
    return True
  return (
    len(data) >= 26
    and data[:2] == b'BM'
    and data[6:10] == bytes(4)
    and int.from_bytes(data[14:18], 'little') in _BMP_HEADER_SIZES
  )


@dataclasses.dataclass(frozen=True)
class ColumnFacts:
  """What the pre-flight scan saw of a column: its CSV kind (INT, FLOAT or
  STRING; a tf.Example's int64, float or bytes list), whether every value
  is an ISO-8601 date, the share of distinct values among the rows, the
  mean words a value, whether every value names an image file (CSV), and
  whether every value is an encoded image (`is_image_bytes`: tf.Examples'
  bytes)."""

  csv_kind: str
  looks_like_date: bool = False
  distinct_share: float = 0.0
  mean_words: float = 0.0
  image_paths: bool = False
  image_bytes: bool = False

  @property
  def is_image(self) -> bool:
    return self.image_paths or self.image_bytes

  @property
  def plain_text(self) -> bool:
    return (
      self.csv_kind == _STRING
      and not self.looks_like_date
      and not self.is_image
    )


class Kind:
  name = ''
  schema_types: Tuple[str, ...] = ()
  fill_is_numeric = True  # which impute section its fill rules follow
  encoded = False  # each column through its own encoder (modules/encoders.py)

  def recognise(self, facts: ColumnFacts) -> bool:
    raise NotImplementedError

  def float_inputs(self, key: str) -> List[str]:
    return []

  def id_inputs(self, key: str) -> List[str]:
    return []


class NumericKind(Kind):
  """A number: gaps filled by the impute rule, then scaled."""

  name = 'numeric'
  schema_types = ('INT', 'FLOAT')

  def recognise(self, facts):
    return facts.csv_kind in (_INT, _FLOAT)

  def float_inputs(self, key):
    return [transformed_name(key)]


class CategoricalKind(Kind):
  """A category: ids over a vocabulary of the train split, with OOV
  buckets; gaps by the impute rule."""

  name = 'categorical'
  schema_types = ('BYTES', 'INT')
  fill_is_numeric = False

  def recognise(self, facts):
    return facts.plain_text

  def id_inputs(self, key):
    return [transformed_name(key)]


class DateKind(Kind):
  """An ISO-8601 date or datetime (text): the year (scaled, gaps filled by
  the numeric rule) and month, day of week, day of year and hour as
  cyclic (sine, cosine) pairs, all computed in the Transform graph so
  serving takes the raw string (modules/dates.py)."""

  name = 'date'
  schema_types = ('BYTES',)

  def recognise(self, facts):
    return facts.csv_kind == _STRING and facts.looks_like_date

  def float_inputs(self, key):
    from modules import dates  # pylint: disable=g-import-not-at-top

    return [
      transformed_name(dates.part_name(key, part)) for part in dates.DATE_PARTS
    ]


class TextKind(Kind):
  """Free text (a review, a description): tokenized in the Transform graph
  (lower-cased words over a vocabulary of the train split, with TF-IDF
  weights), so serving takes the raw string; a learned encoder (bag of
  words, embeddings with pooling) or a pretrained one (a BERT-family
  model, its own WordPiece tokenizer in the model's graph) turns it into
  features. Missing text is the empty string."""

  name = 'text'
  schema_types = ('BYTES',)
  fill_is_numeric = False
  encoded = True

  def recognise(self, facts):
    return (
      facts.plain_text
      and facts.distinct_share >= TEXT_MIN_DISTINCT_SHARE
      and facts.mean_words >= TEXT_MIN_MEAN_WORDS
    )


class ImageKind(Kind):
  """An image: a CSV column of image file paths (relative to the CSV),
  read into the examples as the files' bytes by the ExampleGen, or encoded
  images in TFRecords of tf.Examples. The model decodes and resizes them
  for its encoder (a small learned CNN, or a pretrained backbone), with
  training-only augmentation; serving takes encoded image bytes."""

  name = 'image'
  schema_types = ('BYTES',)
  fill_is_numeric = False
  encoded = True

  def recognise(self, facts):
    return facts.csv_kind == _STRING and facts.is_image


CATEGORICAL = CategoricalKind()  # what a column no other kind takes is
KINDS: Dict[str, Kind] = {
  kind.name: kind
  for kind in (NumericKind(), CATEGORICAL, DateKind(), TextKind(), ImageKind())
}
# Which kind an unlisted column becomes: the first that recognises it.
RECOGNITION_ORDER = ('date', 'image', 'numeric', 'text', 'categorical')


def columns(features: FeaturesSpec) -> List[Tuple[str, Kind]]:
  """Every feature with its kind, in the spec's order of kinds."""
  return [
    (key, kind)
    for kind in KINDS.values()
    for key in getattr(features, kind.name)
  ]


def kind_of(features: FeaturesSpec, key: str) -> Optional[Kind]:
  for name, kind in columns(features):
    if name == key:
      return kind
  return None


def encoded_columns(features: FeaturesSpec) -> List[Tuple[str, Kind]]:
  """The features that go through an encoder (text, images)."""
  return [(key, kind) for key, kind in columns(features) if kind.encoded]


def recognise(facts: ColumnFacts) -> Kind:
  """The kind of a column the spec does not list."""
  for name in RECOGNITION_ORDER:
    if KINDS[name].recognise(facts):
      return KINDS[name]
  return CATEGORICAL
