"""The translation encoder-decoder: padding masked everywhere, teacher forcing paths, greedy and beam search,
a toy task learnt, the trainer's ``step`` counts and the config round trip."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
import torch.nn.functional as F

from seqmodels.kinds.translate import decode as decoding
from seqmodels.kinds.translate.decode import beam_search, greedy_decode
from seqmodels.kinds.translate.model import Seq2Seq, Seq2SeqConfig

VOCAB = 12  # 0 <pad>, 1 <unk>, 2 <s>, 3 </s>, 4..11 words
VARIANTS = [("bahdanau", "gru", False), ("bahdanau", "lstm", False), ("luong", "gru", False),
            ("luong", "lstm", False), ("luong", "gru", True), ("none", "gru", False), ("none", "lstm", False)]
IDS = [f"{a}-{c}{'-feed' if f else ''}" for a, c, f in VARIANTS]


def pad(rows: list[list[int]]) -> torch.Tensor:
    """``(len(rows), longest)`` int64 padded with 0."""
    out = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def pairs(sources: list[list[int]], targets: list[list[int]]) -> dict[str, torch.Tensor]:
    return {"src": pad(sources), "src_lengths": torch.tensor([len(s) for s in sources]),
            "tgt_in": pad([[2, *t] for t in targets]), "tgt_out": pad([[*t, 3] for t in targets])}


def tiny(attention: str = "bahdanau", cell: str = "gru", input_feeding: bool = False, seed: int = 0,
         sharpen: float = 1.0, vocab: int = VOCAB, **overrides) -> Seq2Seq:
    """A small random model; ``sharpen`` scales every weight so that its predictions depend on the input.
    Untied output layer unless ``tie_decoder_embeddings`` is given (the models these tests were written with)."""
    torch.manual_seed(seed)
    config = Seq2SeqConfig(**{"src_vocab_size": vocab, "tgt_vocab_size": vocab, "cell": cell, "embedding_dim": 8,
                              "hidden_dim": 16, "dropout": 0.0, "attention": attention, "input_feeding": input_feeding,
                              "tie_decoder_embeddings": False, **overrides})
    model = Seq2Seq(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(sharpen)
    return model


def log_prob(model: Seq2Seq, src: list[int], hyp: list[int], length_penalty: float = 0.0) -> float:
    """The model's normalised log-probability of ``hyp + </s>`` as decoding sees it (no <pad>, no <s>)."""
    with torch.no_grad():
        logits = model.eval()(pairs([src], [hyp]))[0].float()  # (len(hyp) + 1, vocab)
    logits[:, [0, 2]] = float("-inf")
    gold = torch.tensor([*hyp, 3])
    return float(torch.log_softmax(logits, -1).gather(1, gold[:, None]).sum()) / len(gold) ** length_penalty


SHORT, LONG = [5, 6, 7], [4, 9, 8, 7, 6, 11, 10]


@pytest.mark.parametrize("attention,cell,feed", VARIANTS, ids=IDS)
def test_padding_changes_neither_the_logits_nor_the_translations_of_a_sentence(attention, cell, feed):
    model = tiny(attention, cell, feed, sharpen=3.0).eval()
    alone = pairs([SHORT], [[8, 9]])
    padded = {**alone, "src": F.pad(alone["src"], (0, 4))}  # four <pad> positions, same length
    together = pairs([LONG, SHORT], [[6, 7, 8, 9, 10], [8, 9]])
    with torch.no_grad():
        reference = model(alone)[0]  # (3, vocab)
        assert torch.allclose(model(padded)[0], reference, atol=1e-5)
        assert torch.allclose(model(together)[1, :3], reference, atol=1e-5)
    for src, lengths, row in ((alone["src"], alone["src_lengths"], 0), (padded["src"], padded["src_lengths"], 0),
                              (together["src"], together["src_lengths"], 1)):
        assert greedy_decode(model, src, lengths, max_len=8)[row] == greedy_decode(model, alone["src"],
                                                                                   alone["src_lengths"], 8)[0]
        assert beam_search(model, src, lengths, beam=3, max_len=8)[row] == beam_search(
            model, alone["src"], alone["src_lengths"], beam=3, max_len=8)[0]


