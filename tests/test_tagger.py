"""The tagger model and its stages: padding invariance, overfitting to F1 = 1.0, normalised words, selection."""

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest
import torch

from conftest import tiny_ner_conll
from seqmodels.batching import BatchLoader
from seqmodels.featurize import TOKENS_TYPE, Featurizer, FeaturizerConfig
from seqmodels.readers import ReaderError
from seqmodels.kinds.tag.model import TaggerConfig, RNNTagger
from seqmodels.kinds.tag.stages import evaluate_tagger, fit_tag_featurizer, ingest_tagged, train_tagger
from seqmodels.training import Trainer, TrainerConfig

SENTENCES = [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"], ["BRUSSELS", "1996-08-22", "x", "y", "z"]]
TAGS = ["O", "B-ORG", "I-ORG", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _featurizer(char_encoder: str = "cnn") -> Featurizer:
    config = FeaturizerConfig(word_norm="lower_digits", subword_buckets=50, char_features=char_encoder != "none")
    return Featurizer.fit(None, pa.array(SENTENCES, type=TOKENS_TYPE), config)


def _tagger(featurizer: Featurizer, cell: str, crf: bool, char_encoder: str) -> RNNTagger:
    torch.manual_seed(0)
    base = TaggerConfig()
    encoder = replace(base.encoder, cell=cell, embedding_dim=8, hidden_dim=6, num_layers=2,
                      char_encoder="cnn" if char_encoder == "none" else char_encoder, **featurizer.encoder_fields())
    return RNNTagger(replace(base, encoder=encoder, tag_names=TAGS, crf=crf)).eval()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("crf", [True, False])
@pytest.mark.parametrize("char_encoder", ["cnn", "lstm", "none"])
def test_padding_never_changes_a_tag(cell, crf, char_encoder):
    featurizer = _featurizer(char_encoder)
    model = _tagger(featurizer, cell, crf, char_encoder)
    data = featurizer.encode(None, pa.array(SENTENCES, type=TOKENS_TYPE))
    loader = BatchLoader(data, batch_size=8)
    together = loader.collate(np.arange(len(SENTENCES)))  # padded to the longest sentence
    with torch.no_grad():
        padded_emissions = model(together)
        for row in range(len(SENTENCES)):
            alone = loader.collate(np.array([row]))
            n = len(SENTENCES[row])
            assert torch.allclose(model(alone)[0, :n], padded_emissions[row, :n], atol=1e-5)
            assert model.decode(alone)[0] == model.decode(together)[row]


def test_words_are_normalised_but_characters_keep_case():
    featurizer = _featurizer()
    data = featurizer.encode(None, pa.array([["Brussels", "BRUSSELS", "1996-08-22", "2001-01-01"]], type=TOKENS_TYPE))
    assert data.ids[0] == data.ids[1] and data.ids[2] == data.ids[3] != 1  # digits -> 0, so a known shape
    first, second = (data.char_ids[data.char_offsets[i]:data.char_offsets[i + 1]] for i in (0, 1))
    assert not np.array_equal(first, second)


def test_invalid_bio_is_reported_with_counts_not_repaired(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("Peter NNP B-NP I-PER\nsaid VBD B-VP O\n\nin IN O O\nParis NNP B-NP I-LOC\n")
    with pytest.raises(ReaderError, match=r"2 invalid transition\(s\)") as err:
        ingest_tagged(bad, tmp_path / "raw.parquet", "conll2003")
    assert err.value.line == 1
    assert not (tmp_path / "raw.parquet").exists()


@pytest.mark.parametrize("crf", [True, False])
def test_tiny_tagger_overfits_to_f1_one(tmp_path, crf):
    corpus = tmp_path / "ner.txt"
    corpus.write_text(tiny_ner_conll(40, 1))
    raw = ingest_tagged(corpus, tmp_path / "raw.parquet", "conll2003")
    fit_tag_featurizer(raw, tmp_path / "feat", FeaturizerConfig(word_norm="lower_digits", subword_buckets=200))
    base = TaggerConfig()
    config = replace(base, crf=crf, encoder=replace(base.encoder, embedding_dim=16, hidden_dim=24, word_dropout=0.0))
    model_dir, result = train_tagger(raw, raw, tmp_path / "feat", tmp_path / "model", tmp_path / "ckpt", config,
                                     TrainerConfig(epochs=25, batch_size=8, lr=1e-2, patience=25, progress=False))
    assert result.best_score == 1.0
    metrics = evaluate_tagger(model_dir, raw, "cpu")["metrics"]
    assert metrics["f1"] == 1.0 and metrics["accuracy"] == 1.0


def test_trainer_keeps_the_epoch_with_the_best_monitored_score():
    scores = iter([0.5, 0.9, 0.7, 0.6])
    model = torch.nn.Linear(1, 1)
    model.step = lambda batch: {"loss": model(batch["x"]).sum() * 0, "count": torch.tensor(1)}
    batches = [{"x": torch.ones(1, 1)}]
    trainer = Trainer(model, TrainerConfig(epochs=4, patience=2, monitor="val_f1", progress=False), batches, batches,
                      val_scorer=lambda m: {"val_f1": next(scores)})
    result = trainer.fit()
    assert result.best_epoch == 2 and result.best_score == 0.9 and result.stop_reason == "early_stopping"
    with pytest.raises(ValueError, match="monitor='val_f1' is not among the validation metrics"):
        Trainer(model, TrainerConfig(monitor="val_f1", progress=False), batches, batches).fit()


def test_subwords_by_default_for_pos_but_not_for_entities(tmp_path):
    from seqmodels.featurize import Featurizer

    ner, pos = tmp_path / "ner.txt", tmp_path / "pos.tsv"
    ner.write_text(tiny_ner_conll(4, 0))
    pos.write_text("The\tDET\ncat\tNOUN\nsat\tVERB\n\nDogs\tNOUN\nrun\tVERB\n")
    for path, fmt, expected in ((ner, "conll2003", 0), (pos, "tsv", 20_000)):
        raw = ingest_tagged(path, tmp_path / f"{fmt}.parquet", fmt)
        fit_tag_featurizer(raw, tmp_path / fmt, FeaturizerConfig(word_norm="lower_digits"), auto_subwords=True)
        assert Featurizer.load(tmp_path / fmt).config.subword_buckets == expected
