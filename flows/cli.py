"""The ``seqflow`` command line: ``train KIND`` (``seqflow kinds`` lists them), ``predict``, ``generate``,
``translate``, ``serve``, ``demo``.

Logs go to stderr; the last line on stdout is one JSON object, so scripts can chain commands (``generate``
and ``translate`` write their text instead).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys


def add_train_kind(kinds, kind_name: str) -> None:
    """``seqflow train KIND``: one option per field of the kind's options class (type, default and help from
    the field), plus ``--config FILE``, ``--print-config`` and ``--threads``."""
    from seqmodels.kinds import get_kind
    from seqmodels.options import option_types

    kind = get_kind(kind_name)
    parser = kinds.add_parser(kind.name, help=kind.description, description=kind.options.__doc__)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for field in dataclasses.fields(kind.options):
        group = field.metadata.get("group", "options")
        target = groups.setdefault(group, parser.add_argument_group(group))
        add_option(target, field, option_types(kind.options)[field.name])
    control = groups.setdefault("run", parser.add_argument_group("run"))
    control.add_argument("--config", metavar="FILE",
                         help="read options from a YAML, JSON or TOML file (as --print-config writes); flags override it")
    control.add_argument("--print-config", action="store_true",
                         help="print the effective options as JSON and exit without training")
    control.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.set_defaults(handler=run_train, options_class=kind.options)


def add_option(group, field, annotation) -> None:
    """One ``--flag`` for an options field: bools as ``--x / --no-x``, ``Literal`` as choices."""
    from seqmodels.options import base_type, choices_of

    meta, flag = field.metadata, "--" + field.metadata.get("flag", field.name.replace("_", "-"))
    kwargs = {"help": _help(field).replace("%", "%%"), "dest": field.name, "default": argparse.SUPPRESS}
    base, _ = base_type(annotation)
    if base is not bool and not choices_of(annotation):
        kwargs["metavar"] = meta.get("metavar") or flag[2:].replace("-", "_").upper()
    if base is bool:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        return
    choices = choices_of(annotation)
    if choices:
        kwargs["choices"] = choices
    parse = meta.get("parse")
    group.add_argument(flag, type=_argument_type(parse, field.name) if parse else (str if choices else base), **kwargs)


def _argument_type(parse, name: str):
    """An argparse ``type`` from an option's ``parse`` function: its ValueError message becomes the usage error."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = name
    return convert


def _help(field) -> str:
    """An option's help text with its default (or "required")."""
    text, default = field.metadata.get("help", ""), field.default
    if "(default:" in text:
        return text
    if default is dataclasses.MISSING or field.metadata.get("cli_required"):
        return f"{text} (required)"
    if default is None:
        return text
    return f"{text} (default: {'on' if default is True else 'off' if default is False else default})"


def run_train(args: argparse.Namespace) -> dict:
    """Run the kind's training flow with the effective options; its result dict."""
    from flows.train_flow import training_flow
    from seqmodels.options import options_dict

    return training_flow(args.kind)(**options_dict(args.options))


