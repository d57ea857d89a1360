"""Tests for seqmodels.kinds.tag.crf against brute-force enumeration of every tag path on tiny inputs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from seqmodels.kinds.tag.crf import CRF, IMPOSSIBLE, bio_allowed_transitions

LENGTHS = [4, 1, 3, 2]  # a batch of different lengths, padded to 4
BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "<pad>"]


def _setup(num_tags: int = 3, lengths: list[int] = LENGTHS, seed: int = 0, crf: CRF | None = None):
    """A float64 CRF with random parameters, random emissions, padded random gold tags (-100) and the mask."""
    gen = torch.Generator().manual_seed(seed)
    crf = (crf or CRF(num_tags)).double()
    with torch.no_grad():
        for param in (crf.start, crf.end, crf.transitions):
            param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float64))
    batch, seq = len(lengths), max(lengths)
    emissions = torch.randn(batch, seq, num_tags, generator=gen, dtype=torch.float64)  # (batch, seq, tags)
    mask = torch.arange(seq).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # (batch, seq)
    tags = torch.randint(0, num_tags, (batch, seq), generator=gen).masked_fill(~mask, -100)  # (batch, seq)
    return crf, emissions, tags, mask


@torch.no_grad()
def _path_score(crf: CRF, emissions: torch.Tensor, path: tuple[int, ...]) -> float:
    """Score of one path from the raw parameters (emissions: (length, tags)); -inf if it is disallowed."""
    allowed = (bool(crf.allowed_start[path[0]]) and bool(crf.allowed_end[path[-1]])
               and all(bool(crf.allowed_transitions[a, b]) for a, b in zip(path, path[1:])))
    if not allowed:
        return -math.inf
    score = float(crf.start[path[0]]) + float(crf.end[path[-1]])
    score += sum(float(emissions[t, y]) for t, y in enumerate(path))
    return score + sum(float(crf.transitions[a, b]) for a, b in zip(path, path[1:]))


def _all_paths(crf: CRF, emissions: torch.Tensor, length: int) -> dict[tuple[int, ...], float]:
    """Scores of every path of ``length`` over the first ``length`` emission rows."""
    return {p: _path_score(crf, emissions[:length], p) for p in itertools.product(range(crf.num_tags), repeat=length)}


def _brute_log_z(scores: dict) -> float:
    return float(torch.logsumexp(torch.tensor(list(scores.values()), dtype=torch.float64), dim=0))


def _is_valid_bio(names: list[str]) -> bool:
    """True when no special tag appears and every I-X follows B-X or I-X."""
    prev = "O"
    for name in names:
        if name == "<pad>" or (name.startswith("I-") and prev not in ("B-" + name[2:], name)):
            return False
        prev = name
    return True


# ------------------------------------------------------------------------------------------------ exactness


def test_log_partition_equals_logsumexp_over_all_paths():
    crf, emissions, _, mask = _setup()
    log_z = crf.log_partition(emissions, mask)
    for b, length in enumerate(LENGTHS):
        assert log_z[b].item() == pytest.approx(_brute_log_z(_all_paths(crf, emissions[b], length)), abs=1e-9)


def test_nll_equals_log_z_minus_gold_score():
    crf, emissions, tags, mask = _setup()
    nll = crf.neg_log_likelihood(emissions, tags, mask)
    assert nll.shape == (len(LENGTHS),)
    for b, length in enumerate(LENGTHS):
        scores = _all_paths(crf, emissions[b], length)
        gold = tuple(tags[b, :length].tolist())
        assert crf.score(emissions, tags, mask)[b].item() == pytest.approx(scores[gold], abs=1e-9)
        assert nll[b].item() == pytest.approx(_brute_log_z(scores) - scores[gold], abs=1e-9)
        assert nll[b].item() >= 0


@pytest.mark.parametrize("seed", range(5))
def test_viterbi_equals_argmax_path(seed):
    crf, emissions, _, mask = _setup(seed=seed)
    decoded = crf.viterbi_decode(emissions, mask)
    assert [len(p) for p in decoded] == LENGTHS
    for b, length in enumerate(LENGTHS):
        scores = _all_paths(crf, emissions[b], length)
        assert tuple(decoded[b]) == max(scores, key=scores.get)


def test_no_mask_means_every_position_counts():
    crf, emissions, tags, _ = _setup(lengths=[3, 3])
    full = torch.ones(2, 3, dtype=torch.bool)
    assert torch.allclose(crf.neg_log_likelihood(emissions, tags), crf.neg_log_likelihood(emissions, tags, full))
    assert crf.viterbi_decode(emissions) == crf.viterbi_decode(emissions, full)


# ------------------------------------------------------------------------------------------------ padding


def test_padding_does_not_change_loss_or_decode():
    crf, emissions, tags, mask = _setup()
    extra = 3
    padded_emissions = torch.cat([emissions, 50 * torch.randn(len(LENGTHS), extra, 3, dtype=torch.float64)], dim=1)
    padded_tags = torch.cat([tags, torch.randint(0, 3, (len(LENGTHS), extra))], dim=1)  # junk, not -100
    padded_mask = torch.cat([mask, torch.zeros(len(LENGTHS), extra, dtype=torch.bool)], dim=1)
    # garbage under the existing padding too
    padded_emissions = padded_emissions.masked_fill(~padded_mask.unsqueeze(2), 1e3)
    assert torch.allclose(crf.neg_log_likelihood(padded_emissions, padded_tags, padded_mask),
                          crf.neg_log_likelihood(emissions, tags, mask), atol=1e-9)
    assert crf.viterbi_decode(padded_emissions, padded_mask) == crf.viterbi_decode(emissions, mask)


def test_each_sequence_alone_equals_its_row_in_the_batch():
    crf, emissions, tags, mask = _setup()
    nll = crf.neg_log_likelihood(emissions, tags, mask)
    decoded = crf.viterbi_decode(emissions, mask)
    for b, length in enumerate(LENGTHS):
        alone_e, alone_t = emissions[b:b + 1, :length], tags[b:b + 1, :length]
        assert crf.neg_log_likelihood(alone_e, alone_t).item() == pytest.approx(nll[b].item(), abs=1e-9)
        assert crf.viterbi_decode(alone_e) == [decoded[b]]


# ------------------------------------------------------------------------------------------------ constraints


def test_bio_allowed_transitions_matrix():
    transitions, start = bio_allowed_transitions(BIO)
    assert transitions.dtype == torch.bool and transitions.shape == (6, 6) and start.shape == (6,)
    assert start.tolist() == [True, True, False, True, False, False]
    idx = {name: i for i, name in enumerate(BIO)}
    expected_into_i_per = {"B-PER", "I-PER"}
    for name in BIO:
        assert bool(transitions[idx[name], idx["I-PER"]]) == (name in expected_into_i_per)
        assert bool(transitions[idx[name], idx["O"]]) and bool(transitions[idx[name], idx["B-LOC"]])
        assert not bool(transitions[idx[name], idx["<pad>"]])
    assert not bool(transitions[idx["B-LOC"], idx["I-PER"]])
    assert not bool(transitions[idx["O"], idx["I-LOC"]])


def test_constrained_crf_matches_brute_force_over_valid_paths():
    crf, emissions, tags, mask = _setup(num_tags=len(BIO), lengths=[3, 2, 1], crf=CRF.for_bio(BIO))
    log_z = crf.log_partition(emissions, mask)
    decoded = crf.viterbi_decode(emissions, mask)
    for b, length in enumerate([3, 2, 1]):
        scores = _all_paths(crf, emissions[b], length)  # disallowed paths score -inf
        assert log_z[b].item() == pytest.approx(_brute_log_z(scores), abs=1e-6)
        assert tuple(decoded[b]) == max(scores, key=scores.get)


def test_constrained_decode_never_yields_invalid_bio():
    crf = CRF.for_bio(BIO)
    gen = torch.Generator().manual_seed(1)
    bias = torch.tensor([0.0, 0.0, 5.0, 0.0, 5.0, 8.0])  # push hard towards I- tags and <pad>
    for _ in range(20):
        emissions = torch.randn(8, 7, len(BIO), generator=gen) * 3 + bias  # (batch, seq, tags)
        lengths = torch.randint(1, 8, (8,), generator=gen)
        mask = torch.arange(7).unsqueeze(0) < lengths.unsqueeze(1)  # (batch, seq)
        for path in crf.viterbi_decode(emissions, mask):
            assert _is_valid_bio([BIO[i] for i in path]), [BIO[i] for i in path]
    unconstrained = CRF(len(BIO)).viterbi_decode(bias.expand(1, 4, -1))[0]
    assert not _is_valid_bio([BIO[i] for i in unconstrained])  # the bias really does invite invalid paths


def test_disallowed_gold_costs_impossible_score():
    crf = CRF.for_bio(BIO)
    emissions = torch.zeros(1, 2, len(BIO))
    bad = crf.neg_log_likelihood(emissions, torch.tensor([[0, 2]]))  # O -> I-PER
    good = crf.neg_log_likelihood(emissions, torch.tensor([[1, 2]]))  # B-PER -> I-PER
    assert bad.item() > good.item() - IMPOSSIBLE / 2


def test_constraints_survive_state_dict_round_trip():
    crf, emissions, _, mask = _setup(num_tags=len(BIO), crf=CRF.for_bio(BIO))
    fresh = CRF.for_bio(BIO).double()
    fresh.load_state_dict(crf.state_dict())
    assert fresh.viterbi_decode(emissions, mask) == crf.viterbi_decode(emissions, mask)
    assert torch.equal(fresh.allowed_start, bio_allowed_transitions(BIO)[1])


# ------------------------------------------------------------------------------------------------ gradients


def test_gradient_flows_and_emission_gradient_is_the_marginal():
    crf, emissions, tags, mask = _setup()
    emissions.requires_grad_(True)
    crf.neg_log_likelihood(emissions, tags, mask).sum().backward()
    for param in (crf.start, crf.end, crf.transitions):
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0
    # d nll / d emissions = P(y_t = y) - [gold_t = y]: rows sum to 0 on real tokens, exactly 0 on padding
    grad = emissions.grad  # (batch, seq, tags)
    assert torch.allclose(grad.sum(2)[mask], torch.zeros(int(mask.sum()), dtype=torch.float64), atol=1e-9)
    assert torch.count_nonzero(grad[~mask]) == 0
    b, length = 0, LENGTHS[0]
    scores = _all_paths(crf, emissions.detach()[b], length)
    log_z = _brute_log_z(scores)
    marginal = torch.zeros(length, 3, dtype=torch.float64)
    for path, score in scores.items():
        for t, y in enumerate(path):
            marginal[t, y] += math.exp(score - log_z)
    gold = torch.nn.functional.one_hot(tags[b, :length], 3).double()
    assert torch.allclose(grad[b, :length], marginal - gold, atol=1e-9)


def test_training_recovers_the_gold_path():
    torch.manual_seed(0)
    crf = CRF.for_bio(BIO)
    emissions = torch.zeros(2, 5, len(BIO), requires_grad=True)
    gold = torch.tensor([[1, 2, 0, 3, 4], [3, 4, 4, 0, -100]])
    mask = gold != -100
    optimiser = torch.optim.Adam([emissions, *crf.parameters()], lr=0.1)
    first = None
    for _ in range(60):
        optimiser.zero_grad()
        loss = crf.neg_log_likelihood(emissions, gold, mask).mean()
        first = loss.item() if first is None else first
        loss.backward()
        optimiser.step()
    assert loss.item() < first / 10
    assert crf.viterbi_decode(emissions.detach(), mask) == [[1, 2, 0, 3, 4], [3, 4, 4, 0]]


# ------------------------------------------------------------------------------------------------ errors


def test_bad_inputs_raise():
    crf, emissions, tags, mask = _setup()
    with pytest.raises(ValueError, match="at least one token"):
        crf.neg_log_likelihood(emissions, tags, torch.zeros_like(mask))
    holes = mask.clone()
    holes[0, 1] = False
    with pytest.raises(ValueError, match="prefix"):
        crf.viterbi_decode(emissions, holes)
    with pytest.raises(ValueError, match="emissions must be"):
        crf.viterbi_decode(emissions[..., :2])
    with pytest.raises(ValueError, match="tags must be"):
        crf.neg_log_likelihood(emissions, tags[:, :2], mask)
    with pytest.raises(ValueError, match="constraint mask"):
        CRF(3, torch.ones(2, 2, dtype=torch.bool))
