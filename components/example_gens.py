"""The pipeline's ExampleGen node ids, one per data format.

A spec's `data.csv` is read by the project's CsvExampleGen
(components/csv_example_gen.py), its `data.tfrecord` by TFX's
ImportExampleGen; each keeps its own node id, so that lineage and the run
report say which read the data. Code that reads the ExampleGen's outputs
(the splits it wrote, its Examples artifact) looks under every id here.

No TensorFlow or Beam here: the readers of ML Metadata import it.
"""

from typing import Dict, Tuple

# Data format (the `data` key that names the input) -> the node id.
EXAMPLE_GENS: Dict[str, str] = {
  'csv': 'CsvExampleGen',
  'tfrecord': 'ImportExampleGen',
}
EXAMPLE_GEN_IDS: Tuple[str, ...] = tuple(EXAMPLE_GENS.values())
