"""The pipeline definition (no Beam): components and order, the gate before
Transform, the evaluation config, purity, and the custom components' logic."""

import json
import os

import pytest
import tensorflow_model_analysis as tfma
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.dsl.compiler import compiler
from tfx.utils import proto_utils

from components import anomalies_gate, baseline
from components import tuner as tuner_component
from pipeline.definition import evaluation
from pipeline.definition import pipeline as pipeline_lib
from pipeline.definition import spec as spec_lib
from pipeline.runners import environment
from tests.conftest import DEFAULT_SPEC, resolved_spec

ORDER = [
  'CsvExampleGen',
  'ImportSchemaGen',
  'StatisticsGen',
  'ExampleValidator',
  'AnomaliesGate',
  'Transform',
  'Tuner',
  'Trainer',
  'baseline_model_resolver',
  'Evaluator',
  'Pusher',
]


def _pipeline(tmp_path, overrides=None):
  spec = resolved_spec(DEFAULT_SPEC, overrides)
  env = pipeline_lib.Environment(
    pipeline_root=str(tmp_path / 'root'),
    code_version='abc',
    transform_code_version='xyz',
  )
  return spec, pipeline_lib.create_pipeline(spec, env)


def test_components_and_dependencies(tmp_path):
  _, p = _pipeline(tmp_path)
  by_id = {c.id: c for c in p.components}
  assert [c.id for c in p.components] == ORDER
  assert by_id['AnomaliesGate'] in by_id['Transform'].upstream_nodes
  assert by_id['Transform'] in by_id['Tuner'].upstream_nodes
  assert by_id['Tuner'] in by_id['Trainer'].upstream_nodes
  assert by_id['Trainer'] in by_id['baseline_model_resolver'].upstream_nodes
  assert by_id['baseline_model_resolver'] in by_id['Evaluator'].upstream_nodes
  assert by_id['Evaluator'] in by_id['Pusher'].upstream_nodes


def test_module_code_by_import_path_and_spec_in_custom_config(tmp_path):
  spec, p = _pipeline(tmp_path)
  by_id = {c.id: c for c in p.components}
  props = {k: c.exec_properties for k, c in by_id.items()}
  assert props['Transform']['preprocessing_fn'] == (
    'modules.preprocessing.preprocessing_fn'
  )
  assert props['Tuner']['tuner_fn'] == 'modules.tuner.tuner_fn'
  assert props['Trainer']['run_fn'] == 'modules.train.run_fn'
  configs = {
    k: json.loads(props[k]['custom_config'])
    for k in ('Transform', 'Tuner', 'Trainer')
  }
  assert configs['Tuner']['features']['label'] == 'diagnosis'
  assert configs['Tuner']['tuner']['algorithm'] == spec.tuner.algorithm
  assert configs['Tuner']['code_version'] == 'abc'
  # Each component sees only what it reads, so e.g. training settings are
  # not part of Transform's cache key.
  assert set(configs['Transform']) == {
    'features',
    'preprocessing',
    'code_version',
  }
  assert configs['Transform']['code_version'] == 'xyz'
  assert set(configs['Trainer']) == {
    'features',
    'preprocessing',
    'model',
    'training',
    'evaluation',
    'code_version',
  }


def test_push_destination_is_model_base_path(tmp_path):
  spec, p = _pipeline(tmp_path)
  pusher = [c for c in p.components if c.id == 'Pusher'][0]
  destination = pusher.exec_properties['push_destination']
  assert os.path.join(spec.push.destination, 'breast_cancer') in str(
    destination
  )


def test_tuner_can_be_turned_off(tmp_path):
  _, p = _pipeline(tmp_path, {'tuner.enabled': False})
  assert 'Tuner' not in [c.id for c in p.components]


