"""``seqflow train classify --nproc 2``: two gloo processes under torchrun train one model, rank 0 logs it and
the CLI registers exactly one version (Prefect's ephemeral API, MLflow on SQLite, real processes)."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow import MlflowClient

from conftest import tiny_headlines


def test_two_processes_train_and_register_exactly_one_version(prefect_harness, tmp_path, capsys):
    from flows.cli import main

    tiny_headlines(240, 0).to_csv(tmp_path / "train.csv", index=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(["train", "classify", "--train", str(tmp_path / "train.csv"), "--text-col", "headline",
                 "--label-col", "topic", "--model-name", "ddp-topics", "--epochs", "3", "--data-dir", str(tmp_path),
                 "--tracking-uri", uri, "--embedding-dim", "8", "--hidden-dim", "8", "--lr", "0.02",
                 "--batch-size", "16", "--min-steps", "0", "--no-baseline", "--nproc", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])  # the normal closing JSON line
    assert result["model_uri"] == "models:/ddp-topics@champion" and result["model_version"] == "1"

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert len(client.search_model_versions("name='ddp-topics'")) == 1
    run = client.get_run(result["run_id"])
    assert run.data.params["nproc"] == "2"
    epochs = [m.step for m in client.get_metric_history(result["run_id"], "train_loss")]
    assert epochs == sorted(set(epochs)) and 1 <= len(epochs) <= 3  # one value an epoch: only rank 0 logs

    run_dir = Path(result["run_dir"])
    assert (run_dir / "model" / "model.json").exists() and (run_dir / "checkpoints" / "last.pt").exists()
    assert not list((run_dir / "distributed").glob("rank*"))  # the other ranks' scratch directories are gone
    history = json.loads((run_dir / "model" / "history.json").read_text())
    assert len(history["history"]) == len(epochs)
