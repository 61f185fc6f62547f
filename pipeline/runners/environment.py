"""What every runner works out the same way before calling create_pipeline.

The local runner and the Kubeflow runner differ in where things are (paths
or URIs, a metadata store or none, how the baseline is found); what they
share is here, so neither copies the other: the fingerprints of the module
code (which go into the cache keys) and the `Environment` itself.
"""

import hashlib
import os
from typing import Any, Dict, List, Optional, Tuple

REPO_ROOT = os.path.dirname(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
MODULES_DIR = os.path.join(REPO_ROOT, 'modules')
# The module files preprocessing_fn runs (Transform's cache key; a folder
# stands for every file under it); Tuner and Trainer depend on all of
# modules/.
TRANSFORM_MODULES = ('config', 'features.py', 'preprocessing.py')


def code_fingerprint(
  package_dir: Optional[str] = None, files: Optional[Tuple[str, ...]] = None
) -> str:
  """sha256 (first 16 hex digits) of modules/**/*.py (or just `files`)."""
  package_dir = package_dir or MODULES_DIR
  digest = hashlib.sha256()
  for name in _python_files(package_dir):
    if files is None or name.split('/')[0] in files:
      digest.update(name.encode())
      with open(os.path.join(package_dir, name), 'rb') as f:
        digest.update(f.read())
  return digest.hexdigest()[:16]


def _python_files(package_dir: str) -> List[str]:
  """The .py files under `package_dir`, as sorted '/'-separated paths."""
  found = []
  for folder, _, names in os.walk(package_dir):
    relative = os.path.relpath(folder, package_dir).replace(os.sep, '/')
    found.extend(
      name if relative == '.' else f'{relative}/{name}'
      for name in names
      if name.endswith('.py')
    )
  return sorted(found)


def build_environment(
  pipeline_root: str,
  beam_args: List[str],
  enable_cache: bool,
  metadata_connection_config: Optional[Any] = None,
  base_model_uri: Optional[str] = None,
  base_model_push_base: Optional[str] = None,
  baseline: str = 'local',
  platform_configs: Optional[Dict[str, Any]] = None,
  column_kinds: Optional[Dict[str, str]] = None,
  tuner_pods: bool = False,
):
  """The definition's Environment, with this checkout's code fingerprints.

  Returns:
    pipeline.definition.pipeline.Environment.
  """
  from pipeline.definition.pipeline import Environment  # pylint: disable=g-import-not-at-top

  return Environment(
    pipeline_root=pipeline_root,
    metadata_connection_config=metadata_connection_config,
    beam_pipeline_args=list(beam_args),
    enable_cache=enable_cache,
    code_version=code_fingerprint(),
    transform_code_version=code_fingerprint(files=TRANSFORM_MODULES),
    base_model_uri=base_model_uri,
    base_model_push_base=base_model_push_base,
    baseline=baseline,
    platform_configs=dict(platform_configs or {}),
    column_kinds=dict(column_kinds or {}),
    tuner_pods=tuner_pods,
  )
