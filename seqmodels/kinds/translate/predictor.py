"""Applying a translation model: a ``translation`` per text, batched beam search (greedy with beam 1)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from seqmodels.kinds.translate.stages import Translator


class TranslationPredictor:
    """``predict_texts`` (the batch flow) and ``predict_frame`` (the pyfunc; ``beam`` and ``replace_unk`` as
    parameters)."""

    def __init__(self, translator: Translator):
        self.translator = translator

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "auto") -> "TranslationPredictor":
        return cls(Translator.load(model_dir, device))

    def predict_texts(self, texts: list[str], batch_size: int = 64, beam: int = 5,
                      replace_unk: bool = True) -> pd.DataFrame:
        return pd.DataFrame({"translation": self.translator.translate(
            list(texts), beam=beam, batch_size=min(batch_size, 64), replace_unk=replace_unk)})

    def predict_frame(self, frame: pd.DataFrame, beam: int = 5, replace_unk: bool = True) -> pd.DataFrame:
        """``text`` column in -> ``translation`` column out."""
        if "text" not in frame.columns:
            raise ValueError(f"the input needs a 'text' column; got {list(frame.columns)}")
        return self.predict_texts(["" if t is None else str(t) for t in frame["text"].tolist()], beam=beam,
                                  replace_unk=replace_unk)
