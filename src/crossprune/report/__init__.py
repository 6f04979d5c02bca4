"""The study report: MLflow runs → one tidy table → paired statistics → verdicts → plots → files and a `report` run."""
