"""The typed module config: spec -> JSON (custom_config) -> the same types.

No TensorFlow here: the config and the spec are plain pydantic.
"""

import ast
import glob
import json
import os

import pytest

from modules import config as config_lib
from pipeline.definition import spec as spec_lib
from tests.conftest import DEFAULT_SPEC, REPO, resolved_spec

SPECS = sorted(glob.glob(os.path.join(REPO, 'pipeline', 'specs', '*.yaml')))
CONFIGS = (
  config_lib.TransformConfig,
  config_lib.TrainerConfig,
  config_lib.TunerConfig,
)


@pytest.mark.parametrize('path', SPECS, ids=os.path.basename)
@pytest.mark.parametrize('config_type', CONFIGS, ids=lambda c: c.__name__)
def test_every_bundled_spec_survives_the_custom_config_round_trip(
  path, config_type
):
  spec = resolved_spec(path)
  config = spec.module_config(config_type, code_version='0123abcd')
  travelled = json.loads(json.dumps(config.to_custom_config()))
  parsed = config_type.from_custom_config(travelled)
  assert parsed == config
  assert type(parsed) is config_type
  # The callback sees exactly the spec's values, section by section.
  for section in config_type.sections():
    fields = set(config_type.model_fields[section].annotation.model_fields)
    expected = getattr(spec, section).model_dump(include=fields)
    assert getattr(parsed, section).model_dump() == expected, section
  assert parsed.code_version == '0123abcd'


def test_each_component_gets_only_the_sections_it_reads():
  assert config_lib.TransformConfig.sections() == ['features', 'preprocessing']
  # The Trainer reads evaluation.decision_threshold alone (the served class).
  assert config_lib.TrainerConfig.sections() == [
    'features',
    'preprocessing',
    'model',
    'training',
    'evaluation',
  ]
  assert set(
    config_lib.TrainerConfig.model_fields['evaluation'].annotation.model_fields
  ) == {'decision_threshold'}
  assert config_lib.TunerConfig.sections() == [
    'features',
    'preprocessing',
    'model',
    'training',
    'tuner',
  ]


def test_a_base_model_path_stays_out_of_the_module_config(tmp_path):
  digits_target = os.path.join(REPO, 'pipeline', 'specs', 'digits_target.yaml')
  spec = spec_lib.load_spec(
    digits_target,
    {
      'training.base_model': {'path': str(tmp_path)},
      'training.train_steps': 100,
    },
  )
  assert spec.training.mode == 'finetune'
  config = spec.module_config(config_lib.TrainerConfig).to_custom_config()
  assert 'base_model' not in config['training']
  assert 'train_steps' not in config['training']  # TFX's TrainArgs carry it
  assert str(tmp_path) not in json.dumps(config)


@pytest.mark.parametrize(
  'mutate,key',
  [
    (lambda c: c['training'].update(epochs='many'), 'training.epochs'),
    (lambda c: c['tuner'].update(algorithm='annealing'), 'tuner.algorithm'),
    (lambda c: c['features'].update(lable='x'), 'features.lable'),
    (lambda c: c.pop('features'), 'features'),
  ],
)
def test_a_custom_config_that_does_not_fit_names_the_key(mutate, key):
  raw = (
    resolved_spec(DEFAULT_SPEC)
    .module_config(config_lib.TunerConfig)
    .to_custom_config()
  )
  mutate(raw)
  with pytest.raises(config_lib.ConfigError) as error:
    config_lib.TunerConfig.from_custom_config(raw)
  message = str(error.value)
  assert message.startswith(f'custom_config is not a TunerConfig: {key}: ')
  assert '\n' not in message


def test_each_default_is_stated_once():
  """A section left out of the spec gets the module config's own default."""
  spec = spec_lib.spec_from_dict(
    {
      'name': 'minimal',
      'data': {'csv': 'd.csv'},
      'schema': 's.pbtxt',
      'features': {'label': 'y', 'numeric': ['x']},
      'push': {'destination': 'serving', 'model_name': 'm'},
      'runner': {'pipeline_root': 'root', 'metadata': 'm.sqlite'},
    },
    '/tmp',
  )
  # Until the data says otherwise: the runner counts the classes.
  assert (
    spec.features.num_classes
    is config_lib.FeaturesSpec(label='y').num_classes
    is None
  )
  config = spec_lib.resolve_spec(spec, 'classification', 2).module_config(
    config_lib.TunerConfig
  )
  assert config.tuner == config_lib.TunerSpec()
  assert config.model == config_lib.ModelSpec()
  assert config.training == config_lib.TuningTrainingSpec()
  assert (
    spec_lib.resolve_spec(spec, 'classification', 2)
    .module_config(config_lib.TrainerConfig)
    .training
    == config_lib.TrainingSpec()
  )


def _string_keys(path):
  """(receiver, key, line) of every `x['key']` and `x.get('key')` in a file."""
  found = []
  for node in ast.walk(ast.parse(open(path).read())):
    if (
      isinstance(node, ast.Subscript)
      and isinstance(node.slice, ast.Constant)
      and isinstance(node.slice.value, str)
    ):
      found.append((ast.unparse(node.value), node.slice.value, node.lineno))
    if (
      isinstance(node, ast.Call)
      and isinstance(node.func, ast.Attribute)
      and node.func.attr == 'get'
      and node.args
      and isinstance(node.args[0], ast.Constant)
      and isinstance(node.args[0].value, str)
    ):
      found.append(
        (ast.unparse(node.func.value), node.args[0].value, node.lineno)
      )
  return found


def test_modules_read_no_spec_value_by_string_key():
  """Spec values reach the modules typed; the only string keys left are
  Keras Tuner hyperparameter names (the values of a trial), Keras's own fit
  keyword arguments and pydantic's error records."""
  from modules import search_space  # pylint: disable=g-import-not-at-top

  hyperparameters = set(
    search_space.names('scratch')
    + search_space.names('finetune')
    + search_space.OTHER_NAMES
  )
  not_spec = {
    'kwargs': {'epochs', 'initial_epoch', 'callbacks', 'verbose'},
    'first': {'loc', 'msg'},
  }
  offending = []
  for path in sorted(glob.glob(os.path.join(REPO, 'modules', '*.py'))):
    for receiver, key, line in _string_keys(path):
      keras_tuner_own = key.startswith('tuner/')  # e.g. Hyperband's epochs
      if (
        key in hyperparameters
        or keras_tuner_own
        or key in not_spec.get(receiver, ())
      ):
        continue
      offending.append(f'{os.path.basename(path)}:{line}: {receiver}[{key!r}]')
  assert not offending, offending


def test_the_tuner_config_leaves_the_trainer_s_epochs_and_seed_out():
  """So that changing only training.epochs re-runs the Trainer and not the
  Tuner (the configs are the components' cache keys)."""
  spec = resolved_spec(DEFAULT_SPEC)
  longer = resolved_spec(
    DEFAULT_SPEC, {'training.epochs': 7, 'training.seed': 3}
  )
  assert spec.module_config(config_lib.TunerConfig) == longer.module_config(
    config_lib.TunerConfig
  )
  assert spec.module_config(config_lib.TrainerConfig) != longer.module_config(
    config_lib.TrainerConfig
  )
  assert set(
    config_lib.TunerConfig.model_fields['training'].annotation.model_fields
  ) == {'mode', 'early_stopping', 'loss', 'class_weight'}
