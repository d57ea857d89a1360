"""The MLflow store: an unreachable server or a broken SQLite file fails at once, naming the URI or the file."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys

import pytest

from tasks.settings import configure_mlflow


def _port_nothing_listens_on() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_tracking_server_fails_naming_its_uri(tmp_path):
    uri = f"http://127.0.0.1:{_port_nothing_listens_on()}"
    with pytest.raises(RuntimeError) as error:
        configure_mlflow(uri, str(tmp_path))
    assert uri in str(error.value) and "not reachable" in str(error.value)


def test_a_file_that_is_not_a_database_is_named_in_the_error(tmp_path):
    store = tmp_path / "mlflow.db"
    store.write_text("these are notes, not a database\n" * 20)
    with pytest.raises(RuntimeError) as error:
        configure_mlflow(f"sqlite:///{store}", str(tmp_path))
    assert str(store) in str(error.value) and "not a SQLite database" in str(error.value)
    assert store.read_text().startswith("these are notes")  # left as it was


def test_a_locked_database_is_named_in_the_error(tmp_path):
    store = tmp_path / "mlflow.db"
    subprocess.run([sys.executable, "-c", "import sys; from tasks.settings import configure_mlflow; "
                    "configure_mlflow(sys.argv[1], sys.argv[2])", f"sqlite:///{store}", str(tmp_path)],
                   check=True, capture_output=True, timeout=300)  # a store made elsewhere, not cached here
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer holds the lock
    try:
        with pytest.raises(RuntimeError) as error:
            configure_mlflow(f"sqlite:///{store}", str(tmp_path))
    finally:
        holder.close()
    assert str(store) in str(error.value) and "locked" in str(error.value)


def test_the_experiment_is_marked_as_model_training_for_the_mlflow_3_ui(tmp_path):
    """MLflow 3's UI asks for the kind of an untagged experiment and opens on GenAI views otherwise."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id = configure_mlflow(uri, str(tmp_path))
    client = MlflowClient(tracking_uri=uri)
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    client.delete_experiment_tag(experiment_id, "mlflow.experimentKind")  # a store made before this change
    assert configure_mlflow(uri, str(tmp_path)) == experiment_id
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_other_errors_are_not_blamed_on_the_store(tmp_path):
    from tasks.settings import explain_store_error

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    error = ValueError("train.txt:3: malformed line 'Peter NNP' (expected 4 columns)")
    assert explain_store_error(store, error) is None
