"""Tasks of the nightly batch flow: find new files, load the registered model, predict a file, report."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from seqmodels.inbox import InboxFile, find_new_files, inbox_spec, predict_file
from seqmodels.predict import load_predictor
from tasks.settings import configure_mlflow, data_dir


@task(retries=2, retry_delay_seconds=5)
def find_new(inbox: str, output: str) -> list[dict]:
    """Inbox files not yet in the ledger (a changed file counts as new)."""
    return [asdict(f) for f in find_new_files(inbox, output)]


@task(retries=2, retry_delay_seconds=5)
def fetch_model(model_name: str, alias: str, tracking_uri: str, home: str | None = None) -> dict:
    """Resolve ``models:/NAME@ALIAS`` and download its model directory; a clear error if either is missing."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure_mlflow(tracking_uri, home)
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(model_name, alias)
    except MlflowException as err:
        raise LookupError(f"no model version models:/{model_name}@{alias} in {tracking_uri}: {err.message}. "
                          f"Train one with `seqflow train` or pick an existing --alias") from None
    cache = data_dir(home) / "model_cache" / model_name / str(version.version)
    if not (cache / "done").exists():
        with tempfile.TemporaryDirectory(dir=data_dir(home)) as tmp:
            local = Path(mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version.version}", dst_path=tmp))
            model_dir = next(local.glob("artifacts/*/model.json")).parent
            cache.parent.mkdir(parents=True, exist_ok=True)
            if cache.exists():  # a download cut short before "done" was written
                shutil.rmtree(cache)
            model_dir.rename(cache)
        (cache / "done").write_text("ok")
    return {"model_dir": str(cache), "model_name": model_name, "model_version": str(version.version),
            "run_id": version.run_id, "alias": alias}


@lru_cache(maxsize=4)
def _predictor(model_dir: str, device: str):
    """One loaded model per process and model directory."""
    return load_predictor(model_dir, device)


@task
def predict_one_file(item: dict, output: str, model: dict, text_col: str, batch_size: int, device: str,
                     chunk_rows: int = 65_536) -> dict:
    """Stream one file through the model into Parquet (or quarantine it); record it in the ledger."""
    predictor = _predictor(model["model_dir"], device)
    columns = {"model_name": model["model_name"], "model_version": model["model_version"], "run_id": model["run_id"]}
    outcome = predict_file(InboxFile(**item), output, lambda texts: predictor.predict_texts(texts, batch_size),
                           columns, inbox_spec(item["path"], text_col, chunk_rows))
    return asdict(outcome)


@task
def report_run(outcomes: list[dict], model: dict, seconds: float) -> dict:
    """Table artifact (files, rows, failures, label counts, throughput) and a markdown note of the model."""
    rows = sum(o["rows"] for o in outcomes)
    failed = [o for o in outcomes if o["status"] == "quarantined"]
    table = [{"file": Path(o["path"]).name, "status": o["status"], "rows": o["rows"],
              "labels": ", ".join(f"{k}: {v}" for k, v in sorted(o["label_counts"].items())),
              "rows_per_s": round(o["rows"] / o["seconds"], 1) if o["seconds"] else None,
              "output_or_error": o["error"] or o["output"]} for o in outcomes]
    create_table_artifact(table=table or [{"file": "(no new files)"}], key="batch-predict-files",
                          description=f"{len(outcomes)} files, {rows} rows, {len(failed)} quarantined")
    create_markdown_artifact(key="batch-predict-model", markdown=(
        f"# Batch prediction\n\nModel **{model['model_name']}** version **{model['model_version']}** "
        f"(alias `@{model['alias']}`, MLflow run `{model['run_id']}`).\n\n"
        f"{len(outcomes)} files, {rows} rows, {len(failed)} quarantined, {seconds:.1f} s."))
    return {"files": len(outcomes), "files_written": len(outcomes) - len(failed), "files_failed": len(failed),
            "rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds, 1) if seconds else None,
            "failed": [{"path": o["path"], "error": o["error"]} for o in failed]}
