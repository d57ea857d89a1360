"""Classification benchmark on AG News 10k: seqflow beside the Made-With-ML lesson pipeline.

Prints JSON lines, each measured in this script:
- ``tfidf_linear``: TF-IDF + LinearSVC / LogisticRegression on the same split (reference), word n-grams and
  word + character n-grams (``bench.mwml_baseline.tfidf_linear_baseline``);
- ``mwml_baseline``: the lesson's pipeline as published (``bench.mwml_baseline``), its wall time to the
  best epoch and test accuracy;
- ``seqflow_train``: ``seqflow train classify`` with default settings as a subprocess, everything included
  (Prefect, MLflow, registration), its wall time and test accuracy;
- ``same_config_speed``: the baseline's model configuration (BiGRU 128, emb 100, last state, Adam 1e-4,
  batch 64) trained by our trainer, seconds per epoch beside the baseline's, in alternating rounds;
- ``summary``: the ratios and targets.

    .venv/bin/python -m bench.bench_classify [--baseline-epochs 30] [--speed-epochs 3] [--speed-rounds 3] [--threads 2]
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
import pyarrow as pa
import torch

from bench import mwml_baseline as mwml

REPO = Path(__file__).resolve().parent.parent


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


def run_train_cli(cmd: list[str]) -> tuple[dict, dict, float]:
    """Run a ``seqflow train`` command: its closing JSON line, the model's ``history.json`` and the wall time."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result, json.loads((Path(result["run_dir"]) / "model" / "history.json").read_text()), wall


def seqflow_train(data: Path, threads: int, seed: int | None = None) -> dict:
    """Wall time and test metrics of the CLI with default settings (``--seed`` if given), in a fresh data directory."""
    with tempfile.TemporaryDirectory() as home:
        cmd = [sys.executable, "-m", "flows.cli", "train", "classify", "--train", str(data), "--text-col", "X",
               "--label-col", "y", "--model-name", "bench-news", "--data-dir", home, "--threads", str(threads)]
        cmd += ["--seed", str(seed)] if seed is not None else []
        result, history, wall = run_train_cli(cmd)
    return {"wall_s": round(wall, 2), "test_accuracy": round(result["metrics"]["accuracy"], 4),
            "test_f1_macro": round(result["metrics"]["f1_macro"], 4), "best_epoch": history["best_epoch"],
            "baseline_accuracy": result["metrics"].get("baseline_accuracy"),
            "epochs_run": len(history["history"]), "stop_reason": history["stop_reason"],
            "mean_epoch_s": round(float(np.mean([h["epoch_time_s"] for h in history["history"]])), 3)}


def same_config_speed(data: Path, epochs: int) -> dict:
    """Our trainer on the lesson's model configuration and cleaning: mean seconds per epoch."""
    from seqmodels.batching import BatchLoader
    from seqmodels.cleaning import CleanConfig
    from seqmodels.featurize import Featurizer, FeaturizerConfig, text_to_tokens
    from seqmodels.kinds.classify.model import ClassifierConfig, RNNClassifier
    from seqmodels.models.encoder import EncoderConfig
    from seqmodels.readers import ReadSpec, read_labeled
    from seqmodels.split import SplitConfig, stratified_split
    from seqmodels.training import Trainer, TrainerConfig, seed_everything
    from seqmodels.vocab import LabelMap

    table = read_labeled(data, ReadSpec(text_col="X", label_col="y"))
    lesson_cleaning = CleanConfig(lower=True, remove_stopwords=True, drop_parentheses=True, space_punctuation=True,
                                  drop_non_alphanumeric=True, collapse_whitespace=True)
    config = FeaturizerConfig(clean=lesson_cleaning, subword_buckets=0, char_features=False)  # words only, as the lesson
    cleaned, tokens = text_to_tokens(table["text"].tolist(), config.clean)
    train_ix, val_ix, _ = stratified_split(table["label"].to_numpy(), SplitConfig(seed=42))
    labels = LabelMap.fit(table["label"])
    y = labels.encode(table["label"].tolist())
    take = lambda arr, ix: arr.take(pa.array(ix))  # noqa: E731
    featurizer = Featurizer.fit(take(cleaned, train_ix), take(tokens, train_ix), config)
    encode = lambda ix: featurizer.encode(take(cleaned, ix), take(tokens, ix), y[ix])  # noqa: E731
    seed_everything(1234)
    encoder = EncoderConfig(vocab_size=len(featurizer.vocab), embedding_dim=100, cell="gru", hidden_dim=128,
                            num_layers=1, bidirectional=True, embedding_dropout=0.0, word_dropout=0.0)
    model = RNNClassifier(ClassifierConfig(encoder=encoder, num_classes=len(labels), pooling="last",
                                           head_hidden_dim=100, head_dropout=0.1))
    trainer_config = TrainerConfig(epochs=epochs, lr=1e-4, batch_size=64, patience=10, lr_patience=3, lr_factor=0.1,
                                   progress=False, device="cpu")
    trainer = Trainer(model, trainer_config, BatchLoader(encode(train_ix), 64, shuffle=True, seed=1234),
                      BatchLoader(encode(val_ix), 64))
    result = trainer.fit()
    per_epoch = [h["epoch_time_s"] for h in result.history]
    return {"per_epoch_s": [round(s, 3) for s in per_epoch], "mean_epoch_s": round(float(np.mean(per_epoch)), 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/ag_news_titles_10k/news.csv")
    parser.add_argument("--baseline-epochs", type=int, default=30)
    parser.add_argument("--speed-epochs", type=int, default=3)
    parser.add_argument("--speed-rounds", type=int, default=3,
                        help="alternating rounds of the same-config speed test; the summary takes the median ratio")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = mwml.resolve_data_path(args.data)

    tfidf = emit({"bench": "tfidf_linear", **mwml.run_tfidf(data)})
    ratios = []
    for speed_round in range(1, args.speed_rounds + 1):  # alternated, so host drift hits both sides alike
        ours_speed = emit({"bench": "same_config_speed", "trainer": "seqflow", "round": speed_round,
                           **same_config_speed(data, args.speed_epochs)})
        base_speed = emit({"bench": "same_config_speed", "trainer": "mwml_baseline", "round": speed_round,
                           **{k: v for k, v in mwml.run_baseline(args.speed_epochs, data).items() if "epoch_s" in k}})
        ratios.append(ours_speed["mean_epoch_s"] / base_speed["mean_epoch_s"])
    baseline = emit({"bench": "mwml_baseline", "epochs": args.baseline_epochs, **mwml.run_baseline(args.baseline_epochs, data)})
    ours = emit({"bench": "seqflow_train", **seqflow_train(data, args.threads)})
    emit({"bench": "summary",
          "test_accuracy": ours["test_accuracy"], "target_accuracy": 0.84,
          "baseline_test_accuracy": baseline["test_accuracy"],
          "tfidf_svm_word_char_test_accuracy": tfidf["svm_word_char_accuracy"],
          "wall_ratio_vs_baseline_to_best": round(ours["wall_s"] / baseline["wall_to_best_epoch_s"], 3),
          "target_wall_ratio": 0.5,
          "epoch_time_ratio_same_config": round(float(np.median(ratios)), 3),
          "epoch_time_ratio_per_round": [round(r, 3) for r in ratios],
          "target_epoch_time_ratio": 0.6})


if __name__ == "__main__":
    main()
