"""An RNN encoder-decoder with attention for translation.

A bidirectional encoder reads the packed source; the decoder starts from a ``tanh`` projection of the encoder's
final forward and backward states and attends over the encoder outputs (padding masked):

- ``bahdanau``: additive attention, queried by the previous decoder state; the context is fed to the decoder
  with the input embedding, and the output layer reads ``tanh(W [h; c; embedding])``;
- ``luong``: general (multiplicative) attention from the current decoder output; the output layer reads the
  attentional state ``tanh(W [c; h])``, optionally fed to the next step (``input_feeding``);
- ``none``: the context is the mean of the encoder outputs over the real positions, fed at every step.

The decoder has ``2 * hidden_dim`` units, the size of an encoder output (both directions).
Token ids: 0 ``<pad>``, 1 ``<unk>``, 2 ``<s>``, 3 ``</s>`` in both vocabularies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqmodels.models.config import ModelConfig

PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3
ADAPTIVE_CUTOFFS = (2000, 6000)  # head: ids below 2,000 (vocabularies are in frequency order); two rarer clusters

State = Any  # Tensor (layers, batch, decoder_dim) for a GRU; a pair of them (h, c) for an LSTM


@dataclass
class Seq2SeqConfig(ModelConfig):
    """Sizes and training choices of the encoder-decoder; the vocabulary sizes are set from the fitted vocabularies."""

    src_vocab_size: int = 0
    tgt_vocab_size: int = 0
    cell: Literal["gru", "lstm"] = field(default="gru", metadata={"help": "recurrent cell of encoder and decoder"})
    embedding_dim: int = field(default=256, metadata={"help": "token embedding size (both languages)"})
    # fra.txt (<= 10 English words), 3 minutes on 2 cores, held-out loss: 128 units (batch 128) 394 pairs/s, 3.27;
    # 192 units 263 pairs/s, 3.39; a 30-minute budget is a race for updates (bench/bench_translate.py)
    hidden_dim: int = field(default=128, metadata={
        "help": "encoder RNN units per direction (the decoder has twice as many)"})
    num_layers: int = field(default=1, metadata={"help": "stacked RNN layers in the encoder and in the decoder"})
    dropout: float = field(default=0.2, metadata={
        "help": "dropout on embeddings, between RNN layers and before the output layer"})
    # luong without input feeding runs the decoder RNN over the whole target at once in training; bahdanau steps
    # in Python: 1.9x fewer pairs/s on fra.txt at the same sizes (28 vs 53 pairs/s, 2 busy cores)
    attention: Literal["bahdanau", "luong", "none"] = field(default="luong", metadata={
        "help": "luong (general, multiplicative), bahdanau (additive) or none (mean of the encoder outputs)"})
    input_feeding: bool = field(default=False, metadata={
        "help": "luong: feed the previous attentional state to the decoder (trains step by step, slower)"})
    teacher_forcing: float = field(default=1.0, metadata={
        "help": "probability of feeding the gold previous token in training (else the model's own prediction)"})
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing of the cross-entropy"})
    # the output layer (readout x target vocabulary) is most of a training step on a CPU: through the embedding
    # size (256) it costs half of the decoder's 512, and the shared weights are the usual choice (Press & Wolf 2017)
    tie_decoder_embeddings: bool = field(default=True, metadata={
        "help": "share the target embedding with the output layer (through a projection to its size); "
                "with the full softmax only"})
    # the 2,000 most frequent French words of fra.txt are 92 % of its target tokens: the adaptive softmax scores
    # them (and one entry per rarer cluster) for every token, a rarer cluster's words only for its own tokens
    adaptive_softmax: bool = field(default=True, metadata={
        "help": "adaptive softmax over target vocabularies above 2,000 tokens (Grave et al. 2017; frequent tokens "
                "in the head, rarer ones in smaller clusters); else the full softmax"})


def reorder_state(state: State, index: torch.Tensor) -> State:
    """The decoder state of the batch rows ``index`` (beam search: expand and reorder hypotheses)."""
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    return state.index_select(1, index)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim of ``scores (..., src_len)`` with -inf where ``mask (batch, src_len)`` is False."""
    while mask.dim() < scores.dim():
        mask = mask.unsqueeze(1)  # (batch, 1, src_len): broadcast over target steps
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


