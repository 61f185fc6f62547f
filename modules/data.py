"""Reading transformed examples into tf.data for the Tuner and the Trainer."""

import collections
import dataclasses
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import DataAccessor
from tfx_bsl.public import tfxio

from modules import encoders, finetune, preprocessing
from modules import model as model_lib
from modules.config import TrainerConfig, TunerConfig

# A split whose every feature the model takes has a fixed shape (what this
# project's preprocessing_fn makes) is parsed once per process and served
# from memory when its parsed columns (the model's features and the label)
# come to at most this: every later epoch, every trial of a search and the
# Trainer after the Tuner (`_SHARED`) then skip reading and parsing it. The
# size is counted while parsing; a split that passes it is dropped there and
# streamed from its files every epoch instead. The default data at 1M rows:
# train 800k rows x 31 float32 = 99 MiB parsed (143 MiB of gzipped files),
# eval 25 MiB.
CACHE_MAX_PARSED_BYTES = 256 << 20
# Files beyond this are streamed without trying to hold them (gzipped
# tf.Examples of floats are 1.4 times their parsed size here).
CACHE_MAX_FILE_BYTES = 2 << 30
# A split with a feature of no fixed shape is parsed by TFXIO, whose parsed
# size is not counted here: it is held (TFXIO's dataset cached) when its
# files total at most this.
TFXIO_CACHE_MAX_FILE_BYTES = 32 << 20
SHUFFLE_BUFFER = tfxio.TensorFlowDatasetOptions(
  batch_size=1
).shuffle_buffer_size
# A split in memory with at least this many rows is batched by gathering
# (_Columns).
GATHER_MIN_ROWS = 4096
# Records parsed at once while a split is read into memory: large batches
# keep the per-batch cost of parse_example small against its per-record
# cost.
LOAD_BATCH = 16384
# Files up to this are parsed eagerly, one batch after another: on a few
# thousand rows tf.data's threads cost more to start than they save.
SMALL_FILE_BYTES = 4 << 20
# The process keeps what it made of the last splits it read (their columns,
# or that they stream), so the Trainer finds what the Tuner parsed
# (LocalDagRunner runs both in one process): train and eval.
SHARED_SPLITS = 2


def _in_memory_options() -> tf.data.Options:
  """How a split served from memory is batched: without tf.data's graph
  rewrites, its autotuning and a prefetch thread. Keras makes a new
  iterator every epoch, for training and again for validation, and each
  would rewrite the dataset's graph and make and join those threads; with
  the rows already in memory there is no reading for them to overlap, so
  they only cost time, and more so when parallel searches share the
  cores."""
  options = tf.data.Options()
  options.autotune.enabled = False
  options.experimental_optimization.apply_default_optimizations = False
  return options


def _row_by_row(
  rows: tf.data.Dataset, batch_size: int, shuffle: bool, seed: int
) -> tf.data.Dataset:
  """One epoch of `rows` (a dataset of single rows in memory), shuffled
  when asked with TFXIO's buffer and `seed`, as TFXIO batches the files."""
  if shuffle:
    rows = rows.shuffle(SHUFFLE_BUFFER, seed)
  return rows.batch(batch_size).with_options(_in_memory_options())


def files_bytes(file_patterns: List[str]) -> int:
  """The bytes of the files matched by `file_patterns` (local or remote)."""
  return sum(
    tf.io.gfile.stat(path).length for path in split_files(file_patterns)
  )


def split_files(file_patterns: List[str]) -> List[str]:
  """The files `file_patterns` match, in the order TFXIO lists them
  unshuffled (sorted, pattern by pattern)."""
  return [
    path
    for pattern in file_patterns
    for path in sorted(tf.io.gfile.glob(pattern))
  ]


def _compression(files: List[str]) -> str:
  """TFRecordDataset's compression for `files`, by name as TFXIO tells it."""
  zipped = {path.endswith('.gz') for path in files}
  if len(zipped) > 1:
    raise ValueError(f'some of {files} are gzipped and some not')
  return 'GZIP' if zipped == {True} else ''


def _parsed_bytes(tensor: tf.Tensor) -> int:
  """What `tensor` holds in memory; a string's bytes plus TensorFlow's
  24-byte tstring each."""
  if tensor.dtype == tf.string:
    return int(tf.reduce_sum(tf.strings.length(tensor))) + 24 * int(
      tf.size(tensor)
    )
  return tensor.shape.num_elements() * tensor.dtype.size


