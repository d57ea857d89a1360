"""``seqflow train classify --nproc 2`` in a fresh process, as a user runs it: two gloo processes under torchrun
train one model, rank 0 logs its epochs and the CLI registers exactly one version and prints its JSON line
alone on stdout (the test session's Prefect server, MLflow on SQLite, real processes; the CLI's own temporary
server is tested in ``test_cli.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

from conftest import tiny_headlines

REPO = Path(__file__).resolve().parent.parent


def test_two_processes_train_and_register_exactly_one_version(prefect_harness, tmp_path):
    from prefect.settings import PREFECT_API_URL

    tiny_headlines(240, 0).to_csv(tmp_path / "train.csv", index=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_") and k != "MLFLOW_TRACKING_URI"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=PREFECT_API_URL.value())
    cmd = [sys.executable, "-m", "flows.cli", "train", "classify", "--train", str(tmp_path / "train.csv"),
           "--text-col", "headline", "--label-col", "topic", "--model-name", "ddp-topics", "--epochs", "3",
           "--data-dir", str(tmp_path), "--tracking-uri", uri, "--embedding-dim", "8", "--hidden-dim", "8",
           "--lr", "0.02", "--batch-size", "16", "--no-baseline", "--nproc", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = proc.stdout.strip().splitlines()  # the normal closing JSON line, alone: no rank wrote to stdout
    result = json.loads(line)
    assert result["model_uri"] == "models:/ddp-topics@champion" and result["model_version"] == "1"
    assert "training in 2 processes" in proc.stderr and "[rank 0] INFO seqmodels.training: epoch 1 " in proc.stderr

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert len(client.search_model_versions("name='ddp-topics'")) == 1
    assert client.get_run(result["run_id"]).data.params["nproc"] == "2"
    epochs = [m.step for m in client.get_metric_history(result["run_id"], "train_loss")]
    assert epochs == sorted(set(epochs)) and 1 <= len(epochs) <= 3  # one value an epoch: only rank 0 logs

    run_dir = Path(result["run_dir"])
    assert (run_dir / "model" / "model.json").exists() and (run_dir / "checkpoints" / "last.pt").exists()
    assert not list((run_dir / "distributed").glob("rank*"))  # the other ranks' scratch directories are gone
    history = json.loads((run_dir / "model" / "history.json").read_text())
    assert len(history["history"]) == len(epochs)
