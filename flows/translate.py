"""``seqflow translate``: translate sentences with a registered translation model, one line each on stdout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_translate(commands) -> None:
    """The ``translate`` command: model, beam, sentences from the arguments or a file."""
    from flows.cli import add_model_options, add_run_options

    p = commands.add_parser("translate", help="translate sentences with a registered model (seqflow train translate)",
                            description="Translate each TEXT (or each line of --input) with models:/NAME@ALIAS; one "
                                        "translation a line on stdout, in order.")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="sentences to translate")
    p.add_argument("--input", metavar="FILE", help="translate every line of FILE instead (a blank line stays blank)")
    add_model_options(p)
    p.add_argument("--beam", type=int, default=5, help="beam size; 1 is greedy (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per batch (default: %(default)s)")
    p.add_argument("--keep-unk", action="store_true", help="leave <unk> in the output (default: the source word "
                                                           "the model attended to most takes its place)")
    add_run_options(p)
    p.set_defaults(handler=run_translate)


def run_translate(args: argparse.Namespace, out=None) -> None:
    """Load the model and write one translation per input sentence."""
    from flows.cli import registered_predictor
    from seqmodels.kinds.translate import KIND

    out = out or sys.__stdout__
    if bool(args.texts) == bool(args.input):
        raise ValueError("give the sentences to translate as arguments or with --input FILE (one of the two)")
    if args.beam < 1:
        raise ValueError(f"--beam must be at least 1, got {args.beam}")
    texts = Path(args.input).read_text(encoding="utf-8").splitlines() if args.input else args.texts
    predictor = registered_predictor(args, KIND)
    for translation in predictor.translator.translate(texts, beam=args.beam, batch_size=args.batch_size,
                                                      replace_unk=not args.keep_unk):
        out.write(translation + "\n")
    out.flush()
