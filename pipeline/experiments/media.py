"""A text or image column's pretrained encoder fine-tuned against the
project's learned encoders trained from scratch (`compare_media`;
pipeline/experiments/compare.py says how it measures).
"""

import collections
import contextlib
import dataclasses
import functools
import logging
import os
import tempfile
import time
from typing import (
  Any,
  Callable,
  Dict,
  Iterator,
  List,
  Mapping,
  Optional,
  Sequence,
  Tuple,
)

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

MEDIA_SIZES = (50, 200, 1000)  # compare_media's default labelled-set sizes
MEDIA_TEST_ROWS = 1000  # and its default test rows held out of the data
EVAL_BATCH = 64  # rows a prediction batch on the test set


@dataclasses.dataclass(frozen=True)
class Rows:
  """A CSV's rows as tf.Transform's instance dicts (each feature a list of
  at most one value, as a schema without fixed shapes has it; an image
  column's value the file's bytes), and each row's label as written."""

  instances: List[Dict[str, Any]]
  labels: List[Any]

  def take(self, indices: Sequence[int]) -> 'Rows':
    """The rows at `indices`, in that order."""
    return Rows(
      [self.instances[i] for i in indices], [self.labels[i] for i in indices]
    )


def pretrained_column(spec: PipelineSpec) -> Tuple[str, str, Any]:
  """(column, its kind's name, its PretrainedEncoder) of the one column
  with a pretrained encoder.

  Raises:
    CompareError: none, several, or one on a column that is not text or
      an image.
  """
  from modules import kinds  # pylint: disable=g-import-not-at-top

  pretrained = spec.model.pretrained()
  if len(pretrained) != 1:
    raise CompareError(
      f'{spec.source}: model.encoders: the comparison '
      'fine-tunes one pretrained encoder; the spec has '
      f'{len(pretrained)}'
    )
  ((column, encoder),) = pretrained.items()
  kind = kinds.kind_of(spec.features, column)
  if kind is None or not kind.encoded:
    raise CompareError(
      f'{spec.source}: model.encoders.{column}: {column!r} '
      'is no text or image column of the data'
    )
  return column, kind.name, encoder


def encoder_name(encoder: Any) -> str:
  """A pretrained encoder's short name: what its source names, less any
  folder (all-MiniLM-L6-v2, EfficientNetLite0)."""
  _, value = encoder.source
  return os.path.basename(value.rstrip('/')) or value


def raw_feature_spec(
  spec: PipelineSpec, column_kinds: Mapping[str, str]
) -> Dict[str, Any]:
  """The raw features as tf.Transform reads `Rows.instances`: each feature
  of variable length (a gap is no value; preprocessing_fn fills it by the
  spec's rules), the label one required value, each typed by its CSV kind
  (preflight's)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  dtypes = {
    csv_format.INT: tf.int64,
    csv_format.FLOAT: tf.float32,
    csv_format.STRING: tf.string,
  }
  result = {
    key: tf.io.VarLenFeature(dtypes[column_kinds[key]])
    for key in spec.feature_keys
  }
  label = spec.features.label
  result[label] = tf.io.FixedLenFeature([], dtypes[column_kinds[label]])
  return result


def read_rows(
  spec: PipelineSpec, path: str, column_kinds: Mapping[str, str]
) -> Rows:
  """The rows of one CSV file with the spec's features and label, parsed
  by the pipeline's CSV rules (components/csv_format.py); an image
  column's cells are file paths relative to the CSV, read as bytes.

  Raises:
    CompareError: a missing column, a cell that does not parse, a row
      without a label, an image file that cannot be read.
  """
  label = spec.features.label
  wanted = [*spec.feature_keys, label]
  images = set(spec.features.image)
  folder = os.path.dirname(os.path.abspath(path))
  nulls = spec.data.null_values
  instances, labels = [], []
  for number, cells in csv_records(path, wanted):
    try:
      values = {
        key: csv_format.value_of(cell, column_kinds[key], nulls)
        for key, cell in zip(wanted, cells, strict=True)
      }
      if values[label] is None:
        raise CompareError(f'{path}: row {number}: no {label} (the label)')
      instance = {
        key: _feature_value(value, folder if key in images else None)
        for key, value in values.items()
        if key != label
      }
    except csv_format.CellError as e:
      raise CompareError(f'{path}: row {number}: {e}') from None
    except OSError as e:
      raise CompareError(f'{path}: row {number}: image {e}') from None
    labels.append(values[label])
    instance[label] = _encoded(values[label])
    instances.append(instance)
  return Rows(instances, labels)


def _encoded(value: Any) -> Any:
  """Text as the bytes tf.Transform takes; a number as it is."""
  return value.encode() if isinstance(value, str) else value


def _feature_value(value: Any, image_folder: Optional[str]) -> List[Any]:
  """A feature's cell value as an instance dict holds it: [] when missing,
  else a list of the one value; for an image column (`image_folder`, the
  folder its paths are relative to) the file's bytes."""
  if value is None:
    return []
  if image_folder is not None:
    with open(os.path.join(image_folder, value.strip()), 'rb') as f:
      return [f.read()]
  return [_encoded(value)]


