"""The ``seqflow`` CLI as a process: its temporary Prefect server never outlives it, SIGTERM stops training."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import tiny_headlines

REPO = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 120  # only so that a broken build fails instead of hanging; no test asserts a duration


def _wait_for(condition, what: str):
    """Poll ``condition()`` until it returns something true; fail naming ``what`` after the hang guard."""
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.01)
    pytest.fail(f"gave up waiting for {what}")


@pytest.fixture
def fresh_cli(tmp_path):
    """Start ``seqflow train classify`` on tiny data in a fresh process with no Prefect API configured.

    Yields a starter ``(*options) -> (process, stderr path)``; leftover processes are killed afterwards."""
    tiny_headlines(240, 0).to_csv(tmp_path / "train.csv", index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_") and k != "MLFLOW_TRACKING_URI"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), SEQFLOW_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(REPO))
    started: list[psutil.Process] = []

    def start(*options: str) -> tuple[subprocess.Popen, Path]:
        stderr = tmp_path / f"stderr-{len(started)}.txt"
        cmd = [sys.executable, "-m", "flows.cli", "train", "classify", "--train", str(tmp_path / "train.csv"),
               "--text-col", "headline", "--label-col", "topic", "--embedding-dim", "8", "--hidden-dim", "8",
               "--threads", "1", *options]
        with stderr.open("w") as err:  # a file, not a pipe: an orphaned server holding a pipe would hang the test
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=str(REPO))
        started.append(psutil.Process(proc.pid))
        return proc, stderr

    yield start
    for process in started:
        for leftover in [*process.children(recursive=True), process] if process.is_running() else []:
            leftover.kill()


def _server_of(proc: subprocess.Popen) -> psutil.Process:
    """The CLI's temporary Prefect server (its uvicorn child), once spawned."""
    def serves_prefect(child: psutil.Process) -> bool:
        try:
            return "prefect.server.api.server:create_app" in child.cmdline()
        except psutil.Error:  # a short-lived helper process, already gone
            return False

    def find():
        try:
            children = psutil.Process(proc.pid).children()
        except psutil.NoSuchProcess:
            return None
        return next(filter(serves_prefect, children), None)

    return _wait_for(find, "the temporary Prefect server to be spawned")


def _gone(process: psutil.Process) -> bool:
    """Whether ``process`` ended within the hang guard (a zombie no longer serves anything)."""
    try:
        process.wait(timeout=HANG_GUARD_S)
        return True
    except psutil.TimeoutExpired:
        return process.status() == psutil.STATUS_ZOMBIE


def test_sigkill_of_the_cli_stops_its_temporary_prefect_server(fresh_cli):
    proc, stderr = fresh_cli("--model-name", "sigkilled", "--epochs", "500", "--patience", "500")
    server = _server_of(proc)
    _wait_for(lambda: "temporary Prefect server on" in stderr.read_text(), "the server to be in use")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=HANG_GUARD_S)
    assert _gone(server), "the temporary Prefect server outlived the CLI killed with SIGKILL"


def test_sigterm_right_after_start_stops_the_cli_and_its_server(fresh_cli):
    """SIGTERM before Prefect is even imported: the handler is in place before the server is spawned."""
    proc, stderr = fresh_cli("--model-name", "early", "--epochs", "500", "--patience", "500")
    server = _server_of(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=HANG_GUARD_S) == 128 + signal.SIGTERM, stderr.read_text()[-3000:]
    assert "stopped by SIGTERM" in stderr.read_text()
    assert _gone(server), "the temporary Prefect server outlived the CLI stopped with SIGTERM"


def test_sigterm_mid_training_stops_at_the_next_batch_and_registers_nothing(fresh_cli, tmp_path):
    from mlflow import MlflowClient

    proc, stderr = fresh_cli("--model-name", "stopped", "--epochs", "500", "--patience", "500")
    server = _server_of(proc)
    _wait_for(lambda: re.search(r"epoch 2 ", stderr.read_text()), "training to be under way")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=HANG_GUARD_S) == 128 + signal.SIGTERM, stderr.read_text()[-3000:]
    err = stderr.read_text()
    assert "seqflow: stopped by SIGTERM" in err and "no model was registered" in err, err[-3000:]
    assert _gone(server)
    store = f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    assert not MlflowClient(tracking_uri=store, registry_uri=store).search_registered_models("name = 'stopped'")


def test_train_with_an_unreachable_tracking_server_fails_naming_it(prefect_harness, tmp_path, capsys):
    from flows.cli import main

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed again below: nothing listens there
    tiny_headlines(30, 0).to_csv(tmp_path / "train.csv", index=False)
    code = main(["train", "classify", "--train", str(tmp_path / "train.csv"), "--text-col", "headline",
                 "--label-col", "topic", "--model-name", "unreachable", "--data-dir", str(tmp_path),
                 "--tracking-uri", uri])
    assert code == 1
    assert f"the MLflow tracking server {uri} is not reachable" in capsys.readouterr().err


def test_a_sigterm_that_breaks_a_native_import_still_exits_as_stopped_by_sigterm(monkeypatch, capsys):
    """SIGTERM raised inside a C extension's import (pydantic_core, during Prefect's) surfaces as that
    extension's own failure, a BaseException that is not Terminated: it is still the SIGTERM's doing."""
    import flows.cli as cli
    import flows.startup as startup

    class NativePanic(BaseException):  # as pyo3's PanicException
        pass

    def interrupted_import(argv):
        startup.SIGTERM_RECEIVED.set()
        raise NativePanic("failed to import `datetime` C API")

    monkeypatch.setattr(cli, "_main", interrupted_import)
    assert cli.main(["train", "classify", "--train", "t.csv"]) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_main", lambda argv: (_ for _ in ()).throw(NativePanic("no SIGTERM")))
    with pytest.raises(NativePanic):  # without a SIGTERM, a failure stays a failure
        cli.main(["train", "classify", "--train", "t.csv"])
