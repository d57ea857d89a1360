"""The batch tasks with a fake MLflow registry: the model cache key, retries only where they help, the run report."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

import tasks.batch as batch


class FakeRegistry:
    """Stands for two MLflow stores that both hold ``topics`` version 1, from different runs."""

    def __init__(self, failures: list[BaseException] | None = None):
        self.calls = 0
        self.failures = list(failures or [])

    def client(self):
        registry = self

        class Client:
            def get_model_version_by_alias(self, name, alias):
                registry.calls += 1
                if registry.failures:
                    raise registry.failures.pop(0)
                uri = mlflow.get_tracking_uri()
                return SimpleNamespace(version="1", run_id=f"run-of-{Path(uri).stem}", source=f"{uri}/m")

        return Client

    @staticmethod
    def download(artifact_uri: str, dst_path: str) -> str:
        model = Path(dst_path) / "artifacts" / "model"
        model.mkdir(parents=True)
        (model / "model.json").write_text(json.dumps({"store": mlflow.get_tracking_uri()}))
        return dst_path


@pytest.fixture
def registry(monkeypatch) -> FakeRegistry:
    fake = FakeRegistry()
    monkeypatch.setattr(mlflow, "MlflowClient", fake.client())
    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", fake.download)
    monkeypatch.setattr(batch, "configure_mlflow", lambda uri, home=None: mlflow.set_tracking_uri(uri))
    return fake


def test_model_cache_is_keyed_by_the_tracking_store(registry, tmp_path):
    home = str(tmp_path / "home")
    first = batch.fetch_model.fn("topics", "champion", f"sqlite:///{tmp_path}/store_a.db", home)
    second = batch.fetch_model.fn("topics", "champion", f"sqlite:///{tmp_path}/store_b.db", home)
    assert first["run_id"] == "run-of-store_a" and second["run_id"] == "run-of-store_b"
    assert first["model_dir"] != second["model_dir"]
    assert json.loads((Path(second["model_dir"]) / "model.json").read_text())["store"].endswith("store_b.db")
    again = batch.fetch_model.fn("topics", "champion", f"sqlite:///{tmp_path}/store_a.db", home)
    assert again["model_dir"] == first["model_dir"]


def test_missing_alias_is_not_retried(prefect_harness, registry, tmp_path):
    registry.failures = [MlflowException("Registered model alias champion not found.",
                                         error_code=INVALID_PARAMETER_VALUE)] * 3
    fetch = batch.fetch_model.with_options(retry_delay_seconds=0)
    with pytest.raises(LookupError, match="models:/topics@champion"):
        fetch("topics", "champion", f"sqlite:///{tmp_path}/s.db", str(tmp_path / "home"))
    assert registry.calls == 1


def test_transient_registry_error_is_retried(prefect_harness, registry, tmp_path):
    registry.failures = [MlflowException("(sqlite3.OperationalError) database is locked"), ConnectionError("reset")]
    fetch = batch.fetch_model.with_options(retry_delay_seconds=0)
    model = fetch("topics", "champion", f"sqlite:///{tmp_path}/s.db", str(tmp_path / "home"))
    assert registry.calls == 3 and model["model_version"] == "1"


def test_missing_inbox_is_not_retried(prefect_harness, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = batch.find_new_files

    def counting(inbox, output):
        calls["n"] += 1
        return real(inbox, output)

    monkeypatch.setattr(batch, "find_new_files", counting)
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        batch.find_new.with_options(retry_delay_seconds=0)(str(tmp_path / "nope"), str(tmp_path / "out"))
    assert calls["n"] == 1


def test_run_report_sums_reasons_and_counts_skipped_files(prefect_harness):
    def outcome(path, status, rows, reasons):
        return {"path": path, "status": status, "rows": rows, "output": None, "error": None, "label_counts": {},
                "seconds": 1.0, "reason_counts": reasons}

    outcomes = [outcome("/in/a.txt", "written", 5, {"empty text": 2, "truncated to 400 tokens": 1}),
                outcome("/in/b.txt", "written", 3, {"empty text": 1}),
                outcome("/in/c.txt", "skipped", 0, {})]
    model = {"model_name": "topics", "model_version": "1", "alias": "champion", "run_id": "r"}
    summary = batch.report_run(outcomes, model, 2.0)
    assert summary["reasons"] == {"empty text": 3, "truncated to 400 tokens": 1}
    assert summary["files_written"] == 2 and summary["files_skipped"] == 1 and summary["files_failed"] == 0
