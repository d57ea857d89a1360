"""The training flows: ingest -> preprocess -> split -> fit tokenizer -> train -> evaluate -> register.

``train-classifier`` and ``train-tagger`` share every stage after ingestion; the task kind picks the
model and the metrics.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Literal

from prefect import flow, runtime
from prefect.states import Completed, State

from seqmodels.preprocess import preprocess_counts
from seqmodels.cleaning import CleanConfig
from seqmodels.featurize import FeaturizerConfig
from seqmodels.kinds.classify.model import CLASSIFIER_TRAINING, CLASSIFIER_VOCAB, ClassifierConfig
from seqmodels.models.encoder import EncoderConfig
from seqmodels.kinds.tag.model import TAGGER_TRAINING, TaggerConfig
from seqmodels.training import TrainerConfig
from flows.run_config import check_resume_config, load_prepared, run_config, save_prepared, save_run_config
from seqmodels.training import epoch_count
from tasks.prepare import fit_tokenizer, ingest_file, ingest_tagged_file, preprocess_file, split_dataset
from tasks.registry import log_evaluation, register_model
from tasks.settings import data_dir, tracking_uri
from tasks.tracking import log_trained_model, report_training, start_tracking
from tasks.train import config_params, evaluate_model, params_before_training, train_model

_ENC, _CLF, _TR, _CLEAN, _FEAT = EncoderConfig(), ClassifierConfig(), CLASSIFIER_TRAINING, CleanConfig(), FeaturizerConfig()
_TAG = TaggerConfig()
_TAG_TR = TAGGER_TRAINING


@flow(name="train-classifier", log_prints=True)
def train_classifier_flow(
    train: str,
    model_name: str,
    text_col: str = "text",
    label_col: str = "label",
    val: str | None = None,
    test: str | None = None,
    epochs: int = _TR.epochs,
    time_budget_minutes: float | None = None,
    device: Literal["auto", "cpu", "cuda"] = "auto",
    seed: int = _TR.seed,
    cell: Literal["rnn", "gru", "lstm"] = _ENC.cell,
    embedding_dim: int = _ENC.embedding_dim,
    hidden_dim: int = _ENC.hidden_dim,
    num_layers: int = _ENC.num_layers,
    bidirectional: bool = _ENC.bidirectional,
    dropout: float = _CLF.head_dropout,
    embedding_dropout: float = _ENC.embedding_dropout,
    word_dropout: float = _ENC.word_dropout,
    subword_buckets: int = _FEAT.subword_buckets,
    char_features: bool = _FEAT.char_features,
    pooling: Literal["last", "max", "mean", "last_max"] = _CLF.pooling,
    batch_size: int = _TR.batch_size,
    lr: float = _TR.lr,
    patience: int = _TR.patience,
    class_weights: bool = False,
    vocab_level: Literal["word", "char"] = "word",
    max_vocab: int | None = CLASSIFIER_VOCAB.max_size,
    min_freq: int = CLASSIFIER_VOCAB.min_freq,
    lowercase: bool = _CLEAN.lower,
    remove_stopwords: bool = _CLEAN.remove_stopwords,
    drop_parentheses: bool = _CLEAN.drop_parentheses,
    max_tokens: int | None = _CLEAN.max_tokens,
    resume: bool = False,
    tracking_uri_override: str | None = None,
    home: str | None = None,
) -> State:
    """Train a text classifier, track it in MLflow and register it behind the promotion gate.

    Returns a Completed state whose data is the result dict (what a caller of the flow gets, and the CLI prints).
    """
    clean = asdict(CleanConfig(lower=lowercase, remove_stopwords=remove_stopwords, drop_parentheses=drop_parentheses,
                               max_tokens=max_tokens))
    model_config = ClassifierConfig(pooling=pooling, head_dropout=dropout, encoder=EncoderConfig(
        cell=cell, embedding_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=num_layers, bidirectional=bidirectional,
        dropout=dropout, embedding_dropout=embedding_dropout, word_dropout=word_dropout))
    trainer_config = _trainer_config(_TR, epochs, batch_size, lr, patience, device, seed, time_budget_minutes)
    options = {"task": "classify", "train_file": train, "val_file": val, "test_file": test, "model_name": model_name,
               "text_col": text_col, "label_col": label_col, "vocab_level": vocab_level, "max_vocab": max_vocab,
               "min_freq": min_freq, "class_weights": class_weights, "subword_buckets": subword_buckets,
               "char_features": char_features, **{f"clean.{k}": v for k, v in clean.items()},
               **config_params(model_config, trainer_config)}
    given = {part: path for part, path in {"train": train, "val": val, "test": test}.items() if path}
    uri, run_dir = tracking_uri(tracking_uri_override, home), _start_run_dir(home, model_name, resume, options, given)
    run_id = start_tracking(uri, f"{model_name}-{run_dir.name}", params_before_training(options), _tags(run_dir), home)
    splits, featurizer_dir = (load_prepared(run_dir) if resume  # the split and vocabulary the run started with
                              else _prepare_texts(run_dir, given, text_col, label_col, clean, seed, options))
    model_dir = train_model(splits["train"], splits["val"], featurizer_dir, str(run_dir), asdict(model_config),
                            asdict(trainer_config), class_weights, resume, run_id)
    return _evaluate_and_register("classify", model_dir, splits, run_dir, run_id, uri, model_name, device, home)


def _trainer_config(defaults: TrainerConfig, epochs: int, batch_size: int, lr: float, patience: int, device: str,
                    seed: int, time_budget_minutes: float | None) -> TrainerConfig:
    """The kind's trainer defaults with the run's options (epochs at least 1); the time budget in seconds."""
    return replace(defaults, epochs=epoch_count(epochs), batch_size=batch_size, lr=lr, patience=patience, device=device, seed=seed,
                   time_budget_s=time_budget_minutes * 60 if time_budget_minutes else None)


def _prepare_texts(run_dir: Path, given: dict[str, str], text_col: str, label_col: str, clean: dict, seed: int,
                   options: dict) -> tuple[dict[str, str], str]:
    """Every given file into the canonical table, cleaned and tokenised; the split; the vocabulary fitted on
    train. Recorded in ``prepared.json`` for a resume."""
    raw = {part: ingest_file(path, str(run_dir / f"raw_{part}.parquet"), text_col, label_col)
           for part, path in given.items()}
    cleaned = {part: preprocess_file(path, str(run_dir / f"clean_{part}.parquet"), clean) for part, path in raw.items()}
    splits = split_dataset(cleaned, str(run_dir / "splits"), seed)
    features = {"subword_buckets": options["subword_buckets"], "char_features": options["char_features"]}
    featurizer_dir = fit_tokenizer(splits["train"], str(run_dir / "featurizer"), options["vocab_level"],
                                   options["max_vocab"], options["min_freq"], clean, features)
    save_prepared(run_dir, splits, featurizer_dir)
    return splits, featurizer_dir


def _prepare_tagged(run_dir: Path, given: dict[str, str], fmt: str, tag_column: str | None, seed: int,
                    options: dict, clean: dict) -> tuple[dict[str, str], str]:
    """Every corpus file into the canonical tagged table; the split by sentence; vocabularies (words lower-cased
    with digits as 0, characters as written). Recorded in ``prepared.json`` for a resume."""
    raw = {part: ingest_tagged_file(path, str(run_dir / f"raw_{part}.parquet"), fmt, tag_column)
           for part, path in given.items()}
    splits = split_dataset(raw, str(run_dir / "splits"), seed)
    features = {"subword_buckets": options["subword_buckets"], "char_features": options["char_encoder"] != "none",
                "word_norm": "lower_digits"}
    featurizer_dir = fit_tokenizer(splits["train"], str(run_dir / "featurizer"), "word", options["max_vocab"],
                                   options["min_freq"], clean, features, task_kind="tag")
    save_prepared(run_dir, splits, featurizer_dir)
    return splits, featurizer_dir


def _evaluate_and_register(task_kind: str, model_dir: str, splits: dict, run_dir: Path, run_id: str, uri: str,
                           model_name: str, device: str, home: str | None) -> State:
    """evaluate -> log to MLflow -> register behind the gate -> report; the flow's final state, whose data is
    the result (the CLI's JSON line)."""
    preprocessing = {part: preprocess_counts(path) for part in ("train", "val", "test")
                     if (path := run_dir / f"clean_{part}.parquet").exists()}  # texts: dropped / truncated
    data = log_trained_model(run_id, model_dir, splits, uri, preprocessing)
    evaluation = evaluate_model(model_dir, splits["test"], str(run_dir / "evaluation"), device, task_kind)
    log_evaluation(run_id, evaluation, uri)
    metric = evaluation["gate_metric"]
    registered = register_model(run_id, model_dir, model_name, splits["test"], uri,
                                new_score=evaluation["metrics"][metric], gate_metric=metric, device=device,
                                metrics=evaluation["metrics"], data=data, home=home)
    (run_dir / "DONE").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
    result = {**registered, "metrics": evaluation["metrics"], "run_id": run_id, "tracking_uri": uri,
              "run_dir": str(run_dir), "files": {**evaluation["files"], **splits}, "preprocessing": preprocessing}
    return Completed(message=report_training(result), data=result)


def _start_run_dir(home: str | None, model_name: str, resume: bool, options: dict, inputs: dict[str, str]) -> Path:
    """A new run directory with the run's ``config.json``, or with ``resume`` the latest unfinished one, whose
    ``config.json`` must match these options."""
    config = run_config(options, inputs)
    run_dir = _run_dir(data_dir(home), model_name, resume)
    if resume:
        check_resume_config(run_dir, config)
    else:
        save_run_config(run_dir, config)
    return run_dir


def _run_dir(home: Path, model_name: str, resume: bool) -> Path:
    """A new run directory, or with ``resume`` the latest unfinished one of this model name."""
    runs = home / "runs" / model_name
    if resume:
        unfinished = sorted(p for p in runs.glob("*") if (p / "checkpoints" / "last.pt").exists() and not (p / "DONE").exists())
        if not unfinished:
            raise FileNotFoundError(f"--resume: no unfinished run of {model_name!r} with a checkpoint under {runs}")
        return unfinished[-1]
    path = runs / time.strftime("%Y%m%d-%H%M%S")
    while path.exists():
        path = path.with_name(path.name + "-1")
    path.mkdir(parents=True)
    return path


def _tags(run_dir: Path, task_kind: str = "classify") -> dict:
    return {"prefect_flow_run_id": str(runtime.flow_run.id or ""), "seqflow.task": task_kind, "run_dir": str(run_dir)}


@flow(name="train-tagger", log_prints=True)
def train_tagger_flow(
    train: str,
    model_name: str,
    format: Literal["conll2003", "conllu", "gmb", "tsv"] = "conll2003",
    tag_column: Literal["ner", "pos", "chunk", "upos", "xpos", "tag"] | None = None,
    val: str | None = None,
    test: str | None = None,
    crf: bool = _TAG.crf,
    char_encoder: Literal["cnn", "lstm", "none"] = _TAG.encoder.char_encoder,
    epochs: int = _TAG_TR.epochs,
    time_budget_minutes: float | None = None,
    device: Literal["auto", "cpu", "cuda"] = "auto",
    seed: int = _TAG_TR.seed,
    cell: Literal["rnn", "gru", "lstm"] = _TAG.encoder.cell,
    embedding_dim: int = _TAG.encoder.embedding_dim,
    hidden_dim: int = _TAG.encoder.hidden_dim,
    num_layers: int = _TAG.encoder.num_layers,
    dropout: float = _TAG.dropout,
    embedding_dropout: float = _TAG.encoder.embedding_dropout,
    word_dropout: float = _TAG.encoder.word_dropout,
    subword_buckets: int | None = None,
    batch_size: int = _TAG_TR.batch_size,
    lr: float = _TAG_TR.lr,
    patience: int = _TAG_TR.patience,
    max_vocab: int | None = 100_000,
    min_freq: int = 1,
    max_tokens: int | None = _CLEAN.max_tokens,
    resume: bool = False,
    tracking_uri_override: str | None = None,
    home: str | None = None,
) -> State:
    """Train a sequence tagger (NER / POS), track it in MLflow and register it behind the promotion gate.

    ``subword_buckets`` None: none for BIO tag sets, 20,000 otherwise (see ``default_subword_buckets``).
    Returns a Completed state whose data is the result dict, as for ``train-classifier``.
    """
    encoder = replace(_TAG.encoder, cell=cell, embedding_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=num_layers,
                      dropout=dropout, embedding_dropout=embedding_dropout, word_dropout=word_dropout,
                      char_encoder="cnn" if char_encoder == "none" else char_encoder)
    model_config = TaggerConfig(encoder=encoder, crf=crf, dropout=dropout)
    trainer_config = _trainer_config(_TAG_TR, epochs, batch_size, lr, patience, device, seed, time_budget_minutes)
    options = {"task": "tag", "train_file": train, "val_file": val, "test_file": test, "model_name": model_name,
               "format": format, "tag_column": tag_column, "max_vocab": max_vocab, "min_freq": min_freq,
               "subword_buckets": subword_buckets, "char_encoder": char_encoder, "clean.max_tokens": max_tokens,
               **config_params(model_config, trainer_config)}
    given = {part: path for part, path in {"train": train, "val": val, "test": test}.items() if path}
    uri, run_dir = tracking_uri(tracking_uri_override, home), _start_run_dir(home, model_name, resume, options, given)
    run_id = start_tracking(uri, f"{model_name}-{run_dir.name}", params_before_training(options),
                            _tags(run_dir, "tag"), home)
    if resume:  # the split and vocabularies the run started with, never refitted
        splits, featurizer_dir = load_prepared(run_dir)
    else:
        splits, featurizer_dir = _prepare_tagged(run_dir, given, format, tag_column, seed, options,
                                                 asdict(replace(_CLEAN, max_tokens=max_tokens)))
    model_dir = train_model(splits["train"], splits["val"], featurizer_dir, str(run_dir), asdict(model_config),
                            asdict(trainer_config), False, resume, run_id, task_kind="tag")
    return _evaluate_and_register("tag", model_dir, splits, run_dir, run_id, uri, model_name, device, home)
