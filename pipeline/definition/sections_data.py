"""The spec's data and training sections: the data, its split, and where
fine-tuning starts from (the rest of `training` is modules/config's)."""

import datetime
import os
from typing import Dict, List, Optional, Union

from pydantic import Field

from components import example_gens
from components.csv_format import DEFAULT_NULL_VALUES
from modules.config import Strict as _Strict
from modules.config import TrainingSpec

# A pipeline's or a pushed model's name.
NAME_PATTERN = r'^[a-z][a-z0-9_-]{0,62}$'


class TimeSplit(_Strict):
  """A time-ordered split: rows whose `by` value is at least `eval_from`
  are the eval split, the others train (a date compares as a date, a
  number as a number)."""

  by: str = Field(
    description=(
      'The column that orders the rows: a feature or an excluded '
      'column, not the label.'
    )
  )
  eval_from: Union[datetime.date, float, str] = Field(
    description=(
      'Rows whose `by` value is at least this are the eval split, '
      'the others train.'
    )
  )

  @property
  def value(self) -> str:
    """`eval_from` as the CSV would write it."""
    if isinstance(self.eval_from, datetime.date):
      return self.eval_from.isoformat()
    return str(self.eval_from)


# A data.tfrecord path with one of these endings names one file; any other
# path a folder (decided from the name alone: the definition reads no
# files). TFX's ImportExampleGen reads a file ending in .gz as gzipped.
TFRECORD_FILE_ENDINGS = (
  '.tfrecord',
  '.tfrecords',
  '.tfrecord.gz',
  '.tfrecords.gz',
  '.gz',
)


class DataSpec(_Strict):
  """The data: exactly one of `csv` and `tfrecord`.

  `csv`: a folder of CSV files with a header row, or one file.
  `null_values`: cell texts that mean "missing" (the empty cell always
  does); components/csv_format.py has the reading rules. `tfrecord`: a
  folder of TFRecord files of tf.Examples (gzipped when named .gz), or one
  file (named .tfrecord, .tfrecords or .gz), read by TFX's
  ImportExampleGen; a value is missing when its feature is absent or
  empty. `split`: hash buckets per split ({train: 4, eval: 1}: a fifth of
  the rows, chosen by a hash of each row, is the eval split) or, for CSV,
  a time-ordered split `{by: COLUMN, eval_from: VALUE}`."""

  csv: Optional[str] = Field(
    default=None,
    description='A folder of CSV files with a header row, or one CSV file.',
  )
  tfrecord: Optional[str] = Field(
    default=None,
    description=(
      'A folder of TFRecord files of tf.Examples (gzipped when '
      'named .gz), or one file named .tfrecord, .tfrecords or '
      '.gz.'
    ),
  )
  split: Union[TimeSplit, Dict[str, int]] = Field(
    default={'train': 4, 'eval': 1},
    description=(
      'Hash buckets per split ({train: 4, eval: 1}: a fifth of '
      'the rows is the eval split), or, for CSV, a time split '
      '{by: COLUMN, eval_from: VALUE}.'
    ),
  )
  null_values: List[str] = Field(
    default=list(DEFAULT_NULL_VALUES),
    description=(
      'CSV cell texts that mean missing (the empty cell always does).'
    ),
  )

  @property
  def format(self) -> str:
    """The key that names the data: csv or tfrecord."""
    return 'tfrecord' if self.tfrecord is not None else 'csv'

  @property
  def path(self) -> str:
    """The folder or file the data is read from."""
    return self.tfrecord if self.tfrecord is not None else self.csv or ''

  @property
  def key(self) -> str:
    """The spec key naming the data, for messages (data.csv, ...)."""
    return f'data.{self.format}'

  @property
  def example_gen_id(self) -> str:
    """The node id of the ExampleGen that reads this format."""
    return example_gens.EXAMPLE_GENS[self.format]

  @property
  def single_file(self) -> bool:
    """Whether `path` names one file rather than a folder, by its name."""
    name = os.path.basename(self.path).lower()
    if self.format == 'csv':
      return os.path.splitext(name)[1] == '.csv'
    return name.endswith(TFRECORD_FILE_ENDINGS)

  def with_path(self, path: str) -> 'DataSpec':
    """This data spec reading `path` instead (Kubeflow's data URI)."""
    return self.model_copy(update={self.format: path})


class BaseModelSpec(_Strict):
  """Where fine-tuning starts from; give exactly one key.

  `path`: a Keras SavedModel directory (or a TFX Model artifact folder),
  imported into ML Metadata. `latest_blessed`: a pipeline's name; its newest
  blessed model in this spec's metadata store (this pipeline's own name
  warm-starts from its last blessed model).
  """

  path: Optional[str] = Field(
    default=None,
    description=(
      'A Keras SavedModel directory (or a TFX Model artifact '
      'folder) to fine-tune.'
    ),
  )
  latest_blessed: Optional[str] = Field(
    default=None,
    pattern=NAME_PATTERN,
    description=(
      "A pipeline's name: its newest blessed model in this spec's "
      'metadata store.'
    ),
  )


class SpecTrainingSpec(TrainingSpec):
  """The spec's `training` section: the modules' TrainingSpec plus where a
  fine-tuning base model comes from (the runner resolves it; the model
  reaches the Tuner and Trainer through a channel, not through config)."""

  base_model: Optional[BaseModelSpec] = Field(
    default=None,
    description=(
      'Where fine-tuning starts from (training.mode: finetune '
      'only): give path or latest_blessed.'
    ),
  )
  # TFX's TrainArgs/EvalArgs num_steps, for a module file's run_fn and
  # tuner_fn (fn_args.train_steps, eval_steps); the project's own run_fn
  # trains by epochs.
  train_steps: Optional[int] = Field(
    default=None,
    ge=1,
    description=(
      "TFX's TrainArgs num_steps, for a module file's run_fn and "
      "tuner_fn (the project's own trains by epochs)."
    ),
  )
  eval_steps: Optional[int] = Field(
    default=None,
    ge=1,
    description=(
      "TFX's EvalArgs num_steps, for a module file's run_fn and tuner_fn."
    ),
  )
