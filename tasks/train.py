"""Training and evaluation tasks for any task kind (the kind, by name, does the work)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pyarrow.parquet as pq
from prefect import task

from seqmodels.digest import write_text_hashes
from seqmodels.kinds import get_kind
from seqmodels.plots import plot_confusion_matrix, plot_learning_curves
from seqmodels.predict import read_history
from seqmodels.training import TrainerConfig
from tasks.distributed_train import train_in_this_process, train_on_processes
from tasks.epoch_logging import MlflowEpochLogger
from tasks.prepare import kind_and_options


@task
def train_model(kind_name: str, splits: dict[str, str], featurizer_dir: str, run_dir: str, model_config: dict,
                trainer_config: dict, options: dict, resume: bool, run_id: str | None) -> str:
    """Train with early stopping on val; checkpoints in ``run_dir/checkpoints``, the model in ``run_dir/model``
    with the hashes of its training texts (``train_hashes.npy``, for the promotion gate). With ``nproc`` above 1
    in ``options`` the training runs in that many processes under torchrun (:mod:`tasks.distributed_train`)."""
    if int(options.get("nproc") or 1) > 1:
        model_dir = train_on_processes(kind_name, splits, featurizer_dir, run_dir, model_config, trainer_config,
                                       options, resume, run_id)
    else:
        model_dir = train_in_this_process(kind_name, splits, featurizer_dir, run_dir, model_config, trainer_config,
                                          options, resume, (MlflowEpochLogger(run_id),) if run_id else ())
    write_text_hashes(pq.read_table(splits["train"], columns=["text"]).column("text").to_pylist(), model_dir)
    return str(model_dir)


@task
def evaluate_model(kind_name: str, model_dir: str, test_path: str, out_dir: str, device: str = "auto") -> dict:
    """Test metrics as JSON, the kind's tables as CSV, learning curves (and a confusion matrix when the kind
    has one) as PNG."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kind = get_kind(kind_name)
    report = kind.evaluate(model_dir, test_path, device)
    history = read_history(model_dir)
    files = {"metrics": out / "metrics.json"}
    if report.confusion is not None:
        files["confusion_matrix"] = plot_confusion_matrix(report.confusion, report.labels, out / "confusion_matrix.png")
    files["learning_curves"] = plot_learning_curves(history["history"], out / "learning_curves.png")
    files["metrics"].write_text(json.dumps(report.metrics, indent=2))
    for name, table in report.tables.items():
        files[name] = out / f"{name}.csv"
        table.to_csv(files[name], index=False)
    metric = kind.gate_metric(report.metrics)
    return {"metrics": report.metrics, "files": {k: str(v) for k, v in files.items()}, "gate_metric": metric,
            "higher_is_better": kind.higher_is_better(metric), "best_epoch": history["best_epoch"],
            "stop_reason": history["stop_reason"], "train_time_s": history["train_time_s"]}


@task
def compare_with_baselines(kind_name: str, splits: dict[str, str], options: dict, metrics: dict) -> dict:
    """Fit the kind's reference models on the same split; their ``baseline_*`` test metrics, and one log line
    per baseline saying whether the model beats it and by how much."""
    kind, opts = kind_and_options(kind_name, options)
    baselines = kind.baselines(splits, opts)
    for name, value in baselines.items():
        metric = name.removeprefix("baseline_")
        if metric in metrics and name != metric:
            _logger().info(baseline_verdict(metric, metrics[metric], value, kind.higher_is_better(metric)))
    return baselines


def baseline_verdict(metric: str, score: float, baseline: float, higher: bool) -> str:
    """One line: whether the model's test ``metric`` beats the baseline's, and by how much."""
    margin = (score - baseline) if higher else (baseline - score)
    if margin > 0:
        return f"test {metric} {score:.4f} beats the linear baseline's {baseline:.4f} by {abs(score - baseline):.4f}"
    if margin == 0:
        return f"test {metric} {score:.4f} ties the linear baseline's {baseline:.4f}"
    return (f"test {metric} {score:.4f} is worse than the linear baseline's {baseline:.4f} by "
            f"{abs(score - baseline):.4f}: a linear model does better on this data")


def _logger():
    """The run's logger inside Prefect, else this module's."""
    import logging

    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def config_params(model_config, trainer_config: TrainerConfig) -> dict:
    """Flat parameters of the configs as given (the run's ``config.json``): ``model.<field>``, a nested config
    field's entries as ``<field>.<entry>`` (``encoder.hidden_dim``), ``train.<field>``. Lists (tag names, which
    training fills in) are left out."""
    flat = {}
    for key, value in asdict(model_config).items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        elif not isinstance(value, list):
            flat[f"model.{key}"] = value
    flat.update({f"train.{k}": v for k, v in asdict(trainer_config).items()})
    return flat


def params_before_training(config: dict) -> dict:
    """The parameters MLflow gets at the start: all but ``model.*``, ``encoder.*`` and ``train.monitor``, which
    training settles (class count, vocabulary size...) and :func:`tasks.tracking.log_trained_model` logs after."""
    return {k: v for k, v in config.items() if not k.startswith(("model.", "encoder.")) and k != "train.monitor"}