@pytest.mark.parametrize("attention,cell,feed", VARIANTS, ids=IDS)
def test_attention_weights_are_zero_on_padding_and_sum_to_one(attention, cell, feed):
    model = tiny(attention, cell, feed).eval()
    batch = pairs([LONG, SHORT, [7]], [[4], [4], [4]])
    with torch.no_grad():
        memory, mask, state = model.encode(batch["src"], batch["src_lengths"])
        assert memory.shape == (3, 7, 32) and mask.sum(1).tolist() == [7, 3, 1]
        assert torch.all(memory[~mask] == 0)
        prev, extra = torch.full((3,), 2), None
        for _ in range(3):
            logits, state, extra, weights = model.decode_step(prev, state, memory, mask, extra)
            assert logits.shape == (3, VOCAB) and weights.shape == (3, 7)
            assert torch.all(weights[~mask] == 0) and torch.all(weights[mask] > 0)
            assert torch.allclose(weights.sum(1), torch.ones(3))
            prev = logits.argmax(-1)


@pytest.mark.parametrize("attention,cell,feed", VARIANTS, ids=IDS)
def test_step_by_step_teacher_forcing_equals_the_fast_path(attention, cell, feed):
    model = tiny(attention, cell, feed).train()  # dropout 0: training mode is deterministic
    batch = pairs([LONG, SHORT], [[6, 7, 8, 9, 10], [8, 9]])
    memory, mask, state = model.encode(batch["src"], batch["src_lengths"])
    keys = model.prepare(memory, mask)
    stepwise = model.decode_loop(batch["tgt_in"], memory, mask, state, keys, teacher_forcing=1.0)
    assert torch.allclose(model(batch), stepwise, atol=1e-5)
    if model.parallel_decoding:
        fast = model.decode_parallel(batch["tgt_in"], memory, mask, state, keys)
        assert torch.allclose(fast, stepwise, atol=1e-5)


def record_inputs(model: Seq2Seq, monkeypatch) -> list:
    """Make ``model.decode_step`` append ``(prev_tokens, logits)`` of every call to the returned list."""
    calls, original = [], model.decode_step

    def spy(prev_tokens, *args, **kwargs):
        out = original(prev_tokens, *args, **kwargs)
        calls.append((prev_tokens.clone(), out[0].detach().clone()))
        return out

    monkeypatch.setattr(model, "decode_step", spy)
    return calls


@pytest.mark.parametrize("attention", ["bahdanau", "luong", "none"])
def test_without_teacher_forcing_the_decoder_reads_its_own_predictions(attention, monkeypatch):
    batch = pairs([LONG, SHORT, [9, 4]], [[6, 7, 8, 9, 10], [8, 9], [5, 5, 5]])
    forced = tiny(attention, teacher_forcing=1.0).train().step(batch)["loss"]
    model = tiny(attention, teacher_forcing=0.0).train()
    calls = record_inputs(model, monkeypatch)
    loss = model.step(batch)["loss"]
    assert len(calls) == batch["tgt_in"].shape[1]
    assert torch.equal(calls[0][0], batch["tgt_in"][:, 0])  # <s>
    for (_, logits), (prev, _) in zip(calls, calls[1:]):
        logits[:, [0, 2]] = float("-inf")
        assert torch.equal(prev, logits.argmax(-1))
    inputs = torch.stack([prev for prev, _ in calls], 1)
    assert not torch.equal(inputs, batch["tgt_in"]) and not torch.isclose(loss, forced)
    model.eval()
    with torch.no_grad():  # evaluation always feeds the gold tokens
        assert torch.isclose(model.step(batch)["loss"], tiny(attention).eval().step(batch)["loss"])


def test_scheduled_sampling_mixes_gold_and_own_tokens_reproducibly_with_the_global_seed(monkeypatch):
    batch = pairs([LONG, SHORT] * 4, [[6, 7, 8, 9, 10], [8, 9]] * 4)
    model = tiny("luong", teacher_forcing=0.5).train()
    calls = record_inputs(model, monkeypatch)
    runs = []
    for _ in range(2):
        calls.clear()
        torch.manual_seed(7)
        loss = model.step(batch)["loss"]
        runs.append((loss.item(), torch.stack([prev for prev, _ in calls], 1)))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    own = torch.stack([logits.argmax(-1) for _, logits in calls[:-1]], 1)  # (batch, tgt_len - 1)
    gold, fed = batch["tgt_in"][:, 1:], runs[0][1][:, 1:]
    assert torch.all((fed == gold) | (fed == own))
    assert bool(((fed == gold) & (gold != own)).any()) and bool(((fed == own) & (gold != own)).any())


