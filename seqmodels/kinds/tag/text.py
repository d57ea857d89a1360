"""Raw text -> word tokens with character spans, and BIO tags -> entity dicts with character offsets.

Tokens come from NLTK's Treebank tokenizer (no NLTK data needed) and are always the surface form
``text[start:end]`` (quotes stay as written). Inputs it cannot align fall back to a simple regex tokenizer.
"""

from __future__ import annotations

import re
from typing import Sequence

from nltk.tokenize import TreebankWordTokenizer

from seqmodels.kinds.tag.metrics import extract_entities
from seqmodels.kinds.tag.readers import is_bio_tagset

Span = tuple[int, int]  # (start, end exclusive) character offsets

_TREEBANK = TreebankWordTokenizer()
_FALLBACK = re.compile(r"\w+(?:[-'.]\w+)*|[^\w\s]")


def tokenize_with_spans(text: str | None) -> tuple[list[str], list[Span]]:
    """Word tokens of ``text`` and their ``(start, end_exclusive)`` spans; ``([], [])`` for empty text."""
    if not text or text.isspace():
        return [], []
    try:
        spans = [(int(start), int(end)) for start, end in _TREEBANK.span_tokenize(text)]
    except ValueError:  # span alignment fails on some unusual quote patterns
        spans = [match.span() for match in _FALLBACK.finditer(text)]
    return [text[start:end] for start, end in spans], spans


def entities_from_tags(tokens: Sequence[str], tags: Sequence[str], spans: Sequence[Span] | None = None,
                       text: str | None = None) -> list[dict]:
    """Entities of one sentence from BIO tags (conlleval rules); ``[]`` when the tags are not BIO.

    Each entity is ``{"type", "start", "end" (token indices, end exclusive), "text", "char_start",
    "char_end"}``; char offsets need ``spans`` (else None) and ``text`` is sliced from the raw text when
    both are given, else the tokens joined by single spaces.
    """
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags")
    if spans is not None and len(spans) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(spans)} spans")
    if not is_bio_tagset(tags):
        return []
    entities = []
    for kind, start, end in extract_entities(tags, mode="conlleval"):
        char_start, char_end = (spans[start][0], spans[end - 1][1]) if spans is not None else (None, None)
        if spans is not None and text is not None:
            surface = text[char_start:char_end]
        else:
            surface = " ".join(tokens[start:end])
        entities.append({"type": kind, "start": start, "end": end, "text": surface,
                         "char_start": char_start, "char_end": char_end})
    return entities