def input_fn(
  file_pattern: List[str],
  data_accessor: DataAccessor,
  tf_transform_output: tft.TFTransformOutput,
  label_key: str,
  batch_size: int,
  shuffle: bool = True,
  seed: int = 42,
) -> tf.data.Dataset:
  """One pass (one epoch) over transformed examples as (features, label),
  by TFXIO."""
  return data_accessor.tf_dataset_factory(
    file_pattern,
    tfxio.TensorFlowDatasetOptions(
      batch_size=int(batch_size),
      label_key=label_key,
      num_epochs=1,
      shuffle=shuffle,
      shuffle_seed=seed,
    ),
    tf_transform_output.transformed_metadata.schema,
  )


class _Columns:
  """A split's rows in memory, as columns (the features of one dtype and
  one value each side by side in a matrix) and the label's, batched into
  epochs the way `Split.stream` batches the files: the same rows in each
  batch, in the same order.

  A few thousand rows are shuffled and batched row by row (tf.data's
  `shuffle` and `batch` over slices): cheap to set up, which matters with
  a new dataset per trial. From GATHER_MIN_ROWS rows on, the row indices
  are shuffled instead (the same buffer and seed, hence the same order)
  and each batch is gathered at once from the columns: a one-off trace,
  then a few ops per batch, where row by row costs a little every row
  every epoch; below GATHER_MIN_ROWS the trace costs more than it saves.
  The columns of one dtype and one value each ([rows, 1]: every numeric
  feature) are kept side by side in one matrix, gathered once and split
  per batch, fewer ops than a gather per column.
  """

  def __init__(self, columns: Dict[str, tf.Tensor], label: tf.Tensor):
    self.count = int(label.shape[0])
    groups: Dict[tf.DType, List[str]] = {}
    for name in sorted(columns):
      column = columns[name]
      if column.shape.rank == 2 and column.shape[1] == 1:
        groups.setdefault(column.dtype, []).append(name)
    self._matrices = [
      (names, tf.concat([columns[n] for n in names], axis=1))
      for names in groups.values()
      if len(names) > 1
    ]
    stacked = {n for names, _ in self._matrices for n in names}
    self._singles = {n: c for n, c in columns.items() if n not in stacked}
    self._label = label
    self.nbytes = (
      sum(_parsed_bytes(m) for _, m in self._matrices)
      + sum(_parsed_bytes(c) for c in self._singles.values())
      + _parsed_bytes(label)
    )
    self._slices = None
    self._gather = None

  def _columns(self) -> Dict[str, tf.Tensor]:
    columns = dict(self._singles)
    for names, matrix in self._matrices:
      columns.update(
        zip(names, tf.split(matrix, len(names), axis=1), strict=True)
      )
    return columns

  def _gatherer(self):
    """The batch gatherer, traced once."""
    singles, matrices, label = self._singles, self._matrices, self._label

    @tf.function(
      input_signature=[tf.TensorSpec([None], tf.int64)], autograph=False
    )
    def gather(rows):
      features = {
        name: tf.gather(column, rows) for name, column in singles.items()
      }
      for names, matrix in matrices:
        parts = tf.split(tf.gather(matrix, rows), len(names), axis=1)
        features.update(zip(names, parts, strict=True))
      return features, tf.gather(label, rows)

    return gather

  def batches(
    self, batch_size: int, shuffle: bool, seed: int
  ) -> tf.data.Dataset:
    if self.count < GATHER_MIN_ROWS:
      if self._slices is None:
        self._slices = tf.data.Dataset.from_tensor_slices(
          (self._columns(), self._label)
        )
      return _row_by_row(self._slices, batch_size, shuffle, seed)
    if self._gather is None:
      self._gather = self._gatherer()
    order = tf.data.Dataset.range(self.count)
    if shuffle:
      order = order.shuffle(SHUFFLE_BUFFER, seed)
    return (
      order.batch(batch_size)
      .map(self._gather)
      .with_options(_in_memory_options())
    )


_SHARED: 'collections.OrderedDict[Tuple, Optional[_Columns]]' = (
  collections.OrderedDict()
)


