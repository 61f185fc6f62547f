"""Kubeflow Pipelines (KFP v2): the compile runner and the submit client."""