@pytest.mark.parametrize("attention,cell,feed", VARIANTS, ids=IDS)
def test_a_beam_of_one_is_greedy_and_both_restore_the_training_mode(attention, cell, feed):
    batch = pairs([LONG, SHORT, [9, 4], [11, 11, 10, 4]], [[4]] * 4)
    for seed in range(3):
        model = tiny(attention, cell, feed, seed=seed, sharpen=3.0).train()
        greedy = greedy_decode(model, batch["src"], batch["src_lengths"], max_len=12)
        assert beam_search(model, batch["src"], batch["src_lengths"], beam=1, max_len=12) == greedy
        assert model.training and all(3 not in hyp and 0 not in hyp and 2 not in hyp for hyp in greedy)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_a_beam_that_keeps_every_hypothesis_finds_the_best_one(attention, length_penalty):
    """Vocabulary 6: words <unk>, 4, 5; with a beam wider than the 27 prefixes of 3 tokens, beam search is
    exhaustive, so it returns the best ended hypothesis of at most 3 words by the model's own scores."""
    model = tiny(attention, seed=2, sharpen=2.0, vocab=6)
    sources = [[4, 5, 5], [5], [4, 4, 1, 5]]
    found = beam_search(model, pad(sources), torch.tensor([3, 1, 4]), beam=120, max_len=4,
                        length_penalty=length_penalty)
    everything = [list(h) for n in range(4) for h in itertools.product([1, 4, 5], repeat=n)]
    for src, hyp in zip(sources, found):
        scores = [log_prob(model, src, h, length_penalty) for h in everything]
        assert log_prob(model, src, hyp, length_penalty) == pytest.approx(max(scores), abs=1e-5)


def reverse_task(n: int, seed: int) -> tuple[list[list[int]], list[list[int]]]:
    """``n`` sources of 3-5 words out of 8 and their reversals."""
    generator = torch.Generator().manual_seed(seed)
    sources = [torch.randint(4, VOCAB, (int(torch.randint(3, 6, (1,), generator=generator)),),
                             generator=generator).tolist() for _ in range(n)]
    return sources, [s[::-1] for s in sources]


