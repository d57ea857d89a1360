"""Tagging with a saved tagger: token lists or raw texts -> tokens, tags and entities."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from seqmodels.batching import BatchLoader, batch_to_device
from seqmodels.featurize import EMPTY_AFTER_CLEANING, TOKENS_TYPE, Featurizer
from seqmodels.predict import load_model_parts
from seqmodels.kinds.tag.model import RNNTagger, TaggerConfig
from seqmodels.kinds.tag.readers import is_bio_tagset
from seqmodels.kinds.tag.text import entities_from_tags, tokenize_with_spans
from seqmodels.vocab import LabelMap

OUTPUT_COLUMNS = ("tokens", "tags", "entities", "reason")


class TaggerPredictor:
    """Pre-tokenised sentences or raw texts -> one tag per token (+ entities for BIO tag sets)."""

    task = "tag"

    def __init__(self, model: RNNTagger, featurizer: Featurizer, labels: LabelMap, device: torch.device):
        self.model, self.featurizer, self.labels, self.device = model.eval(), featurizer, labels, device
        self.names = np.asarray(labels.labels, dtype=object)
        self.bio = is_bio_tagset(labels.labels)

    @classmethod
    def load(cls, directory: str | Path, device: str = "auto") -> "TaggerPredictor":
        return cls(*load_model_parts(directory, TaggerConfig, RNNTagger, device))

    @property
    def max_tokens(self) -> int | None:
        """The window length: longer sentences are tagged in consecutive windows of this many tokens."""
        return self.featurizer.config.clean.max_tokens

    def predict_tokens(self, token_lists: Sequence[Sequence[str]], batch_size: int = 256) -> list[list[str]]:
        """Tag names for each token list, in order; an empty list gets no tags."""
        return self._tag(token_lists, batch_size)[0]

    def _tag(self, token_lists: Sequence[Sequence[str]], batch_size: int) -> tuple[list[list[str]], np.ndarray]:
        """Tags per token list and which lists were tagged in several windows of ``max_tokens``."""
        out: list[list[str]] = [[] for _ in token_lists]
        windowed = np.zeros(len(token_lists), dtype=bool)
        rows = [i for i, tokens in enumerate(token_lists) if len(tokens) > 0]
        if not rows:
            return out, windowed
        windows, owner = split_windows(pa.array([list(token_lists[i]) for i in rows], type=TOKENS_TYPE),
                                       self.max_tokens)
        window_tags = decode_tags(self.model, self.featurizer.encode(None, windows), self.names, self.device,
                                  batch_size)
        for position, tags in zip(owner, window_tags):  # windows of a row are consecutive, in order
            out[rows[position]].extend(tags)
        windowed[np.asarray(rows)] = np.bincount(owner, minlength=len(rows)) > 1
        return out, windowed

    def _reasons(self, token_lists: list, windowed: np.ndarray) -> list[str | None]:
        """Per row: no tokens -> ``empty after cleaning``; several windows -> ``tagged in windows of N tokens``."""
        return [EMPTY_AFTER_CLEANING if not tokens else f"tagged in windows of {self.max_tokens} tokens" if many
                else None for tokens, many in zip(token_lists, windowed)]

    def predict_token_lists(self, token_lists: Sequence[Sequence[str]], batch_size: int = 256) -> pd.DataFrame:
        """``tokens``, ``tags``, ``entities`` (token spans; no character offsets) and ``reason`` per token list."""
        token_lists = [list(t) if t is not None else [] for t in token_lists]
        tags, windowed = self._tag(token_lists, batch_size)
        entities = [self._entities(tok, tag) for tok, tag in zip(token_lists, tags)]
        return _frame(token_lists, tags, entities, self._reasons(token_lists, windowed))

    def predict_texts(self, texts: Sequence[str | None] | pa.Array, batch_size: int = 256) -> pd.DataFrame:
        """Raw texts are tokenised (Treebank rules, character spans kept), tagged (one tag per token; in
        windows of ``max_tokens`` when longer), and their entities located with character offsets."""
        if isinstance(texts, (pa.Array, pa.ChunkedArray)):
            texts = texts.to_pylist()
        split = [tokenize_with_spans(text) for text in texts]
        token_lists = [tokens for tokens, _ in split]
        tags, windowed = self._tag(token_lists, batch_size)
        entities = [self._entities(tok, tag, spans, text)
                    for (tok, spans), tag, text in zip(split, tags, texts)]
        return _frame(token_lists, tags, entities, self._reasons(token_lists, windowed))

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The pyfunc contract: a ``tokens`` column (lists of strings) or a ``text`` column in;
        ``tokens``, ``tags`` and ``entities`` out, one row per input row."""
        if "tokens" in frame.columns:
            return self.predict_token_lists([_as_tokens(v) for v in frame["tokens"]])
        if "text" in frame.columns:
            texts = frame["text"].astype(object).where(frame["text"].notna(), None).tolist()
            return self.predict_texts(texts)
        raise ValueError(f"input needs a 'tokens' column (lists of strings) or a 'text' column; "
                         f"got columns {list(frame.columns)}")

    def _entities(self, tokens, tags, spans=None, text=None) -> list[dict] | None:
        return entities_from_tags(tokens, tags, spans, text) if self.bio else None


@torch.inference_mode()
def decode_tags(model: RNNTagger, data, names: np.ndarray, device: torch.device,
                batch_size: int = 256) -> list[list[str]]:
    """Tag names of every sequence of ``data``, in order (one-length batches, autocast on CUDA)."""
    out: list[list[str]] = [[] for _ in range(len(data))]
    loader = BatchLoader(data, batch_size=batch_size, pin_memory=device.type == "cuda", exact_length=True)
    for batch in loader:
        index = batch["index"].tolist()
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            paths = model.decode(batch_to_device(batch, device))
        for position, path in zip(index, paths):
            out[position] = names[path].tolist()
    return out


def window_offsets(offsets: np.ndarray, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """CSR offsets that cut every sequence longer than ``size`` into consecutive windows of at most ``size``
    (the flat values stay as they are), and the number of windows of each sequence."""
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    counts = np.ones(len(lengths), dtype=np.int64) if size is None else np.maximum(1, -(-lengths // size))
    if (counts == 1).all():
        return offsets, counts
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # window index in its sequence
    starts = np.repeat(offsets[:-1], counts) + size * within
    return np.append(starts, offsets[-1]), counts


def split_windows(lists: pa.ListArray, size: int | None) -> tuple[pa.ListArray, np.ndarray]:
    """Token lists cut into windows of at most ``size`` tokens, and the row each window came from."""
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    offsets = lists.offsets.to_numpy()
    windows, counts = window_offsets(offsets - offsets[0], size)
    owner = np.repeat(np.arange(len(lists)), counts)
    return pa.ListArray.from_arrays(pa.array(windows, type=pa.int32()), lists.flatten()), owner


def _as_tokens(value) -> list[str]:
    """A ``tokens`` cell as a list of strings (lists, tuples and NumPy arrays from Parquet are accepted)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        raise ValueError("each 'tokens' value must be a list of strings, not one string; "
                         "send raw text in a 'text' column instead")
    return [str(t) for t in value]


def _frame(tokens: list, tags: list, entities: list, reasons: list) -> pd.DataFrame:
    return pd.DataFrame({"tokens": pd.Series(tokens, dtype=object), "tags": pd.Series(tags, dtype=object),
                         "entities": pd.Series(entities, dtype=object), "reason": pd.Series(reasons, dtype=object)})
