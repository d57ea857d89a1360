"""Batches of sentence pairs: length-bucketed, padded, reshuffled every epoch.

A batch is ``src (batch, src_len)``, ``src_lengths (batch,)``, ``tgt_in (batch, tgt_len)`` (``<s>`` + target)
and ``tgt_out (batch, tgt_len)`` (target + ``</s>``), padded with 0.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from seqmodels.distributed import rank_batch_count, rank_batches
from seqmodels.kinds.translate.text import END_ID, START_ID


def pad(sequences: list[list[int]]) -> torch.Tensor:
    """``(len(sequences), longest)`` int64, padded with 0 (at least one column)."""
    out = torch.zeros(len(sequences), max(1, max(len(s) for s in sequences)), dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def pair_batch(sources: list[list[int]], targets: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
    """The padded tensors of some pairs (targets None: sources only, for decoding)."""
    batch = {"src": pad(sources), "src_lengths": torch.tensor([max(len(s), 1) for s in sources])}
    if targets is not None:
        batch["tgt_in"] = pad([[START_ID, *t] for t in targets])
        batch["tgt_out"] = pad([[*t, END_ID] for t in targets])
    return batch


class PairLoader:
    """Batches of about ``batch_size`` pairs of similar source length; with ``shuffle``, a seeded new order
    of pairs within length buckets and of batches every epoch (``set_epoch``). ``shard(rank, world)``: one
    training process's share (every ``world``-th batch of the same list, as many on every rank)."""

    def __init__(self, sources: list[list[int]], targets: list[list[int]], batch_size: int, shuffle: bool = False,
                 seed: int = 0):
        self.sources, self.targets, self.batch_size = sources, targets, batch_size
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.rank, self.world, self.pad = 0, 1, True

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard(self, rank: int, world: int, pad: bool = True) -> "PairLoader":
        """This loader's batches for rank ``rank`` of ``world`` (see :func:`seqmodels.distributed.rank_batches`)."""
        part = copy.copy(self)
        part.rank, part.world, part.pad = rank, world, pad
        return part

    def __len__(self) -> int:
        return rank_batch_count(-(-len(self.sources) // self.batch_size), self.rank, self.world, self.pad)

    def _order(self) -> list[np.ndarray]:
        """Row indices of each batch: sorted by source length (ties shuffled), cut, batches shuffled."""
        lengths = np.array([len(s) for s in self.sources])
        rng = np.random.default_rng(self.seed + self.epoch)
        noise = rng.random(len(lengths)) if self.shuffle else np.arange(len(lengths))
        order = np.lexsort((noise, lengths))  # by length, ties in a random (or file) order
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return rank_batches(batches, self.rank, self.world, self.pad)

    def __iter__(self):
        for rows in self._order():
            yield pair_batch([self.sources[i] for i in rows], [self.targets[i] for i in rows])
