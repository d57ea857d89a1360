"""Prefect tasks: thin wrappers over seqmodels that pass file paths between them. MLflow lives here."""
