"""Tagging with a saved tagger: token lists or raw texts -> tokens, tags and entities."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from seqmodels.batching import BatchLoader, batch_to_device
from seqmodels.featurize import TOKENS_TYPE, Featurizer
from seqmodels.predict import load_model_parts
from seqmodels.tagging.model import RNNTagger, TaggerConfig
from seqmodels.tagging.readers import is_bio_tagset
from seqmodels.tagging.text import entities_from_tags, tokenize_with_spans
from seqmodels.vocab import LabelMap

OUTPUT_COLUMNS = ("tokens", "tags", "entities")


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

    def predict_tokens(self, token_lists: Sequence[Sequence[str]], batch_size: int = 256) -> list[list[str]]:
        """Tag names for each token list, in order; an empty list gets no tags."""
        out: list[list[str]] = [[] for _ in token_lists]
        rows = [i for i, tokens in enumerate(token_lists) if len(tokens) > 0]
        if not rows:
            return out
        data = self.featurizer.encode(None, pa.array([list(token_lists[i]) for i in rows], type=TOKENS_TYPE))
        for row, tags in zip(rows, decode_tags(self.model, data, self.names, self.device, batch_size)):
            out[row] = tags
        return out

    def predict_token_lists(self, token_lists: Sequence[Sequence[str]], batch_size: int = 256) -> pd.DataFrame:
        """``tokens``, ``tags`` and ``entities`` (token spans; no character offsets) per token list."""
        token_lists = [list(t) if t is not None else [] for t in token_lists]
        tags = self.predict_tokens(token_lists, batch_size)
        entities = [self._entities(tok, tag) for tok, tag in zip(token_lists, tags)]
        return _frame(token_lists, tags, entities)

    def predict_texts(self, texts: Sequence[str | None] | pa.Array, batch_size: int = 256) -> pd.DataFrame:
        """Raw texts are tokenised (Treebank rules, character spans kept), tagged, and their entities
        located in the text with character offsets."""
        if isinstance(texts, (pa.Array, pa.ChunkedArray)):
            texts = texts.to_pylist()
        split = [tokenize_with_spans(text) for text in texts]
        token_lists = [tokens for tokens, _ in split]
        tags = self.predict_tokens(token_lists, batch_size)
        entities = [self._entities(tok, tag, spans, text)
                    for (tok, spans), tag, text in zip(split, tags, texts)]
        return _frame(token_lists, tags, entities)

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


def _as_tokens(value) -> list[str]:
    """A ``tokens`` cell as a list of strings (lists, tuples and NumPy arrays from Parquet are accepted)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        raise ValueError("each 'tokens' value must be a list of strings, not one string; "
                         "send raw text in a 'text' column instead")
    return [str(t) for t in value]


def _frame(tokens: list, tags: list, entities: list) -> pd.DataFrame:
    return pd.DataFrame({"tokens": pd.Series(tokens, dtype=object), "tags": pd.Series(tags, dtype=object),
                         "entities": pd.Series(entities, dtype=object)})
