"""Sequence -> label: recurrent encoder, pooling, MLP head."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
import torch.nn.functional as F

from seqmodels.models.config import ModelConfig
from seqmodels.models.encoder import EncoderConfig, RecurrentEncoder

POOLINGS = ("last", "max", "mean", "last_max")


@dataclass
class ClassifierConfig(ModelConfig):
    """An RNN text classifier: encoder, pooling of its outputs and the MLP head."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    num_classes: int = 2
    pooling: Literal["last", "max", "mean", "last_max"] = field(default="max", metadata={
        "help": "how RNN outputs become one vector: last (final states of both directions), max or mean over "
                "time, last_max (both)"})
    head_hidden_dim: int = 100
    head_dropout: float = field(default=0.3, metadata={"help": "dropout between RNN layers and in the head"})
    bag: bool = field(default=False, metadata={
        "help": "a fastText-style path beside the RNN: the mean of the token vectors (words + character n-grams), "
                "linear into the class scores"})

    def __post_init__(self) -> None:
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig(**self.encoder)
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")


class RNNClassifier(nn.Module):
    """Embedding -> RNN | GRU | LSTM -> pooling (last / max / mean) -> Linear-ReLU-Dropout-Linear."""

    def __init__(self, config: ClassifierConfig, class_weights: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        self.encoder = RecurrentEncoder(config.encoder)
        pooled_dim = config.encoder.output_dim * (2 if config.pooling == "last_max" else 1)
        self.head = nn.Sequential(
            nn.Dropout(config.head_dropout),
            nn.Linear(pooled_dim, config.head_hidden_dim),
            nn.ReLU(),
            nn.Dropout(config.head_dropout),
            nn.Linear(config.head_hidden_dim, config.num_classes),
        )
        self.bag = nn.Linear(config.encoder.input_dim, config.num_classes) if config.bag else None
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` for a padded batch (``tokens (batch, max_len)``, ``lengths``)."""
        vectors = self.encoder.embedding_dropout(self.encoder.embed(batch))  # (batch, max_len, input_dim)
        outputs, final = self.encoder.encode(vectors, batch["lengths"])
        logits = self.head(self.pool(outputs, final, batch["lengths"]))
        if self.bag is not None:
            mask = self._mask(vectors, batch["lengths"])  # (batch, max_len, 1)
            logits = logits + self.bag((vectors * mask).sum(1) / mask.sum(1).clamp(min=1))  # mean: (batch, input_dim)
        return logits

    @staticmethod
    def _mask(steps: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(batch, max_len, 1)`` bool: the real steps of ``steps (batch, max_len, dim)``."""
        positions = torch.arange(steps.shape[1], device=steps.device)[None, :]  # (1, max_len)
        return (positions < lengths.to(steps.device)[:, None]).unsqueeze(-1)

    def pool(self, outputs: torch.Tensor, final: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pool ``outputs (batch, max_len, dim)`` over the real steps only."""
        if self.config.pooling == "last":
            return final
        mask = self._mask(outputs, lengths)  # (batch, max_len, 1)
        if self.config.pooling == "mean":
            return (outputs * mask).sum(1) / mask.sum(1).clamp(min=1)
        maxed = outputs.masked_fill(~mask, float("-inf")).max(1).values  # (batch, dim)
        return maxed if self.config.pooling == "max" else torch.cat([final, maxed], dim=-1)

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The trainer's view of the model: loss, and the correct predictions (``accuracy``, a count) among ``count``."""
        logits = self(batch)
        targets = batch["targets"]
        loss = F.cross_entropy(logits.float(), targets, weight=self.class_weights)
        return {"loss": loss, "accuracy": (logits.argmax(-1) == targets).sum(), "count": torch.tensor(len(targets))}

    @torch.no_grad()
    def predict_proba(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class probabilities ``(batch, num_classes)``."""
        return torch.softmax(self(batch).float(), dim=-1)