@pytest.mark.parametrize(
  'asked,carried,processes',
  [(1, None, 1), (2, 2, 2), ('auto', tuner_component.AUTO, None)],
)
def test_parallel_trials_ride_on_tfx_tune_args(
  tmp_path, asked, carried, processes
):
  """TFX's own TuneArgs carry them to the Tuner's executor, which reads
  them back (`auto`: the cores where the Tuner runs)."""
  _, p = _pipeline(tmp_path, {'tuner.parallel_trials': asked})
  [tuner] = [c for c in p.components if c.id == 'Tuner']
  carried_json = tuner.exec_properties['tune_args']  # TFX keeps it as JSON
  if carried is None:
    assert carried_json is None
  else:
    tune_args = proto_utils.json_to_proto(carried_json, tfx.proto.TuneArgs())
    assert tune_args.num_parallel_trials == carried
  exec_properties = {'tune_args': carried_json}
  assert tuner_component.parallel_trials(exec_properties) == (
    processes or len(os.sched_getaffinity(0))
  )


def test_tuner_pods_are_worker_nodes_beside_the_tuner(tmp_path):
  """With Environment.tuner_pods (Kubeflow), `parallel_trials: 3` adds two
  TunerWorker nodes with the Tuner's inputs and arguments, and a meeting
  place for the run; locally (the default) none, and no meeting."""
  spec = resolved_spec(DEFAULT_SPEC, {'tuner.parallel_trials': 3})
  env = pipeline_lib.Environment(
    pipeline_root='gs://b/root',
    code_version='abc',
    transform_code_version='xyz',
    tuner_pods=True,
  )
  p = pipeline_lib.create_pipeline(spec, env)
  by_id = {c.id: c for c in p.components}
  tuner = by_id['Tuner']
  workers = [by_id['TunerWorker1'], by_id['TunerWorker2']]
  assert tuner.exec_properties['meeting_root'] == 'gs://b/root/tuner-meetings'
  assert tuner.exec_properties['run_id'] == tuner_component.RUN_ID
  for number, worker in enumerate(workers, start=1):
    assert worker.exec_properties == {**tuner.exec_properties, 'worker': number}
    assert {k: c.producer_component_id for k, c in worker.inputs.items()} == {
      k: c.producer_component_id for k, c in tuner.inputs.items()
    }
    assert worker not in by_id['Trainer'].upstream_nodes
  _, local = _pipeline(tmp_path, {'tuner.parallel_trials': 3})
  [local_tuner] = [c for c in local.components if c.id == 'Tuner']
  assert [c.id for c in local.components] == ORDER
  assert local_tuner.exec_properties['meeting_root'] is None


@pytest.mark.parametrize('run_id', [None, '', tuner_component.RUN_ID])
def test_a_run_id_kfp_did_not_replace_is_refused_in_one_line(run_id):
  with pytest.raises(
    ValueError,
    match=(
      'this Kubeflow Pipelines does not replace .*pipeline_job_uuid.* '
      r'\(KFP 2.5 and later, and Vertex AI, do\)'
    ),
  ):
    tuner_component.meeting({'meeting_root': 'gs://b/m', 'run_id': run_id})
  assert (
    tuner_component.meeting({'meeting_root': 'gs://b/m', 'run_id': '4f2a'})
    == 'gs://b/m/4f2a'
  )
  assert tuner_component.meeting({}) is None


def test_definition_is_pure_and_compiles(tmp_path):
  _, p = _pipeline(tmp_path)
  assert not os.path.exists(tmp_path / 'root')
  ir = compiler.Compiler().compile(p)
  assert [n.pipeline_node.node_info.id for n in ir.nodes] == ORDER
  assert not os.path.exists(tmp_path / 'root')


def _gates(metric):
  """{slicing spec: threshold} of one MetricConfig's per-slice thresholds."""
  return {
    tuple(str(s) for s in gate.slicing_specs): gate.threshold
    for gate in metric.per_slice_thresholds
  }


OVERALL = (str(tfma.SlicingSpec()),)


