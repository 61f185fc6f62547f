"""Where and how a pipeline runs: the `Environment` a runner builds
(pipeline/runners/environment.py) and `create_pipeline` reads."""

import dataclasses
from typing import Any, Dict, List, Optional


@dataclasses.dataclass(frozen=True)
class Environment:
  """Where and how a pipeline runs; built by a runner, not by the spec."""

  pipeline_root: str
  metadata_connection_config: Optional[Any] = None
  beam_pipeline_args: List[str] = dataclasses.field(default_factory=list)
  enable_cache: bool = True
  # Fingerprints of the module code. Components take module code by import
  # path, which TFX does not fingerprint; putting these in custom_config makes
  # a code change invalidate the cache of the components that run it.
  code_version: str = ''  # all of modules/: Tuner and Trainer
  transform_code_version: str = ''  # what preprocessing_fn runs: Transform
  # Fine-tuning only: the base model's URI, located by the runner (a path
  # from the spec, or a pipeline's latest blessed model). Imported with
  # reimport=False, so a model already in ML Metadata keeps its artifact id
  # and the lineage runs on into the pipeline that trained it.
  base_model_uri: Optional[str] = None
  # Fine-tuning on Kubeflow from a pipeline's last pushed model: that
  # pipeline's push base (<destination>/<model name>); a PushedModel node
  # copies its newest version. Exclusive with base_model_uri.
  base_model_push_base: Optional[str] = None
  # How the Evaluator's baseline is found (pipeline.py's docstring).
  baseline: str = 'local'
  # Kubeflow only: node id -> KFP ResourceSpec proto (with_platform_config).
  platform_configs: Dict[str, Any] = dataclasses.field(default_factory=dict)
  # Kubeflow only: parallel trials run in pods, the Tuner's and those of
  # its TunerWorker nodes (spec.tuner_worker_ids), which meet under the
  # pipeline root; locally they are processes inside the Tuner.
  tuner_pods: bool = False
  # Each CSV column's kind (INT, FLOAT, STRING) as the runner found it
  # (declared by the schema, or inferred from the data); ExampleGen infers
  # the columns not listed.
  column_kinds: Dict[str, str] = dataclasses.field(default_factory=dict)
