"""Character n-gram TF-IDF of a fitted vocabulary, computed with numpy instead of a Python loop over n-grams.

It gives what scikit-learn's ``TfidfVectorizer(analyzer="char", ngram_range=(2, 5), sublinear_tf=True,
vocabulary=...)`` gives (lower-cased text, runs of two or more whitespace characters as one space, every
n-gram of every length counted, ``1 + log(count)`` times idf, rows L2-normalised): scikit-learn builds each
n-gram as a Python string and looks it up in a dict, 6,123 AG headlines/s on 2 cores; here the texts become one
array of code points, each n-gram a 64-bit polynomial hash (one vectorised pass per length), looked up by binary
search in the vocabulary's sorted hashes: 30,632 headlines/s (``bench/bench_linear_member.py``).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
from scipy import sparse

_PRIME = np.uint64(0x9E3779B97F4A7C15)  # odd: the multiplier of the polynomial hash (mod 2**64)
_WHITE_SPACES = re.compile(r"\s\s+")  # scikit-learn's char analyzer turns such runs into one space


def preprocess(text: str) -> str:
    """The text as scikit-learn's char analyzer sees it."""
    return _WHITE_SPACES.sub(" ", text.lower())


def _code_points(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All texts' code points ``(total,) uint64``, each text's start in it, each position's text index and
    how many characters of its text start there (itself included)."""
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)  # (total,)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    starts = np.cumsum(lengths) - lengths
    text_of = np.repeat(np.arange(len(texts)), lengths)  # (total,)
    remaining = lengths[text_of] - (np.arange(len(codes)) - starts[text_of])  # (total,)
    return codes, starts, text_of, remaining


def window_hashes(codes: np.ndarray, max_n: int) -> list[np.ndarray]:
    """``hashes[n - 1][i]``: the hash of ``codes[i:i + n]`` for n = 1..max_n (``len(codes) - n + 1`` each)."""
    hashes = [codes.copy()]
    with np.errstate(over="ignore"):
        for n in range(2, max_n + 1):
            hashes.append(hashes[-1][:-1] * _PRIME + codes[n - 1:])  # wraps mod 2**64
    return hashes


class CharNgramTfidf:
    """Sublinear TF-IDF rows of the character n-grams (lengths ``low``..``high``) of a fixed vocabulary."""

    def __init__(self, vocab: Sequence[str], idf: np.ndarray, low: int = 2, high: int = 5):
        self.low, self.high, self.size = low, high, len(vocab)
        self.idf = np.asarray(idf, dtype=np.float64)
        self.tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # n -> (sorted hashes, their feature ids)
        lengths = np.array([len(t) for t in vocab], dtype=np.int64)
        codes, starts, _, _ = _code_points(list(vocab))
        hashes = window_hashes(codes, high)
        for n in range(low, high + 1):
            ids = np.flatnonzero(lengths == n)  # the vocabulary's n-grams of length n
            found = hashes[n - 1][starts[ids]]
            order = np.argsort(found, kind="stable")
            self.tables[n] = (found[order], ids[order])

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """``(len(texts), vocabulary)`` L2-normalised sublinear TF-IDF rows of raw texts."""
        docs = [preprocess(t) for t in texts]
        codes, _, text_of, remaining = _code_points(docs)
        hashes = window_hashes(codes, self.high)
        rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for n in range(self.low, self.high + 1):
            keys, ids = self.tables[n]
            starts = np.flatnonzero(remaining[:len(hashes[n - 1])] >= n)  # windows inside one text
            if not len(keys) or not len(starts):
                continue
            window = hashes[n - 1][starts]
            at = np.minimum(np.searchsorted(keys, window), len(keys) - 1)
            hit = keys[at] == window
            rows.append(text_of[starts[hit]])
            cols.append(ids[at[hit]])
        return self._tfidf(np.concatenate(rows), np.concatenate(cols), len(docs))

    def _tfidf(self, rows: np.ndarray, cols: np.ndarray, num_texts: int) -> sparse.csr_matrix:
        """Counts of (text, feature) pairs -> ``(1 + log count) * idf``, each row scaled to unit length."""
        pairs, counts = np.unique(rows * self.size + cols, return_counts=True)
        row, col = np.divmod(pairs, self.size)
        values = (1.0 + np.log(counts)) * self.idf[col]
        norms = np.sqrt(np.bincount(row, weights=values ** 2, minlength=num_texts))
        values = values / norms[row]
        return sparse.csr_matrix((values, (row, col)), shape=(num_texts, self.size))
