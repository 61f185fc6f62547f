"""Kubeflow node ids a spec names: what `kubeflow.resources` may key, and
the Tuner's worker pods."""

from typing import List

from pipeline.definition.schema import PipelineSpec

# Components a spec may give resources, by spec key -> TFX node id
# (example_gen: the data format's, DataSpec.example_gen_id).
KUBEFLOW_COMPONENTS = {
  'example_gen': 'CsvExampleGen',
  'statistics_gen': 'StatisticsGen',
  'schema_gen': 'ImportSchemaGen',
  'example_validator': 'ExampleValidator',
  'anomalies_gate': 'AnomaliesGate',
  'transform': 'Transform',
  'tuner': 'Tuner',
  'trainer': 'Trainer',
  'evaluator': 'Evaluator',
  'pusher': 'Pusher',
  'baseline': 'baseline_model_finder',
  'base_model': 'base_model_finder',
}
# The components whose code can use a GPU (Keras training).
GPU_COMPONENTS = ('tuner', 'trainer')
TUNER_WORKER = 'TunerWorker'  # Kubeflow: node ids TunerWorker1, ...


def tuner_worker_ids(spec: PipelineSpec) -> List[str]:
  """Kubeflow's TunerWorker nodes for `spec`: one pod per parallel trial
  beyond the Tuner's own (none without the Tuner)."""
  asked = spec.tuner.parallel_trials
  if not spec.tuner.enabled:
    return []
  if not isinstance(asked, int):
    raise ValueError(
      f'{spec.source}: tuner.parallel_trials: {asked!r} counts '
      "one machine's cores; on Kubeflow give the number of "
      'Tuner pods'
    )
  return [f'{TUNER_WORKER}{number}' for number in range(1, asked)]
