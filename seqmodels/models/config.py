"""The model config every kind saves in ``model.json``: a dataclass that round-trips through a dict."""

from __future__ import annotations

from dataclasses import asdict


class ModelConfig:
    """Mixin for a model config dataclass: ``to_dict`` (JSON-ready, nested configs as dicts) and
    ``from_dict`` (the class rebuilds nested configs in its ``__post_init__`` where it has any)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        return cls(**data)
