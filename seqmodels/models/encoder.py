"""A recurrent encoder over packed sequences, shared by every task kind."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@dataclass
class EncoderConfig:
    """Embedding and recurrent layers: cell type, size, depth, direction and dropout."""

    vocab_size: int = 0
    embedding_dim: int = 100
    cell: str = "gru"
    hidden_dim: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.0
    embedding_dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")

    @property
    def output_dim(self) -> int:
        return self.hidden_dim * (2 if self.bidirectional else 1)


class RecurrentEncoder(nn.Module):
    """Embedding -> RNN | GRU | LSTM over packed sequences, so padding never reaches the cell."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=0)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.rnn = CELLS[config.cell](
            config.embedding_dim, config.hidden_dim, num_layers=config.num_layers, batch_first=True,
            bidirectional=config.bidirectional, dropout=config.dropout if config.num_layers > 1 else 0.0)

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Token vectors ``(batch, max_len, emb)`` for the padded ``batch["tokens"]``."""
        return self.embedding(batch["tokens"])

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return per-step outputs ``(batch, max_len, out_dim)`` (zeros past each length) and final
        states ``(batch, out_dim)``: the forward direction at the last real token, the backward one at
        the first."""
        tokens, lengths = batch["tokens"], batch["lengths"]
        embedded = self.embedding_dropout(self.embed(batch))  # (batch, max_len, emb)
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, h_n = self.rnn(packed)
        if isinstance(h_n, tuple):  # LSTM returns (h_n, c_n)
            h_n = h_n[0]
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=tokens.shape[1])
        directions = 2 if self.config.bidirectional else 1
        last_layer = h_n.view(self.config.num_layers, directions, h_n.shape[1], self.config.hidden_dim)[-1]
        # (directions, batch, hidden) -> (batch, directions * hidden)
        final = last_layer.transpose(0, 1).reshape(h_n.shape[1], directions * self.config.hidden_dim)
        return outputs, final
