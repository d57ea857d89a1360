"""Tagger tuning harness: train / select / test on a corpus with config overrides, one JSON line out.

    PYTHONPATH=. .venv/bin/python bench/exp_tag.py '{"corpus": "conll2003", "threads": 1, "hidden_dim": 100}'
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from seqmodels.featurize import FeaturizerConfig
from seqmodels.kinds.tag.kind import TAGGER_TRAINING
from seqmodels.kinds.tag.model import TaggerConfig
from seqmodels.kinds.tag.stages import evaluate_tagger, fit_tag_featurizer, ingest_tagged, train_tagger
from seqmodels.vocab import VocabConfig

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
CORPORA = {
    "conll2003": ("conll2003", None, DATA / "conll2003/train.txt", DATA / "conll2003/valid.txt", DATA / "conll2003/test.txt"),
    "ud_ewt": ("conllu", "upos", DATA / "ud_english_ewt/en_ewt-ud-train.conllu",
               DATA / "ud_english_ewt/en_ewt-ud-dev.conllu", DATA / "ud_english_ewt/en_ewt-ud-test.conllu"),
}
ENCODER_KEYS = ("cell", "embedding_dim", "hidden_dim", "num_layers", "embedding_dropout", "word_dropout", "char_encoder",
                "char_filters", "char_hidden_dim", "char_embedding_dim")
TRAINER_KEYS = ("ema_decay", "epochs", "batch_size", "lr", "patience", "lr_patience", "lr_factor", "time_budget_s", "weight_decay")


def run(overrides: dict) -> dict:
    torch.set_num_threads(overrides.get("threads", 1))
    fmt, column, train, val, test = CORPORA[overrides.get("corpus", "conll2003")]
    base = TaggerConfig()
    encoder = replace(base.encoder, **{k: overrides[k] for k in ENCODER_KEYS if k in overrides})
    if "dropout" in overrides:
        encoder = replace(encoder, dropout=overrides["dropout"])
    model = replace(base, encoder=encoder, crf=overrides.get("crf", True), dropout=overrides.get("dropout", base.dropout))
    trainer = replace(TAGGER_TRAINING, progress=False,
                      **{k: overrides[k] for k in TRAINER_KEYS if k in overrides})
    features = FeaturizerConfig(vocab=VocabConfig(max_size=100_000, min_freq=overrides.get("min_freq", 1)),
                                subword_buckets=overrides.get("subword_buckets", 0),
                                char_features=overrides.get("char_encoder", "cnn") != "none", word_norm="lower_digits")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = {part: ingest_tagged(path, tmp / f"{part}.parquet", fmt, column)
                 for part, path in (("train", train), ("val", val), ("test", test))}
        # without an override, subwords follow the tag set as in `seqflow train tag` (default_subword_buckets)
        fit_tag_featurizer(paths["train"], tmp / "feat", features, auto_subwords="subword_buckets" not in overrides)
        model_dir, result = train_tagger(paths["train"], paths["val"], tmp / "feat", tmp / "model", tmp / "ckpt",
                                         model, trainer)
        report = evaluate_tagger(model_dir, paths["test"], "cpu")
    return {"overrides": overrides, "test": report["metrics"], "best_epoch": result.best_epoch,
            "best_val": result.best_score, "epochs_run": len(result.history),
            "epoch_time_s": sum(r["epoch_time_s"] for r in result.history) / max(len(result.history), 1),
            "train_time_s": result.train_time_s, "wall_s": time.monotonic() - started}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    print(json.dumps(run(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})), flush=True)
