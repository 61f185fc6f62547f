"""The declarative pipeline spec: one YAML file per pipeline.

`load_spec(path)` parses and validates a spec into a typed, frozen
`PipelineSpec` before anything runs. Every bad key, type or value raises
`SpecError`, whose message is one line naming the file, the key and what is
allowed. Relative paths in a spec are resolved against the spec file's folder;
URIs (gs://, s3://, ...) are kept as they are.
"""

import ast
import datetime
import math
import os
import re
from typing import (
  Any,
  Dict,
  List,
  Literal,
  Mapping,
  NamedTuple,
  Optional,
  Tuple,
  Type,
  TypeVar,
  Union,
)

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from components import example_gens
from components.csv_format import DEFAULT_NULL_VALUES
from modules import kinds
from modules.config import (
  IMAGE_ENCODERS,
  NUMERIC_FILLS,
  TEXT_ENCODERS,
  DecisionSpec,
  FloatRange,
  IntRange,
  ModelSpec,
  ModuleConfig,
  PreprocessingSpec,
  PretrainedEncoder,
  TrainingSpec,
  TunerSpec,
)
from modules.config import Strict as _Strict
from modules.features import FeaturesSpec
from modules.tasks import (
  LabelStats,
  Task,
  is_known,
  metric_names,
  task_for,
)
from pipeline.engines import registry as engines
from pipeline.errors import PipelineError, whole
from pipeline.paths import special_kind

# Metric names a spec may use, whatever the task (modules/tasks.py says
# which each task computes and which way each is better).
METRICS = metric_names()


_NAME = r'^[a-z][a-z0-9_-]{0,62}$'


class SpecError(PipelineError):
  """A spec is invalid. The message is one line naming the file and key."""


class TimeSplit(_Strict):
  """A time-ordered split: rows whose `by` value is at least `eval_from`
  are the eval split, the others train (a date compares as a date, a
  number as a number)."""
  by: str
  eval_from: Union[datetime.date, float, str]

  @property
  def value(self) -> str:
    """`eval_from` as the CSV would write it."""
    if isinstance(self.eval_from, datetime.date):
      return self.eval_from.isoformat()
    return str(self.eval_from)


# A data.tfrecord path with one of these endings names one file; any other
# path a folder (decided from the name alone: the definition reads no
# files). TFX's ImportExampleGen reads a file ending in .gz as gzipped.
TFRECORD_FILE_ENDINGS = ('.tfrecord', '.tfrecords', '.tfrecord.gz',
                         '.tfrecords.gz', '.gz')


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
  csv: Optional[str] = None
  tfrecord: Optional[str] = None
  split: Union[TimeSplit, Dict[str, int]] = {'train': 4, 'eval': 1}
  null_values: List[str] = list(DEFAULT_NULL_VALUES)

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
  path: Optional[str] = None
  latest_blessed: Optional[str] = Field(default=None, pattern=_NAME)


class SpecTrainingSpec(TrainingSpec):
  """The spec's `training` section: the modules' TrainingSpec plus where a
  fine-tuning base model comes from (the runner resolves it; the model
  reaches the Tuner and Trainer through a channel, not through config)."""
  base_model: Optional[BaseModelSpec] = None
  # TFX's TrainArgs/EvalArgs num_steps, for a module file's run_fn and
  # tuner_fn (fn_args.train_steps, eval_steps); the project's own run_fn
  # trains by epochs.
  train_steps: Optional[int] = Field(default=None, ge=1)
  eval_steps: Optional[int] = Field(default=None, ge=1)


class Bounds(_Strict):
  lower: Optional[float] = None
  upper: Optional[float] = None


Threshold = Union[float, Bounds]


class SliceThreshold(_Strict):
  """Bounds that gate named slices: `slice` is `{feature: value, ...}` (one
  slice) or `[feature, ...]` (every slice of those features)."""
  slice: Union[Dict[str, Union[str, int, float]], List[str]]
  thresholds: Dict[Literal[METRICS], Threshold] = Field(min_length=1)  # type: ignore[valid-type]

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
      default=None, min_length=1)
  slices: List[List[str]] = []
  thresholds: Dict[Literal[METRICS], Union[float, Bounds]] = {}  # type: ignore[valid-type]
  change_thresholds: Dict[Literal[METRICS], float] = {}  # type: ignore[valid-type]
  slice_thresholds: List[SliceThreshold] = []
  # The serving output TFMA reads; by default the project's model's
  # (probability / probabilities), or a module file model's only output.
  prediction_key: Optional[str] = None

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
    return not (self.thresholds or self.change_thresholds or
                self.slice_thresholds)


class PushSpec(_Strict):
  destination: str
  model_name: str = Field(pattern=_NAME)


class RunnerSpec(_Strict):
  """Where the pipeline runs locally. `engine` (pipeline/engines) is where
  the Beam components send their jobs, `engine_options` how (typed by the
  engine: `options()`); `beam_args` are added after the engine's own, so
  they can set any Beam option the engine does not."""
  pipeline_root: str
  metadata: str
  engine: str = 'direct'
  engine_options: Dict[str, Any] = {}
  beam_args: List[str] = ['--direct_running_mode=in_memory',
                          '--direct_num_workers=1']
  enable_cache: bool = True

  def options(self) -> engines.Options:
    """`engine_options` as the engine's typed options (checked at load)."""
    return engines.get(self.engine).options.model_validate(
        self.engine_options)

  def pipeline_args(self) -> List[str]:
    """The Beam pipeline args of the four Beam components."""
    return engines.pipeline_args(self.engine, self.options(), self.beam_args)


