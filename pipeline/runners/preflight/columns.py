"""The data's columns as a whole, against the spec: the columns it names
are there, with usable kinds and names; tf.Examples' bytes hold images or
text; the columns it leaves unlisted get the kind their values show; and
the features that look like ids."""

from typing import Dict, List

from components import csv_format
from modules import features as features_lib
from modules import kinds as kinds_lib
from pipeline.definition.spec import PipelineSpec
from pipeline.runners.preflight.common import PreflightError
from pipeline.runners.preflight.scan import _Scan

# A column whose distinct values are at least this share of the rows is
# named by validate and schema: an id, free text or an unparsed date.
ID_LIKE_SHARE = 0.9


def _check_columns(spec: PipelineSpec, scan: _Scan) -> None:
  """Without a schema: the columns the spec names are in the data, with
  usable kinds (by the same inference the ExampleGen makes)."""
  f = spec.features
  kinds = scan.kinds()
  source = spec.data.path
  records = spec.data.format == 'tfrecord'
  named = (
    [(f.label, 'features.label')]
    + [(k, f'features.{kind.name}') for k, kind in kinds_lib.columns(f)]
    + [(k, 'features.exclude') for k in f.exclude]
  )
  for name, key in named:
    if name not in kinds:
      what = (
        'a feature of the tf.Examples (features'
        if records
        else 'a column of the data (columns'
      )
      raise PreflightError(
        f'{source}: {key}: {name!r} is not {what}: {", ".join(kinds)})'
      )
  for name in f.numeric:
    if kinds[name] == csv_format.STRING:
      where, text = scan.first_text.get(name, (f'{source}: column {name}', ''))
      todo = (
        'write it as an int64_list or a float_list'
        if records
        else 'add the token to data.null_values if it means "missing"'
      )
      raise PreflightError(
        f'{where}: {text!r} is not a number, but features.numeric lists '
        f'{name}; {todo}, or make the column categorical'
      )
  for name in f.date:
    if kinds[name] != csv_format.STRING or not scan.looks_like_date(name):
      raise PreflightError(
        f'{source}: features.date: column {name} holds values that are not '
        'ISO-8601 dates (YYYY-MM-DD, or with a time: YYYY-MM-DDTHH:MM:SS); '
        'write them so, or list the column as another kind'
      )


def _check_names(spec: PipelineSpec, source: str) -> None:
  """The label's and every feature's name can name TensorFlow ops and Keras
  inputs (modules/features.py, NAME_PATTERN), checked here because nothing
  else fails before the Transform or the Trainer does. Excluded columns
  are no op's name, so any name does for them.

  Raises:
    PreflightError: naming the file, the column and a name to rename it to.
  """
  f = spec.features
  for name in [f.label, *spec.feature_keys]:
    if features_lib.is_usable_name(name):
      continue
    kind = kinds_lib.kind_of(f, name)
    key = (
      f'features.{kind.name}'
      if name != f.label and kind
      else ('features.label')
    )
    instead = '' if name == f.label else ', or add it to features.exclude'
    raise PreflightError(
      f'{source}: column {name[:40]!r} ({key}): TensorFlow op and Keras '
      'input names take letters, digits, _ . - (not _ or - first): rename '
      f'it (e.g. {features_lib.usable_name(name)[:40]}){instead}'
    )


def _check_bytes(spec: PipelineSpec, scan: _Scan) -> None:
  """tf.Examples' bytes features hold one thing each: encoded images (an
  image column, listed or recognised), or text. Other binary values are
  refused unless excluded: no kind reads them."""
  f = spec.features
  for name in scan.header or []:
    if name == f.label or name in f.exclude:
      continue
    listed = kinds_lib.kind_of(f, name)
    images = scan.image_values.get(name, 0)
    if name in scan.binary:
      raise PreflightError(
        f'{scan.binary[name]}: bytes that are no PNG, JPEG, GIF or BMP '
        'image and no UTF-8 text; add the feature to features.exclude, or '
        'write images or text'
      )
    if images and name in scan.first_text:
      where, text = scan.first_text[name]
      raise PreflightError(
        f'{where}: text ({text[:40]!r}) in a feature that holds encoded '
        'images in other examples; a feature holds images or text'
      )
    if listed is not None and listed.name == 'image' and not images:
      where, text = scan.first_text.get(
        name, (f'{spec.data.path}: feature {name}', '')
      )
      raise PreflightError(
        f'{where}: features.image lists {name}, but it holds text '
        f'({text[:40]!r}), not encoded image bytes (PNG, JPEG, GIF or '
        "BMP); ImportExampleGen reads no files: write each image's bytes "
        'into its tf.Example'
      )
    if listed is not None and listed.name != 'image' and images:
      raise PreflightError(
        f'{spec.data.path}: features.{listed.name}: {name} holds encoded '
        'images; list it under features.image'
      )


def _feature_columns(
  spec: PipelineSpec, scan: _Scan, kinds: Dict[str, str]
) -> Dict[str, List[str]]:
  """Each column but the label and the excluded, by the kind recognised
  from its values: kind name -> columns, in the data's order."""
  label = spec.features.label
  others = [
    c
    for c in scan.header or []
    if c != label and c not in spec.features.exclude
  ]
  columns: Dict[str, List[str]] = {}
  for name in others:
    kind = kinds_lib.recognise(scan.facts(name, kinds[name]))
    columns.setdefault(kind.name, []).append(name)
  return columns


def _id_like(resolved: PipelineSpec, scan: _Scan) -> Dict[str, int]:
  """The features with a distinct value in nearly every row (ID_LIKE_SHARE),
  as an id column has: name -> distinct values."""
  # A date, a text or an image is expected to take a value per row.
  expected_distinct = set(
    resolved.features.date + resolved.features.text + resolved.features.image
  )
  return {
    name: len(scan.distinct[name])
    for name in resolved.feature_keys
    if scan.rows
    and name not in expected_distinct
    and len(scan.distinct.get(name, ())) >= ID_LIKE_SHARE * scan.rows
  }
