"""The nightly batch deployment and the training deployment, served against a Prefect server.

Start a server (SQLite) with ``prefect server start``, point this process at it with
``PREFECT_API_URL=http://127.0.0.1:4200/api``, then ``seqflow serve``. Environment variables set the
nightly defaults; every one of them is also a typed parameter in the Prefect UI's run form.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from prefect.schedules import Cron

NIGHTLY_NAME, TRAINING_NAME, TAGGER_TRAINING_NAME = "nightly-batch-predict", "train-classifier", "train-tagger"


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

    @classmethod
    def from_env(cls) -> "NightlySettings":
        values = {name: os.environ[f"SEQFLOW_NIGHTLY_{name.upper()}"] for name in cls.__dataclass_fields__
                  if f"SEQFLOW_NIGHTLY_{name.upper()}" in os.environ}
        return cls(**values)


def nightly_deployment(settings: NightlySettings = NightlySettings()):
    """Batch prediction every night (cron and timezone from settings) over the inbox."""
    from flows.batch_flow import batch_predict_flow

    return batch_predict_flow.to_deployment(
        name=NIGHTLY_NAME, schedules=[Cron(settings.cron, timezone=settings.timezone)],
        parameters={"model_name": settings.model_name, "alias": settings.alias, "inbox": settings.inbox,
                    "output": settings.output, "text_col": settings.text_col},
        description="Classify or tag (whatever task the registered model does) every new file of the inbox into "
                    "Parquet, exactly once.", tags=["seqflow", "nightly"])


def training_deployment():
    """The training flow, run on demand from the UI with its typed parameters as a form."""
    from flows.train_flow import train_classifier_flow

    return train_classifier_flow.to_deployment(
        name=TRAINING_NAME, description="Train, evaluate and register a text classifier.", tags=["seqflow", "training"])


def tagger_training_deployment():
    """The tagger training flow (NER / POS), run on demand from the UI with its typed parameters as a form."""
    from flows.train_flow import train_tagger_flow

    return train_tagger_flow.to_deployment(
        name=TAGGER_TRAINING_NAME, description="Train, evaluate and register a sequence tagger (NER / POS).",
        tags=["seqflow", "training"])


def serve_all() -> None:
    """Serve the nightly deployment and the training deployments until interrupted (Ctrl-C)."""
    from prefect import serve

    from flows.startup import send_library_logs_to_prefect

    send_library_logs_to_prefect()  # the flow runs it starts inherit the setting: epoch lines reach the UI

    serve(nightly_deployment(NightlySettings.from_env()), training_deployment(), tagger_training_deployment())


if __name__ == "__main__":
    serve_all()
