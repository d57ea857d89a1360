"""Length cap and per-row reasons: long texts are truncated to ``max_tokens`` (and cut to a bounded number of
characters before any regex), taggers tag long sentences in windows, empty-after-cleaning texts get no label,
and preprocessing counts and reports both."""

import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from seqmodels.cleaning import CleanConfig
from seqmodels.featurize import TOKENS_TYPE, Featurizer, FeaturizerConfig, text_to_tokens
from seqmodels.kinds.classify.model import ClassifierConfig, RNNClassifier
from seqmodels.models.encoder import EncoderConfig
from seqmodels.kinds.classify.predictor import ClassifierPredictor
from seqmodels.vocab import LabelMap

TRAIN = ["oil prices rise", "stocks fall on wall street", "team wins the final", "coach leaves the club"]


def classifier_predictor(clean: CleanConfig = CleanConfig()) -> ClassifierPredictor:
    """An untrained (seeded) classifier: enough to check what reaches the model and what comes back."""
    config = FeaturizerConfig(clean=clean)
    featurizer = Featurizer.fit(*text_to_tokens(TRAIN, config.clean), config)
    torch.manual_seed(0)
    encoder = EncoderConfig(embedding_dim=8, hidden_dim=8, **featurizer.encoder_fields())
    model = RNNClassifier(ClassifierConfig(encoder=encoder, num_classes=2, head_hidden_dim=8))
    return ClassifierPredictor(model, featurizer, LabelMap(["business", "sports"]), torch.device("cpu"))


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def test_text_longer_than_max_tokens_keeps_its_first_max_tokens_tokens():
    cleaned, tokens = text_to_tokens([words(50), "oil prices"], CleanConfig(max_tokens=10))
    assert tokens.to_pylist() == [words(10).split(), ["oil", "prices"]]
    assert cleaned.to_pylist() == [words(10), "oil prices"]  # what a character-level vocabulary sees


def test_a_huge_line_is_cut_to_a_bounded_number_of_characters_before_cleaning():
    clean = CleanConfig(max_tokens=10)
    _, tokens = text_to_tokens(["x" * 3_000_000], clean)  # one 3 MB "word"
    assert [len(t) for t in tokens.to_pylist()[0]] == [clean.max_chars] and clean.max_chars < 3_000_000


def test_default_cap_is_documented_and_saved_with_the_model(tmp_path):
    assert CleanConfig().max_tokens == 400
    config = FeaturizerConfig(clean=CleanConfig(max_tokens=7))
    Featurizer.fit(*text_to_tokens(TRAIN, config.clean), config).save(tmp_path)
    assert Featurizer.load(tmp_path).config.clean.max_tokens == 7


def test_very_long_text_is_predicted_as_its_truncated_start_with_a_reason():
    predictor = classifier_predictor(CleanConfig(max_tokens=20))
    long_text = "oil prices rise " * 300_000  # 4.8 MB, 900k tokens
    out = predictor.predict_texts([long_text, "oil prices rise " * 10, "team wins"])
    assert out["reason"].tolist() == ["truncated to 20 tokens", "truncated to 20 tokens", None]
    assert out["label"].notna().all()
    assert out["score"].iloc[0] == pytest.approx(out["score"].iloc[1])  # the same first 20 tokens


def test_text_that_cleans_to_nothing_gets_no_label_and_is_not_sent_to_the_model(monkeypatch):
    predictor = classifier_predictor()
    sent = []
    predict_ids = predictor.predict_ids
    monkeypatch.setattr(predictor, "predict_ids", lambda data, batch_size, texts=None: sent.append(len(data)) or predict_ids(data, batch_size, texts))
    out = predictor.predict_texts(["oil prices", "the and of ???", None, "Team wins"])
    assert out["reason"].tolist() == [None, "empty after cleaning", "empty after cleaning", None]
    assert out["label"].isna().tolist() == [False, True, True, False] and out["score"].isna().tolist() == [False, True, True, False]
    assert sent == [2]
    only_empty = predictor.predict_texts(["!!!"])
    assert only_empty["label"].tolist() == [None] and sent == [2]
    assert list(predictor.predict_frame(pd.DataFrame({"text": ["oil"]})).columns) == ["label", "score", "reason"]


