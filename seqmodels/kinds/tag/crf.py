"""A batched linear-chain conditional random field (CRF) in torch, with BIO transition constraints.

The score of a tag path ``y`` for emissions ``e`` of a sequence of length ``n`` is::

    start[y0] + sum_t e[t, y_t] + sum_{t>0} trans[y_{t-1}, y_t] + end[y_{n-1}]

``neg_log_likelihood`` is ``log Z - score(gold)`` with ``log Z`` from the forward algorithm (logsumexp over
the previous tag, batched over sequences and vectorised over tags); ``viterbi_decode`` is the batched max-product
version with a vectorised backtrace. Padding positions (``mask`` False) never change either result.

Disallowed transitions, start tags and end tags get the score :data:`IMPOSSIBLE` in both training and decoding,
so the model is a distribution over allowed paths only and decoding never produces a disallowed path. A gold
path that uses a disallowed transition therefore costs about ``-IMPOSSIBLE`` per violation -- validate the
data first (:func:`seqmodels.kinds.tag.readers.check_bio`).
"""

from __future__ import annotations

import torch
from torch import nn

IMPOSSIBLE = -1.0e4  # score of a disallowed transition; finite so gradients and float16 stay well defined


def bio_allowed_transitions(tag_names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """BIO (IOB2) constraints: ``(transitions (tags, tags) bool [from, to], start (tags,) bool)``.

    ``I-X`` may only follow ``B-X`` or ``I-X`` and may not start a sequence; ``O`` and ``B-X`` may follow anything
    allowed. Any other tag (padding or special tags such as ``<pad>``) is treated as never predicted: it may
    not start a sequence and no tag may move to it (moving out of it is allowed, which is harmless).
    """
    kinds = [_bio_kind(name) for name in tag_names]
    n = len(tag_names)
    transitions = torch.zeros(n, n, dtype=torch.bool)  # (from, to)
    start = torch.zeros(n, dtype=torch.bool)  # (tags,)
    for j, (prefix_j, type_j) in enumerate(kinds):
        start[j] = prefix_j in ("O", "B")
        for i, (prefix_i, type_i) in enumerate(kinds):
            if prefix_j in ("O", "B"):
                transitions[i, j] = True
            elif prefix_j == "I":
                transitions[i, j] = prefix_i in ("B", "I") and type_i == type_j
    return transitions, start


def _bio_kind(name: str) -> tuple[str, str]:
    """(``O`` | ``B`` | ``I`` | ``special``, entity type) of a tag name."""
    if name == "O":
        return "O", ""
    if len(name) > 2 and name[:2] in ("B-", "I-"):
        return name[0], name[2:]
    return "special", ""


class CRF(nn.Module):
    """Linear-chain CRF over ``num_tags`` tags with optional allowed transitions / start / end tags."""

    def __init__(self, num_tags: int, allowed_transitions: torch.Tensor | None = None,
                 allowed_start: torch.Tensor | None = None, allowed_end: torch.Tensor | None = None,
                 init_scale: float = 0.1):
        """``allowed_transitions`` is (tags, tags) bool indexed [from, to]; ``allowed_start`` / ``allowed_end``
        are (tags,) bool. None allows everything."""
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.num_tags = num_tags
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-init_scale, init_scale))  # (tags,)
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-init_scale, init_scale))  # (tags,)
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-init_scale, init_scale))
        self.register_buffer("allowed_transitions", _bool_mask(allowed_transitions, (num_tags, num_tags)))
        self.register_buffer("allowed_start", _bool_mask(allowed_start, (num_tags,)))
        self.register_buffer("allowed_end", _bool_mask(allowed_end, (num_tags,)))

    @classmethod
    def for_bio(cls, tag_names: list[str]) -> "CRF":
        """A CRF constrained to valid BIO paths over ``tag_names`` (see :func:`bio_allowed_transitions`)."""
        transitions, start = bio_allowed_transitions(tag_names)
        return cls(len(tag_names), transitions, start)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}"

    # ------------------------------------------------------------------------------------------ scores

    def constrained_scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(start (tags,), transitions (from, to), end (tags,)) with disallowed entries set to IMPOSSIBLE."""
        return (self.start.masked_fill(~self.allowed_start, IMPOSSIBLE),
                self.transitions.masked_fill(~self.allowed_transitions, IMPOSSIBLE),
                self.end.masked_fill(~self.allowed_end, IMPOSSIBLE))

    def neg_log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor,
                           mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sequence ``log Z - score(tags)``: emissions (batch, seq, tags), tags/mask (batch, seq) -> (batch,)."""
        mask = self._check(emissions, mask, tags)
        return self._log_partition(emissions, mask) - self._score(emissions, tags, mask)

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Unnormalised score of the given tag paths -> (batch,); tags at padded positions are ignored."""
        return self._score(emissions, tags, self._check(emissions, mask, tags))

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``log Z`` by the forward algorithm: emissions (batch, seq, tags), mask (batch, seq) -> (batch,)."""
        return self._log_partition(emissions, self._check(emissions, mask))

    def _score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Path scores for a checked mask -> (batch,)."""
        start, trans, end = self.constrained_scores()
        tags = tags.masked_fill(~mask, 0)  # (batch, seq) padding may hold any value, e.g. -100
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2).masked_fill(~mask, 0.0)  # (batch, seq)
        moved = trans[tags[:, :-1], tags[:, 1:]].masked_fill(~mask[:, 1:], 0.0)  # (batch, seq - 1)
        last = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)  # (batch,)
        return start[tags[:, 0]] + emitted.sum(1) + moved.sum(1) + end[last]

    def _log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Forward algorithm for a checked mask -> (batch,)."""
        start, trans, end = self.constrained_scores()
        into = trans.t().contiguous().unsqueeze(0)  # (1, to, from): reduce over the last, contiguous dim
        alpha = start.unsqueeze(0) + emissions[:, 0]  # (batch, tags)
        for t in range(1, emissions.shape[1]):
            # (batch, 1, from) + (1, to, from) -> logsumexp over from -> (batch, to)
            step = torch.logsumexp(alpha.unsqueeze(1) + into, dim=2) + emissions[:, t]
            alpha = torch.where(mask[:, t].unsqueeze(1), step, alpha)  # (batch, tags) padding keeps alpha
        return torch.logsumexp(alpha + end.unsqueeze(0), dim=1)  # (batch,)

    # ------------------------------------------------------------------------------------------ decoding

    @torch.no_grad()
    def viterbi_decode(self, emissions: torch.Tensor, mask: torch.Tensor | None = None) -> list[list[int]]:
        """Best tag path of each sequence (length = its mask sum): emissions (batch, seq, tags)."""
        mask = self._check(emissions, mask)
        start, trans, end = self.constrained_scores()
        batch, seq, num_tags = emissions.shape
        into = trans.t().contiguous().unsqueeze(0)  # (1, to, from)
        identity = torch.arange(num_tags, device=emissions.device).expand(batch, num_tags)  # (batch, tags)
        best = start.unsqueeze(0) + emissions[:, 0]  # (batch, tags)
        pointers = []
        for t in range(1, seq):
            # (batch, 1, from) + (1, to, from) -> max over from -> (batch, to)
            step, argbest = (best.unsqueeze(1) + into).max(dim=2)
            keep = mask[:, t].unsqueeze(1)  # (batch, 1)
            best = torch.where(keep, step + emissions[:, t], best)  # (batch, tags)
            pointers.append(torch.where(keep, argbest, identity))  # (batch, tags) padding points to itself
        tag = (best + end.unsqueeze(0)).argmax(dim=1)  # (batch,)
        path = [tag]
        for argbest in reversed(pointers):
            tag = argbest.gather(1, tag.unsqueeze(1)).squeeze(1)  # (batch,)
            path.append(tag)
        paths = torch.stack(path[::-1], dim=1).tolist()  # (batch, seq)
        return [row[:n] for row, n in zip(paths, mask.sum(1).tolist())]

    # ------------------------------------------------------------------------------------------ checks

    def _check(self, emissions: torch.Tensor, mask: torch.Tensor | None,
               tags: torch.Tensor | None = None) -> torch.Tensor:
        """Validate shapes; return a bool (batch, seq) mask that is a non-empty prefix of each row."""
        if emissions.dim() != 3 or emissions.shape[2] != self.num_tags:
            raise ValueError(f"emissions must be (batch, seq, {self.num_tags}), got {tuple(emissions.shape)}")
        batch, seq = emissions.shape[:2]
        if seq == 0:
            raise ValueError("emissions have no time steps")
        if tags is not None and tuple(tags.shape) != (batch, seq):
            raise ValueError(f"tags must be (batch, seq) = {(batch, seq)}, got {tuple(tags.shape)}")
        if mask is None:
            return torch.ones(batch, seq, dtype=torch.bool, device=emissions.device)
        if tuple(mask.shape) != (batch, seq):
            raise ValueError(f"mask must be (batch, seq) = {(batch, seq)}, got {tuple(mask.shape)}")
        mask = mask.to(torch.bool)
        if not bool(mask[:, 0].all()):
            raise ValueError("every sequence needs at least one token: mask[:, 0] must be True")
        if seq > 1 and bool((mask[:, 1:] & ~mask[:, :-1]).any()):
            raise ValueError("mask must be a prefix of each row (left-aligned sequences, padding at the end)")
        return mask


def _bool_mask(mask: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
    """``mask`` as a bool tensor of ``shape`` (all True when None)."""
    if mask is None:
        return torch.ones(shape, dtype=torch.bool)
    mask = torch.as_tensor(mask, dtype=torch.bool)
    if tuple(mask.shape) != shape:
        raise ValueError(f"constraint mask must have shape {shape}, got {tuple(mask.shape)}")
    return mask.clone()
