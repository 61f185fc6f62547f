"""Reading transformed examples into tf.data for the Tuner and the Trainer."""

import dataclasses
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import DataAccessor
from tfx_bsl.public import tfxio
from tfx_bsl.tfxio import dataset_util

from modules import encoders, finetune, preprocessing
from modules import model as model_lib
from modules.config import TrainerConfig, TunerConfig

# A split whose files (as Transform wrote them) total at most this is read
# once per process and then served from memory: every later epoch, and
# every later trial of a search, skips reading and parsing the files again.
# Parsed, such a split takes at most a few times its size on disk (gzip
# does little to float features; small ints grow from varints to int64).
CACHE_MAX_FILE_BYTES = 32 << 20
SHUFFLE_BUFFER = tfxio.TensorFlowDatasetOptions(batch_size=1).shuffle_buffer_size
# A split in memory with at least this many rows is batched by gathering
# (_Columns).
GATHER_MIN_ROWS = 4096


def _in_memory_options() -> tf.data.Options:
  """How a split served from memory is batched: without tf.data's graph
  rewrites, its autotuning and a prefetch thread. Keras makes a new
  iterator every epoch for training and again for validation, and each
  iterator paid for those (a rewrite of the dataset's graph, an autotuning
  thread and a prefetch thread, made and joined) to batch rows already in
  memory, where there is no reading to overlap. Measured here on the
  default search, the Tuner's executor alone: 7.1 and 7.7 s with them, 5.7
  and 6.2 s without; two processes searching together kept the two cores
  busy 1.6 of the time with them (their threads waited to be made and
  joined while the other process held the CPUs), 1.75-1.8 without."""
  options = tf.data.Options()
  options.autotune.enabled = False
  options.experimental_optimization.apply_default_optimizations = False
  return options


def _row_by_row(rows: tf.data.Dataset, batch_size: int, shuffle: bool,
                seed: int) -> tf.data.Dataset:
  """One epoch of `rows` (a dataset of single rows in memory), shuffled
  when asked with TFXIO's buffer and `seed`, as TFXIO batches the files."""
  if shuffle:
    rows = rows.shuffle(SHUFFLE_BUFFER, seed)
  return rows.batch(batch_size).with_options(_in_memory_options())


def files_bytes(file_patterns: List[str]) -> int:
  """The bytes of the files matched by `file_patterns` (local or remote)."""
  return sum(tf.io.gfile.stat(path).length for pattern in file_patterns
             for path in tf.io.gfile.glob(pattern))


def input_fn(file_pattern: List[str],
             data_accessor: DataAccessor,
             tf_transform_output: tft.TFTransformOutput,
             label_key: str,
             batch_size: int,
             shuffle: bool = True,
             seed: int = 42) -> tf.data.Dataset:
  """One pass (one epoch) over transformed examples as (features, label)."""
  return data_accessor.tf_dataset_factory(
      file_pattern,
      tfxio.TensorFlowDatasetOptions(
          batch_size=int(batch_size), label_key=label_key, num_epochs=1,
          shuffle=shuffle, shuffle_seed=seed),
      tf_transform_output.transformed_metadata.schema)


class _Columns:
  """A split's rows in memory, as one tensor per feature and the label's,
  batched into epochs the way TFXIO batches the files: the same rows in
  each batch, in the same order.

  A few thousand rows are shuffled and batched row by row (tf.data's
  `shuffle` and `batch` over slices): cheap to set up, which matters with
  a new dataset per trial. From GATHER_MIN_ROWS rows on, the row indices
  are shuffled instead (the same buffer and seed, hence the same order)
  and each batch is gathered at once from the columns: a one-off trace,
  then one op per column per batch, where row by row cost about 20 us a
  row every epoch (80k rows in batches of 512, measured here: 1.5 s an
  epoch row by row, 0.2 s gathered; on the default data's 453 rows a new
  dataset costs 17 ms row by row and 80 ms gathered)."""

  def __init__(self, columns: Dict[str, tf.Tensor], label: tf.Tensor):
    self.count = int(label.shape[0])
    self._slices = tf.data.Dataset.from_tensor_slices((columns, label))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)],
                 autograph=False)
    def gather(rows):
      return ({name: tf.gather(column, rows)
               for name, column in columns.items()}, tf.gather(label, rows))

    self._gather = gather

  def batches(self, batch_size: int, shuffle: bool, seed: int
              ) -> tf.data.Dataset:
    if self.count < GATHER_MIN_ROWS:
      return _row_by_row(self._slices, batch_size, shuffle, seed)
    order = tf.data.Dataset.range(self.count)
    if shuffle:
      order = order.shuffle(SHUFFLE_BUFFER, seed)
    return order.batch(batch_size).map(self._gather).with_options(
        _in_memory_options())