# Kubeflow: components a spec may give resources, by spec key -> TFX node id
# (example_gen: the data format's, DataSpec.example_gen_id).
KUBEFLOW_COMPONENTS = {
    'example_gen': 'CsvExampleGen', 'statistics_gen': 'StatisticsGen',
    'schema_gen': 'ImportSchemaGen', 'example_validator': 'ExampleValidator',
    'anomalies_gate': 'AnomaliesGate', 'transform': 'Transform',
    'tuner': 'Tuner', 'trainer': 'Trainer', 'evaluator': 'Evaluator',
    'pusher': 'Pusher', 'baseline': 'baseline_model_finder',
    'base_model': 'base_model_finder',
}
# The components whose code can use a GPU (Keras training).
GPU_COMPONENTS = ('tuner', 'trainer')
KUBEFLOW_TARGETS = ('kfp', 'vertex')


class GpuSpec(_Strict):
  """An accelerator request: `type` as the target names it (open-source KFP:
  the Kubernetes resource, e.g. nvidia.com/gpu; Vertex AI: e.g.
  NVIDIA_TESLA_T4)."""
  type: str
  count: int = Field(default=1, ge=1)


class ResourceSpec(_Strict):
  """A Kubeflow task's limits: CPU cores, memory in GB, and GPUs."""
  cpu: Optional[float] = Field(default=None, gt=0)
  memory_gb: Optional[float] = Field(default=None, gt=0)
  gpu: Optional[GpuSpec] = None


class KubeflowSpec(_Strict):
  """How `python -m pipeline compile` builds the KFP v2 pipeline.

  Every location is read inside the cluster, so each must be a URI
  (gs://, s3://, ...): `pipeline_root`; `data` and `push_destination`
  replace data.csv (or data.tfrecord) and push.destination there. The schema is read from the
  image (schemas/ is installed in it) unless `schema` names a URI.
  `base_model` (fine-tuning from another pipeline) is a pushed model base
  URI whose newest version is used. `resources` are per component (keys of
  KUBEFLOW_COMPONENTS, or `default` for the rest). `beam_args` are the
  Beam-powered components' runner args (README, "Kubeflow").
  """
  target: Literal[KUBEFLOW_TARGETS] = 'kfp'  # type: ignore[valid-type]
  image: Optional[str] = None
  pipeline_root: Optional[str] = None
  data: Optional[str] = None
  schema_uri: Optional[str] = Field(default=None, alias='schema')
  push_destination: Optional[str] = None
  base_model: Optional[str] = None
  engine: str = 'direct'
  engine_options: Dict[str, Any] = {}
  beam_args: List[str] = ['--direct_running_mode=multi_processing',
                          '--direct_num_workers=0']
  resources: Dict[str, ResourceSpec] = {}
  enable_cache: bool = True

  model_config = ConfigDict(extra='forbid', frozen=True, populate_by_name=True,
                            strict=True, allow_inf_nan=False)


_Config = TypeVar('_Config', bound=ModuleConfig)


# The callbacks a module file may define (TFX's names).
MODULE_FUNCTIONS = ('preprocessing_fn', 'tuner_fn', 'run_fn')


class PipelineSpec(_Strict):
  """A whole, validated pipeline spec. Paths are absolute or URIs.

  `schema`: a curated schema, or None: SchemaGen infers one from the data.
  `module_file`: a TFX module file whose preprocessing_fn, tuner_fn and
  run_fn (those it defines) replace the project's.
  """
  name: str = Field(pattern=_NAME)
  data: DataSpec
  schema_file: Optional[str] = Field(default=None, alias='schema')
  module_file: Optional[str] = None
  features: FeaturesSpec
  preprocessing: PreprocessingSpec = PreprocessingSpec()
  model: ModelSpec = ModelSpec()
  tuner: TunerSpec = TunerSpec()
  training: SpecTrainingSpec = SpecTrainingSpec()
  evaluation: EvaluationSpec = EvaluationSpec()
  push: PushSpec
  runner: RunnerSpec
  kubeflow: KubeflowSpec = KubeflowSpec()
  # Where the spec was read from (set by load_spec; not a YAML key).
  source: str = Field(default='<dict>', exclude=True)
  # The MODULE_FUNCTIONS module_file defines (read by spec_from_dict).
  module_functions: Tuple[str, ...] = Field(default=(), exclude=True)
  # The step counts (STEP_ARGS) module_file reads from fn_args with no
  # fallback of its own (read by spec_from_dict).
  module_steps: Tuple[str, ...] = Field(default=(), exclude=True)

  model_config = ConfigDict(extra='forbid', frozen=True, populate_by_name=True,
                            strict=True, allow_inf_nan=False)

  @property
  def feature_keys(self) -> List[str]:
    return self.features.keys

  # What the pre-flight scan saw of the label (set by `resolved`).
  label_stats: Optional[LabelStats] = Field(default=None, exclude=True)

  @property
  def is_resolved(self) -> bool:
    """Whether what the data decides (the task and its classes, the
    feature lists when the spec leaves them out) is known."""
    return is_known(self.features) and self.features.listed

  @property
  def task(self) -> Task:
    """The task (the spec must be resolved)."""
    return task_for(self.features)

  def default_thresholds(self) -> Dict[str, float]:
    """The default rule's bounds (`EvaluationSpec.uses_default_rule`):
    the task's naive baseline on the data the pre-flight scan read; none
    without that scan (a Kubeflow compile), where only "no worse than the
    last blessed model" applies."""
    if not self.evaluation.uses_default_rule or self.label_stats is None:
      return {}
    return self.task.naive_thresholds(self.label_stats)

  def blessing_rule(self) -> str:
    """What blesses a model, in words (validate, the run summary)."""
    if not self.evaluation.uses_default_rule:
      return 'the thresholds in evaluation'
    return 'default rule: ' + self.default_rule()

  def default_rule(self) -> str:
    """The default rule in words (`EvaluationSpec.uses_default_rule`)."""
    task = self.task
    if self.label_stats is None:
      return f'{task.main_metric} no worse than the last blessed model\'s'
    return task.naive_rule(self.label_stats)

  def uses_module_file(self, function: str) -> bool:
    """Whether `module_file` replaces the project's `function`."""
    return function in self.module_functions

  def resolved(self, task: str, num_classes: Optional[int] = None,
               columns: Optional[Mapping[str, List[str]]] = None,
               label_stats: Optional[LabelStats] = None) -> 'PipelineSpec':
    """This spec with what the data decided filled in, checked again.

    Args:
      task: classification or regression (kept when the spec gives it).
      num_classes: classes of a classification label (kept when the spec
        gives it).
      columns: column kind -> the columns of that kind (used when the spec
        lists no feature).
      label_stats: what the scan saw of the label.

    Raises:
      SpecError: a rule that depends on the task or the features fails.
    """
    f = self.features
    update: Dict[str, Any] = {'task': f.task or task}
    if num_classes is not None and f.num_classes is None:
      update['num_classes'] = num_classes
    if not f.listed:
      columns = {kind: list(names) for kind, names in (columns or {}).items()
                 if names}
      _check(bool(columns), self.source, 'features',
             'the data has no column besides the label and the excluded ones')
      update.update(columns)
    spec = self.model_copy(update={
        'features': f.model_copy(update=update), 'label_stats': label_stats})
    _check_consistency(spec)
    return spec

  def columns_by_kind(self) -> List[Tuple[str, List[str]]]:
    """(column kind, its features) for each kind with a feature, in the
    registry's order (modules/kinds.py)."""
    return [(name, list(getattr(self.features, name)))
            for name in kinds.KINDS if getattr(self.features, name)]

  def module_config(self, config_type: Type[_Config],
                    code_version: str = '') -> _Config:
    """The typed module config of one component: the spec sections it
    reads (`config_type.sections()`), each with the fields its section type
    declares, as the callback will parse them."""
    sections = {}
    for name in config_type.sections():
      section_type = config_type.model_fields[name].annotation
      sections[name] = getattr(self, name).model_dump(
          include=set(section_type.model_fields))
    return config_type.model_validate({**sections,
                                       'code_version': code_version})


