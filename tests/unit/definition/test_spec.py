"""Spec validation: the shipped spec loads; every bad key, type or value is
refused with one line naming the file and the key, at load or, for rules
that depend on the data (the number of classes, the features), by the
pre-flight checks `validate` and `run` make before anything runs."""

import os

import pytest
import yaml

from pipeline.definition import spec as spec_lib
from pipeline.runners import preflight
from tests.conftest import DEFAULT_SPEC, REPO


def _raw():
  """The default spec, its data and schema paths made absolute."""
  with open(DEFAULT_SPEC) as f:
    raw = yaml.safe_load(f)
  folder = os.path.dirname(DEFAULT_SPEC)
  raw['data']['csv'] = os.path.normpath(
    os.path.join(folder, raw['data']['csv'])
  )
  raw['schema'] = os.path.normpath(os.path.join(folder, raw['schema']))
  return raw


def _error(tmp_path, mutate) -> str:
  raw = _raw()
  mutate(raw)
  path = tmp_path / 'spec.yaml'
  path.write_text(yaml.safe_dump(raw))
  with pytest.raises((spec_lib.SpecError, preflight.PreflightError)) as info:
    preflight.run_preflight(spec_lib.load_spec(str(path)))
  message = str(info.value)
  assert '\n' not in message
  assert message.startswith(str(path) + ': ')
  return message


def test_shipped_spec_loads_with_paths_resolved():
  spec = spec_lib.load_spec(DEFAULT_SPEC)
  assert spec.name == 'breast-cancer'
  assert spec.data.csv == os.path.join(REPO, 'data', 'breast_cancer')
  assert spec.schema_file == os.path.join(
    REPO, 'schemas', 'breast_cancer', 'schema.pbtxt'
  )
  assert spec.push.destination == os.path.join(REPO, 'serving')
  assert spec.tuner.algorithm == 'hyperband'
  assert len(spec.features.numeric) == 30
  assert spec.features.label == 'diagnosis'


def _set(path, value):
  def mutate(raw):
    node = raw
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value

  return mutate


def _delete(path):
  def mutate(raw):
    node = raw
    for key in path[:-1]:
      node = node[key]
    del node[path[-1]]

  return mutate


