"""Deterministic, stratified train / val / test splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of the data for train / val / test, and the seed of the shuffle."""

    train: float = 0.70
    val: float = 0.15
    test: float = 0.15
    seed: int = 42

    def __post_init__(self) -> None:
        total = self.train + self.val + self.test
        if min(self.train, self.val, self.test) < 0 or abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be >= 0 and sum to 1, got {self.train}/{self.val}/{self.test}")


def stratified_split(labels, config: SplitConfig = SplitConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return sorted row indices (train, val, test), stratified by ``labels``.

    Every class is shuffled with the seed and cut at the same fractions, so each part keeps the
    class proportions. The same labels and config always give the same split.
    """
    rng = np.random.default_rng(config.seed)
    labels = np.asarray(labels)
    groups = [np.flatnonzero(labels == c) for c in _ordered_unique(labels)]
    parts: list[list[np.ndarray]] = [[], [], []]
    for members in groups:
        members = rng.permutation(members)
        n_train = int(round(len(members) * config.train))
        n_val = int(round(len(members) * config.val))
        parts[0].append(members[:n_train])
        parts[1].append(members[n_train : n_train + n_val])
        parts[2].append(members[n_train + n_val :])
    return tuple(np.sort(np.concatenate(p)) for p in parts)  # type: ignore[return-value]


def split_range(n: int, config: SplitConfig = SplitConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded, unstratified split of ``n`` rows (for tagging and language-model corpora)."""
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(n)
    n_train = int(round(n * config.train))
    n_val = int(round(n * config.val))
    return (np.sort(order[:n_train]), np.sort(order[n_train : n_train + n_val]), np.sort(order[n_train + n_val :]))


def contiguous_split(n: int, config: SplitConfig = SplitConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows in order: the first ``train`` fraction, then ``val``, then ``test`` (a text stream is never
    shuffled: its validation part is the end of the text)."""
    n_train, n_val = int(round(n * config.train)), int(round(n * config.val))
    rows = np.arange(n)
    return rows[:n_train], rows[n_train:n_train + n_val], rows[n_train + n_val:]


def grouped_split(groups, config: SplitConfig = SplitConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded split in which all rows of a group (e.g. one source sentence with several translations)
    fall in the same part: no group of the test rows occurs in training. Fractions count groups."""
    codes, uniques = pd.factorize(pd.Series(groups), sort=True)
    train_groups, val_groups, _ = split_range(len(uniques), config)
    part = np.full(len(uniques), 2)
    part[train_groups], part[val_groups] = 0, 1
    row_part = part[codes]  # (rows,) the part of each row's group
    return tuple(np.flatnonzero(row_part == k) for k in range(3))


def _ordered_unique(labels: np.ndarray) -> list:
    """Unique labels in sorted order (stable across runs, unlike set iteration)."""
    return sorted(set(labels.tolist()))