# model.encoders.<column> keys that hold paths, resolved the same way.
_ENCODER_PATH_KEYS = ('huggingface', 'weights', 'keras_file', 'saved_model')
# PipelineSpec fields the loader and the runner set, never a YAML key.
_INTERNAL = ('source', 'module_functions', 'module_steps', 'label_stats')
# Keys that hold paths, resolved against the spec's folder.
_PATH_KEYS = (('data', 'csv'), ('data', 'tfrecord'), ('schema',),
              ('module_file',), ('push', 'destination'),
              ('runner', 'pipeline_root'), ('runner', 'metadata'),
              ('training', 'base_model', 'path'))


TUNER_WORKER = 'TunerWorker'  # Kubeflow: node ids TunerWorker1, ...


def tuner_worker_ids(spec: 'PipelineSpec') -> List[str]:
  """Kubeflow's TunerWorker nodes for `spec`: one pod per parallel trial
  beyond the Tuner's own (none without the Tuner)."""
  asked = spec.tuner.parallel_trials
  if not spec.tuner.enabled:
    return []
  if not isinstance(asked, int):
    raise ValueError(f'{spec.source}: tuner.parallel_trials: {asked!r} counts '
                     'one machine\'s cores; on Kubeflow give the number of '
                     'Tuner pods')
  return [f'{TUNER_WORKER}{number}' for number in range(1, asked)]


def is_uri(path: str) -> bool:
  return bool(re.match(r'^[a-z][a-z0-9+.-]*://', path))


def _resolve_paths(raw: Dict[str, Any], base_dir: str) -> None:
  encoders = (raw.get('model') or {}).get('encoders') if isinstance(
      raw.get('model'), dict) else None
  for chosen in (encoders or {}).values() if isinstance(encoders,
                                                         dict) else ():
    if not isinstance(chosen, dict):
      continue
    for key in _ENCODER_PATH_KEYS:
      value = chosen.get(key)
      if not isinstance(value, str) or not value or is_uri(value):
        continue
      relative = os.path.join(base_dir, os.path.expanduser(value))
      # A Hugging Face model name (owner/name) is left as it is unless a
      # folder of that name is beside the spec; `weights: imagenet` too.
      if key == 'huggingface' and not (
          value.startswith(('.', '/', '~')) or os.path.exists(relative)):
        continue
      if key == 'weights' and value == 'imagenet':
        continue
      chosen[key] = os.path.normpath(relative)
  for keys in _PATH_KEYS:
    node = raw
    for key in keys[:-1]:
      node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict):
      continue
    value = node.get(keys[-1])
    if isinstance(value, str) and value and not is_uri(value):
      node[keys[-1]] = os.path.normpath(
          os.path.join(base_dir, os.path.expanduser(value)))


def _allowed_keys(model: type, loc: Tuple[Any, ...]) -> List[str]:
  """Names the keys allowed at `loc`'s parent, for 'unknown key' errors."""
  current: Any = model
  for part in loc[:-1]:
    if isinstance(part, int) or current is None:
      return []
    field = current.model_fields.get(part) or next(
        (f for f in current.model_fields.values() if f.alias == part), None)
    annotation = field.annotation if field else None
    current = annotation if isinstance(annotation, type) and issubclass(
        annotation, BaseModel) else None
  if current is None:
    return []
  return sorted(f.alias or name for name, f in current.model_fields.items()
                if name not in _INTERNAL)


