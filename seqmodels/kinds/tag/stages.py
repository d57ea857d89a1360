"""The tagging stages on Parquet files: ingest a tagged corpus, fit the featurizer, train, evaluate.

The same shape as :mod:`seqmodels.kinds.classify.stages`; the shared parts (featurizer, batches, trainer, model
directory) are the same code. A tagged table has ``sentence``, ``line``, ``tokens``, ``tags``, ``text``
(the tokens joined by spaces) and ``source``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import torch

from seqmodels.batching import SequenceData, pad_token_targets
from seqmodels.parquet import write_parquet_atomic
from seqmodels.featurize import TOKENS_TYPE, Featurizer, FeaturizerConfig
from seqmodels.fitting import fit_and_save
from seqmodels.metrics import confusion_matrix
from seqmodels.kinds.tag.metrics import entity_scores, entity_table, per_tag_table, token_accuracy
from seqmodels.kinds.tag.model import RNNTagger, TaggerConfig, default_subword_buckets
from seqmodels.kinds.tag.predictor import TaggerPredictor, decode_tags, split_windows
from seqmodels.kinds.tag.readers import is_bio_tagset, raise_on_invalid_bio, read_tagged
from seqmodels.training import Callback, TrainerConfig, TrainResult, seed_everything
from seqmodels.vocab import LabelMap

log = logging.getLogger(__name__)
BIO_COLUMNS = ("ner", "chunk")


def ingest_tagged(path: str | Path, out_path: str | Path, fmt: str, tag_column: str | None = None) -> Path:
    """Read a tagged corpus into the canonical Parquet table; invalid BIO is an error, never repaired.

    BIO is expected for ``ner`` / ``chunk`` columns and for any tag set that looks like BIO.
    """
    frame = read_tagged(path, fmt, tag_column)
    tags = pd.Series([t for row in frame["tags"] for t in row], dtype=object).unique().tolist()
    if tag_column in BIO_COLUMNS or (tag_column is None and fmt in ("conll2003", "gmb")) or is_bio_tagset(tags):
        raise_on_invalid_bio(path, frame)
    frame["text"] = [" ".join(tokens) for tokens in frame["tokens"]]
    frame["source"] = str(path)
    table = pa.Table.from_pandas(frame, preserve_index=False).cast(pa.schema([
        ("sentence", pa.int64()), ("line", pa.int64()), ("tokens", TOKENS_TYPE), ("tags", TOKENS_TYPE),
        ("text", pa.string()), ("source", pa.string())]))
    return write_parquet_atomic(table, out_path)


def _columns(path: str | Path) -> tuple[pa.ListArray, pa.ListArray]:
    table = pq.read_table(path, columns=["tokens", "tags"])
    return (table.column("tokens").combine_chunks().cast(TOKENS_TYPE),
            table.column("tags").combine_chunks().cast(TOKENS_TYPE))


def fit_tag_featurizer(train_path: str | Path, out_dir: str | Path, config: FeaturizerConfig,
                       auto_subwords: bool = False) -> Path:
    """Fit the word / character vocabularies and the tag map on the training split; saved as JSON.

    ``auto_subwords``: the subword buckets come from the tag set (:func:`default_subword_buckets`).
    """
    tokens, tags = _columns(train_path)
    labels = LabelMap.fit(pc.unique(pc.list_flatten(tags)).to_pylist())
    if auto_subwords:
        config = replace(config, subword_buckets=default_subword_buckets(labels.labels))
    Featurizer.fit(None, tokens, config).save(out_dir)
    labels.save(Path(out_dir) / "labels.json")
    return Path(out_dir)


def encode_tagged(path: str | Path, featurizer: Featurizer, labels: LabelMap):
    """Model inputs with one target per token for a tagged Parquet file; a sentence longer than
    ``max_tokens`` becomes consecutive windows of at most that many tokens (every token keeps its tag)."""
    tokens, tags = _columns(path)
    flat = pc.list_flatten(tags).to_pylist()
    unknown = sorted(set(flat) - set(labels.index))
    if unknown:
        raise ValueError(f"{path}: tags {unknown[:10]} do not occur in the training data "
                         f"(known: {labels.labels}); add examples of them to the training file")
    max_tokens = featurizer.config.clean.max_tokens
    windows, owner = split_windows(tokens, max_tokens)
    if len(windows) > len(tokens):
        log.info("%s: %d sentences longer than %d tokens split into windows of %d tokens", path,
                 int((np.bincount(owner) > 1).sum()), max_tokens, max_tokens)
    return featurizer.encode(None, windows, token_targets=labels.encode(flat))


def tag_targets(data: SequenceData, index: np.ndarray) -> dict[str, torch.Tensor]:
    """A tagger batch's targets: ``tags (batch, max_len)`` tag ids, padding :data:`seqmodels.batching.IGNORE_TAG`."""
    return {"tags": pad_token_targets(data, index)}


