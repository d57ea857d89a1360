r"""Text cleaning and word tokenisation, vectorised over whole columns.

The steps are the ones of the Made-With-ML RNN lesson, each switchable in :class:`CleanConfig`:
lowercase, English stopword removal, drop text in parentheses, space out punctuation, drop
non-alphanumerics, collapse whitespace. Every step is one pyarrow compute kernel (RE2 regexes,
compiled once per call over the whole column), never a Python regex per row.

"Alphanumeric" means the letters, marks and digits of every script (``\p{L}\p{M}\p{N}``), so Cyrillic,
CJK, Devanagari or Thai text and accents written as combining marks survive cleaning; text is put in
Unicode NFC first (:func:`nfc_column`, Python's ``unicodedata`` on non-ASCII rows only) so a combining
accent and the precomposed letter give the same token. Models saved before this keep their ASCII-only
cleaning (``keep_chars="ascii"``).
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Iterable

import pyarrow as pa
import pyarrow.compute as pc

TOKENIZERS = ("whitespace", "treebank")
# what drop_non_alphanumeric keeps: letters, marks and digits of every script, or (models saved before
# issue 11) ASCII letters and digits only
KEEP_CHARS = {"unicode": r"[^\p{L}\p{M}\p{N}]+", "ascii": r"[^A-Za-z0-9]+"}
# Default length cap, in tokens after cleaning. The shipped English data is far below it (longest text:
# 17 tokens in AG News titles, 18 in TREC, 66 in SUBJ after cleaning; 99th percentiles 12, 12 and 29), and
# cleaning keeps about half of prose's words (SUBJ median 22 raw -> 11 cleaned), so 400 keeps a review of
# roughly 800 words whole while a 10k-token text no longer makes an epoch last minutes.
DEFAULT_MAX_TOKENS = 400
# Raw characters kept per allowed token before any regex runs, so memory stays bounded on a 30 MB line.
# Measured 5.0-6.2 characters per whitespace token in AG News, TREC and SUBJ, and about 2 raw tokens per
# kept token: 64 leaves a 5x margin (25,600 characters at the default cap).
CHARS_PER_TOKEN = 64
# a word (letters, marks, digits, "_") holding a non-ASCII letter, mark or digit: RE2's \b only knows ASCII
# word characters, so without this "naïve" would lose its stopword "ve" and "très" its "s"
_NON_ASCII_WORD = r"[\p{L}\p{M}\p{N}_]*(?:[^\P{L}\x00-\x7F]|\p{M}|[^\P{N}\x00-\x7F])[\p{L}\p{M}\p{N}_]*"


def token_cap(text: str | int | None) -> int | None:
    """A length cap in tokens: a positive integer, or 0 / None for no cap (None)."""
    if text is None:
        return None
    number = int(text)
    if number < 0:
        raise ValueError(f"must be 0 (no cap) or a positive number of tokens, not {text}")
    return number or None


@dataclass(frozen=True)
class CleanConfig:
    """Which cleaning steps run, in the lesson's order, then how text is split into tokens.

    ``keep_chars``: ``unicode`` keeps letters, marks and digits of every script (after NFC normalisation);
    ``ascii`` only ``A-Za-z0-9`` (the cleaning of models saved before, kept for them).
    ``max_tokens``: the most tokens kept per text (its first ones; a character-level vocabulary sees the
    characters of those tokens); the raw text is first cut to :attr:`max_chars` characters. Taggers
    instead tag a longer sentence in windows of ``max_tokens``. None: no cap.
    ``stopwords``: the list removed by ``remove_stopwords``. None means this machine's
    :func:`english_stopwords` (NLTK's corpus when installed, else the shipped copy); fitting a featurizer
    pins it to that list, so a saved model removes the same words wherever it predicts.
    """

    lower: bool = field(default=True, metadata={"help": "lower-case the text"})
    remove_stopwords: bool = field(default=True, metadata={"help": "drop NLTK English stopwords"})
    drop_parentheses: bool = field(default=False, metadata={"help": "drop text in parentheses"})
    space_punctuation: bool = True
    drop_non_alphanumeric: bool = True
    collapse_whitespace: bool = True
    tokenizer: str = "whitespace"
    stopwords: tuple[str, ...] | None = None
    keep_chars: str = "unicode"
    max_tokens: int | None = field(default=DEFAULT_MAX_TOKENS, metadata={
        "help": "a longer text keeps its first N tokens; predictions say so in 'reason'; 0 for no cap",
        "parse": token_cap, "metavar": "N"})

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {self.tokenizer!r}")
        if self.keep_chars not in KEEP_CHARS:
            raise ValueError(f"keep_chars must be one of {sorted(KEEP_CHARS)}, got {self.keep_chars!r}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 (or None for no cap), got {self.max_tokens}")
        if self.stopwords is not None and not isinstance(self.stopwords, tuple):  # a JSON list from featurizer.json
            object.__setattr__(self, "stopwords", tuple(self.stopwords))

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def max_chars(self) -> int | None:
        """Raw characters kept before cleaning (``max_tokens * CHARS_PER_TOKEN``); None without a cap."""
        return None if self.max_tokens is None else self.max_tokens * CHARS_PER_TOKEN

    def with_stopwords_pinned(self) -> "CleanConfig":
        """This config with ``stopwords`` set to the list in use now (when stopwords are removed)."""
        if not self.remove_stopwords or self.stopwords is not None:
            return self
        return replace(self, stopwords=english_stopwords())

    def active_stopwords(self) -> tuple[str, ...]:
        """The stopword list this config removes: its own, else this machine's."""
        return self.stopwords if self.stopwords is not None else english_stopwords()


@lru_cache(maxsize=1)
def english_stopwords() -> tuple[str, ...]:
    """NLTK's English stopword list: NLTK's corpus when installed, else the copy shipped here.

    NLTK itself (a second to import) is only imported when it is already loaded or its data directories
    hold the stopwords corpus.
    """
    if "nltk" in sys.modules or _nltk_stopwords_installed():
        try:
            from nltk.corpus import stopwords

            return tuple(stopwords.words("english"))
        except LookupError:
            pass
    return shipped_stopwords()


@lru_cache(maxsize=1)
def shipped_stopwords() -> tuple[str, ...]:
    """The copy of NLTK's English stopword list shipped in ``seqmodels/data`` (the same on every machine)."""
    text = resources.files("seqmodels").joinpath("data/english_stopwords.txt").read_text("utf-8")
    return tuple(w for w in text.split() if w)


def _nltk_stopwords_installed() -> bool:
    """Whether ``corpora/stopwords`` (folder or zip) is in one of the directories ``nltk.data.path`` starts with."""
    dirs = [os.path.expanduser(d) for d in os.environ.get("NLTK_DATA", "").split(os.pathsep) if d]
    dirs += [os.path.expanduser("~/nltk_data"), os.path.join(sys.prefix, "nltk_data"),
             os.path.join(sys.prefix, "share", "nltk_data"), os.path.join(sys.prefix, "lib", "nltk_data"),
             "/usr/share/nltk_data", "/usr/local/share/nltk_data", "/usr/lib/nltk_data", "/usr/local/lib/nltk_data",
             os.path.join(os.environ.get("APPDATA", "C:\\"), "nltk_data"), r"C:\nltk_data", r"D:\nltk_data", r"E:\nltk_data"]
    return any(os.path.exists(os.path.join(d, "corpora", name)) for d in dirs for name in ("stopwords", "stopwords.zip"))


@lru_cache(maxsize=4)
def _stopword_pattern(words: tuple[str, ...], unicode_words: bool) -> tuple[str, str]:
    """``(pattern, replacement)``: one RE2 alternation for all stopwords, longest first so ``don't`` wins
    over ``don``, removed with the spaces after them.

    With ``unicode_words`` a word holding a non-ASCII letter, mark or digit is matched first, as a whole,
    and put back unchanged (``\\1``), so no stopword is cut out of it; pure ASCII text is unaffected.
    """
    ordered = sorted(words, key=len, reverse=True)
    stop = r"\b(?:" + "|".join(re.escape(w) for w in ordered) + r")\b\s*"
    return (f"({_NON_ASCII_WORD})|{stop}", r"\1") if unicode_words else (stop, "")


def non_ascii_rows(texts: pa.Array) -> pa.BooleanArray:
    """Which strings hold a non-ASCII character (null strings: False)."""
    return pc.fill_null(pc.invert(pc.string_is_ascii(texts)), False)


def nfc_column(texts: pa.Array, non_ascii: pa.BooleanArray) -> pa.Array:
    """Every string in Unicode NFC, so ``e`` + combining acute and ``é`` are the same text.

    Not ``pc.utf8_normalize``: in pyarrow 25 its NFC output is decomposed (apache/arrow#51225). ASCII
    strings are already NFC, so only the ``non_ascii`` rows go through :func:`unicodedata.normalize`.
    """
    if not pc.any(non_ascii).as_py():
        return texts
    composed = [unicodedata.normalize("NFC", t) for t in texts.filter(non_ascii).to_pylist()]
    return pc.replace_with_mask(texts, non_ascii, pa.array(composed, type=texts.type))


def remove_stopwords(texts: pa.Array, words: tuple[str, ...], non_ascii: pa.BooleanArray | None) -> pa.Array:
    """Drop whole-word stopwords and the spaces after them.

    ``non_ascii`` (Unicode cleaning): those rows use the pattern that keeps words with non-ASCII letters
    whole; it is 4-5x slower than the plain one (0.40 s vs 0.09 s on 200k AG News titles), and on ASCII
    text both give the same result, so ASCII rows keep the plain pattern.
    """
    plain, _ = _stopword_pattern(words, False)
    out = pc.replace_substring_regex(texts, plain, "")
    if non_ascii is None or not pc.any(non_ascii).as_py():
        return out
    pattern, replacement = _stopword_pattern(words, True)
    return pc.replace_with_mask(out, non_ascii, pc.replace_substring_regex(texts.filter(non_ascii), pattern, replacement))


def clean_column(texts: pa.Array | pa.ChunkedArray | Iterable[str], config: CleanConfig = CleanConfig()) -> pa.Array:
    """Apply the configured cleaning steps to a whole column of strings; nulls stay null."""
    arr = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(list(texts), type=pa.string())
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    non_ascii = non_ascii_rows(arr) if config.keep_chars == "unicode" else None  # lower-casing keeps ASCII ASCII
    if non_ascii is not None:
        arr = nfc_column(arr, non_ascii)
    if config.lower:
        arr = pc.utf8_lower(arr)
    if config.remove_stopwords:
        arr = remove_stopwords(arr, config.active_stopwords(), non_ascii)
    if config.drop_parentheses:
        arr = pc.replace_substring_regex(arr, r"\([^)]*\)", "")
    if config.space_punctuation:
        arr = pc.replace_substring_regex(arr, r"([-;.,!?<=>])", r" \1 ")
    if config.drop_non_alphanumeric:
        arr = pc.replace_substring_regex(arr, KEEP_CHARS[config.keep_chars], " ")
    if config.collapse_whitespace:
        arr = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, r"\s+", " "))
    return arr


def tokenize_column(cleaned: pa.Array, config: CleanConfig = CleanConfig()) -> pa.ListArray:
    """Split cleaned strings into word tokens (``list<string>``): on whitespace, vectorised, or by
    NLTK's Treebank rules."""
    if config.tokenizer == "whitespace":
        return pc.utf8_split_whitespace(cleaned)
    from nltk.tokenize import TreebankWordTokenizer

    tokenizer = TreebankWordTokenizer()
    tokens = [tokenizer.tokenize(t) if t is not None else None for t in cleaned.to_pylist()]
    return pa.array(tokens, type=pa.list_(pa.string()))


def clean_and_tokenize(texts, config: CleanConfig = CleanConfig()) -> tuple[list[str], list[list[str]]]:
    """Cleaned strings and their tokens for a batch of raw texts."""
    cleaned = clean_column(texts, config)
    return cleaned.to_pylist(), tokenize_column(cleaned, config).to_pylist()