def _key_path(loc: Tuple[Any, ...]) -> Tuple[Any, ...]:
  """A pydantic error location without its union-member tags (e.g.
  "literal['mean','median']", "float", "constrained-int"): the keys a user
  wrote."""
  return tuple(p for p in loc
               if isinstance(p, int) or re.match(r'^[A-Za-z_][\w-]*$', p) and
               p not in ('float', 'int', 'str', 'bool', 'dict', 'list') and
               not p.startswith('constrained-') and not p[0].isupper())


def _format_error(source: str, errors: List[Dict[str, Any]]) -> str:
  """The first error as one line; the alternatives of a union (a fill that
  is a keyword or a number, say) joined with "or"."""
  err = errors[0]
  loc = _key_path(tuple(err['loc']))
  key = '.'.join(str(p) for p in loc) or '<top level>'
  if key.startswith('schema_file'):
    key = 'schema' + key[len('schema_file'):]
  if err['type'] == 'extra_forbidden':
    allowed = _allowed_keys(PipelineSpec, loc)
    return (f'{source}: {key}: unknown key; allowed keys here: '
            f'{", ".join(allowed)}')
  if err['type'] == 'missing':
    return f'{source}: {key}: required key is missing'
  alternatives = []
  for other in errors:
    if _key_path(tuple(other['loc'])) == loc and other['type'] != 'missing':
      msg = other['msg'].replace('Input should be ', '')
      if msg not in alternatives:
        alternatives.append(msg)
  got = repr(err.get('input'))
  # A long value is shown by its start: the line names the key anyway.
  got = got if len(got) <= 60 else got[:57] + '...'
  return f'{source}: {key}: must be {"; or ".join(alternatives)} (got {got})'


def _check(cond: bool, source: str, key: str, message: str) -> None:
  if not cond:
    raise SpecError(f'{source}: {key}: {message}')


def _check_range(source: str, key: str, r: Union[IntRange, FloatRange]):
  _check(r.min <= r.max, source, key,
         f'min ({r.min}) must not exceed max ({r.max})')
  if isinstance(r, FloatRange) and r.sampling == 'log':
    _check(r.min > 0, source, key + '.min', 'must be > 0 with sampling: log')
    _check(r.step is None or r.step > 1, source, key + '.step',
           'with sampling: log, step is a factor and must be > 1')


def _check_engine(source: str, key: str, name: str,
                  options: Mapping[str, Any]) -> None:
  """The engine is registered and its options are its own, well typed."""
  try:
    engine = engines.get(name)
  except ValueError as e:
    raise SpecError(f'{source}: {key}.engine: {e}') from None
  try:
    engine.options.model_validate(dict(options))
  except pydantic.ValidationError as e:
    err = e.errors()[0]
    where = '.'.join(str(p) for p in err['loc'])
    where = f'{key}.engine_options' + (f'.{where}' if where else '')
    if err['type'] == 'extra_forbidden':
      allowed = ', '.join(sorted(engine.options.model_fields)) or 'none'
      raise SpecError(f'{source}: {where}: not an option of the {name} '
                      f'engine; its options: {allowed}') from None
    if err['type'] == 'missing':
      raise SpecError(f'{source}: {where}: required by the {name} engine'
                      ) from None
    message = err['msg'].removeprefix('Value error, ')
    raise SpecError(f'{source}: {where}: {message} '
                    f'(got {err.get("input")!r})') from None


# The largest values a spec may give, by key: far past any run this project
# makes, small enough that a typo (an extra zero or three, 1e20) is refused
# before it allocates a layer or loops for a lifetime (docs/spec.md).
MAXIMA = {
    'training.epochs': 10_000,
    'training.train_steps': 100_000_000,
    'training.eval_steps': 100_000_000,
    'tuner.max_trials': 10_000,
    'tuner.max_epochs': 10_000,
    'tuner.factor': 100,
    'tuner.hyperband_iterations': 100,
    'model.search_space.num_layers': 64,
    'model.search_space.units': 65_536,
    'model.search_space.batch_size': 65_536,
    'model.search_space.embedding_dim': 4_096,
    'model.search_space.finetune.head_units': 65_536,
    'model.search_space.finetune.epochs_per_stage': 10_000,
}


def _number_text(value: int) -> str:
  """An integer for a message: a huge one by its digit count, so the line
  stays one readable line."""
  text = str(value)
  return text if len(text) <= 20 else f'a {len(text)}-digit number'


def _check_maxima(spec: PipelineSpec) -> None:
  """Every MAXIMA key is at most its maximum (a range by its max, a list by
  each value)."""
  for key, most in MAXIMA.items():
    node: Any = spec
    for part in key.split('.'):
      node = getattr(node, part)
    values = node if isinstance(node, list) else [
        node.max if isinstance(node, IntRange) else node]
    for value in values:
      _check(value is None or value <= most, spec.source, key,
             f'at most {most} (got {_number_text(value)})')


