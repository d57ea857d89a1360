"""Seed baseline for tagging: the PyTorch tutorial's per-sentence LSTM tagger, as the speed reference.

Reproduces "Sequence Models and Long Short-Term Memory Networks" (pytorch.org tutorials): ``LSTMTagger``
(``nn.Embedding`` -> ``nn.LSTM`` over a batch of one, sequence-first -> ``nn.Linear`` -> ``F.log_softmax``),
trained one sentence at a time with ``NLLLoss`` and ``optim.SGD(lr=0.1)``: per sentence ``model.zero_grad()``,
``prepare_sequence`` (``torch.tensor([to_ix[w] for w in seq])``), forward, ``loss.backward()``,
``optimizer.step()``. Inference is likewise one sentence at a time under ``torch.no_grad()``.

Deviations from the tutorial, all needed to compare with our models or to run on a real corpus:

* model size is parameterised (``embedding_dim``, ``hidden_dim``, ``num_layers``, ``bidirectional``; a
  bidirectional LSTM has ``hidden_dim`` per direction and the Linear reads ``2 * hidden_dim``);
* the word index has ``"<unk>"`` at 0, and words missing from it map there (the tutorial has no unseen words);
* each sentence's ``loss.item()`` is read to report ``mean_loss`` (one scalar read a sentence);
* an epoch may stop early after ``max_sentences`` or ``time_limit_s`` so a rate can be measured on a subset;
  empty sentences are skipped (an LSTM cannot run over zero steps).

Run: ``python -m bench.tag_baseline [--data PATH] [--time-limit S] [--max-sentences N] [--threads N]``;
one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

UNK = "<unk>"
UNK_IX = 0
DEFAULT_DATA = "/work/shared/datasets/conll2003/train.txt"


@dataclass(frozen=True)
class LessonTaggerConfig:
    """Model size and learning rate of the tutorial tagger (the tutorial itself uses 6/6, 1 layer, one way)."""

    embedding_dim: int = 100
    hidden_dim: int = 100
    num_layers: int = 1
    bidirectional: bool = True
    lr: float = 0.1


class LessonTagger(nn.Module):
    """The tutorial's ``LSTMTagger``: embedding, LSTM over one sentence, linear layer, log-softmax."""

    def __init__(self, embedding_dim: int, hidden_dim: int, vocab_size: int, tagset_size: int,
                 num_layers: int = 1, bidirectional: bool = False) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.word_embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, num_layers=num_layers, bidirectional=bidirectional)
        self.hidden2tag = nn.Linear(hidden_dim * (2 if bidirectional else 1), tagset_size)

    def forward(self, sentence: torch.Tensor) -> torch.Tensor:
        """Word ids of one sentence, shape (len,) -> tag log-probabilities, shape (len, num_tags)."""
        embeds = self.word_embeddings(sentence)
        lstm_out, _ = self.lstm(embeds.view(len(sentence), 1, -1))
        tag_space = self.hidden2tag(lstm_out.view(len(sentence), -1))
        return F.log_softmax(tag_space, dim=1)


def build_index(sentences: Sequence[Sequence[str]]) -> dict[str, int]:
    """The tutorial's ``word_to_ix`` loop (ids in first-seen order), with ``"<unk>"`` at 0."""
    word_to_ix: dict[str, int] = {UNK: UNK_IX}
    for sent in sentences:
        for word in sent:
            if word not in word_to_ix:
                word_to_ix[word] = len(word_to_ix)
    return word_to_ix


def build_tag_index(tags: Sequence[Sequence[str]]) -> dict[str, int]:
    """Tag -> id in first-seen order (no unknown entry: every training tag is known)."""
    tag_to_ix: dict[str, int] = {}
    for sent_tags in tags:
        for tag in sent_tags:
            if tag not in tag_to_ix:
                tag_to_ix[tag] = len(tag_to_ix)
    return tag_to_ix


def prepare_sequence(seq: Sequence[str], to_ix: dict[str, int], unk: int | None = None) -> torch.Tensor:
    """The tutorial's ``prepare_sequence``; with ``unk`` given, items missing from ``to_ix`` map to it."""
    if unk is None:
        idxs = [to_ix[w] for w in seq]
    else:
        idxs = [to_ix.get(w, unk) for w in seq]
    return torch.tensor(idxs, dtype=torch.long)


