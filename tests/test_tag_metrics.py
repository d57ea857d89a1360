"""Tests for seqmodels.kinds.tag.metrics against counts derived by hand and checked with conlleval.pl.

The example below, written as conlleval input (``token gold pred``, blank line between sentences), gives::

    processed 18 tokens with 9 phrases; found: 10 phrases; correct: 5.
    accuracy:  72.22%; precision:  50.00%; recall:  55.56%; FB1:  52.63
                  LOC: precision:  66.67%; recall:  50.00%; FB1:  57.14  3
                 MISC: precision:   0.00%; recall:   0.00%; FB1:   0.00  3
                  ORG: precision:   0.00%; recall:   0.00%; FB1:   0.00  1
                  PER: precision: 100.00%; recall: 100.00%; FB1: 100.00  3

In conlleval's words "phrases" are gold entities (n_gold = 9), "found" are predicted ones (n_pred = 10) and
"correct" are exact type-and-span matches (n_correct = 5); the last per-type number is n_pred. By hand, per
sentence (gold entities | predicted entities | correct):

1. ``B-PER I-PER O B-LOC`` vs ``B-PER I-PER O I-LOC``: I-LOC after O starts a LOC entity, which ends with the
   sentence -> gold PER[0,2) LOC[3,4) | pred PER[0,2) LOC[3,4) | 2 correct.
2. ``B-ORG I-ORG I-ORG O`` vs ``B-ORG I-ORG I-MISC O``: a type change mid-chunk closes ORG and opens MISC ->
   gold ORG[0,3) | pred ORG[0,2) MISC[2,3) | 0.
3. ``O B-MISC I-MISC`` vs ``O B-MISC B-MISC``: gold MISC[1,3) at the sentence end | pred MISC[1,2) MISC[2,3) | 0.
4. ``I-PER I-PER O`` vs ``B-PER I-PER O``: a gold I-PER at the sentence start begins an entity ->
   gold PER[0,2) | pred PER[0,2) | 1.
5. ``B-LOC B-LOC`` vs ``B-LOC I-LOC``: gold LOC[0,1) LOC[1,2) | pred LOC[0,2) | 0.
6. ``B-PER I-LOC`` vs the same: two entities, PER[0,1) and LOC[1,2) | the same | 2.

Totals: n_gold 2+1+1+1+2+2 = 9, n_pred 2+2+2+1+1+2 = 10, n_correct 5; P = 5/10, R = 5/9, F1 = 10/19.
Per type (gold / pred / correct): PER 3/3/3, LOC 4/3/2, ORG 1/1/0, MISC 1/3/0. Tokens: 13 of 18 equal.

Strict IOB2 (seqeval mode="strict") drops the entities that do not start with B-: pred LOC in 1, pred MISC in 2,
gold PER in 4 and the LOC (I-LOC after B-PER) in 6 on both sides -> n_gold 7, n_pred 7, n_correct 2
(PER in 1 and 6).
"""

from __future__ import annotations

import pandas as pd
import pytest

from seqmodels.kinds.tag.metrics import (
    entity_f1,
    entity_scores,
    entity_table,
    extract_entities,
    per_tag_table,
    token_accuracy,
)

GOLD = [
    ["B-PER", "I-PER", "O", "B-LOC"],
    ["B-ORG", "I-ORG", "I-ORG", "O"],
    ["O", "B-MISC", "I-MISC"],
    ["I-PER", "I-PER", "O"],
    ["B-LOC", "B-LOC"],
    ["B-PER", "I-LOC"],
]
PRED = [
    ["B-PER", "I-PER", "O", "I-LOC"],
    ["B-ORG", "I-ORG", "I-MISC", "O"],
    ["O", "B-MISC", "B-MISC"],
    ["B-PER", "I-PER", "O"],
    ["B-LOC", "I-LOC"],
    ["B-PER", "I-LOC"],
]


def test_conlleval_overall_counts_and_scores():
    s = entity_scores(GOLD, PRED)
    assert (s["n_gold"], s["n_pred"], s["n_correct"]) == (9, 10, 5)
    assert s["precision"] == pytest.approx(0.5)
    assert s["recall"] == pytest.approx(5 / 9)
    assert s["f1"] == pytest.approx(10 / 19)
    assert round(100 * s["f1"], 2) == 52.63  # conlleval prints FB1: 52.63
    assert s["accuracy"] == pytest.approx(13 / 18) and s["n_tokens"] == 18
    assert entity_f1(GOLD, PRED) == pytest.approx(10 / 19)


