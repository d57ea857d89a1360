"""The task kinds seqflow trains, and the stage functions of each: one table the pipeline dispatches on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

LOWER_IS_BETTER = frozenset({"loss", "perplexity"})  # gate metrics where a smaller value wins


@dataclass(frozen=True)
class TaskKind:
    """A task kind's model config class and stages: train on Parquet splits, evaluate a model directory,
    score it for the gate."""

    name: str
    model_config: type  # a dataclass with from_dict / to_dict
    train: Callable
    evaluate: Callable
    gate_score: Callable  # (model_dir, test_path, device, metric) -> float
    baseline_score: Callable  # (test_path, metric) -> float: the majority-class predictor's score
    load_predictor: Callable  # (model_dir, device) -> predictor with predict_texts / predict_frame

    def gate_metric(self, metrics: dict) -> str:
        """The metric the promotion gate compares: entity F1 for BIO taggers, accuracy otherwise."""
        return "f1" if self.name == "tag" and "f1" in metrics else "accuracy"


def get_kind(name: str) -> TaskKind:
    """The stages of task kind ``name`` (imported on demand: classify does not load the tagging code)."""
    if name == "classify":
        from seqmodels.kinds.classify.stages import evaluate_classifier, gate_score, train_classifier
        from seqmodels.kinds.classify.model import ClassifierConfig
        from seqmodels.kinds.classify.predictor import ClassifierPredictor

        return TaskKind("classify", ClassifierConfig, train_classifier, evaluate_classifier,
                        lambda model_dir, test_path, device="auto", metric="accuracy": gate_score(model_dir, test_path, device),
                        majority_label_score, ClassifierPredictor.load)
    if name == "tag":
        from seqmodels.kinds.tag.model import TaggerConfig
        from seqmodels.kinds.tag.predictor import TaggerPredictor
        from seqmodels.kinds.tag.stages import evaluate_tagger, gate_score_tagger, train_tagger

        return TaskKind("tag", TaggerConfig, train_tagger, evaluate_tagger, gate_score_tagger, majority_tag_score,
                        TaggerPredictor.load)
    raise ValueError(f"unknown task kind {name!r}; this seqflow knows 'classify' and 'tag'")


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of gate metric ``metric`` is the better model."""
    return metric not in LOWER_IS_BETTER


def majority_label_score(test_path, metric: str = "accuracy") -> float:
    """Accuracy of always predicting the most frequent label of these rows (the best constant guess)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    labels = pq.read_table(test_path, columns=["label"]).column("label")
    counts = pc.value_counts(labels.combine_chunks()).field("counts").to_pylist()
    return max(counts) / len(labels) if len(labels) else 0.0


def majority_tag_score(test_path, metric: str = "f1") -> float:
    """``metric`` of tagging every token with the most frequent tag of these rows (entity F1 0 when it is O)."""
    from collections import Counter

    import pyarrow.parquet as pq

    from seqmodels.kinds.tag.stages import tag_scores

    gold = pq.read_table(test_path, columns=["tags"]).column("tags").to_pylist()
    counts = Counter(tag for row in gold for tag in row)
    if not counts:
        return 0.0
    majority = counts.most_common(1)[0][0]
    return float(tag_scores(gold, [[majority] * len(row) for row in gold])[metric])
