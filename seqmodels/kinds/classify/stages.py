"""The classification stages on Parquet files: preprocess, fit the featurizer, train, evaluate.

Each function reads and writes files so orchestration can run them as separate steps.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from seqmodels.batching import SequenceData
from seqmodels.embeddings import Coverage, Vectors, align, read_vectors
from seqmodels.featurize import TOKENS_TYPE, Featurizer, FeaturizerConfig
from seqmodels.kinds.classify.metrics import classification_metrics
from seqmodels.kinds.classify.model import ClassifierConfig, RNNClassifier
from seqmodels.fitting import fit_and_save
from seqmodels.kinds.classify.baseline import LinearMember, choose_weight
from seqmodels.kinds.classify.predictor import ClassifierPredictor
from seqmodels.predict import add_to_history, member_weights, read_history
from seqmodels.training import Callback, TrainerConfig, TrainResult, seed_everything
from seqmodels.vocab import LabelMap

log = logging.getLogger(__name__)


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


def _encoded(paths: list, featurizer: Featurizer, labels: LabelMap):
    """The rows of these preprocessed files, in order, encoded for the model."""
    parts = [_columns(path) for path in paths]
    cleaned = pa.concat_arrays([part[0] for part in parts])
    tokens = pa.concat_arrays([part[1] for part in parts])
    return featurizer.encode(cleaned, tokens, labels.encode([name for part in parts for name in part[2]]))


def label_targets(data: SequenceData, index: np.ndarray) -> dict[str, torch.Tensor]:
    """A classifier batch's targets: ``targets (batch,)`` class ids."""
    return {"targets": torch.from_numpy(data.targets[index])}