def fit_reversals(model: Seq2Seq, batch: dict) -> Seq2Seq:
    """200 full-batch Adam steps (lr 0.01) on ``batch``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        model.step(batch)["loss"].backward()
        optimizer.step()
    return model


@pytest.fixture(scope="module")
def reverser() -> tuple[Seq2Seq, dict]:
    """A tiny Luong GRU trained on 40 reversals: 200 full-batch Adam steps (about 1 s on one core)."""
    batch = pairs(*reverse_task(40, seed=0))
    model = tiny("luong")
    fit_reversals(model, batch)
    return model, batch


def test_the_default_tied_output_layer_learns_to_reverse_too():
    """The default model shares the target embedding with the output layer (through a projection)."""
    batch = pairs(*reverse_task(40, seed=0))
    model = tiny("luong", tie_decoder_embeddings=True)
    assert model.output.weight is model.tgt_embedding.weight
    fit_reversals(model, batch)
    expected = [row[row != 0][:-1].tolist() for row in batch["tgt_out"]]  # without </s>
    assert greedy_decode(model, batch["src"], batch["src_lengths"], max_len=8) == expected


def test_a_tiny_model_learns_to_reverse_its_training_sequences(reverser):
    model, batch = reverser
    expected = [row[row != 0][:-1].tolist() for row in batch["tgt_out"]]  # without </s>
    assert greedy_decode(model, batch["src"], batch["src_lengths"], max_len=8) == expected
    assert beam_search(model, batch["src"], batch["src_lengths"], beam=3, max_len=8) == expected
    assert model.training  # decoding restored the mode


def test_wider_beams_score_at_least_as_well_as_greedy(reverser):
    """On unseen sentences (the model is unsure): true here, though beam search does not guarantee it."""
    model = reverser[0]
    sources = reverse_task(60, seed=1)[0]
    src, lengths = pad(sources), torch.tensor([len(s) for s in sources])
    greedy = greedy_decode(model, src, lengths, max_len=10)
    assert all(len(hyp) < 10 for hyp in greedy)  # every greedy hypothesis ended
    differ = 0
    for length_penalty in (0.0, 1.0):
        baseline = [log_prob(model, s, hyp, length_penalty) for s, hyp in zip(sources, greedy)]
        for beam in (2, 3, 5):
            found = beam_search(model, src, lengths, beam=beam, max_len=10, length_penalty=length_penalty)
            differ += sum(mine != theirs for mine, theirs in zip(found, greedy))
            for source, mine, score in zip(sources, found, baseline):
                assert log_prob(model, source, mine, length_penalty) >= score - 1e-5
    assert differ > 0  # the beams did find other hypotheses


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])  # the whole-target and the step-by-step decoder
def test_step_counts_real_target_tokens_and_ignores_padding(attention):
    model = tiny(attention, label_smoothing=0.1).eval()
    batch = pairs([LONG, SHORT], [[6, 7, 8, 9, 10], [8, 9]])
    with torch.no_grad():
        out = model.step(batch)
        logits = model(batch)
        longer = {"src": F.pad(batch["src"], (0, 2)), "src_lengths": batch["src_lengths"],
                  "tgt_in": F.pad(batch["tgt_in"], (0, 3)), "tgt_out": F.pad(batch["tgt_out"], (0, 3))}
        padded_out = model.step(longer)
    real = batch["tgt_out"] != 0
    assert int(out["count"]) == 6 + 3 == int(real.sum()) and int(padded_out["count"]) == 9
    expected = F.cross_entropy(logits[real], batch["tgt_out"][real], label_smoothing=0.1)
    assert torch.isclose(out["loss"], expected) and torch.isclose(padded_out["loss"], expected)
    assert int(out["correct"]) == int((logits.argmax(-1)[real] == batch["tgt_out"][real]).sum())
    assert int(padded_out["correct"]) == int(out["correct"])


def test_config_round_trips_and_tied_embeddings_share_the_output_weights():
    config = Seq2SeqConfig(src_vocab_size=9, tgt_vocab_size=VOCAB, cell="lstm", attention="luong",
                           input_feeding=True, teacher_forcing=0.75, tie_decoder_embeddings=True, num_layers=2)
    again = Seq2SeqConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and Seq2SeqConfig.from_dict(Seq2SeqConfig().to_dict()) == Seq2SeqConfig()
    model = Seq2Seq(Seq2SeqConfig(**{**again.to_dict(), "embedding_dim": 8, "hidden_dim": 16}))
    assert model.output.weight is model.tgt_embedding.weight
    out = model.train().step(pairs([[5, 6, 7, 8], [4]], [[4, 5], [6]]))
    out["loss"].backward()
    assert int(out["count"]) == 5 and model.tgt_embedding.weight.grad is not None
    assert decoding.greedy_decode(model, pad([[5, 6]]), torch.tensor([2]), max_len=3)[0] is not None


# -- the adaptive softmax (a head of frequent ids, rarer ids in clusters) ---------------------------------------

@pytest.fixture
def small_clusters(monkeypatch):
    """Cluster bounds for the 12-id test vocabulary: head ids 0-5, clusters 6-8 and 9-11."""
    from seqmodels.kinds.translate import model as model_module

    monkeypatch.setattr(model_module, "ADAPTIVE_CUTOFFS", (6, 9))


def test_the_adaptive_softmax_is_used_only_above_the_head_size():
    from seqmodels.kinds.translate.model import adaptive_cutoffs

    assert adaptive_cutoffs(13_509) == [2000, 6000] and adaptive_cutoffs(3_000) == [2000]
    assert adaptive_cutoffs(2_001) == [] and tiny("luong", adaptive_softmax=True).adaptive is None


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_adaptive_step_is_the_exact_likelihood_and_its_argmax(small_clusters, smoothing):
    model = tiny("luong", sharpen=3.0, adaptive_softmax=True, label_smoothing=smoothing, embedding_dim=32).eval()
    assert model.adaptive is not None and model.output is None
    batch = pairs([LONG, SHORT], [[6, 7, 8, 9, 10], [11, 4]])  # targets in the head and in both clusters
    with torch.no_grad():
        out = model.step(batch)
        log_probs = model(batch)  # (2, tgt_len, vocab): normalised log-probabilities
    real = batch["tgt_out"] != 0
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(log_probs.shape[:2]), atol=1e-5)
    gold = batch["tgt_out"][real]
    nll = -log_probs[real].gather(1, gold[:, None]).squeeze(1)
    features = model._output_input(model._decode(batch)[0][real])
    head = torch.log_softmax(model.adaptive.head(features), -1)[:, :6]  # the head's words
    expected = ((1 - smoothing) * nll - smoothing * head.mean(-1)).mean()
    assert torch.isclose(out["loss"], expected, atol=1e-5) and int(out["count"]) == 6 + 3
    assert int(out["correct"]) == int((log_probs[real].argmax(-1) == gold).sum())


def test_a_tiny_adaptive_model_learns_to_reverse_with_rare_words(small_clusters):
    """Half of the reversal task's words are in the clusters: their layers learn from their own tokens only."""
    batch = pairs(*reverse_task(40, seed=0))
    model = tiny("luong", adaptive_softmax=True, embedding_dim=32)  # clusters of 32 / 4 and 32 / 16 features
    fit_reversals(model, batch)
    expected = [row[row != 0][:-1].tolist() for row in batch["tgt_out"]]  # without </s>
    assert greedy_decode(model, batch["src"], batch["src_lengths"], max_len=8) == expected
    assert beam_search(model, batch["src"], batch["src_lengths"], beam=3, max_len=8) == expected


