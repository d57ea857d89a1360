"""Reversible tokenisation for translation, and vocabularies with start / end tokens.

Word level splits a sentence into runs of letters / digits and single other characters; a token that
follows whitespace carries a leading ``▁`` (as SentencePiece writes it), so :func:`detokenize` gives the
sentence back exactly (apart from runs of whitespace, which become one space): "J'ai froid." ->
``["▁J", "'", "ai", "▁froid", "."]``. Subword level (``bpe``) splits those word tokens further into byte-pair
units (:mod:`seqmodels.subwords`; the codec does that with its vocabulary), which join back the same way.
Character level keeps every character, spaces included. BLEU and chrF
are computed on the detokenised text against the raw references.
"""

from __future__ import annotations

import re
from typing import Iterable, Literal, Sequence

from seqmodels.vocab import PAD, UNK, VocabConfig, Vocabulary

START, END = "<s>", "</s>"
START_ID, END_ID = 2, 3
SPECIALS = (PAD, UNK, START, END)  # the first tokens of every vocabulary, in id order
SPACE = "▁"
Level = Literal["word", "bpe", "char"]
_WORD = re.compile(r"(\s*)(\w+|[^\w\s])")


def tokenize(text: str, level: Level = "word") -> list[str]:
    """The tokens of ``text`` (see the module docstring); ``bpe`` gives word tokens, to be split into units."""
    if level == "char":
        return list(" ".join(text.split()))
    return [(SPACE if space or i == 0 else "") + token for i, (space, token) in enumerate(_WORD.findall(text))]


def detokenize(tokens: Sequence[str], level: Level = "word") -> str:
    """The text of ``tokens``: the inverse of :func:`tokenize`."""
    if level == "char":
        return "".join(tokens)
    return "".join(tokens).replace(SPACE, " ").strip()


def fit_vocabulary(token_lists: Iterable[Sequence[str]], level: Level, max_size: int | None = None,
                   min_freq: int = 1) -> Vocabulary:
    """``<pad>``, ``<unk>``, ``<s>``, ``</s>``, then the most frequent tokens (at least ``min_freq`` times); a
    ``bpe`` vocabulary is one of word pieces, saved as word level (they detokenise alike)."""
    level = "char" if level == "char" else "word"
    fitted = Vocabulary.fit(token_lists, VocabConfig(level=level, max_size=max_size, min_freq=min_freq))
    return Vocabulary([*SPECIALS, *[t for t in fitted.tokens[2:] if t not in (START, END)]], level=level)


def encode(vocab: Vocabulary, tokens: Sequence[str]) -> list[int]:
    """Ids of ``tokens`` (unknown ones are ``<unk>``)."""
    return [vocab.index.get(t, 1) for t in tokens]


def decode(vocab: Vocabulary, ids: Sequence[int], copies: dict[int, str] | None = None) -> str:
    """Text of ``ids``: padding, start and end left out; ``copies`` (position in ``ids`` -> token) stand in for the
    tokens there; an unknown token shows as ``<unk>``."""
    copies = copies or {}
    return detokenize([copies.get(j, vocab.tokens[i]) for j, i in enumerate(ids) if i not in (0, START_ID, END_ID)],
                      vocab.level)