def _check_consistency(spec: PipelineSpec) -> None:
  """Cross-key rules that single fields cannot express. Rules that depend
  on the number of classes or on the feature lists wait until the runner
  has read them from the data (`PipelineSpec.resolved`)."""
  src = spec.source
  f = spec.features
  seen: Dict[str, str] = {}
  for group in ('numeric', 'categorical', 'date', 'text', 'image', 'exclude'):
    for name in getattr(f, group):
      _check(name not in seen, src, f'features.{group}',
             f'{name!r} is listed twice (also in features.{seen.get(name)})')
      seen[name] = group
  _check(f.label not in seen, src, 'features.label',
         f'{f.label!r} is also listed in features.{seen.get(f.label)}; the '
         'label is neither a feature nor excluded')
  _check_data(spec)
  _check_engine(src, 'runner', spec.runner.engine, spec.runner.engine_options)
  _check_engine(src, 'kubeflow', spec.kubeflow.engine,
                spec.kubeflow.engine_options)
  split = spec.data.split
  if isinstance(split, TimeSplit):
    _check(split.by != f.label, src, 'data.split.by',
           'split by a feature or an excluded column, not the label')
    _check(not f.listed or split.by in seen, src, 'data.split.by',
           f'{split.by!r} is not a declared feature or excluded column')
  else:
    _check(set(split) == {'train', 'eval'}, src, 'data.split',
           f'must name exactly the splits train and eval (got {sorted(split)})')
    for name, buckets in split.items():
      _check(buckets >= 1, src, f'data.split.{name}',
             f'hash buckets must be >= 1 (got {buckets})')
  _check_maxima(spec)
  _check_search_space(spec)
  _check_model(spec)
  _check_training(spec)
  _check_module_file(spec)
  _check_impute(spec, seen)
  if is_known(f):
    _check(spec.task.classifies or f.num_classes is None, src,
           'features.num_classes', 'a regression label has no classes')
    _check_evaluation(spec)
  if spec.is_resolved:
    for i, slice_keys in enumerate(spec.evaluation.slices):
      _check(bool(slice_keys), src, f'evaluation.slices.{i}',
             'a slice names at least one feature (the overall slice is always '
             'computed)')
      for key in slice_keys:
        _check(key in seen, src, f'evaluation.slices.{i}',
               f'{key!r} is not a declared feature or excluded column')
    for i, gate in enumerate(spec.evaluation.slice_thresholds):
      for key in gate.features:
        _check(key in seen, src, f'evaluation.slice_thresholds.{i}.slice',
               f'{key!r} is not a declared feature or excluded column')
  metadata = spec.runner.metadata
  _check(not is_uri(metadata) or metadata.startswith('mysql://'), src,
         'runner.metadata', 'give a SQLite file path or a '
         'mysql://user@host:port/database URI (grpc:// stores are read by the '
         'lineage commands only)')


def _check_data(spec: PipelineSpec) -> None:
  """One data key; the CSV reading rules are not offered for tf.Examples,
  whose values are typed and whose missing values are absent features."""
  src, data = spec.source, spec.data
  given = [k for k in ('csv', 'tfrecord') if getattr(data, k) is not None]
  _check(len(given) == 1, src, 'data', 'give exactly one of csv, tfrecord '
         f'(got {" and ".join(given) or "none"})')
  _check(bool(data.path), src, data.key, 'must name a folder or a file')
  if data.format != 'tfrecord':
    return
  _check(list(data.null_values) == list(DEFAULT_NULL_VALUES), src,
         'data.null_values', 'only CSV cells are read as missing by their '
         'text; in tf.Examples a missing value is an absent or empty feature '
         '(remove null_values)')
  _check(not isinstance(data.split, TimeSplit), src, 'data.split',
         'a time split reads CSV; TFRecords are split by hash buckets '
         '({train: 4, eval: 1})')


def _check_search_space(spec: PipelineSpec) -> None:
  src, space = spec.source, spec.model.search_space
  for name in ('num_layers', 'units', 'dropout', 'learning_rate'):
    _check_range(src, f'model.search_space.{name}', getattr(space, name))
  _check(space.num_layers.min >= 1, src, 'model.search_space.num_layers.min',
         'must be >= 1')
  _check(space.units.min >= 1, src, 'model.search_space.units.min',
         'must be >= 1')
  _check(space.dropout.max < 1, src, 'model.search_space.dropout.max',
         'must be < 1')
  _check(space.learning_rate.min > 0, src,
         'model.search_space.learning_rate.min', 'must be > 0')
  _check(all(b >= 1 for b in space.batch_size), src,
         'model.search_space.batch_size', 'every batch size must be >= 1')
  for name in ('l1', 'l2'):
    _check(all(v >= 0 for v in getattr(space, name)), src,
           f'model.search_space.{name}', 'values must be >= 0')


def _check_thresholds(spec: PipelineSpec, key: str,
                      thresholds: Mapping[str, Threshold]) -> None:
  src, task = spec.source, spec.task
  metrics = spec.evaluation.metric_names(task)
  for metric, bound in thresholds.items():
    where = f'{key}.{metric}'
    _check(metric in metrics, src, where,
           f'metric {metric!r} is not in evaluation.metrics '
           f'({", ".join(metrics)}); add it there first')
    _check(isinstance(bound, Bounds) or task.direction(metric) is not None,
           src, where,
           f'{metric} has no better direction: give {{lower: .., upper: ..}}')
    if isinstance(bound, Bounds):
      _check(bound.lower is not None or bound.upper is not None, src, where,
             'give lower, upper or both')
      if bound.lower is not None and bound.upper is not None:
        _check(bound.lower <= bound.upper, src, where,
               'lower must not exceed upper')


