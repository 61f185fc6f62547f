"""The logger a component says how far it is through.

A record on it carries the detail as its message and `step` and `steps` as
extra fields; the local runner reads them into its progress line
(pipeline/runners/progress.py). The module files (the Trainer's epochs) and
the custom components (the Tuner's trials) both write to it, inside TFX
executors, so its name lives here, beside the module files' other
contracts, with no imports.
"""

PROGRESS_LOGGER = 'tfx_pipeline.progress'
