"""The column-kind registry: how each kind of input column is recognised,
transformed, fed to the model and served.

A kind is one of the `features` lists of the spec (`numeric`,
`categorical`, `date`; text and image come through the same seam). Each
declares:
- `recognise(csv_kind, looks_like_date)`: whether a column the spec does
  not list is of this kind, from what the pre-flight scan saw (no
  TensorFlow: pipeline/runners/preflight.py asks);
- `schema_types`: the schema feature types it accepts;
- its tf.Transform graph, `modules/preprocessing.py`'s KIND_TRANSFORMS
  entry of its name (run over the train split, and again inside the
  serving graph, so serving takes the raw value);
- `float_inputs(key)` / `id_inputs(key)`: the model inputs it makes.
The run report shows each raw column by StatisticsGen's statistics of it.
The rest of the code asks the kind of a feature; nothing else lists kinds.
"""

from typing import Dict, List, Optional, Tuple

from modules.features import FeaturesSpec, transformed_name

# CSV column kinds as components/csv_format.py names them.
_INT, _FLOAT, _STRING = 'INT', 'FLOAT', 'STRING'


class Kind:
  name = ''
  schema_types: Tuple[str, ...] = ()
  fill_is_numeric = True  # which impute section its fill rules follow

  def recognise(self, csv_kind: str, looks_like_date: bool) -> bool:
    raise NotImplementedError

  def float_inputs(self, key: str) -> List[str]:
    return []

  def id_inputs(self, key: str) -> List[str]:
    return []


class NumericKind(Kind):
  """A number: gaps filled by the impute rule, then scaled."""
  name = 'numeric'
  schema_types = ('INT', 'FLOAT')

  def recognise(self, csv_kind, looks_like_date):
    return csv_kind in (_INT, _FLOAT)

  def float_inputs(self, key):
    return [transformed_name(key)]


class CategoricalKind(Kind):
  """A category: ids over a vocabulary of the train split, with OOV
  buckets; gaps by the impute rule."""
  name = 'categorical'
  schema_types = ('BYTES', 'INT')
  fill_is_numeric = False

  def recognise(self, csv_kind, looks_like_date):
    return csv_kind == _STRING and not looks_like_date

  def id_inputs(self, key):
    return [transformed_name(key)]


class DateKind(Kind):
  """An ISO-8601 date or datetime (text): the year (scaled, gaps filled by
  the numeric rule) and month, day of week, day of year and hour as
  cyclic (sine, cosine) pairs, all computed in the Transform graph so
  serving takes the raw string (modules/dates.py)."""
  name = 'date'
  schema_types = ('BYTES',)

  def recognise(self, csv_kind, looks_like_date):
    return csv_kind == _STRING and looks_like_date

  def float_inputs(self, key):
    from modules import dates  # pylint: disable=g-import-not-at-top
    return [transformed_name(dates.part_name(key, part))
            for part in dates.DATE_PARTS]


CATEGORICAL = CategoricalKind()  # what a column no other kind takes is
KINDS: Dict[str, Kind] = {kind.name: kind for kind in (
    NumericKind(), CATEGORICAL, DateKind())}
# Which kind an unlisted column becomes: the first that recognises it.
RECOGNITION_ORDER = ('date', 'numeric', 'categorical')


def columns(features: FeaturesSpec) -> List[Tuple[str, Kind]]:
  """Every feature with its kind, in the spec's order of kinds."""
  return [(key, kind) for kind in KINDS.values()
          for key in getattr(features, kind.name)]


def kind_of(features: FeaturesSpec, key: str) -> Optional[Kind]:
  for name, kind in columns(features):
    if name == key:
      return kind
  return None


def recognise(csv_kind: str, looks_like_date: bool) -> Kind:
  """The kind of a column the spec does not list."""
  for name in RECOGNITION_ORDER:
    if KINDS[name].recognise(csv_kind, looks_like_date):
      return KINDS[name]
  return CATEGORICAL
