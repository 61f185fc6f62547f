"""Running a spec: the checks before a run (`preflight`, no TensorFlow), the
environment every runner builds the same way (`environment`: the thin entry
the Kubeflow runner uses too) and the local runner (`local`: LocalDagRunner,
Beam's DirectRunner, ML Metadata). Imports: definition, metadata.
"""
