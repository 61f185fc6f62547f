"""Experiments outside the pipeline: fine-tuning against training from
scratch (`compare`). Imports: definition, runners.preflight, modules.
"""
