"""Generation: a character-level RNN language model trained on a text stream, sampled with temperature,
top-k / top-p, repetition penalty, Gumbel-max or greedy decoding; lower nats per character wins the gate."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from seqmodels.kinds.base import (EvaluationReport, ExampleRun, InputColumn, SplitPolicy, TaskKind, optimiser_options,
                                  run_options, tracking_options)
from seqmodels.kinds.generate.model import CharLMConfig
from seqmodels.kinds.generate.predictor import PREDICT_PARAMS
from seqmodels.options import option, options_class, options_from
from seqmodels.training import TrainerConfig

# 64 streams x 128 characters: 8,192 target characters a step (2-layer LSTM 256 on 2 cores: bench_generate).
GENERATOR_TRAINING = TrainerConfig(epochs=30, batch_size=64, lr=2e-3, patience=3)
GENERATE_SPLIT = SplitPolicy(val=0.10, test=0.0, contiguous=True)  # the last 10 % of the text, never shuffled
_DATA = ("a plain text file, the whole file one stream; or CSV, TSV, JSONL or Parquet, the text column's rows "
         "joined by newlines")
_MODEL = "model options"

GenerateOptions = options_class(
    "GenerateOptions",
    run_options(GENERATOR_TRAINING, _DATA, GENERATE_SPLIT)[:2],
    [("text_col", str, option("text", "column with the text in a table (a plain text file is read whole)",
                              group="data"))],
    run_options(GENERATOR_TRAINING, _DATA, GENERATE_SPLIT)[2:],
    options_from(CharLMConfig(), ["cell", "embedding_dim", "hidden_dim", "num_layers", "dropout", "tie_weights"],
                 _MODEL),
    [("seq_len", int, option(128, "characters per chunk of truncated back-propagation through time (the hidden "
                                  "state is carried from chunk to chunk)", group="training options"))],
    optimiser_options(GENERATOR_TRAINING, batch_help="parallel text streams per batch"),
    tracking_options(),
    doc="Train a character-level language model, track it in MLflow and register it behind the promotion gate.")


class GenerateKind(TaskKind):
    name = "generate"
    description = "character-level language model: generate text from a prefix; score lines in nats per character"
    flow_name = "train-generator"
    options = GenerateOptions
    trainer_defaults = GENERATOR_TRAINING
    split = GENERATE_SPLIT
    input_columns = (InputColumn("prefix"),)
    input_example = {"prefix": ["To be", "The "]}
    predict_params = PREDICT_PARAMS
    output_types = {"nats_per_char": pa.float64()}
    pyfunc_columns = ("text",)
    baseline_name = "the text's own character frequencies"

    def model_config(self, options) -> CharLMConfig:
        return CharLMConfig(cell=options.cell, embedding_dim=options.embedding_dim, hidden_dim=options.hidden_dim,
                            num_layers=options.num_layers, dropout=options.dropout, tie_weights=options.tie_weights)

    def run_params(self, options) -> dict:
        return {"text_col": options.text_col, "seq_len": options.seq_len}

    def ingest(self, path: str, out_path: str, options) -> Path:
        """Rows of text (a plain file's lines, or a table's text column) -> ``text``, ``source``."""
        from seqmodels.parquet import write_parquet_atomic
        from seqmodels.readers import ReadSpec, read_table

        table = read_table(path, ReadSpec(text_col=options.text_col))
        table["source"] = str(path)
        return write_parquet_atomic(table, out_path)

    def fit(self, train_path: str, out_dir: str, options) -> Path:
        from seqmodels.kinds.generate.stages import fit_vocab

        return fit_vocab(train_path, out_dir)

    def train(self, splits, featurizer_dir, run_dir, model_config, trainer_config, options, resume=False,
              callbacks=()) -> Path:
        from seqmodels.kinds.generate.stages import train_language_model

        return train_language_model(splits, featurizer_dir, Path(run_dir), model_config, trainer_config,
                                    options.seq_len, resume, callbacks)

    def evaluate(self, model_dir, test_path, device="auto") -> EvaluationReport:
        from seqmodels.kinds.generate.stages import evaluate_language_model

        return EvaluationReport(evaluate_language_model(model_dir, test_path, device))

    def gate_metric(self, metrics: dict) -> str:
        return "nats_per_char"

    def gate_score(self, model_dir, test_path, device="auto", metric="nats_per_char") -> float:
        from seqmodels.kinds.generate.stages import load_model_dir, per_char_metrics, read_stream, stream_nats

        model, vocab, target = load_model_dir(model_dir, device)
        return per_char_metrics(stream_nats(model, vocab.encode(read_stream(test_path)), target)[0])[metric]

    def baseline_score(self, test_path, metric="nats_per_char") -> float:
        """The rows' own character frequencies (a model that ignores context) in ``metric``."""
        from seqmodels.kinds.generate.stages import per_char_metrics, unigram_nats

        return per_char_metrics(unigram_nats(test_path))[metric]

    def load_predictor(self, model_dir, device="auto"):
        from seqmodels.kinds.generate.predictor import GeneratorPredictor

        return GeneratorPredictor.load(model_dir, device)

    def example_run(self, folder: Path) -> ExampleRun:
        """A few hundred lines of a short rhyme; lines to score, one of them noise."""
        lines = ["the cat sat on the mat", "the dog sat on the log", "a bird sang in the tree"] * 100
        path = Path(folder) / "rhymes.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return ExampleRun({"train": str(path), "epochs": 1, "embedding_dim": 8, "hidden_dim": 16, "num_layers": 1,
                           "batch_size": 4, "seq_len": 32},
                          ["the cat sat on the log", "zq xv kj", ""])
