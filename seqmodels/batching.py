"""Length-bucketed batches of variable-length id sequences, padded in one vectorised step."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import torch

from seqmodels.distributed import rank_batch_count, rank_batches
from seqmodels.vocab import PAD_ID, UNK_ID


@dataclass
class SequenceData:
    """Sequences stored flat (CSR): ``ids[offsets[i]:offsets[i+1]]`` is sequence ``i``; ``targets`` per sequence
    (classification) or ``token_targets`` per token, aligned with ``ids`` (tagging).

    Optional per-token features are CSR over the flat tokens: ``subword_ids[subword_offsets[t]:
    subword_offsets[t+1]]`` are token ``t``'s hashed character n-gram ids (>= 1; 0 is padding), and
    ``char_ids`` / ``char_offsets`` its character ids, both with ``len(ids) + 1`` offsets.
    """

    ids: np.ndarray
    offsets: np.ndarray
    targets: np.ndarray | None = None
    subword_ids: np.ndarray | None = None
    subword_offsets: np.ndarray | None = None
    char_ids: np.ndarray | None = None
    char_offsets: np.ndarray | None = None
    token_targets: np.ndarray | None = None

    @classmethod
    def from_arrow(cls, id_lists: pa.ListArray | pa.ChunkedArray, targets: np.ndarray | None = None) -> "SequenceData":
        """From an Arrow ``list<int>`` column; an empty sequence becomes one ``<unk>`` so every length is >= 1."""
        if isinstance(id_lists, pa.ChunkedArray):
            id_lists = id_lists.combine_chunks()
        lengths = np.maximum(id_lists.value_lengths().fill_null(0).to_numpy(zero_copy_only=False), 1)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        ids = np.full(offsets[-1], UNK_ID, dtype=np.int64)
        flat = id_lists.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
        raw_lengths = id_lists.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
        nonempty = raw_lengths > 0
        ids[_positions(offsets[:-1][nonempty], raw_lengths[nonempty])] = flat
        return cls(ids=ids, offsets=offsets, targets=targets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def token_features(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The per-token CSR features present, by batch key: ``{"subwords": (ids, offsets), ...}``."""
        pairs = {"subwords": (self.subword_ids, self.subword_offsets), "chars": (self.char_ids, self.char_offsets)}
        return {key: pair for key, pair in pairs.items() if pair[0] is not None}

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def _positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat indices ``start .. start+length`` of every sequence, concatenated."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    seq_of = np.repeat(np.arange(len(lengths)), lengths)
    within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return starts[seq_of] + within


