"""A character-CNN word encoder: each token's characters -> one vector, reusable by any task.

Characters are embedded, convolved (zero padding, so a character's features never depend on how
far the batch is padded) and max-pooled over the real characters of each token only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class CharEncoderConfig:
    """Character vocabulary size (set from the featurizer), embedding size, CNN filters and width."""

    vocab_size: int = 0
    embedding_dim: int = 25
    filters: int = 50
    kernel_size: int = 3
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {self.kernel_size}")

    @property
    def output_dim(self) -> int:
        return self.filters

    def to_dict(self) -> dict:
        return asdict(self)


class CharCNNEncoder(nn.Module):
    """``chars (batch, max_len, max_chars)`` char ids (0 = padding) -> ``(batch, max_len, filters)``."""

    def __init__(self, config: CharEncoderConfig):
        super().__init__()
        if config.vocab_size < 2:
            raise ValueError("CharEncoderConfig.vocab_size must be set from the featurizer's character vocabulary")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=0)
        self.dropout = nn.Dropout(config.dropout)
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