def tag_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """``accuracy`` (token level), and for BIO tag sets entity-level ``precision`` / ``recall`` / ``f1``."""
    metrics = {"accuracy": token_accuracy(gold, predicted)}
    if is_bio_tagset({t for row in gold for t in row} | {t for row in predicted for t in row}):
        scores = entity_scores(gold, predicted)
        metrics.update(precision=scores["precision"], recall=scores["recall"], f1=scores["f1"])
    return metrics


def val_scorer(data, labels: LabelMap, batch_size: int = 512):
    """A trainer hook: the decoded (Viterbi with a CRF) validation tags' ``val_f1`` (BIO) and token accuracy
    (``val_accuracy``, and ``val_tag_accuracy`` as before)."""
    gold_ids = [data.token_targets[a:b] for a, b in zip(data.offsets[:-1], data.offsets[1:])]
    names = np.asarray(labels.labels, dtype=object)
    gold = [names[g].tolist() for g in gold_ids]

    def score(model) -> dict[str, float]:
        metrics = tag_scores(gold, decode_tags(model, data, names, next(model.parameters()).device, batch_size))
        out = {"val_accuracy": metrics["accuracy"], "val_tag_accuracy": metrics["accuracy"]}
        if "f1" in metrics:
            out["val_f1"] = metrics["f1"]
        return out

    return score


def monitor_for(labels: LabelMap) -> str:
    """Select epochs on entity F1 for BIO tag sets, on decoded token accuracy otherwise."""
    return "val_f1" if is_bio_tagset(labels.labels) else "val_tag_accuracy"


def train_tagger(train_path, val_path, featurizer_dir, model_dir, checkpoint_dir, model_config: TaggerConfig,
                 trainer_config: TrainerConfig, resume: bool = False,
                 callbacks: tuple[Callback, ...] = ()) -> tuple[Path, TrainResult]:
    """Train on the train split, keep the epoch with the best validation F1 (or accuracy), save it."""
    seed_everything(trainer_config.seed)
    featurizer = Featurizer.load(featurizer_dir)
    labels = LabelMap.load(Path(featurizer_dir) / "labels.json")
    train_data, val_data = encode_tagged(train_path, featurizer, labels), encode_tagged(val_path, featurizer, labels)
    encoder = replace(model_config.encoder, **featurizer.encoder_fields())
    config = replace(model_config, encoder=encoder, tag_names=list(labels.labels))
    trainer_config = replace(trainer_config, monitor=monitor_for(labels))
    return fit_and_save("tag", RNNTagger(config), featurizer, labels, train_data, val_data, model_dir,
                        checkpoint_dir, trainer_config, resume, callbacks, val_scorer(val_data, labels),
                        exact_length=True, targets=tag_targets)


def _predict_test(model_dir, test_path, device: str) -> tuple[TaggerPredictor, list[list[str]], list[list[str]]]:
    predictor = TaggerPredictor.load(model_dir, device)
    table = pq.read_table(test_path, columns=["tokens", "tags"])
    predicted = predictor.predict_tokens(table.column("tokens").to_pylist())
    return predictor, predicted, table.column("tags").to_pylist()


def evaluate_tagger(model_dir, test_path, device: str = "auto") -> dict:
    """Token accuracy, entity precision / recall / F1 (BIO), per-tag and per-entity-type tables, confusion."""
    predictor, predicted, gold = _predict_test(model_dir, test_path, device)
    metrics = {**tag_scores(gold, predicted), "num_test": len(gold), "num_tokens": sum(map(len, gold))}
    names = predictor.labels.labels
    flat_gold = predictor.labels.encode([t for row in gold for t in row if t in predictor.labels.index])
    flat_pred = predictor.labels.encode([p for g_row, p_row in zip(gold, predicted)
                                         for g, p in zip(g_row, p_row) if g in predictor.labels.index])
    tables = {"per_tag": per_tag_table(gold, predicted)}
    if "f1" in metrics:
        tables["per_entity_type"] = entity_table(gold, predicted)
    return {"metrics": metrics, "tables": tables, "labels": names,
            "confusion": confusion_matrix(flat_gold, flat_pred, len(names))}


def gate_score_tagger(model_dir, test_path, device: str = "auto", metric: str = "f1") -> float:
    """A saved tagger's ``metric`` (``f1`` or ``accuracy``) on a tagged test file."""
    _, predicted, gold = _predict_test(model_dir, test_path, device)
    return float(tag_scores(gold, predicted)[metric])
