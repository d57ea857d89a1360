"""Cluster batch prediction benchmark: ``seqflow predict`` with ``--task-runner dask --workers 2`` beside ``local``.

Prints JSON lines, each measured in this script, on N lines of AG News titles over 8 files:
- ``run``: one ``seqflow predict`` per runner on a one-line inbox (``tiny``: start-up, model load and, for
  dask, starting the LocalCluster) and on the 8 files (``full``), wall seconds and rows;
- ``cluster_predict``: steady-state texts/s per runner, ``(rows_full - rows_tiny) / (wall_full - wall_tiny)``
  (start-up cancels out);
- ``summary``: dask / local texts/s and the cluster's start-up cost (dask tiny wall - local tiny wall).

``local`` runs one process with ``--threads`` torch threads (default: every core); ``dask`` runs ``--workers``
single-threaded worker processes, each with ``cores // workers`` torch threads. On a 2-core machine both use
the same 2 cores, so expect a ratio near 1 (a little below: snapshots go through the shared output and the
parts are joined), not 2: the cluster buys hosts, not cores.

    .venv/bin/python -m bench.bench_cluster_predict [--lines 2000000] [--workers 2] [--shard-rows 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from bench import mwml_baseline as mwml
from bench.bench_predict import cli as run_cli

REPO = Path(__file__).resolve().parent.parent
FILES = 8


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


def cli(args: list[str], home: str) -> tuple[dict, float]:
    """Run ``seqflow ARGS``; its JSON line and wall seconds."""
    summary, wall, _ = run_cli(args, home)
    return summary, wall


def write_inbox(folder: Path, titles: np.ndarray, lines: int, files: int, seed: int = 0) -> Path:
    """``files`` text files of ``lines // files`` random titles each (the first takes the remainder)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(files):
        n = lines // files + (lines % files if i == 0 else 0)
        with (folder / f"part-{i}.txt").open("w", encoding="utf-8") as fh:
            for start in range(0, n, 100_000):
                fh.write("\n".join(titles[rng.integers(0, len(titles), min(100_000, n - start))]) + "\n")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/ag_news_titles_10k/news.csv")
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads of the local run")
    parser.add_argument("--shard-rows", type=int, default=None, help="(default: seqflow's)")
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args(argv)
    data = mwml.resolve_data_path(args.data)
    titles = mwml.read_news(data)["X"].to_numpy()
    runners = {"local": ["--task-runner", "local", "--threads", str(args.threads)],
               "dask": ["--task-runner", "dask", "--workers", str(args.workers)]}
    shard = ["--shard-rows", str(args.shard_rows)] if args.shard_rows else []

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home = str(tmp / "home")
        cli(["train", "classify", "--train", str(data), "--text-col", "X", "--label-col", "y", "--model-name",
             "bench", "--epochs", "1", "--no-linear-member", "--threads", str(args.threads)], home)  # the RNN alone: the
        # same model as the earlier measurements (the linear member adds its own cost, bench_linear_member)
        full = write_inbox(tmp / "full", titles, args.lines, FILES)
        tiny = write_inbox(tmp / "tiny", titles, 1, 1, seed=1)
        runs: dict[tuple[str, str], dict] = {}
        for runner, flags in runners.items():
            for size, inbox in (("tiny", tiny), ("full", full)):
                summary, wall = cli(["predict", "--model-name", "bench", "--input", str(inbox), "--output",
                                     str(tmp / f"out-{runner}-{size}"), "--batch-size", str(args.batch_size),
                                     *flags, *shard], home)
                runs[runner, size] = emit({"bench": "run", "runner": runner, "inbox": size, "files": summary["files"],
                                           "rows": summary["rows"], "wall_s": round(wall, 2)})
        speed = {}
        for runner in runners:
            rows = runs[runner, "full"]["rows"] - runs[runner, "tiny"]["rows"]
            seconds = runs[runner, "full"]["wall_s"] - runs[runner, "tiny"]["wall_s"]
            speed[runner] = emit({"bench": "cluster_predict", "runner": runner, "rows": rows,
                                  "workers": args.workers if runner == "dask" else 1,
                                  "texts_per_s": round(rows / seconds, 1) if seconds > 0 else None})["texts_per_s"]
    ratio = round(speed["dask"] / speed["local"], 3) if speed["dask"] and speed["local"] else None
    emit({"bench": "summary", "lines": args.lines, "files": FILES, "cores": os.cpu_count(), "workers": args.workers,
          "local_texts_per_s": speed["local"], "dask_texts_per_s": speed["dask"], "dask_vs_local": ratio,
          "cluster_startup_s": round(runs["dask", "tiny"]["wall_s"] - runs["local", "tiny"]["wall_s"], 2)})


if __name__ == "__main__":
    main()