def _check_evaluation(spec: PipelineSpec) -> None:
  """Rules that depend on the task."""
  src, ev, task = spec.source, spec.evaluation, spec.task
  for metric in ev.metric_names(task):
    _check(metric in task.metrics, src, 'evaluation.metrics',
           f'{metric!r} is not a {task.description} metric; use: '
           f'{", ".join(task.metrics)}')
  _check_thresholds(spec, 'evaluation.thresholds', ev.thresholds)
  for i, gate in enumerate(ev.slice_thresholds):
    _check_thresholds(spec, f'evaluation.slice_thresholds.{i}.thresholds',
                      gate.thresholds)
  for metric, value in ev.change_thresholds.items():
    _check_thresholds(spec, 'evaluation.change_thresholds', {metric: value})
    _check(task.direction(metric) is not None, src,
           f'evaluation.change_thresholds.{metric}',
           f'{metric} has no better direction; allowed: ' + ', '.join(
               m for m in task.metrics if task.direction(m)))
  _check(ev.decision_threshold == 0.5 or bool(task.thresholded_metrics), src,
         'evaluation.decision_threshold',
         f'only a binary label has one (this is {task.description})')
  monitors = task.monitors
  _check(spec.tuner.objective in monitors, src, 'tuner.objective',
         f'{spec.tuner.objective!r} is not reported for {task.description}; '
         f'allowed: {", ".join(monitors)}')
  early = spec.training.early_stopping
  _check(early is None or early.monitor in monitors, src,
         'training.early_stopping.monitor',
         f'{early and early.monitor!r} is not reported for '
         f'{task.description}; allowed: {", ".join(monitors)}')
  choices = spec.training.choices()
  _check(task.losses != () or choices['loss'] == ['mse'], src,
         'training.loss', f'only regression chooses a loss ({task.description}'
         ' trains by cross-entropy)')
  _check(len(choices['loss']) == 1 or spec.tuner.objective != 'val_loss',
         src, 'tuner.objective', 'val_loss means another thing under each '
         'loss: with a searched training.loss use val_rmse or val_mae')
  _check(task.classifies or choices['class_weight'] == ['none'], src,
         'training.class_weight', 'only a classification label has classes '
         'to weigh')


def _check_impute(spec: PipelineSpec, seen: Mapping[str, str]) -> None:
  """Per-feature imputation rules name features, with a fill of their kind."""
  src, impute = spec.source, spec.preprocessing.impute
  _check(not isinstance(impute.numeric, float) or
         math.isfinite(impute.numeric), src,
         'preprocessing.impute.numeric', 'must be a finite number')
  listed = spec.features.listed
  for name, rule in impute.features.items():
    key = f'preprocessing.impute.features.{name}'
    group = seen.get(name)
    if listed:
      _check(group in ('numeric', 'categorical', 'date'), src, key,
             f'{name!r} is not a numeric, categorical or date feature')
    if rule.fill is None or group is None:
      continue
    numeric_fill = (isinstance(rule.fill, float) or
                    rule.fill in NUMERIC_FILLS)
    if group in ('numeric', 'date'):
      _check(numeric_fill, src, f'{key}.fill',
             f'{name} is numeric: use mean, median, zero or a number')
      _check(not isinstance(rule.fill, float) or math.isfinite(rule.fill),
             src, f'{key}.fill', 'must be a finite number')
    else:
      _check(not numeric_fill, src, f'{key}.fill',
             f'{name} is categorical: use missing_bucket, most_frequent or '
             '{constant: TOKEN}')


def _check_module_file(spec: PipelineSpec) -> None:
  """A module file's tuner_fn and run_fn come as a pair when the Tuner runs:
  the project's run_fn cannot train on another search space's values, nor
  the module's run_fn on the project's. A step count they read is set:
  TFX hands them None otherwise, and TFX's penguin module then fails every
  tuning trial (Keras Tuner stops after three, with a traceback for a
  message)."""
  if not spec.module_file:
    return
  trains = spec.uses_module_file('run_fn') or (
      spec.tuner.enabled and spec.uses_module_file('tuner_fn'))
  for name in spec.module_steps if trains else ():
    _check(getattr(spec.training, name) is not None, spec.source,
           f'training.{name}',
           f'module_file {os.path.basename(spec.module_file)} reads '
           f'fn_args.{name}, which is None unless set: give the number of '
           f'steps (TFX\'s penguin example: train_steps 100, eval_steps 5)')
  if not spec.tuner.enabled:
    return
  has_tuner = spec.uses_module_file('tuner_fn')
  has_run = spec.uses_module_file('run_fn')
  _check(has_tuner == has_run, spec.source, 'module_file',
         f'{spec.module_file} defines {"tuner_fn" if has_tuner else "run_fn"} '
         f'but not {"run_fn" if has_tuner else "tuner_fn"}: with the Tuner on, '
         'the module file defines both or neither (or set tuner.enabled: '
         'false)')


def _check_model(spec: PipelineSpec) -> None:
  src, model, f = spec.source, spec.model, spec.features
  builders = model.builders
  _check(len(builders) == 1 or 'cnn' not in builders, src, 'model.builder',
         'cnn lays the features out as an image: it is not chosen between '
         '(give it alone)')
  _check('gbt' not in builders or spec.training.mode == 'scratch', src,
         'model.builder', 'gbt trees are trained from scratch; fine-tuning '
         'needs the dnn or cnn builder (training.mode: finetune)')
  if builders == ['cnn']:
    _check(model.image is not None, src, 'model.image',
           'the cnn builder needs {height, width, channels}')
    pixels = model.image.height * model.image.width * model.image.channels
    listed = f.listed
    _check(not listed or (pixels == len(f.numeric) and not f.categorical
                          and not f.date),
           src, 'model.image',
           f'height x width x channels is {pixels} but the cnn builder takes '
           f'the numeric features as pixels ({len(f.numeric)} numeric, '
           f'{len(f.categorical)} categorical)')
    _check(not spec.preprocessing.impute.indicator and not any(
        rule.indicator for rule in spec.preprocessing.impute.features.values()),
           src, 'preprocessing.impute.indicator', 'the cnn builder takes the '
           'numeric features as pixels only; indicators need the dnn builder')
  else:
    _check(model.image is None, src, 'model.image',
           'only the cnn builder takes an image layout')
  _check_encoders(spec)
  ft = model.search_space.finetune
  key = 'model.search_space.finetune'
  _check_range(src, f'{key}.unfreeze_blocks', ft.unfreeze_blocks)
  _check_range(src, f'{key}.backbone_lr_scale', ft.backbone_lr_scale)
  _check(ft.backbone_lr_scale.min > 0 and ft.backbone_lr_scale.max <= 1, src,
         f'{key}.backbone_lr_scale', 'must lie in (0, 1]: the backbone '
         'learns at most as fast as the head')
  _check(all(0 < v <= 1 for v in ft.lr_decay), src, f'{key}.lr_decay',
         'values must lie in (0, 1]')
  _check(all(v >= 0 for v in ft.head_units), src, f'{key}.head_units',
         'values must be >= 0 (0: no hidden layer in the new head)')
  _check(all(v >= 1 for v in ft.epochs_per_stage), src,
         f'{key}.epochs_per_stage', 'values must be >= 1')


