"""Tagging benchmarks: quality on CoNLL-2003 / UD English-EWT / GMB, training speed, predict throughput.

Prints JSON lines, each measured in this script:
- ``conll2003``: ``seqflow train tag`` (defaults) on train, selected on valid, scored on test: entity F1,
  wall time everything included; ``conll2003_budget``: the same with ``--time-budget 20``;
- ``ud_ewt``: UPOS token accuracy on the UD English-EWT test set;
- ``gmb``: entity F1 on a seeded 80 / 10 / 10 sentence split of the Kaggle GMB file (``--time-budget 20``:
  an epoch over its 840k training tokens is four times CoNLL's);
- ``train_speed``: training tokens/s of our trainer beside the PyTorch tutorial's per-sentence loop with
  the same model (embedding 100, BiLSTM 128, softmax; no characters, no CRF), and of our default model;
- ``predict``: ``seqflow predict`` on 100,000 raw sentences: tokens/s and peak RSS.

    .venv/bin/python -m bench.bench_tag [--only conll2003,ud_ewt,gmb,speed,predict] [--threads 2]
"""

from __future__ import annotations

import argparse
import csv
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from bench.bench_predict import cli, emit
from bench.tag_baseline import LessonTaggerConfig, run_lesson_speed

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
CONLL, UD, GMB = DATA / "conll2003", DATA / "ud_english_ewt", DATA / "gmb_ner" / "ner_dataset.csv"


def train_cli(name: str, files: dict, fmt: str, home: str, threads: int, extra: list[str] = ()) -> dict:
    args = ["train", "tag", "--format", fmt, "--model-name", name, *extra]
    for part, path in files.items():
        args += [f"--{part}", str(path)]
    result, wall, rss = cli(args, home, threads)
    return {"model": name, **{k: round(v, 4) for k, v in result["metrics"].items()}, "wall_s": round(wall, 1),
            "peak_rss_mb": round(rss / 2**20, 1)}


def write_gmb_splits(out: Path, seed: int = 0) -> dict[str, Path]:
    """A seeded 80 / 10 / 10 sentence split of the GMB file, written back in the GMB CSV layout."""
    from seqmodels.kinds.tag.readers import read_tagged

    frame = read_tagged(GMB, "gmb", "ner")
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = [int(len(frame) * 0.8), int(len(frame) * 0.9)]
    parts = dict(zip(("train", "val", "test"), np.split(order, cut)))
    paths = {}
    for part, rows in parts.items():
        paths[part] = out / f"gmb_{part}.csv"
        with paths[part].open("w", encoding="latin-1", newline="", errors="replace") as fh:
            writer = csv.writer(fh)
            writer.writerow(["Sentence #", "Word", "POS", "Tag"])
            for number, row in enumerate(sorted(rows), 1):
                for i, (token, tag) in enumerate(zip(frame["tokens"][row], frame["tags"][row])):
                    writer.writerow([f"Sentence: {number}" if i == 0 else "", token, "X", tag])
    return paths


def our_train_speed(sentences, tags, threads: int, default_model: bool, max_sentences: int = 4000) -> dict:
    """Training tokens/s of our trainer on ``max_sentences`` sentences (one epoch, length-bucketed batches)."""
    from seqmodels.batching import BatchLoader
    from seqmodels.featurize import TOKENS_TYPE, Featurizer, FeaturizerConfig
    from seqmodels.kinds.tag.kind import TAGGER_TRAINING
    from seqmodels.kinds.tag.model import RNNTagger, TaggerConfig
    from seqmodels.training import Trainer
    from seqmodels.vocab import LabelMap

    torch.set_num_threads(threads)
    sentences, tags = sentences[:max_sentences], tags[:max_sentences]
    tokens = pa.array(sentences, type=TOKENS_TYPE)
    features = FeaturizerConfig(word_norm="lower_digits", subword_buckets=0,
                                char_features=default_model)
    featurizer = Featurizer.fit(None, tokens, features)
    labels = LabelMap.fit({t for row in tags for t in row})
    data = featurizer.encode(None, tokens, token_targets=labels.encode([t for row in tags for t in row]))
    base = TaggerConfig()
    encoder = replace(base.encoder, embedding_dim=100, hidden_dim=128, **featurizer.encoder_fields())
    model = RNNTagger(replace(base, encoder=encoder, tag_names=labels.labels, crf=default_model))
    loader = BatchLoader(data, TAGGER_TRAINING.batch_size, shuffle=True, exact_length=True)  # as train_tagger
    trainer = Trainer(model, replace(TAGGER_TRAINING, progress=False, device="cpu"), loader, loader)
    started = time.perf_counter()
    trainer._train_epoch(1, math.inf)
    seconds = time.perf_counter() - started
    n_tokens = int(data.lengths.sum())
    return {"sentences": len(sentences), "tokens": n_tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(n_tokens / seconds, 1)}


