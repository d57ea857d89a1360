"""Raw text -> model inputs: cleaning, tokenisation and vocabulary lookup, fitted once and saved.

A :class:`Featurizer` is the part of a model that turns text into :class:`SequenceData`; the same
object serves training (from the tokens stored in Parquet) and prediction (from raw text).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from seqmodels.batching import SequenceData
from seqmodels.cleaning import CleanConfig, clean_column, tokenize_column
from seqmodels.vocab import Vocabulary, VocabConfig, char_token_lists

TOKENS_TYPE = pa.list_(pa.string())


@dataclass
class FeaturizerConfig:
    """Cleaning steps and vocabulary settings of a model's input."""

    clean: CleanConfig = field(default_factory=CleanConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)

    def __post_init__(self) -> None:
        if isinstance(self.clean, dict):
            self.clean = CleanConfig(**self.clean)
        if isinstance(self.vocab, dict):
            self.vocab = VocabConfig(**self.vocab)


def text_to_tokens(texts: Sequence[str | None] | pa.Array, clean: CleanConfig) -> tuple[pa.Array, pa.ListArray]:
    """Cleaned strings and word tokens of raw texts, both as Arrow arrays."""
    cleaned = clean_column(texts, clean)
    return cleaned, pa.array(tokenize_column(cleaned, clean), type=TOKENS_TYPE)


class Featurizer:
    """Cleaning config + vocabulary: encodes token lists or raw texts into id sequences."""

    def __init__(self, config: FeaturizerConfig, vocab: Vocabulary):
        self.config, self.vocab = config, vocab

    @classmethod
    def fit(cls, cleaned: pa.Array, tokens: pa.ListArray, config: FeaturizerConfig) -> "Featurizer":
        """Fit the vocabulary on the training split's tokens (or characters, for a char-level vocabulary)."""
        units = char_token_lists(cleaned.to_pylist()) if config.vocab.level == "char" else tokens.to_pylist()
        return cls(config, Vocabulary.fit(units, config.vocab))

    def units(self, cleaned: pa.Array, tokens: pa.ListArray) -> pa.ListArray:
        """What the vocabulary indexes: the word tokens, or the characters of the cleaned text."""
        if self.config.vocab.level == "char":
            return pa.array(char_token_lists(cleaned.to_pylist()), type=TOKENS_TYPE)
        return tokens

    def encode(self, cleaned: pa.Array, tokens: pa.ListArray, targets: np.ndarray | None = None) -> SequenceData:
        """Model inputs for already cleaned and tokenised texts (as stored in the preprocessed Parquet)."""
        return SequenceData.from_arrow(self.vocab.encode(self.units(cleaned, tokens)), targets)

    def encode_texts(self, texts: Sequence[str | None] | pa.Array, targets: np.ndarray | None = None) -> SequenceData:
        """Model inputs for raw texts: the training preprocessing, then the vocabulary."""
        cleaned, tokens = text_to_tokens(texts, self.config.clean)
        return self.encode(cleaned, tokens, targets)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "featurizer.json").write_text(json.dumps(asdict(self.config), indent=2), encoding="utf-8")
        self.vocab.save(directory / "vocab.json")

    @classmethod
    def load(cls, directory: str | Path) -> "Featurizer":
        directory = Path(directory)
        config = FeaturizerConfig(**json.loads((directory / "featurizer.json").read_text(encoding="utf-8")))
        return cls(config, Vocabulary.load(directory / "vocab.json"))