# -- <unk> replaced by the most attended source token ----------------------------------------------------------

def test_forced_attention_is_the_attention_that_produced_each_token_of_a_translation():
    from seqmodels.kinds.translate.decode import forced_attention

    model = tiny("luong", sharpen=3.0).eval()
    src, lengths = pad([LONG, SHORT]), torch.tensor([len(LONG), len(SHORT)])
    hyps = greedy_decode(model, src, lengths, max_len=6)
    weights = forced_attention(model, src, lengths, hyps)  # (2, longest, src_len)
    with torch.no_grad():  # the greedy loop again, keeping its attention
        memory, mask, state = model.encode(src, lengths)
        prev, steps = torch.full((2,), 2), []
        for t in range(weights.shape[1]):
            logits, state, _, step_weights = model.decode_step(prev, state, memory, mask)
            steps.append(step_weights)
            prev = torch.tensor([h[t] if t < len(h) else 0 for h in hyps])
    for row, hyp in enumerate(hyps):
        for j in range(len(hyp)):
            assert torch.allclose(weights[row, j], steps[j][row], atol=1e-6)


def test_an_unknown_target_word_becomes_the_source_word_attended_to(monkeypatch):
    from seqmodels.kinds.translate import stages
    from seqmodels.kinds.translate.stages import TextCodec, TextConfig, Translator
    from seqmodels.kinds.translate.text import fit_vocabulary, tokenize

    source = fit_vocabulary([tokenize("Tom saw 42 cats")], "word")
    target = fit_vocabulary([tokenize("Tom a vu chats")], "word")
    codec = TextCodec(source, target, TextConfig())
    unk_at_1_and_3 = [target.index["▁Tom"], 1, target.index["▁vu"], 1]  # "Tom <unk> vu <unk>"
    monkeypatch.setattr(stages, "greedy_decode", lambda model, src, lengths, limit: [unk_at_1_and_3])
    attention = torch.zeros(1, 4, 5)
    attention[0, torch.arange(4), torch.tensor([0, 3, 1, 2])] = 1.0  # outputs 1 and 3 attend to "cats" and "42"
    monkeypatch.setattr(stages, "forced_attention", lambda *args: attention)
    model = tiny("luong", vocab=len(target))
    translator = Translator(model, codec, torch.device("cpu"))
    assert translator.translate(["Tom saw 42 cats ."], beam=1) == ["Tom cats vu 42"]
    assert translator.translate(["Tom saw 42 cats ."], beam=1, replace_unk=False) == ["Tom<unk> vu<unk>"]
