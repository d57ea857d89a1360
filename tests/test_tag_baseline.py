"""Smoke tests of the PyTorch-tutorial per-sentence tagger baseline (bench/tag_baseline.py)."""

from __future__ import annotations

import math
import random

import pytest
import torch

from bench import tag_baseline as tb

LEXICON = {"DET": ["the", "a", "every"], "NN": ["dog", "cat", "apple", "book", "car"],
           "V": ["ate", "read", "saw", "drove"]}
PATTERNS = [["DET", "NN", "V", "DET", "NN"], ["DET", "NN", "V"], ["NN", "V", "DET", "NN"]]
SMALL = tb.LessonTaggerConfig(embedding_dim=8, hidden_dim=8)


@pytest.fixture()
def corpus() -> tuple[list[list[str]], list[list[str]]]:
    """20 tiny sentences whose tags follow from their words (DET / NN / V)."""
    rng = random.Random(0)
    sentences, tags = [], []
    for i in range(20):
        pattern = PATTERNS[i % len(PATTERNS)]
        sentences.append([rng.choice(LEXICON[tag]) for tag in pattern])
        tags.append(list(pattern))
    return sentences, tags


def _model(sentences, tags, config=SMALL):
    torch.manual_seed(0)
    word_to_ix, tag_to_ix = tb.build_index(sentences), tb.build_tag_index(tags)
    model = tb.LessonTagger(config.embedding_dim, config.hidden_dim, len(word_to_ix), len(tag_to_ix),
                            num_layers=config.num_layers, bidirectional=config.bidirectional)
    return model, torch.optim.SGD(model.parameters(), lr=config.lr), word_to_ix, tag_to_ix


def test_build_index_has_unk_first():
    ix = tb.build_index([["b", "a"], ["a", "c"]])
    assert ix == {"<unk>": 0, "b": 1, "a": 2, "c": 3}


def test_run_lesson_speed_result(corpus):
    sentences, tags = corpus
    result = tb.run_lesson_speed(sentences, tags, SMALL)
    assert result["sentences"] == 20
    assert result["tokens"] == sum(map(len, sentences))
    assert result["seconds"] > 0 and result["tokens_per_s"] > 0
    assert math.isfinite(result["mean_loss"])
    assert result["config"] == {"embedding_dim": 8, "hidden_dim": 8, "num_layers": 1,
                                "bidirectional": True, "lr": 0.1}


@pytest.mark.parametrize("bidirectional,num_layers", [(True, 2), (False, 1)])
def test_model_shapes(bidirectional, num_layers):
    model = tb.LessonTagger(6, 5, vocab_size=10, tagset_size=4, num_layers=num_layers,
                            bidirectional=bidirectional)
    assert model.hidden2tag.in_features == (10 if bidirectional else 5)
    out = model(torch.tensor([1, 2, 3]))
    assert out.shape == (3, 4)
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(3))


def test_loss_goes_down(corpus):
    sentences, tags = corpus
    model, optimizer, word_to_ix, tag_to_ix = _model(sentences, tags)
    losses = [tb.train_epoch_per_sentence(model, optimizer, sentences, tags, word_to_ix, tag_to_ix)["mean_loss"]
              for _ in range(5)]
    assert losses[4] < losses[0]


def test_max_sentences_honoured(corpus):
    sentences, tags = corpus
    result = tb.run_lesson_speed(sentences, tags, SMALL, max_sentences=7)
    assert result["sentences"] == 7
    assert result["tokens"] == sum(len(s) for s in sentences[:7])


def test_time_limit_stops_early(corpus):
    sentences, tags = corpus
    result = tb.run_lesson_speed(sentences * 50, tags * 50, SMALL, time_limit_s=1e-9)
    assert result["sentences"] == 1


def test_predict_unseen_words(corpus):
    sentences, tags = corpus
    model, optimizer, word_to_ix, tag_to_ix = _model(sentences, tags)
    tb.train_epoch_per_sentence(model, optimizer, sentences, tags, word_to_ix, tag_to_ix)
    new = [["the", "zebra", "ate", "quinoa"], ["xyzzy"], []]
    assert tb.prepare_sequence(new[0], word_to_ix, unk=0).tolist() == [word_to_ix["the"], 0,
                                                                        word_to_ix["ate"], 0]
    predictions = tb.predict_per_sentence(model, new, word_to_ix)
    assert [len(p) for p in predictions] == [4, 1, 0]
    assert all(0 <= t < len(tag_to_ix) for p in predictions for t in p)
