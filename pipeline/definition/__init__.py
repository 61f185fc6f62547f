"""The spec and the pipeline definition.

`spec` parses and validates a YAML spec into a typed `PipelineSpec` (no
TensorFlow; spec.py names the modules it gathers, one job each); `pipeline`
turns a spec and an `Environment` into a TFX pipeline (`create_pipeline`, a
pure function). Imports: modules.config (the spec's sections) and
components/ (the pipeline's custom nodes).
"""
