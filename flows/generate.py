"""``seqflow generate``: sample text from a registered language model, streaming it to stdout.

Characters are written as they are sampled (a terminal sees them appear); logs go to stderr. Sampling
options are :class:`~seqmodels.kinds.generate.sampling.SamplingConfig`'s fields, declared there once.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path


def add_generate(commands) -> None:
    """The ``generate`` command: model, prefix, and one option per sampling field."""
    from flows.cli import add_model_options, add_option, add_run_options
    from seqmodels.kinds.generate.sampling import SamplingConfig
    from seqmodels.options import option_types

    p = commands.add_parser("generate", help="sample text from a registered language model (seqflow train generate)",
                            description="Sample text from models:/NAME@ALIAS, streamed to stdout as it is sampled.")
    add_model_options(p)
    prefix = p.add_mutually_exclusive_group()
    prefix.add_argument("--prefix", default="", help="text to continue (default: the start of a line)")
    prefix.add_argument("--prefix-file", metavar="FILE", help="read the prefix from FILE")
    p.add_argument("--num-samples", type=int, default=1, help="samples of the same prefix, drawn as one batch "
                                                                "(default: %(default)s)")
    sampling = p.add_argument_group("sampling")
    for field in dataclasses.fields(SamplingConfig):
        add_option(sampling, field, option_types(SamplingConfig)[field.name])
    add_run_options(p)
    p.set_defaults(handler=run_generate)


def sampling_options(args: argparse.Namespace):
    """The :class:`SamplingConfig` of the sampling flags given (its defaults for the rest)."""
    from seqmodels.kinds.generate.sampling import SamplingConfig

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(SamplingConfig) if hasattr(args, f.name)}
    return SamplingConfig(**given)


def run_generate(args: argparse.Namespace, out=None) -> None:
    """Load the model, write the prefix, then each sampled character as it comes; samples end with a newline."""
    from flows.cli import registered_predictor
    from seqmodels.kinds.generate import KIND

    out = out or sys.__stdout__
    if args.num_samples < 1:
        raise ValueError(f"--num-samples must be at least 1, got {args.num_samples}")
    config = sampling_options(args)
    prefix = Path(args.prefix_file).read_text(encoding="utf-8") if args.prefix_file else args.prefix
    predictor = registered_predictor(args, KIND)
    if args.num_samples == 1:  # stream: a terminal sees the characters appear
        out.write(prefix)
        predictor.generate([prefix], config, on_text=lambda _, piece: (out.write(piece), out.flush()))
        out.write("\n")
    else:
        for sample in predictor.generate([prefix] * args.num_samples, config):
            out.write(sample + "\n\n")
    out.flush()
