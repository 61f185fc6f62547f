"""TFX module code: preprocessing_fn, tuner_fn, run_fn and the model builders.

Components find these by import path (e.g. 'modules.train.run_fn'), so the
same code runs locally and inside the pipeline image.
"""
