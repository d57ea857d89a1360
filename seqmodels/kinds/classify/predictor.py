"""Classifying raw texts with a saved classifier: label, score and reason per text."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from seqmodels.batching import BatchLoader, SequenceData, batch_to_device
from seqmodels.featurize import Featurizer, TokenizedTexts, as_string_array
from seqmodels.kinds.classify.baseline import LinearMember
from seqmodels.kinds.classify.model import ClassifierConfig, RNNClassifier
from seqmodels.predict import load_further_members, load_model_parts
from seqmodels.vocab import LabelMap

OUTPUT_COLUMNS = ("label", "score", "reason")


class ClassifierPredictor:
    """Raw texts -> (label, score) with a trained :class:`RNNClassifier` (or several: their mean
    log-probabilities), mixed with its linear member when the model directory has one (``log p_rnn + weight *
    svm scores``; ``score`` is the mixture's probability)."""

    task = "classify"

    def __init__(self, model: RNNClassifier, featurizer: Featurizer, labels: LabelMap, device: torch.device,
                 linear: LinearMember | None = None, others: Sequence[RNNClassifier] = ()):
        self.model, self.featurizer, self.labels, self.device = model.eval(), featurizer, labels, device
        self.linear = linear
        self.members = [self.model, *(member.eval() for member in others)]

    @classmethod
    def load(cls, directory: str | Path, device: str = "auto") -> "ClassifierPredictor":
        others = load_further_members(directory, ClassifierConfig, RNNClassifier, device)
        return cls(*load_model_parts(directory, ClassifierConfig, RNNClassifier, device), LinearMember.load(directory),
                   others)

    @torch.inference_mode()
    def log_probs(self, data: SequenceData, batch_size: int = 512) -> np.ndarray:
        """The RNN members' mean class log-probabilities ``(rows, num_classes)`` in input order; batches sorted
        by length."""
        out = np.empty((len(data), len(self.labels)), dtype=np.float32)
        loader = BatchLoader(data, batch_size=batch_size, shuffle=False, pin_memory=self.device.type == "cuda")
        for batch in loader:
            index = batch["index"].numpy()
            batch = batch_to_device(batch, self.device)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
                logits = torch.stack([member(batch).float() for member in self.members])  # (members, batch, classes)
            out[index] = torch.log_softmax(logits, dim=-1).mean(0).cpu().numpy()
        return out

    def predict_ids(self, data: SequenceData, batch_size: int = 512,
                    texts: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Class ids and their probabilities, in input order; with the raw ``texts`` of these rows and a linear
        member, those of the mixture."""
        scores = self.log_probs(data, batch_size)  # (rows, num_classes)
        if self.linear is not None and self.linear.weight and texts is not None:
            scores = scores + self.linear.weight * self.linear.scores(texts)
        proba = torch.softmax(torch.from_numpy(scores).double(), dim=-1).numpy()
        label_ids = proba.argmax(-1)
        return label_ids, proba[np.arange(len(label_ids)), label_ids]

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
            raw = as_string_array(texts).filter(pa.array(keep)).to_pylist() if self.linear is not None else None
            label_ids, kept_scores = self.predict_ids(self._encode_kept(tokenized, keep), batch_size, raw)
            labels[keep] = np.asarray(self.labels.labels, dtype=object)[label_ids]
            scores[keep] = kept_scores
        reasons = tokenized.reasons(self.featurizer.config.clean.max_tokens)
        return pd.DataFrame({"label": pd.Series(labels, dtype=object), "score": scores,
                             "reason": pd.Series(reasons, dtype=object)})

    def _encode_kept(self, tokenized: TokenizedTexts, keep: np.ndarray) -> SequenceData:
        """The model input of the rows ``keep`` (those that did not clean to nothing)."""
        cleaned, tokens = tokenized.cleaned, tokenized.tokens
        if not keep.all():
            mask = pa.array(keep)
            cleaned, tokens = cleaned.filter(mask), tokens.filter(mask)
        return self.featurizer.encode(cleaned, tokens)

    def rnn_log_probs(self, texts: Sequence[str | None] | pa.Array, batch_size: int = 512) -> np.ndarray:
        """The RNN's class log-probabilities ``(len(texts), num_classes)`` of raw texts, without the linear
        member; a row of NaN for a text that cleans to nothing."""
        tokenized = self.featurizer.tokenize(texts)
        keep = ~tokenized.empty
        out = np.full((len(keep), len(self.labels)), np.nan, dtype=np.float32)
        if keep.any():
            out[keep] = self.log_probs(self._encode_kept(tokenized, keep), batch_size)
        return out

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The pyfunc contract: a DataFrame with a ``text`` column in, ``label`` and ``score`` out (and
        ``reason``, see :meth:`predict_texts`)."""
        if "text" not in frame.columns:
            raise ValueError(f"input needs a 'text' column; got columns {list(frame.columns)}")
        texts = frame["text"].astype(object).where(frame["text"].notna(), None).tolist()
        return self.predict_texts(texts)
