"""Per-token features: hashed subwords, character ids, their batching, the char-CNN and save/load."""

import numpy as np
import pyarrow as pa
import pytest
import torch

from seqmodels.batching import BatchLoader
from seqmodels.featurize import Featurizer, FeaturizerConfig, hashed_ngrams, text_to_tokens
from seqmodels.models.char_encoder import CharCNNEncoder, CharEncoderConfig
from seqmodels.kinds.classify.model import ClassifierConfig, RNNClassifier
from seqmodels.models.encoder import EncoderConfig

TRAIN = ["Stocks rally on Wall Street", "Oil prices soar", "Team wins the cup final", "New chip from Intel"]
CONFIG = FeaturizerConfig(subword_buckets=5000, subword_min_n=3, subword_max_n=5, char_features=True, char_max_len=8)


def fitted(config: FeaturizerConfig = CONFIG) -> Featurizer:
    cleaned, tokens = text_to_tokens(TRAIN, config.clean)
    return Featurizer.fit(cleaned, tokens, config)


def token_features(data, kind: str, t: int) -> list[int]:
    values, offsets = data.token_features()[kind]
    return values[offsets[t] : offsets[t + 1]].tolist()


def test_unseen_word_subwords_are_deterministic_and_shared_with_seen_words():
    featurizer = fitted()
    data = featurizer.encode_texts(["stock", "stocks"])  # "stock" is unseen, "stocks" is in the vocabulary
    assert data.ids[0] == 1 and data.ids[1] != 1  # <unk> vs a known word
    unseen, seen = token_features(data, "subwords", 0), token_features(data, "subwords", 1)
    assert unseen == hashed_ngrams("stock", 3, 5, 5000) == fitted().encode_texts(["stock"]).subword_ids.tolist()
    assert all(1 <= i <= 5000 for i in unseen)
    shared = {"<st", "sto", "toc", "ock", "<sto", "stoc", "tock", "<stoc", "stock"}  # n-grams of both words
    assert len(set(unseen) & set(seen)) >= len(shared) - 1  # (allowing one hash collision among the rest)


def test_features_align_with_tokens_including_empty_texts():
    featurizer = fitted()
    data = featurizer.encode_texts(["oil prices", "", None, "intel"])
    assert data.lengths.tolist() == [2, 1, 1, 1]  # empty texts become one <unk> with no features
    for kind in ("subwords", "chars"):
        values, offsets = data.token_features()[kind]
        assert len(offsets) == len(data.ids) + 1 and offsets[-1] == len(values)
    assert token_features(data, "subwords", 2) == [] and token_features(data, "chars", 3) == []
    chars = featurizer.char_vocab.index
    assert token_features(data, "chars", 4) == [chars[c] for c in "intel"]


def test_save_load_round_trip_gives_identical_encodings(tmp_path):
    featurizer = fitted()
    featurizer.save(tmp_path)
    again = Featurizer.load(tmp_path)
    assert again.config == featurizer.config and again.char_vocab == featurizer.char_vocab
    assert again.encoder_fields() == featurizer.encoder_fields()
    texts = ["Stocks soar in unseen markets", "", "Intel chips"]
    a, b = featurizer.encode_texts(texts), again.encode_texts(texts)
    for field in ("ids", "offsets", "subword_ids", "subword_offsets", "char_ids", "char_offsets"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_char_cnn_shape_and_padding_invariance():
    torch.manual_seed(0)
    cnn = CharCNNEncoder(CharEncoderConfig(vocab_size=12, embedding_dim=6, filters=7, kernel_size=3)).eval()
    chars = torch.tensor([[[2, 3, 4, 0], [5, 0, 0, 0]], [[6, 7, 8, 9], [0, 0, 0, 0]]])  # (batch 2, len 2, chars 4)
    out = cnn(chars)
    assert out.shape == (2, 2, 7)
    assert out[1, 1].abs().sum() == 0  # a padding token is the zero vector
    wider = torch.nn.functional.pad(chars, (0, 3))  # more character padding
    torch.testing.assert_close(cnn(wider), out)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_classifier_with_subwords_and_chars_is_padding_invariant(cell):
    featurizer = fitted()
    data = featurizer.encode_texts(["oil prices soar on wall street", "intel", "team wins"])
    torch.manual_seed(0)
    encoder = EncoderConfig(embedding_dim=8, hidden_dim=6, cell=cell, char_embedding_dim=4, char_filters=5,
                            **featurizer.encoder_fields())
    model = RNNClassifier(ClassifierConfig(encoder=encoder, num_classes=3, pooling="max")).eval()
    loader = BatchLoader(data, batch_size=3)
    with torch.no_grad():
        together = model(loader.collate(np.arange(3)))
        alone = torch.cat([model(loader.collate(np.array([i]))) for i in range(3)])
    assert together.shape == (3, 3)
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=1e-5)