BAD = [
  (
    'unknown engine',
    _set(['runner', 'engine'], 'flonk'),
    "runner.engine: unknown engine 'flonk'; choose one of ",
  ),
  (
    'option of no engine',
    _set(['runner', 'engine_options'], {'master': 'localhost:8081'}),
    'runner.engine_options.master: not an option of the direct engine; '
    'its options: none',
  ),
  (
    'dataflow without a project',
    _set(['runner', 'engine'], 'dataflow'),
    'runner.engine_options.project: required by the dataflow engine',
  ),
  (
    'kubeflow engine option unknown',
    _set(
      ['kubeflow'],
      {
        'engine': 'dataflow',
        'engine_options': {
          'project': 'my-project',
          'region': 'us-central1',
          'temp_location': 'gs://b/tmp',
          'zone': 'a',
        },
      },
    ),
    'kubeflow.engine_options.zone: not an option of the dataflow engine; '
    'its options: machine_type, max_workers, project, region, '
    'sdk_container_image, temp_location',
  ),
  (
    'dataflow temp not on gcs',
    _set(
      ['kubeflow'],
      {
        'engine': 'dataflow',
        'engine_options': {
          'project': 'my-project',
          'region': 'us-central1',
          'temp_location': '/tmp/x',
        },
      },
    ),
    "kubeflow.engine_options.temp_location: '/tmp/x' is not a gs:// location",
  ),
  ('unknown top key', _set(['trainer'], {}), 'trainer: unknown key'),
  (
    'unknown nested key',
    _set(['tuner', 'trials'], 3),
    'tuner.trials: unknown key; allowed keys here: algorithm',
  ),
  (
    'unknown kubeflow key',
    _set(['kubeflow', 'metadata'], 'm.sqlite'),
    'kubeflow.metadata: unknown key; allowed keys here: base_model, '
    'beam_args, data, enable_cache, engine, engine_options, image, '
    'pipeline_root, push_destination, resources, schema, target',
  ),
  (
    'no parallel trials',
    _set(['tuner', 'parallel_trials'], 0),
    'tuner.parallel_trials: must be',
  ),
  (
    'parallel trials as a word',
    _set(['tuner', 'parallel_trials'], 'many'),
    'tuner.parallel_trials: must be',
  ),
  (
    'parallel trials as a bool',
    _set(['tuner', 'parallel_trials'], True),
    'tuner.parallel_trials: must be',
  ),
  (
    'bad kubeflow target',
    _set(['kubeflow', 'target'], 'argo'),
    "kubeflow.target: must be 'kfp' or 'vertex'",
  ),
  (
    'zero gpus',
    _set(
      ['kubeflow', 'resources'],
      {'trainer': {'gpu': {'type': 'nvidia.com/gpu', 'count': 0}}},
    ),
    'kubeflow.resources.trainer.gpu.count:',
  ),
  (
    'bad algorithm',
    _set(['tuner', 'algorithm'], 'genetic'),
    "tuner.algorithm: must be 'hyperband', 'random', 'bayesian' or 'grid'",
  ),
  ('bad type', _set(['tuner', 'max_trials'], 'many'), 'tuner.max_trials:'),
  ('zero trials', _set(['tuner', 'max_trials'], 0), 'tuner.max_trials:'),
  ('missing name', _delete(['name']), 'name: required key is missing'),
  ('bad name', _set(['name'], 'Has Spaces'), 'name:'),
  ('missing push', _delete(['push']), 'push: required key is missing'),
  (
    'bad optimizer',
    _set(['model', 'search_space', 'optimizer'], ['adamw']),
    'model.search_space.optimizer.0:',
  ),
  (
    'inverted range',
    _set(['model', 'search_space', 'units'], {'min': 64, 'max': 8}),
    'model.search_space.units: min (64) must not exceed max (8)',
  ),
  (
    'log from zero',
    _set(
      ['model', 'search_space', 'learning_rate'],
      {'min': 0.0, 'max': 0.1, 'sampling': 'log'},
    ),
    'model.search_space.learning_rate.min: must be > 0',
  ),
  (
    'dropout of one',
    _set(['model', 'search_space', 'dropout'], {'min': 0.0, 'max': 1.0}),
    'model.search_space.dropout.max: must be < 1',
  ),
  (
    'label is a feature',
    _set(['features', 'label'], 'mean_radius'),
    'features.label:',
  ),
  (
    'duplicate feature',
    _set(['features', 'categorical'], ['mean_radius']),
    "features.categorical: 'mean_radius' is listed twice",
  ),
  (
    'excluded feature',
    _set(['features', 'exclude'], ['mean_radius']),
    "features.exclude: 'mean_radius' is listed twice",
  ),
  (
    'excluded label',
    _set(['features', 'exclude'], ['diagnosis']),
    "features.label: 'diagnosis' is also listed in features.exclude",
  ),
  (
    'impute an unknown feature',
    _set(['preprocessing', 'impute'], {'features': {'age': {'fill': 'mean'}}}),
    "preprocessing.impute.features.age: 'age' is not a numeric, "
    'categorical or date feature',
  ),
  (
    'categorical fill on a number',
    _set(
      ['preprocessing', 'impute'],
      {'features': {'mean_radius': {'fill': 'most_frequent'}}},
    ),
    'preprocessing.impute.features.mean_radius.fill: mean_radius is '
    'numeric: use mean, median, zero or a number',
  ),
  (
    'bad numeric fill',
    _set(['preprocessing', 'impute'], {'numeric': 'mode'}),
    'preprocessing.impute.numeric:',
  ),
  # The schema refuses NaN and infinity (allow_inf_nan=False): no rule
  # of checks.py needs to.
  (
    'infinite numeric fill',
    _set(['preprocessing', 'impute'], {'numeric': float('inf')}),
    "preprocessing.impute.numeric: must be 'mean', 'median' or 'zero'; or a "
    'finite number (got inf)',
  ),
  (
    'NaN feature fill',
    _set(
      ['preprocessing', 'impute'],
      {'features': {'mean_radius': {'fill': float('nan')}}},
    ),
    "preprocessing.impute.features.mean_radius.fill: must be 'mean', "
    "'median' or 'zero'; or a finite number;",
  ),
  (
    'slice threshold on unknown feature',
    _set(
      ['evaluation', 'slice_thresholds'],
      [{'slice': {'age': 3}, 'thresholds': {'auc': 0.5}}],
    ),
    "evaluation.slice_thresholds.0.slice: 'age' is not a declared feature",
  ),
  (
    'slice threshold without bounds',
    _set(['evaluation', 'slice_thresholds'], [{'slice': ['mean_radius']}]),
    'evaluation.slice_thresholds.0.thresholds: required key is missing',
  ),
  (
    'missing module file',
    _set(['module_file'], '/nowhere/module.py'),
    'module_file: /nowhere/module.py: no such file',
  ),
  (
    'internal key',
    _set(['module_functions'], ['run_fn']),
    'module_functions: unknown key',
  ),
  (
    'wrong splits',
    _set(['data', 'split'], {'train': 1, 'test': 1}),
    'data.split: must name exactly the splits train and eval',
  ),
  (
    'unknown metric',
    _set(['evaluation', 'metrics'], ['f1']),
    'evaluation.metrics.0:',
  ),
  (
    'threshold not in metrics',
    _set(['evaluation', 'thresholds'], {'log_loss': 0.5}),
    "evaluation.thresholds.log_loss: metric 'log_loss' is not in",
  ),
  (
    'calibration needs bounds',
    _set(['evaluation', 'thresholds'], {'calibration': 0.9}),
    'evaluation.thresholds.calibration: calibration has no better direction',
  ),
  (
    'change on calibration',
    _set(['evaluation', 'change_thresholds'], {'calibration': 0.0}),
    'evaluation.change_thresholds.calibration:',
  ),
  (
    'slice on unknown feature',
    _set(['evaluation', 'slices'], [['age']]),
    "evaluation.slices.0: 'age' is not a declared feature",
  ),
  (
    'bad preprocessing',
    _set(['preprocessing', 'numeric'], 'log'),
    'preprocessing.numeric:',
  ),
  (
    'bad early stopping',
    _set(['training', 'early_stopping'], {'monitor': 'accuracy'}),
    'training.early_stopping.monitor:',
  ),
  ('negative epochs', _set(['training', 'epochs'], -1), 'training.epochs:'),
  ('bad model name', _set(['push', 'model_name'], '../x'), 'push.model_name:'),
  (
    'finetune without base',
    _set(['training', 'mode'], 'finetune'),
    'training.base_model: training.mode finetune needs a base model',
  ),
  (
    'base model while scratch',
    _set(['training', 'base_model'], {'path': '/models/x'}),
    'training.base_model: only used with training.mode: finetune',
  ),
  (
    'two base models',
    lambda raw: raw['training'].update(
      mode='finetune', base_model={'path': '/m', 'latest_blessed': 'other'}
    ),
    'training.base_model: give exactly one of path, latest_blessed',
  ),
  (
    'unknown strategy',
    _set(
      ['model', 'search_space', 'finetune'], {'strategy': ['freeze_everything']}
    ),
    'model.search_space.finetune.strategy.0:',
  ),
  (
    'backbone faster than head',
    _set(
      ['model', 'search_space', 'finetune'],
      {'backbone_lr_scale': {'min': 0.5, 'max': 2.0}},
    ),
    'model.search_space.finetune.backbone_lr_scale: must lie in (0, 1]',
  ),
  (
    'cnn without image',
    _set(['model', 'builder'], 'cnn'),
    'model.image: the cnn builder needs {height, width, channels}',
  ),
  (
    'cnn image of the wrong size',
    lambda raw: raw['model'].update(
      builder='cnn', image={'height': 5, 'width': 5}
    ),
    'model.image: height x width x channels is 25 but the cnn builder takes '
    'the numeric features as pixels (30 numeric',
  ),
  (
    'binary metric on multiclass',
    _set(['features', 'num_classes'], 3),
    "evaluation.metrics: 'auc' is not a 3 classes metric; use: "
    'example_count, accuracy, log_loss',
  ),
  (
    'binary objective on multiclass',
    lambda raw: (
      raw['features'].update(num_classes=3),
      raw['evaluation'].update(
        metrics=['accuracy'], thresholds={}, change_thresholds={}
      ),
      raw['tuner'].update(objective='val_auc'),
    ),
    "tuner.objective: 'val_auc' is not reported for 3 classes",
  ),
  ('one class', _set(['features', 'num_classes'], 1), 'features.num_classes:'),
]


