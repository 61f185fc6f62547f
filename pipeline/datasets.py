"""The bundled data sets, exported from packages already installed.

No download: scikit-learn ships the Wisconsin diagnostic breast-cancer data
and the handwritten digits (1,797 8x8 images). The exported CSVs are committed
under data/; `python -m pipeline.datasets` rewrites them, and tests check the
committed files still match the source.

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


if __name__ == '__main__':
  print(write_breast_cancer_csv(DEFAULT_CSV))
  for name in DIGITS_TASKS:
    print(write_digits_csv(name))