def pad_batch(data: SequenceData, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ``(batch, max_len)`` int64 tokens and ``(batch,)`` lengths for the rows in ``index``."""
    starts, lengths = data.offsets[index], data.lengths[index]
    max_len = int(lengths.max())
    grid = np.arange(max_len)
    mask = grid[None, :] < lengths[:, None]  # (batch, max_len)
    tokens = np.full((len(index), max_len), PAD_ID, dtype=np.int64)
    tokens[mask] = data.ids[(starts[:, None] + grid[None, :])[mask]]
    return torch.from_numpy(tokens), torch.from_numpy(lengths.astype(np.int64))


IGNORE_TAG = -100  # a padded position's tag: ignored by the loss and never decoded


def pad_token_targets(data: SequenceData, index: np.ndarray) -> torch.Tensor:
    """Padded ``(batch, max_len)`` int64 per-token targets; padding is :data:`IGNORE_TAG`."""
    starts, lengths = data.offsets[index], data.lengths[index]
    grid = np.arange(int(lengths.max()))
    mask = grid[None, :] < lengths[:, None]  # (batch, max_len)
    tags = np.full(mask.shape, IGNORE_TAG, dtype=np.int64)
    tags[mask] = data.token_targets[(starts[:, None] + grid[None, :])[mask]]
    return torch.from_numpy(tags)


def pad_token_features(data: SequenceData, index: np.ndarray, values: np.ndarray,
                       value_offsets: np.ndarray) -> torch.Tensor:
    """Padded ``(batch, max_len, max_values)`` int64 per-token features (0 = padding) for the rows in ``index``."""
    starts, lengths = data.offsets[index], data.lengths[index]
    max_len = int(lengths.max())
    grid = np.arange(max_len)
    mask = grid[None, :] < lengths[:, None]  # (batch, max_len)
    positions = (starts[:, None] + grid[None, :])[mask]  # (n_tokens,) flat token index of each real slot
    counts = value_offsets[positions + 1] - value_offsets[positions]  # (n_tokens,)
    width = max(int(counts.max()) if len(counts) else 0, 1)
    per_token = np.zeros((len(positions), width), dtype=np.int64)  # (n_tokens, max_values)
    inner = np.arange(width)[None, :] < counts[:, None]  # (n_tokens, max_values)
    per_token[inner] = values[_positions(value_offsets[positions], counts)]
    out = np.zeros((len(index), max_len, width), dtype=np.int64)  # (batch, max_len, max_values)
    out[mask] = per_token
    return torch.from_numpy(out)


def bucketed_batches(lengths: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0,
                     bucket_factor: int = 50, exact_length: bool = False) -> list[np.ndarray]:
    """Batches of row indices of similar length.

    Shuffled: rows are permuted, sorted by length inside pools of ``batch_size * bucket_factor``,
    cut into batches, and the batch order is shuffled (seeded). Not shuffled: sorted by length.
    ``exact_length``: every batch holds rows of one length only (random rows of that length when
    shuffled), so the RNN runs without packing: much faster on CPU for long, varied sequences.
    """
    if exact_length:
        return _same_length_batches(lengths, batch_size, shuffle, seed)
    n = len(lengths)
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    pool = batch_size * bucket_factor
    batches = []
    for start in range(0, n, pool):
        members = order[start : start + pool]
        members = members[np.argsort(lengths[members], kind="stable")]
        batches.extend(members[i : i + batch_size] for i in range(0, len(members), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def _same_length_batches(lengths: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)) if shuffle else np.arange(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]  # grouped by length, random inside a group
    batches = []
    for group in np.split(order, np.flatnonzero(np.diff(lengths[order])) + 1):
        batches.extend(group[i : i + batch_size] for i in range(0, len(group), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))] if shuffle else batches


TargetCollate = Callable[[SequenceData, np.ndarray], dict[str, torch.Tensor]]


def sequence_and_token_targets(data: SequenceData, index: np.ndarray) -> dict[str, torch.Tensor]:
    """The targets a batch carries when the caller names none: ``targets`` (one per sequence) and ``tags``
    (padded, one per token), whichever the data holds."""
    batch = {}
    if data.targets is not None:
        batch["targets"] = torch.from_numpy(data.targets[index])
    if data.token_targets is not None:
        batch["tags"] = pad_token_targets(data, index)
    return batch


class BatchLoader:
    """Iterable of ready batches (dicts of tensors) for one epoch; reshuffled per epoch by ``set_epoch``.

    Every batch holds the padded inputs (``tokens``, ``lengths``, ``index`` and the token features);
    ``targets(data, index)`` adds the model's targets (a task kind passes its own).

    ``shard(rank, world)``: one training process's share. Every rank builds the same length-bucketed batch list
    (same seed and epoch) and takes every ``world``-th batch of it (:func:`seqmodels.distributed.rank_batches`),
    so bucketing is kept, the epoch's batches are split between the ranks and every rank gets as many.
    """

    def __init__(self, data: SequenceData, batch_size: int = 64, shuffle: bool = False, seed: int = 0,
                 pin_memory: bool = False, exact_length: bool = False,
                 targets: TargetCollate = sequence_and_token_targets):
        self.data, self.batch_size, self.shuffle, self.seed, self.pin_memory = data, batch_size, shuffle, seed, pin_memory
        self.exact_length, self.targets = exact_length, targets
        self.epoch = 0
        self.rank, self.world, self.pad = 0, 1, True
        self._count: int | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard(self, rank: int, world: int, pad: bool = True) -> "BatchLoader":
        """This loader's batches for rank ``rank`` of ``world`` (``pad``: as many as every other rank, repeating
        a few batches; else disjoint shares that cover each batch once)."""
        part = copy.copy(self)
        part.rank, part.world, part.pad = rank, world, pad
        return part

    def __len__(self) -> int:
        if self.exact_length:
            if self._count is None:
                self._count = len(bucketed_batches(self.data.lengths, self.batch_size, False, exact_length=True))
            total = self._count
        else:
            total = (len(self.data) + self.batch_size - 1) // self.batch_size
        return rank_batch_count(total, self.rank, self.world, self.pad)

    def batch_indices(self) -> list[np.ndarray]:
        """The row indices of this epoch's batches (this rank's share of them)."""
        batches = bucketed_batches(self.data.lengths, self.batch_size, self.shuffle, self.seed + self.epoch,
                                   exact_length=self.exact_length)
        return rank_batches(batches, self.rank, self.world, self.pad)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for index in self.batch_indices():
            yield self.collate(index)

    def collate(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        tokens, lengths = pad_batch(self.data, index)
        batch = {"tokens": tokens, "lengths": lengths, "index": torch.from_numpy(np.asarray(index, dtype=np.int64))}
        batch.update(self.targets(self.data, index))
        for key, (values, value_offsets) in self.data.token_features().items():
            batch[key] = pad_token_features(self.data, index, values, value_offsets)
        if self.pin_memory:
            batch = {k: v.pin_memory() for k, v in batch.items()}
        return batch


def batch_to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Move a batch to ``device``; ``lengths`` stays on the CPU, where packing needs it."""
    non_blocking = device.type == "cuda"
    return {k: (v.to(device, non_blocking=non_blocking) if k != "lengths" else v) for k, v in batch.items()}
