"""Classifying raw texts with a saved classifier: label, score and reason per text."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from seqmodels.batching import BatchLoader, SequenceData, batch_to_device
from seqmodels.featurize import Featurizer
from seqmodels.kinds.classify.model import ClassifierConfig, RNNClassifier
from seqmodels.predict import load_model_parts
from seqmodels.vocab import LabelMap

OUTPUT_COLUMNS = ("label", "score", "reason")


class ClassifierPredictor:
    """Raw texts -> (label, score) with a trained :class:`RNNClassifier`."""

    task = "classify"

    def __init__(self, model: RNNClassifier, featurizer: Featurizer, labels: LabelMap, device: torch.device):
        self.model, self.featurizer, self.labels, self.device = model.eval(), featurizer, labels, device

    @classmethod
    def load(cls, directory: str | Path, device: str = "auto") -> "ClassifierPredictor":
        return cls(*load_model_parts(directory, ClassifierConfig, RNNClassifier, device))

    @torch.inference_mode()
    def predict_ids(self, data: SequenceData, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Class ids and their probabilities, in input order; batches are sorted by length."""
        label_ids = np.empty(len(data), dtype=np.int64)
        scores = np.empty(len(data), dtype=np.float32)
        loader = BatchLoader(data, batch_size=batch_size, shuffle=False, pin_memory=self.device.type == "cuda")
        for batch in loader:
            index = batch["index"].numpy()
            batch = batch_to_device(batch, self.device)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
                proba = self.model.predict_proba(batch)  # (batch, num_classes)
            best = proba.max(dim=-1)
            label_ids[index] = best.indices.cpu().numpy()
            scores[index] = best.values.cpu().numpy()
        return label_ids, scores

    def predict_texts(self, texts: Sequence[str | None] | pa.Array, batch_size: int = 512) -> pd.DataFrame:
        """``label`` (class name), ``score`` (its probability) and ``reason`` for each raw text, in order.

        A text that cleans to nothing is not sent to the model: null ``label`` and ``score``, ``reason``
        ``"empty after cleaning"``. A text cut to the length cap is predicted from its first
        ``max_tokens`` tokens, with ``reason`` ``"truncated to N tokens"``; otherwise ``reason`` is None.
        """
        tokenized = self.featurizer.tokenize(texts)
        keep = ~tokenized.empty
        labels = np.full(len(keep), None, dtype=object)
        scores = np.full(len(keep), np.nan, dtype=np.float64)
        if keep.any():
            cleaned, tokens = tokenized.cleaned, tokenized.tokens
            if not keep.all():
                mask = pa.array(keep)
                cleaned, tokens = cleaned.filter(mask), tokens.filter(mask)
            label_ids, kept_scores = self.predict_ids(self.featurizer.encode(cleaned, tokens), batch_size)
            labels[keep] = np.asarray(self.labels.labels, dtype=object)[label_ids]
            scores[keep] = kept_scores
        reasons = tokenized.reasons(self.featurizer.config.clean.max_tokens)
        return pd.DataFrame({"label": pd.Series(labels, dtype=object), "score": scores,
                             "reason": pd.Series(reasons, dtype=object)})

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The pyfunc contract: a DataFrame with a ``text`` column in, ``label`` and ``score`` out (and
        ``reason``, see :meth:`predict_texts`)."""
        if "text" not in frame.columns:
            raise ValueError(f"input needs a 'text' column; got columns {list(frame.columns)}")
        texts = frame["text"].astype(object).where(frame["text"].notna(), None).tolist()
        return self.predict_texts(texts)
