"""A recurrent encoder over packed sequences, shared by every task kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqmodels.models.dropout import FastDropout
from seqmodels.models.char_encoder import CharEncoderConfig, build_char_encoder
from seqmodels.vocab import PAD_ID, UNK_ID

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
SUBWORD_POOLINGS = ("mean", "sum")


@dataclass
class EncoderConfig:
    """Embedding and recurrent layers: cell type, size, depth, direction and dropout.

    ``vocab_size``, ``subword_buckets`` and ``char_vocab_size`` are set by the caller from
    ``Featurizer.encoder_fields()``; 0 turns the subword / character-CNN parts of the embedding off.
    A token's vector is ``word embedding + subword_pooling(n-gram embeddings)``, concatenated with its
    character-encoder vector (``char_encoder``: a CNN or a BiLSTM) when ``char_vocab_size > 0``.
    """

    vocab_size: int = 0
    embedding_dim: int = field(default=100, metadata={"help": "word embedding size"})
    cell: Literal["rnn", "gru", "lstm"] = field(default="gru", metadata={"help": "recurrent cell"})
    hidden_dim: int = field(default=128, metadata={"help": "RNN units per direction"})
    num_layers: int = field(default=1, metadata={"help": "stacked RNN layers"})
    bidirectional: bool = field(default=True, metadata={"help": "read the text in both directions"})
    dropout: float = 0.0
    embedding_dropout: float = field(default=0.5, metadata={"help": "dropout on the token vectors"})
    word_dropout: float = field(default=0.4, metadata={
        "help": "probability a training token is replaced by <unk> (its subwords and characters stay)"})
    embedding_init_std: float | None = 0.1
    subword_buckets: int = 0
    subword_pooling: str = "mean"
    char_vocab_size: int = 0
    char_embedding_dim: int = 25
    char_filters: int = 50
    char_kernel_size: int = 3
    char_encoder: Literal["cnn", "lstm"] = field(default="cnn", metadata={
        "help": "per-word character encoder carrying case and shape"})
    char_hidden_dim: int = 25

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        if self.subword_pooling not in SUBWORD_POOLINGS:
            raise ValueError(f"subword_pooling must be one of {SUBWORD_POOLINGS}, got {self.subword_pooling!r}")

    @property
    def char_config(self) -> CharEncoderConfig:
        return CharEncoderConfig(vocab_size=self.char_vocab_size, embedding_dim=self.char_embedding_dim,
                                 filters=self.char_filters, kernel_size=self.char_kernel_size,
                                 kind=self.char_encoder, hidden_dim=self.char_hidden_dim)

    @property
    def input_dim(self) -> int:
        """Size of a token's vector fed to the RNN."""
        return self.embedding_dim + (self.char_config.output_dim if self.char_vocab_size else 0)

    @property
    def output_dim(self) -> int:
        return self.hidden_dim * (2 if self.bidirectional else 1)


class RecurrentEncoder(nn.Module):
    """Embedding -> RNN | GRU | LSTM over packed sequences, so padding never reaches the cell."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=0)
        self.subword_embedding = (nn.EmbeddingBag(config.subword_buckets + 1, config.embedding_dim,
                                                  mode=config.subword_pooling, padding_idx=0)
                                  if config.subword_buckets else None)
        if config.embedding_init_std is not None:  # None keeps torch's N(0, 1)
            for table in (self.embedding, self.subword_embedding):
                if table is not None:
                    nn.init.normal_(table.weight, std=config.embedding_init_std)
                    with torch.no_grad():
                        table.weight[0].zero_()  # padding row
        self.char_encoder = build_char_encoder(config.char_config) if config.char_vocab_size else None
        self.embedding_dropout = FastDropout(config.embedding_dropout)
        self.rnn = CELLS[config.cell](
            config.input_dim, config.hidden_dim, num_layers=config.num_layers, batch_first=True,
            bidirectional=config.bidirectional, dropout=config.dropout if config.num_layers > 1 else 0.0)

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Token vectors ``(batch, max_len, input_dim)`` for the padded ``batch["tokens"]`` (plus
        ``batch["subwords"]`` / ``batch["chars"]`` ``(batch, max_len, k)`` when those parts are on)."""
        tokens = batch["tokens"]
        if self.training and self.config.word_dropout > 0:
            # word dropout: a real token becomes <unk> (its subwords and characters stay, as for an unseen word)
            drop = (torch.rand(tokens.shape, device=tokens.device) < self.config.word_dropout) & (tokens != PAD_ID)
            tokens = tokens.masked_fill(drop, UNK_ID)  # (batch, max_len)
        vectors = self.embedding(tokens)  # (batch, max_len, emb)
        if self.subword_embedding is not None:
            subwords = batch["subwords"]
            bags = subwords.reshape(-1, subwords.shape[-1])  # (batch * max_len, max_ngrams)
            pooled = self.subword_embedding(bags)  # (batch * max_len, emb); an empty bag is zeros
            vectors = vectors + pooled.reshape(*tokens.shape, -1)  # (batch, max_len, emb)
        if self.char_encoder is not None:
            vectors = torch.cat([vectors, self.char_encoder(batch["chars"])], dim=-1)  # (batch, max_len, input_dim)
        return vectors

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return per-step outputs ``(batch, max_len, out_dim)`` (zeros past each length) and final
        states ``(batch, out_dim)``: the forward direction at the last real token, the backward one at
        the first."""
        return self.encode(self.embedding_dropout(self.embed(batch)), batch["lengths"])

    def encode(self, embedded: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The RNN over token vectors ``(batch, max_len, input_dim)``: outputs and final states as :meth:`forward`."""
        outputs, h_n = self._run_rnn(embedded, lengths.cpu())
        if isinstance(h_n, tuple):  # LSTM returns (h_n, c_n)
            h_n = h_n[0]
        directions = 2 if self.config.bidirectional else 1
        last_layer = h_n.view(self.config.num_layers, directions, h_n.shape[1], self.config.hidden_dim)[-1]
        # (directions, batch, hidden) -> (batch, directions * hidden)
        final = last_layer.transpose(0, 1).reshape(h_n.shape[1], directions * self.config.hidden_dim)
        return outputs, final

    def _run_rnn(self, embedded: torch.Tensor, lengths: torch.Tensor):
        """The RNN over the real steps only: packed, or directly when every row has the same length.

        Length-bucketed batches are often uniform; then there is no padding to skip and packing is
        pure overhead. Both paths give the same outputs and final states.
        """
        max_len = embedded.shape[1]
        shortest = int(lengths.min())
        if shortest == int(lengths.max()):
            outputs, h_n = self.rnn(embedded[:, :shortest].contiguous())  # (batch, len, out_dim)
            if shortest < max_len:  # zeros past the length, as pad_packed_sequence gives
                outputs = torch.nn.functional.pad(outputs, (0, 0, 0, max_len - shortest))
            return outputs, h_n
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        packed_out, h_n = self.rnn(packed)
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=max_len)
        return outputs, h_n
