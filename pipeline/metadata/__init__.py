"""ML Metadata: where a store is (`store`), what a run did (`results`) and
lineage over runs and artifacts (`lineage`). Reads the store only; imports
no other room but components.processes (is a run's process alive).
"""
