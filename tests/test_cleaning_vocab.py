"""Cleaning steps, the shipped stopword list, and vocabulary / label-map round trips."""

import os

import pyarrow as pa

from seqmodels.cleaning import CleanConfig, clean_and_tokenize, english_stopwords
from seqmodels.featurize import Featurizer, FeaturizerConfig, text_to_tokens
from seqmodels.vocab import PAD, UNK, LabelMap, Vocabulary, VocabConfig


def test_lesson_cleaning_steps():
    lesson = CleanConfig(drop_parentheses=True)
    cleaned, tokens = clean_and_tokenize(["Wall St. Bears Claw Back Into the Black (Reuters)", None], lesson)
    assert cleaned == ["wall st bears claw back black", None]
    assert tokens[0] == ["wall", "st", "bears", "claw", "back", "black"]


def test_default_cleaning_keeps_the_source_in_parentheses():
    cleaned, _ = clean_and_tokenize(["Wall St. Bears Claw Back Into the Black (Reuters)"])
    assert cleaned == ["wall st bears claw back black reuters"]


def test_steps_can_be_switched_off():
    config = CleanConfig(lower=False, remove_stopwords=False, drop_parentheses=False)
    cleaned, _ = clean_and_tokenize(["The Oil (AP) -- up!"], config)
    assert cleaned == ["The Oil AP up"]


def test_stopword_list_ships_with_the_package():
    words = english_stopwords()
    assert {"the", "and", "don't", "wouldn't"} <= set(words) and len(words) >= 179


def test_vocabulary_specials_size_and_frequency():
    vocab = Vocabulary.fit([["a", "b", "a"], ["c", "a", "b"]], VocabConfig(max_size=4, min_freq=2))
    assert vocab.tokens == [PAD, UNK, "a", "b"]
    ids = vocab.encode([["a", "zzz"], []]).to_pylist()
    assert ids == [[2, 1], []]


def test_vocabulary_and_labels_round_trip(tmp_path):
    vocab = Vocabulary.fit([["x", "y"], ["y", "ü"]], VocabConfig(level="word"))
    vocab.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == vocab
    labels = LabelMap.fit(["b", "a", "b"])
    labels.save(tmp_path / "l.json")
    assert LabelMap.load(tmp_path / "l.json").labels == ["a", "b"]


def test_featurizer_round_trip_encodes_identically(tmp_path):
    texts = ["Stocks rally as oil falls", "Team wins the final", "Oil up"]
    for level in ("word", "char"):
        config = FeaturizerConfig(vocab=VocabConfig(level=level))
        featurizer = Featurizer.fit(*text_to_tokens(texts, config.clean), config)
        featurizer.save(tmp_path / level)
        loaded = Featurizer.load(tmp_path / level)
        a, b = featurizer.encode_texts(texts + ["unseen words"]), loaded.encode_texts(texts + ["unseen words"])
        assert (a.ids == b.ids).all() and (a.offsets == b.offsets).all()


def test_empty_cleaned_text_becomes_one_unknown_token():
    config = FeaturizerConfig()
    featurizer = Featurizer.fit(*text_to_tokens(["oil prices"], config.clean), config)
    data = featurizer.encode_texts(["the and of", "oil"])
    assert data.lengths.tolist() == [1, 1] and data.ids.tolist() == [1, 2]


def test_nltk_stopword_corpus_is_found_where_nltk_looks(tmp_path, monkeypatch):
    from seqmodels.cleaning import _nltk_stopwords_installed

    monkeypatch.setenv("NLTK_DATA", str(tmp_path / "a") + os.pathsep + str(tmp_path / "b"))
    before = _nltk_stopwords_installed()  # True only where NLTK data is installed system-wide
    (tmp_path / "b" / "corpora").mkdir(parents=True)
    (tmp_path / "b" / "corpora" / "stopwords.zip").write_bytes(b"")
    assert _nltk_stopwords_installed()
    if not before:
        monkeypatch.setenv("NLTK_DATA", str(tmp_path / "a"))
        assert not _nltk_stopwords_installed()


def _machine_stopwords(monkeypatch, extra: tuple[str, ...]) -> None:
    """Make this process's stopword list (NLTK's corpus or the shipped copy) the shipped one plus ``extra``."""
    import seqmodels.cleaning as cleaning

    words = cleaning.english_stopwords() + extra
    monkeypatch.setattr(cleaning, "english_stopwords", lambda: words)


def test_stopword_list_of_training_is_saved_and_used_when_predicting(tmp_path, monkeypatch):
    config = FeaturizerConfig()
    with monkeypatch.context() as training_machine:  # training: a machine whose list also holds "oil"
        _machine_stopwords(training_machine, ("oil",))
        featurizer = Featurizer.fit(*text_to_tokens(["oil prices rise", "prices fall"], config.clean), config)
        featurizer.save(tmp_path)
    serving = Featurizer.load(tmp_path)  # serving: this machine's list, without "oil"
    cleaned, _ = text_to_tokens(["oil prices"], serving.config.clean)
    assert cleaned.to_pylist() == ["prices"]
    assert "oil" in serving.config.clean.stopwords


def test_model_saved_without_a_stopword_list_uses_the_shipped_list(tmp_path, monkeypatch):
    import json

    config = FeaturizerConfig()
    Featurizer.fit(*text_to_tokens(["oil prices rise"], config.clean), config).save(tmp_path)
    saved = json.loads((tmp_path / "featurizer.json").read_text(encoding="utf-8"))
    saved["clean"].pop("stopwords", None)  # a model directory written before the list was saved
    (tmp_path / "featurizer.json").write_text(json.dumps(saved), encoding="utf-8")
    _machine_stopwords(monkeypatch, ("oil",))  # an NLTK corpus on this machine that differs from the shipped copy
    loaded = Featurizer.load(tmp_path)
    cleaned, _ = text_to_tokens(["the oil prices"], loaded.config.clean)
    assert cleaned.to_pylist() == ["oil prices"]