@pytest.mark.parametrize('name,mutate,expected', BAD, ids=[b[0] for b in BAD])
def test_bad_spec_is_refused_naming_the_key(tmp_path, name, mutate, expected):
  del name
  assert expected in _error(tmp_path, mutate)


def test_invalid_yaml_names_the_line(tmp_path):
  path = tmp_path / 'broken.yaml'
  path.write_text('name: x\ntuner: [unclosed\n')
  with pytest.raises(
    spec_lib.SpecError,
    match=r'broken.yaml: not valid YAML '
    r'\(line \d+, column \d+\)',
  ):
    spec_lib.load_spec(str(path))


def test_missing_and_empty_and_non_mapping_files(tmp_path):
  with pytest.raises(spec_lib.SpecError, match='spec file not found'):
    spec_lib.load_spec(str(tmp_path / 'nope.yaml'))
  (tmp_path / 'empty.yaml').write_text('')
  with pytest.raises(spec_lib.SpecError, match='the spec file is empty'):
    spec_lib.load_spec(str(tmp_path / 'empty.yaml'))
  (tmp_path / 'list.yaml').write_text('- a\n- b\n')
  with pytest.raises(spec_lib.SpecError, match='must be a YAML mapping'):
    spec_lib.load_spec(str(tmp_path / 'list.yaml'))