def class_weights(targets: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (absent classes get weight 0)."""
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    weights = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    return torch.tensor(weights * num_classes / weights.sum(), dtype=torch.float32)


class EncodedSplits(NamedTuple):
    """The featurizer, the label map and the train and validation rows they encode."""

    featurizer: Featurizer
    labels: LabelMap
    train: SequenceData
    val: SequenceData


def encode_splits(train_paths: list, val_path, featurizer_dir) -> EncodedSplits:
    """Load the fitted featurizer and labels; encode the rows of ``train_paths`` (concatenated) and ``val_path``."""
    featurizer = Featurizer.load(featurizer_dir)
    labels = LabelMap.load(Path(featurizer_dir) / "labels.json")
    return EncodedSplits(featurizer, labels, _encoded(train_paths, featurizer, labels),
                         _encoded([val_path], featurizer, labels))


def train_classifier(train_path, val_path, featurizer_dir, model_dir, checkpoint_dir,
                     model_config: ClassifierConfig, trainer_config: TrainerConfig, use_class_weights: bool = False,
                     resume: bool = False, callbacks: tuple[Callback, ...] = (),
                     embeddings: PretrainedEmbeddings | None = None) -> tuple[Path, TrainResult]:
    """Train on the train split, select on val, save the best weights as a model directory; ``embeddings``
    initialise (and optionally freeze) the word vectors."""
    return _fit(encode_splits([train_path], val_path, featurizer_dir), model_dir, checkpoint_dir, model_config,
                trainer_config, use_class_weights, resume, callbacks, embeddings)


def _fit(splits: EncodedSplits, model_dir, checkpoint_dir, model_config: ClassifierConfig,
         trainer_config: TrainerConfig, use_class_weights: bool = False, resume: bool = False,
         callbacks: tuple[Callback, ...] = (),
         embeddings: PretrainedEmbeddings | None = None) -> tuple[Path, TrainResult]:
    """A fresh classifier (seeded by ``trainer_config``) trained on ``splits.train``, its best epoch on
    ``splits.val`` saved as the model directory ``model_dir``."""
    seed_everything(trainer_config.seed)
    model = _new_classifier(splits.featurizer, splits.labels, splits.train.targets, model_config, trainer_config.seed,
                            use_class_weights, embeddings)
    return fit_and_save("classify", model, splits.featurizer, splits.labels, splits.train, splits.val, model_dir,
                        checkpoint_dir, trainer_config, resume, callbacks, targets=label_targets)


def _fit_member(splits: EncodedSplits, model_dir, member: int, checkpoint_dir, model_config: ClassifierConfig,
                trainer_config: TrainerConfig, use_class_weights: bool, resume: bool,
                embeddings: PretrainedEmbeddings | None) -> TrainResult:
    """:func:`_fit` in a scratch directory beside ``model_dir``, keeping only the weights, as ``member``'s file
    (:func:`member_weights`) in ``model_dir``."""
    with tempfile.TemporaryDirectory(dir=Path(model_dir).parent) as scratch:
        _, result = _fit(splits, scratch, checkpoint_dir, model_config, trainer_config, use_class_weights, resume,
                         (), embeddings)
        os.replace(Path(scratch) / "model.pt", member_weights(model_dir, member))
    return result


def _new_classifier(featurizer: Featurizer, labels: LabelMap, targets: np.ndarray, model_config: ClassifierConfig,
                    seed: int, use_class_weights: bool, embeddings: PretrainedEmbeddings | None) -> RNNClassifier:
    """A freshly initialised classifier sized to the featurizer and labels (class weights from ``targets``),
    its word vectors read from ``embeddings`` when given."""
    vectors = read_vectors(embeddings.path) if embeddings else None
    encoder = replace(model_config.encoder, **featurizer.encoder_fields(),
                      **({"embedding_dim": vectors.dim} if vectors else {}))
    config = replace(model_config, encoder=encoder, num_classes=len(labels))
    weights = class_weights(targets, len(labels)) if use_class_weights else None
    model = RNNClassifier(config, class_weights=weights)
    if vectors is not None:
        load_pretrained(model.encoder.embedding, featurizer.vocab.tokens, vectors, embeddings, seed)
    return model


def refit_config(selection: TrainResult, config: TrainerConfig, rows_ratio: float,
                 spent_s: float | None = None) -> TrainerConfig | None:
    """The trainer config of the refit on train + validation: the ``selection`` run's best epoch count, no early
    stopping, the time budget's rest after ``spent_s`` (default: the selection's training time); None when no
    epoch was chosen or that rest cannot hold those epochs at the selection's time per epoch times
    ``rows_ratio`` (rows of train + validation / rows of train)."""
    if selection.best_epoch < 1:
        return None
    refit = replace(config, epochs=selection.best_epoch, patience=selection.best_epoch + 1, min_steps=0)
    if not config.time_budget_s:
        return refit
    left = config.time_budget_s - (selection.train_time_s if spent_s is None else spent_s)
    epoch_s = float(np.mean([record["epoch_time_s"] for record in selection.history]))
    return replace(refit, time_budget_s=left) if epoch_s * rows_ratio * selection.best_epoch <= left else None


def member_config(config: TrainerConfig, member: int, spent_s: float = 0.0,
                  estimate_s: float = 0.0) -> TrainerConfig | None:
    """The trainer config of ensemble member ``member``: its own seed (initialisation, batch order, dropout);
    with a time budget, its rest after ``spent_s``, or None when that rest cannot hold ``estimate_s``."""
    config = replace(config, seed=config.seed + 1000 * member)
    if not config.time_budget_s:
        return config
    left = config.time_budget_s - spent_s
    return replace(config, time_budget_s=left) if left >= estimate_s else None


def train_members(train_path, val_path, featurizer_dir, run_dir, model_config: ClassifierConfig,
                  trainer_config: TrainerConfig, members: int = 1, use_class_weights: bool = False,
                  resume: bool = False, callbacks: tuple[Callback, ...] = (),
                  embeddings: PretrainedEmbeddings | None = None) -> tuple[Path, list[TrainResult]]:
    """Train ``members`` classifiers that differ only in their seed, each selected on validation: the first is
    the model directory ``run_dir/model`` (``callbacks`` see its epochs), the others' weights join it as
    ``member-N.pt`` (checkpoints in ``run_dir/checkpoints/member-N``). With a time budget a member is trained
    only while the rest of it can hold the first one's training time. Returns the directory and the runs."""
    run_dir, splits = Path(run_dir), encode_splits([train_path], val_path, featurizer_dir)
    model_dir, first = _fit(splits, run_dir / "model", run_dir / "checkpoints", model_config, trainer_config,
                            use_class_weights, resume, callbacks, embeddings)
    selections = [first]
    for member in range(1, members):
        config = member_config(trainer_config, member, sum(result.train_time_s for result in selections),
                               first.train_time_s)
        if config is None:
            log.info("ensemble members %d to %d skipped: the time budget left cannot hold them", member + 1, members)
            break
        selections.append(_fit_member(splits, model_dir, member, run_dir / "checkpoints" / f"member-{member}",
                                      model_config, config, use_class_weights, resume, embeddings))
    if len(selections) > 1:
        add_to_history(model_dir, members=[{"seed": member_config(trainer_config, member).seed, **result.__dict__}
                                           for member, result in enumerate(selections[1:], 1)])
    return model_dir, selections