class Split:
  """One split of transformed examples whose features (`spec`, each of a
  fixed shape) are parsed here: held in memory as columns when they fit
  CACHE_MAX_PARSED_BYTES (`held`), else streamed from the files every
  epoch. Either way an epoch is the files' records in their order (file
  by file, `split_files`), shuffled when asked with TFXIO's buffer and the
  seed, batched: the same batches in the same order from memory as from the
  files. For a split of one file that is TFXIO's order too; TFXIO also
  shuffles the order of several files each epoch, which this does not:
  the records are shuffled either way, so a model sees the same mix.

  Streaming reads the files one after another, shuffles the serialized
  records, and parses whole batches on tf.data's threads, ahead of
  training. TFXIO's dataset does less well here: its reader hands every
  record through a parallel interleave, which costs more than reading the
  files in turn, and it parses on one thread.
  """

  def __init__(
    self,
    file_patterns: List[str],
    spec: Mapping[str, tf.io.FixedLenFeature],
    label_key: str,
  ):
    self.files = split_files(file_patterns)
    self._patterns = list(file_patterns)  # for the error without files
    self._spec = dict(spec)
    self._label_key = label_key
    self.held = self._shared_or_held()

  def _key(self) -> Tuple:
    stats = [(path, tf.io.gfile.stat(path)) for path in self.files]
    return (
      tuple((path, s.length, s.mtime_nsec) for path, s in stats),
      tuple(sorted(self._spec)),
      self._label_key,
      CACHE_MAX_PARSED_BYTES,
      CACHE_MAX_FILE_BYTES,
    )

  def _shared_or_held(self) -> Optional[_Columns]:
    """What the process holds for these files already, else `_hold`'s."""
    if not self.files:
      return None
    key = self._key()
    if key in _SHARED:
      _SHARED.move_to_end(key)
      return _SHARED[key]
    held = self._hold()
    _SHARED[key] = held
    while len(_SHARED) > SHARED_SPLITS:
      _SHARED.popitem(last=False)
    return held

  def _parse(self, records: tf.Tensor):
    return tf.io.parse_example(records, self._spec)

  def _hold(self) -> Optional[_Columns]:
    """The split's columns, read file by file, or None when they would
    pass CACHE_MAX_PARSED_BYTES (what was parsed is dropped) or the files
    pass CACHE_MAX_FILE_BYTES.

    The files are read and parsed in parallel (unless they are small), a
    file per thread, batches of LOAD_BATCH records each, rather than in
    the small batches TFXIO's reader hands out one after another.
    """
    size = files_bytes(self.files)
    if size > CACHE_MAX_FILE_BYTES:
      return None
    names = tf.constant(self.files)
    compression = _compression(self.files)
    if size <= SMALL_FILE_BYTES:
      parsed = (
        (0, self._parse(records))
        for records in tf.data.TFRecordDataset(names, compression).batch(
          LOAD_BATCH
        )
      )
    else:

      def read(index):
        return (
          tf.data.TFRecordDataset(names[index], compression)
          .batch(LOAD_BATCH)
          .map(
            lambda records: (index, self._parse(records)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
          )
        )

      parsed = tf.data.Dataset.range(len(self.files)).interleave(
        read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
      )
    by_file = [[] for _ in self.files]
    held = 0
    for index, batch in parsed:
      held += sum(_parsed_bytes(t) for t in batch.values())
      if held > CACHE_MAX_PARSED_BYTES:
        return None
      by_file[int(index)].append(batch)
    batches = [batch for file in by_file for batch in file]
    if not batches:
      return None
    columns = {
      name: tf.concat([b[name] for b in batches], axis=0) for name in self._spec
    }
    del batches, by_file
    label = columns.pop(self._label_key)
    return _Columns(columns, label)

  def stream(
    self, batch_size: int, shuffle: bool, seed: int
  ) -> tf.data.Dataset:
    """One epoch read and parsed from the files."""
    if not self.files:
      raise FileNotFoundError(f'no file matches {self._patterns}')
    records = tf.data.TFRecordDataset(self.files, _compression(self.files))
    if shuffle:
      records = records.shuffle(SHUFFLE_BUFFER, seed)

    def parse(batch):
      features = self._parse(batch)
      return features, features.pop(self._label_key)

    return (
      records.batch(batch_size)
      .map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
      .prefetch(tf.data.AUTOTUNE)
    )

  def batches(
    self, batch_size: int, shuffle: bool, seed: int
  ) -> tf.data.Dataset:
    """One epoch: from memory when held, else from the files."""
    if self.held is not None:
      return self.held.batches(batch_size, shuffle, seed)
    return self.stream(batch_size, shuffle, seed)


@dataclasses.dataclass
class TrainingData:
  """What tuner_fn and run_fn share: Transform's output, the features, the
  model inputs, the builder, the training mode and one-epoch datasets at a
  given batch size."""

  fn_args: Any
  config: Union[TrainerConfig, TunerConfig]

  def __post_init__(self):
    self.transform_output = tft.TFTransformOutput(
      self.fn_args.transform_graph_path
    )
    self.features = self.config.features
    oov = self.config.preprocessing.categorical.num_oov_buckets
    self.task = self.config.task
    self.model_inputs = model_lib.ModelInputs(
      numeric=self.config.numeric_inputs(),
      categorical={
        name: self.transform_output.vocabulary_size_by_name(key) + oov
        for name, key in self.config.id_inputs().items()
      },
      task=self.task,
      encoded=encoders.columns_of(
        self.config, self._encoder_locations(), self._text_id_space
      ),
    )
    self.builder = self.config.model.builders[0]
    image = self.config.model.image
    self.image = image.shape if image else None
    self.mode = self.config.training.mode
    self._rows: Dict[Tuple[str, ...], Union[Split, tf.data.Dataset, None]] = {}
    self._label_scale: Optional[Tuple[float, float]] = None
    self._labels: Dict[str, List[float]] = {}

  def _text_id_space(self, column: str) -> int:
    return preprocessing.text_id_space(
      self.transform_output.vocabulary_size_by_name(
        preprocessing.text_vocabulary_name(column)
      )
    )

  def _encoder_locations(self) -> Dict[str, str]:
    """Where each pretrained encoder is: what the component received
    through its base_model channel (the pipeline imports the one
    pretrained encoder there, for lineage), else the spec's source."""
    pretrained = self.config.model.pretrained()
    received = getattr(self.fn_args, 'base_model', None)
    if received and len(pretrained) == 1:
      if (
        not tf.io.gfile.exists(received)
        and os.path.basename(received.rstrip('/')) == 'Format-Serving'
      ):
        received = os.path.dirname(received.rstrip('/'))  # TFX's model path
      ((column, _),) = pretrained.items()
      return {column: received}
    from modules import kinds  # pylint: disable=g-import-not-at-top

    return {
      column: encoders.locate(
        column, kinds.kind_of(self.config.features, column).name, spec
      )
      for column, spec in pretrained.items()
    }

  def label_scale(self) -> Tuple[float, float]:
    """(mean, standard deviation) of the train split's labels: a task that
    standardises its label trains on (label - mean) / std, and the served
    model restores the scale (modules/train.py)."""
    if self._label_scale is None:
      labels = np.asarray(self.labels('train'), np.float64)
      self._label_scale = (float(labels.mean()), float(labels.std()) or 1.0)
    return self._label_scale

  def class_weight(self, setting: Any) -> Optional[Dict[int, float]]:
    """Keras's class_weight for a training.class_weight setting (None for
    a task without classes, or 'none')."""
    if not self.task.classifies or setting == 'none':
      return None
    names = self.class_names()
    return self.task.class_weights(
      setting,
      self.labels('train'),
      [n.decode() for n in names] if names is not None else None,
    )

  def class_names(self) -> Optional[List[bytes]]:
    """A STRING label's class names by class index (the Transform's label
    vocabulary), or None for an INT label.

    Raises:
      ValueError: the train split holds fewer classes than the data (a
        class only in the eval split has no index to learn).
    """
    if (
      self.transform_output.vocabulary_file_by_name(
        preprocessing.LABEL_VOCABULARY
      )
      is None
    ):
      return None
    names = self.transform_output.vocabulary_by_name(
      preprocessing.LABEL_VOCABULARY
    )
    classes = self.task.num_classes
    if len(names) < classes:
      seen = ', '.join(n.decode() for n in names)
      raise ValueError(
        f'the label has {classes} classes in the data but '
        f'{len(names)} in the train split ({seen}); a class only in the '
        'eval split cannot be learned: add rows of it or change data.split'
      )
    return names

  def new_model(
    self, hparams: Mapping[str, Any]
  ) -> Union[tf.keras.Model, finetune.Finetuner]:
    """A from-scratch model (scratch mode) by the builder `hparams` names
    (the only one when the spec names one), or a Finetuner over the base
    model the component received (finetune mode)."""
    if self.mode == 'finetune':
      if self.model_inputs.pretrained:  # the encoders are what is tuned
        return finetune.Finetuner(None, self.model_inputs, hparams)
      base = finetune.load_checked(self.fn_args.base_model, self.model_inputs)
      return finetune.Finetuner(base, self.model_inputs, hparams)
    builder = hparams.get('builder', self.builder)
    if builder == 'gbt':
      from modules import gbt  # pylint: disable=g-import-not-at-top

      return gbt.build(self.model_inputs, hparams, self.model_seed)
    return model_lib.build_model(
      self.model_inputs, hparams, builder, self.image
    )

  @property
  def model_seed(self) -> int:
    """The trees' random seed: the Trainer's training.seed (a tuning trial
    has its own Keras seed, modules/tuner.py; its trees take 0)."""
    return int(getattr(self.config.training, 'seed', 0) or 0)

  def labels(self, split: str) -> List[float]:
    """The transformed labels of the 'train' or 'eval' split, on their own
    scale (read once: the class weights and the naive score ask again)."""
    if split not in self._labels:
      files = (
        self.fn_args.train_files
        if split == 'train'
        else self.fn_args.eval_files
      )
      dataset = self._epoch(files, 1024, shuffle=False, scaled=False)
      cast = int if self.task.classifies else float
      self._labels[split] = [
        cast(v) for _, label in dataset for v in label.numpy().ravel()
      ]
    return self._labels[split]

  def _read(
    self, files: List[str], batch_size: int, shuffle: bool, seed: int = 0
  ) -> tf.data.Dataset:
    """One epoch of a split, read and parsed from its files."""
    return input_fn(
      files,
      self.fn_args.data_accessor,
      self.transform_output,
      self.features.transformed_label,
      batch_size,
      shuffle=shuffle,
      seed=seed,
    )

  def _epoch(
    self,
    files: List[str],
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    scaled: bool = True,
  ) -> tf.data.Dataset:
    """One epoch of a split, its label standardised when the task trains
    so (`scaled`)."""
    epoch = self._rows_epoch(files, batch_size, shuffle, seed)
    if not (scaled and self.task.standardises_label):
      return epoch
    mean, std = self.label_scale()
    return epoch.map(lambda x, y: (x, (y - mean) / std))

  def _rows_epoch(
    self, files: List[str], batch_size: int, shuffle: bool, seed: int = 0
  ) -> tf.data.Dataset:
    """One epoch of a split, shuffled, when asked, with TFXIO's buffer and
    `seed`: by `Split` (held in memory or streamed) when every feature the
    model takes has a fixed shape (what this project's preprocessing_fn
    makes), else by TFXIO (`_tfxio_rows`)."""
    key = tuple(files)
    if key not in self._rows:
      spec = self._model_spec()
      self._rows[key] = (
        Split(files, spec, self.features.transformed_label)
        if spec is not None
        else self._tfxio_rows(files)
      )
    rows = self._rows[key]
    if isinstance(rows, Split):
      return rows.batches(batch_size, shuffle, seed)
    if rows is None:
      return self._read(files, batch_size, shuffle, seed)
    return _row_by_row(rows, batch_size, shuffle, seed)

  def _model_spec(self) -> Optional[Dict[str, tf.io.FixedLenFeature]]:
    """The transformed features the model takes and the label, or None when
    one of them has no fixed shape (a sparse or ragged feature, which TFXIO
    parses to what the schema says). Only what the model takes: a text's
    raw string, kept by the Transform for a pretrained encoder, is not held
    for a learned one."""
    label_key = self.features.transformed_label
    wanted = set(self.model_inputs.names()) | {label_key}
    spec = {
      name: feature
      for name, feature in self.transform_output.transformed_feature_spec().items()
      if name in wanted
    }
    if all(isinstance(f, tf.io.FixedLenFeature) for f in spec.values()):
      return spec
    return None

  def _tfxio_rows(self, files: List[str]) -> Optional[tf.data.Dataset]:
    """A split that TFXIO parses: its dataset read once and cached when its
    files total at most TFXIO_CACHE_MAX_FILE_BYTES, else None (read from
    the files every epoch)."""
    if files_bytes(files) > TFXIO_CACHE_MAX_FILE_BYTES:
      return None
    return self._read(files, 1024, shuffle=False).unbatch().cache()

  def train(self, batch_size: int, seed: int) -> tf.data.Dataset:
    return self._epoch(self.fn_args.train_files, batch_size, True, seed)

  def eval(self, batch_size: int) -> tf.data.Dataset:
    return self._epoch(self.fn_args.eval_files, batch_size, False)