def balanced_order(
  labels: Sequence[Any], indices: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
  """`indices` in the order labelled sets are drawn: round by round, one
  row of each class that has rows left (classes in a fresh random order
  each round, each class's rows in a random order). Its first n are as
  class-balanced as the classes allow, and hold every class from n = the
  number of classes on."""
  by_class: Dict[Any, List[int]] = {}
  for index in rng.permutation(indices):
    by_class.setdefault(labels[index], []).append(int(index))
  queues = [by_class[c] for c in sorted(by_class, key=str)]
  order: List[int] = []
  for round_ in range(max(len(q) for q in queues)):
    for q in rng.permutation(len(queues)):
      if round_ < len(queues[q]):
        order.append(queues[q][round_])
  return np.asarray(order, np.int64)


# What tf.Transform warns of on every call here: that instance dicts are
# slower than Arrow record batches (on a few hundred rows they are not
# worth converting), and that an analyzer's cache key varies between
# traces (this run keeps no analyzer cache).
_TRANSFORM_NOISE = ('instance dicts', 'cache key varies on repeated tracing')


@contextlib.contextmanager
def _quiet_transform() -> Iterator[None]:
  """Holds back _TRANSFORM_NOISE while the transform runs."""
  logger = logging.getLogger('absl')

  def keep(record: logging.LogRecord) -> bool:
    return not any(text in record.getMessage() for text in _TRANSFORM_NOISE)

  logger.addFilter(keep)
  try:
    yield
  finally:
    logger.removeFilter(keep)


def transform(
  config: Any,
  feature_spec: Mapping[str, Any],
  train: Sequence[Mapping[str, Any]],
  test: Sequence[Mapping[str, Any]],
  folder: str,
) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
  """The real Transform, in this process: the project's preprocessing_fn
  analysed and applied on `train` (tf.Transform's
  AnalyzeAndTransformDataset), then applied to `test` (TransformDataset);
  the transform graph written to `folder` as the Transform component
  writes it (transform_fn/, transformed_metadata/), where the model's
  builders read its vocabularies. Returns the transformed train and test
  rows, one array per transformed feature.

  Args:
    config: the spec's TransformConfig.
    feature_spec: `raw_feature_spec`.
    train, test: `Rows.instances`.
    folder: an empty folder.
  """
  # pylint: disable=g-import-not-at-top
  import tensorflow_transform.beam as tft_beam
  from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

  from modules import preprocessing

  # pylint: enable=g-import-not-at-top
  metadata = dataset_metadata.DatasetMetadata(
    schema_utils.schema_from_feature_spec(dict(feature_spec))
  )
  function = functools.partial(
    preprocessing.preprocessing_fn, custom_config=config.to_custom_config()
  )
  # Applied to in-memory lists, each step runs a Beam pipeline of its own
  # (the DirectRunner, in this process) and hands back its outputs.
  with (
    _quiet_transform(),
    tft_beam.Context(temp_dir=os.path.join(folder, 'tmp')),
  ):
    (train_xf, _), transform_fn = (
      list(train),
      metadata,
    ) | 'Analyze' >> tft_beam.AnalyzeAndTransformDataset(function)
    test_xf, _ = (
      (list(test), metadata),
      transform_fn,
    ) | 'Apply' >> tft_beam.TransformDataset()
    _ = transform_fn | 'Write' >> tft_beam.WriteTransformFn(folder)
  return _stacked(train_xf), _stacked(test_xf)


def _stacked(instances: Sequence[Mapping[str, Any]]) -> Dict[str, np.ndarray]:
  return {
    name: np.stack([np.asarray(row[name]) for row in instances])
    for name in instances[0]
  }


def scratch_config(config: Any, column: str, encoder: str) -> Any:
  """The spec's TrainerConfig with `column` through the learned `encoder`
  and training from scratch."""
  from modules.config import TrainerConfig  # pylint: disable=g-import-not-at-top

  raw = config.to_custom_config()
  raw['model']['encoders'][column] = encoder
  raw['training']['mode'] = 'scratch'
  return TrainerConfig.from_custom_config(raw)


def train_media(
  config: Any,
  transform_folder: str,
  hparams: Mapping[str, Any],
  train: Mapping[str, np.ndarray],
  test: Mapping[str, np.ndarray],
  epochs: int,
  seed: int,
) -> Tuple[float, float]:
  """Builds the model `config` trains (modules/data.TrainingData.new_model
  over the transform graph in `transform_folder`: a dnn from scratch, or
  a Finetuner of the pretrained encoder), fits it on `train` for `epochs`
  and returns (test accuracy, training seconds)."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  import tf_keras as keras
  from tfx.components.trainer.fn_args_utils import FnArgs

  from modules import data as data_lib
  from modules import finetune

  # pylint: enable=g-import-not-at-top
  keras.backend.clear_session()  # each model on its own: no graph grows
  keras.utils.set_random_seed(seed)
  data = data_lib.TrainingData(
    FnArgs(transform_graph_path=transform_folder), config
  )
  model = data.new_model(hparams)
  names, label = data.model_inputs.names(), data.features.transformed_label
  rows = tf.data.Dataset.from_tensor_slices(
    ({n: train[n] for n in names}, train[label])
  )
  rows = rows.shuffle(len(train[label]), seed=seed).batch(
    int(hparams['batch_size'])
  )
  started = time.perf_counter()
  model.fit(rows, validation_data=None, epochs=epochs, verbose=0)
  seconds = time.perf_counter() - started
  network = model.model if isinstance(model, finetune.Finetuner) else model
  predicted = network.predict(
    tf.data.Dataset.from_tensor_slices({n: test[n] for n in names}).batch(
      EVAL_BATCH
    ),
    verbose=0,
  )
  return accuracy(data.task, predicted, test[label]), seconds


@dataclasses.dataclass(frozen=True)
class _Encoder:
  """The column compared and its pretrained encoder."""

  column: str
  kind: str  # its kind's name: text or image
  encoder: Any  # the spec's PretrainedEncoder
  name: str  # encoder_name's
  location: str  # encoders.locate's


def _pretrained(spec: PipelineSpec) -> _Encoder:
  """The spec's one pretrained encoder, located.

  Raises:
    CompareError: no single one on a text or image column, or one that
      cannot be found.
  """
  from modules import encoders  # pylint: disable=g-import-not-at-top

  column, kind, encoder = pretrained_column(spec)
  try:
    location = encoders.locate(column, kind, encoder)
  except encoders.EncoderError as e:
    raise CompareError(f'{spec.source}: {e}') from None
  return _Encoder(column, kind, encoder, encoder_name(encoder), location)


@dataclasses.dataclass(frozen=True)
class _Data:
  """The spec's rows, the test rows, and the rows labelled sets are drawn
  from (`pool`, indices of `rows`)."""

  rows: Rows
  pool: np.ndarray
  test: Rows
  source: str  # where the test rows come from, in words


def _data(
  spec: PipelineSpec,
  column_kinds: Mapping[str, str],
  test_csv: Optional[str],
  test_rows: int,
  seed: int,
) -> _Data:
  """The spec's data and the test set: `test_csv`'s rows (then every row
  of the data may be drawn), else `test_rows` rows held out at random."""
  data = [
    read_rows(spec, path, column_kinds)
    for path in preflight.csv_files(spec.data.csv)
  ]
  rows = Rows(
    [i for d in data for i in d.instances],
    [label for d in data for label in d.labels],
  )
  everything = np.arange(len(rows.labels))
  if test_csv:
    return _Data(
      rows,
      everything,
      read_rows(spec, test_csv, column_kinds),
      f'from {test_csv}',
    )
  if not 0 < test_rows < len(everything):
    raise CompareError(
      f'--test-rows {test_rows}: the data has '
      f'{len(everything)} rows; hold out fewer'
    )
  order = np.random.default_rng(seed).permutation(everything)
  held, pool = order[:test_rows], order[test_rows:]
  return _Data(
    rows, pool, rows.take(held), f'held out of the data at random (seed {seed})'
  )


def _checked_sizes(sizes: Sequence[int], data: _Data) -> List[int]:
  """`sizes` sorted without repeats, each between the number of classes in
  the pool and the pool's rows."""
  classes = len(set(data.rows.labels[i] for i in data.pool))
  result = sorted(set(int(s) for s in sizes))
  if not result or result[0] < classes or result[-1] > len(data.pool):
    raise CompareError(
      f'--sizes must lie in {classes}..{len(data.pool)}: at least one row '
      f'of each of the {classes} classes, at most the {len(data.pool)} '
      'rows to draw from'
    )
  return result


def _methods(
  spec: PipelineSpec, encoder: _Encoder
) -> Tuple[Dict[str, Any], Dict[str, Dict[str, Any]], int]:
  """(each method's TrainerConfig, each method's hyperparameters, the
  batch size): `scratch_<name>` for each learned encoder of the column's
  kind, then each fine-tuning strategy the spec lists; every one at its
  search space's defaults."""
  # pylint: disable=g-import-not-at-top
  from modules import encoders, search_space
  from modules.config import TrainerConfig

  # pylint: enable=g-import-not-at-top
  config = spec.module_config(TrainerConfig)
  learned = [n for n, (k, _) in encoders.LEARNED.items() if k == encoder.kind]
  configs = {
    f'{SCRATCH}_{n}': scratch_config(config, encoder.column, n) for n in learned
  }
  strategies = list(config.model.search_space.finetune.strategy)
  configs.update({s: config for s in strategies})
  tuned = search_space.resolve(None, config)
  hparams = {
    m: (
      dict(tuned, strategy=m)
      if m in strategies
      else search_space.resolve(None, c)
    )
    for m, c in configs.items()
  }
  return configs, hparams, int(tuned['batch_size'])


@dataclasses.dataclass(frozen=True)
class _Plan:
  """One comparison: what it trains on, how, and what it measured."""

  spec: PipelineSpec
  encoder: _Encoder
  data: _Data
  transform_config: Any  # the spec's TransformConfig
  feature_spec: Dict[str, Any]  # raw_feature_spec's
  configs: Dict[str, Any]  # _methods'
  hparams: Dict[str, Dict[str, Any]]
  batch_size: int
  sizes: List[int]
  repeats: int
  epochs: int
  seed: int
  progress: Callable[[str], None]

  def run(self) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(every method's run at every size and repeat, each transform's
    time)."""
    runs: List[Dict[str, Any]] = []
    transforms: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix='compare-') as workdir:
      for size in self.sizes:
        for repeat in range(self.repeats):
          timing, found = self._repeat(workdir, size, repeat, warm=not runs)
          transforms.append(timing)
          runs += found
    return runs, transforms

  def _repeat(
    self, workdir: str, size: int, repeat: int, warm: bool
  ) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """One labelled set drawn, transformed and trained on by every method:
    (the transform's time, the runs)."""
    # A repeat's own draw order: its sets grow by adding rows.
    chosen = balanced_order(
      self.data.rows.labels,
      self.data.pool,
      np.random.default_rng(self.seed + 1 + repeat),
    )[:size]
    folder = os.path.join(workdir, f'{size}-{repeat}')
    clock = time.perf_counter()
    train_xf, test_xf = transform(
      self.transform_config,
      self.feature_spec,
      self.data.rows.take(chosen).instances,
      self.data.test.instances,
      folder,
    )
    timing = {
      'labelled': size,
      'repeat': repeat,
      'seconds': round(time.perf_counter() - clock, 2),
    }
    methods = list(self.configs)
    if warm:
      # Untimed: TensorFlow's one-off start-up costs would otherwise land
      # on the first method timed.
      train_media(
        self.configs[methods[0]],
        folder,
        self.hparams[methods[0]],
        train_xf,
        test_xf,
        1,
        self.seed,
      )
    return timing, [
      self._train(method, folder, train_xf, test_xf, size, repeat)
      for method in methods
    ]

  def _train(
    self,
    method: str,
    folder: str,
    train_xf: Dict[str, np.ndarray],
    test_xf: Dict[str, np.ndarray],
    size: int,
    repeat: int,
  ) -> Dict[str, Any]:
    """One method's run, said to `progress`."""
    score, seconds = train_media(
      self.configs[method],
      folder,
      self.hparams[method],
      train_xf,
      test_xf,
      self.epochs,
      self.seed + repeat,
    )
    self.progress(
      f'  {size:>4} labelled  repeat {repeat}  {method:<22} '
      f'accuracy {score:.3f}  {seconds:.1f}s'
    )
    return {
      'method': method,
      'labelled': size,
      'repeat': repeat,
      'seed': self.seed + repeat,
      'accuracy': round(score, 4),
      'seconds': round(seconds, 2),
    }

  def settings(
    self, command: str, output: str, majority: float, seconds: float
  ) -> Dict[str, Any]:
    """The report's settings: how the comparison was run."""
    spec, encoder = self.spec, self.encoder
    return {
      'command': command,
      'spec': spec.source,
      'data': spec.data.csv,
      'column': encoder.column,
      'kind': encoder.kind,
      'label': spec.features.label,
      'encoder': encoder.name,
      'encoder_location': encoder.location,
      'input': _input_text(encoder, self.transform_config.preprocessing),
      'pool_rows': int(len(self.data.pool)),
      'test': {
        'source': self.data.source,
        'rows': len(self.data.test.labels),
        'majority_share': majority,
      },
      'sizes': self.sizes,
      'repeats': self.repeats,
      'epochs': self.epochs,
      'batch_size': self.batch_size,
      'early_stopping': 'off: no validation split, every labelled row trains',
      'seed': self.seed,
      'methods': list(self.configs),
      'hyperparameters': self.hparams,
      'plot': output + '.png',
      'written': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
      'machine': machine(),
      'seconds': round(seconds, 1),
    }

  def report(self, command: str, output: str, started: float) -> Dict[str, Any]:
    """Runs every method at every size and repeat and returns the report
    (`started`: time.perf_counter() when the comparison began)."""
    runs, transforms = self.run()
    summary = verdict.summarize(runs)
    majority = _majority_share(self.data.test.labels)
    return {
      'settings': self.settings(
        command, output, majority, time.perf_counter() - started
      ),
      'runs': runs,
      'transforms': transforms,
      'summary': summary,
      'conclusion': verdict.media_conclusion(
        summary, self.encoder.name, majority, len(self.data.test.labels)
      ),
    }


def _input_text(encoder: _Encoder, prep: Any) -> str:
  """What the models see of the column, in words (`prep`: the spec's
  preprocessing section)."""
  from modules import encoders  # pylint: disable=g-import-not-at-top

  if encoder.kind == 'text':
    return (
      f'up to {encoder.encoder.max_tokens} wordpieces a text for '
      f'{encoder.name}, its first {prep.text.max_tokens} words for the '
      'learned encoders'
    )
  size_for = functools.partial(encoders.image_size_for, prep.image_size)
  return (
    f'images resized to {size_for(True)} px for {encoder.name}, '
    f'{size_for(False)} px for the learned cnn'
  )


def _majority_share(labels: Sequence[Any]) -> float:
  """The share of the most frequent label: what always answering it
  scores."""
  counts = collections.Counter(labels)
  return round(max(counts.values()) / len(labels), 4)


def _plan(
  spec: PipelineSpec,
  column_kinds: Mapping[str, str],
  sizes: Sequence[int],
  repeats: int,
  epochs: int,
  test_csv: Optional[str],
  test_rows: int,
  seed: int,
  progress: Callable[[str], None],
) -> _Plan:
  """The comparison `compare_media` runs: its encoder, data (test rows
  held out) and methods, with `sizes` checked against the data.

  Raises:
    CompareError: sizes or a test set that do not fit the data, or data
      that cannot be read.
  """
  from modules.config import TransformConfig  # pylint: disable=g-import-not-at-top

  encoder = _pretrained(spec)
  feature_spec = raw_feature_spec(spec, column_kinds)
  data = _data(spec, column_kinds, test_csv, test_rows, seed)
  sizes = _checked_sizes(sizes, data)
  return _Plan(
    spec,
    encoder,
    data,
    spec.module_config(TransformConfig),
    feature_spec,
    *_methods(spec, encoder),
    sizes,
    repeats,
    epochs,
    seed,
    progress,
  )


def compare_media(
  spec: PipelineSpec,
  column_kinds: Mapping[str, str],
  sizes: Sequence[int],
  repeats: int,
  epochs: int,
  output: str,
  command: str,
  test_rows: int = MEDIA_TEST_ROWS,
  test_csv: Optional[str] = None,
  seed: int = 0,
  progress: Callable[[str], None] = print,
) -> Dict[str, Any]:
  """Runs the comparison of a spec whose text or image column has a
  pretrained encoder (pipeline/experiments/compare.py says how) and writes
  <output>.{json,md,png}.

  Args:
    spec: the spec, resolved against its data (preflight.run_preflight).
    column_kinds: each column's CSV kind (preflight's).
    sizes: labelled-set sizes; each at least the number of classes.
    repeats: labelled sets drawn per size.
    epochs: epochs every model trains.
    output: the path prefix of the report.
    command: the command line, for the report.
    test_rows: rows held out of the spec's data for the test set, when
      `test_csv` is not given.
    test_csv: a CSV of test rows with the spec's columns (paths of images
      relative to it); then every row of the spec's data may be drawn.
    seed: the seed of the hold-out and of each repeat's draws and models.
    progress: called with a line per run.

  Raises:
    CompareError: sizes or a test set that do not fit the data, or data
      that cannot be read.
  """
  started = time.perf_counter()
  if repeats < 1 or epochs < 1:
    raise CompareError(
      f'--repeats {repeats}, --epochs {epochs}: give at least 1 of each'
    )
  plan = _plan(
    spec,
    column_kinds,
    sizes,
    repeats,
    epochs,
    test_csv,
    test_rows,
    seed,
    progress,
  )
  report = plan.report(command, output, started)
  report_lib.write_report(report, output)
  return report