def test_eval_config_thresholds_follow_the_spec():
  spec = resolved_spec(
    DEFAULT_SPEC,
    {
      'evaluation.metrics': ['auc', 'accuracy', 'calibration', 'log_loss'],
      'evaluation.thresholds': {
        'accuracy': 0.9,
        'log_loss': 0.4,
        'calibration': {'lower': 0.8, 'upper': 1.2},
      },
      'evaluation.change_thresholds': {'auc': -0.01, 'log_loss': 0.0},
    },
  )
  config = pipeline_lib.eval_config(spec)
  # The transformed label, through the model's transform_features signature.
  assert config.model_specs[0].label_key == 'diagnosis_xf'
  assert list(config.model_specs[0].preprocessing_function_names) == [
    'transform_features'
  ]
  assert config.model_specs[0].prediction_key == 'probability'
  metrics = {m.class_name: m for m in config.metrics_specs[0].metrics}
  assert set(metrics) == {
    'AUC',
    'BinaryAccuracy',
    'Calibration',
    'BinaryCrossEntropy',
    'CalibrationPlot',
    'ConfusionMatrixPlot',
  }  # the two for the report
  # Thresholds gate the overall slice only, never every slice.
  for metric in metrics.values():
    assert not metric.HasField('threshold')
    assert set(_gates(metric)) <= {OVERALL}
  accuracy = _gates(metrics['BinaryAccuracy'])[OVERALL].value_threshold
  assert accuracy.lower_bound.value == pytest.approx(0.9)
  assert not accuracy.HasField('upper_bound')
  log_loss = _gates(metrics['BinaryCrossEntropy'])[OVERALL]
  assert log_loss.value_threshold.upper_bound.value == pytest.approx(0.4)
  assert (
    log_loss.change_threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
  )
  auc = _gates(metrics['AUC'])[OVERALL].change_threshold
  assert auc.direction == tfma.MetricDirection.HIGHER_IS_BETTER
  assert auc.absolute.value == pytest.approx(-0.01)
  calibration = _gates(metrics['Calibration'])[OVERALL].value_threshold
  assert (
    calibration.lower_bound.value,
    calibration.upper_bound.value,
  ) == pytest.approx((0.8, 1.2))
  assert len(config.slicing_specs) == 1  # overall only


def test_slice_thresholds_gate_the_slices_they_name():
  spec = resolved_spec(
    DEFAULT_SPEC,
    {
      'evaluation.slices': [['mean_radius']],
      'evaluation.thresholds': {'auc': 0.95},
      'evaluation.slice_thresholds': [
        {'slice': {'mean_radius': 14.5}, 'thresholds': {'accuracy': 0.7}},
        {'slice': ['mean_texture'], 'thresholds': {'auc': 0.5}},
      ],
    },
  )
  config = pipeline_lib.eval_config(spec)
  one = tfma.SlicingSpec(feature_values={'mean_radius': '14.5'})
  every = tfma.SlicingSpec(feature_keys=['mean_texture'])
  assert list(config.slicing_specs) == [
    tfma.SlicingSpec(),
    tfma.SlicingSpec(feature_keys=['mean_radius']),
    one,
    every,
  ]
  metrics = {m.class_name: m for m in config.metrics_specs[0].metrics}
  auc = _gates(metrics['AUC'])
  assert auc[OVERALL].value_threshold.lower_bound.value == pytest.approx(0.95)
  assert auc[(str(every),)].value_threshold.lower_bound.value == 0.5
  accuracy = _gates(metrics['BinaryAccuracy'])
  assert set(accuracy) == {(str(one),)}
  # A one-class slice is told apart from a bad model by its mean label.
  assert 'MeanLabel' in metrics


def test_code_fingerprint_changes_with_module_code(tmp_path):
  (tmp_path / 'a.py').write_text('x = 1\n')
  first = environment.code_fingerprint(str(tmp_path))
  assert first == environment.code_fingerprint(str(tmp_path))
  (tmp_path / 'b.py').write_text('y = 1\n')
  only_a = environment.code_fingerprint(str(tmp_path), files=('a.py',))
  assert only_a == first
  (tmp_path / 'a.py').write_text('x = 2\n')
  assert environment.code_fingerprint(str(tmp_path)) != first
  # A sub-package counts, and a folder named in `files` stands for its files.
  second = environment.code_fingerprint(str(tmp_path))
  (tmp_path / 'config').mkdir()
  (tmp_path / 'config' / 'c.py').write_text('z = 1\n')
  assert environment.code_fingerprint(str(tmp_path)) != second
  only_config = environment.code_fingerprint(str(tmp_path), files=('config',))
  (tmp_path / 'config' / 'c.py').write_text('z = 2\n')
  assert (
    environment.code_fingerprint(str(tmp_path), files=('config',))
    != only_config
  )


