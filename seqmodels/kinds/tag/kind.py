"""Sequence tagging behind the task-kind interface: a tag per token (NER, part of speech)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

import pyarrow as pa

from seqmodels.cleaning import CleanConfig
from seqmodels.featurize import TOKENS_TYPE, FeaturizerConfig
from seqmodels.kinds.base import (EvaluationReport, ExampleRun, InputColumn, SplitPolicy, TaskKind, optimiser_options,
                                  run_options, tracking_options)
from seqmodels.kinds.tag.model import TaggerConfig
from seqmodels.options import option, options_class, options_from
from seqmodels.training import TrainerConfig
from seqmodels.vocab import VocabConfig

# training defaults for taggers: smaller batches, more epochs, patience on validation F1
TAGGER_TRAINING = TrainerConfig(epochs=50, batch_size=32, patience=8, lr_patience=3)

_MODEL = "model options"
_TAGGER, _ENCODER = TaggerConfig(), TaggerConfig().encoder
_DATA = "a tagged corpus in --format"
_SPLIT = "split by sentence"
FORMATS = Literal["conll2003", "conllu", "gmb", "tsv"]
TAG_COLUMNS = Literal["ner", "pos", "chunk", "upos", "xpos", "tag"]

TagOptions = options_class(
    "TagOptions",
    run_options(TAGGER_TRAINING, _DATA, SplitPolicy(), _SPLIT)[:2],
    [("format", FORMATS, option(
        "conll2003", "conll2003: 'word POS chunk NER' lines; conllu: Universal Dependencies; gmb: Kaggle GMB "
        "ner_dataset.csv; tsv: token<TAB>tag. Sentences are separated by blank lines", cli_required=True,
        group="data")),
     ("tag_column", TAG_COLUMNS | None, option(
         None, "which tags to learn (default: ner for conll2003 / gmb, upos for conllu, tag for tsv)", group="data"))],
    run_options(TAGGER_TRAINING, _DATA, SplitPolicy(), _SPLIT)[2:],
    options_from(_TAGGER, ["crf"], _MODEL),
    [("char_encoder", Literal["cnn", "lstm", "none"], option(
        _ENCODER.char_encoder, "per-word character encoder carrying case and shape", group=_MODEL))],
    options_from(_ENCODER, ["cell", "embedding_dim", "hidden_dim", "num_layers"], _MODEL),
    options_from(_TAGGER, ["dropout"], _MODEL),
    options_from(_ENCODER, ["embedding_dropout", "word_dropout"], _MODEL),
    [("subword_buckets", int | None, option(
        None, "hashed character 3-5-gram buckets added to each word vector; 0 turns them off "
              "(default: 0 for BIO tag sets such as NER, 20000 otherwise, e.g. POS)", group=_MODEL))],
    optimiser_options(TAGGER_TRAINING, "sentences per batch", "early-stopping patience in epochs, on validation "
                                                               "entity F1 (BIO) or token accuracy"),
    [("max_vocab", int | None, option(100_000, "word vocabulary cap", group=_MODEL)),
     ("min_freq", int, option(1, "minimum word count to enter the vocabulary", group=_MODEL))],
    options_from(CleanConfig(), ["max_tokens"], "preprocessing options", max_tokens={
        "help": "a longer sentence is tagged in windows of N tokens when predicting; 0 for no cap"}),
    tracking_options(),
    doc="Train a sequence tagger (NER / POS), track it in MLflow and register it behind the promotion gate.")

ENTITY_TYPE = pa.struct([("type", pa.string()), ("start", pa.int64()), ("end", pa.int64()), ("text", pa.string()),
                         ("char_start", pa.int64()), ("char_end", pa.int64())])


class TagKind(TaskKind):
    """Sequence -> one tag per token: BiLSTM / BiGRU with character features and an optional CRF; entity F1
    for BIO tag sets, token accuracy otherwise."""

    name = "tag"
    description = "sequence -> one tag per token (NER, part of speech)"
    flow_name = "train-tagger"
    options = TagOptions
    trainer_defaults = TAGGER_TRAINING
    input_columns = (InputColumn("text", required=False), InputColumn("tokens", "list[string]", required=False))
    input_example = {"text": ["Peter Navarro said on Sunday that the EU rejects German calls."]}
    output_types = {"tokens": TOKENS_TYPE, "tags": TOKENS_TYPE, "entities": pa.list_(ENTITY_TYPE)}

    def model_config(self, options) -> TaggerConfig:
        encoder = replace(_ENCODER, cell=options.cell, embedding_dim=options.embedding_dim,
                          hidden_dim=options.hidden_dim, num_layers=options.num_layers, dropout=options.dropout,
                          embedding_dropout=options.embedding_dropout, word_dropout=options.word_dropout,
                          char_encoder="cnn" if options.char_encoder == "none" else options.char_encoder)
        return TaggerConfig(encoder=encoder, crf=options.crf, dropout=options.dropout)

    def run_params(self, options) -> dict:
        return {"format": options.format, "tag_column": options.tag_column, "max_vocab": options.max_vocab,
                "min_freq": options.min_freq, "subword_buckets": options.subword_buckets,
                "char_encoder": options.char_encoder, "clean.max_tokens": options.max_tokens}

    def ingest(self, path: str, out_path: str, options) -> Path:
        """A tagged corpus -> ``sentence``, ``line``, ``tokens``, ``tags``, ``text``, ``source``; invalid BIO
        is an error."""
        from seqmodels.kinds.tag.stages import ingest_tagged

        return ingest_tagged(path, out_path, options.format, options.tag_column)

    def fit(self, train_path: str, out_dir: str, options) -> Path:
        """Vocabularies (words lower-cased with digits as 0, characters as written) and the tag map."""
        from seqmodels.kinds.tag.stages import fit_tag_featurizer

        vocab = VocabConfig(level="word", max_size=options.max_vocab, min_freq=options.min_freq)
        config = FeaturizerConfig(clean=CleanConfig(max_tokens=options.max_tokens), vocab=vocab,
                                  subword_buckets=options.subword_buckets or 0,
                                  char_features=options.char_encoder != "none", word_norm="lower_digits")
        return fit_tag_featurizer(train_path, out_dir, config, auto_subwords=options.subword_buckets is None)

    def train(self, splits, featurizer_dir, run_dir, model_config, trainer_config, options, resume=False,
              callbacks=()) -> Path:
        from seqmodels.kinds.tag.stages import train_tagger

        run_dir = Path(run_dir)
        model_dir, _ = train_tagger(splits["train"], splits["val"], featurizer_dir, run_dir / "model",
                                    run_dir / "checkpoints", model_config, trainer_config, resume, callbacks)
        return model_dir

    def evaluate(self, model_dir, test_path, device="auto") -> EvaluationReport:
        from seqmodels.kinds.tag.stages import evaluate_tagger

        return EvaluationReport(**evaluate_tagger(model_dir, test_path, device))

    def gate_metric(self, metrics: dict) -> str:
        """Entity F1 for BIO tag sets, token accuracy otherwise."""
        return "f1" if "f1" in metrics else "accuracy"

    def gate_score(self, model_dir, test_path, device="auto", metric="f1") -> float:
        from seqmodels.kinds.tag.stages import gate_score_tagger

        return gate_score_tagger(model_dir, test_path, device, metric)

    def baseline_score(self, test_path, metric="f1") -> float:
        """``metric`` of tagging every token with the most frequent tag of these rows (entity F1 0 when it is O)."""
        from collections import Counter

        import pyarrow.parquet as pq

        from seqmodels.kinds.tag.stages import tag_scores

        gold = pq.read_table(test_path, columns=["tags"]).column("tags").to_pylist()
        counts = Counter(tag for row in gold for tag in row)
        if not counts:
            return 0.0
        majority = counts.most_common(1)[0][0]
        return float(tag_scores(gold, [[majority] * len(row) for row in gold])[metric])

    def load_predictor(self, model_dir, device="auto"):
        from seqmodels.kinds.tag.predictor import TaggerPredictor

        return TaggerPredictor.load(model_dir, device)

    def prediction_counts(self, table: pa.Table) -> dict[str, int]:
        """Entities per type (BIO tag sets; none otherwise)."""
        from collections import Counter

        types = Counter(e["type"] for row in table.column("entities").to_pylist() if row for e in row)
        return {str(k): n for k, n in types.items()}

    def example_run(self, folder: Path) -> ExampleRun:
        """60 synthetic CoNLL-2003 sentences naming people, places and organisations."""
        import random

        names = {"PER": ["Peter Blackburn", "Angela Merkel", "John"], "LOC": ["Brussels", "New York", "Paris"],
                 "ORG": ["EU", "Reuters", "United Nations"]}
        templates = [("PER", "visited", "LOC", "."), ("ORG", "said", "PER", "left", "LOC", "."),
                     ("The", "ORG", "met", "in", "LOC", "today", ".")]
        rng, lines = random.Random(0), ["-DOCSTART- -X- -X- O", ""]
        for i in range(60):
            for slot in templates[i % len(templates)]:
                if slot in names:
                    words = rng.choice(names[slot]).split()
                    lines += [f"{w} NNP B-NP {'B' if j == 0 else 'I'}-{slot}" for j, w in enumerate(words)]
                else:
                    lines.append(f"{slot} XX O O")
            lines.append("")
        path = Path(folder) / "ner.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return ExampleRun({"train": str(path), "format": "conll2003", "epochs": 1, "embedding_dim": 16,
                           "hidden_dim": 16, "batch_size": 8, "subword_buckets": 100},
                          ["Angela Merkel visited Paris .", "The EU met in Brussels today .", ""])
