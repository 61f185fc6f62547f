"""A numeric spec's base model fine-tuned against the same architecture
trained from scratch (`compare`; pipeline/experiments/compare.py says how
it measures).
"""

import dataclasses
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from components import csv_format
from pipeline.definition.spec import PipelineSpec
from pipeline.experiments import report as report_lib
from pipeline.experiments import verdict
from pipeline.experiments.common import (
  SCRATCH,
  CompareError,
  accuracy,
  csv_records,
  machine,
)
from pipeline.runners import preflight

Table = Tuple[np.ndarray, np.ndarray]  # features [rows, features], labels


def load_table(spec: PipelineSpec) -> Table:
  """All rows of the spec's CSV data, read by the pipeline's CSV rules:
  numeric features (in spec order) as float32 [rows, features] and the
  label as int64 [rows].

  Raises:
    CompareError: categorical features, or a cell that is missing or does
      not parse (the comparison takes whole rows).
  """
  if spec.features.categorical:
    raise CompareError(
      f'{spec.source}: features.categorical: the comparison '
      'takes numeric features only'
    )
  columns = [*spec.features.numeric, spec.features.label]
  kinds = [csv_format.FLOAT] * (len(columns) - 1) + [csv_format.INT]
  nulls = spec.data.null_values
  features, labels = [], []
  for path in preflight.csv_files(spec.data.csv):
    for number, cells in csv_records(path, columns):
      try:
        values = [
          csv_format.value_of(cell, kind, nulls)
          for cell, kind in zip(cells, kinds, strict=True)
        ]
      except csv_format.CellError as e:
        raise CompareError(f'{path}: row {number}: {e}') from None
      if None in values:
        missing = columns[values.index(None)]
        raise CompareError(
          f'{path}: row {number}: no {missing}; the '
          'comparison takes rows with every value'
        )
      features.append(values[:-1])
      labels.append(values[-1])
  return np.asarray(features, np.float32), np.asarray(labels, np.int64)


def scale(
  method: str, fit_on: np.ndarray, *arrays: np.ndarray
) -> List[np.ndarray]:
  """The spec's numeric preprocessing, fitted on the labelled set only (as
  Transform fits on the training split)."""
  if method == 'none':
    return list(arrays)
  if method == 'z_score':
    mean, std = fit_on.mean(0), fit_on.std(0)
    std = np.where(std > 0, std, 1.0)
    return [(a - mean) / std for a in arrays]
  low, high = fit_on.min(0), fit_on.max(0)
  span = np.where(high > low, high - low, 1.0)
  return [(a - low) / span for a in arrays]


def split(
  rows: int, test_fraction: float, seed: int
) -> Tuple[np.ndarray, np.ndarray]:
  """(test indices, labelled pool indices in draw order): one fixed shuffle,
  so every method and size is scored on the same test rows and a larger
  labelled set contains every smaller one."""
  order = np.random.default_rng(seed).permutation(rows)
  test_rows = int(round(rows * test_fraction))
  return order[:test_rows], order[test_rows:]


def _dataset(
  spec: PipelineSpec,
  x: np.ndarray,
  y: np.ndarray,
  batch_size: int,
  shuffle_seed: Optional[int] = None,
):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from modules import features as features_lib  # pylint: disable=g-import-not-at-top

  names = [features_lib.transformed_name(k) for k in spec.features.numeric]
  columns = {name: x[:, i : i + 1] for i, name in enumerate(names)}
  ds = tf.data.Dataset.from_tensor_slices((columns, y.reshape(-1, 1)))
  if shuffle_seed is not None:
    ds = ds.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
  return ds.batch(int(batch_size))


def hyperparameters(spec: PipelineSpec) -> Dict[str, Any]:
  """The spec's default fine-tuning hyperparameters (first/min values)."""
  from modules import search_space  # pylint: disable=g-import-not-at-top

  return search_space.resolve(None, spec.model.search_space, 'finetune')


