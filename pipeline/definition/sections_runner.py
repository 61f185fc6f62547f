"""The spec's sections on where the pipeline runs and pushes: `push`,
`runner` (locally) and `kubeflow` (with each task's resources)."""

from typing import Any, Dict, List, Literal, Optional

from pydantic import ConfigDict, Field

from modules.config import Strict as _Strict
from pipeline.definition.sections_data import NAME_PATTERN
from pipeline.engines import registry as engines


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
