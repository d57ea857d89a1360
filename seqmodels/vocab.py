"""Vocabularies (word or character level) and label maps, saved as JSON and loaded back exactly."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


@dataclass(frozen=True)
class VocabConfig:
    """How a vocabulary is fitted: token level, size cap (specials included) and frequency floor."""

    level: Literal["word", "char"] = field(default="word", metadata={"help": "vocabulary of words or of characters"})
    max_size: int | None = field(default=50_000, metadata={"help": "vocabulary size cap, specials included"})
    min_freq: int = field(default=1, metadata={
        "help": "minimum training count to enter the vocabulary; rarer words are <unk> but keep their character n-grams"})

    def __post_init__(self) -> None:
        if self.level not in ("word", "char"):
            raise ValueError(f"level must be 'word' or 'char', got {self.level!r}")


class Vocabulary:
    """Token <-> id map with ``<pad>`` = 0 and ``<unk>`` = 1; encodes whole columns with pyarrow."""

    def __init__(self, tokens: Sequence[str], level: str = "word"):
        if list(tokens[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {list(tokens[:2])}")
        self.tokens = list(tokens)
        self.level = level
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self._value_set = pa.array(self.tokens, type=pa.string())

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and (self.tokens, self.level) == (other.tokens, other.level)

    @classmethod
    def fit(cls, token_lists: Iterable[Sequence[str]], config: VocabConfig = VocabConfig()) -> "Vocabulary":
        """Most frequent tokens first (ties by first appearance), at least ``min_freq`` times."""
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        keep = [t for t, c in counts.most_common() if c >= config.min_freq and t not in (PAD, UNK)]
        if config.max_size is not None:
            keep = keep[: max(config.max_size - 2, 0)]
        return cls([PAD, UNK, *keep], level=config.level)

    def encode(self, token_lists: pa.ListArray | Sequence[Sequence[str]]) -> pa.ListArray:
        """Token lists -> int32 id lists (unknown tokens -> ``<unk>``), one vectorised lookup."""
        lists = token_lists if isinstance(token_lists, (pa.ListArray, pa.LargeListArray)) else pa.array(
            list(token_lists), type=pa.list_(pa.string()))
        flat = pc.list_flatten(lists)
        ids = pc.fill_null(pc.index_in(flat, value_set=self._value_set), UNK_ID).cast(pa.int32())
        offsets = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False)
        starts = np.concatenate([[0], np.cumsum(offsets)]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(starts), ids)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def to_dict(self) -> dict:
        return {"level": self.level, "tokens": self.tokens}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        return cls(data["tokens"], level=data["level"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def char_token_lists(cleaned: Sequence[str | None]) -> list[list[str]]:
    """Character 'tokens' of cleaned strings, for a character-level vocabulary."""
    return [list(t) if t else [] for t in cleaned]


class LabelMap:
    """Class names <-> ids, in sorted order so the same labels always give the same ids."""

    def __init__(self, labels: Sequence[str]):
        self.labels = list(labels)
        self.index = {l: i for i, l in enumerate(self.labels)}

    def __len__(self) -> int:
        return len(self.labels)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelMap) and self.labels == other.labels

    @classmethod
    def fit(cls, labels: Iterable[str]) -> "LabelMap":
        return cls(sorted(set(labels)))

    def encode(self, labels: Sequence[str]) -> np.ndarray:
        """Label names -> int64 ids; an unseen label is an error naming it."""
        unknown = sorted(set(labels) - set(self.index))
        if unknown:
            raise ValueError(f"labels not seen in training: {unknown[:10]}; the model knows {self.labels}")
        return np.fromiter((self.index[l] for l in labels), dtype=np.int64, count=len(labels))

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.labels[i] for i in ids]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"labels": self.labels}, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "LabelMap":
        return cls(json.loads(Path(path).read_text(encoding="utf-8"))["labels"])