def train_one(
  spec: PipelineSpec,
  base_path: str,
  method: str,
  hparams: Mapping[str, Any],
  train: Tuple[np.ndarray, np.ndarray],
  test: Tuple[np.ndarray, np.ndarray],
  epochs: int,
  seed: int,
) -> Dict[str, Any]:
  """Trains one model by `method` and scores it on `test`."""
  import tf_keras as keras  # pylint: disable=g-import-not-at-top

  from modules import finetune  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(seed)
  inputs = _inputs(spec)
  base = finetune.load_checked(base_path, inputs)
  params = dict(hparams)
  scratch = method == SCRATCH
  if scratch:
    # Same layers, fresh weights. Cloned from the graph alone: a Trainer's
    # model also tracks its Transform layer, which cannot be cloned.
    base = keras.models.clone_model(keras.Model(base.input, base.output))
    params.update(strategy='full', backbone_lr_scale=1.0)
  else:
    params['strategy'] = method
  tuner = finetune.Finetuner(
    base, inputs, params, inference_backbone=not scratch
  )
  batch = int(params['batch_size'])
  started = time.perf_counter()
  tuner.fit(
    _dataset(spec, *train, batch, shuffle_seed=seed),
    validation_data=None,
    epochs=epochs,
  )
  seconds = time.perf_counter() - started
  predicted = tuner.model.predict(_dataset(spec, *test, 256), verbose=0)
  return {
    'method': method,
    'labelled': int(len(train[1])),
    'seed': seed,
    'accuracy': round(accuracy(spec.task, predicted, test[1]), 4),
    'seconds': round(seconds, 2),
  }


def linear_probe(
  spec: PipelineSpec,
  base_path: str,
  train: Tuple[np.ndarray, np.ndarray],
  test: Tuple[np.ndarray, np.ndarray],
) -> Dict[str, float]:
  """Test accuracy of a logistic regression on the raw features and on the
  base model's backbone features: how much the base's representation helps
  the target task before any training of the network."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top

  from modules import features as features_lib  # pylint: disable=g-import-not-at-top
  from modules import finetune  # pylint: disable=g-import-not-at-top

  backbone = finetune.split_backbone(finetune.load_base_model(base_path))
  names = [features_lib.transformed_name(k) for k in spec.features.numeric]

  def embed(x):
    out = backbone.predict(
      {n: x[:, i : i + 1] for i, n in enumerate(names)}, verbose=0
    )
    return out.reshape(len(x), -1)

  def score(fit_x, test_x):
    model = LogisticRegression(max_iter=5000).fit(fit_x, train[1])
    return round(float(model.score(test_x, test[1])), 4)

  return {
    'raw_features': score(train[0], test[0]),
    'base_features': score(embed(train[0]), embed(test[0])),
  }


def check_base(spec: PipelineSpec, path: str) -> None:
  """`--base`: the model at `path` loads and takes the spec's features, as
  `train_one` feeds them. `spec` is resolved against its data (the class
  count).

  Raises:
    CompareError: naming the path and what to give instead (one line).
  """
  from modules import finetune  # pylint: disable=g-import-not-at-top

  try:
    finetune.load_checked(path, _inputs(spec))
  except finetune.BaseModelError as e:
    raise CompareError(
      f'--base: {e}; give the folder of a Keras '
      "SavedModel that takes the spec's features (a "
      "Trainer's model)"
    ) from None


def _inputs(spec: PipelineSpec) -> Any:
  """The model inputs of the spec's transformed numeric features."""
  # pylint: disable=g-import-not-at-top
  from modules import features as features_lib
  from modules import model as model_lib

  # pylint: enable=g-import-not-at-top
  return model_lib.ModelInputs(
    numeric=[features_lib.transformed_name(k) for k in spec.features.numeric],
    categorical={},
    task=spec.task,
  )


