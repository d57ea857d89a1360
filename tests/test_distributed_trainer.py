"""The shared Trainer in 2 real gloo processes (torchrun): early stopping, the time budget and a stop asked for on
one rank end every rank at the same point, with the same weights, and nothing waits forever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ended(tmp_path_factory) -> dict[str, list[dict]]:
    out = tmp_path_factory.mktemp("ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(HERE / "ddp_scenarios.py"), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return {name: [json.loads((out / f"{name}-rank{r}.json").read_text()) for r in (0, 1)]
            for name in ("early_stopping", "time_budget", "stop")}


def test_early_stopping_ends_every_rank_at_the_same_epoch_with_the_same_weights(ended):
    first, second = ended["early_stopping"]
    assert first["stop_reason"] == second["stop_reason"] == "early_stopping"
    assert first == second  # epochs, validation losses, steps, the digest of the final (best) weights


def test_the_time_budget_stops_every_rank_together_when_one_falls_behind(ended):
    first, second = ended["time_budget"]
    assert first["stop_reason"] == second["stop_reason"] == "time_budget"
    assert first["steps"] == second["steps"] and first["epochs"] == second["epochs"] < 1000
    assert first["weights"] == second["weights"]


def test_a_stop_on_one_rank_stops_both_at_the_same_batch(ended):
    first, second = ended["stop"]
    assert first["stop_reason"] == second["stop_reason"] == "stopped"
    assert first["epochs"] == second["epochs"] == 1  # stopped inside epoch 2
    assert first["steps"] == second["steps"] == first["batches_per_epoch"] + 3
