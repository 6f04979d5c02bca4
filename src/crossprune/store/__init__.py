"""The MLflow store: connecting to it and creating it, stage keys and the stage cache, locks on keys, dead runs,
jobs answered from it, the parent run, run names and provenance (no torch at import)."""
