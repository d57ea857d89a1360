"""Batch prediction benchmark: ``seqflow predict`` throughput, start-up and peak memory.

Prints JSON lines, each measured in this script:
- ``startup``: ``seqflow predict`` on an empty inbox (imports, Prefect API, model load);
- ``seqflow_predict``: on a file of N lines drawn from AG News titles: steady-state texts/s
  (wall minus the empty-inbox wall, divided into the rows written) and peak RSS of the process tree;
  also on a file ten times smaller, to show memory does not grow with the file;
- ``seed_inference``: the Made-With-ML lesson's inference path (per-row preprocess,
  texts_to_sequences, DataLoader with np.array collate, Python-loop gather) with the same model size;
- ``bare_forward``: our model's forward alone on pre-tensorised, length-sorted batches (the bound);
- ``summary``: ratios against the targets (>= 3x seed, >= 70 % of bare forward, start-up < 15 s,
  RSS < 1.5 GB and within 20 % of the small file's).

    .venv/bin/python -m bench.bench_predict [--lines 1000000] [--seed-lines 100000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from bench import mwml_baseline as mwml

REPO = Path(__file__).resolve().parent.parent
SEED_CONFIG = ["--cell", "gru", "--embedding-dim", "100", "--hidden-dim", "128", "--pooling", "last", "--epochs", "1",
               "--subword-buckets", "0", "--no-char-features", "--drop-parentheses", "--no-linear-member"]  # the lesson's model and inputs


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


def cli(args: list[str], home: str, threads: int | None = None) -> tuple[dict, float, int]:
    """Run ``seqflow ARGS`` (with ``--threads`` unless None); return its JSON line, wall seconds and peak RSS
    (bytes) of its process tree."""
    cmd = [sys.executable, "-m", "flows.cli", *args, "--data-dir", home, *(["--threads", str(threads)] if threads else [])]
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:  # files: a full pipe would block
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err, text=True)
        watched, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                peak = max(peak, sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)]))
            except psutil.Error:
                pass
            time.sleep(0.05)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(stderr[-3000:])
    return json.loads(stdout.strip().splitlines()[-1]), wall, peak


def write_lines(path: Path, titles: np.ndarray, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8") as fh:
        for start in range(0, n, 100_000):
            fh.write("\n".join(titles[rng.integers(0, len(titles), min(100_000, n - start))]) + "\n")
    return path


def bare_forward(model_dir: str, texts: list[str], batch_size: int) -> float:
    """Texts/s of the model forward alone, on batches tensorised and sorted by length beforehand."""
    from seqmodels.batching import BatchLoader
    from seqmodels.kinds import load_predictor

    predictor = load_predictor(model_dir, "cpu")
    batches = list(BatchLoader(predictor.featurizer.encode_texts(texts), batch_size=batch_size))
    started = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            predictor.model.predict_proba(batch)
    return len(texts) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/ag_news_titles_10k/news.csv")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed-lines", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = mwml.resolve_data_path(args.data)
    titles = mwml.read_news(data)["X"].to_numpy()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home = str(tmp / "home")
        train = ["train", "classify", "--train", str(data), "--text-col", "X", "--label-col", "y"]
        seed_model = cli([*train, "--model-name", "seedcfg", *SEED_CONFIG], home, args.threads)[0]
        cli([*train, "--model-name", "default", "--epochs", "1"], home, args.threads)
        empty, big, small = tmp / "empty", tmp / "big", tmp / "small"
        for folder in (empty, big, small):
            folder.mkdir()
        write_lines(big / "lines.txt", titles, args.lines)
        write_lines(small / "lines.txt", titles, args.lines // 10, seed=1)

        def predict(model: str, inbox: Path, tag: str):
            return cli(["predict", "--model-name", model, "--input", str(inbox), "--output", str(tmp / f"out-{tag}"),
                        "--batch-size", str(args.batch_size)], home, args.threads)

        _, startup_s, startup_rss = predict("seedcfg", empty, "empty")
        emit({"bench": "startup", "wall_s": round(startup_s, 2), "peak_rss_mb": round(startup_rss / 2**20, 1)})
        runs = {}
        for model in ("seedcfg", "default"):
            summary, wall, rss = predict(model, big, f"big-{model}")
            runs[model] = emit({"bench": "seqflow_predict", "model": model, "rows": summary["rows"],
                                "wall_s": round(wall, 2), "texts_per_s": round(summary["rows"] / (wall - startup_s), 1),
                                "peak_rss_mb": round(rss / 2**20, 1)})
        summary, wall, rss_small = predict("seedcfg", small, "small")
        emit({"bench": "seqflow_predict", "model": "seedcfg", "rows": summary["rows"], "wall_s": round(wall, 2),
              "peak_rss_mb": round(rss_small / 2**20, 1)})
        model_dir = str(next(Path(home, "model_cache", "seedcfg").glob("*")))
        sample = list(titles[np.random.default_rng(2).integers(0, len(titles), args.seed_lines)])
        bound = emit({"bench": "bare_forward", "model": "seedcfg",
                      "texts_per_s": round(bare_forward(model_dir, sample, args.batch_size), 1)})

    seed = mwml.train_seed_pipeline(epochs=1, data=data)
    seed_tps = emit({"bench": "seed_inference", "texts": args.seed_lines, "batch_size": 64,
                     "texts_per_s": round(mwml.seed_inference_throughput(sample, seed.model, seed.tokenizer), 1)})
    ours = runs["seedcfg"]
    emit({"bench": "summary", "speedup_vs_seed": round(ours["texts_per_s"] / seed_tps["texts_per_s"], 2), "target_speedup": 3,
          "fraction_of_bare_forward": round(ours["texts_per_s"] / bound["texts_per_s"], 3), "target_fraction": 0.7,
          "startup_s": round(startup_s, 2), "target_startup_s": 15, "peak_rss_mb": ours["peak_rss_mb"],
          "rss_vs_small_file": round(ours["peak_rss_mb"] / (rss_small / 2**20), 3), "target_rss_mb": 1536,
          "default_model_texts_per_s": runs["default"]["texts_per_s"], "seed_model_test_accuracy":
          seed_model["metrics"]["accuracy"]})


if __name__ == "__main__":
    main()
