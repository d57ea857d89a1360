"""Text in every script survives cleaning: letters, marks and digits are kept, English stopwords are only
removed as whole words, and a character-level model learns from Chinese."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from seqmodels.cleaning import CleanConfig, clean_and_tokenize
from seqmodels.featurize import Featurizer, FeaturizerConfig, text_to_tokens


@pytest.mark.parametrize("text, tokens", [
    ("Москва: рынок растёт", ["москва", "рынок", "растёт"]),
    ("Café in Zürich", ["café", "zürich"]),
    ("北京是中国的首都。", ["北京是中国的首都"]),
    ("हिन्दी भाषा, २०२४", ["हिन्दी", "भाषा", "२०२४"]),  # vowel signs and virama (marks) stay in the word
    ("ภาษาไทย ดีมาก", ["ภาษาไทย", "ดีมาก"]),
    ("Ελληνικά 3 λέξεις", ["ελληνικά", "3", "λέξεις"]),
])
def test_letters_marks_and_digits_of_every_script_are_kept(text, tokens):
    assert clean_and_tokenize([text])[1] == [tokens]


def test_a_combining_accent_stays_in_its_word_and_matches_the_composed_spelling():
    decomposed = "Cafe\u0301 in Zu\u0308rich"
    _, tokens = clean_and_tokenize([decomposed, "Café in Zürich"])
    assert tokens[0] == tokens[1] == ["café", "zürich"]


def test_english_stopwords_are_not_cut_out_of_words_with_accents():
    cleaned, _ = clean_and_tokenize(["a naïve idea, très bien", "the Ås and the Ölen"])
    assert cleaned == ["naïve idea très bien", "ås ölen"]


def test_english_ascii_text_cleans_exactly_as_before():
    texts = ["Wall St. Bears Claw Back Into the Black (Reuters)", "Don't panic -- it's only 3.5% (AP)!",
             "What is it ?", "snake_case words_and the end_", "<b>HTML</b> tags; a=b > c"]
    for config in (CleanConfig(), CleanConfig(drop_parentheses=True), CleanConfig(lower=False)):
        legacy = CleanConfig(**{**config.to_dict(), "keep_chars": "ascii"})
        assert clean_and_tokenize(texts, config) == clean_and_tokenize(texts, legacy)
    assert clean_and_tokenize(texts)[0][:3] == ["wall st bears claw back black reuters", "panic 3 5 ap", ""]


def test_model_saved_before_unicode_cleaning_keeps_its_ascii_cleaning(tmp_path):
    config = FeaturizerConfig()
    Featurizer.fit(*text_to_tokens(["oil prices"], config.clean), config).save(tmp_path)
    saved = json.loads((tmp_path / "featurizer.json").read_text(encoding="utf-8"))
    saved["clean"].pop("keep_chars")  # a model directory written before this option existed
    (tmp_path / "featurizer.json").write_text(json.dumps(saved), encoding="utf-8")
    loaded = Featurizer.load(tmp_path)
    assert text_to_tokens(["Café oil"], loaded.config.clean)[0].to_pylist() == ["caf oil"]


SPORT = ["足球", "比赛", "球队", "进球", "冠军"]
MONEY = ["股票", "市场", "银行", "利润", "投资"]


def chinese_headlines(n: int, seed: int) -> pd.DataFrame:
    """Unsegmented Chinese sentences whose topic words (two characters each) give the class."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        topic, words = ("体育", SPORT) if i % 2 else ("财经", MONEY)
        rows.append({"row": i, "text": "今天" + "".join(rng.choice(words, size=3)) + "。", "label": topic})
    return pd.DataFrame(rows)


def test_chinese_with_a_character_vocabulary_learns_both_classes(tmp_path):
    from seqmodels.kinds.classify.stages import evaluate_classifier, fit_featurizer, train_classifier
    from seqmodels.preprocess import preprocess_table
    from seqmodels.kinds.classify.model import ClassifierConfig
    from seqmodels.models.encoder import EncoderConfig
    from seqmodels.training import TrainerConfig

    paths = {}
    for part, (n, seed) in {"train": (80, 0), "val": (20, 1), "test": (20, 2)}.items():
        chinese_headlines(n, seed).to_parquet(tmp_path / f"raw_{part}.parquet")
        paths[part] = preprocess_table(tmp_path / f"raw_{part}.parquet", tmp_path / f"{part}.parquet", CleanConfig())
    fit_featurizer(paths["train"], tmp_path / "featurizer", FeaturizerConfig(vocab={"level": "char"}))
    model = ClassifierConfig(encoder=EncoderConfig(embedding_dim=16, hidden_dim=16), head_hidden_dim=16)
    trainer = TrainerConfig(epochs=15, batch_size=16, lr=1e-2, patience=15, progress=False, device="cpu")
    train_classifier(paths["train"], paths["val"], tmp_path / "featurizer", tmp_path / "model", tmp_path / "ckpt",
                     model, trainer)
    evaluation = evaluate_classifier(tmp_path / "model", paths["test"], device="cpu")
    assert evaluation["metrics"]["accuracy"] == 1.0