class Seq2Seq(nn.Module):
    """Target logits for a batch of padded source sentences and target prefixes."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = c = config
        rnn = nn.LSTM if c.cell == "lstm" else nn.GRU
        between = c.dropout if c.num_layers > 1 else 0.0
        memory_dim = self.decoder_dim = dim = 2 * c.hidden_dim
        self.src_embedding = nn.Embedding(c.src_vocab_size, c.embedding_dim, padding_idx=PAD_ID)
        self.tgt_embedding = nn.Embedding(c.tgt_vocab_size, c.embedding_dim, padding_idx=PAD_ID)
        self.encoder = rnn(c.embedding_dim, c.hidden_dim, c.num_layers, batch_first=True, bidirectional=True,
                           dropout=between)
        self.bridge = nn.Linear(memory_dim, dim)
        self.bridge_cell = nn.Linear(memory_dim, dim) if c.cell == "lstm" else None
        fed = {"bahdanau": memory_dim, "none": memory_dim, "luong": dim if c.input_feeding else 0}[c.attention]
        self.decoder = rnn(c.embedding_dim + fed, dim, c.num_layers, batch_first=True, dropout=between)
        self.keys = nn.Linear(memory_dim, dim, bias=False) if c.attention != "none" else None
        self.query = nn.Linear(dim, dim) if c.attention == "bahdanau" else None
        self.energy = nn.Linear(dim, 1, bias=False) if c.attention == "bahdanau" else None
        readout_in = {"bahdanau": dim + memory_dim + c.embedding_dim, "luong": memory_dim + dim, "none": 0}
        self.combine = nn.Linear(readout_in[c.attention], dim) if c.attention != "none" else None
        self.dropout = nn.Dropout(c.dropout)
        cutoffs = adaptive_cutoffs(c.tgt_vocab_size) if c.adaptive_softmax else []
        tied = c.tie_decoder_embeddings and not cutoffs
        self.project = nn.Linear(dim, c.embedding_dim) if tied or cutoffs else None
        readout_dim = c.embedding_dim if self.project is not None else dim
        self.output = None if cutoffs else nn.Linear(readout_dim, c.tgt_vocab_size)
        self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(readout_dim, c.tgt_vocab_size, cutoffs) if cutoffs else None
        if tied:
            self.output.weight = self.tgt_embedding.weight

    @property
    def parallel_decoding(self) -> bool:
        """Whether teacher-forced decoding runs the decoder RNN over the whole target at once."""
        return self.config.attention == "none" or (self.config.attention == "luong" and not self.config.input_feeding)

    # -- encoder --------------------------------------------------------------------------------------------------

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, State]:
        """``memory (batch, src_len, 2*hidden)``, ``mask (batch, src_len)`` (True: real token), initial decoder state.

        Lengths below 1 count as 1 (an empty source reads one ``<pad>``) so that attention always has a position.
        """
        lengths = src_lengths.detach().cpu().clamp(min=1)
        embedded = self.dropout(self.src_embedding(src))  # (batch, src_len, embedding_dim)
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        outputs, final = self.encoder(packed)
        memory, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.shape[1])  # (batch, src_len, 2H)
        mask = torch.arange(src.shape[1], device=src.device)[None, :] < lengths.to(src.device)[:, None]
        if isinstance(final, tuple):
            return memory, mask, (self._bridge(final[0], self.bridge), self._bridge(final[1], self.bridge_cell))
        return memory, mask, self._bridge(final, self.bridge)

    def _bridge(self, final: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
        """Encoder final states ``(layers*2, batch, hidden)`` -> decoder states ``(layers, batch, 2*hidden)``."""
        layers, batch = self.config.num_layers, final.shape[1]
        both = final.view(layers, 2, batch, -1).permute(0, 2, 1, 3)  # (layers, batch, direction, hidden)
        return torch.tanh(layer(both.reshape(layers, batch, -1))).contiguous()  # (layers, batch, 2*hidden)

    def prepare(self, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """What attention needs from ``memory`` once per sentence: the projected keys ``(batch, src_len, dim)``,
        or for ``none`` the mean of the encoder outputs over the real positions ``(batch, 2*hidden)``."""
        if self.keys is not None:
            return self.keys(memory)
        real = mask.unsqueeze(-1).to(memory.dtype)  # (batch, src_len, 1)
        return (memory * real).sum(1) / real.sum(1)

    # -- attention and readout ------------------------------------------------------------------------------------

    def _additive(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Bahdanau weights ``(batch, src_len)`` for ``query (batch, dim)``."""
        energies = self.energy(torch.tanh(keys + self.query(query).unsqueeze(1)))  # (batch, src_len, 1)
        return masked_softmax(energies.squeeze(-1), mask)

    def _general(self, hidden: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Luong weights ``(batch, steps, src_len)`` for decoder outputs ``hidden (batch, steps, dim)``."""
        return masked_softmax(hidden @ keys.transpose(1, 2), mask)  # (batch, steps, src_len)

    def _output_input(self, readout: torch.Tensor) -> torch.Tensor:
        """What the output layer reads: ``(..., dim)`` -> ``(..., embedding_dim)`` through the projection, if any."""
        readout = self.dropout(readout)
        return readout if self.project is None else self.project(readout)

    def _logits(self, readout: torch.Tensor) -> torch.Tensor:
        """``(..., dim)`` -> ``(..., tgt_vocab)``: logits, or log-probabilities from the adaptive softmax (the same
        argmax and the same ``log_softmax``)."""
        features = self._output_input(readout)
        if self.adaptive is None:
            return self.output(features)
        flat = features.reshape(-1, features.shape[-1])  # (tokens, features)
        return self.adaptive.log_prob(flat).view(*features.shape[:-1], -1)  # (..., tgt_vocab)

    @staticmethod
    def _top(state: State) -> torch.Tensor:
        """The top layer's hidden state ``(batch, dim)``."""
        return (state[0] if isinstance(state, tuple) else state)[-1]

    # -- decoder --------------------------------------------------------------------------------------------------

    def decode_step(self, prev_tokens: torch.Tensor, state: State, memory: torch.Tensor, mask: torch.Tensor,
                    extra: torch.Tensor | None = None, keys: torch.Tensor | None = None,
                    ) -> tuple[torch.Tensor, State, torch.Tensor | None, torch.Tensor]:
        """One decoder step: ``logits (batch, tgt_vocab)``, the new state, the new ``extra`` (Luong input feeding:
        the attentional state; else None) and the attention weights ``(batch, src_len)``.

        ``keys`` is ``prepare(memory, mask)``, computed here when not given.
        """
        readout, state, extra, weights = self.readout_step(prev_tokens, state, memory, mask, extra, keys)
        return self._logits(readout), state, extra, weights

    def readout_step(self, prev_tokens: torch.Tensor, state: State, memory: torch.Tensor, mask: torch.Tensor,
                     extra: torch.Tensor | None = None, keys: torch.Tensor | None = None,
                     ) -> tuple[torch.Tensor, State, torch.Tensor | None, torch.Tensor]:
        """``decode_step`` before the output layer: the readout ``(batch, dim)`` in place of the logits."""
        keys = self.prepare(memory, mask) if keys is None else keys
        embedded = self.dropout(self.tgt_embedding(prev_tokens))  # (batch, embedding_dim)
        if self.config.attention == "luong":
            return self._luong_step(embedded, state, memory, mask, extra, keys)
        if self.config.attention == "bahdanau":
            weights = self._additive(self._top(state), keys, mask)  # (batch, src_len)
            context = (weights.unsqueeze(1) @ memory).squeeze(1)  # (batch, 2*hidden)
        else:
            weights, context = mask.to(memory.dtype) / mask.sum(1, keepdim=True), keys
        output, state = self.decoder(torch.cat([embedded, context], -1).unsqueeze(1), state)  # (batch, 1, dim)
        hidden = output.squeeze(1)  # (batch, dim)
        if self.combine is not None:
            hidden = torch.tanh(self.combine(torch.cat([hidden, context, embedded], -1)))
        return hidden, state, None, weights

    def _luong_step(self, embedded: torch.Tensor, state: State, memory: torch.Tensor, mask: torch.Tensor,
                    extra: torch.Tensor | None, keys: torch.Tensor):
        """``decode_step`` for Luong attention (``extra``: the previous attentional state, None: zeros)."""
        inputs = embedded
        if self.config.input_feeding:
            fed = embedded.new_zeros(embedded.shape[0], self.decoder_dim) if extra is None else extra
            inputs = torch.cat([embedded, fed], -1)
        output, state = self.decoder(inputs.unsqueeze(1), state)  # (batch, 1, dim)
        weights = self._general(output, keys, mask)  # (batch, 1, src_len)
        context = weights @ memory  # (batch, 1, 2*hidden)
        attentional = torch.tanh(self.combine(torch.cat([context, output], -1))).squeeze(1)  # (batch, dim)
        return attentional, state, attentional if self.config.input_feeding else None, weights.squeeze(1)

    def decode_parallel(self, tgt_in: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor, state: State,
                        keys: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(batch, tgt_len, tgt_vocab)`` in one decoder RNN call (``parallel_decoding``)."""
        return self._logits(self.readout_parallel(tgt_in, memory, mask, state, keys))

    def readout_parallel(self, tgt_in: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor, state: State,
                         keys: torch.Tensor) -> torch.Tensor:
        """``decode_parallel`` before the output layer: readouts ``(batch, tgt_len, dim)``."""
        if not self.parallel_decoding:
            raise ValueError("parallel decoding needs attention 'none' or 'luong' without input feeding")
        embedded = self.dropout(self.tgt_embedding(tgt_in))  # (batch, tgt_len, embedding_dim)
        if self.config.attention == "none":
            context = keys.unsqueeze(1).expand(-1, tgt_in.shape[1], -1)  # (batch, tgt_len, 2*hidden)
            output, _ = self.decoder(torch.cat([embedded, context], -1), state)  # (batch, tgt_len, dim)
            return output
        output, _ = self.decoder(embedded, state)  # (batch, tgt_len, dim)
        context = self._general(output, keys, mask) @ memory  # (batch, tgt_len, 2*hidden)
        return torch.tanh(self.combine(torch.cat([context, output], -1)))

    def decode_loop(self, tgt_in: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor, state: State,
                    keys: torch.Tensor, teacher_forcing: float = 1.0) -> torch.Tensor:
        """Logits ``(batch, tgt_len, tgt_vocab)`` step by step; after ``<s>``, each example's input at each step is
        the gold token with probability ``teacher_forcing``, else the previous step's argmax (torch's global RNG)."""
        steps, extra, prev = [], None, tgt_in[:, 0]
        for t in range(tgt_in.shape[1]):
            logits, state, extra, _ = self.decode_step(prev, state, memory, mask, extra, keys)
            steps.append(logits)
            if t + 1 < tgt_in.shape[1]:
                prev = self._next_inputs(tgt_in[:, t + 1], logits, teacher_forcing)
        return torch.stack(steps, 1)  # (batch, tgt_len, tgt_vocab)

    @staticmethod
    def _next_inputs(gold: torch.Tensor, logits: torch.Tensor, teacher_forcing: float) -> torch.Tensor:
        """``gold (batch,)`` or, per example with probability 1 - ``teacher_forcing``, the argmax of ``logits``
        (never ``<pad>`` or ``<s>``, as in decoding)."""
        if teacher_forcing >= 1.0:
            return gold
        own = logits.detach().clone()
        own[:, [PAD_ID, START_ID]] = float("-inf")
        use_gold = torch.rand(gold.shape, device=gold.device) < teacher_forcing
        return torch.where(use_gold, gold, own.argmax(-1))

    # -- trainer interface ----------------------------------------------------------------------------------------

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits ``(batch, tgt_len, tgt_vocab)`` for ``tgt_in`` (teacher forcing as configured; always in eval)."""
        readouts, logits = self._decode(batch)
        return self._logits(readouts) if logits is None else logits

    def _decode(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(readouts (batch, tgt_len, dim), None)`` when every input is the gold token, else ``(None, logits)``:
        the model's own predictions need the logits of every step."""
        memory, mask, state = self.encode(batch["src"], batch["src_lengths"])
        keys = self.prepare(memory, mask)
        forcing = self.config.teacher_forcing if self.training else 1.0
        if forcing >= 1.0 and self.parallel_decoding:
            return self.readout_parallel(batch["tgt_in"], memory, mask, state, keys), None
        if forcing >= 1.0:
            return self.readout_loop(batch["tgt_in"], memory, mask, state, keys), None
        return None, self.decode_loop(batch["tgt_in"], memory, mask, state, keys, forcing)

    def readout_loop(self, tgt_in: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor, state: State,
                     keys: torch.Tensor) -> torch.Tensor:
        """Teacher-forced readouts ``(batch, tgt_len, dim)`` step by step (attention that needs the previous state)."""
        steps, extra = [], None
        for t in range(tgt_in.shape[1]):
            readout, state, extra, _ = self.readout_step(tgt_in[:, t], state, memory, mask, extra, keys)
            steps.append(readout)
        return torch.stack(steps, 1)  # (batch, tgt_len, dim)

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The trainer's view: label-smoothed cross-entropy per real target token, the ``count`` of real target
        tokens and the number of them ``correct``ly predicted (argmax).

        The output layer, the largest cost on a CPU (hidden x target vocabulary per token), runs only on the real
        target positions, not on padding."""
        targets = batch["tgt_out"]  # (batch, tgt_len)
        real = targets != PAD_ID
        readouts, logits = self._decode(batch)
        gold = targets[real]  # (real tokens,)
        if logits is None and self.adaptive is not None:
            return self._adaptive_step(self._output_input(readouts[real]), gold)
        logits = self._logits(readouts[real]) if logits is None else logits[real]  # (real tokens, tgt_vocab)
        loss = F.cross_entropy(logits.float(), gold, label_smoothing=self.config.label_smoothing)
        correct = (logits.detach().argmax(-1) == gold).sum()
        return {"loss": loss, "count": real.sum(), "correct": correct}

    def _adaptive_step(self, features: torch.Tensor, gold: torch.Tensor) -> dict[str, torch.Tensor]:
        """``step`` through the adaptive softmax for ``features (tokens, embedding_dim)``: label smoothing spreads
        its share over the head's tokens (the full distribution is what the adaptive softmax avoids computing);
        ``correct`` (exact argmax) in evaluation only."""
        target_log_prob, head_log_prob = adaptive_log_likelihood(self.adaptive, features.float(), gold)
        smoothing = self.config.label_smoothing
        uniform = -head_log_prob[:, :self.adaptive.shortlist_size].mean(-1)  # (tokens,)
        loss = ((1 - smoothing) * -target_log_prob + smoothing * uniform).mean()
        correct = gold.new_zeros(())
        if not self.training:
            with torch.no_grad():
                correct = (adaptive_argmax(self.adaptive, features, head_log_prob) == gold).sum()
        return {"loss": loss, "count": gold.new_tensor(gold.numel()), "correct": correct}


def adaptive_cutoffs(vocab_size: int) -> list[int]:
    """The adaptive softmax's cluster bounds for a vocabulary (ids in frequency order); [] (full softmax) when
    the vocabulary is no larger than the head."""
    return [c for c in ADAPTIVE_CUTOFFS if c < vocab_size - 1]


def adaptive_log_likelihood(adaptive: nn.AdaptiveLogSoftmaxWithLoss, features: torch.Tensor, gold: torch.Tensor,
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``log p(gold) (tokens,)`` and the head's log-probabilities ``(tokens, shortlist + clusters)``: each
    cluster's layer runs only on its own tokens (``AdaptiveLogSoftmaxWithLoss.forward``, keeping the head)."""
    head_log_prob = F.log_softmax(adaptive.head(features), -1)  # (tokens, shortlist + clusters)
    shortlist = adaptive.shortlist_size
    in_head = torch.where(gold < shortlist, gold, torch.zeros_like(gold))
    log_prob = head_log_prob.gather(1, in_head.unsqueeze(1)).squeeze(1)  # (tokens,)
    for i, (low, high) in enumerate(zip(adaptive.cutoffs[:-1], adaptive.cutoffs[1:])):
        rows = ((gold >= low) & (gold < high)).nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        cluster = F.log_softmax(adaptive.tail[i](features.index_select(0, rows)), -1)  # (rows, high - low)
        within = cluster.gather(1, (gold[rows] - low).unsqueeze(1)).squeeze(1)
        log_prob = log_prob.index_copy(0, rows, head_log_prob[rows, shortlist + i] + within)
    return log_prob, head_log_prob


def adaptive_argmax(adaptive: nn.AdaptiveLogSoftmaxWithLoss, features: torch.Tensor,
                    head_log_prob: torch.Tensor) -> torch.Tensor:
    """The most probable token of every row: the head's, or where a cluster wins the head, the full distribution's."""
    best = head_log_prob.argmax(-1)  # (tokens,)
    rows = (best >= adaptive.shortlist_size).nonzero().squeeze(1)
    if rows.numel():
        best = best.index_copy(0, rows, adaptive.log_prob(features.index_select(0, rows)).argmax(-1))
    return best
