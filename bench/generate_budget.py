"""Default ``seqflow train generate`` within a time budget: validation nats/char against minutes.

Runs the CLI (everything included: Prefect, MLflow, the gate) on a corpus of ``../shared/datasets`` with
default settings and ``--time-budget``, then prints one JSON line per epoch (minutes since training started,
validation nats and bits per character) and a summary line with the best figure and the target.

    .venv/bin/python -m bench.generate_budget [--corpus tiny_shakespeare|nietzsche] [--minutes 30] [-- EXTRA OPTIONS]

Nothing else may run on the machine meanwhile: torch's threads spin (see the README).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile

from bench.bench_classify import run_train_cli
from bench.classify_suite import DATA

CORPORA = {"tiny_shakespeare": DATA / "tiny_shakespeare" / "input.txt", "nietzsche": DATA / "nietzsche" / "nietzsche.txt"}
TARGET_NATS = 1.50  # tiny-shakespeare, 30 minutes on 2 CPU cores


def curve(history: list[dict]) -> list[dict]:
    """Per epoch: cumulative training minutes and the validation figures."""
    minutes, rows = 0.0, []
    for record in history:
        minutes += record["epoch_time_s"] / 60
        rows.append({"bench": "epoch", "epoch": record["epoch"], "minutes": round(minutes, 2),
                     "val_nats_per_char": round(record["val_loss"], 4),
                     "val_bits_per_char": round(record["val_loss"] / math.log(2), 4)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="tiny_shakespeare")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("extra", nargs="*", help="options passed to `seqflow train generate` (after --)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        cmd = [sys.executable, "-m", "flows.cli", "train", "generate", "--train", str(CORPORA[args.corpus]),
               "--model-name", f"budget-{args.corpus}", "--data-dir", home, "--time-budget", str(args.minutes),
               *args.extra]
        result, history, wall = run_train_cli(cmd)
    for row in curve(history["history"]):
        print(json.dumps(row), flush=True)
    metrics = result["metrics"]
    print(json.dumps({"bench": "summary", "corpus": args.corpus, "minutes": args.minutes, "wall_s": round(wall, 1),
                      "val_nats_per_char": round(metrics["val_nats_per_char"], 4),
                      "val_bits_per_char": round(metrics["val_bits_per_char"], 4),
                      "val_perplexity": round(metrics["val_perplexity"], 3), "best_epoch": history["best_epoch"],
                      "stop_reason": history["stop_reason"],
                      **({"target_nats_per_char": TARGET_NATS, "meets_target": metrics["val_nats_per_char"] <= TARGET_NATS}
                         if args.corpus == "tiny_shakespeare" and args.minutes == 30 else {})}), flush=True)


if __name__ == "__main__":
    main()
