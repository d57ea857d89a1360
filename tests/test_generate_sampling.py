"""Sampling from a character language model: filters, samplers, seeding, priming, batching, stop string."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from seqmodels.kinds.generate.sampling import (SamplingConfig, filter_logits, generate, next_tokens, prime,
                                               top_p_mask)

VOCAB = 12
CHARS = "abcdefghijkl"


class TinyLM(nn.Module):
    """Embedding -> GRU / LSTM (16) -> linear over 12 tokens, random weights."""

    def __init__(self, cell: str = "gru", seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.embedding = nn.Embedding(VOCAB, 8)
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(8, 16, num_layers=2, batch_first=True)
        self.output = nn.Linear(16, VOCAB)
        nn.init.normal_(self.output.weight, std=2.0)  # logits far from uniform: no near ties for argmax

    def forward(self, ids, state=None):
        outputs, state = self.rnn(self.embedding(ids), state)  # (batch, steps, 16)
        return self.output(outputs), state


def decode(ids: list[int]) -> str:
    return "".join(CHARS[i] for i in ids)


@pytest.fixture(scope="module")
def gru() -> TinyLM:
    return TinyLM("gru")


@pytest.fixture(scope="module")
def lstm() -> TinyLM:
    return TinyLM("lstm", seed=1)


def greedy_stepwise(model: nn.Module, prefix: list[int], num_chars: int) -> list[int]:
    """Reference: feed the prefix one character at a time, then take the argmax each step."""
    state, out = None, []
    with torch.no_grad():
        for token in prefix:
            logits, state = model(torch.tensor([[token]]), state)
        for _ in range(num_chars):
            out.append(int(logits[0, -1].argmax()))
            logits, state = model(torch.tensor([[out[-1]]]), state)
    return out


PREFIXES = [[1, 2, 3], [4], [5, 6, 7], [8, 9], [0, 11, 10, 3, 3]]


def test_greedy_continuation_has_num_chars(gru):
    out = generate(gru, [[1, 2]], SamplingConfig(num_chars=17, sampler="greedy"))
    assert len(out) == 1 and len(out[0]) == 17 and all(0 <= t < VOCAB for t in out[0])
    assert generate(gru, [[1, 2]], SamplingConfig(num_chars=0)) == [[]]
    assert generate(gru, [], SamplingConfig()) == []


@pytest.mark.parametrize("temperature", [0.0, 1e-6])
@pytest.mark.parametrize("sampler", ["softmax", "gumbel"])
def test_temperature_to_zero_is_greedy(gru, temperature, sampler):
    greedy = generate(gru, PREFIXES, SamplingConfig(num_chars=30, sampler="greedy"))
    cold = generate(gru, PREFIXES, SamplingConfig(num_chars=30, sampler=sampler, temperature=temperature, seed=5))
    assert cold == greedy


@pytest.mark.parametrize("sampler", ["softmax", "gumbel"])
def test_top_k_one_is_greedy(gru, sampler):
    greedy = generate(gru, PREFIXES, SamplingConfig(num_chars=30, sampler="greedy"))
    assert generate(gru, PREFIXES, SamplingConfig(num_chars=30, sampler=sampler, top_k=1, seed=2)) == greedy


@pytest.mark.parametrize("sampler", ["softmax", "gumbel"])
def test_fixed_seed_repeats_and_seeds_differ(gru, sampler):
    def run(seed):
        return generate(gru, PREFIXES, SamplingConfig(num_chars=40, sampler=sampler, temperature=1.5, seed=seed))

    assert run(7) == run(7)
    assert run(7) != run(8)
    assert run(None) != run(None)  # no seed: a fresh random seed each time


def test_seed_leaves_global_generator_alone(gru):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generate(gru, PREFIXES, SamplingConfig(num_chars=5, seed=1))
    generate(gru, PREFIXES, SamplingConfig(num_chars=5, seed=None))
    assert torch.equal(torch.rand(3), expected)


def test_top_p_one_is_plain_softmax_sampling(gru):
    """top_p = 1 samples exactly as a hand-written multinomial loop with the same seed."""
    prefix, seed, n = [3, 1, 4], 11, 40
    generator = torch.Generator().manual_seed(seed)
    expected, state = [], None
    with torch.no_grad():
        logits, state = gru(torch.tensor([prefix]), state)
        for _ in range(n):
            probs = logits[:, -1].softmax(dim=-1)  # (1, vocab)
            expected.append(int(torch.multinomial(probs, 1, generator=generator)))
            logits, state = gru(torch.tensor([[expected[-1]]]), state)
    assert generate(gru, [prefix], SamplingConfig(num_chars=n, top_p=1.0, seed=seed)) == [expected]
    logits = torch.randn(4, VOCAB)
    no_seen = torch.zeros(4, VOCAB, dtype=torch.bool)
    assert torch.equal(filter_logits(logits, SamplingConfig(top_p=1.0), no_seen), logits)


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.15, 0.5, 0.1, 0.25]])
    logits = probs.log()
    kept = lambda p: (~top_p_mask(logits, p)).nonzero()[:, 1].tolist()  # noqa: E731
    assert kept(0.01) == [1]  # always at least the most likely token
    assert kept(0.45) == [1]
    assert kept(0.7) == [1, 3]  # 0.5 + 0.25 >= 0.7
    assert kept(0.8) == [0, 1, 3]  # 0.5 + 0.25 + 0.15 >= 0.8
    assert kept(0.95) == [0, 1, 2, 3]
    filtered = filter_logits(logits, SamplingConfig(top_p=0.7), torch.zeros(1, 4, dtype=torch.bool))
    assert torch.isinf(filtered[0, [0, 2]]).all() and torch.isfinite(filtered[0, [1, 3]]).all()
    assert torch.allclose(filtered.softmax(-1), torch.tensor([[0.0, 2 / 3, 0.0, 1 / 3]]))


def test_top_k_keeps_k_tokens():
    logits = torch.tensor([[0.3, 2.0, -1.0, 1.0, 0.5]])
    filtered = filter_logits(logits, SamplingConfig(top_k=2), torch.zeros(1, 5, dtype=torch.bool))
    assert torch.isfinite(filtered).nonzero()[:, 1].tolist() == [1, 3]


def test_temperature_scales_logits():
    logits = torch.tensor([[1.0, -2.0, 0.5]])
    filtered = filter_logits(logits, SamplingConfig(temperature=0.5), torch.zeros(1, 3, dtype=torch.bool))
    assert torch.allclose(filtered, logits * 2)


def test_repetition_penalty_lowers_seen_tokens():
    logits = torch.tensor([[2.0, -1.0, 0.5, 1.5]])
    seen = torch.tensor([[True, True, False, False]])
    filtered = filter_logits(logits, SamplingConfig(repetition_penalty=2.0), seen)
    assert torch.allclose(filtered, torch.tensor([[1.0, -2.0, 0.5, 1.5]]))  # positive / 2, negative * 2
    before, after = logits.softmax(-1), filtered.softmax(-1)
    assert (after[0, :2] < before[0, :2]).all() and (after[0, 2:] > before[0, 2:]).all()
    # greedy takes the argmax after the penalty: token 0 was seen, so token 3 wins
    greedy = SamplingConfig(sampler="greedy", repetition_penalty=2.0)
    assert next_tokens(logits, greedy, seen, torch.Generator()).tolist() == [3]


def test_repetition_penalty_changes_generation(gru):
    plain = generate(gru, [[1, 2]], SamplingConfig(num_chars=30, sampler="greedy"))[0]
    penalized = generate(gru, [[1, 2]], SamplingConfig(num_chars=30, sampler="greedy", repetition_penalty=50.0))[0]
    assert penalized != plain
    # a soft penalty, not a ban: repeats get rarer (here 4 -> 8 distinct tokens among the first 10)
    assert len(set(penalized[:10])) > len(set(plain[:10]))


def test_gumbel_follows_a_peaked_distribution():
    logits = torch.zeros(300, VOCAB)
    peak = torch.randint(VOCAB, (300,), generator=torch.Generator().manual_seed(0))
    logits[torch.arange(300), peak] = 25.0
    config = SamplingConfig(sampler="gumbel", seed=0)
    no_seen = torch.zeros(300, VOCAB, dtype=torch.bool)
    assert torch.equal(next_tokens(logits, config, no_seen, torch.Generator().manual_seed(0)), peak)
    flat = next_tokens(torch.zeros(300, VOCAB), config, no_seen, torch.Generator().manual_seed(0))
    assert len(set(flat.tolist())) == VOCAB  # uniform logits: the noise picks every token sometimes


def test_gumbel_matches_softmax_frequencies():
    logits = torch.tensor([[math.log(0.6), math.log(0.3), math.log(0.1)]]).expand(20000, 3)
    no_seen = torch.zeros(20000, 3, dtype=torch.bool)
    drawn = next_tokens(logits, SamplingConfig(sampler="gumbel"), no_seen, torch.Generator().manual_seed(3))
    freq = torch.bincount(drawn, minlength=3).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.6, 0.3, 0.1]), atol=0.02)


@pytest.mark.parametrize("model_name", ["gru", "lstm"])
def test_priming_in_one_pass_equals_stepwise(model_name, request):
    model = request.getfixturevalue(model_name)
    for prefix in PREFIXES:
        expected = greedy_stepwise(model, prefix, 25)
        assert generate(model, [prefix], SamplingConfig(num_chars=25, sampler="greedy")) == [expected]


@pytest.mark.parametrize("model_name", ["gru", "lstm"])
def test_batch_of_different_lengths_equals_each_alone(model_name, request):
    model = request.getfixturevalue(model_name)
    config = SamplingConfig(num_chars=25, sampler="greedy")
    alone = [generate(model, [prefix], config)[0] for prefix in PREFIXES]
    assert generate(model, PREFIXES, config) == alone
    assert generate(model, PREFIXES[::-1], config) == alone[::-1]


def test_prime_puts_states_back_in_order(lstm):
    logits, (h, c) = prime(lstm, PREFIXES)
    assert logits.shape == (len(PREFIXES), VOCAB) and h.shape == c.shape == (2, len(PREFIXES), 16)
    for i, prefix in enumerate(PREFIXES):
        alone_logits, (alone_h, alone_c) = prime(lstm, [prefix])
        assert torch.allclose(logits[i], alone_logits[0], atol=1e-6)
        assert torch.allclose(h[:, i], alone_h[:, 0], atol=1e-6) and torch.allclose(c[:, i], alone_c[:, 0], atol=1e-6)


def test_model_mode_restored(gru):
    gru.train()
    generate(gru, [[1]], SamplingConfig(num_chars=3))
    assert gru.training
    gru.eval()
    generate(gru, [[1]], SamplingConfig(num_chars=3))
    assert not gru.training


def test_stop_string_cuts_each_continuation(gru):
    greedy = SamplingConfig(num_chars=40, sampler="greedy")
    full = generate(gru, PREFIXES, greedy)
    stop = decode(full[0][4:6])  # a two-character piece of the first continuation
    cut = generate(gru, PREFIXES, SamplingConfig(num_chars=40, sampler="greedy", stop=stop), decode=decode)
    for ids, whole in zip(cut, full):
        text = decode(whole)
        end = text.find(stop) + len(stop) if stop in text else len(text)
        assert decode(ids) == text[:end] and ids == whole[:end]
    assert decode(cut[0]).endswith(stop) and len(cut[0]) <= 6


def test_stop_when_all_streams_stopped():
    calls = []

    class Counting(TinyLM):
        def forward(self, ids, state=None):
            calls.append(ids.shape)
            return super().forward(ids, state)

    model = Counting("gru")
    first = generate(model, [[1, 2]], SamplingConfig(num_chars=1, sampler="greedy"))[0]
    calls.clear()
    out = generate(model, [[1, 2], [1, 2]], SamplingConfig(num_chars=50, sampler="greedy", stop=decode(first)),
                   decode=decode)
    assert out == [first, first]
    assert calls == [(2, 2)]  # the prefix pass only: no step after every stream has stopped


def test_on_text_receives_exactly_the_continuation(gru):
    pieces: dict[int, list[str]] = {}
    on_text = lambda i, piece: pieces.setdefault(i, []).append(piece)  # noqa: E731
    config = SamplingConfig(num_chars=30, temperature=0.8, top_k=5, seed=4)
    out = generate(gru, PREFIXES, config, decode=decode, on_text=on_text)
    assert out == generate(gru, PREFIXES, config)  # decode / on_text do not change the draws
    assert {i: "".join(p) for i, p in pieces.items()} == {i: decode(ids) for i, ids in enumerate(out)}
    assert all(len(p) == 1 for ps in pieces.values() for p in ps)


def test_on_text_stops_with_the_stream(gru):
    full = generate(gru, PREFIXES, SamplingConfig(num_chars=40, sampler="greedy"))
    stop = decode(full[1][2:4])
    pieces: dict[int, str] = {}
    on_text = lambda i, piece: pieces.__setitem__(i, pieces.get(i, "") + piece)  # noqa: E731
    out = generate(gru, PREFIXES, SamplingConfig(num_chars=40, sampler="greedy", stop=stop), decode, on_text)
    assert pieces == {i: decode(ids) for i, ids in enumerate(out)}
    assert len(out[1]) <= 4 and pieces[1].endswith(stop)


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": -0.5}, "temperature must be >= 0"),
    ({"temperature": float("nan")}, "temperature must be >= 0"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"top_k": -1}, "top_k must be >= 0"),
    ({"repetition_penalty": 0.0}, "repetition_penalty must be > 0"),
    ({"num_chars": -1}, "num_chars must be >= 0"),
    ({"sampler": "beam"}, "sampler must be one of 'softmax', 'gumbel', 'greedy'"),
    ({"stop": ""}, "stop must be a non-empty string"),
])
def test_invalid_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingConfig(**kwargs)


def test_valid_edge_configs():
    SamplingConfig(temperature=0.0)
    SamplingConfig(temperature=0.0, sampler="greedy")
    SamplingConfig(top_p=1.0, top_k=0, repetition_penalty=0.5, num_chars=0, stop="\n", seed=0)


def test_invalid_generate_inputs(gru):
    with pytest.raises(ValueError, match="prefix 1 is empty"):
        generate(gru, [[1], []], SamplingConfig())
    with pytest.raises(ValueError, match="stop string needs decode"):
        generate(gru, [[1]], SamplingConfig(stop="a"))
    with pytest.raises(ValueError, match="on_text needs decode"):
        generate(gru, [[1]], SamplingConfig(), on_text=lambda i, p: None)


def test_help_on_every_field():
    import dataclasses

    assert all(f.metadata.get("help") for f in dataclasses.fields(SamplingConfig))
