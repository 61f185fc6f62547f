"""Checks that run before the pipeline: the data and schema the spec names.

Everything here is cheap, local and free of TensorFlow, so a wrong column, a
mistyped value or a missing required cell is reported as one line naming
the file, line and column before Beam starts, and long before anything
could be trained or pushed. The CSV is read by components/csv_format.py's
rules, the ones the pipeline's ExampleGen reads it by, so what passes here
is what the pipeline reads. `validate` runs exactly these checks.

TFRecord data (`data.tfrecord`) is read through TensorFlow, imported only
then (`tfrecord_examples`): each tf.Example's value lists give the column
kinds (int64 INT, float FLOAT, bytes STRING), and a bytes value that is an
encoded image (PNG, JPEG, GIF, BMP, by its first bytes) makes an image
column, recognised as the CSV's image paths are.

The data also decides what a spec may leave out: the number of classes (a
STRING label's distinct names; an INT label's largest index + 1) and, when
no feature is listed, the features (every other column: numbers numeric,
text categorical). `run_preflight` returns the spec with them filled in.

Distribution problems (values out of the schema's domain, drift) are left to
ExampleValidator and the AnomaliesGate inside the pipeline.

The checks, one job per module: `files` (the data's files, a CSV file's
header, a TFRecord file's tf.Examples), `schema` (the schema read and
checked against the spec), `scan` (one pass over the rows), `columns` (the
columns against the spec, their kinds, id-like features), `labels` (the
task and classes the label implies), `places` (the paths, the store and the
engine), `models` (a base model or a pretrained encoder), `run` (all of
them in order); `common` holds what they share (the error, file access).
"""

from pipeline.runners.preflight.columns import ID_LIKE_SHARE
from pipeline.runners.preflight.common import PreflightError
from pipeline.runners.preflight.files import (
  csv_files,
  data_files,
  tfrecord_examples,
)
from pipeline.runners.preflight.models import (
  check_base_model,
  check_encoder,
  locate_base_model,
)
from pipeline.runners.preflight.places import (
  check_local_engine,
  check_paths,
  check_store,
)
from pipeline.runners.preflight.run import Preflight, run_preflight
from pipeline.runners.preflight.scan import DISTINCT_CAP, check_csv
from pipeline.runners.preflight.schema import (
  SCHEMA_KINDS,
  check_features,
  is_optional,
  load_schema,
  schema_problems,
)

__all__ = [
  'DISTINCT_CAP',
  'ID_LIKE_SHARE',
  'SCHEMA_KINDS',
  'Preflight',
  'PreflightError',
  'check_base_model',
  'check_csv',
  'check_encoder',
  'check_features',
  'check_local_engine',
  'check_paths',
  'check_store',
  'csv_files',
  'data_files',
  'is_optional',
  'load_schema',
  'locate_base_model',
  'run_preflight',
  'schema_problems',
  'tfrecord_examples',
]
