"""The bundled data sets, exported from packages already installed.

No download: scikit-learn ships the Wisconsin diagnostic breast-cancer data.
The exported CSV is committed under data/; `python -m pipeline.datasets`
rewrites it, and tests check the committed file still matches the source.
"""

import csv
import os
import re
from typing import Iterator, List, Sequence

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
  for features, target in zip(bunch.data, bunch.target):
    yield [repr(float(v)) for v in features] + [str(int(target == malignant))]


def write_breast_cancer_csv(path: str) -> str:
  """Writes the data set to `path` (a .csv file) and returns the path."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'w', newline='') as f:
    writer = csv.writer(f, lineterminator='\n')
    writer.writerow(breast_cancer_columns())
    writer.writerows(breast_cancer_rows())
  os.replace(tmp, path)
  return path


DEFAULT_CSV = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    'data', 'breast_cancer', 'breast_cancer.csv')


if __name__ == '__main__':
  print(write_breast_cancer_csv(DEFAULT_CSV))
