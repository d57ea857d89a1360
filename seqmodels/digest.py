"""Content digests of training data: which texts a model saw, and a digest of a data file.

A model directory keeps ``train_hashes.npy``: the sorted, distinct 64-bit hashes of its normalised
training texts (for taggers the text is the tokens joined by spaces, so the hash is the token
sequence's). The promotion gate drops test rows whose hash is in it, so no model is scored on rows it
trained on.
"""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow.parquet as pq

HASHES_FILE = "train_hashes.npy"


def normalise_text(text: str | None) -> str:
    """NFKC, case-folded, whitespace collapsed: two texts that differ only so count as the same row."""
    return " ".join(unicodedata.normalize("NFKC", text or "").casefold().split())


def text_hash(text: str | None) -> int:
    """The 64-bit BLAKE2b hash of a normalised text (any collision among 10^6 texts: p ~ 3e-8)."""
    return int.from_bytes(hashlib.blake2b(normalise_text(text).encode("utf-8"), digest_size=8).digest(), "little")


def text_hashes(texts: Iterable[str | None]) -> np.ndarray:
    """One hash per text, in input order (``uint64``)."""
    return np.fromiter((text_hash(t) for t in texts), dtype=np.uint64)


def parquet_text_hashes(path: str | Path) -> np.ndarray:
    """The hashes of a Parquet split's ``text`` column, in row order."""
    return text_hashes(pq.read_table(path, columns=["text"]).column("text").to_pylist())


def write_text_hashes(texts: Iterable[str | None], model_dir: str | Path) -> Path:
    """Save the sorted distinct hashes of ``texts`` as ``model_dir/train_hashes.npy`` (no pickle)."""
    path = Path(model_dir) / HASHES_FILE
    np.save(path, np.unique(text_hashes(texts)), allow_pickle=False)
    return path


def read_text_hashes(model_dir: str | Path) -> np.ndarray | None:
    """The training hashes of a model directory; None for one saved before seqflow recorded them."""
    path = Path(model_dir) / HASHES_FILE
    return np.load(path, allow_pickle=False) if path.exists() else None


def file_digest(path: str | Path, length: int = 16) -> str:
    """The first ``length`` hex digits of a file's SHA-256."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:length]