def test_conlleval_per_type():
    per = entity_scores(GOLD, PRED)["per_type"]
    counts = {t: (v["n_gold"], v["n_pred"], v["n_correct"]) for t, v in per.items()}
    assert counts == {"LOC": (4, 3, 2), "MISC": (1, 3, 0), "ORG": (1, 1, 0), "PER": (3, 3, 3)}
    assert per["LOC"]["precision"] == pytest.approx(2 / 3)
    assert per["LOC"]["recall"] == pytest.approx(0.5)
    assert round(100 * per["LOC"]["f1"], 2) == 57.14
    assert per["PER"]["f1"] == 1.0
    assert per["MISC"]["f1"] == 0.0 and per["ORG"]["precision"] == 0.0


def test_strict_mode_counts():
    s = entity_scores(GOLD, PRED, mode="strict")
    assert (s["n_gold"], s["n_pred"], s["n_correct"]) == (7, 7, 2)
    assert entity_f1(GOLD, PRED, mode="strict") == pytest.approx(2 / 7)


@pytest.mark.parametrize("tags, conlleval, strict", [
    (["O", "I-PER", "I-PER"], [("PER", 1, 3)], []),  # I- after O starts an entity in conlleval only
    (["I-PER"], [("PER", 0, 1)], []),  # I- at the sentence start
    (["B-ORG", "I-ORG", "I-MISC"], [("ORG", 0, 2), ("MISC", 2, 3)], [("ORG", 0, 2)]),  # type change mid-chunk
    (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)], [("PER", 0, 1)]),
    (["O", "B-LOC", "I-LOC"], [("LOC", 1, 3)], [("LOC", 1, 3)]),  # entity at the end of the sentence
    (["B-LOC", "B-LOC", "O"], [("LOC", 0, 1), ("LOC", 1, 2)], [("LOC", 0, 1), ("LOC", 1, 2)]),
    (["B-geo-loc", "I-geo-loc"], [("geo-loc", 0, 2)], [("geo-loc", 0, 2)]),  # hyphen inside the type
    (["O", "O"], [], []),
    ([], [], []),
])
def test_extract_entities(tags, conlleval, strict):
    assert extract_entities(tags) == conlleval
    assert extract_entities(tags, mode="strict") == strict


def test_entities_do_not_cross_sentences():
    gold = [["O", "B-PER"], ["I-PER", "O"]]
    s = entity_scores(gold, gold)
    assert s["n_gold"] == 2 and s["f1"] == 1.0  # PER[1,2) in sentence 0 and PER[0,1) in sentence 1


def test_token_accuracy():
    assert token_accuracy(GOLD, PRED) == pytest.approx(13 / 18)
    assert token_accuracy([["NOUN", "VERB"]], [["NOUN", "NOUN"]]) == 0.5


def test_no_entities_gives_zero_not_nan():
    s = entity_scores([["O", "O"]], [["O", "O"]])
    assert (s["precision"], s["recall"], s["f1"], s["per_type"]) == (0.0, 0.0, 0.0, {})


def test_entity_table():
    table = entity_table(GOLD, PRED)
    assert list(table.columns) == ["tag", "precision", "recall", "f1", "support"]
    assert table["tag"].tolist() == ["LOC", "MISC", "ORG", "PER"]
    assert table["support"].tolist() == [4, 1, 1, 3]
    assert table.set_index("tag").loc["LOC", "precision"] == pytest.approx(2 / 3)


def test_per_tag_table_token_level():
    gold = [["NOUN", "VERB", "NOUN"], ["DET", "NOUN"]]
    pred = [["NOUN", "NOUN", "NOUN"], ["DET", "VERB"]]
    table = per_tag_table(gold, pred).set_index("tag")
    expected = pd.DataFrame({"precision": [1.0, 2 / 3, 0.0], "recall": [1.0, 2 / 3, 0.0],
                             "f1": [1.0, 2 / 3, 0.0], "support": [1, 3, 1]},
                            index=pd.Index(["DET", "NOUN", "VERB"], name="tag"))
    pd.testing.assert_frame_equal(table, expected)


def test_misaligned_or_malformed_input_raises():
    with pytest.raises(ValueError, match="sentences"):
        entity_scores(GOLD, PRED[:-1])
    with pytest.raises(ValueError, match="sentence 1"):
        entity_scores([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="E-PER"):
        extract_entities(["E-PER"])
    with pytest.raises(ValueError, match="mode"):
        extract_entities(["O"], mode="lenient")
