"""Model behaviour: shapes, correct final states through packing, padding invariance for every cell."""

import itertools

import pytest
import torch

from seqmodels.kinds.classify.model import ClassifierConfig, RNNClassifier
from seqmodels.models.encoder import EncoderConfig, RecurrentEncoder

CELLS, DIRECTIONS, POOLINGS = ("rnn", "gru", "lstm"), (False, True), ("last", "max", "mean", "last_max")


def make_classifier(cell="gru", bidirectional=True, pooling="last", num_layers=2) -> RNNClassifier:
    torch.manual_seed(0)
    encoder = EncoderConfig(vocab_size=30, embedding_dim=8, cell=cell, hidden_dim=6, num_layers=num_layers,
                            bidirectional=bidirectional)
    return RNNClassifier(ClassifierConfig(encoder=encoder, num_classes=3, pooling=pooling, head_hidden_dim=5)).eval()


def batch(rows: list[list[int]], pad_to: int | None = None) -> dict:
    width = pad_to or max(map(len, rows))
    tokens = torch.tensor([r + [0] * (width - len(r)) for r in rows])  # (batch, width)
    return {"tokens": tokens, "lengths": torch.tensor([len(r) for r in rows])}


ROWS = [[5, 6, 7, 8, 9], [3, 4], [11]]


@pytest.mark.parametrize("cell,bidirectional,pooling", list(itertools.product(CELLS, DIRECTIONS, POOLINGS)))
def test_logits_shape_and_padding_invariance(cell, bidirectional, pooling):
    model = make_classifier(cell, bidirectional, pooling)
    with torch.no_grad():
        tight = model(batch(ROWS))
        padded = model(batch(ROWS, pad_to=12))
        alone = torch.cat([model(batch([r])) for r in ROWS])
    assert tight.shape == (3, 3)
    torch.testing.assert_close(tight, padded, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(tight, alone, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_final_states_are_forward_at_last_token_and_backward_at_first(cell):
    torch.manual_seed(0)
    config = EncoderConfig(vocab_size=30, embedding_dim=8, cell=cell, hidden_dim=6, num_layers=1, bidirectional=True)
    encoder = RecurrentEncoder(config).eval()
    with torch.no_grad():
        outputs, final = encoder(batch(ROWS, pad_to=8))
    for i, row in enumerate(ROWS):
        last = len(row) - 1
        torch.testing.assert_close(final[i, :6], outputs[i, last, :6])  # forward direction, last real token
        torch.testing.assert_close(final[i, 6:], outputs[i, 0, 6:])  # backward direction has read the whole text
        assert outputs[i, len(row):].abs().sum() == 0  # nothing past the length


def test_config_round_trip():
    model = make_classifier()
    again = ClassifierConfig.from_dict(model.config.to_dict())
    assert again == model.config


@pytest.mark.parametrize("cell,bidirectional", list(itertools.product(CELLS, DIRECTIONS)))
def test_uniform_length_fast_path_matches_packing(cell, bidirectional):
    """A batch whose rows all have one length skips packing; results equal the packed path's."""
    model = make_classifier(cell, bidirectional, "last_max")
    rows = [[5, 6, 7], [3, 4, 9], [11, 12, 13]]
    with torch.no_grad():
        uniform = model(batch(rows, pad_to=6))  # fast path, extra padding columns
        mixed = model(batch(rows + [[2]]))[:3]  # packed path: one shorter row forces packing
    torch.testing.assert_close(uniform, mixed, atol=1e-6, rtol=1e-5)


def test_fast_dropout_matches_dropout_statistics():
    from seqmodels.models.dropout import FastDropout

    torch.manual_seed(0)
    layer, x = FastDropout(0.3), torch.ones(200, 500)
    out = layer(x)
    assert abs((out == 0).float().mean().item() - 0.3) < 0.01  # drop rate
    assert abs(out.mean().item() - 1.0) < 0.02  # expectation kept
    assert torch.allclose(out[out != 0], torch.tensor(1.0 / 0.7))
    assert torch.equal(layer.eval()(x), x)  # identity at inference
