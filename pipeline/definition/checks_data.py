"""The cross-field rules of the data and its features: the feature lists,
the data key, the split, per-feature imputation and the evaluation's
slices (checks.py runs them in order)."""

from typing import Dict

from components.csv_format import DEFAULT_NULL_VALUES
from modules.config import NUMERIC_FILLS
from pipeline.definition.checks_common import GROUPS, check, declared
from pipeline.definition.schema import PipelineSpec
from pipeline.definition.sections import TimeSplit


def check_feature_lists(spec: PipelineSpec) -> None:
  """A column is listed once, and the label in no list."""
  src, f = spec.source, spec.features
  seen: Dict[str, str] = {}
  for group in GROUPS:
    for name in getattr(f, group):
      check(
        name not in seen,
        src,
        f'features.{group}',
        f'{name!r} is listed twice (also in features.{seen.get(name)})',
      )
      seen[name] = group
  check(
    f.label not in seen,
    src,
    'features.label',
    f'{f.label!r} is also listed in features.{seen.get(f.label)}; the '
    'label is neither a feature nor excluded',
  )


def check_data(spec: PipelineSpec) -> None:
  """One data key; the CSV reading rules are not offered for tf.Examples,
  whose values are typed and whose missing values are absent features."""
  src, data = spec.source, spec.data
  given = [k for k in ('csv', 'tfrecord') if getattr(data, k) is not None]
  check(
    len(given) == 1,
    src,
    'data',
    f'give exactly one of csv, tfrecord (got {" and ".join(given) or "none"})',
  )
  check(bool(data.path), src, data.key, 'must name a folder or a file')
  if data.format != 'tfrecord':
    return
  check(
    list(data.null_values) == list(DEFAULT_NULL_VALUES),
    src,
    'data.null_values',
    'only CSV cells are read as missing by their '
    'text; in tf.Examples a missing value is an absent or empty feature '
    '(remove null_values)',
  )
  check(
    not isinstance(data.split, TimeSplit),
    src,
    'data.split',
    'a time split reads CSV; TFRecords are split by hash buckets '
    '({train: 4, eval: 1})',
  )


def check_split(spec: PipelineSpec) -> None:
  """A time split is by a declared column other than the label; a hash
  split names train and eval, each with at least one bucket."""
  src, f, split = spec.source, spec.features, spec.data.split
  if isinstance(split, TimeSplit):
    check(
      split.by != f.label,
      src,
      'data.split.by',
      'split by a feature or an excluded column, not the label',
    )
    check(
      not f.listed or split.by in declared(spec),
      src,
      'data.split.by',
      f'{split.by!r} is not a declared feature or excluded column',
    )
    return
  check(
    set(split) == {'train', 'eval'},
    src,
    'data.split',
    f'must name exactly the splits train and eval (got {sorted(split)})',
  )
  for name, buckets in split.items():
    check(
      buckets >= 1,
      src,
      f'data.split.{name}',
      f'hash buckets must be >= 1 (got {buckets})',
    )


def check_impute(spec: PipelineSpec) -> None:
  """Per-feature imputation rules name features, with a fill of their kind."""
  src, impute = spec.source, spec.preprocessing.impute
  seen = declared(spec)
  listed = spec.features.listed
  for name, rule in impute.features.items():
    key = f'preprocessing.impute.features.{name}'
    group = seen.get(name)
    if listed:
      check(
        group in ('numeric', 'categorical', 'date'),
        src,
        key,
        f'{name!r} is not a numeric, categorical or date feature',
      )
    if rule.fill is None or group is None:
      continue
    numeric_fill = isinstance(rule.fill, float) or rule.fill in NUMERIC_FILLS
    if group in ('numeric', 'date'):
      check(
        numeric_fill,
        src,
        f'{key}.fill',
        f'{name} is numeric: use mean, median, zero or a number',
      )
    else:
      check(
        not numeric_fill,
        src,
        f'{key}.fill',
        f'{name} is categorical: use missing_bucket, most_frequent or '
        '{constant: TOKEN}',
      )


def check_slices(spec: PipelineSpec) -> None:
  """Slices and slice gates name declared columns (once they are known)."""
  if not spec.is_resolved:
    return
  src, seen = spec.source, declared(spec)
  for i, slice_keys in enumerate(spec.evaluation.slices):
    check(
      bool(slice_keys),
      src,
      f'evaluation.slices.{i}',
      'a slice names at least one feature (the overall slice is always '
      'computed)',
    )
    for key in slice_keys:
      check(
        key in seen,
        src,
        f'evaluation.slices.{i}',
        f'{key!r} is not a declared feature or excluded column',
      )
  for i, gate in enumerate(spec.evaluation.slice_thresholds):
    for key in gate.features:
      check(
        key in seen,
        src,
        f'evaluation.slice_thresholds.{i}.slice',
        f'{key!r} is not a declared feature or excluded column',
      )
