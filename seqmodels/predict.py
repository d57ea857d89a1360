"""Saved models and prediction from raw text.

A model directory is everything needed to predict, and nothing pickled: ``model.pt`` (state_dict),
``model.json`` (task kind + model config), ``featurizer.json`` + ``vocab.json`` (preprocessing and
vocabulary), ``labels.json`` (label map); an ensemble adds its other members' weights (``member-1.pt``, ...).
The MLflow pyfunc and the nightly batch flow both predict through :func:`seqmodels.kinds.load_predictor`,
which picks the kind from ``model.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from seqmodels import __version__
from seqmodels.featurize import Featurizer
from seqmodels.training import resolve_device
from seqmodels.vocab import LabelMap

MODEL_FILES = ("model.pt", "model.json", "featurizer.json", "vocab.json", "labels.json")


def save_model(directory: str | Path, task: str, model: torch.nn.Module) -> Path:
    """Write the weights (``model.pt``, a state_dict) and ``model.json`` (task kind + the model's config) of
    any kind's model into ``directory``; the kind saves its vocabularies beside them."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, directory / "model.pt")
    meta = {"task": task, "model_config": model.config.to_dict(), "seqflow_version": __version__}
    (directory / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return directory


def load_model(directory: str | Path, config_cls, model_cls, device: str = "auto",
               member: int = 0) -> tuple[torch.nn.Module, torch.device]:
    """The model saved by :func:`save_model` (on ``device``; ``member``: an ensemble's, see
    :func:`member_weights`) and that device; weights only, no pickles."""
    directory, target = Path(directory), resolve_device(device)
    model = model_cls(config_cls.from_dict(read_model_meta(directory)["model_config"]))
    model.load_state_dict(torch.load(member_weights(directory, member), map_location="cpu", weights_only=True))
    return model.to(target), target


def member_weights(directory: str | Path, member: int) -> Path:
    """The weights file of an ensemble's ``member``: ``model.pt`` for the first (0), ``member-N.pt`` for the
    others, every one of the config in ``model.json``."""
    return Path(directory) / ("model.pt" if member == 0 else f"member-{member}.pt")


def load_further_members(directory: str | Path, config_cls, model_cls, device: str = "auto") -> list[torch.nn.Module]:
    """The directory's members after the first (``member-1.pt``, ``member-2.pt``, ... up to the first one
    missing), each loaded by :func:`load_model`."""
    members = []
    while member_weights(directory, len(members) + 1).exists():
        members.append(load_model(directory, config_cls, model_cls, device, len(members) + 1)[0])
    return members


def save_history(directory: str | Path, result, monitor: str, **extra) -> None:
    """``history.json``: the training result (per-epoch records, best epoch, stop reason), the metric
    that picked the best epoch, and any ``extra`` records."""
    history = {**result.__dict__, "monitor": monitor, **extra}
    (Path(directory) / "history.json").write_text(json.dumps(history, indent=2), encoding="utf-8")


def add_to_history(directory: str | Path, **records) -> None:
    """Add (or replace) top-level ``records`` in a model directory's ``history.json``."""
    path = Path(directory) / "history.json"
    history = {**json.loads(path.read_text(encoding="utf-8")), **records}
    path.write_text(json.dumps(history, indent=2), encoding="utf-8")


def read_history(directory: str | Path) -> dict:
    """``history.json`` of a model directory."""
    return json.loads((Path(directory) / "history.json").read_text(encoding="utf-8"))


def save_model_dir(directory: str | Path, task: str, model: torch.nn.Module, featurizer: Featurizer,
                   labels: LabelMap) -> Path:
    """Write a self-describing model directory (state_dict + config + vocabulary + label map)."""
    directory = save_model(directory, task, model)
    featurizer.save(directory)
    labels.save(directory / "labels.json")
    return directory


def read_model_meta(directory: str | Path) -> dict:
    """``model.json`` of a model directory: its task kind and model config."""
    return json.loads((Path(directory) / "model.json").read_text(encoding="utf-8"))


def load_model_parts(directory: str | Path, config_cls, model_cls, device: str = "auto"):
    """``(model on device, featurizer, label map, device)`` of a model directory; weights only, no pickles."""
    model, target = load_model(directory, config_cls, model_cls, device)
    return model, Featurizer.load(directory), LabelMap.load(Path(directory) / "labels.json"), target
