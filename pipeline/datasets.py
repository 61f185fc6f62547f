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
"""

import csv
import os
import re
from typing import Iterator, List, Optional, Sequence

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
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
DEFAULT_CSV = os.path.join(DATA_DIR, 'breast_cancer', 'breast_cancer.csv')

DIGITS_LABEL = 'label'
DIGITS_SIDE = 8
DIGITS_TASKS = {'digits_source': range(0, 5), 'digits_target': range(5, 10)}


def digits_columns() -> List[str]:
  """px_<row>_<col> for the 8x8 pixels in row-major order, label last."""
  return [f'px_{r}_{c}' for r in range(DIGITS_SIDE)
          for c in range(DIGITS_SIDE)] + [DIGITS_LABEL]


def digits_rows(task: str) -> Iterator[Sequence[str]]:
  """Yields the rows of `task` (a DIGITS_TASKS key): pixels / 16, then the
  digit minus the task's first digit."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = DIGITS_TASKS[task]
  bunch = load_digits()
  for pixels, target in zip(bunch.data, bunch.target, strict=True):
    if int(target) in digits:
      yield [repr(float(v) / 16.0) for v in pixels] + [
          str(int(target) - digits[0])]


def _write_csv(path: str, header: List[str],
               rows: Iterator[Sequence[str]]) -> str:
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
  return _write_csv(path or digits_csv(task), digits_columns(),
                    digits_rows(task))


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
PENGUIN_COLUMNS = ['culmen_length_mm', 'culmen_depth_mm', 'flipper_length_mm',
                   'body_mass_g', 'species']


def penguin_source() -> str:
  """TFX's penguin test data folder (Split-train, Split-eval TFRecords)."""
  import tfx  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(tfx.__file__), 'components', 'testdata',
                      'penguin', 'data')


def penguin_rows() -> Iterator[Sequence[str]]:
  """Yields TFX's 334 penguins (train split, then eval) as CSV cells."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for split in ('Split-train', 'Split-eval'):
    files = sorted(tf.io.gfile.glob(os.path.join(penguin_source(), split,
                                                 '*.gz')))
    for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
      features = tf.train.Example.FromString(record.numpy()).features.feature
      yield [repr(features[c].float_list.value[0]) for c in
             PENGUIN_COLUMNS[:-1]] + [
                 str(features['species'].int64_list.value[0])]


def write_penguin_csv(path: str = PENGUIN_CSV) -> str:
  return _write_csv(path, PENGUIN_COLUMNS, penguin_rows())


PENGUIN_SCHEMA = os.path.join(os.path.dirname(DATA_DIR), 'schemas', 'penguin',
                              'schema.pbtxt')


def penguin_schema_source() -> str:
  """TFX's schema for its penguin test data, as TFX wrote it."""
  return os.path.join(os.path.dirname(penguin_source()), 'schema',
                      'schema.pbtxt')


def write_penguin_schema(path: str = PENGUIN_SCHEMA) -> str:
  """Copies TFX's penguin schema unchanged (a TFX-written schema)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(penguin_schema_source(), 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data)
  return path


if __name__ == '__main__':
  print(write_breast_cancer_csv(DEFAULT_CSV))
  for name in DIGITS_TASKS:
    print(write_digits_csv(name))
  print(write_cars_csv())
  print(write_penguin_csv())
  print(write_penguin_schema())
