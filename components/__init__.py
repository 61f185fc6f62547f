"""Custom TFX components and resolver strategies used by the pipeline."""