def train_epoch_per_sentence(model: nn.Module, optimizer: torch.optim.Optimizer,
                             sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]],
                             word_to_ix: dict[str, int], tag_to_ix: dict[str, int],
                             max_sentences: int | None = None,
                             time_limit_s: float | None = None) -> dict[str, Any]:
    """One (possibly partial) epoch of the tutorial's loop, one sentence per step, in the given order.

    Stops after ``max_sentences`` sentences, or once ``time_limit_s`` seconds have passed (checked after
    each sentence, so at least one runs). Returns sentences and tokens trained on, wall seconds (index
    lookups included), ``tokens_per_s`` and ``mean_loss`` (mean of the per-sentence losses; NaN if none).
    """
    if len(sentences) != len(tags):
        raise ValueError(f"{len(sentences)} sentences but {len(tags)} tag sequences")
    loss_function = nn.NLLLoss()
    model.train()
    n_sentences = n_tokens = 0
    loss_sum = 0.0
    start = time.perf_counter()
    for sentence, sent_tags in zip(sentences, tags):
        if max_sentences is not None and n_sentences >= max_sentences:
            break
        if len(sentence) != len(sent_tags):
            raise ValueError(f"sentence {n_sentences}: {len(sentence)} tokens but {len(sent_tags)} tags")
        if not sentence:
            continue
        model.zero_grad()
        sentence_in = prepare_sequence(sentence, word_to_ix, unk=UNK_IX)
        targets = prepare_sequence(sent_tags, tag_to_ix)
        tag_scores = model(sentence_in)
        loss = loss_function(tag_scores, targets)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item()
        n_sentences += 1
        n_tokens += len(sentence)
        if time_limit_s is not None and time.perf_counter() - start >= time_limit_s:
            break
    seconds = time.perf_counter() - start
    return {"sentences": n_sentences, "tokens": n_tokens, "seconds": seconds,
            "tokens_per_s": n_tokens / seconds if seconds > 0 else 0.0,
            "mean_loss": loss_sum / n_sentences if n_sentences else math.nan}


def run_lesson_speed(sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]],
                     config: LessonTaggerConfig = LessonTaggerConfig(), max_sentences: int | None = None,
                     time_limit_s: float | None = None, seed: int = 0) -> dict[str, Any]:
    """Build indices, the tagger and SGD, train one (partial) epoch; the epoch's dict plus ``config``.

    Index and model construction are outside the timed span.
    """
    torch.manual_seed(seed)
    word_to_ix = build_index(sentences)
    tag_to_ix = build_tag_index(tags)
    model = LessonTagger(config.embedding_dim, config.hidden_dim, len(word_to_ix), len(tag_to_ix),
                         num_layers=config.num_layers, bidirectional=config.bidirectional)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    result = train_epoch_per_sentence(model, optimizer, sentences, tags, word_to_ix, tag_to_ix,
                                      max_sentences=max_sentences, time_limit_s=time_limit_s)
    result["config"] = asdict(config)
    return result


def predict_per_sentence(model: nn.Module, sentences: Sequence[Sequence[str]],
                         word_to_ix: dict[str, int]) -> list[list[int]]:
    """The tutorial's inference: one sentence at a time under ``no_grad``, argmax tag id per token.

    Unseen words map to ``"<unk>"``; an empty sentence gives an empty list.
    """
    predictions: list[list[int]] = []
    with torch.no_grad():
        for sentence in sentences:
            if not sentence:
                predictions.append([])
                continue
            tag_scores = model(prepare_sequence(sentence, word_to_ix, unk=UNK_IX))
            predictions.append(tag_scores.argmax(dim=1).tolist())
    return predictions


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: read a CoNLL-2003 file, train one (partial) epoch, print the result as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--format", default="conll2003")
    parser.add_argument("--time-limit", type=float, default=20.0, help="seconds; <= 0 for no limit")
    parser.add_argument("--max-sentences", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from seqmodels.kinds.tag.readers import read_tagged

    torch.set_num_threads(args.threads)
    frame = read_tagged(args.data, args.format)
    result = run_lesson_speed(list(frame["tokens"]), list(frame["tags"]), LessonTaggerConfig(),
                              max_sentences=args.max_sentences,
                              time_limit_s=args.time_limit if args.time_limit > 0 else None, seed=args.seed)
    result.update(data=args.data, threads=args.threads, corpus_sentences=len(frame))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
