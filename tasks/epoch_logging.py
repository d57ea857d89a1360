"""The trainer callback that logs each epoch to MLflow. No Prefect here: the training processes that
``seqflow train --nproc N`` starts import it (rank 0 logs) without loading Prefect."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MlflowEpochLogger:
    """Trainer callback: logs every number of the epoch's record (``train_loss``, ``val_loss``, the kind's
    validation metrics, ``lr``, ``epoch_time_s``) with the epoch as step, and the files a kind listed in the
    record's ``artifacts`` (e.g. text samples) under ``epochs/`` as soon as the epoch ends."""

    run_id: str

    def on_epoch_end(self, trainer, record: dict) -> None:
        from mlflow import MlflowClient

        client = MlflowClient()
        for path in record.get("artifacts", ()):
            client.log_artifact(self.run_id, path, "epochs")
        for key, value in record.items():
            if key not in ("epoch", "artifacts"):
                client.log_metric(self.run_id, key, float(value), step=int(record["epoch"]))