def effective_options(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The options of ``seqflow train KIND``: class defaults < ``--config FILE`` < flags. A required option
    given nowhere, or an unknown name in the file, is a usage error."""
    from seqmodels.options import check_option_names, read_config_file, required_options

    cls = args.options_class
    names = {f.name for f in dataclasses.fields(cls)}
    values = {}
    if args.config:
        try:
            values = read_config_file(args.config)
            check_option_names(cls, values, args.config)
        except (OSError, ValueError) as err:
            parser.error(f"--config: {err}")
    values.update({name: getattr(args, name) for name in names if hasattr(args, name)})
    missing = [name for name in required_options(cls) if name not in values]
    if missing:
        flags = ", ".join("--" + _flag(cls, name) for name in missing)
        parser.error(f"train {args.kind}: the following arguments are required: {flags} (or give them in --config)")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        parser.error(f"train {args.kind}: {err}")


def _flag(cls: type, name: str) -> str:
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    return field.metadata.get("flag", name.replace("_", "-"))


def run_kinds(args: argparse.Namespace) -> dict:
    """``seqflow kinds``: the task kinds this seqflow knows, with their flows."""
    from seqmodels.kinds import get_kind, kind_names

    kinds = [get_kind(name) for name in kind_names()]
    return {"kinds": [{"name": k.name, "description": k.description, "flow": k.flow_name} for k in kinds]}


def run_demo(args: argparse.Namespace) -> dict:
    from flows.demo import run_demo as demo

    return demo(args.data_dir)


def add_predict(commands) -> None:
    p = commands.add_parser("predict", help="run the batch flow once: new inbox files -> Parquet",
                            description="Predict every new file of an inbox (or one file) with a registered "
                                        "model, exactly once, into OUTPUT/date=YYYY-MM-DD/*.parquet.")
    add_model_options(p)
    p.add_argument("--input", required=True, metavar="DIR_OR_FILE",
                   help="inbox directory or a single file; a path or an fsspec URL (memory://, s3://...)")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="output directory (Parquet, ledger, quarantine); a path or an fsspec URL")
    p.add_argument("--text-col", default="text", help="text column of CSV / TSV / JSONL / Parquet files (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=512, help="texts per model forward (default: %(default)s)")
    add_run_options(p)
    add_cluster_options(p)
    p.set_defaults(handler=run_predict)


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """``--task-runner``, ``--address``, ``--workers``, ``--shard-rows``: one flag per field of ``ClusterOptions``."""
    from typing import get_type_hints

    from flows.runners import ClusterOptions

    group = parser.add_argument_group("cluster", ClusterOptions.__doc__)
    types = get_type_hints(ClusterOptions)
    for field in dataclasses.fields(ClusterOptions):
        add_option(group, field, types[field.name])


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model-name`` and ``--alias``: the registered model a command applies."""
    parser.add_argument("--model-name", required=True, help="registered model name")
    parser.add_argument("--alias", default="champion", help="registered model alias (default: %(default)s)")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--tracking-uri``, ``--data-dir`` and ``--threads`` of a command that applies a model."""
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="(default: %(default)s)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite in the data dir)")
    parser.add_argument("--data-dir", help="seqflow data directory (default: $SEQFLOW_HOME or ./seqflow_data)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")


def registered_predictor(args: argparse.Namespace, kind):
    """The predictor of ``models:/NAME@ALIAS``, which must be a model of ``kind`` (a command's task kind)."""
    from seqmodels.predict import read_model_meta
    from tasks.batch import fetch_model
    from tasks.settings import tracking_uri

    model = fetch_model.fn(args.model_name, args.alias, tracking_uri(args.tracking_uri, args.data_dir), args.data_dir)
    task = read_model_meta(model["model_dir"])["task"]
    if task != kind.name:
        raise ValueError(f"models:/{args.model_name}@{args.alias} is a {task!r} model, not a {kind.name!r} one "
                         f"({kind.description}); train one with `seqflow train {kind.name}`")
    return kind.load_predictor(model["model_dir"], args.device)


def run_predict(args: argparse.Namespace) -> dict:
    from flows.batch_flow import batch_predict_flow

    from flows.runners import ClusterOptions

    cluster = {f.name: getattr(args, f.name) for f in dataclasses.fields(ClusterOptions) if hasattr(args, f.name)}
    return batch_predict_flow(model_name=args.model_name, alias=args.alias, inbox=args.input, output=args.output,
                              text_col=args.text_col, batch_size=args.batch_size, device=args.device,
                              tracking_uri_override=args.tracking_uri, home=args.data_dir, threads=args.threads,
                              **cluster)


def run_serve(args: argparse.Namespace) -> dict:
    from deployments.serve import serve_all

    serve_all()
    return {"served": True}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqflow", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train, evaluate and register a model")
    kinds = train.add_subparsers(dest="kind", required=True, metavar="KIND")
    from seqmodels.kinds import kind_names

    for kind_name in kind_names():
        add_train_kind(kinds, kind_name)
    commands.add_parser("kinds", help="list the task kinds this seqflow trains").set_defaults(handler=run_kinds)
    add_predict(commands)
    from flows.generate import add_generate

    add_generate(commands)
    from flows.translate import add_translate

    add_translate(commands)
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
    return bool(argv) and argv[0] in FLOW_COMMANDS and not {"-h", "--help", "--print-config"} & set(argv)


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
    """Whether a SIGTERM reached this command, or training was asked to stop in this process (an error
    raised then is the SIGTERM's doing)."""
    from flows.startup import SIGTERM_RECEIVED

    training = sys.modules.get("seqmodels.training")
    return SIGTERM_RECEIVED.is_set() or (training is not None and training.stop_requested())


def _with_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """For ``train KIND``: the effective options object (``args.options``) and where it tracks; with
    ``--print-config`` the command prints the options instead of training."""
    if args.command != "train":
        return args
    from seqmodels.options import options_dict

    args.options = effective_options(parser, args)
    args.tracking_uri, args.data_dir = args.options.tracking_uri_override, args.options.home
    if args.print_config:
        args.handler = lambda parsed: options_dict(parsed.options)
    return args


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
    except BaseException:  # e.g. a native import the SIGTERM interrupted fails in its own way
        if _sigterm_was_received():
            return _stopped_by_sigterm(argv)
        raise


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
        parser = build_parser()
        args = _with_options(parser, parser.parse_args(argv))
        if getattr(args, "threads", None):
            import torch

            torch.set_num_threads(args.threads)
        stdout = sys.stdout
        sys.stdout = sys.stderr  # everything but the final JSON line goes to stderr
        try:
            result = _run_flow_command(args, server) if _runs_a_flow(argv) else args.handler(args)
        except Exception as err:  # a clear one-line error for users; the traceback with SEQFLOW_DEBUG=1
            if _sigterm_was_received():
                return _stopped_by_sigterm(argv)
            if os.environ.get("SEQFLOW_DEBUG"):
                raise
            print(f"seqflow: error: {_error_message(args, err)}", file=sys.stderr)
            return 1
        finally:
            sys.stdout = stdout
    if result is not None:  # ``generate`` and ``translate`` write their text instead
        print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
