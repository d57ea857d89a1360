"""Sampling text from a character language model: temperature, top-k, top-p, repetition penalty, stop string.

The model is any module with ``forward(ids (streams, steps), state) -> (logits (streams, steps, vocab), state)``
where the state is an RNN hidden state: a Tensor ``(layers, streams, hidden)`` (GRU) or a tuple of such
Tensors (LSTM). :func:`generate` primes the state with each prefix in one forward pass, then samples one
character at a time for all streams together, feeding each sampled character with the carried state.

Filtering order (:func:`filter_logits`): repetition penalty, temperature, top-k, top-p. Temperature 0 means
greedy whatever the sampler; a temperature close to 0 behaves like greedy too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
from torch import Tensor, nn

State = Any  # Tensor (layers, streams, hidden) for a GRU; a tuple of them for an LSTM; None: zeros
SAMPLERS = ("softmax", "gumbel", "greedy")
ONEDNN_MIN_STREAMS = 64  # fewer streams sample faster without oneDNN (see generate)


@dataclass
class SamplingConfig:
    """How characters are drawn: how many, from which filtered distribution, with which sampler and seed."""

    num_chars: int = field(default=200, metadata={"help": "characters to generate per prefix (at most)"})
    temperature: float = field(default=1.0, metadata={
        "help": "divide the logits by this; below 1 sharper, above 1 flatter; 0 means greedy"})
    top_k: int = field(default=0, metadata={"help": "sample among the k most likely characters only; 0: off"})
    top_p: float = field(default=1.0, metadata={
        "help": "nucleus sampling: the smallest set of characters whose probability reaches top_p; 1: off"})
    repetition_penalty: float = field(default=1.0, metadata={
        "help": "CTRL-style penalty (> 1 discourages) on characters of the prefix or already generated; 1: off"})
    sampler: Literal["softmax", "gumbel", "greedy"] = field(default="softmax", metadata={
        "help": "softmax: draw from the distribution; gumbel: Gumbel-max trick; greedy: most likely character"})
    stop: str | None = field(default=None, metadata={
        "help": "stop a stream once its continuation contains this text (kept in the output)"})
    seed: int | None = field(default=None, metadata={"help": "random seed; the same seed repeats the same text"})

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(map(repr, SAMPLERS))}, got {self.sampler!r}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (0 means greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (1 turns it off), got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 turns it off), got {self.top_k}")
        if not self.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0 (1 turns it off), got {self.repetition_penalty}")
        if self.num_chars < 0:
            raise ValueError(f"num_chars must be >= 0, got {self.num_chars}")
        if self.stop == "":
            raise ValueError("stop must be a non-empty string, or None for no stop string")

    @property
    def is_greedy(self) -> bool:
        """Greedy decoding: the greedy sampler, or temperature 0 with any sampler."""
        return self.sampler == "greedy" or self.temperature == 0


def penalize_repetition(logits: Tensor, penalty: float, seen: Tensor) -> Tensor:
    """CTRL penalty: seen tokens' positive logits divided by ``penalty``, negative ones multiplied."""
    if penalty == 1.0:
        return logits
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def top_p_mask(logits: Tensor, top_p: float) -> Tensor:
    """``(batch, vocab)`` bool, True outside the smallest set of tokens whose probability sums to >= top_p."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (batch, vocab) each
    probs = sorted_logits.softmax(dim=-1).double()
    before = probs.cumsum(dim=-1) - probs  # probability mass of the more likely tokens
    remove_sorted = before >= top_p  # the most likely token has before == 0 < top_p: always kept
    return torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)


def filter_logits(logits: Tensor, config: SamplingConfig, seen: Tensor) -> Tensor:
    """``logits (batch, vocab)`` after repetition penalty, temperature, top-k and top-p; removed tokens -inf.

    ``seen (batch, vocab)`` marks the tokens of each stream's prefix and continuation so far. With
    temperature 0 only the most likely token (after the penalty) is kept.
    """
    logits = penalize_repetition(logits.float(), config.repetition_penalty, seen)
    top_k = 1 if config.temperature == 0 else config.top_k
    if config.temperature not in (0, 1):
        logits = logits / config.temperature
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (batch, 1): the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if config.top_p < 1:
        logits = logits.masked_fill(top_p_mask(logits, config.top_p), float("-inf"))
    return logits


def gumbel_noise(shape: torch.Size, generator: torch.Generator, device: torch.device) -> Tensor:
    """Standard Gumbel samples ``-log(-log(u))``, ``u`` uniform in (0, 1), drawn from ``generator``."""
    uniform = torch.rand(shape, generator=generator, device=generator.device).to(device)
    return -torch.log(-torch.log(uniform.clamp(min=torch.finfo(uniform.dtype).tiny)))


def next_tokens(logits: Tensor, config: SamplingConfig, seen: Tensor, generator: torch.Generator) -> Tensor:
    """The next token ``(batch,)`` of each stream from its ``logits (batch, vocab)``, per ``config.sampler``.

    greedy (or temperature 0): argmax after the repetition penalty; softmax: a draw from the filtered
    distribution; gumbel: argmax of the filtered logits plus Gumbel noise (the Gumbel-max trick).
    """
    if config.is_greedy:
        return penalize_repetition(logits.float(), config.repetition_penalty, seen).argmax(dim=-1)
    filtered = filter_logits(logits, config, seen)
    if config.sampler == "gumbel":
        return (filtered + gumbel_noise(filtered.shape, generator, filtered.device)).argmax(dim=-1)
    probs = filtered.softmax(dim=-1).to(generator.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1).to(logits.device)  # (batch, 1) -> (batch,)


def select_state(states: list[State], order: Tensor) -> State:
    """States of several groups concatenated along the stream dim (1), then streams put in ``order``."""
    if isinstance(states[0], Tensor):
        return torch.cat(states, dim=1).index_select(1, order.to(states[0].device))  # (layers, streams, hidden)
    return type(states[0])(select_state([s[i] for s in states], order) for i in range(len(states[0])))


def prime(model: nn.Module, prefixes: list[list[int]], device: str | torch.device = "cpu") -> tuple[Tensor, State]:
    """Last-position logits ``(streams, vocab)`` and state after reading each prefix in one forward pass.

    Prefixes of the same length share one batch; the groups' results are put back in the prefixes' order.
    """
    groups: dict[int, list[int]] = {}
    for i, prefix in enumerate(prefixes):
        groups.setdefault(len(prefix), []).append(i)
    last, states, positions = [], [], []
    for indices in groups.values():
        ids = torch.tensor([prefixes[i] for i in indices], dtype=torch.long, device=device)  # (group, length)
        logits, state = model(ids)  # (group, length, vocab)
        last.append(logits[:, -1])  # (group, vocab)
        states.append(state)
        positions.extend(indices)
    order = torch.argsort(torch.tensor(positions, device=device))  # row of each prefix in the concatenation
    return torch.cat(last).index_select(0, order), select_state(states, order)


@dataclass
class _Streams:
    """Continuations being generated, their decoded text, and which streams have hit the stop string."""

    ids: list[list[int]]
    texts: list[str]
    done: list[bool]

    def add(self, tokens: list[int], stop: str | None, decode: Callable | None, on_text: Callable | None) -> None:
        """Append each running stream's token; report its text; stop the stream at the stop string."""
        for i, token in enumerate(tokens):
            if self.done[i]:
                continue
            self.ids[i].append(token)
            if decode is None:
                continue
            piece = decode([token])
            if on_text is not None:
                on_text(i, piece)
            self.texts[i] += piece
            if stop is not None and stop in self.texts[i][-(len(piece) + len(stop)):]:
                self.done[i] = True


