"""Where seqflow keeps its files, and which MLflow store it talks to."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

EXPERIMENT = "seqflow"
# MLflow 3's UI shows an experiment with this tag as model training ("Training runs"), without first asking
# whether it is a GenAI experiment
EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"


class TrackingStoreError(RuntimeError):
    """The MLflow store cannot be used: an unreachable server, a locked or broken SQLite file."""


@dataclass(frozen=True)
class StoreCheckConfig:
    """How an ``http(s)://`` tracking server is probed before MLflow's own client (which retries with
    back-off for minutes) talks to it."""

    # a server on the same machine or network accepts a TCP connection in milliseconds; 5 s also covers a
    # slow VPN, while a dropped connection attempt would otherwise wait for the OS's timeout (~2 min on Linux)
    connect_timeout_s: float = 5.0


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

    Returns the experiment id. An unreachable server, or a SQLite file that is locked or not a database,
    raises :class:`TrackingStoreError` naming the URI or the file.
    """
    import mlflow

    check_tracking_server(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # so pyfunc loads in this process and children agree
    try:
        return _experiment_id(home)
    except Exception as err:
        message = explain_store_error(uri, err)
        if message is None:
            raise
        raise TrackingStoreError(message) from err


def _experiment_id(home: str | None) -> str:
    """The seqflow experiment, created with its artifacts in the data dir, marked as model training."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        artifacts = (data_dir(home) / "mlartifacts").as_uri()
        return mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts,
                                        tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
    if EXPERIMENT_KIND_TAG not in experiment.tags:  # a store made by an earlier seqflow
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    return experiment.experiment_id


def check_tracking_server(uri: str, config: StoreCheckConfig = StoreCheckConfig()) -> None:
    """For an ``http(s)://`` URI reached directly (no proxy), fail at once when nothing accepts a connection."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname or _goes_through_a_proxy(uri):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=config.connect_timeout_s).close()
    except OSError as err:
        raise TrackingStoreError(
            f"the MLflow tracking server {uri} is not reachable ({err.strerror or err}); start it (e.g. "
            f"`mlflow server --port {port}`) or pass another --tracking-uri") from err


def _goes_through_a_proxy(uri: str) -> bool:
    """Whether HTTP(S)_PROXY settings send requests for ``uri`` to a proxy (then a direct probe proves nothing)."""
    import urllib.request

    scheme, host = urlsplit(uri).scheme, urlsplit(uri).hostname or ""
    return scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host)


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI; None for other stores or an in-memory database."""
    parts = urlsplit(uri)
    if parts.scheme != "sqlite" or parts.path in ("", "/", "/:memory:"):
        return None
    return Path(unquote(parts.path[1:]))  # sqlite:///relative.db, sqlite:////absolute.db


def explain_store_error(uri: str, err: BaseException) -> str | None:
    """A message naming the SQLite file when ``err`` (or its cause) says it is locked or not a database;
    None for any other error."""
    path, texts = sqlite_path(uri), []
    while err is not None and len(texts) < 10:
        texts.append(str(err))
        err = err.__cause__ or err.__context__
    text = " ".join(texts)
    if path is None:
        return None
    if "database is locked" in text:
        return (f"the MLflow database {path} is locked by another process (another seqflow command or "
                f"`mlflow ui` writing to it); retry when it is done, or pass another --tracking-uri")
    if "file is not a database" in text or "database disk image is malformed" in text:  # SQLite's own words
        return (f"{path} is not a SQLite database or is damaged, so it cannot be the MLflow store; move it "
                f"away (a new store is then created there) or pass the right --tracking-uri")
    return None