def refit_members(train_path, val_path, featurizer_dir, model_dir, model_config: ClassifierConfig,
                  trainer_config: TrainerConfig, selections: list[TrainResult], use_class_weights: bool = False,
                  embeddings: PretrainedEmbeddings | None = None) -> list[int]:
    """Train a fresh classifier on train + validation for each member, for the epochs its ``selections`` run
    chose on validation, and save it over that member's weights (the linear member and the featurizer stay).
    Records: ``history.json``'s ``refit`` (the first member) and ``member_refits``. Returns the epochs trained
    per member (0: skipped; see :func:`refit_config`).

    The validation split holds 15 % of the labelled rows; learning from them too helps most where rows are few
    (test accuracy with the linear member, split seeds 0-2, ``bench/exp_suite.py`` ``refit_rnn``: TREC 90.3 ->
    90.9, SUBJ 94.3 -> 94.3, AG 10k 83.3 -> 83.4)."""
    splits = encode_splits([train_path, val_path], val_path, featurizer_dir)  # learns from both
    rows = len(splits.train.targets)
    ratio = rows / max(rows - len(splits.val.targets), 1)
    spent, records = sum(result.train_time_s for result in selections), []
    for member, selection in enumerate(selections):
        config = refit_config(selection, member_config(trainer_config, member), ratio, spent)
        if config is None:
            log.info("refit of member %d on train + validation skipped: %s", member + 1, "no epoch was chosen"
                     if selection.best_epoch < 1 else "the time budget left cannot hold it")
            records.append({"epochs": 0})
            continue
        log.info("refit of member %d: a fresh model on train + validation (%d rows) for the %d epochs chosen on "
                 "validation; its validation figures are on rows it learns from", member + 1, rows, config.epochs)
        result = _fit_member(splits, model_dir, member, None, model_config, config, use_class_weights, False,
                             embeddings)
        spent += result.train_time_s
        records.append({"epochs": len(result.history), "rows": rows, "train_time_s": result.train_time_s,
                        "history": result.history})
    add_to_history(model_dir, refit=records[0], **({"member_refits": records[1:]} if len(records) > 1 else {}))
    return [record["epochs"] for record in records]


@dataclass(frozen=True)
class PretrainedEmbeddings:
    """A word-vector file (word2vec text or ``.bin``, GloVe, fastText ``.vec``) and whether to freeze it."""

    path: str
    freeze: bool = False


def load_pretrained(table: torch.nn.Embedding, vocab_tokens: list[str], vectors: Vectors,
                    embeddings: PretrainedEmbeddings, seed: int) -> Coverage:
    """Copy the file's vectors into the embedding table (lower-case fallback; other words random), freeze it if
    asked, and log the coverage."""
    matrix, coverage = align(vocab_tokens, vectors, init_std=float(table.weight.detach().std()), seed=seed)
    with torch.no_grad():
        table.weight.copy_(torch.from_numpy(matrix))
    table.weight.requires_grad_(not embeddings.freeze)
    log.info("%s: %s%s", embeddings.path, coverage.summary(), "; frozen" if embeddings.freeze else "")
    if coverage.found == 0:
        log.warning("%s: no vocabulary word has a vector in this file: check its language and case", embeddings.path)
    return coverage


