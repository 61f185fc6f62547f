"""Runs the plain TFX pipeline: TFX 1.16's own penguin pipeline definition
(tfx/examples/penguin/penguin_pipeline_local.create_pipeline, called as is)
with breast_cancer_utils.py, on the project's default data and schema.

Usage: python benchmarks/plain_tfx/run_plain.py WORK_DIR
"""

import os
import shutil
import sys

from absl import flags
from tfx import v1 as tfx
from tfx.examples.penguin import penguin_pipeline_local

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def main(work_dir: str) -> None:
  flags.FLAGS(sys.argv[:1])  # the penguin module defines absl flags
  labelled = os.path.join(work_dir, 'data', 'labelled')
  os.makedirs(labelled, exist_ok=True)
  shutil.copy(
    os.path.join(REPO, 'data', 'breast_cancer', 'breast_cancer.csv'), labelled
  )
  pipeline = penguin_pipeline_local.create_pipeline(
    pipeline_name='plain-tfx-breast-cancer',
    pipeline_root=os.path.join(work_dir, 'root'),
    data_root=os.path.join(work_dir, 'data'),
    module_file=os.path.join(HERE, 'breast_cancer_utils.py'),
    accuracy_threshold=0.9,
    serving_model_dir=os.path.join(work_dir, 'serving'),
    metadata_path=os.path.join(work_dir, 'metadata.sqlite'),
    user_provided_schema_path=os.path.join(
      REPO, 'schemas', 'breast_cancer', 'schema.pbtxt'
    ),
    enable_tuning=True,
    enable_bulk_inferrer=False,
    enable_example_diff=False,
    examplegen_input_config=None,
    examplegen_range_config_date=None,
    resolver_range_config=None,
    # The penguin example's own DirectRunner arguments.
    beam_pipeline_args=[
      '--direct_running_mode=multi_processing',
      '--direct_num_workers=0',
    ],
    enable_transform_input_cache=False,
  )
  tfx.orchestration.LocalDagRunner().run(pipeline)


if __name__ == '__main__':
  main(sys.argv[1])