def _anomalies(**features):
  a = anomalies_pb2.Anomalies()
  for name, text in features.items():
    a.anomaly_info[name].short_description = text
  return a


def test_gate_describes_each_anomaly_and_passes_clean_data():
  assert (
    anomalies_gate.describe_anomalies(
      {'train': _anomalies(), 'eval': _anomalies()}
    )
    == []
  )
  found = anomalies_gate.describe_anomalies(
    {
      'train': _anomalies(mean_area='Out-of-range values'),
      'eval': _anomalies(
        mean_area='Out-of-range values', worst_area='Unexpected data type'
      ),
    }
  )
  assert found == [
    'eval: mean_area: Out-of-range values',
    'eval: worst_area: Unexpected data type',
    'train: mean_area: Out-of-range values',
  ]


def _model(artifact_id):
  m = tfx.types.standard_artifacts.Model()
  m.id = artifact_id
  return m


def _blessing(model_id, blessed):
  b = tfx.types.standard_artifacts.ModelBlessing()
  b.set_int_custom_property('current_model_id', model_id)
  b.set_int_custom_property('blessed', int(blessed))
  return b


def test_baseline_is_the_last_blessed_model_older_than_the_candidate():
  models = [_model(i) for i in (3, 7, 9, 12)]
  blessings = [
    _blessing(3, True),
    _blessing(7, False),
    _blessing(9, True),
    _blessing(12, True),
  ]
  pick = lambda candidate: baseline.pick_baseline(models, blessings, candidate)  # noqa: E731
  assert pick(_model(12)).id == 9  # newest blessed before the candidate
  assert pick(_model(9)).id == 3  # a re-run of 9 resolves 9's baseline
  assert pick(_model(3)) is None  # the first blessed model had none
  assert pick(_model(15)).id == 12
  assert pick(None).id == 12  # no candidate: the newest blessed
  assert baseline.pick_baseline([], [], _model(1)) is None


def test_baseline_strategy_returns_model_and_its_blessing():
  strategy = baseline.BlessedBeforeCandidateStrategy()
  blessings = [_blessing(3, True), _blessing(9, True)]
  out = strategy.resolve_artifacts(
    None,
    {
      'model': [_model(3), _model(9)],
      'model_blessing': blessings,
      'candidate': [_model(9)],
    },
  )
  assert [m.id for m in out['model']] == [3]
  assert out['model_blessing'] == [blessings[0]]


DIGITS_TARGET = os.path.join(
  os.path.dirname(DEFAULT_SPEC), 'digits_target.yaml'
)


def test_finetuning_imports_the_base_model_into_tuner_and_trainer(tmp_path):
  spec = spec_lib.load_spec(DIGITS_TARGET)  # lists its features and classes
  assert spec.is_resolved
  env = pipeline_lib.Environment(
    pipeline_root=str(tmp_path / 'root'), base_model_uri='/models/base/7'
  )
  p = pipeline_lib.create_pipeline(spec, env)
  by_id = {c.id: c for c in p.components}
  importer = by_id[pipeline_lib.BASE_MODEL_IMPORTER]
  assert importer.exec_properties['artifact_uri'] == '/models/base/7'
  # reimport=False: an artifact already in ML Metadata keeps its id, so the
  # lineage reaches the pipeline that trained it.
  assert not importer.exec_properties['reimport']
  for node in ('Tuner', 'Trainer'):
    assert by_id[node].inputs['base_model'] is importer.outputs['result']
  ir = compiler.Compiler().compile(p)
  assert pipeline_lib.BASE_MODEL_IMPORTER in [
    n.pipeline_node.node_info.id for n in ir.nodes
  ]
  with pytest.raises(ValueError, match='must locate the base model'):
    pipeline_lib.create_pipeline(
      spec, pipeline_lib.Environment(pipeline_root=str(tmp_path))
    )


