"""Where seqflow keeps its files, and which MLflow store it talks to."""

from __future__ import annotations

import os
from pathlib import Path

EXPERIMENT = "seqflow"


def data_dir(override: str | None = None) -> Path:
    """The project's data directory: ``--data-dir``, else ``$SEQFLOW_HOME``, else ``./seqflow_data``."""
    path = Path(override or os.environ.get("SEQFLOW_HOME") or "seqflow_data").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def tracking_uri(override: str | None = None, home: str | None = None) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite file in the data directory."""
    return override or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{data_dir(home) / 'mlflow.db'}"


def configure_mlflow(uri: str, home: str | None = None) -> str:
    """Point MLflow at ``uri`` (tracking and registry); create the experiment with artifacts in the data dir.

    Returns the experiment id.
    """
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # so pyfunc loads in this process and children agree
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = (data_dir(home) / "mlartifacts").as_uri()
    return mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
