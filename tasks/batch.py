"""Tasks of the nightly batch flow: find new files, load the registered model, predict a file, report."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from seqmodels.inbox import InboxFile, Prediction, find_new_files, inbox_spec
from seqmodels.shards import Shard, run_shard, take_snapshot
from seqmodels.kinds import get_kind, load_predictor
from seqmodels.predict import read_model_meta
from tasks.settings import configure_mlflow, data_dir


# Errors that are still there 5 s later: retrying them only delays the message (a missing model, alias or inbox).
PERMANENT_ERRORS = (LookupError, FileNotFoundError, NotADirectoryError, PermissionError, ValueError, TypeError)


# What MLflow's registry answers for a missing model (RESOURCE_DOES_NOT_EXIST) or alias (INVALID_PARAMETER_VALUE).
MISSING_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def retry_transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry unless the task failed with one of :data:`PERMANENT_ERRORS`.

    Prefect passes a Failed state whose ``data`` is the exception raised.
    """
    return not isinstance(getattr(state, "data", None), PERMANENT_ERRORS)


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient_only)
def find_new(inbox: str, output: str) -> list[dict]:
    """Inbox files not yet in the ledger (a changed file counts as new)."""
    return [asdict(f) for f in find_new_files(inbox, output)]


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient_only)
def fetch_model(model_name: str, alias: str, tracking_uri: str, home: str | None = None) -> dict:
    """Resolve ``models:/NAME@ALIAS`` and download its model directory; a clear error if either is missing."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure_mlflow(tracking_uri, home)
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(model_name, alias)
    except MlflowException as err:
        if err.error_code not in MISSING_CODES:
            raise  # the store failed (locked, unreachable): retried
        raise LookupError(f"no model version models:/{model_name}@{alias} in {tracking_uri}: {err.message}. "
                          f"Train one with `seqflow train` or pick an existing --alias") from None
    cache = download_model(tracking_uri, model_name, version, home)
    return {"model_dir": str(cache), "model_name": model_name, "model_version": str(version.version),
            "run_id": version.run_id, "alias": alias, "tracking_uri": tracking_uri,
            "source": str(getattr(version, "source", ""))}


def download_model(tracking_uri: str, model_name: str, version: Any, home: str | None) -> Path:
    """The model directory of an MLflow ``ModelVersion`` in this host's cache, downloaded once (MLflow is
    configured for ``tracking_uri`` already)."""
    import mlflow

    cache = model_cache_dir(data_dir(home), tracking_uri, model_name, version)
    if not (cache / "done").exists():
        with tempfile.TemporaryDirectory(dir=data_dir(home)) as tmp:
            local = Path(mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version.version}", dst_path=tmp))
            model_dir = next(local.glob("artifacts/*/model.json")).parent
            cache.parent.mkdir(parents=True, exist_ok=True)
            if cache.exists():  # a download cut short before "done" was written
                shutil.rmtree(cache)
            model_dir.rename(cache)
        (cache / "done").write_text("ok")
    return cache


def model_cache_dir(home: Path, tracking_uri: str, model_name: str, version: Any) -> Path:
    """``model_cache/NAME/VERSION-<digest>`` for an MLflow ``ModelVersion``; the digest covers the store, run id
    and source of the version.

    Name and version alone are not unique: two MLflow stores (or a store rebuilt from scratch) each have
    their own ``NAME`` version 1.
    """
    key = "\n".join([tracking_uri, model_name, str(version.version), str(version.run_id),
                     str(getattr(version, "source", ""))])
    return home / "model_cache" / model_name / f"{version.version}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


@lru_cache(maxsize=4)
def _predictor(model_dir: str, device: str):
    """One loaded model per process and model directory."""
    return load_predictor(model_dir, device)


@lru_cache(maxsize=4)
def _worker_model(tracking_uri: str, model_name: str, model_version: str, run_id: str, source: str,
                  model_dir: str, home: str | None) -> str:
    """This process's model directory for a registered version: the flow's copy when this host sees it,
    else downloaded once into this host's cache (a worker on another host)."""
    if (Path(model_dir) / "done").exists():
        return model_dir
    configure_mlflow(tracking_uri, home)
    version = SimpleNamespace(version=model_version, run_id=run_id, source=source)
    return str(download_model(tracking_uri, model_name, version, home))