def test_multiclass_eval_config_reads_class_probabilities():
  spec = spec_lib.load_spec(DIGITS_TARGET)
  config = pipeline_lib.eval_config(spec)
  assert config.model_specs[0].prediction_key == 'probabilities'
  classes = [m.class_name for m in config.metrics_specs[0].metrics]
  assert classes == [
    'ExampleCount',
    'SparseCategoricalAccuracy',
    'SparseCategoricalCrossentropy',
    'MultiClassConfusionMatrixPlot',
  ]  # for the run report
  accuracy = config.metrics_specs[0].metrics[1]
  assert (
    _gates(accuracy)[OVERALL].value_threshold.lower_bound.value
    == (spec.evaluation.thresholds['accuracy'])
  )


def test_an_unresolved_spec_is_refused(tmp_path):
  spec = spec_lib.load_spec(DEFAULT_SPEC)  # the data decides num_classes
  assert spec.features.num_classes is None and not spec.is_resolved
  with pytest.raises(ValueError, match='resolve the spec against the data'):
    pipeline_lib.create_pipeline(
      spec, pipeline_lib.Environment(pipeline_root=str(tmp_path))
    )


def test_a_change_threshold_reads_in_its_better_direction():
  """The blessing reason says `change >= 0` for a metric where higher is
  better (auc) and `change <= 0` where lower is (rmse)."""
  from pipeline.metadata import results  # pylint: disable=g-import-not-at-top

  higher = evaluation._threshold(None, 0.0, 'higher')
  lower = evaluation._threshold(None, 0.0, 'lower')
  assert results._threshold_text(higher) == 'change >= 0'
  assert results._threshold_text(lower) == 'change <= 0'


def _metric_configs(spec):
  configs = pipeline_lib.eval_config(spec).metrics_specs[0].metrics
  return {m.class_name: m for m in configs}


def test_no_thresholds_gates_by_the_default_rule():
  """The naive baseline on the main metric (from the scanned data), and no
  worse than the last blessed model there."""
  spec = resolved_spec(
    DEFAULT_SPEC,
    {
      'evaluation.thresholds': {},
      'evaluation.change_thresholds': {},
      'evaluation.slice_thresholds': [],
    },
  )
  assert spec.evaluation.uses_default_rule
  gated = {
    name: m
    for name, m in _metric_configs(spec).items()
    if m.per_slice_thresholds
  }
  assert list(gated) == ['AUC']
  (gate,) = gated['AUC'].per_slice_thresholds
  assert gate.threshold.value_threshold.lower_bound.value == 0.5
  assert gate.threshold.change_threshold.direction == (
    tfma.MetricDirection.HIGHER_IS_BETTER
  )
  assert gate.threshold.change_threshold.absolute.value == 0.0
  assert spec.blessing_rule().startswith('default rule: auc > 0.5 ')


def test_a_decision_threshold_sets_the_counting_metrics_threshold():
  spec = resolved_spec(DEFAULT_SPEC, {'evaluation.decision_threshold': 0.3})
  configs = _metric_configs(spec)
  assert json.loads(configs['BinaryAccuracy'].config) == {'threshold': 0.3}
  assert json.loads(configs['Precision'].config) == {'thresholds': [0.3]}
  assert json.loads(configs['Recall'].config) == {'thresholds': [0.3]}
  assert not configs['AUC'].config  # a ranking metric has no threshold
  with pytest.raises(spec_lib.SpecError, match='only a binary label has one'):
    resolved_spec(
      os.path.join(os.path.dirname(DEFAULT_SPEC), 'cars.yaml'),
      {'evaluation.decision_threshold': 0.3},
    )
