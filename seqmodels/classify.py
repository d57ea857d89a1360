"""The classification stages on Parquet files: preprocess, fit the featurizer, train, evaluate.

Each function reads and writes files so orchestration can run them as separate steps.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from seqmodels.cleaning import CleanConfig
from seqmodels.featurize import TOKENS_TYPE, Featurizer, FeaturizerConfig, tokenize_texts
from seqmodels.metrics import classification_metrics
from seqmodels.models.classifier import ClassifierConfig, RNNClassifier
from seqmodels.fitting import fit_and_save
from seqmodels.predict import ClassifierPredictor
from seqmodels.readers import ReaderError, detect_format
from seqmodels.training import Callback, TrainerConfig, TrainResult, seed_everything
from seqmodels.vocab import LabelMap


log = logging.getLogger(__name__)
# Above this fraction of texts that clean to nothing, preprocessing stops: 0 of the 24,452 texts of the
# shipped English datasets (AG News titles, TREC, SUBJ) clean to nothing, so a stray few (emoji-only lines,
# "???") are dropped with a warning, but 5 % means the cleaning does not fit the data (wrong column, text
# the cleaning cannot read) and dropping that much would silently change what the model learns.
MAX_EMPTY_FRACTION = 0.05
PREPROCESS_METADATA_KEY = b"seqflow.preprocess"


def write_parquet_atomic(table: pa.Table | pd.DataFrame, path: str | Path) -> Path:
    """Write Parquet to a temporary name and rename it, so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def preprocess_table(raw_path: str | Path, out_path: str | Path, clean: CleanConfig,
                     max_empty_fraction: float = MAX_EMPTY_FRACTION) -> Path:
    """Add ``clean`` (cleaned string) and ``tokens`` (word tokens, at most ``clean.max_tokens``) columns to
    a canonical table.

    Texts that clean to nothing are dropped with a WARNING naming them; more than ``max_empty_fraction``
    of them is an error. The counts (:func:`preprocess_counts`) are kept in the file's metadata and logged.
    """
    table = pq.read_table(raw_path)
    tokenized = tokenize_texts(table.column("text"), clean)
    source, lines = _source_lines(table, raw_path)
    counts = {"rows_read": table.num_rows, "empty_after_cleaning": int(tokenized.empty.sum()),
              "truncated": int(tokenized.truncated.sum()), "max_tokens": clean.max_tokens}
    _check_empty(tokenized.empty, source, lines, table.column("text"), max_empty_fraction)
    out = table.append_column("clean", tokenized.cleaned).append_column("tokens", tokenized.tokens)
    if counts["empty_after_cleaning"]:
        out = out.filter(pa.array(~tokenized.empty))
    log.info("preprocessed %s: %d texts, %d empty after cleaning (dropped), %d truncated to %s tokens", source,
             counts["rows_read"], counts["empty_after_cleaning"], counts["truncated"], clean.max_tokens)
    metadata = {**(out.schema.metadata or {}), PREPROCESS_METADATA_KEY: json.dumps(counts).encode()}
    return write_parquet_atomic(out.replace_schema_metadata(metadata), out_path)


def preprocess_counts(path: str | Path) -> dict:
    """What :func:`preprocess_table` counted for a file: ``rows_read``, ``empty_after_cleaning`` (dropped),
    ``truncated`` and ``max_tokens``; ``{}`` for a file it did not write."""
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[PREPROCESS_METADATA_KEY]) if PREPROCESS_METADATA_KEY in metadata else {}


def _source_lines(table: pa.Table, raw_path: str | Path) -> tuple[str, np.ndarray]:
    """The user's file behind a canonical table and the line of each row in it (1-based; after a CSV/TSV
    header); without ``source`` / ``row`` columns, the table's own path and row numbers."""
    if "source" not in table.column_names or "row" not in table.column_names or table.num_rows == 0:
        return str(raw_path), np.arange(1, table.num_rows + 1)
    source = str(table.column("source")[0].as_py())
    try:
        first_line = 2 if detect_format(source) in ("csv", "tsv") else 1
    except ReaderError:
        first_line = 1
    return source, table.column("row").to_numpy(zero_copy_only=False) + first_line