def worker_prediction(model: dict, device: str, batch_size: int, threads: int | None) -> tuple[Prediction, dict]:
    """The model as a :class:`Prediction`, loaded once per worker process (cached by tracking store, model
    name, version and run), and the constant columns of its rows. ``threads`` caps this process's torch
    threads, so that several worker processes on one host do not oversubscribe its cores."""
    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    model_dir = _worker_model(model.get("tracking_uri", ""), model["model_name"], model["model_version"],
                              str(model["run_id"]), model.get("source", ""), model["model_dir"], None)
    predictor, kind = _predictor(model_dir, device), get_kind(read_model_meta(model_dir)["task"])
    prediction = Prediction(lambda texts: predictor.predict_texts(texts, batch_size), kind.output_types,
                            kind.prediction_counts)
    return prediction, {"model_name": model["model_name"], "model_version": model["model_version"],
                        "run_id": model["run_id"]}


@task(retries=2, retry_delay_seconds=1, retry_condition_fn=retry_transient_only)
def snapshot_file(item: dict, output: str) -> dict:
    """Copy one new inbox file to the output's ``.reading/`` folder, hashing it (see ``take_snapshot``)."""
    return take_snapshot(InboxFile(**item), output)


@task(retries=2, retry_delay_seconds=1, retry_condition_fn=retry_transient_only)
def predict_shard(shard: dict, model: dict, text_col: str, batch_size: int, device: str,
                  threads: int | None = None, chunk_rows: int = 65_536) -> dict:
    """Predict one shard (a row range of one snapshot) into its part file; returns the part's path and counts.

    Takes and returns paths and small dicts only. A retry (after an error, or a worker killed mid-task)
    finds a published part and returns it: nothing is written twice.
    """
    prediction, columns = worker_prediction(model, device, batch_size, threads)
    result = run_shard(Shard(**shard), prediction, columns, inbox_spec(shard["path"], text_col, chunk_rows))
    return asdict(result)


@task
def report_run(outcomes: list[dict], model: dict, seconds: float) -> dict:
    """Table artifact (files, rows, failures, label and reason counts, throughput) and a markdown note of the model."""
    rows = sum(o["rows"] for o in outcomes)
    failed = [o for o in outcomes if o["status"] == "quarantined"]
    skipped = [o for o in outcomes if o["status"] == "skipped"]
    reasons = sum((Counter(o.get("reason_counts") or {}) for o in outcomes), Counter())
    create_table_artifact(table=[_table_row(o) for o in outcomes] or [{"file": "(no new files)"}],
                          key="batch-predict-files", description=f"{len(outcomes)} files, {rows} rows, "
                          f"{len(failed)} quarantined, {len(skipped)} skipped")
    create_markdown_artifact(key="batch-predict-model", markdown=(
        f"# Batch prediction\n\nModel **{model['model_name']}** version **{model['model_version']}** "
        f"(alias `@{model['alias']}`, MLflow run `{model['run_id']}`).\n\n"
        f"{len(outcomes)} files, {rows} rows, {len(failed)} quarantined, {len(skipped)} skipped, {seconds:.1f} s."
        + "".join(f"\n- {reason}: {n} rows" for reason, n in sorted(reasons.items()))))
    return {"files": len(outcomes), "files_written": len(outcomes) - len(failed) - len(skipped),
            "files_failed": len(failed), "files_skipped": len(skipped), "rows": rows, "reasons": dict(reasons),
            "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds, 1) if seconds else None,
            "failed": [{"path": o["path"], "error": o["error"]} for o in failed],
            "skipped": [{"path": o["path"], "error": o["error"]} for o in skipped]}


def _table_row(outcome: dict) -> dict:
    """One row of the run's table artifact."""
    return {"file": Path(outcome["path"]).name, "status": outcome["status"], "rows": outcome["rows"],
            "labels": ", ".join(f"{k}: {v}" for k, v in sorted(outcome["label_counts"].items())),
            "reasons": ", ".join(f"{k}: {v}" for k, v in sorted((outcome.get("reason_counts") or {}).items())),
            "rows_per_s": round(outcome["rows"] / outcome["seconds"], 1) if outcome["seconds"] else None,
            "output_or_error": outcome["error"] or outcome["output"]}