def _check_encoders(spec: PipelineSpec) -> None:
  """model.encoders: each names a text or image feature (once the features
  are known), with an encoder of its kind; trees take no encoded column;
  one pretrained encoder at most (it reaches the Trainer, and lineage,
  through the one base_model channel), not beside a base model."""
  src, model, f = spec.source, spec.model, spec.features
  encoded = {key: kind.name for key, kind in kinds.encoded_columns(f)}
  for column, chosen in model.encoders.items():
    key = f'model.encoders.{column}'
    if f.listed:
      _check(column in encoded, src, key,
             f'{column!r} is no text or image feature (features.text: '
             f'{f.text}, features.image: {f.image})')
    kind = encoded.get(column)
    if kind is None or isinstance(chosen, PretrainedEncoder):
      continue
    names = chosen if isinstance(chosen, list) else [chosen]
    allowed = TEXT_ENCODERS if kind == 'text' else IMAGE_ENCODERS
    wrong = [n for n in names if n not in allowed]
    _check(not wrong, src, key, f'{", ".join(wrong)} does not encode '
           f'{kind}; a {kind} column takes {", ".join(allowed)} or a '
           'pretrained encoder')
  _check(not encoded or 'gbt' not in model.builders, src, 'model.builder',
         f'gbt trees take no text or image column ({", ".join(encoded)}); '
         'use the dnn builder')
  pretrained = model.pretrained()
  _check(len(pretrained) <= 1, src, 'model.encoders',
         f'one pretrained encoder per pipeline (got {", ".join(pretrained)})')
  _check(not pretrained or spec.training.base_model is None, src,
         'training.base_model', 'fine-tuning tunes the pretrained encoder '
         'of model.encoders; remove base_model (or the pretrained encoder)')


def _check_training(spec: PipelineSpec) -> None:
  src, training = spec.source, spec.training
  base = training.base_model
  if training.mode == 'finetune' and spec.model.pretrained():
    return  # the pretrained encoders are what is fine-tuned
  if training.mode == 'scratch':
    _check(base is None, src, 'training.base_model',
           'only used with training.mode: finetune (set it, or remove '
           'base_model)')
    return
  _check(base is not None, src, 'training.base_model',
         'training.mode finetune needs a base model: give path or '
         'latest_blessed')
  given = [k for k in ('path', 'latest_blessed') if getattr(base, k)]
  _check(len(given) == 1, src, 'training.base_model',
         f'give exactly one of path, latest_blessed (got {given or "none"})')


def spec_from_dict(raw: Mapping[str, Any], base_dir: str,
                   source: str = '<dict>') -> PipelineSpec:
  """Validates a parsed spec. Relative paths resolve against `base_dir`."""
  if not isinstance(raw, Mapping):
    raise SpecError(f'{source}: the spec must be a YAML mapping of keys '
                    f'(got {type(raw).__name__})')
  data = _deep_copy(dict(raw))
  for internal in _INTERNAL:
    if internal in data:
      raise SpecError(f'{source}: {internal}: unknown key; allowed keys here: '
                      f'{", ".join(_allowed_keys(PipelineSpec, (internal,)))}')
  _resolve_paths(data, base_dir)
  module_file = data.get('module_file')
  module = (read_module(module_file, source)
            if isinstance(module_file, str) else ModuleFile((), ()))
  try:
    spec = PipelineSpec.model_validate({**data, 'source': source,
                                        'module_functions': module.functions,
                                        'module_steps': module.steps})
  except pydantic.ValidationError as e:
    raise SpecError(_format_error(source, e.errors())) from None
  _check_consistency(spec)
  return spec


# TFX's TrainArgs and EvalArgs step counts, as fn_args names them.
STEP_ARGS = ('train_steps', 'eval_steps')


class ModuleFile(NamedTuple):
  """What a module file's source shows, read without importing it: the
  MODULE_FUNCTIONS it defines, and the STEP_ARGS it reads with no fallback
  of its own (`fn_args.train_steps`, not `fn_args.train_steps or 100` nor
  a test of it against None)."""
  functions: Tuple[str, ...]
  steps: Tuple[str, ...]


def _steps_read(tree: ast.Module) -> Tuple[str, ...]:
  """The STEP_ARGS read as attributes anywhere in `tree`, except where the
  read is itself tested (an `or`, a comparison, a condition)."""
  tested = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.BoolOp):
      tested.update(map(id, node.values))
    elif isinstance(node, ast.Compare):
      tested.update(map(id, [node.left, *node.comparators]))
    elif isinstance(node, (ast.If, ast.IfExp, ast.While)):
      tested.add(id(node.test))
  read = {node.attr for node in ast.walk(tree)
          if isinstance(node, ast.Attribute) and node.attr in STEP_ARGS and
          isinstance(node.ctx, ast.Load) and id(node) not in tested}
  return tuple(name for name in STEP_ARGS if name in read)


