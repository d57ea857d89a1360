"""MLflow tracking: the run a flow logs into, and the per-epoch callback the trainer calls
(:class:`~tasks.epoch_logging.MlflowEpochLogger`, kept in a module without Prefect for the training processes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
from prefect import task

from seqmodels.digest import file_digest
from seqmodels.predict import read_history
from tasks.epoch_logging import MlflowEpochLogger  # noqa: F401  (its home before training processes needed it)
from tasks.settings import configure_mlflow


@task
def start_tracking(tracking_uri: str, run_name: str, params: dict, tags: dict, home: str | None = None) -> str:
    """Open an MLflow run with the flow's parameters and tags (Prefect flow-run id among them); return its id."""
    import mlflow

    experiment_id = configure_mlflow(tracking_uri, home)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
        mlflow.log_params({k: ("" if v is None else v) for k, v in params.items()})
        return run.info.run_id


def model_params(model_dir: str) -> dict:
    """``model.*`` / ``<nested config>.*`` / ``train.monitor`` as the trained model used them (``model.json``,
    ``history.json``): sizes known only after the vocabulary and label map were fitted. A list field
    (``tag_names``) is logged as its length (``model.num_tags``)."""
    config = json.loads((Path(model_dir) / "model.json").read_text(encoding="utf-8"))["model_config"]
    params = {}
    for key, value in config.items():
        if isinstance(value, dict):
            params.update({f"{key}.{k}": v for k, v in value.items()})
        elif isinstance(value, list):
            params[f"model.num_{key.removesuffix('_names')}s"] = len(value)
        else:
            params[f"model.{key}"] = value
    history = read_history(model_dir)
    if "monitor" in history:
        params["train.monitor"] = history["monitor"]
    return params


@task
def log_trained_model(run_id: str, model_dir: str, splits: dict[str, str], tracking_uri: str,
                      preprocessing: dict[str, dict] | None = None) -> dict:
    """The trained model's configuration as params, what preprocessing counted per given file as
    ``preprocess.<part>.<count>`` params, and each split as an MLflow dataset input with a digest of its
    Parquet file; returns ``{part: {rows, digest, source}}``."""
    import mlflow

    configure_mlflow(tracking_uri)
    data = {}
    counts = {f"preprocess.{part}.{k}": v for part, c in (preprocessing or {}).items() for k, v in c.items()}
    with mlflow.start_run(run_id=run_id):
        mlflow.log_params({k: ("" if v is None else v) for k, v in {**model_params(model_dir), **counts}.items()})
        for part, path in splits.items():
            columns = [c for c in ("text", "label") if c in pq.read_schema(path).names]
            frame = pq.read_table(path, columns=columns).to_pandas()
            digest = file_digest(path)
            dataset = mlflow.data.from_pandas(frame, source=str(path), name=part, digest=digest,
                                              targets="label" if "label" in columns else None)
            mlflow.log_input(dataset, context={"train": "training", "val": "validation", "test": "testing"}[part])
            data[part] = {"rows": len(frame), "digest": digest, "source": str(path)}
    return data


def _links(result: dict) -> tuple[str, str]:
    """Markdown links to the MLflow run and model version (UI pages for an http(s) store, else URIs)."""
    uri, run_id = result["tracking_uri"], result["run_id"]
    version_uri = f"models:/{result['model_name']}/{result['model_version']}"
    if not uri.startswith(("http://", "https://")):
        return f"`runs:/{run_id}` (store `{uri}`; `mlflow ui --backend-store-uri {uri}`)", f"`{version_uri}`"
    base = uri.rstrip("/")
    return (f"[run {run_id}]({base}/#/runs/{run_id})",
            f"[{version_uri}]({base}/#/models/{result['model_name']}/versions/{result['model_version']})")


def _preprocessing_lines(result: dict) -> list[str]:
    """Per given file: texts read, dropped as empty after cleaning, truncated; nothing for a tagged corpus."""
    lines = [f"- {part}: {c['rows_read']} texts read, {c['empty_after_cleaning']} empty after cleaning (dropped), "
             f"{c['truncated']} truncated to {c['max_tokens']} tokens"
             for part, c in result.get("preprocessing", {}).items() if c]
    return ["## Preprocessing", "", *lines, ""] if lines else []


def training_message(result: dict) -> str:
    """One line: version, alias, gate score and the gate's reason."""
    gate = result["gate"]
    return f"{result['model_name']} v{result['model_version']} -> {result['alias']}: {gate['reason']}"


@task
def report_training(result: dict) -> str:
    """A markdown artifact of the training run (test metrics, gate decision, MLflow links); the one-line message."""
    from prefect.artifacts import create_markdown_artifact

    gate, (run_link, version_link) = result["gate"], _links(result)
    champion = ("none" if gate["champion_version_before"] is None
                else f"v{gate['champion_version_before']}: {gate['champion_score_before']:.4f}")
    metrics = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
                        for k, v in result["metrics"].items())
    markdown = "\n".join([
        f"# {result['model_name']} version {result['model_version']}: {result['alias']}", "",
        f"- MLflow run: {run_link}", f"- model version: {version_link}", f"- run directory: `{result['run_dir']}`", "",
        "## Gate", "", f"{gate['reason']}.", "",
        f"- {gate['metric']} on {gate['rows']} rows ({gate['basis']}): new {gate['score']:.4f}, champion before "
        f"{champion}, majority class {gate['majority_baseline']:.4f}", "", *_preprocessing_lines(result),
        "## Test metrics", "", "| metric | value |", "|---|---|", metrics])
    key = re.sub(r"[^a-z0-9-]+", "-", f"train-{result['model_name']}".lower()).strip("-")
    create_markdown_artifact(markdown, key=key, description=training_message(result))
    return training_message(result)
