"""The guide ``make demo`` prints: its commands work when copied, for the demo's own model and inbox."""

from __future__ import annotations

import shlex
from pathlib import Path

from flows.demo import DEMO_MODEL, _print_guide


def _demo_outcome(home: Path) -> tuple[dict, dict]:
    """What the demo's training and batch flows return, as far as the guide uses it."""
    uri = f"sqlite:///{home / 'mlflow.db'}"
    result = {"metrics": {"accuracy": 0.8, "f1_macro": 0.79, "num_test": 360}, "model_name": DEMO_MODEL,
              "model_version": "1", "alias": "champion", "model_uri": f"models:/{DEMO_MODEL}@champion",
              "run_id": "abc123", "tracking_uri": uri, "run_dir": str(home / "runs" / DEMO_MODEL / "1"),
              "files": {"confusion_matrix": "cm.png", "learning_curves": "lc.png"}}
    batch = {"files_written": 3, "rows": 12, "output": str(home / "predictions")}
    return result, batch


def _line_running(guide: str, command: str) -> list[str]:
    """The guide's shell line that runs ``command``, split as a shell would."""
    [line] = [line for line in guide.splitlines() if command in line]
    return shlex.split(line.split("#")[0])


def test_the_demo_guide_prints_a_serve_line_for_the_demo_model_and_inbox(tmp_path, capsys):
    home = tmp_path / "my data"  # a space: the printed paths must survive copy and paste
    result, batch = _demo_outcome(home)
    _print_guide(result, batch, home)
    guide = capsys.readouterr().out
    serve = _line_running(guide, "seqflow serve")
    assert serve[-2:] == [".venv/bin/seqflow", "serve"]
    env = dict(word.split("=", 1) for word in serve[:-2])
    assert env["SEQFLOW_NIGHTLY_MODEL_NAME"] == DEMO_MODEL
    assert env["SEQFLOW_NIGHTLY_INBOX"] == str(home / "inbox")
    assert env["SEQFLOW_NIGHTLY_OUTPUT"] == batch["output"]
    assert env["MLFLOW_TRACKING_URI"] == result["tracking_uri"]
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"


def test_the_demo_guide_starts_the_servers_with_analytics_off(tmp_path, capsys):
    result, batch = _demo_outcome(tmp_path)
    _print_guide(result, batch, tmp_path)
    guide = capsys.readouterr().out
    prefect_server = _line_running(guide, "prefect server start")
    assert "PREFECT_SERVER_ANALYTICS_ENABLED=false" in prefect_server
    mlflow_ui = _line_running(guide, "mlflow ui")
    assert "MLFLOW_DISABLE_TELEMETRY=true" in mlflow_ui
    assert guide.index("prefect server start") < guide.index("seqflow serve")
