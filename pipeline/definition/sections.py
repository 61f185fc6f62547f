"""The spec's own sections: what modules/config/ does not define.

The data, where fine-tuning starts from, the TFMA gates, where models are
pushed, and where the pipeline runs (locally and on Kubeflow). The
sections the module callbacks read (features, preprocessing, model, tuner,
training) are modules/config's, so a callback parses the same types.
"""

import datetime
import os
from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import ConfigDict, Field

from components import example_gens
from components.csv_format import DEFAULT_NULL_VALUES
from modules.config import DecisionSpec, TrainingSpec
from modules.config import Strict as _Strict
from modules.tasks import Task, metric_names
from pipeline.engines import registry as engines

# Metric names a spec may use, whatever the task (modules/tasks.py says
# which each task computes and which way each is better).
METRICS = metric_names()
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


class Bounds(_Strict):
  lower: Optional[float] = Field(
    default=None, description='The least value the metric may take.'
  )
  upper: Optional[float] = Field(
    default=None, description='The largest value the metric may take.'
  )


Threshold = Union[float, Bounds]


class SliceThreshold(_Strict):
  """Bounds that gate named slices: `slice` is `{feature: value, ...}` (one
  slice) or `[feature, ...]` (every slice of those features)."""

  slice: Union[Dict[str, Union[str, int, float]], List[str]] = Field(
    description=(
      '{feature: value, ...} for one slice, or [feature, ...] for '
      'every slice of those features.'
    )
  )
  thresholds: Dict[Literal[METRICS], Threshold] = Field(  # type: ignore[valid-type]
    min_length=1,
    description=(
      'Metric to the bound the slice must meet: a number or {lower, upper}.'
    ),
  )

  @property
  def features(self) -> List[str]:
    return list(self.slice)


class EvaluationSpec(DecisionSpec):
  """TFMA settings.

  `metrics`: by default the task's (modules/tasks.py): for a binary label
  example_count, auc, auc_pr, accuracy, precision, recall and calibration;
  for more classes example_count, accuracy and log_loss; for regression
  example_count, rmse, mae and r2. `thresholds`: absolute bounds the
  candidate must meet on the whole eval split (the overall slice; a number
  is a lower bound where higher is better, an upper bound where lower is).
  `change_thresholds`: against the last blessed model, overall, the
  candidate must be better by at least this much in the metric's better
  direction (0.0: no worse; -0.01: at most 0.01 worse). `slice_thresholds`:
  bounds on named slices. With none of the three, the default rule
  blesses: the task's naive baseline beaten on its main metric, and no
  worse than the last blessed model there (`default_rule`).
  `decision_threshold` (binary): the probability from which a row is class
  1, for accuracy, precision, recall and the served class.
  """

  metrics: Optional[List[Literal[METRICS]]] = Field(  # type: ignore[valid-type]
    default=None,
    min_length=1,
    description="The TFMA metrics computed; by default the task's.",
  )
  slices: List[List[str]] = Field(
    default=[],
    description=(
      'Feature lists to slice the metrics by (the overall slice '
      'is always computed).'
    ),
  )
  thresholds: Dict[Literal[METRICS], Union[float, Bounds]] = Field(  # type: ignore[valid-type]
    default={},
    description=(
      'Absolute bounds the candidate must meet on the whole eval '
      'split to be blessed (a number is a lower bound where '
      'higher is better, an upper bound where lower is).'
    ),
  )
  change_thresholds: Dict[Literal[METRICS], float] = Field(  # type: ignore[valid-type]
    default={},
    description=(
      'How much better than the last blessed model the candidate '
      'must be, per metric (0.0: no worse; -0.01: at most 0.01 '
      'worse).'
    ),
  )
  slice_thresholds: List[SliceThreshold] = Field(
    default=[],
    description=(
      'Bounds that gate one slice, or every slice of some features.'
    ),
  )
  # The serving output TFMA reads; by default the project's model's
  # (probability / probabilities), or a module file model's only output.
  prediction_key: Optional[str] = Field(
    default=None,
    description=(
      "The serving output TFMA reads; by default the project's "
      "model's, or a module file model's only output."
    ),
  )

  def metric_names(self, task: Task) -> List[str]:
    """The metrics computed: the spec's, or the task's defaults (with the
    default rule, its main metric too)."""
    names = list(self.metrics or task.default_metrics)
    if self.uses_default_rule and task.main_metric not in names:
      names.append(task.main_metric)
    return names

  @property
  def uses_default_rule(self) -> bool:
    """Whether no threshold is written, so the default rule blesses."""
    return not (
      self.thresholds or self.change_thresholds or self.slice_thresholds
    )


class PushSpec(_Strict):
  destination: str = Field(
    description=(
      "TF Serving's base folder: models go to "
      '<destination>/<model_name>/<version>/.'
    )
  )
  model_name: str = Field(
    pattern=NAME_PATTERN, description="The served model's name."
  )