def test_relative_paths_resolve_against_the_spec_folder(tmp_path):
  raw = _raw()
  raw['data']['csv'] = 'mydata'
  raw['push']['destination'] = 'gs://bucket/serving'
  (tmp_path / 'sub').mkdir()
  path = tmp_path / 'sub' / 'spec.yaml'
  path.write_text(yaml.safe_dump(raw))
  spec = spec_lib.load_spec(str(path))
  assert spec.data.csv == str(tmp_path / 'sub' / 'mydata')
  assert spec.push.destination == 'gs://bucket/serving'


def test_overrides_apply_before_validation():
  spec = spec_lib.load_spec(
    DEFAULT_SPEC, {'tuner.max_trials': 2, 'tuner.algorithm': 'random'}
  )
  assert (spec.tuner.max_trials, spec.tuner.algorithm) == (2, 'random')
  with pytest.raises(spec_lib.SpecError, match='tuner.algorithm'):
    spec_lib.load_spec(DEFAULT_SPEC, {'tuner.algorithm': 'nope'})
  assert spec_lib.parse_override('a.b=[1, 2]') == ('a.b', [1, 2])
  with pytest.raises(spec_lib.SpecError, match='expected KEY=VALUE'):
    spec_lib.parse_override('tuner.max_trials')


def test_defaults_fill_optional_sections(tmp_path):
  raw = {
    k: v
    for k, v in _raw().items()
    if k in ('name', 'data', 'schema', 'features', 'push', 'runner')
  }
  path = tmp_path / 'minimal.yaml'
  path.write_text(yaml.safe_dump(raw))
  spec = spec_lib.load_spec(str(path))
  assert spec.tuner.algorithm == 'hyperband'
  assert spec.model.search_space.optimizer[0] == 'adam'
  assert spec.training.early_stopping.monitor == 'val_loss'


def test_digits_specs_load_as_a_source_and_target_pair():
  source = spec_lib.load_spec(
    os.path.join(REPO, 'pipeline', 'specs', 'digits_source.yaml')
  )
  target = spec_lib.load_spec(
    os.path.join(REPO, 'pipeline', 'specs', 'digits_target.yaml')
  )
  assert (source.training.mode, target.training.mode) == ('scratch', 'finetune')
  assert target.training.base_model.latest_blessed == source.name
  assert source.runner.metadata == target.runner.metadata
  assert source.features == target.features
  assert source.schema_file == target.schema_file
  assert source.model.builder == 'cnn' and source.features.num_classes == 5


def test_base_model_path_resolves_against_the_spec_folder(tmp_path):
  raw = _raw()
  raw['training'].update(mode='finetune', base_model={'path': 'models/base'})
  spec = spec_lib.spec_from_dict(raw, str(tmp_path))
  assert spec.training.base_model.path == str(tmp_path / 'models' / 'base')
