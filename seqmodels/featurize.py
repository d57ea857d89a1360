"""Raw text -> model inputs: cleaning, tokenisation and vocabulary lookup, fitted once and saved.

A :class:`Featurizer` is the part of a model that turns text into :class:`SequenceData`; the same
object serves training (from the tokens stored in Parquet) and prediction (from raw text).

Optional per-token features for word-level models, computed once per unique token (and cached),
then gathered for every occurrence with NumPy, never per row in Python:

* subwords (fastText style): the character n-grams (``subword_min_n .. subword_max_n``) of
  ``<token>``, hashed with CRC-32 (stable across processes and machines) into ``subword_buckets``
  buckets; ids are ``1 .. subword_buckets`` (0 is padding). Unseen words share n-grams with seen ones.
* chars: the token's character ids (first ``char_max_len``) in a character vocabulary fitted on the
  training tokens, for a character-CNN word encoder.

``word_norm = "lower_digits"`` (taggers) looks words up lower-cased with every digit as ``0``, while
subwords and characters still see the token as written, so case and shape reach the model there.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

import pyarrow.compute as pc

from seqmodels.batching import SequenceData, _positions
from seqmodels.cleaning import CleanConfig, clean_column, shipped_stopwords, tokenize_column
from seqmodels.vocab import UNK_ID, Vocabulary, VocabConfig, char_token_lists

TOKENS_TYPE = pa.list_(pa.string())
WORD_NORMS = ("none", "lower_digits")


@dataclass
class FeaturizerConfig:
    """Cleaning steps and vocabulary settings of a model's input, and its optional per-token features
    (word-level vocabularies only): hashed character n-grams and character ids."""

    clean: CleanConfig = field(default_factory=CleanConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    subword_buckets: int = field(default=20_000, metadata={
        "help": "hashed character 3-5-gram buckets added to each word vector; 0 turns them off"})
    subword_min_n: int = 3
    subword_max_n: int = 5
    char_features: bool = field(default=False, metadata={"help": "a char-CNN over each word's characters"})
    char_max_len: int = 20
    word_norm: str = "none"

    def __post_init__(self) -> None:
        if isinstance(self.clean, dict):
            self.clean = CleanConfig(**self.clean)
        if isinstance(self.vocab, dict):
            self.vocab = VocabConfig(**self.vocab)
        if self.subword_buckets < 0 or not 1 <= self.subword_min_n <= self.subword_max_n:
            raise ValueError("need subword_buckets >= 0 and 1 <= subword_min_n <= subword_max_n")
        if self.word_norm not in WORD_NORMS:
            raise ValueError(f"word_norm must be one of {WORD_NORMS}, got {self.word_norm!r}")
        if self.char_max_len < 1:
            raise ValueError(f"char_max_len must be >= 1, got {self.char_max_len}")

    @property
    def uses_subwords(self) -> bool:
        return self.subword_buckets > 0 and self.vocab.level == "word"

    @property
    def uses_chars(self) -> bool:
        return self.char_features and self.vocab.level == "word"


# keys of FeaturizerConfig added after models were first saved, and their "off" values for old files
_LEGACY_OFF = {"subword_buckets": 0, "char_features": False}


def hashed_ngrams(token: str, min_n: int, max_n: int, buckets: int) -> list[int]:
    """Bucket ids (1..buckets) of the character n-grams of ``<token>``; deterministic across runs."""
    word = f"<{token}>"
    return [zlib.crc32(word[i : i + n].encode("utf-8")) % buckets + 1
            for n in range(min_n, max_n + 1) for i in range(len(word) - n + 1)]


def normalize_words(tokens: pa.ListArray, norm: str) -> pa.ListArray:
    """Tokens as the word vocabulary sees them: as written, or lower-cased with digits as ``0``."""
    tokens = _combined(tokens)
    if norm == "none":
        return tokens
    values = pc.replace_substring_regex(pc.utf8_lower(tokens.values), pattern=r"\d", replacement="0")
    return pa.ListArray.from_arrays(tokens.offsets, values)


@dataclass
class TokenizedTexts:
    """Raw texts after the length cap, cleaning and tokenisation, and what happened to each row."""

    cleaned: pa.Array
    tokens: pa.ListArray
    empty: np.ndarray  # (n,) bool: nothing left after cleaning (or a null text)
    truncated: np.ndarray  # (n,) bool: cut to max_chars characters or max_tokens tokens

    def reasons(self, max_tokens: int | None) -> np.ndarray:
        """(n,) object: :data:`EMPTY_AFTER_CLEANING`, ``truncated to N tokens`` or None per row."""
        out = np.full(len(self.empty), None, dtype=object)
        out[self.truncated] = f"truncated to {max_tokens} tokens"
        out[self.empty] = EMPTY_AFTER_CLEANING
        return out


EMPTY_AFTER_CLEANING = "empty after cleaning"


def tokenize_texts(texts: Sequence[str | None] | pa.Array | pa.ChunkedArray, clean: CleanConfig) -> TokenizedTexts:
    """Cut raw texts to ``clean.max_chars`` characters, clean and tokenise them, keep the first
    ``clean.max_tokens`` tokens (the cleaned string of a cut text is its kept tokens joined by spaces)."""
    arr = as_string_array(texts)
    cut = np.zeros(len(arr), dtype=bool)
    if clean.max_chars is not None:
        too_long = pc.fill_null(pc.greater(pc.utf8_length(arr), clean.max_chars), False)
        if pc.any(too_long).as_py():
            arr = pc.utf8_slice_codeunits(arr, 0, clean.max_chars)
            cut = too_long.to_numpy(zero_copy_only=False)
    cleaned = clean_column(arr, clean)
    tokens = pa.array(tokenize_column(cleaned, clean), type=TOKENS_TYPE)
    cleaned, tokens, over = _cap_tokens(cleaned, tokens, clean.max_tokens)
    empty = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(cleaned)), 0), True)
    return TokenizedTexts(cleaned, tokens, empty.to_numpy(zero_copy_only=False), cut | over)


def as_string_array(texts) -> pa.Array:
    """Texts as one Arrow string array."""
    if isinstance(texts, pa.ChunkedArray):
        return texts.combine_chunks()
    return texts if isinstance(texts, pa.Array) else pa.array(list(texts), type=pa.string())


def _cap_tokens(cleaned: pa.Array, tokens: pa.ListArray, max_tokens: int | None) -> tuple[pa.Array, pa.ListArray, np.ndarray]:
    """The first ``max_tokens`` tokens of each text, and which texts had more."""
    counts = pc.fill_null(pc.list_value_length(tokens), 0)
    if max_tokens is None or not pc.any(pc.greater(counts, max_tokens)).as_py():
        return cleaned, tokens, np.zeros(len(tokens), dtype=bool)
    over = pc.greater(counts, max_tokens)
    tokens = pc.list_slice(tokens, 0, max_tokens).cast(TOKENS_TYPE)
    cleaned = pc.if_else(over, pc.binary_join(tokens, " "), cleaned)
    return cleaned, tokens, over.to_numpy(zero_copy_only=False)


def text_to_tokens(texts: Sequence[str | None] | pa.Array, clean: CleanConfig) -> tuple[pa.Array, pa.ListArray]:
    """Cleaned strings and word tokens of raw texts (length cap applied), both as Arrow arrays."""
    tokenized = tokenize_texts(texts, clean)
    return tokenized.cleaned, tokenized.tokens


class Featurizer:
    """Cleaning config + vocabulary: encodes token lists or raw texts into id sequences."""

    def __init__(self, config: FeaturizerConfig, vocab: Vocabulary, char_vocab: Vocabulary | None = None):
        if config.uses_chars and char_vocab is None:
            raise ValueError("char_features needs a character vocabulary (fit the featurizer)")
        self.config, self.vocab, self.char_vocab = config, vocab, char_vocab if config.uses_chars else None
        self._cache: dict[str, dict[str, np.ndarray]] = {"subwords": {}, "chars": {}}

    @classmethod
    def fit(cls, cleaned: pa.Array, tokens: pa.ListArray, config: FeaturizerConfig) -> "Featurizer":
        """Fit the vocabulary on the training split's tokens (or characters, for a char-level vocabulary),
        and the character vocabulary of the tokens when char features are on."""
        units = (char_token_lists(cleaned.to_pylist()) if config.vocab.level == "char"
                 else normalize_words(tokens, config.word_norm).to_pylist())
        config = replace(config, clean=config.clean.with_stopwords_pinned())  # saved, so serving removes the same words
        char_vocab = None
        if config.uses_chars:
            uniques = pc.unique(pc.list_flatten(_combined(tokens))).drop_null().to_pylist()
            char_vocab = Vocabulary.fit(uniques and [list("".join(uniques))], VocabConfig(level="char", max_size=None))
        return cls(config, Vocabulary.fit(units, config.vocab), char_vocab)

    def encoder_fields(self) -> dict:
        """The EncoderConfig fields this featurizer determines (vocabulary sizes, subword buckets)."""
        return {"vocab_size": len(self.vocab),
                "subword_buckets": self.config.subword_buckets if self.config.uses_subwords else 0,
                "char_vocab_size": len(self.char_vocab) if self.char_vocab is not None else 0}

    def units(self, cleaned: pa.Array | None, tokens: pa.ListArray) -> pa.ListArray:
        """What the vocabulary indexes: the (normalised) word tokens, or the characters of the cleaned text."""
        if self.config.vocab.level == "char":
            return pa.array(char_token_lists(cleaned.to_pylist()), type=TOKENS_TYPE)
        return normalize_words(tokens, self.config.word_norm)

    def encode(self, cleaned: pa.Array | None, tokens: pa.ListArray, targets: np.ndarray | None = None,
               token_targets: np.ndarray | None = None) -> SequenceData:
        """Model inputs for already cleaned and tokenised texts (as stored in the preprocessed Parquet).

        ``targets``: one class id per text; ``token_targets``: one tag id per token, flat in text order
        (tagging; then no text may be empty, since an empty text is encoded as one ``<unk>``).
        """
        data = SequenceData.from_arrow(self.vocab.encode(self.units(cleaned, tokens)), targets)
        if token_targets is not None:
            if len(token_targets) != len(data.ids):
                raise ValueError(f"{len(token_targets)} token targets for {len(data.ids)} tokens; "
                                 "every sentence needs one tag per token and at least one token")
            data.token_targets = np.asarray(token_targets, dtype=np.int64)
        if self.config.uses_subwords or self.config.uses_chars:
            self._add_token_features(data, _combined(tokens))
        return data

    def _add_token_features(self, data: SequenceData, tokens: pa.ListArray) -> None:
        """Per-token CSR features aligned with ``data.ids`` (an empty text's ``<unk>`` gets none)."""
        flat = pc.list_flatten(tokens)
        encoded = pc.dictionary_encode(flat)  # each unique token once
        occurrence = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)  # (n_tokens,)
        uniques = [t or "" for t in encoded.dictionary.to_pylist()]
        raw_lengths = tokens.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
        nonempty = raw_lengths > 0
        dest = _positions(data.offsets[:-1][nonempty], raw_lengths[nonempty])  # (n_tokens,) slot in data.ids
        cfg = self.config
        if cfg.uses_subwords:
            values, offsets = self._gather("subwords", uniques, occurrence, dest, len(data.ids),
                                           lambda t: hashed_ngrams(t, cfg.subword_min_n, cfg.subword_max_n,
                                                                   cfg.subword_buckets))
            data.subword_ids, data.subword_offsets = values, offsets
        if cfg.uses_chars:
            index = self.char_vocab.index
            values, offsets = self._gather("chars", uniques, occurrence, dest, len(data.ids),
                                           lambda t: [index.get(c, UNK_ID) for c in t[: cfg.char_max_len]])
            data.char_ids, data.char_offsets = values, offsets

    def _gather(self, kind: str, uniques: list[str], occurrence: np.ndarray, dest: np.ndarray, n_slots: int,
                compute) -> tuple[np.ndarray, np.ndarray]:
        """Feature ids of every token occurrence, computed once per unique token (cached across calls)."""
        cache = self._cache[kind]
        if len(cache) > 2_000_000:  # bound memory on endless prediction streams
            cache.clear()
        per_unique = []
        for token in uniques:
            ids = cache.get(token)
            if ids is None:
                ids = cache[token] = np.asarray(compute(token), dtype=np.int64)
            per_unique.append(ids)
        u_lengths = np.fromiter((len(a) for a in per_unique), dtype=np.int64, count=len(per_unique))
        u_values = np.concatenate(per_unique) if per_unique else np.empty(0, dtype=np.int64)
        u_starts = np.cumsum(u_lengths) - u_lengths
        lengths = u_lengths[occurrence]  # (n_tokens,)
        values = u_values[_positions(u_starts[occurrence], lengths)]  # concatenated in token order
        slot_lengths = np.zeros(n_slots, dtype=np.int64)
        slot_lengths[dest] = lengths
        return values, np.concatenate([[0], np.cumsum(slot_lengths)]).astype(np.int64)

    def tokenize(self, texts: Sequence[str | None] | pa.Array) -> TokenizedTexts:
        """Raw texts through the training preprocessing (length cap, cleaning, tokens)."""
        return tokenize_texts(texts, self.config.clean)

    def encode_texts(self, texts: Sequence[str | None] | pa.Array, targets: np.ndarray | None = None) -> SequenceData:
        """Model inputs for raw texts: the training preprocessing, then the vocabulary."""
        tokenized = self.tokenize(texts)
        return self.encode(tokenized.cleaned, tokenized.tokens, targets)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        data = asdict(self.config)
        if self.char_vocab is not None:  # kept in featurizer.json so a model directory's file set is unchanged
            data["char_vocab"] = self.char_vocab.to_dict()
        (directory / "featurizer.json").write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        self.vocab.save(directory / "vocab.json")

    @classmethod
    def load(cls, directory: str | Path) -> "Featurizer":
        directory = Path(directory)
        data = json.loads((directory / "featurizer.json").read_text(encoding="utf-8"))
        char_vocab = data.pop("char_vocab", None)
        for key, off in _LEGACY_OFF.items():  # files saved before these features existed had them off
            data.setdefault(key, off)
        data["clean"] = _legacy_clean(data.get("clean", {}))
        config = FeaturizerConfig(**data)
        return cls(config, Vocabulary.load(directory / "vocab.json"),
                   Vocabulary.from_dict(char_vocab) if char_vocab is not None else None)


def _legacy_clean(clean: dict) -> dict:
    """A saved ``clean`` config completed for files written before a key existed: without ``stopwords``
    a model used whatever list its machine had, so it gets the shipped list (the same everywhere); without
    ``keep_chars`` it was trained on ASCII-only cleaning and keeps it."""
    clean = dict(clean)
    if "stopwords" not in clean:
        clean["stopwords"] = list(shipped_stopwords())
    clean.setdefault("keep_chars", "ascii")  # before issue 11 only ASCII letters and digits were kept
    return clean


def _combined(tokens: pa.ListArray | pa.ChunkedArray) -> pa.ListArray:
    return tokens.combine_chunks() if isinstance(tokens, pa.ChunkedArray) else tokens
