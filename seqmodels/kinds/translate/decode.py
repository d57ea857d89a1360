"""Batched greedy decoding and beam search for :class:`~seqmodels.kinds.translate.model.Seq2Seq`.

Both run in eval mode under ``torch.inference_mode()`` (restoring the model's training mode), never produce
``<pad>`` or ``<s>``, and return token ids without ``<s>`` and ``</s>``.

Beam search scores a hypothesis by its total log-probability divided by ``length ** length_penalty``, the length
counting ``</s>`` (simple normalisation, not GNMT's ``((5 + length) / 6) ** alpha``): 0 is the raw log-probability,
1 the mean per token.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from seqmodels.kinds.translate.batches import pad
from seqmodels.kinds.translate.model import PAD_ID, Seq2Seq, reorder_state


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and inference mode for the block; the model's training mode afterwards as before."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def _allowed(logits: torch.Tensor, start_id: int) -> torch.Tensor:
    """``logits (rows, vocab)`` as float with ``<pad>`` and ``<s>`` ruled out."""
    banned = torch.tensor([PAD_ID, start_id], device=logits.device)
    return logits.float().index_fill(1, banned, float("-inf"))


def _cut(rows: list[list[int]], end_id: int) -> list[list[int]]:
    """Each row up to (without) its first ``end_id``."""
    return [row[:row.index(end_id)] if end_id in row else row for row in rows]


def greedy_decode(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor, max_len: int, end_id: int = 3,
                  start_id: int = 2) -> list[list[int]]:
    """The argmax translation of each source sentence: at most ``max_len`` tokens, stopping at ``</s>``."""
    with evaluating(model):
        memory, mask, state = model.encode(src, src_lengths)
        keys = model.prepare(memory, mask)
        prev = torch.full((src.shape[0],), start_id, dtype=torch.long, device=src.device)
        extra, tokens = None, []
        ended = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            logits, state, extra, _ = model.decode_step(prev, state, memory, mask, extra, keys)
            prev = _allowed(logits, start_id).argmax(-1)
            tokens.append(prev)
            ended |= prev == end_id
            if bool(ended.all()):
                break
        if not tokens:
            return [[] for _ in range(src.shape[0])]
        return _cut(torch.stack(tokens, 1).tolist(), end_id)  # (batch, steps)


class _Finished:
    """Ended hypotheses of each sentence: (normalised score, tokens without ``</s>``)."""

    def __init__(self, sentences: int):
        self.hyps: list[list[tuple[float, list[int]]]] = [[] for _ in range(sentences)]
        self.done = [False] * sentences

    def best(self, sentence: int) -> float:
        return max(score for score, _ in self.hyps[sentence]) if self.hyps[sentence] else float("-inf")

    def add(self, top, beam_of, tokens, history, end_id: int, beam: int, length: int, penalty: float) -> None:
        """Collect the candidates among the best ``beam`` of each sentence that end now."""
        ends = (tokens[:, :beam] == end_id) & torch.isfinite(top[:, :beam])  # (batch, beam)
        for sentence, rank in ends.nonzero().tolist():
            if not self.done[sentence]:
                row = sentence * beam + int(beam_of[sentence, rank])
                self.hyps[sentence].append((float(top[sentence, rank]) / length ** penalty, history[row].tolist()))

    def close(self, alive: torch.Tensor, beam: int, length: int, penalty: float) -> None:
        """Mark done each sentence with ``beam`` ended hypotheses whose best beats its best living one
        (``alive (batch, beam)`` scores, best first) normalised at the current length."""
        for sentence, score in enumerate(alive[:, 0].tolist()):
            if len(self.hyps[sentence]) >= beam and self.best(sentence) >= score / length ** penalty:
                self.done[sentence] = True


def _expand(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor, beam: int):
    """Memory, mask, keys and state of each sentence repeated ``beam`` times (rows ``sentence * beam + k``)."""
    memory, mask, state = model.encode(src, src_lengths)
    rows = torch.arange(src.shape[0], device=src.device).repeat_interleave(beam)  # (batch*beam,)
    memory, mask, state = memory[rows], mask[rows], reorder_state(state, rows)
    return memory, mask, model.prepare(memory, mask), state


def _advance(scores: torch.Tensor, logits: torch.Tensor, beam: int, start_id: int):
    """The best ``2 * beam`` extensions of each sentence's beam: ``top`` scores, source ``beam_of``, ``tokens``,
    each ``(batch, 2*beam)``, best first."""
    log_probs = torch.log_softmax(_allowed(logits, start_id), -1)  # (batch*beam, vocab)
    vocab = log_probs.shape[-1]
    total = scores.unsqueeze(-1) + log_probs.view(scores.shape[0], beam, vocab)  # (batch, beam, vocab)
    top, index = total.view(scores.shape[0], -1).topk(2 * beam, dim=-1)  # over beam*vocab
    return top, torch.div(index, vocab, rounding_mode="floor"), index % vocab


def beam_search(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor, beam: int = 5, max_len: int = 50,
                length_penalty: float = 1.0, end_id: int = 3, start_id: int = 2) -> list[list[int]]:
    """The best hypothesis of each sentence found by a beam of ``beam`` (see the module doc for the scoring).

    A sentence is done when it has ``beam`` ended hypotheses and the best of them scores at least as high as
    its best living hypothesis normalised at the current length (exact for ``length_penalty`` 0, the usual
    heuristic otherwise); at ``max_len`` a sentence without an ended hypothesis returns its best living one.
    """
    with evaluating(model):
        batch = src.shape[0]
        memory, mask, keys, state = _expand(model, src, src_lengths, beam)
        scores = torch.full((batch, beam), float("-inf"), device=src.device)
        scores[:, 0] = 0.0  # one live hypothesis per sentence at first
        prev = torch.full((batch * beam,), start_id, dtype=torch.long, device=src.device)
        history = prev.new_zeros(batch * beam, 0)  # (batch*beam, steps)
        finished, extra = _Finished(batch), None
        offsets = torch.arange(batch, device=src.device).unsqueeze(1) * beam  # (batch, 1)
        for length in range(1, max_len + 1):
            logits, state, extra, _ = model.decode_step(prev, state, memory, mask, extra, keys)
            top, beam_of, tokens = _advance(scores, logits, beam, start_id)
            finished.add(top, beam_of, tokens, history, end_id, beam, length, length_penalty)
            keep = torch.sort((tokens == end_id).int(), dim=1, stable=True).indices[:, :beam]  # best unended
            scores, prev = top.gather(1, keep), tokens.gather(1, keep).view(-1)
            rows = (beam_of.gather(1, keep) + offsets).view(-1)  # (batch*beam,) the hypotheses extended
            history = torch.cat([history[rows], prev.unsqueeze(1)], 1)
            state, extra = reorder_state(state, rows), None if extra is None else extra[rows]
            finished.close(scores, beam, length, length_penalty)
            if all(finished.done):
                break
        return [max(finished.hyps[s], key=lambda hyp: hyp[0])[1] if finished.hyps[s] else history[s * beam].tolist()
                for s in range(batch)]


def forced_attention(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor, targets: list[list[int]],
                     start_id: int = 2) -> torch.Tensor:
    """The attention weights ``(batch, longest target, src_len)`` with which the model predicts each token of
    ``targets`` (its own translations, fed back as in teacher forcing): row ``j`` is the attention that
    produced token ``j``."""
    with evaluating(model):
        memory, mask, state = model.encode(src, src_lengths)
        keys = model.prepare(memory, mask)
        # <s> + target without its last token: (batch, longest target), padded
        tgt_in = pad([[start_id, *t[:-1]] if t else [] for t in targets]).to(src.device)
        extra, steps = None, []
        for t in range(tgt_in.shape[1]):
            _, state, extra, weights = model.readout_step(tgt_in[:, t], state, memory, mask, extra, keys)
            steps.append(weights)  # (batch, src_len)
        return torch.stack(steps, 1)  # (batch, longest, src_len)
