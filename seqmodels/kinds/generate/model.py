"""A character-level RNN language model: embedding -> stacked LSTM / GRU -> linear over the vocabulary.

The model carries its hidden state from one training chunk to the next (truncated back-propagation through
time): ``step`` starts from zeros when a batch says ``reset`` and otherwise from the previous chunk's final
state, detached so gradients stop at the chunk boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from seqmodels.models.config import ModelConfig

State = Any  # Tensor (layers, streams, hidden) for a GRU; a pair of them for an LSTM; None: zeros


@dataclass
class CharLMConfig(ModelConfig):
    """Sizes of the language model; ``vocab_size`` is set from the fitted character vocabulary."""

    vocab_size: int = 0
    cell: Literal["lstm", "gru"] = field(default="lstm", metadata={"help": "recurrent cell"})
    embedding_dim: int = field(default=64, metadata={"help": "character embedding size"})
    # 2 x LSTM 512, dropout 0.25: tiny-shakespeare 1.423 validation nats/char after 30 minutes on 2 CPU cores
    # (19 epochs, ~11,500 characters/s; 1.501 after 7.5 minutes). bench/generate_budget.py
    hidden_dim: int = field(default=512, metadata={"help": "RNN units per layer"})
    num_layers: int = field(default=2, metadata={"help": "stacked RNN layers"})
    dropout: float = field(default=0.25, metadata={"help": "dropout between RNN layers and before the output"})
    tie_weights: bool = field(default=False, metadata={
        "help": "share the embedding with the output layer (a projection maps the RNN output to its size)"})


def detach_state(state: State) -> State:
    """The same state cut from the graph of the chunk that produced it."""
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class CharLM(nn.Module):
    """Next-character logits for every position of ``ids (streams, steps)``."""

    def __init__(self, config: CharLMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        rnn = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = rnn(config.embedding_dim, config.hidden_dim, config.num_layers, batch_first=True,
                       dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        self.project = nn.Linear(config.hidden_dim, config.embedding_dim) if config.tie_weights else None
        self.output = nn.Linear(config.embedding_dim if config.tie_weights else config.hidden_dim, config.vocab_size)
        if config.tie_weights:
            self.output.weight = self.embedding.weight
        self.carried: State = None  # the training / evaluation stream's state between chunks

    def forward(self, ids: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """``ids (streams, steps)`` -> logits ``(streams, steps, vocab)`` and the final state."""
        outputs, state = self.rnn(self.dropout(self.embedding(ids)), state)  # (streams, steps, hidden)
        outputs = self.dropout(outputs)
        if self.project is not None:
            outputs = self.project(outputs)  # (streams, steps, embedding_dim)
        return self.output(outputs), state

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The trainer's view: mean cross-entropy in nats per character of the chunk, and its ``count``."""
        state = None if bool(batch["reset"]) else self.carried
        logits, state = self(batch["inputs"], state)
        self.carried = detach_state(state)
        targets = batch["targets"]  # (streams, steps)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))  # over streams*steps
        nats = loss.detach() * targets.numel()  # a sum: the trainer's evaluation divides by the total count
        return {"loss": loss, "count": torch.tensor(targets.numel()), "nats_per_char": nats,
                "bits_per_char": nats / math.log(2)}