@dataclasses.dataclass(frozen=True)
class _Comparison:
  """What every run of one comparison shares: the data, its fixed test
  rows and the pool labelled sets are drawn from, the methods and their
  hyperparameters."""

  spec: PipelineSpec
  base_path: str
  table: Table
  test_idx: np.ndarray
  pool: np.ndarray
  methods: List[str]
  hparams: Dict[str, Any]
  epochs: int
  seed: int
  progress: Callable[[str], None]

  def warm_up(self, size: int) -> None:
    """One untimed run first: TensorFlow's one-off start-up costs
    (tracing, kernels) would otherwise land on whichever method is timed
    first."""
    x, y = self.table
    warm, test = self.pool[:size], self.test_idx[:10]
    train_one(
      self.spec,
      self.base_path,
      self.methods[0],
      self.hparams,
      (x[warm], y[warm]),
      (x[test], y[test]),
      1,
      self.seed,
    )

  def labelled_set(self, size: int, repeat: int) -> Tuple[Table, Table]:
    """(train, test) of one repeat, scaled as the spec preprocesses: each
    repeat draws its own labelled set of `size` rows from the pool."""
    x, y = self.table
    chosen = np.random.default_rng(self.seed + 1 + repeat).choice(
      self.pool, size, replace=False
    )
    x_train, x_test = scale(
      self.spec.preprocessing.numeric, x[chosen], x[chosen], x[self.test_idx]
    )
    return (x_train, y[chosen]), (x_test, y[self.test_idx])

  def measure(
    self, sizes: List[int], repeats: int
  ) -> Tuple[List[Dict[str, Any]], List[Dict[str, float]]]:
    """(every method's run at every size and repeat, the linear probes of
    the smallest size's labelled sets)."""
    runs, probes = [], []
    for size in sizes:
      for repeat in range(repeats):
        train, test = self.labelled_set(size, repeat)
        if size == sizes[0]:
          probes.append(self.probe(train, test, size, repeat))
        runs += self.runs(train, test, size, repeat)
    return runs, probes

  def settings(
    self,
    command: str,
    output: str,
    sizes: List[int],
    repeats: int,
    test_fraction: float,
  ) -> Dict[str, Any]:
    """The report's settings: how the comparison was run."""
    return {
      'command': command,
      'spec': self.spec.source,
      'data': self.spec.data.csv,
      'base_model': self.base_path,
      'sizes': sizes,
      'repeats': repeats,
      'epochs': self.epochs,
      'test_examples': int(len(self.test_idx)),
      'test_fraction': test_fraction,
      'seed': self.seed,
      'methods': self.methods,
      'hyperparameters': self.hparams,
      'plot': output + '.png',
      'written': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
      'machine': machine(),
    }

  def probe(
    self, train: Table, test: Table, size: int, repeat: int
  ) -> Dict[str, float]:
    """`linear_probe` on one labelled set, said to `progress`."""
    found = linear_probe(self.spec, self.base_path, train, test)
    self.progress(
      f'  {size:>4} labelled  repeat {repeat}  linear probe: raw '
      f'{found["raw_features"]:.3f}, base features '
      f'{found["base_features"]:.3f}'
    )
    return found

  def runs(
    self, train: Table, test: Table, size: int, repeat: int
  ) -> List[Dict[str, Any]]:
    """Every method trained on one labelled set and scored, each said to
    `progress`."""
    runs = []
    for method in self.methods:
      run = train_one(
        self.spec,
        self.base_path,
        method,
        self.hparams,
        train,
        test,
        self.epochs,
        seed=self.seed + repeat,
      )
      run['repeat'] = repeat
      runs.append(run)
      self.progress(
        f'  {size:>4} labelled  repeat {repeat}  {method:<20} '
        f'accuracy {run["accuracy"]:.3f}  {run["seconds"]:.1f}s'
      )
    return runs


def _checked_sizes(
  sizes: Sequence[int], pool: np.ndarray, test_idx: np.ndarray
) -> List[int]:
  """`sizes` sorted without repeats, each between 1 and the pool's rows."""
  result = sorted(set(int(s) for s in sizes))
  if not result or result[0] < 1 or result[-1] > len(pool):
    raise CompareError(
      f'--sizes must lie in 1..{len(pool)} (the rows left '
      f'after holding out {len(test_idx)} for testing)'
    )
  return result


def compare(
  spec: PipelineSpec,
  base_path: str,
  sizes: Sequence[int],
  repeats: int,
  epochs: int,
  output: str,
  command: str,
  test_fraction: float = 0.4,
  seed: int = 0,
  progress: Callable[[str], None] = print,
) -> Dict[str, Any]:
  """Runs the comparison of a numeric spec against a base model and writes
  <output>.{json,md,png}.

  Raises:
    CompareError: sizes that do not fit the data, or unusable features.
  """
  from modules import finetune  # pylint: disable=g-import-not-at-top

  table = load_table(spec)
  test_idx, pool = split(len(table[1]), test_fraction, seed)
  sizes = _checked_sizes(sizes, pool, test_idx)
  setup = _Comparison(
    spec,
    base_path,
    table,
    test_idx,
    pool,
    [SCRATCH] + list(finetune.STRATEGIES),
    hyperparameters(spec),
    epochs,
    seed,
    progress,
  )
  setup.warm_up(sizes[0])
  runs, probes = setup.measure(sizes, repeats)
  summary = verdict.summarize(runs)
  report = {
    'settings': setup.settings(command, output, sizes, repeats, test_fraction),
    'runs': runs,
    'linear_probes': probes,
    'summary': summary,
    'conclusion': verdict.conclusion(summary, probes),
  }
  report_lib.write_report(report, output)
  return report
