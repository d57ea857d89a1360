"""Training and evaluation tasks (every task kind, dispatched on ``task``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pyarrow.parquet as pq
from prefect import task

from seqmodels.digest import write_text_hashes
from seqmodels.kinds import get_kind
from seqmodels.plots import plot_confusion_matrix, plot_learning_curves
from seqmodels.training import TrainerConfig
from tasks.tracking import MlflowEpochLogger


@task
def train_model(train_path: str, val_path: str, featurizer_dir: str, run_dir: str, model_config: dict,
                trainer_config: dict, use_class_weights: bool, resume: bool, run_id: str | None,
                task_kind: str = "classify") -> str:
    """Train with early stopping on val; checkpoints in ``run_dir/checkpoints``, the model in ``run_dir/model``
    with the hashes of its training texts (``train_hashes.npy``, for the promotion gate)."""
    callbacks = (MlflowEpochLogger(run_id),) if run_id else ()
    kind = get_kind(task_kind)
    config = kind.model_config.from_dict(model_config)
    extra = {"use_class_weights": use_class_weights} if task_kind == "classify" else {}
    model_dir, _ = kind.train(
        train_path, val_path, featurizer_dir, Path(run_dir) / "model", Path(run_dir) / "checkpoints", config,
        TrainerConfig(**trainer_config), resume=resume, callbacks=callbacks, **extra)
    write_text_hashes(pq.read_table(train_path, columns=["text"]).column("text").to_pylist(), model_dir)
    return str(model_dir)


@task
def evaluate_model(model_dir: str, test_path: str, out_dir: str, device: str = "auto",
                   task_kind: str = "classify") -> dict:
    """Test metrics as JSON, per-class / per-tag tables as CSV, confusion-matrix and learning-curve PNGs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kind = get_kind(task_kind)
    report = kind.evaluate(model_dir, test_path, device)
    history = json.loads((Path(model_dir) / "history.json").read_text())
    files = {
        "metrics": out / "metrics.json",
        "confusion_matrix": plot_confusion_matrix(report["confusion"], report["labels"], out / "confusion_matrix.png"),
        "learning_curves": plot_learning_curves(history["history"], out / "learning_curves.png"),
    }
    files["metrics"].write_text(json.dumps(report["metrics"], indent=2))
    for name, table in report["tables"].items():
        files[name] = out / f"{name}.csv"
        table.to_csv(files[name], index=False)
    return {"metrics": report["metrics"], "files": {k: str(v) for k, v in files.items()},
            "gate_metric": kind.gate_metric(report["metrics"]),
            "best_epoch": history["best_epoch"], "stop_reason": history["stop_reason"],
            "train_time_s": history["train_time_s"]}


def config_params(model_config, trainer_config: TrainerConfig) -> dict:
    """Flat ``section.field`` parameters of the configs as given (the run's ``config.json``)."""
    flat = {f"model.{k}": v for k, v in asdict(model_config).items() if k not in ("encoder", "tag_names")}
    flat.update({f"encoder.{k}": v for k, v in asdict(model_config.encoder).items()})
    flat.update({f"train.{k}": v for k, v in asdict(trainer_config).items()})
    return flat


def params_before_training(config: dict) -> dict:
    """The parameters MLflow gets at the start: all but ``model.*``, ``encoder.*`` and ``train.monitor``, which
    training settles (class count, vocabulary size...) and :func:`tasks.tracking.log_trained_model` logs after."""
    return {k: v for k, v in config.items() if not k.startswith(("model.", "encoder.")) and k != "train.monitor"}
