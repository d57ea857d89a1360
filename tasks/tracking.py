"""MLflow tracking: the run a flow logs into, and the per-epoch callback the trainer calls."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import task

from tasks.settings import configure_mlflow


@task
def start_tracking(tracking_uri: str, run_name: str, params: dict, tags: dict, home: str | None = None) -> str:
    """Open an MLflow run with the flow's parameters and tags (Prefect flow-run id among them); return its id."""
    import mlflow

    experiment_id = configure_mlflow(tracking_uri, home)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
        mlflow.log_params({k: ("" if v is None else v) for k, v in params.items()})
        return run.info.run_id


@dataclass
class MlflowEpochLogger:
    """Trainer callback: logs ``train_loss``, ``val_loss``, ``val_accuracy``, ``lr``, ``epoch_time_s`` per epoch."""

    run_id: str

    def on_epoch_end(self, trainer, record: dict) -> None:
        from mlflow import MlflowClient

        client = MlflowClient()
        for key, value in record.items():
            if key != "epoch":
                client.log_metric(self.run_id, key, float(value), step=int(record["epoch"]))