def read_module(path: str, source: str) -> ModuleFile:
  """A module file's functions and step reads (`ModuleFile`).

  Raises:
    SpecError: no such file, not Python, or none of MODULE_FUNCTIONS
      defined at its top level (a def, an assignment or an import of that
      name).
  """
  key = f'{source}: module_file'
  if is_uri(path):
    raise SpecError(f'{key}: {path}: give a local file (the runner packages '
                    'it for the components)')
  if not os.path.isfile(path):
    kind = special_kind(path)
    raise SpecError(f'{key}: {path}: ' + (f'{kind}, not a Python file'
                                          if kind else 'no such file'))
  try:
    with open(path, encoding='utf-8') as f:
      tree = ast.parse(f.read(), path)
  except (SyntaxError, UnicodeDecodeError, ValueError) as e:
    raise SpecError(f'{key}: {path}: not a Python module '
                    f'({type(e).__name__}: {e})') from None
  names = set()
  for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      names.add(node.name)
    elif isinstance(node, ast.Assign):
      names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
      names.update((a.asname or a.name).split('.')[0] for a in node.names)
  found = tuple(f for f in MODULE_FUNCTIONS if f in names)
  if not found:
    raise SpecError(f'{key}: {path} defines none of '
                    f'{", ".join(MODULE_FUNCTIONS)} at its top level')
  return ModuleFile(found, _steps_read(tree))


def module_functions(path: str, source: str) -> Tuple[str, ...]:
  """The MODULE_FUNCTIONS a module file defines (`read_module`)."""
  return read_module(path, source).functions


def _deep_copy(value: Any) -> Any:
  if isinstance(value, dict):
    return {k: _deep_copy(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_deep_copy(v) for v in value]
  return value


# A spec is a page of settings; a larger file is not one.
MAX_SPEC_BYTES = 1024 * 1024


class _StrictLoader(yaml.SafeLoader):
  """YAML's safe loader without the two ways a spec can say what it does not
  mean: a key given twice (YAML keeps the last, silently) and aliases
  (`*name`, which can also multiply a small file into gigabytes)."""

  def compose_node(self, parent, index):
    if self.check_event(yaml.AliasEvent):
      event = self.peek_event()
      raise yaml.MarkedYAMLError(
          problem='aliases (*name) are not allowed in a spec; write the '
          'value out', problem_mark=event.start_mark)
    return super().compose_node(parent, index)

  def construct_mapping(self, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
      if not isinstance(key_node, yaml.ScalarNode):
        raise yaml.MarkedYAMLError(
            problem='a key must be a plain value, not a list or mapping',
            problem_mark=key_node.start_mark)
      key = self.construct_object(key_node, deep=True)
      if key in seen:
        raise yaml.MarkedYAMLError(
            problem=f'key {key!r} is given twice (first on line {seen[key]}); '
            'keep one', problem_mark=key_node.start_mark)
      seen[key] = key_node.start_mark.line + 1
    return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> Any:
  """YAML text by the strict loader; errors are one line naming `where`."""
  try:
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (safe loader)
  except yaml.YAMLError as e:
    mark = getattr(e, 'problem_mark', None)
    at = f' (line {mark.line + 1}, column {mark.column + 1})' if mark else ''
    problem = getattr(e, 'problem', None) or whole(e)
    raise SpecError(f'{where}: not valid YAML{at}: {problem}') from None
  except RecursionError:
    raise SpecError(f'{where}: not valid YAML: nested too deeply') from None


def read_yaml(path: str) -> Dict[str, Any]:
  """Reads a spec file's YAML, with one-line errors for unreadable files."""
  if os.path.isdir(path):
    raise SpecError(f'{path}: a folder, not a spec file')
  if not os.path.isfile(path):
    kind = special_kind(path)
    raise SpecError(f'{path}: {kind}, not a spec file' if kind else
                    f'{path}: spec file not found')
  try:
    size = os.path.getsize(path)
    if size > MAX_SPEC_BYTES:
      raise SpecError(f'{path}: {size} bytes; a spec is at most '
                      f'{MAX_SPEC_BYTES // 1024} KiB of YAML')
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise SpecError(f'{path}: cannot be read ({e.strerror or e})') from None
  try:
    text = data.decode('utf-8-sig')
  except UnicodeDecodeError as e:
    raise SpecError(f'{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at '
                    f'offset {e.start}); a spec is a YAML text file') from None
  if '\x00' in text:
    raise SpecError(f'{path}: a binary file, not a YAML spec')
  raw = parse_yaml(text, path)
  if raw is None:
    raise SpecError(f'{path}: the spec file is empty')
  return raw


def load_spec(path: str,
              overrides: Optional[Mapping[str, Any]] = None) -> PipelineSpec:
  """Reads and validates the spec at `path`.

  Args:
    path: a YAML spec file.
    overrides: dotted keys to values, applied before validation
      (e.g. {'tuner.max_trials': 2}); used by `--set` and by tests.

  Returns:
    The validated PipelineSpec.

  Raises:
    SpecError: with a one-line message naming the file and the key.
  """
  raw = read_yaml(path)
  for dotted, value in (overrides or {}).items():
    set_dotted(raw, dotted, value)
  return spec_from_dict(raw, os.path.dirname(os.path.abspath(path)),
                        source=path)


def set_dotted(raw: Dict[str, Any], dotted: str, value: Any) -> None:
  """Sets raw['a']['b'] = value for dotted='a.b', creating mappings."""
  node = raw
  parts = dotted.split('.')
  for part in parts[:-1]:
    child = node.get(part)
    if child is None:
      child = node[part] = {}
    if not isinstance(child, dict):
      raise SpecError(f'--set {dotted}: {part!r} is not a mapping')
    node = child
  node[parts[-1]] = value


def parse_override(text: str) -> Tuple[str, Any]:
  """Parses 'key.path=value' (value as YAML) from the command line."""
  if '=' not in text:
    raise SpecError(f'--set {text}: expected KEY=VALUE, e.g. tuner.max_trials=2')
  key, value = text.split('=', 1)
  return key.strip(), parse_yaml(value, f'--set {text}')
