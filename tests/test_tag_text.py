"""Tests for seqmodels.kinds.tag.text: tokens with character spans and entities with character offsets."""

from __future__ import annotations

import pytest

from seqmodels.kinds.tag import text as tag_text
from seqmodels.kinds.tag.text import entities_from_tags, tokenize_with_spans

SENTENCES = [
    '"Hello," she said.',
    "I don't know, do you?",
    "Zürich is nice; São Paulo too!",
    "  Many   spaces\nand\n\nnewlines\there.  ",
    "It costs $5.50 (roughly) -- or e-mail U.S. offices...",
    "He said ''quoted'' and `` backticks''.",
]


@pytest.mark.parametrize("text", SENTENCES)
def test_spans_reproduce_tokens(text):
    tokens, spans = tokenize_with_spans(text)
    assert tokens and len(tokens) == len(spans)
    assert tokens == [text[start:end] for start, end in spans]
    assert all(end > start and not text[start:end].isspace() for start, end in spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # ordered, non-overlapping


def test_quotes_and_contractions_keep_surface_form():
    tokens, _ = tokenize_with_spans('"Hello," she said.')
    assert tokens == ['"', "Hello", ",", '"', "she", "said", "."]
    assert tokenize_with_spans("don't")[0] == ["do", "n't"]
    assert tokenize_with_spans("Zürich!")[0] == ["Zürich", "!"]


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t "])
def test_empty_text(text):
    assert tokenize_with_spans(text) == ([], [])


def test_fallback_when_treebank_raises(monkeypatch):
    class Failing:
        def span_tokenize(self, text):
            raise ValueError("cannot align")

    monkeypatch.setattr(tag_text, "_TREEBANK", Failing())
    text = 'She said "don\'t" in Zürich-West.'
    tokens, spans = tokenize_with_spans(text)
    assert tokens == ["She", "said", '"', "don't", '"', "in", "Zürich-West", "."]
    assert tokens == [text[start:end] for start, end in spans]


def test_entities_with_spans():
    text = "Peter  Navarro said on Sunday in Washington"
    tokens, spans = tokenize_with_spans(text)
    tags = ["B-PER", "I-PER", "O", "O", "O", "O", "B-LOC"]
    entities = entities_from_tags(tokens, tags, spans, text)
    assert entities == [
        {"type": "PER", "start": 0, "end": 2, "text": "Peter  Navarro", "char_start": 0, "char_end": 14},
        {"type": "LOC", "start": 6, "end": 7, "text": "Washington", "char_start": 33, "char_end": 43},
    ]
    for entity in entities:
        assert text[entity["char_start"]:entity["char_end"]] == entity["text"]


def test_entities_without_spans():
    tokens = ["Peter", "Navarro", "said", "on", "Sunday", "in", "Washington"]
    tags = ["B-PER", "I-PER", "O", "O", "O", "O", "B-LOC"]
    entities = entities_from_tags(tokens, tags)
    assert [(e["type"], e["start"], e["end"], e["text"]) for e in entities] == [
        ("PER", 0, 2, "Peter Navarro"), ("LOC", 6, 7, "Washington")]
    assert all(e["char_start"] is None and e["char_end"] is None for e in entities)


def test_spans_without_text_give_offsets_and_joined_tokens():
    entities = entities_from_tags(["New", "York"], ["B-LOC", "I-LOC"], [(0, 3), (4, 8)])
    assert entities == [{"type": "LOC", "start": 0, "end": 2, "text": "New York", "char_start": 0, "char_end": 8}]


def test_conlleval_i_start_and_type_change():
    assert [(e["type"], e["start"], e["end"]) for e in entities_from_tags(["x", "Ann"], ["O", "I-PER"])] == [
        ("PER", 1, 2)]
    tokens, tags = ["Ann", "Paris", "x"], ["B-PER", "I-LOC", "O"]
    assert [(e["type"], e["start"], e["end"]) for e in entities_from_tags(tokens, tags)] == [
        ("PER", 0, 1), ("LOC", 1, 2)]


@pytest.mark.parametrize("tags", [["PRON", "VERB", "NOUN"], ["O", "NOUN", "B-PER"], []])
def test_non_bio_tags_give_no_entities(tags):
    tokens = ["w"] * len(tags)
    assert entities_from_tags(tokens, tags) == []


def test_all_o_tags_give_no_entities():
    assert entities_from_tags(["a", "b"], ["O", "O"]) == []