class RunnerSpec(_Strict):
  """Where the pipeline runs locally. `engine` (pipeline/engines) is where
  the Beam components send their jobs, `engine_options` how (typed by the
  engine: `options()`); `beam_args` are added after the engine's own, so
  they can set any Beam option the engine does not."""

  pipeline_root: str = Field(
    description="The folder the pipeline's artifacts are written to."
  )
  metadata: str = Field(
    description=(
      'The ML Metadata store: a SQLite file, or a '
      'mysql://user@host:port/database URI.'
    )
  )
  engine: str = Field(
    default='direct',
    description=(
      'Where the Beam components send their jobs: direct, flink, '
      'spark, portable or dataflow.'
    ),
  )
  engine_options: Dict[str, Any] = Field(
    default={},
    description=(
      "The engine's own options, typed by the engine (docs/scale.md)."
    ),
  )
  beam_args: List[str] = Field(
    default=['--direct_running_mode=in_memory', '--direct_num_workers=1'],
    description="Beam pipeline args, added after the engine's own.",
  )
  enable_cache: bool = Field(
    default=True,
    description=(
      "Reuse a component's outputs when its inputs and settings are unchanged."
    ),
  )

  def options(self) -> engines.Options:
    """`engine_options` as the engine's typed options (checked at load)."""
    return engines.get(self.engine).options.model_validate(self.engine_options)

  def pipeline_args(self) -> List[str]:
    """The Beam pipeline args of the four Beam components."""
    return engines.pipeline_args(self.engine, self.options(), self.beam_args)


# Where `python -m pipeline compile` targets: open-source KFP or Vertex AI.
KUBEFLOW_TARGETS = ('kfp', 'vertex')


class GpuSpec(_Strict):
  """An accelerator request: `type` as the target names it (open-source KFP:
  the Kubernetes resource, e.g. nvidia.com/gpu; Vertex AI: e.g.
  NVIDIA_TESLA_T4)."""

  type: str = Field(
    description=(
      'The accelerator as the target names it (KFP: e.g. '
      'nvidia.com/gpu; Vertex AI: e.g. NVIDIA_TESLA_T4).'
    )
  )
  count: int = Field(default=1, ge=1, description='How many accelerators.')


class ResourceSpec(_Strict):
  """A Kubeflow task's limits: CPU cores, memory in GB, and GPUs."""

  cpu: Optional[float] = Field(default=None, gt=0, description='CPU cores.')
  memory_gb: Optional[float] = Field(
    default=None, gt=0, description='Memory in GB.'
  )
  gpu: Optional[GpuSpec] = Field(
    default=None, description='An accelerator request.'
  )


class KubeflowSpec(_Strict):
  """How `python -m pipeline compile` builds the KFP v2 pipeline.

  Every location is read inside the cluster, so each must be a URI
  (gs://, s3://, ...): `pipeline_root`; `data` and `push_destination`
  replace data.csv (or data.tfrecord) and push.destination there. The
  schema is read from the image (schemas/ is installed in it) unless
  `schema` names a URI. `base_model` (fine-tuning from another pipeline) is
  a pushed model base URI whose newest version is used. `resources` are per
  component (keys of kubeflow_nodes.KUBEFLOW_COMPONENTS, or `default` for
  the rest). `beam_args` are the Beam-powered components' runner args
  (docs/kubeflow.md).
  """

  target: Literal[KUBEFLOW_TARGETS] = Field(  # type: ignore[valid-type]
    default='kfp',
    description=(
      'kfp (open-source Kubeflow Pipelines) or vertex (Vertex AI Pipelines).'
    ),
  )
  image: Optional[str] = Field(
    default=None, description='The container image the components run in.'
  )
  pipeline_root: Optional[str] = Field(
    default=None,
    description='The pipeline root, a URI read inside the cluster.',
  )
  data: Optional[str] = Field(
    default=None,
    description=(
      "The data's URI in the cluster, replacing data.csv or data.tfrecord."
    ),
  )
  schema_uri: Optional[str] = Field(
    default=None,
    alias='schema',
    description=(
      "A curated schema's URI; left out, the schema installed in "
      'the image is read.'
    ),
  )
  push_destination: Optional[str] = Field(
    default=None,
    description='The URI that replaces push.destination in the cluster.',
  )
  base_model: Optional[str] = Field(
    default=None,
    description=(
      'A pushed model base URI whose newest version is fine-tuned '
      '(fine-tuning from another pipeline).'
    ),
  )
  engine: str = Field(
    default='direct',
    description=(
      'Where the Beam components send their jobs in the cluster '
      '(docs/scale.md).'
    ),
  )
  engine_options: Dict[str, Any] = Field(
    default={}, description="The engine's own options, typed by the engine."
  )
  beam_args: List[str] = Field(
    default=[
      '--direct_running_mode=multi_processing',
      '--direct_num_workers=0',
    ],
    description=(
      "The Beam-powered components' runner args, added after the engine's own."
    ),
  )
  resources: Dict[str, ResourceSpec] = Field(
    default={},
    description=(
      'CPU, memory and GPU limits by component: example_gen, '
      'statistics_gen, schema_gen, example_validator, '
      'anomalies_gate, transform, tuner, trainer, evaluator, '
      'pusher, baseline, base_model, or default for the rest.'
    ),
  )
  enable_cache: bool = Field(
    default=True,
    description=(
      "Reuse a component's outputs when its inputs and settings are unchanged."
    ),
  )

  model_config = ConfigDict(
    extra='forbid',
    frozen=True,
    populate_by_name=True,
    strict=True,
    allow_inf_nan=False,
  )
