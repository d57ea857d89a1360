"""Applying a character language model: continuations of prefixes (the pyfunc) and how surprising each
line of text is to the model, in nats per character (the nightly batch flow)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from seqmodels.kinds.generate.sampling import SamplingConfig, generate
from seqmodels.kinds.generate.stages import load_model_dir

# pyfunc inference parameters and their defaults; "" / -1 stand for "none" (MLflow params need a type)
PREDICT_PARAMS = {"num_chars": 200, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0,
                  "sampler": "softmax", "stop": "", "seed": -1}


def sampling_config(**params) -> SamplingConfig:
    """A :class:`SamplingConfig` from pyfunc / CLI parameters (``stop=""`` and ``seed=-1`` mean none)."""
    known = {f.name for f in fields(SamplingConfig)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown generation parameters {unknown}; known: {sorted(known)}")
    values = {**params, "stop": params.get("stop") or None}
    values["seed"] = None if values.get("seed") in (None, -1) else int(values["seed"])
    return SamplingConfig(**values)


class GeneratorPredictor:
    """A saved language model: ``generate(prefixes)``, ``predict_frame`` (pyfunc), ``predict_texts`` (batch)."""

    def __init__(self, model, vocab, device: torch.device):
        self.model, self.vocab, self.device = model, vocab, device

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "auto") -> "GeneratorPredictor":
        return cls(*load_model_dir(model_dir, device))

    def generate(self, prefixes: list[str], config: SamplingConfig, on_text=None) -> list[str]:
        """Each prefix followed by its continuation; ``on_text(stream, piece)`` sees characters as sampled.
        An empty prefix starts from a newline (the model's start of a line)."""
        ids = [self.vocab.encode(prefix or "\n").tolist() for prefix in prefixes]
        out = generate(self.model, ids, config, decode=self.vocab.decode, on_text=on_text, device=self.device)
        return [prefix + self.vocab.decode(tokens) for prefix, tokens in zip(prefixes, out)]

    def predict_frame(self, frame: pd.DataFrame, **params) -> pd.DataFrame:
        """``prefix`` column in -> ``text`` column out (prefix + continuation)."""
        if "prefix" not in frame.columns:
            raise ValueError(f"the input needs a 'prefix' column; got {list(frame.columns)}")
        config = sampling_config(**{**PREDICT_PARAMS, **params})
        prefixes = ["" if p is None else str(p) for p in frame["prefix"].tolist()]
        return pd.DataFrame({"text": self.generate(prefixes, config)})

    @torch.no_grad()
    def predict_texts(self, texts: list[str], batch_size: int = 256) -> pd.DataFrame:
        """``nats_per_char`` of every text: each line read after a newline, its characters and its own
        newline predicted (how surprising the line is to the model)."""
        scores: list[float] = []
        for start in range(0, len(texts), batch_size):
            scores += self._line_nats(texts[start:start + batch_size])
        return pd.DataFrame({"nats_per_char": scores})

    def _line_nats(self, texts: list[str]) -> list[float]:
        """Nats per character of each text of one batch (padded; padding masked out of the loss)."""
        encoded = [self.vocab.encode(f"\n{text}\n") for text in texts]
        width = max(len(e) for e in encoded)
        ids = torch.zeros(len(encoded), width, dtype=torch.long)  # (texts, width)
        for row, e in enumerate(encoded):
            ids[row, :len(e)] = torch.from_numpy(e)
        lengths = torch.tensor([len(e) - 1 for e in encoded])  # targets per text
        logits, _ = self.model(ids[:, :-1].to(self.device))  # (texts, width-1, vocab)
        nats = F.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:].to(self.device), reduction="none")  # (texts, width-1)
        mask = torch.arange(width - 1)[None, :] < lengths[:, None]  # (texts, width-1)
        return ((nats.cpu() * mask).sum(1) / lengths).tolist()
