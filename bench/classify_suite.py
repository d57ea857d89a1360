"""Default ``seqflow train classify`` on every development set, beside the linear baseline and CNN-rand.

For each set: the CLI with default settings (everything included: Prefect, MLflow, the gate) as a
subprocess, its test accuracy and wall time, and the linear baseline it fits on the same split (word 1-2-gram
+ char 2-5-gram TF-IDF, LinearSVC, C by 3-fold CV on train: ``baseline_accuracy`` of the JSON line). Kim
(2014)'s CNN-rand is the published from-scratch neural figure where there is one. A ``summary`` line gives
the means and which sets reach both targets.

Sets (``../shared/datasets``): TREC (official 500-question test), SUBJ (seeded 90/10 split shipped as CSV),
AG News 10k titles (seeded 70/15/15 splits). Every set runs once per ``--seeds`` (the CLI's ``--seed``: the
validation rows cut from train, AG's test rows, initialisation and batch order); a set's accuracy is the mean
over its seeds. One seed is a noisy measurement on 500 test questions: TREC's mixture ranged 90.2-92.0 over
split seeds 0-5 with the same defaults (bench/exp_suite.py).

    .venv/bin/python -m bench.classify_suite [--sets trec,subj,ag] [--seeds 42,0,1] [--ag-seeds S,...] [--threads 2] [-- EXTRA CLI OPTIONS]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from bench.bench_classify import run_train_cli

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets"
SENTENCES = DATA / "sentence_classification"
CNN_RAND = {"trec": 91.2, "subj": 89.6}  # Kim (2014), Table 2 (SUBJ there by 10-fold CV)


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


def train_cli(files: dict[str, Path], text_col: str, label_col: str, threads: int, seed: int,
              extra: list[str]) -> dict:
    """One default ``seqflow train classify`` run in a fresh data directory: the JSON line and the wall time."""
    with tempfile.TemporaryDirectory() as home:
        cmd = [sys.executable, "-m", "flows.cli", "train", "classify", "--text-col", text_col, "--label-col", label_col,
               "--model-name", "suite", "--data-dir", home, "--threads", str(threads), "--seed", str(seed), *extra]
        for part, path in files.items():
            cmd += [f"--{part}", str(path)]
        result, history, wall = run_train_cli(cmd)
    metrics = result["metrics"]
    return {"accuracy": round(100 * metrics["accuracy"], 2), "baseline_accuracy": round(100 * metrics["baseline_accuracy"], 2),
            "baseline_C": metrics.get("baseline_C"), "wall_s": round(wall, 1), "best_epoch": history["best_epoch"],
            "epochs_run": len(history["history"]), "stop_reason": history["stop_reason"]}


def runs(sets: list[str], seeds: list[int], ag_seeds: list[int] | None = None) -> list[tuple[str, dict, str, str, int]]:
    """``(set, files, text column, label column, seed)`` for every run asked for: each set once per seed (AG once
    per ``ag_seeds`` when given)."""
    sources = {"trec": ({"train": SENTENCES / "trec_train.csv", "test": SENTENCES / "trec_test.csv"}, "text", "label"),
               "subj": ({"train": SENTENCES / "subj_train.csv", "test": SENTENCES / "subj_test.csv"}, "text", "label"),
               "ag": ({"train": DATA / "ag_news_titles_10k" / "news.csv"}, "X", "y")}
    return [(name, *sources[name], seed) for name in sources if name in sets
            for seed in (ag_seeds if name == "ag" and ag_seeds else seeds)]


def summarise(rows: list[dict]) -> dict:
    """Per set: mean accuracy and baseline; overall: the mean gap and the sets that meet both targets."""
    per_set: dict[str, dict] = {}
    for name in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == name]
        ours, base = (statistics.fmean(r[k] for r in mine) for k in ("accuracy", "baseline_accuracy"))
        per_set[name] = {"accuracy": round(ours, 2), "baseline_accuracy": round(base, 2), "runs": len(mine),
                         "by_seed": {str(r["seed"]): r["accuracy"] for r in mine},
                         "beats_baseline": ours >= base,
                         "beats_cnn_rand": ours >= CNN_RAND[name] if name in CNN_RAND else None}
    means = {k: round(statistics.fmean(s[k] for s in per_set.values()), 2) for k in ("accuracy", "baseline_accuracy")}
    return {"bench": "summary", "sets": per_set, "mean_accuracy": means["accuracy"],
            "mean_baseline_accuracy": means["baseline_accuracy"],
            "mean_at_least_baseline": means["accuracy"] >= means["baseline_accuracy"],
            "every_set_at_least_cnn_rand": all(s["beats_cnn_rand"] is not False for s in per_set.values())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="trec,subj,ag")
    parser.add_argument("--seeds", default="42,0,1", help="split seeds, every set")
    parser.add_argument("--ag-seeds", default=None, help="AG's split seeds instead of --seeds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("extra", nargs="*", help="options passed to every `seqflow train classify` (after --)")
    args = parser.parse_args(argv)
    rows = []
    seeds = lambda text: [int(s) for s in text.split(",")] if text else None  # noqa: E731
    for name, files, text_col, label_col, seed in runs(args.sets.split(","), seeds(args.seeds), seeds(args.ag_seeds)):
        rows.append(emit({"bench": "set", "set": name, "seed": seed, "cnn_rand": CNN_RAND.get(name),
                          **train_cli(files, text_col, label_col, args.threads, seed, args.extra)}))
    emit(summarise(rows))


if __name__ == "__main__":
    main()
