"""Tests for the character word encoders (CNN and BiLSTM) in seqmodels.models.char_encoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqmodels.models.char_encoder import (CharCNNEncoder, CharEncoderConfig, CharLSTMEncoder,
                                           build_char_encoder)

VOCAB = 15
# two sentences: 3 and 2 tokens (the second sentence's third token is padding), chars left-aligned
CHARS = torch.tensor([[[3, 4, 5, 0], [6, 0, 0, 0], [7, 8, 9, 10]],
                      [[11, 12, 0, 0], [13, 14, 2, 0], [0, 0, 0, 0]]])  # (batch 2, max_len 3, max_chars 4)


def make(kind: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    config = CharEncoderConfig(vocab_size=VOCAB, embedding_dim=6, filters=7, kind=kind, hidden_dim=5, **kwargs)
    return build_char_encoder(config).eval()


def test_config_defaults_and_output_dim():
    config = CharEncoderConfig(vocab_size=VOCAB)
    assert config.kind == "cnn" and config.hidden_dim == 25 and config.output_dim == config.filters == 50
    assert CharEncoderConfig(vocab_size=VOCAB, kind="lstm", hidden_dim=8).output_dim == 16
    # a config saved before ``kind`` / ``hidden_dim`` existed still loads
    old = {"vocab_size": VOCAB, "embedding_dim": 25, "filters": 50, "kernel_size": 3, "dropout": 0.0}
    assert CharEncoderConfig(**old).to_dict() == {**old, "kind": "cnn", "hidden_dim": 25}


@pytest.mark.parametrize("kwargs", [{"kind": "gru"}, {"kind": "LSTM"}, {"kind": "lstm", "hidden_dim": 0}])
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        CharEncoderConfig(vocab_size=VOCAB, **kwargs)


@pytest.mark.parametrize("kind, cls, dim", [("cnn", CharCNNEncoder, 7), ("lstm", CharLSTMEncoder, 10)])
def test_build_and_shapes(kind, cls, dim):
    encoder = make(kind)
    assert type(encoder) is cls and encoder.config.output_dim == dim
    assert encoder(CHARS).shape == (2, 3, dim)


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_unset_vocab_raises(kind):
    with pytest.raises(ValueError, match="vocab_size"):
        build_char_encoder(CharEncoderConfig(kind=kind))


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_padding_tokens_are_zero(kind):
    out = make(kind)(CHARS)
    assert torch.equal(out[1, 2], torch.zeros(out.shape[-1]))
    assert (out[0].abs().sum(dim=-1) > 0).all() and (out[1, :2].abs().sum(dim=-1) > 0).all()


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_padding_invariance(kind):
    encoder = make(kind)
    with torch.no_grad():
        base = encoder(CHARS)
        more_chars = encoder(F.pad(CHARS, (0, 5)))  # (2, 3, 9)
        more_tokens = encoder(F.pad(CHARS, (0, 0, 0, 4)))  # (2, 7, 4)
        more_sentences = encoder(torch.cat([CHARS, torch.zeros_like(CHARS)]))  # (4, 3, 4)
        alone = encoder(CHARS[1:, :2, :3])  # (1, 2, 3) the second sentence, trimmed to its own size
    assert torch.allclose(more_chars, base, atol=1e-6)
    assert torch.allclose(more_tokens[:, :3], base, atol=1e-6)
    assert torch.equal(more_tokens[:, 3:], torch.zeros_like(more_tokens[:, 3:]))
    assert torch.allclose(more_sentences[:2], base, atol=1e-6)
    assert torch.allclose(alone[0], base[1, :2], atol=1e-6)


def test_lstm_depends_on_character_order():
    encoder = make("lstm")
    with torch.no_grad():
        out = encoder(torch.tensor([[[3, 4, 5], [5, 4, 3]]]))  # (1, 2, 3)
    assert not torch.allclose(out[0, 0], out[0, 1])


def test_all_padding_batch_gives_zeros():
    out = make("lstm")(torch.zeros(2, 3, 4, dtype=torch.long))
    assert out.shape == (2, 3, 10) and not out.any()


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_gradients_flow(kind):
    encoder = make(kind, dropout=0.1).train()
    encoder(CHARS).pow(2).sum().backward()
    grads = {name: p.grad for name, p in encoder.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["embedding.weight"].abs().sum() > 0
    assert not grads["embedding.weight"][0].any()  # padding_idx gets no gradient
