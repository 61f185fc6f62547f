"""AnomaliesGate: stops the run before Transform when ExampleValidator
reports anomalies.

The decision is a pure function (`describe_anomalies`) over TFDV's Anomalies
protos; the component is a thin executor around it. Transform is made to run
after the gate, so a failed gate means no Transform, no training, no push.
"""

import os
from typing import Dict, List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

_FILE_NAME = 'SchemaDiff.pb'  # what ExampleValidator writes in each split


class AnomaliesFound(RuntimeError):
  """The data does not match the schema. The message is one line."""


def describe_anomalies(
  by_split: Dict[str, anomalies_pb2.Anomalies],
) -> List[str]:
  """One short description per anomalous feature, e.g.
  "train: mean_radius: Out-of-range values (...)"; empty when clean."""
  found = []
  for split, anomalies in sorted(by_split.items()):
    for feature, info in sorted(anomalies.anomaly_info.items()):
      detail = info.short_description or info.description
      found.append(f'{split}: {feature}: {detail}')
    if anomalies.HasField('dataset_anomaly_info'):
      info = anomalies.dataset_anomaly_info
      found.append(
        f'{split}: <dataset>: {info.short_description or info.description}'
      )
  return found


def read_anomalies(
  artifact: standard_artifacts.ExampleAnomalies,
) -> Dict[str, anomalies_pb2.Anomalies]:
  """The Anomalies proto of each split in an ExampleAnomalies artifact."""
  result = {}
  for split in artifact_utils.decode_split_names(artifact.split_names):
    path = os.path.join(
      artifact_utils.get_split_uri([artifact], split), _FILE_NAME
    )
    result[split] = anomalies_pb2.Anomalies.FromString(
      io_utils.read_bytes_file(path)
    )
  return result


@component
def AnomaliesGate(  # pylint: disable=invalid-name
  anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
) -> None:
  """Fails the run, naming each anomaly, when the data breaks the schema."""
  found = describe_anomalies(read_anomalies(anomalies))
  if found:
    raise AnomaliesFound(
      f'ExampleValidator found {len(found)} anomal'
      f'{"y" if len(found) == 1 else "ies"}: {"; ".join(found)}. Fix the '
      'data, or update the schema if the change is intended; Transform and '
      'training did not run'
    )
