"""The task kinds seqflow trains, and the stage functions of each: one table the pipeline dispatches on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class TaskKind:
    """A task kind's model config class and stages: train on Parquet splits, evaluate a model directory,
    score it for the gate."""

    name: str
    model_config: type  # a dataclass with from_dict / to_dict
    train: Callable
    evaluate: Callable
    gate_score: Callable  # (model_dir, test_path, device, metric) -> float

    def gate_metric(self, metrics: dict) -> str:
        """The metric the promotion gate compares: entity F1 for BIO taggers, accuracy otherwise."""
        return "f1" if self.name == "tag" and "f1" in metrics else "accuracy"


def get_kind(name: str) -> TaskKind:
    """The stages of task kind ``name`` (imported on demand: classify does not load the tagging code)."""
    if name == "classify":
        from seqmodels.classify import evaluate_classifier, gate_score, train_classifier
        from seqmodels.models.classifier import ClassifierConfig

        return TaskKind("classify", ClassifierConfig, train_classifier, evaluate_classifier,
                        lambda model_dir, test_path, device="auto", metric="accuracy": gate_score(model_dir, test_path, device))
    if name == "tag":
        from seqmodels.tagging.model import TaggerConfig
        from seqmodels.tagging.stages import evaluate_tagger, gate_score_tagger, train_tagger

        return TaskKind("tag", TaggerConfig, train_tagger, evaluate_tagger, gate_score_tagger)
    raise ValueError(f"unknown task kind {name!r}; this seqflow knows 'classify' and 'tag'")