def _predict_test(model_dir, test_path, device: str) -> tuple[ClassifierPredictor, list[str], list[str]]:
    """A saved classifier's predicted label names for a test file's raw text, beside the true names."""
    predictor = ClassifierPredictor.load(model_dir, device)
    table = pq.read_table(test_path, columns=["text", "label"])
    predicted = predictor.predict_texts(table.column("text").combine_chunks())["label"].tolist()
    return predictor, predicted, table.column("label").to_pylist()


def add_linear_member(model_dir, train_path, val_path, seed: int = 0) -> float:
    """Fit the linear member (:class:`LinearMember`) on the training split's raw texts, choose its weight on the
    validation split (rows that clean to nothing left out), then refit it on both splits at that weight; saved
    in ``model_dir`` unless the weight is 0. Returns the weight."""
    predictor = ClassifierPredictor.load(model_dir, "cpu")
    train, val = (pq.read_table(path, columns=["text", "label"]) for path in (train_path, val_path))
    texts, val_texts = train.column("text").to_pylist(), val.column("text").to_pylist()
    label_ids = predictor.labels.encode(train.column("label").to_pylist() + val.column("label").to_pylist())
    member = LinearMember.fit(texts, label_ids[:len(texts)], len(predictor.labels), seed)
    log_probs = predictor.rnn_log_probs(val_texts)  # (val rows, classes); NaN rows: empty after cleaning
    kept = ~np.isnan(log_probs).any(-1)
    weight, accuracy = choose_weight(log_probs[kept], member.scores([t for t, k in zip(val_texts, kept) if k]),
                                     label_ids[len(texts):][kept])
    log.info("linear member (TF-IDF + LinearSVC, C=%g): validation accuracy by weight %s; weight %g%s", member.C,
             "  ".join(f"{w:g}: {a:.4f}" for w, a in accuracy.items()), weight,
             " (the RNN alone is best on validation: left out)" if weight == 0 else "")
    if weight > 0:
        # TREC, seeds 0 and 1 (bench/exp_suite.py): the mixture's test accuracy 90.0 / 89.8 -> 90.8 / 90.4 refitted
        member = LinearMember.fit(texts + val_texts, label_ids, len(predictor.labels), seed)
        member.weight = weight
        member.save(model_dir)
    return weight


def evaluate_classifier(model_dir, test_path, device: str = "auto") -> dict:
    """Predict the test split from its raw text (as a registry consumer would) and score it; with a linear
    member, also the RNN alone (``rnn_accuracy``) and the member's ``linear_weight``."""
    predictor, predicted, truth = _predict_test(model_dir, test_path, device)
    y_true, y_pred = predictor.labels.encode(truth), predictor.labels.encode(predicted)
    metrics, per_class, confusion = classification_metrics(y_true, y_pred, predictor.labels.labels)
    metrics["num_test"] = len(y_true)
    metrics["linear_weight"] = predictor.linear.weight if predictor.linear is not None else 0.0
    if predictor.linear is not None:
        rnn = predictor.rnn_log_probs(pq.read_table(test_path, columns=["text"]).column("text").combine_chunks())
        rnn_pred = np.where(np.isnan(rnn).any(-1), -1, np.nan_to_num(rnn).argmax(-1))
        metrics["rnn_accuracy"] = float((rnn_pred == y_true).mean())
    else:
        metrics["rnn_accuracy"] = metrics["accuracy"]
    metrics["refit_epochs"] = read_history(model_dir).get("refit", {}).get("epochs", 0)
    metrics["rnn_members"] = len(predictor.members)
    return {"metrics": metrics, "tables": {"per_class": per_class}, "confusion": confusion,
            "labels": predictor.labels.labels}


def gate_score(model_dir, test_path, device: str = "auto") -> float:
    """Accuracy of any saved classifier on a test file, comparing label names (label sets may differ)."""
    _, predicted, truth = _predict_test(model_dir, test_path, device)
    return float((np.asarray(predicted, dtype=object) == np.asarray(truth, dtype=object)).mean())
