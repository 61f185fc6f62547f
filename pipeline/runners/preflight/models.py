"""Fine-tuning's base model and a pretrained encoder: located, loaded and
checked to fit the spec's columns (Keras is imported only then)."""

from typing import Optional

from modules import kinds as kinds_lib
from pipeline.definition.spec import PipelineSpec
from pipeline.runners.preflight.common import PreflightError


def check_base_model(spec: PipelineSpec, location: str) -> None:
  """Fine-tuning: the base model at `location` loads as a Keras model and
  takes the spec's transformed features. Raises PreflightError (one line)."""
  # Imported here: only fine-tuning runs pay for loading Keras.
  # pylint: disable=g-import-not-at-top
  from modules import finetune
  from modules import model as model_lib
  from modules.config import TransformConfig

  # pylint: enable=g-import-not-at-top
  config = spec.module_config(TransformConfig)
  inputs = model_lib.ModelInputs(
    numeric=config.numeric_inputs(),
    categorical={name: 0 for name in config.id_inputs()},
    task=config.task,
  )
  try:
    finetune.load_checked(location, inputs)
  except finetune.BaseModelError as e:
    raise PreflightError(f'{spec.source}: training.base_model: {e}') from None


def check_encoder(spec: PipelineSpec) -> Optional[str]:
  """The spec's pretrained encoder: located, loaded and checked to fit its
  column (model.encoders). Returns its location (None: Keras's imagenet
  download). Raises PreflightError (one line)."""
  # Imported here: only a spec with a pretrained encoder pays for Keras.
  # pylint: disable=g-import-not-at-top
  from modules import encoders
  from modules.config import TransformConfig

  # pylint: enable=g-import-not-at-top
  ((column, encoder),) = spec.model.pretrained().items()
  kind = kinds_lib.kind_of(spec.features, column)
  if kind is None or not kind.encoded:
    raise PreflightError(
      f'{spec.source}: model.encoders.{column}: {column!r} is no text or '
      'image column of the data; list it under features.text or '
      'features.image'
    )
  try:
    location = encoders.locate(column, kind.name, encoder)
    if location == 'imagenet':
      return None
    config = spec.module_config(TransformConfig)
    prep = config.preprocessing
    encoders.load(
      encoders.EncodedColumn(
        column=column,
        kind=kind.name,
        pretrained=encoder,
        location=location,
        image_size=encoders.image_size_for(prep.image_size, True),
      )
    )
  except encoders.EncoderError as e:
    raise PreflightError(f'{spec.source}: {e}') from None
  return location


def locate_base_model(spec: PipelineSpec) -> Optional[str]:
  """Fine-tuning: where the base model is, checked to load and to take the
  spec's transformed features. None when training from scratch.

  With a pretrained encoder (model.encoders), in either training mode:
  where the encoder is, checked to load and fit its column (the pipeline
  imports it through the same channel, so lineage reaches it); None for
  a tf_keras application's `imagenet` weights, which Keras downloads.

  Raises:
    PreflightError: no such model, no blessed model of the named pipeline,
      or a model that does not load or fit (one line).
  """
  if spec.model.pretrained():
    return check_encoder(spec)
  if spec.training.mode != 'finetune':
    return None
  # pylint: disable=g-import-not-at-top
  from pipeline.metadata import lineage, results
  from pipeline.metadata import store as metadata_lib

  # pylint: enable=g-import-not-at-top
  base = spec.training.base_model
  location = base.path
  if not location:
    key = f'{spec.source}: training.base_model.latest_blessed'
    name, metadata = base.latest_blessed, spec.runner.metadata
    if not metadata_lib.exists(metadata):
      raise PreflightError(
        f'{key}: no metadata store at {metadata} yet, so no blessed model of '
        f'{name!r}; run that pipeline first'
      )
    try:
      model = results.latest_blessed_model(lineage.open_store(metadata), name)
    except lineage.LineageError as e:
      raise PreflightError(f'{key}: {e}') from None
    except LookupError:
      raise PreflightError(
        f'{key}: pipeline {name!r} has never run against {metadata}; run its '
        'spec first (it must share runner.metadata)'
      ) from None
    if model is None:
      raise PreflightError(
        f'{key}: pipeline {name!r} has no blessed model in {metadata}; '
        'nothing to fine-tune from'
      )
    location = model.uri
  check_base_model(spec, location)
  return location