def check_inputs(prefixes: list[list[int]], config: SamplingConfig, decode: Callable | None,
                 on_text: Callable | None) -> None:
    """ValueError for an empty prefix, or a stop string / text callback without ``decode``."""
    for i, prefix in enumerate(prefixes):
        if len(prefix) == 0:
            raise ValueError(f"prefix {i} is empty: give at least one character to start from (e.g. a newline)")
    if config.stop is not None and decode is None:
        raise ValueError("a stop string needs decode (token ids -> text) to be recognised")
    if on_text is not None and decode is None:
        raise ValueError("on_text needs decode (token ids -> text) to turn sampled tokens into text")


def generate(model: nn.Module, prefixes: list[list[int]], config: SamplingConfig,
             decode: Callable[[list[int]], str] | None = None, on_text: Callable[[int, str], None] | None = None,
             device: str | torch.device = "cpu") -> list[list[int]]:
    """The continuation ids of each prefix (prefix excluded), at most ``config.num_chars`` each.

    The model must already be on ``device``; it is run in eval mode (its previous mode is restored after).
    ``on_text(stream, piece)`` receives each sampled character's text (``decode([token])``) as it is drawn;
    a stream whose continuation contains ``config.stop`` ends there (stop string included).
    """
    check_inputs(prefixes, config, decode, on_text)
    streams = _Streams([[] for _ in prefixes], ["" for _ in prefixes], [False for _ in prefixes])
    if not prefixes or config.num_chars == 0:
        return streams.ids
    generator = torch.Generator(device=device)
    if config.seed is None:
        generator.seed()  # a non-deterministic seed, leaving torch's global generator alone
    else:
        generator.manual_seed(config.seed)
    was_training = model.training
    model.eval()
    # oneDNN's CPU LSTM re-lays its weights out on every call: one step of a 2 x 512 LSTM took 6.4 ms with it
    # and 0.78 ms without. Sampling characters/s without / with it, tiny-shakespeare 2 x 512 model: 1 stream
    # 1,720 / 180; 8: 6,566 / 1,357; 32: 11,658 / 10,113; 128: 13,785 / 22,036 (training keeps it: 1.8x faster).
    onednn = len(prefixes) >= ONEDNN_MIN_STREAMS
    try:
        with torch.inference_mode(), torch.backends.mkldnn.flags(enabled=onednn):
            logits, state = prime(model, prefixes, device)
            seen = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)  # (streams, vocab)
            for i, prefix in enumerate(prefixes):
                seen[i, prefix] = True
            for step in range(config.num_chars):
                tokens = next_tokens(logits, config, seen, generator)  # (streams,)
                seen[torch.arange(len(prefixes), device=seen.device), tokens] = True
                streams.add(tokens.tolist(), config.stop, decode, on_text)
                if all(streams.done) or step == config.num_chars - 1:
                    break
                step_logits, state = model(tokens[:, None], state)  # (streams, 1) in, (streams, 1, vocab) out
                logits = step_logits[:, -1]  # (streams, vocab)
    finally:
        model.train(was_training)
    return streams.ids
