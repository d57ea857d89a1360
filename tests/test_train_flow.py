"""The training flow for real: Prefect's ephemeral API, a SQLite MLflow store, Parquet on disk."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import pyfunc_in_a_fresh_process, train_tiny


def test_champion_then_challenger_then_fresh_process_predicts(trained_classifier):
    first, store = trained_classifier, trained_classifier["home"]
    assert first["alias"] == "champion" and first["model_version"] == "1"
    assert first["metrics"]["accuracy"] >= 0.9
    assert {"accuracy", "f1_macro", "f1_weighted"} <= set(first["metrics"])
    for part in ("train", "val", "test"):
        assert pd.read_parquet(first["files"][part]).shape[0] > 0

    worse = train_tiny(store, epochs=1, lr=1e-6, linear_member=False)  # barely trained: cannot beat the champion
    assert worse["alias"] == "challenger" and worse["model_version"] == "2"

    client = MlflowClient(tracking_uri=first["tracking_uri"], registry_uri=first["tracking_uri"])
    assert str(client.get_model_version_by_alias("topics", "champion").version) == "1"
    tags = client.get_model_version("topics", "2").tags
    assert float(tags["gate_score"]) < float(tags["champion_score_before"])
    run = client.get_run(first["run_id"])
    assert run.data.tags["prefect_flow_run_id"]
    assert {"train_loss", "val_loss", "val_accuracy", "epoch_time_s", "test_accuracy"} <= set(run.data.metrics)
    assert len(client.get_metric_history(first["run_id"], "val_loss")) >= 1
    artifacts = {a.path for a in client.list_artifacts(first["run_id"], "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/learning_curves.png"} <= artifacts

    [out] = pyfunc_in_a_fresh_process("models:/topics@champion", first["tracking_uri"], store, [
        ({"text": ["Striker Scores Goal In League Match", "Bank Shares And Stocks Fall"]}, None)])
    assert out["label"] == ["sports", "business"]
    assert all(0.0 < s <= 1.0 for s in out["score"])


def test_cli_prints_a_json_last_line(trained_classifier, capsys):
    store = trained_classifier["home"]
    from flows.cli import main

    code = main(["train", "classify", "--train", str(store / "train.csv"), "--text-col", "headline",
                 "--label-col", "topic", "--model-name", "cli-topics", "--epochs", "4", "--data-dir", str(store),
                 "--tracking-uri", f"sqlite:///{store / 'mlflow.db'}", "--embedding-dim", "8", "--hidden-dim", "8",
                 "--lr", "0.01", "--batch-size", "16"])  # learns enough to beat the majority class
    assert code == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"model_name", "model_version", "model_uri", "alias", "metrics"} <= set(last)
    assert last["model_uri"] == "models:/cli-topics@champion"


def test_cli_reports_bad_input_clearly(trained_classifier, capsys):
    store = trained_classifier["home"]
    from flows.cli import main

    code = main(["train", "classify", "--train", str(store / "train.csv"), "--text-col", "title",
                 "--label-col", "topic", "--model-name", "bad", "--data-dir", str(store)])
    assert code == 1
    assert "column 'title': no such column" in capsys.readouterr().err


def _fresh_cli(store, tmp_path, *options: str) -> tuple[list[str], dict]:
    """``seqflow train classify`` on the tiny headlines in a fresh process with no Prefect API configured:
    the command line and the ``env`` / ``cwd`` for subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), SEQFLOW_HOME=str(tmp_path / "home"))
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "flows.cli", "train", "classify", "--train", str(store / "train.csv"),
           "--text-col", "headline", "--label-col", "topic", "--embedding-dim", "8", "--hidden-dim", "8",
           "--lr", "0.01", "--batch-size", "16", *options]
    return cmd, {"env": env, "cwd": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}


def test_cli_in_a_fresh_process_boots_its_own_prefect_server(trained_classifier, tmp_path):
    """No Prefect API configured: the CLI starts a temporary server while it loads, and stops it cleanly."""
    cmd, options = _fresh_cli(trained_classifier["home"], tmp_path, "--model-name", "fresh", "--epochs", "3")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **options)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = proc.stdout.strip().splitlines()  # stdout holds the JSON line alone, server output included
    assert json.loads(line)["model_uri"] == "models:/fresh@champion"
    assert "starting a temporary Prefect server" in proc.stderr
    assert "Starting temporary server" not in proc.stderr  # Prefect's own fallback was not needed
    assert "Error logging to API" not in proc.stderr  # logs were drained before the server stopped
    assert "View at http" not in proc.stderr  # no links to a UI that is not served


def test_a_configured_prefect_server_is_used_as_is(prefect_harness):
    from flows.startup import BackgroundPrefectServer

    with BackgroundPrefectServer() as server:
        server.wait_ready()
        assert server.process is None


def test_mlflow_records_the_values_the_model_used(trained_classifier):
    """Params from the trained model (not the defaults before training), the data's digest, a named run,
    test metrics on the logged model and a description on the version."""
    first = trained_classifier
    client = MlflowClient(tracking_uri=first["tracking_uri"], registry_uri=first["tracking_uri"])
    run = client.get_run(first["run_id"])
    used = json.loads((Path(first["run_dir"]) / "model" / "model.json").read_text())["model_config"]
    assert run.data.params["model.num_classes"] == "3"
    assert int(run.data.params["encoder.vocab_size"]) == used["encoder"]["vocab_size"] > 0
    assert run.info.run_name == f"topics-v{first['model_version']}"
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert {"train", "val", "test"} <= set(inputs) and all(d.digest for d in inputs.values())
    version = client.get_model_version("topics", first["model_version"])
    logged = client.get_logged_model(version.source.removeprefix("models:/"))  # this store leaves model_id unset
    assert {m.key for m in logged.metrics} >= {"test_accuracy", "test_f1_macro"}
    assert "accuracy" in version.description and "champion" in version.description
    assert inputs["train"].digest in version.description


def test_max_tokens_reaches_cleaning_the_model_and_mlflow(trained_classifier, capsys):
    """``--max-tokens`` caps training texts, is saved with the model for prediction, and what preprocessing
    counted (texts read, dropped, truncated) is in the JSON line and the MLflow run's params."""
    store = trained_classifier["home"]
    from flows.cli import main

    code = main(["train", "classify", "--train", str(store / "train.csv"), "--text-col", "headline",
                 "--label-col", "topic", "--model-name", "capped", "--epochs", "1", "--data-dir", str(store),
                 "--tracking-uri", f"sqlite:///{store / 'mlflow.db'}", "--embedding-dim", "8", "--hidden-dim", "8",
                 "--max-tokens", "3"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    counts = result["preprocessing"]["train"]
    assert counts["rows_read"] == 240 and counts["max_tokens"] == 3
    assert 0 < counts["truncated"] < 240  # headlines of 3 to 5 words
    featurizer = json.loads((Path(result["run_dir"]) / "featurizer" / "featurizer.json").read_text())
    assert featurizer["clean"]["max_tokens"] == 3
    params = MlflowClient(tracking_uri=result["tracking_uri"]).get_run(result["run_id"]).data.params
    assert params["preprocess.train.truncated"] == str(counts["truncated"])
    assert params["clean.max_tokens"] == "3"


def test_max_tokens_must_not_be_negative(capsys):
    from flows.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["train", "classify", "--train", "x.csv", "--text-col", "t", "--label-col", "l", "--model-name", "m",
              "--max-tokens", "-1"])
    assert stopped.value.code == 2
    assert "0 (no cap) or a positive number" in capsys.readouterr().err