def bench_speed(threads: int) -> None:
    from seqmodels.kinds.tag.readers import read_tagged

    frame = read_tagged(CONLL / "train.txt", "conll2003")
    sentences, tags = frame["tokens"].tolist(), frame["tags"].tolist()
    torch.set_num_threads(threads)
    lesson = run_lesson_speed(sentences, tags, LessonTaggerConfig(embedding_dim=100, hidden_dim=128),
                              time_limit_s=60)
    lesson.pop("config", None)
    emit({"bench": "train_speed", "trainer": "lesson_per_sentence", **lesson})
    same = emit({"bench": "train_speed", "trainer": "seqflow_same_model", **our_train_speed(sentences, tags, threads, False)})
    default = emit({"bench": "train_speed", "trainer": "seqflow_default_model",
                    **our_train_speed(sentences, tags, threads, True)})
    emit({"bench": "train_speed_summary", "speedup_same_model": round(same["tokens_per_s"] / lesson["tokens_per_s"], 2),
          "target": 10, "speedup_default_model": round(default["tokens_per_s"] / lesson["tokens_per_s"], 2)})


def bench_predict(home: str, tmp: Path, threads: int, lines: int) -> None:
    """``seqflow predict`` on ``lines`` raw sentences (CoNLL test sentences, repeated and shuffled)."""
    from seqmodels.kinds.tag.readers import read_tagged

    frame = read_tagged(CONLL / "test.txt", "conll2003")
    texts = np.asarray([" ".join(t) for t in frame["tokens"]], dtype=object)
    picks = texts[np.random.default_rng(0).integers(0, len(texts), lines)]
    empty, inbox = tmp / "empty", tmp / "inbox"
    empty.mkdir()
    inbox.mkdir()
    (inbox / "sentences.txt").write_text("\n".join(picks) + "\n", encoding="utf-8")
    run = ["predict", "--model-name", "conll", "--batch-size", "256"]
    _, startup, _ = cli([*run, "--input", str(empty), "--output", str(tmp / "out-empty")], home, threads)
    summary, wall, rss = cli([*run, "--input", str(inbox), "--output", str(tmp / "out")], home, threads)
    import pyarrow.parquet as pq

    out = pq.read_table(next((tmp / "out").glob("date=*/*.parquet")), columns=["tokens"])
    n_tokens = int(pa.compute.sum(pa.compute.list_value_length(out.column("tokens"))).as_py())
    emit({"bench": "predict", "sentences": summary["rows"], "tokens": n_tokens, "wall_s": round(wall, 1),
          "startup_s": round(startup, 1), "tokens_per_s": round(n_tokens / (wall - startup), 1),
          "sentences_per_s": round(summary["rows"] / (wall - startup), 1), "peak_rss_mb": round(rss / 2**20, 1)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="conll2003,ud_ewt,gmb,speed,predict")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--predict-lines", type=int, default=100_000)
    parser.add_argument("--home", help="keep runs here (default: a temporary directory); with --only predict, "
                                       "the CoNLL model registered there by an earlier run is used")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        home = args.home or str(tmp / "home")
        conll = {"train": CONLL / "train.txt", "val": CONLL / "valid.txt", "test": CONLL / "test.txt"}
        if "conll2003" in only or ("predict" in only and not args.home):  # predict reuses --home's model
            emit({"bench": "conll2003", **train_cli("conll", conll, "conll2003", home, args.threads)})
        if "conll2003_budget" in only:
            emit({"bench": "conll2003_budget", "time_budget_min": 20,
                  **train_cli("conll-budget", conll, "conll2003", home, args.threads, ["--time-budget", "20"])})
        if "ud_ewt" in only:
            ud = {"train": UD / "en_ewt-ud-train.conllu", "val": UD / "en_ewt-ud-dev.conllu",
                  "test": UD / "en_ewt-ud-test.conllu"}
            emit({"bench": "ud_ewt", **train_cli("ud-upos", ud, "conllu", home, args.threads, ["--tag-column", "upos"])})
        if "gmb" in only:
            emit({"bench": "gmb", "split": "80/10/10 seed 0", "time_budget_min": 20,
                  **train_cli("gmb", write_gmb_splits(tmp), "gmb", home, args.threads, ["--time-budget", "20"])})
        if "speed" in only:
            bench_speed(args.threads)
        if "predict" in only:
            bench_predict(home, tmp, args.threads, args.predict_lines)


if __name__ == "__main__":
    main()