def write_raw(path, texts: list[str]) -> None:
    labels = ["a", "b"] * (len(texts) // 2) + ["a"] * (len(texts) % 2)
    pd.DataFrame({"row": range(len(texts)), "text": texts, "label": labels,
                  "source": "/data/train.csv"}).to_parquet(path)


def test_preprocessing_counts_truncated_and_drops_a_few_empty_texts_with_a_warning(tmp_path, caplog):
    from seqmodels.preprocess import preprocess_counts, preprocess_table

    texts = [f"oil prices {i}" for i in range(38)] + ["???", words(30)]
    write_raw(tmp_path / "raw.parquet", texts)
    with caplog.at_level(logging.INFO, logger="seqmodels"):
        out = preprocess_table(tmp_path / "raw.parquet", tmp_path / "clean.parquet", CleanConfig(max_tokens=10))
    table = pq.read_table(out)
    assert table.num_rows == 39 and "???" not in table.column("text").to_pylist()
    assert preprocess_counts(out) == {"rows_read": 40, "empty_after_cleaning": 1, "truncated": 1, "max_tokens": 10}
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "/data/train.csv" in warning and "line 40" in warning and "1 of 40" in warning
    assert any("1 truncated to 10 tokens" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_training_data_where_many_texts_clean_to_nothing_is_an_error(tmp_path):
    from seqmodels.preprocess import preprocess_table

    write_raw(tmp_path / "raw.parquet", ["oil prices"] * 18 + ["the of", "!!"])  # 10 % empty
    with pytest.raises(ValueError, match=r"/data/train.csv.*2 of 20 texts \(10\.0%\) are empty after cleaning"):
        preprocess_table(tmp_path / "raw.parquet", tmp_path / "clean.parquet", CleanConfig())


TAGS = ["O", "B-PER", "I-PER"]


def tagger_predictor(max_tokens: int):
    from seqmodels.kinds.tag.model import RNNTagger, TaggerConfig
    from seqmodels.kinds.tag.predictor import TaggerPredictor

    config = FeaturizerConfig(clean=CleanConfig(max_tokens=max_tokens), word_norm="lower_digits", subword_buckets=0)
    featurizer = Featurizer.fit(None, pa.array([["Peter", "visited", "Paris"]], type=TOKENS_TYPE), config)
    torch.manual_seed(0)
    base = TaggerConfig()
    encoder = replace(base.encoder, embedding_dim=8, hidden_dim=6, **featurizer.encoder_fields())
    model = RNNTagger(replace(base, encoder=encoder, tag_names=TAGS))
    return TaggerPredictor(model, featurizer, LabelMap(TAGS), torch.device("cpu"))


def test_tagger_gives_one_tag_per_token_of_a_sentence_longer_than_max_tokens():
    predictor = tagger_predictor(max_tokens=4)
    sentence = "Peter visited Paris and then Peter visited Berlin on Monday".split()  # 10 tokens: windows 4 + 4 + 2
    out = predictor.predict_texts([" ".join(sentence), "Peter visited Paris"])
    assert [len(t) for t in out["tags"]] == [10, 3]
    windows = predictor.predict_tokens([sentence[0:4], sentence[4:8], sentence[8:10]])
    assert out["tags"][0] == windows[0] + windows[1] + windows[2]
    assert out["reason"].tolist() == ["tagged in windows of 4 tokens", None]


def test_tagger_training_splits_long_sentences_into_windows_with_aligned_tags(tmp_path):
    from seqmodels.kinds.tag.stages import encode_tagged

    predictor = tagger_predictor(max_tokens=4)
    tokens = [["Peter"] + ["x"] * 9, ["Paris"]]
    tags = [["B-PER"] + ["O"] * 9, ["O"]]
    pq.write_table(pa.table({"tokens": pa.array(tokens, TOKENS_TYPE), "tags": pa.array(tags, TOKENS_TYPE)}),
                   tmp_path / "t.parquet")
    data = encode_tagged(tmp_path / "t.parquet", predictor.featurizer, predictor.labels)
    assert data.lengths.tolist() == [4, 4, 2, 1]
    assert predictor.labels.decode(data.token_targets) == tags[0] + tags[1]
