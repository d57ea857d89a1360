"""Training and evaluation tasks."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from prefect import task

from seqmodels.classify import evaluate_classifier, train_classifier
from seqmodels.models.classifier import ClassifierConfig
from seqmodels.plots import plot_confusion_matrix, plot_learning_curves
from seqmodels.training import TrainerConfig
from tasks.tracking import MlflowEpochLogger


@task
def train_model(train_path: str, val_path: str, featurizer_dir: str, run_dir: str, model_config: dict,
                trainer_config: dict, use_class_weights: bool, resume: bool, run_id: str | None) -> str:
    """Train with early stopping on val; checkpoints in ``run_dir/checkpoints``, the model in ``run_dir/model``."""
    callbacks = (MlflowEpochLogger(run_id),) if run_id else ()
    model_dir, result = train_classifier(
        train_path, val_path, featurizer_dir, Path(run_dir) / "model", Path(run_dir) / "checkpoints",
        ClassifierConfig.from_dict(model_config), TrainerConfig(**trainer_config), use_class_weights, resume, callbacks)
    return str(model_dir)


@task
def evaluate_model(model_dir: str, test_path: str, out_dir: str, device: str = "auto") -> dict:
    """Test metrics as JSON, the per-class table as CSV, confusion-matrix and learning-curve PNGs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = evaluate_classifier(model_dir, test_path, device)
    history = json.loads((Path(model_dir) / "history.json").read_text())
    files = {
        "metrics": out / "metrics.json",
        "per_class": out / "per_class.csv",
        "confusion_matrix": plot_confusion_matrix(report["confusion"], report["labels"], out / "confusion_matrix.png"),
        "learning_curves": plot_learning_curves(history["history"], out / "learning_curves.png"),
    }
    files["metrics"].write_text(json.dumps(report["metrics"], indent=2))
    report["per_class"].to_csv(files["per_class"], index=False)
    return {"metrics": report["metrics"], "files": {k: str(v) for k, v in files.items()},
            "best_epoch": history["best_epoch"], "stop_reason": history["stop_reason"],
            "train_time_s": history["train_time_s"]}


def config_params(model_config: ClassifierConfig, trainer_config: TrainerConfig) -> dict:
    """Flat ``section.field`` parameters for tracking."""
    flat = {f"model.{k}": v for k, v in asdict(model_config).items() if k != "encoder"}
    flat.update({f"encoder.{k}": v for k, v in asdict(model_config.encoder).items()})
    flat.update({f"train.{k}": v for k, v in asdict(trainer_config).items()})
    return flat
