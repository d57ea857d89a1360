"""Character vocabularies and contiguous streams for truncated back-propagation through time.

A text becomes ``streams`` parallel rows (the text cut into that many contiguous pieces), read ``seq_len``
characters at a time: chunk ``k`` of every row continues chunk ``k - 1``, so the model carries its state
from one to the next. Every character but the first is a target.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch

UNK = "<unk>"


class CharVocab:
    """Characters of the training text, most frequent first; index 0 is ``<unk>`` for unseen ones."""

    def __init__(self, chars: list[str]):
        self.chars = [UNK, *chars]
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def fit(cls, text: str) -> "CharVocab":
        return cls([c for c, _ in sorted(Counter(text).items(), key=lambda kv: (-kv[1], kv[0]))])

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """``(len(text),)`` int64 ids; unseen characters are 0."""
        return np.fromiter((self.index.get(c, 0) for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids) -> str:
        return "".join(self.chars[i] if i > 0 else "\ufffd" for i in ids)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"chars": self.chars[1:]}, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "CharVocab":
        return cls(json.loads(Path(path).read_text(encoding="utf-8"))["chars"])


class StreamLoader:
    """Chunks ``{"inputs", "targets": (streams, <=seq_len), "reset": bool}`` over ``ids`` in order.

    ``shift``: each epoch (``set_epoch``) starts the rows at a seeded offset below ``seq_len``, so chunk
    boundaries move between epochs; validation uses no shift and scores every character once.

    ``shard(rank, world)``: one training process's rows (streams ``rank``, ``rank + world``...), so each rank
    carries its own streams' state from chunk to chunk; every rank gets as many chunks (the rows are equally
    long), and with ``pad`` as many rows too (a few rows repeated when the streams do not divide evenly).
    """

    def __init__(self, ids: np.ndarray, streams: int, seq_len: int, shift: bool = False, seed: int = 0):
        if len(ids) < 2:
            raise ValueError("a text of at least 2 characters is needed to predict a next character")
        self.ids, self.seq_len, self.shift, self.seed = ids, seq_len, shift, seed
        self.streams = max(1, min(streams, (len(ids) - 1) // max(seq_len, 1) or 1))
        self.offset = 0
        self.rank, self.world, self.pad = 0, 1, True

    def shard(self, rank: int, world: int, pad: bool = True) -> "StreamLoader":
        """This loader's rows for rank ``rank`` of ``world``."""
        part = copy.copy(self)
        part.rank, part.world, part.pad = rank, world, pad
        return part

    def _rank_rows(self) -> np.ndarray:
        """The row numbers of this rank (every row when not sharded)."""
        rows = np.arange(self.streams)
        if self.world <= 1:
            return rows
        if self.pad:
            rows = np.resize(rows, -(-self.streams // self.world) * self.world)  # cycles through the rows
        return rows[self.rank::self.world]

    def set_epoch(self, epoch: int) -> None:
        if self.shift:
            self.offset = int(np.random.default_rng(self.seed + epoch).integers(self.seq_len))

    def _rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets ``(streams, row_len)``: the text from ``offset`` cut into ``streams`` rows."""
        ids = self.ids[self.offset:] if len(self.ids) - self.offset >= 2 * self.streams + 1 else self.ids
        row_len = (len(ids) - 1) // self.streams
        used = ids[: self.streams * row_len + 1]
        return used[:-1].reshape(self.streams, row_len), used[1:].reshape(self.streams, row_len)  # (streams, row_len)

    def __len__(self) -> int:
        if not len(self._rank_rows()):
            return 0
        row_len = (len(self.ids) - 1) // self.streams
        return max(1, -(-row_len // self.seq_len))

    def __iter__(self):
        rows = self._rank_rows()
        if not len(rows):  # an unpadded share with more ranks than rows
            return
        inputs, targets = (part[rows] for part in self._rows())
        for start in range(0, inputs.shape[1], self.seq_len):
            yield {"inputs": torch.from_numpy(np.ascontiguousarray(inputs[:, start:start + self.seq_len])),
                   "targets": torch.from_numpy(np.ascontiguousarray(targets[:, start:start + self.seq_len])),
                   "reset": torch.tensor(start == 0)}
