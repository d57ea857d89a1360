"""Entity-level (conlleval) and token-level metrics for BIO / IOB2 tagging.

Entities are read from a tag sequence in one of two modes:

- ``"conlleval"`` (the default everywhere, including :func:`entity_f1`): the chunk rules of the CoNLL
  ``conlleval.pl`` script that published CoNLL-2000/2003 scores come from (also seqeval's default mode).
  A chunk starts at ``B-X``, at ``I-X`` after ``O`` or at a sentence start, and at any tag whose type differs
  from the previous tag's; it ends before ``O``, ``B-``, a type change, or the end of the sentence.
  So ``O I-PER`` is a PER entity and ``B-PER I-LOC`` is two entities.
- ``"strict"`` (like seqeval ``mode="strict", scheme=IOB2``): an entity is exactly ``B-X`` followed by
  ``I-X`` tokens; an ``I-X`` that does not continue a ``B-X``/``I-X`` of the same type belongs to no entity.

An entity counts as correct when gold and prediction have the same type and the same span. Precision is
correct / predicted, recall correct / gold (0 when the denominator is 0), F1 their harmonic mean (0 when both
are 0), all as fractions in 0..1. In conlleval's words: ``phrases`` = ``n_gold``, ``found`` = ``n_pred``,
``correct`` = ``n_correct``; its ``accuracy`` (all tokens, ``O`` included) is :func:`token_accuracy`.
Tags other than ``O``, ``B-<type>`` and ``I-<type>`` raise ValueError.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import pandas as pd

MODES = ("conlleval", "strict")
Entity = tuple[str, int, int]  # (type, start, end exclusive)


def extract_entities(tags: Sequence[str], mode: str = "conlleval") -> list[Entity]:
    """Entities of one sentence as ``(type, start, end_exclusive)`` in order (see the module doc for modes)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    parts = [_split(tag) for tag in tags]
    return _conlleval_chunks(parts) if mode == "conlleval" else _strict_chunks(parts)


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Fraction of tokens whose predicted tag equals the gold tag (``O`` tokens included, like conlleval)."""
    _check_aligned(gold, pred)
    total = sum(len(g) for g in gold)
    if total == 0:
        raise ValueError("no tokens to score")
    return sum(a == b for g, p in zip(gold, pred) for a, b in zip(g, p)) / total


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], mode: str = "conlleval") -> dict:
    """Overall and per-type entity precision / recall / F1 (fractions) with counts, plus token accuracy.

    Returns ``{"precision", "recall", "f1", "n_gold", "n_pred", "n_correct", "accuracy", "n_tokens",
    "per_type": {type: {"precision", "recall", "f1", "n_gold", "n_pred", "n_correct"}}}``.
    """
    n_gold, n_pred, n_correct = _entity_counts(gold, pred, mode)
    types = sorted(set(n_gold) | set(n_pred))
    overall = _prf(sum(n_correct.values()), sum(n_pred.values()), sum(n_gold.values()))
    return {**overall, "accuracy": token_accuracy(gold, pred), "n_tokens": sum(len(g) for g in gold),
            "per_type": {t: _prf(n_correct[t], n_pred[t], n_gold[t]) for t in types}}


def entity_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], mode: str = "conlleval") -> float:
    """Overall (micro) entity F1, conlleval rules by default -- the number published CoNLL results report."""
    return entity_scores(gold, pred, mode)["f1"]


def entity_table(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                 mode: str = "conlleval") -> pd.DataFrame:
    """Per-entity-type rows ``tag`` (the type), ``precision``, ``recall``, ``f1``, ``support`` (gold entities)."""
    per_type = entity_scores(gold, pred, mode)["per_type"]
    rows = [(t, s["precision"], s["recall"], s["f1"], s["n_gold"]) for t, s in per_type.items()]
    return pd.DataFrame(rows, columns=["tag", "precision", "recall", "f1", "support"])


def per_tag_table(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Token-level rows per tag (e.g. POS tags): ``tag``, ``precision``, ``recall``, ``f1``, ``support`` (gold count).

    Works for any tag set (no BIO needed); tags are sorted; tags only predicted have support 0.
    """
    _check_aligned(gold, pred)
    pairs = [(a, b) for g, p in zip(gold, pred) for a, b in zip(g, p)]
    n_gold = Counter(a for a, _ in pairs)
    n_pred = Counter(b for _, b in pairs)
    n_correct = Counter(a for a, b in pairs if a == b)
    rows = []
    for tag in sorted(set(n_gold) | set(n_pred)):
        s = _prf(n_correct[tag], n_pred[tag], n_gold[tag])
        rows.append((tag, s["precision"], s["recall"], s["f1"], s["n_gold"]))
    return pd.DataFrame(rows, columns=["tag", "precision", "recall", "f1", "support"])


# ----------------------------------------------------------------------------------------------- internals


def _split(tag: str) -> tuple[str, str]:
    """(``O`` | ``B`` | ``I``, type) of a BIO tag; ValueError for anything else."""
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[:2] in ("B-", "I-"):
        return tag[0], tag[2:]
    raise ValueError(f"tag {tag!r} is not O, B-<type> or I-<type>")


def _conlleval_chunks(parts: list[tuple[str, str]]) -> list[Entity]:
    """conlleval.pl's startOfChunk / endOfChunk rules restricted to B / I / O."""
    chunks: list[Entity] = []
    start, prev_prefix, prev_type = -1, "O", ""
    for i, (prefix, kind) in enumerate(parts):
        if start >= 0 and (prefix in ("B", "O") or kind != prev_type):
            chunks.append((prev_type, start, i))
            start = -1
        if prefix == "B" or (prefix == "I" and (prev_prefix == "O" or kind != prev_type)):
            start = i
        prev_prefix, prev_type = prefix, kind
    if start >= 0:
        chunks.append((prev_type, start, len(parts)))
    return chunks


def _strict_chunks(parts: list[tuple[str, str]]) -> list[Entity]:
    """IOB2 strict: B-X starts, I-X of the same type continues, anything else ends; stray I-X are ignored."""
    chunks: list[Entity] = []
    start, current = -1, ""
    for i, (prefix, kind) in enumerate(parts):
        if start >= 0 and not (prefix == "I" and kind == current):
            chunks.append((current, start, i))
            start = -1
        if prefix == "B":
            start, current = i, kind
    if start >= 0:
        chunks.append((current, start, len(parts)))
    return chunks


def _check_aligned(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    """ValueError unless gold and pred have the same number of sentences and tokens per sentence."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences but pred has {len(pred)}")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: gold has {len(g)} tags but pred has {len(p)}")


def _entity_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                   mode: str) -> tuple[Counter, Counter, Counter]:
    """Per-type counters of gold, predicted and correct (same type and span) entities."""
    _check_aligned(gold, pred)
    n_gold: Counter = Counter()
    n_pred: Counter = Counter()
    n_correct: Counter = Counter()
    for g, p in zip(gold, pred):
        gold_entities, pred_entities = extract_entities(g, mode), extract_entities(p, mode)
        n_gold.update(e[0] for e in gold_entities)
        n_pred.update(e[0] for e in pred_entities)
        n_correct.update(e[0] for e in set(gold_entities) & set(pred_entities))
    return n_gold, n_pred, n_correct


def _prf(correct: int, predicted: int, gold: int) -> dict:
    """Precision, recall, F1 (fractions, 0 on empty denominators) with the counts."""
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "n_gold": int(gold), "n_pred": int(predicted), "n_correct": int(correct)}
