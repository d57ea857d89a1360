"""The nightly batch deployment and one training deployment per task kind, served against a Prefect server.

Start a server (SQLite) with ``prefect server start``, point this process at it with
``PREFECT_API_URL=http://127.0.0.1:4200/api``, then ``seqflow serve``. Environment variables set the
nightly defaults; every one of them is also a typed parameter in the Prefect UI's run form.

On a Dask cluster: ``SEQFLOW_NIGHTLY_TASK_RUNNER=dask SEQFLOW_NIGHTLY_ADDRESS=tcp://scheduler:8786`` (and
inbox / output on storage every worker reaches; see the README's "Batch prediction on a cluster").
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prefect.schedules import Cron

NIGHTLY_NAME = "nightly-batch-predict"


@dataclass(frozen=True)
class NightlySettings:
    """Defaults of the nightly deployment; ``SEQFLOW_NIGHTLY_*`` environment variables override them."""

    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    inbox: str = "inbox"
    output: str = "predictions"
    model_name: str = "demo-headlines"
    alias: str = "champion"
    text_col: str = "text"
    task_runner: str = "local"  # local | dask | ray (see flows.runners.ClusterOptions)
    address: str | None = None  # tcp://HOST:8786 (dask) or ray://HOST:10001 (ray); None: a local cluster
    workers: int | None = None  # processes of that local cluster

    @classmethod
    def from_env(cls) -> "NightlySettings":
        values = {name: os.environ[f"SEQFLOW_NIGHTLY_{name.upper()}"] for name in cls.__dataclass_fields__
                  if f"SEQFLOW_NIGHTLY_{name.upper()}" in os.environ}
        if "workers" in values:
            values["workers"] = int(values["workers"])
        return cls(**values)


def nightly_deployment(settings: NightlySettings = NightlySettings()):
    """Batch prediction every night (cron and timezone from settings) over the inbox."""
    from flows.batch_flow import batch_predict_flow

    return batch_predict_flow.to_deployment(
        name=NIGHTLY_NAME, schedules=[Cron(settings.cron, timezone=settings.timezone)],
        parameters={"model_name": settings.model_name, "alias": settings.alias, "inbox": settings.inbox,
                    "output": settings.output, "text_col": settings.text_col, "task_runner": settings.task_runner,
                    "address": settings.address, "workers": settings.workers},
        description="Predict (whatever task the registered model does) every new file of the inbox into "
                    "Parquet, exactly once.", tags=["seqflow", "nightly"])


def training_deployment(kind_name: str):
    """A kind's training flow, run on demand from the UI with its typed, described parameters as a form."""
    from flows.train_flow import training_flow
    from seqmodels.kinds import get_kind

    kind = get_kind(kind_name)
    return training_flow(kind_name).to_deployment(
        name=kind.flow_name, description=f"Train, evaluate and register a model: {kind.description}.",
        tags=["seqflow", "training", kind.name])


def training_deployments() -> list:
    """One training deployment per registered task kind."""
    from seqmodels.kinds import kind_names

    return [training_deployment(name) for name in kind_names()]


def serve_all() -> None:
    """Serve the nightly deployment and the training deployments until interrupted (Ctrl-C)."""
    from prefect import serve

    from flows.startup import send_library_logs_to_prefect

    send_library_logs_to_prefect()  # the flow runs it starts inherit the setting: epoch lines reach the UI

    serve(nightly_deployment(NightlySettings.from_env()), *training_deployments())


if __name__ == "__main__":
    serve_all()
