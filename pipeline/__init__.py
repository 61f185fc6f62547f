"""Declarative TFX pipelines: spec loading, the pipeline definition, runners
and the `python -m pipeline` command line."""
