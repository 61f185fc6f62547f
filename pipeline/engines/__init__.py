"""Where the Beam components run: one registry entry per engine.

Only CsvExampleGen (or ImportExampleGen), StatisticsGen, Transform and
Evaluator run Beam pipelines in TFX 1.16 (`BEAM_COMPONENTS`); the Tuner,
Trainer and the rest are plain Python in the runner's process or pod. A
spec's `runner.engine` picks where those four send their Beam jobs and
`runner.engine_options` says how, typed by the engine's `options` model:

- `direct`: Beam's DirectRunner in this machine's processes (the default;
  `runner.beam_args` pick its mode and workers).
- `flink`: a Flink session cluster through Beam's Flink job server
  (pipeline/engines/flink.py; `python -m pipeline engine up flink` starts a
  local one).
- `spark`: a Spark standalone cluster through Beam's Spark job server
  (pipeline/engines/spark.py).
- `dataflow`: Google Cloud Dataflow (no cluster of ours; needs a project).

An engine turns its options into Beam pipeline args (`beam_args`) and says,
before anything runs, what stands in the way (`problem`: a master that does
not answer, a missing job-server jar or Java), as words for a one-line error.

`registry` holds them all (import it, not the engines' modules, to look an
engine up); `base` the types. No Beam or TensorFlow in any of them: the
spec and the pre-flight import the registry.
"""