def _check_empty(empty: np.ndarray, source: str, lines: np.ndarray, texts: pa.ChunkedArray,
                 max_fraction: float) -> None:
    """Raise when more than ``max_fraction`` of the texts clean to nothing; warn about fewer."""
    count = int(empty.sum())
    if count == 0:
        return
    rows = np.flatnonzero(empty)
    where = ", ".join(f"line {lines[r]} {str(texts[int(r)].as_py())[:40]!r}" for r in rows[:5])
    what = f"{count} of {len(empty)} texts ({count / len(empty):.1%}) are empty after cleaning ({where}"
    what += ", ...)" if count > 5 else ")"
    if count > max_fraction * len(empty):
        raise ValueError(f"{source}: {what}; more than {max_fraction:.0%} means the cleaning does not fit this "
                         "text: check --text-col, or try --no-remove-stopwords")
    log.warning("%s: %s; those rows are dropped", source, what)


def _columns(path: str | Path) -> tuple[pa.Array, pa.ListArray, list[str]]:
    table = pq.read_table(path, columns=["clean", "tokens", "label"])
    tokens = table.column("tokens").combine_chunks().cast(TOKENS_TYPE)
    return table.column("clean").combine_chunks(), tokens, table.column("label").to_pylist()


def fit_featurizer(train_path: str | Path, out_dir: str | Path, config: FeaturizerConfig) -> Path:
    """Fit the vocabulary and label map on the training split; save both as JSON in ``out_dir``."""
    cleaned, tokens, labels = _columns(train_path)
    Featurizer.fit(cleaned, tokens, config).save(out_dir)
    LabelMap.fit(labels).save(Path(out_dir) / "labels.json")
    return Path(out_dir)


def _encoded(path, featurizer: Featurizer, labels: LabelMap):
    cleaned, tokens, names = _columns(path)
    return featurizer.encode(cleaned, tokens, labels.encode(names))


def class_weights(targets: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (absent classes get weight 0)."""
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    weights = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    return torch.tensor(weights * num_classes / weights.sum(), dtype=torch.float32)


def train_classifier(train_path, val_path, featurizer_dir, model_dir, checkpoint_dir,
                     model_config: ClassifierConfig, trainer_config: TrainerConfig, use_class_weights: bool = False,
                     resume: bool = False, callbacks: tuple[Callback, ...] = ()) -> tuple[Path, TrainResult]:
    """Train on the train split, select on val, save the best weights as a model directory."""
    seed_everything(trainer_config.seed)
    featurizer = Featurizer.load(featurizer_dir)
    labels = LabelMap.load(Path(featurizer_dir) / "labels.json")
    train_data, val_data = _encoded(train_path, featurizer, labels), _encoded(val_path, featurizer, labels)
    encoder = replace(model_config.encoder, **featurizer.encoder_fields())
    config = replace(model_config, encoder=encoder, num_classes=len(labels))
    weights = class_weights(train_data.targets, len(labels)) if use_class_weights else None
    return fit_and_save("classify", RNNClassifier(config, class_weights=weights), featurizer, labels, train_data,
                        val_data, model_dir, checkpoint_dir, trainer_config, resume, callbacks)


def _predict_test(model_dir, test_path, device: str) -> tuple[ClassifierPredictor, list[str], list[str]]:
    """A saved classifier's predicted label names for a test file's raw text, beside the true names."""
    predictor = ClassifierPredictor.load(model_dir, device)
    table = pq.read_table(test_path, columns=["text", "label"])
    predicted = predictor.predict_texts(table.column("text").combine_chunks())["label"].tolist()
    return predictor, predicted, table.column("label").to_pylist()


def evaluate_classifier(model_dir, test_path, device: str = "auto") -> dict:
    """Predict the test split from its raw text (as a registry consumer would) and score it."""
    predictor, predicted, truth = _predict_test(model_dir, test_path, device)
    y_true, y_pred = predictor.labels.encode(truth), predictor.labels.encode(predicted)
    metrics, per_class, confusion = classification_metrics(y_true, y_pred, predictor.labels.labels)
    metrics["num_test"] = len(y_true)
    return {"metrics": metrics, "tables": {"per_class": per_class}, "confusion": confusion,
            "labels": predictor.labels.labels}


def gate_score(model_dir, test_path, device: str = "auto") -> float:
    """Accuracy of any saved classifier on a test file, comparing label names (label sets may differ)."""
    _, predicted, truth = _predict_test(model_dir, test_path, device)
    return float((np.asarray(predicted, dtype=object) == np.asarray(truth, dtype=object)).mean())
