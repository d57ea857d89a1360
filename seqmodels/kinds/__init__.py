"""The registry of task kinds: name -> package. A kind is one package here plus one line below.

Each package's ``KIND`` implements :class:`seqmodels.kinds.base.TaskKind` (the interface, documented
there). Importing this module loads no kind: :func:`get_kind` imports one on demand.
"""

from __future__ import annotations

import importlib

KINDS = {
    "classify": "seqmodels.kinds.classify",
    "tag": "seqmodels.kinds.tag",
    "generate": "seqmodels.kinds.generate",
    "translate": "seqmodels.kinds.translate",
}


def kind_names() -> list[str]:
    """The kinds this seqflow knows, in registry order."""
    return list(KINDS)


def get_kind(name: str):
    """The :class:`~seqmodels.kinds.base.TaskKind` registered as ``name``."""
    if name not in KINDS:
        raise ValueError(f"unknown task kind {name!r}; this seqflow knows {', '.join(map(repr, KINDS))}")
    return importlib.import_module(KINDS[name]).KIND


def load_predictor(model_dir, device: str = "auto"):
    """The predictor of whatever task kind the model directory holds (``model.json``'s ``task``)."""
    from seqmodels.predict import read_model_meta

    task = read_model_meta(model_dir)["task"]
    try:
        kind = get_kind(task)
    except ValueError as err:
        raise ValueError(f"{model_dir}: {err}") from None
    return kind.load_predictor(model_dir, device)
