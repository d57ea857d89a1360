"""Training seconds per epoch with ``--nproc 2`` beside ``--nproc 1``, on AG News headlines (10k).

Each variant runs ``seqflow train classify`` as a subprocess (everything included: Prefect, MLflow, the gate),
in alternating rounds, for a fixed number of epochs (no early stopping); seconds per epoch come from the
model's ``history.json`` (rank 0's epoch wall time: training and validation), the first epoch left out when
there are more. Variants:

- ``nproc1``: one process, ``--threads CORES`` (the baseline);
- ``nproc2``: two processes under torchrun, ``CORES // 2`` torch threads each, the same batch size per process
  (so twice the examples per optimisation step and half the steps per epoch);
- ``nproc2_same_global_batch``: two processes at half the batch size each (the same examples per step as
  ``nproc1``), unless ``--no-same-global-batch``.

Prints one JSON line per run and a ``summary`` line with the ratios (nproc1 s/epoch over nproc2 s/epoch:
above 1 means two processes are faster).

    .venv/bin/python -m bench.bench_ddp_train [--rows 10000] [--epochs 3] [--rounds 2] [--batch-size 128]
    .venv/bin/python -m bench.bench_ddp_train --rows 300 --epochs 1 --rounds 1   # a quick check (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.bench_classify import run_train_cli

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "datasets" / "ag_news_titles_10k" / "news.csv"


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def subset(data: Path, rows: int, folder: Path) -> Path:
    """The first ``rows`` rows of the CSV (all of them when it has fewer)."""
    import pandas as pd

    frame = pd.read_csv(data)
    if rows >= len(frame):
        return data
    path = folder / f"news_{rows}.csv"
    frame.head(rows).to_csv(path, index=False)
    return path


def train(data: Path, nproc: int, batch_size: int, epochs: int, home: Path) -> dict:
    """One ``seqflow train classify`` run: its seconds per epoch, wall time and test accuracy."""
    threads = cores() if nproc == 1 else max(1, cores() // nproc)
    cmd = [sys.executable, "-m", "flows.cli", "train", "classify", "--train", str(data), "--text-col", "X",
           "--label-col", "y", "--model-name", f"bench-ddp-{nproc}", "--data-dir", str(home),
           "--epochs", str(epochs), "--patience", str(epochs + 1), "--batch-size", str(batch_size),
           "--no-baseline", "--nproc", str(nproc)]
    cmd += ["--threads", str(threads)] if nproc == 1 else []
    result, history, wall = run_train_cli(cmd)
    history = history["history"]
    times = [h["epoch_time_s"] for h in history]
    steady = times[1:] if len(times) > 1 else times
    return {"s_per_epoch": round(statistics.mean(steady), 3), "epoch_times_s": [round(t, 3) for t in times],
            "epochs": len(times), "wall_s": round(wall, 2), "threads_per_process": threads,
            "test_accuracy": round(result["metrics"]["accuracy"], 4)}


def variants(batch_size: int, same_global_batch: bool) -> list[tuple[str, int, int]]:
    out = [("nproc1", 1, batch_size), ("nproc2", 2, batch_size)]
    if same_global_batch:
        out.append(("nproc2_same_global_batch", 2, max(1, batch_size // 2)))
    return out


def summary(runs: dict[str, list[dict]], args: argparse.Namespace) -> dict:
    """Median seconds per epoch of each variant, their ratios to ``nproc1`` (above 1: faster), median wall times
    (start-up included: torchrun and its processes' imports) and mean test accuracy."""
    median = {name: statistics.median(r["s_per_epoch"] for r in rows) for name, rows in runs.items()}
    base = median["nproc1"]
    return {"bench": "ddp_train", "summary": True, "rows": args.rows, "epochs": args.epochs, "rounds": args.rounds,
            "cores": cores(), "s_per_epoch": {k: round(v, 3) for k, v in median.items()},
            "speedup_vs_nproc1": {k: round(base / v, 3) for k, v in median.items() if k != "nproc1"},
            "wall_s": {k: round(statistics.median(r["wall_s"] for r in rows), 2) for k, rows in runs.items()},
            "test_accuracy": {k: round(statistics.mean(r["test_accuracy"] for r in rows), 4)
                              for k, rows in runs.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--rows", type=int, default=10_000, help="first N rows of the file (default: all 10k)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128, help="examples per batch (classify's default)")
    parser.add_argument("--same-global-batch", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = subset(args.data, args.rows, Path(tmp))
        for round_ in range(1, args.rounds + 1):
            for name, nproc, batch in variants(args.batch_size, args.same_global_batch):
                record = train(data, nproc, batch, args.epochs, Path(tmp) / f"{name}-{round_}")
                runs.setdefault(name, []).append(emit({"bench": "ddp_train", "variant": name, "nproc": nproc,
                                                       "batch_size": batch, "round": round_, **record}))
    emit(summary(runs, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