@dataclasses.dataclass
class TrainingData:
  """What tuner_fn and run_fn share: Transform's output, the features, the
  model inputs, the builder, the training mode and one-epoch datasets at a
  given batch size."""
  fn_args: Any
  config: Union[TrainerConfig, TunerConfig]

  def __post_init__(self):
    self.transform_output = tft.TFTransformOutput(
        self.fn_args.transform_graph_path)
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
        encoded=encoders.columns_of(self.config, self._encoder_locations(),
                                    self._text_id_space))
    self.builder = self.config.model.builders[0]
    image = self.config.model.image
    self.image = image.shape if image else None
    self.mode = self.config.training.mode
    self._rows: Dict[Tuple[str, ...],
                     Union[_Columns, tf.data.Dataset, None]] = {}
    self._label_scale: Optional[Tuple[float, float]] = None
    self._labels: Dict[str, List[float]] = {}

  def _text_id_space(self, column: str) -> int:
    return preprocessing.text_id_space(
        self.transform_output.vocabulary_size_by_name(
            preprocessing.text_vocabulary_name(column)))

  def _encoder_locations(self) -> Dict[str, str]:
    """Where each pretrained encoder is: what the component received
    through its base_model channel (the pipeline imports the one
    pretrained encoder there, for lineage), else the spec's source."""
    pretrained = self.config.model.pretrained()
    received = getattr(self.fn_args, 'base_model', None)
    if received and len(pretrained) == 1:
      if (not tf.io.gfile.exists(received) and
          os.path.basename(received.rstrip('/')) == 'Format-Serving'):
        received = os.path.dirname(received.rstrip('/'))  # TFX's model path
      (column, _), = pretrained.items()
      return {column: received}
    from modules import kinds  # pylint: disable=g-import-not-at-top
    return {column: encoders.locate(
        column, kinds.kind_of(self.config.features, column).name, spec)
            for column, spec in pretrained.items()}

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
        setting, self.labels('train'),
        [n.decode() for n in names] if names is not None else None)

  def class_names(self) -> Optional[List[bytes]]:
    """A STRING label's class names by class index (the Transform's label
    vocabulary), or None for an INT label.

    Raises:
      ValueError: the train split holds fewer classes than the data (a
        class only in the eval split has no index to learn).
    """
    if self.transform_output.vocabulary_file_by_name(
        preprocessing.LABEL_VOCABULARY) is None:
      return None
    names = self.transform_output.vocabulary_by_name(
        preprocessing.LABEL_VOCABULARY)
    classes = self.task.num_classes
    if len(names) < classes:
      seen = ', '.join(n.decode() for n in names)
      raise ValueError(
          f'the label has {classes} classes in the data but '
          f'{len(names)} in the train split ({seen}); a class only in the '
          'eval split cannot be learned: add rows of it or change data.split')
    return names

  def new_model(self, hparams: Mapping[str, Any]
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
    return model_lib.build_model(self.model_inputs, hparams, builder,
                                 self.image)

  @property
  def model_seed(self) -> int:
    """The trees' random seed: the Trainer's training.seed (a tuning trial
    has its own Keras seed, modules/tuner.py; its trees take 0)."""
    return int(getattr(self.config.training, 'seed', 0) or 0)

  def labels(self, split: str) -> List[float]:
    """The transformed labels of the 'train' or 'eval' split, on their own
    scale (read once: the class weights and the naive score ask again)."""
    if split not in self._labels:
      files = (self.fn_args.train_files if split == 'train'
               else self.fn_args.eval_files)
      dataset = self._epoch(files, 1024, shuffle=False, scaled=False)
      cast = int if self.task.classifies else float
      self._labels[split] = [cast(v) for _, label in dataset
                             for v in label.numpy().ravel()]
    return self._labels[split]

  def _read(self, files: List[str], batch_size: int, shuffle: bool,
            seed: int = 0) -> tf.data.Dataset:
    """One epoch of a split, read and parsed from its files."""
    return input_fn(files, self.fn_args.data_accessor, self.transform_output,
                    self.features.transformed_label, batch_size,
                    shuffle=shuffle, seed=seed)

  def _epoch(self, files: List[str], batch_size: int, shuffle: bool,
             seed: int = 0, scaled: bool = True) -> tf.data.Dataset:
    """One epoch of a split, its label standardised when the task trains
    so (`scaled`)."""
    epoch = self._rows_epoch(files, batch_size, shuffle, seed)
    if not (scaled and self.task.standardises_label):
      return epoch
    mean, std = self.label_scale()
    return epoch.map(lambda x, y: (x, (y - mean) / std))

  def _rows_epoch(self, files: List[str], batch_size: int, shuffle: bool,
                  seed: int = 0) -> tf.data.Dataset:
    """One epoch of a split: a small one's rows (CACHE_MAX_FILE_BYTES) from
    memory, read once by the first epoch asked for (`_in_memory`), a larger
    one from its files; either way shuffled, when asked, with TFXIO's
    buffer and `seed`."""
    key = tuple(files)
    if key not in self._rows:
      self._rows[key] = (self._in_memory(files)
                         if files_bytes(files) <= CACHE_MAX_FILE_BYTES
                         else None)
    rows = self._rows[key]
    if rows is None:
      return self._read(files, batch_size, shuffle, seed)
    if isinstance(rows, _Columns):
      return rows.batches(batch_size, shuffle, seed)
    return _row_by_row(rows, batch_size, shuffle, seed)

  def _in_memory(self, files: List[str]) -> Union[_Columns, tf.data.Dataset]:
    """A small split's rows, in the order TFXIO reads them, from memory.

    When every transformed feature has a fixed shape (what this project's
    preprocessing_fn makes) they are parsed here, eagerly, from the records
    as TFXIO's own reader yields them: the same tensors as TFXIO's dataset
    gives, without tracing its per-split functions first (0.45 -> 0.2 s for
    the default data's two splits here), and every epoch's iterator is over
    tensors rather than TFXIO's cached pipeline. Otherwise (a sparse or
    ragged feature) TFXIO's dataset is read once and cached.
    """
    spec = self.transform_output.transformed_feature_spec()
    if all(isinstance(f, tf.io.FixedLenFeature) for f in spec.values()):
      records = dataset_util.make_tf_record_dataset(
          files, batch_size=1024, drop_final_batch=False, num_epochs=1,
          shuffle=False, shuffle_buffer_size=1, shuffle_seed=None)
      # Only what the model takes: a text's raw string, kept by the
      # Transform for a pretrained encoder, is not held for a learned one.
      label_key = self.features.transformed_label
      wanted = set(self.model_inputs.names()) | {label_key}
      spec = {name: f for name, f in spec.items() if name in wanted}
      batches = [tf.io.parse_example(batch, spec) for batch in records]
      if batches:
        columns = {name: tf.concat([b[name] for b in batches], axis=0)
                   for name in spec}
        label = columns.pop(self.features.transformed_label)
        return _Columns(columns, label)
    return self._read(files, 1024, shuffle=False).unbatch().cache()

  def train(self, batch_size: int, seed: int) -> tf.data.Dataset:
    return self._epoch(self.fn_args.train_files, batch_size, True, seed)

  def eval(self, batch_size: int) -> tf.data.Dataset:
    return self._epoch(self.fn_args.eval_files, batch_size, False)
