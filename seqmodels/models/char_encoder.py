"""Character word encoders: each token's characters -> one vector, reusable by any task.

- ``cnn`` (:class:`CharCNNEncoder`): characters are embedded, convolved (zero padding, so a character's
  features never depend on how far the batch is padded) and max-pooled over the real characters only.
- ``lstm`` (:class:`CharLSTMEncoder`): a bidirectional LSTM over each token's real characters (packed, so
  padding never enters); the forward state at the last character and the backward state at the first.

Either way a padding token (no characters) gets the zero vector.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

KINDS = ("cnn", "lstm")


@dataclass
class CharEncoderConfig:
    """Character vocabulary size (set from the featurizer), embedding size, encoder kind, CNN filters and
    width, and the BiLSTM's hidden size per direction."""

    vocab_size: int = 0
    embedding_dim: int = 25
    filters: int = 50
    kernel_size: int = 3
    dropout: float = 0.0
    kind: str = "cnn"
    hidden_dim: int = 25

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.hidden_dim < 1:
            raise ValueError(f"hidden_dim must be >= 1, got {self.hidden_dim}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {self.kernel_size}")

    @property
    def output_dim(self) -> int:
        return self.filters if self.kind == "cnn" else 2 * self.hidden_dim

    def to_dict(self) -> dict:
        return asdict(self)


class _CharEncoderBase(nn.Module):
    """What both encoders share: the config, the character embedding (0 = padding) and its dropout."""

    def __init__(self, config: CharEncoderConfig):
        super().__init__()
        if config.vocab_size < 2:  # padding id 0 plus at least one character
            raise ValueError("CharEncoderConfig.vocab_size must be set from the featurizer's character vocabulary")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=0)
        self.dropout = nn.Dropout(config.dropout)


class CharCNNEncoder(_CharEncoderBase):
    """``chars (batch, max_len, max_chars)`` char ids (0 = padding) -> ``(batch, max_len, filters)``."""

    def __init__(self, config: CharEncoderConfig):
        super().__init__(config)
        self.conv = nn.Conv1d(config.embedding_dim, config.filters, config.kernel_size, padding=config.kernel_size // 2)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        batch, max_len, max_chars = chars.shape
        flat = chars.reshape(batch * max_len, max_chars)  # (batch * max_len, max_chars)
        embedded = self.dropout(self.embedding(flat))  # (batch * max_len, max_chars, char_emb)
        features = torch.relu(self.conv(embedded.transpose(1, 2)))  # (batch * max_len, filters, max_chars)
        real = (flat != 0).unsqueeze(1)  # (batch * max_len, 1, max_chars)
        # ReLU outputs are >= 0, so masking padding to 0 before the max never changes a real token's value;
        # a token with no characters (padding) gets the zero vector
        pooled = features.masked_fill(~real, 0.0).max(dim=2).values  # (batch * max_len, filters)
        return pooled.reshape(batch, max_len, self.config.filters)  # (batch, max_len, filters)


class CharLSTMEncoder(_CharEncoderBase):
    """``chars (batch, max_len, max_chars)`` left-aligned char ids (0 = padding) -> ``(batch, max_len, 2 * h)``."""

    def __init__(self, config: CharEncoderConfig):
        super().__init__(config)
        self.lstm = nn.LSTM(config.embedding_dim, config.hidden_dim, batch_first=True, bidirectional=True)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        batch, max_len, max_chars = chars.shape
        flat = chars.reshape(batch * max_len, max_chars)  # (batch * max_len, max_chars)
        lengths = (flat != 0).sum(dim=1)  # (batch * max_len,)
        rows = lengths.nonzero().squeeze(1)  # (n_real,) tokens with at least one character
        out = self.embedding.weight.new_zeros(batch * max_len, 2 * self.config.hidden_dim)  # (batch * max_len, 2 * h)
        if rows.numel():
            embedded = self.dropout(self.embedding(flat[rows]))  # (n_real, max_chars, char_emb)
            packed = pack_padded_sequence(embedded, lengths[rows].cpu(), batch_first=True, enforce_sorted=False)
            _, (hidden, _) = self.lstm(packed)  # hidden: (2 directions, n_real, h), input row order
            # forward state after the last real char, backward state after reading back to the first
            encoded = torch.cat([hidden[0], hidden[1]], dim=-1)  # (n_real, 2 * h)
            out = out.index_copy(0, rows, encoded)  # padding tokens keep the zero vector
        return out.reshape(batch, max_len, self.config.output_dim)  # (batch, max_len, 2 * h)


def build_char_encoder(config: CharEncoderConfig) -> nn.Module:
    """The character encoder named by ``config.kind``: :class:`CharCNNEncoder` or :class:`CharLSTMEncoder`."""
    return CharCNNEncoder(config) if config.kind == "cnn" else CharLSTMEncoder(config)

