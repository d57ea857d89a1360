"""The ``seqflow`` command line: ``train classify``, ``train tag``, ``predict``, ``serve``, ``demo``.

Logs go to stderr; the last line on stdout is one JSON object, so scripts can chain commands.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from functools import lru_cache
from types import SimpleNamespace


@lru_cache(maxsize=1)
def _defaults() -> SimpleNamespace:
    """The components' default configs, for the options' defaults (imported late: they load torch)."""
    from seqmodels.cleaning import CleanConfig
    from seqmodels.featurize import FeaturizerConfig
    from seqmodels.kinds.classify.model import CLASSIFIER_TRAINING, CLASSIFIER_VOCAB, ClassifierConfig
    from seqmodels.models.encoder import EncoderConfig

    return SimpleNamespace(enc=EncoderConfig(), clf=ClassifierConfig(), tr=CLASSIFIER_TRAINING, vocab=CLASSIFIER_VOCAB,
                           clean=CleanConfig(), feat=FeaturizerConfig())


def _bool_flag(parser: argparse.ArgumentParser, name: str, default: bool, help: str) -> None:
    parser.add_argument(f"--{name}", default=default, action=argparse.BooleanOptionalAction,
                        help=f"{help} (default: {'on' if default else 'off'})")


def add_common_training(parser: argparse.ArgumentParser, data_help: str = "CSV, TSV, JSONL or Parquet",
                        split_help: str = "stratified", epochs: int | None = None) -> None:
    """Options every ``train`` sub-command shares: data, naming, run control, tracking."""
    d = _defaults()
    epochs = d.tr.epochs if epochs is None else epochs
    parser.add_argument("--train", required=True, metavar="FILE", help=f"training file ({data_help})")
    parser.add_argument("--val", metavar="FILE", help=f"validation file; default: 15%% of --train, {split_help}")
    parser.add_argument("--test", metavar="FILE", help=f"test file; default: 15%% of --train, {split_help}")
    parser.add_argument("--model-name", required=True, help="registered model name in MLflow")
    from seqmodels.training import epoch_count  # rejects --epochs 0: it would register an untrained model

    parser.add_argument("--epochs", type=epoch_count, default=epochs, help="maximum epochs, at least 1 (default: %(default)s)")
    parser.add_argument("--time-budget", type=float, metavar="MINUTES",
                        help="stop training in time to stay within MINUTES, keeping the best checkpoint")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: CUDA with mixed precision when a GPU is present, else CPU (default: auto)")
    parser.add_argument("--seed", type=int, default=d.tr.seed, help="seed of split, init and batches (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue the latest unfinished run of --model-name from its checkpoint")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite in the data dir)")
    parser.add_argument("--data-dir", help="where runs, Parquet files and the MLflow store go (default: $SEQFLOW_HOME or ./seqflow_data)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")


def add_classify(sub) -> None:
    d = _defaults()
    p = sub.add_parser("classify", help="sequence -> label (topics, sentiment)",
                       description="Train an RNN text classifier end to end and register it in MLflow.")
    add_common_training(p)
    p.add_argument("--text-col", required=True, help="column with the text")
    p.add_argument("--label-col", required=True, help="column with the class label")
    m = p.add_argument_group("model options")
    m.add_argument("--cell", choices=["rnn", "gru", "lstm"], default=d.enc.cell, help="recurrent cell (default: %(default)s)")
    m.add_argument("--embedding-dim", type=int, default=d.enc.embedding_dim, help="(default: %(default)s)")
    m.add_argument("--hidden-dim", type=int, default=d.enc.hidden_dim, help="RNN units per direction (default: %(default)s)")
    m.add_argument("--num-layers", type=int, default=d.enc.num_layers, help="stacked RNN layers (default: %(default)s)")
    _bool_flag(m, "bidirectional", d.enc.bidirectional, "read the text in both directions")
    m.add_argument("--dropout", type=float, default=d.clf.head_dropout, help="dropout between RNN layers and in the head (default: %(default)s)")
    m.add_argument("--embedding-dropout", type=float, default=d.enc.embedding_dropout, help="(default: %(default)s)")
    m.add_argument("--word-dropout", type=float, default=d.enc.word_dropout,
                   help="probability a training token is replaced by <unk> (keeps its subwords/chars) (default: %(default)s)")
    m.add_argument("--subword-buckets", type=int, default=d.feat.subword_buckets,
                   help="hashed character 3-5-gram buckets added to each word vector; 0 turns them off (default: %(default)s)")
    _bool_flag(m, "char-features", d.feat.char_features, "a char-CNN over each word's characters")
    m.add_argument("--pooling", choices=["last", "max", "mean", "last_max"], default=d.clf.pooling,
                   help="how RNN outputs become one vector: final states of both directions, max, mean (default: %(default)s)")
    m.add_argument("--vocab-level", choices=["word", "char"], default="word", help="(default: %(default)s)")
    m.add_argument("--max-vocab", type=int, default=d.vocab.max_size, help="vocabulary size cap, specials included (default: %(default)s)")
    m.add_argument("--min-freq", type=int, default=d.vocab.min_freq,
                   help="minimum training count to enter the vocabulary; rarer words are <unk> but keep their "
                        "character n-grams (default: %(default)s)")
    t = p.add_argument_group("training options")
    t.add_argument("--batch-size", type=int, default=d.tr.batch_size, help="(default: %(default)s)")
    t.add_argument("--lr", type=float, default=d.tr.lr, help="Adam learning rate (default: %(default)s)")
    t.add_argument("--patience", type=int, default=d.tr.patience, help="early-stopping patience in epochs (default: %(default)s)")
    _bool_flag(t, "class-weights", False, "weight the loss by inverse class frequency")
    c = p.add_argument_group("preprocessing options")
    _bool_flag(c, "lowercase", d.clean.lower, "lower-case the text")
    _bool_flag(c, "remove-stopwords", d.clean.remove_stopwords, "drop NLTK English stopwords")
    _bool_flag(c, "drop-parentheses", d.clean.drop_parentheses, "drop text in parentheses")
    _max_tokens_option(c, d.clean.max_tokens, "a longer text keeps its first N tokens; predictions say so in 'reason'")
    p.set_defaults(handler=run_train_classify)


def _max_tokens_option(group, default: int | None, what: str) -> None:
    """``--max-tokens N``: the length cap of training and prediction (0: no cap)."""
    group.add_argument("--max-tokens", type=_token_cap, default=default, metavar="N",
                       help=f"{what}; 0 for no cap (default: %(default)s)")


def _token_cap(value: str) -> int | None:
    """``--max-tokens``: a positive integer, or 0 for no cap (None)."""
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no cap) or a positive number of tokens, not {value}")
    return number or None


def run_train_classify(args: argparse.Namespace) -> dict:
    from flows.train_flow import train_classifier_flow

    result = train_classifier_flow(
        train=args.train, val=args.val, test=args.test, text_col=args.text_col, label_col=args.label_col,
        model_name=args.model_name, epochs=args.epochs, time_budget_minutes=args.time_budget, device=args.device,
        seed=args.seed, cell=args.cell, embedding_dim=args.embedding_dim, hidden_dim=args.hidden_dim,
        num_layers=args.num_layers, bidirectional=args.bidirectional, dropout=args.dropout,
        embedding_dropout=args.embedding_dropout, word_dropout=args.word_dropout, subword_buckets=args.subword_buckets,
        char_features=args.char_features, pooling=args.pooling, batch_size=args.batch_size, lr=args.lr,
        patience=args.patience, class_weights=args.class_weights, vocab_level=args.vocab_level,
        max_vocab=args.max_vocab, min_freq=args.min_freq, lowercase=args.lowercase,
        remove_stopwords=args.remove_stopwords, drop_parentheses=args.drop_parentheses, max_tokens=args.max_tokens,
        resume=args.resume,
        tracking_uri_override=args.tracking_uri, home=args.data_dir)
    return result


def add_tag(sub) -> None:
    from seqmodels.kinds.tag.model import TAGGER_TRAINING as _TAG_TR, TaggerConfig

    _TAG, d = TaggerConfig(), _defaults()

    p = sub.add_parser("tag", help="sequence -> one tag per token (NER, part of speech)",
                       description="Train a BiLSTM/BiGRU(-CRF) sequence tagger end to end and register it in MLflow.")
    add_common_training(p, "a tagged corpus in --format", "split by sentence", _TAG_TR.epochs)
    p.add_argument("--format", required=True, choices=["conll2003", "conllu", "gmb", "tsv"],
                   help="conll2003: 'word POS chunk NER' lines; conllu: Universal Dependencies; gmb: Kaggle GMB "
                        "ner_dataset.csv; tsv: token<TAB>tag. Sentences are separated by blank lines")
    p.add_argument("--tag-column", choices=["ner", "pos", "chunk", "upos", "xpos", "tag"],
                   help="which tags to learn (default: ner for conll2003 / gmb, upos for conllu, tag for tsv)")
    m = p.add_argument_group("model options")
    _bool_flag(m, "crf", _TAG.crf, "a CRF output layer (decoding constrained to valid BIO paths for BIO tags)")
    m.add_argument("--char-encoder", choices=["cnn", "lstm", "none"], default=_TAG.encoder.char_encoder,
                   help="per-word character encoder carrying case and shape (default: %(default)s)")
    m.add_argument("--cell", choices=["rnn", "gru", "lstm"], default=_TAG.encoder.cell, help="(default: %(default)s)")
    m.add_argument("--embedding-dim", type=int, default=_TAG.encoder.embedding_dim, help="(default: %(default)s)")
    m.add_argument("--hidden-dim", type=int, default=_TAG.encoder.hidden_dim, help="units per direction (default: %(default)s)")
    m.add_argument("--num-layers", type=int, default=_TAG.encoder.num_layers, help="stacked BiRNN layers (default: %(default)s)")
    m.add_argument("--dropout", type=float, default=_TAG.dropout, help="dropout between layers and before the tag layer (default: %(default)s)")
    m.add_argument("--embedding-dropout", type=float, default=_TAG.encoder.embedding_dropout, help="(default: %(default)s)")
    m.add_argument("--word-dropout", type=float, default=_TAG.encoder.word_dropout,
                   help="probability a training word becomes <unk> (its characters stay) (default: %(default)s)")
    m.add_argument("--subword-buckets", type=int, default=None,
                   help="hashed character 3-5-gram buckets added to each word vector; 0 turns them off "
                        "(default: 0 for BIO tag sets such as NER, 20000 otherwise, e.g. POS)")
    m.add_argument("--max-vocab", type=int, default=100_000, help="word vocabulary cap (default: %(default)s)")
    m.add_argument("--min-freq", type=int, default=1, help="minimum word count to enter the vocabulary (default: %(default)s)")
    t = p.add_argument_group("training options")
    t.add_argument("--batch-size", type=int, default=_TAG_TR.batch_size, help="sentences per batch (default: %(default)s)")
    t.add_argument("--lr", type=float, default=_TAG_TR.lr, help="Adam learning rate (default: %(default)s)")
    t.add_argument("--patience", type=int, default=_TAG_TR.patience,
                   help="early-stopping patience in epochs, on validation entity F1 (BIO) or token accuracy (default: %(default)s)")
    _max_tokens_option(p.add_argument_group("preprocessing options"), d.clean.max_tokens,
                       "a longer sentence is tagged in windows of N tokens when predicting")
    p.set_defaults(handler=run_train_tag)


def run_train_tag(args: argparse.Namespace) -> dict:
    from flows.train_flow import train_tagger_flow

    return train_tagger_flow(
        train=args.train, val=args.val, test=args.test, model_name=args.model_name, format=args.format,
        tag_column=args.tag_column, crf=args.crf, char_encoder=args.char_encoder, epochs=args.epochs,
        time_budget_minutes=args.time_budget, device=args.device, seed=args.seed, cell=args.cell,
        embedding_dim=args.embedding_dim, hidden_dim=args.hidden_dim, num_layers=args.num_layers, dropout=args.dropout,
        embedding_dropout=args.embedding_dropout, word_dropout=args.word_dropout, subword_buckets=args.subword_buckets,
        batch_size=args.batch_size, lr=args.lr, patience=args.patience, max_vocab=args.max_vocab,
        min_freq=args.min_freq, max_tokens=args.max_tokens, resume=args.resume, tracking_uri_override=args.tracking_uri,
        home=args.data_dir)


def run_demo(args: argparse.Namespace) -> dict:
    from flows.demo import run_demo as demo

    return demo(args.data_dir)


def add_predict(commands) -> None:
    p = commands.add_parser("predict", help="run the batch flow once: new inbox files -> Parquet",
                            description="Classify or tag every new file of an inbox (or one file) with a registered "
                                        "model, exactly once, into OUTPUT/date=YYYY-MM-DD/*.parquet.")
    p.add_argument("--model-name", required=True, help="registered model name")
    p.add_argument("--alias", default="champion", help="registered model alias (default: %(default)s)")
    p.add_argument("--input", required=True, metavar="DIR_OR_FILE", help="inbox directory or a single file")
    p.add_argument("--output", required=True, metavar="DIR", help="output directory (Parquet, ledger, quarantine)")
    p.add_argument("--text-col", default="text", help="text column of CSV / TSV / JSONL / Parquet files (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=512, help="texts per model forward (default: %(default)s)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="(default: %(default)s)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite in the data dir)")
    p.add_argument("--data-dir", help="seqflow data directory (default: $SEQFLOW_HOME or ./seqflow_data)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.set_defaults(handler=run_predict)


def run_predict(args: argparse.Namespace) -> dict:
    from flows.batch_flow import batch_predict_flow

    return batch_predict_flow(model_name=args.model_name, alias=args.alias, inbox=args.input, output=args.output,
                              text_col=args.text_col, batch_size=args.batch_size, device=args.device,
                              tracking_uri_override=args.tracking_uri, home=args.data_dir)


def run_serve(args: argparse.Namespace) -> dict:
    from deployments.serve import serve_all

    serve_all()
    return {"served": True}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqflow", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train, evaluate and register a model")
    kinds = train.add_subparsers(dest="kind", required=True, metavar="KIND")
    add_classify(kinds)
    add_tag(kinds)
    add_predict(commands)
    serve = commands.add_parser("serve", help="serve the nightly batch and training deployments against a Prefect server")
    serve.set_defaults(handler=run_serve)
    demo = commands.add_parser("demo", help="train on the shipped headline sample and show where everything is")
    demo.add_argument("--data-dir", help="where the demo writes (default: $SEQFLOW_HOME or ./seqflow_data)")
    demo.set_defaults(handler=run_demo)
    return parser


FLOW_COMMANDS = ("train", "predict", "demo")  # commands that run a flow once, here, and then exit


STOPPED = {  # what SIGTERM leaves behind, by command
    "train": "training stopped at its next batch and no model was registered; the checkpoints of finished "
             "epochs are kept (--resume continues from the last one)",
    "predict": "files already written are complete, the others were not written; the next run finishes the job",
    "demo": "nothing more was trained, registered or written",
}


def _runs_a_flow(argv: list[str]) -> bool:
    """Whether ``argv`` is a command that runs a flow here, once (not ``--help``)."""
    return bool(argv) and argv[0] in FLOW_COMMANDS and not {"-h", "--help"} & set(argv)


def _prefect_server(argv: list[str]):
    """A Prefect server booting in the background from the first instant of a flow command (else a no-op)."""
    from contextlib import nullcontext

    from flows.startup import BackgroundPrefectServer

    return BackgroundPrefectServer() if _runs_a_flow(argv) else nullcontext()


def _sigterm_stops(argv: list[str]):
    """For flow commands, SIGTERM stops training at its next batch and exits through the clean-up."""
    from contextlib import nullcontext

    from flows.startup import stop_on_sigterm

    return stop_on_sigterm() if _runs_a_flow(argv) else nullcontext()


def _stopped_by_sigterm(argv: list[str]) -> int:
    """Say what a SIGTERM left behind; the exit code a shell reports for SIGTERM."""
    from flows.startup import SIGTERM_EXIT_CODE

    print(f"seqflow: stopped by SIGTERM: {STOPPED.get(argv[0], 'the command did not finish')}", file=sys.stderr)
    return SIGTERM_EXIT_CODE


def _sigterm_was_received() -> bool:
    """Whether training was asked to stop in this process (an error it raised is then the SIGTERM's doing)."""
    training = sys.modules.get("seqmodels.training")
    return training is not None and training.stop_requested()


def _run_flow_command(args: argparse.Namespace, server) -> dict:
    """Load the libraries and open the MLflow store while the server boots, then run the flow."""
    from flows.startup import warm_up
    from tasks.settings import tracking_uri

    uri = tracking_uri(args.tracking_uri, args.data_dir) if args.command != "demo" else None
    warm_up(uri, args.data_dir)
    server.wait_ready()
    return args.handler(args)


def _error_message(args: argparse.Namespace, err: Exception) -> str:
    """The error for users: a locked or broken SQLite MLflow store is named, whichever step hit it."""
    if args.command not in FLOW_COMMANDS:
        return str(err)
    from tasks.settings import explain_store_error, tracking_uri

    return explain_store_error(tracking_uri(getattr(args, "tracking_uri", None), args.data_dir), err) or str(err)


def main(argv: list[str] | None = None) -> int:
    """Run one ``seqflow`` command; 0 on success, 1 on an error, 143 when stopped by SIGTERM."""
    from flows.startup import Terminated

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        with _sigterm_stops(argv):  # before the server is spawned: no SIGTERM may skip the clean-up
            return _main(argv)
    except Terminated:
        return _stopped_by_sigterm(argv)


def _main(argv: list[str]) -> int:
    """Set up logging, start the server (flow commands), run the command, print its JSON line."""
    from flows.startup import send_library_logs_to_prefect

    send_library_logs_to_prefect()  # before Prefect is imported: it reads the setting when it sets up logging
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network here, and no phoning home
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with _prefect_server(argv) as server:
        args = build_parser().parse_args(argv)
        if getattr(args, "threads", None):
            import torch

            torch.set_num_threads(args.threads)
        stdout = sys.stdout
        sys.stdout = sys.stderr  # everything but the final JSON line goes to stderr
        try:
            result = _run_flow_command(args, server) if args.command in FLOW_COMMANDS else args.handler(args)
        except Exception as err:  # a clear one-line error for users; the traceback with SEQFLOW_DEBUG=1
            if _sigterm_was_received():
                return _stopped_by_sigterm(argv)
            if os.environ.get("SEQFLOW_DEBUG"):
                raise
            print(f"seqflow: error: {_error_message(args, err)}", file=sys.stderr)
            return 1
        finally:
            sys.stdout = stdout
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
