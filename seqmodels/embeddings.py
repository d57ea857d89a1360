"""Pretrained word vectors (word2vec text and binary, GloVe, fastText ``.vec``) read and aligned to a vocabulary.

Formats, told apart as follows:

* a file whose name ends in ``.bin`` is word2vec binary: an ASCII ``"N D"`` header line, then per word
  its UTF-8 bytes, one space and ``D`` little-endian float32 values, optionally followed by a newline;
* any other file is UTF-8 text, one ``word v1 ... vD`` line per word. When its first line is exactly two
  integers ``"N D"`` it is a header (word2vec text, fastText ``.vec``); otherwise there is none (GloVe)
  and the dimension is that of the first line.

A header's count ``N`` may disagree with the number of vectors (truncated files are common); its
dimension ``D`` may not. In text files a line with more fields than ``D + 1`` takes its last ``D``
fields as values and the rest, joined by spaces, as the word (GloVe 840B has such words); when those
extra fields are all numbers the line is an error instead. Repeated words keep their first vector.
"""

from __future__ import annotations

import mmap
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqmodels.vocab import PAD_ID

_COUNT = re.compile(r"\d+")


@dataclass(frozen=True)
class Vectors:
    """Words and their vectors: row ``i`` of ``matrix`` (n_words, dim), float32, belongs to ``words[i]``."""

    words: list[str]
    matrix: np.ndarray

    def __post_init__(self) -> None:
        matrix = np.asarray(self.matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(self.words):
            raise ValueError(f"matrix of shape {matrix.shape} does not hold one row per word ({len(self.words)} words)")
        object.__setattr__(self, "matrix", matrix)

    @property
    def dim(self) -> int:
        """Length of each vector."""
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.words)


def read_vectors(path: str | Path, max_words: int | None = None) -> Vectors:
    """Read a vector file (``.bin``: word2vec binary, else text with or without header), first ``max_words`` words."""
    path = Path(path)
    if max_words is not None and max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    if path.suffix.lower() == ".bin":
        return _read_binary(path, max_words)
    return _read_text(path, max_words)


# ---------------------------------------------------------------- text formats


def _read_text(path: Path, max_words: int | None) -> Vectors:
    """Read word2vec text / fastText ``.vec`` (header line) or GloVe (no header) vectors."""
    words: list[str] = []
    rows: list[np.ndarray] = []
    seen: set[str] = set()
    dim = 0
    origin = ""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = _decode_line(raw, path, lineno).rstrip()
            if not line:
                continue
            fields = line.split(" ")
            if not dim:
                dim, origin, is_header = _text_dimension(fields, path, lineno)
                if is_header:
                    continue
            word, vector = _parse_text_vector(fields, dim, origin, path, lineno)
            if word in seen:
                continue
            seen.add(word)
            words.append(word)
            rows.append(vector)
            if max_words is not None and len(words) >= max_words:
                break
    if not words:
        raise ValueError(f"{path}: no word vectors found" + ("" if dim else " (the file is empty)"))
    return Vectors(words, np.stack(rows))


def _decode_line(raw: bytes, path: Path, lineno: int) -> str:
    """UTF-8 text of one line (a byte-order mark on line 1 is dropped), or a ValueError naming the line."""
    try:
        return raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}, line {lineno}: not UTF-8 text ({exc.reason} at byte {exc.start + 1})") from None


def _text_dimension(fields: list[str], path: Path, lineno: int) -> tuple[int, str, bool]:
    """Dimension set by the first non-empty line, where it came from, and whether that line is a header."""
    if len(fields) == 2 and all(_COUNT.fullmatch(x) for x in fields):
        dim = int(fields[1])
        if dim < 1:
            raise ValueError(f"{path}, line {lineno}: the header gives dimension {dim}, expected at least 1")
        return dim, f"the dimension in the header on line {lineno}", True
    if len(fields) < 2:
        raise ValueError(f"{path}, line {lineno}: a word with no values, "
                         "expected 'word v1 ... vD' or a 'count dimension' header")
    return len(fields) - 1, f"the dimension of line {lineno}", False


def _parse_text_vector(fields: list[str], dim: int, origin: str, path: Path, lineno: int) -> tuple[str, np.ndarray]:
    """Word and float32 vector of one ``word v1 ... vD`` line; the word may contain spaces."""
    where = f"{path}, line {lineno}"
    n_values = len(fields) - 1
    if n_values < dim or (n_values > dim and all(_is_number(x) for x in fields[1:-dim])):
        raise ValueError(f"{where}: {n_values} values, expected {dim} ({origin})")
    word = " ".join(fields[:-dim])
    if not word:
        raise ValueError(f"{where}: no word before the {dim} values")
    values = fields[-dim:]
    try:
        vector = np.array(values, dtype=np.float32)
    except ValueError:
        bad = next((x for x in values if not _is_number(x)), values[0])
        raise ValueError(f"{where}: {bad!r} is not a number") from None
    return word, vector


def _is_number(text: str) -> bool:
    """Whether ``text`` parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- word2vec binary


def _read_binary(path: Path, max_words: int | None) -> Vectors:
    """Read word2vec binary vectors; ending cleanly before the header's count is allowed, mid-record is not."""
    with path.open("rb") as f:
        header = f.readline()
        count, dim = _binary_header(header, path)
        limit = count if max_words is None else min(count, max_words)
        if not limit or not f.read(1):
            raise ValueError(f"{path}: no word vectors found")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            words: list[str] = []
            matrix = np.empty((limit, dim), dtype=np.float32)
            seen: set[str] = set()
            pos, index = len(header), 0
            while len(words) < limit:
                while data[pos:pos + 1] == b"\n":
                    pos += 1
                if pos >= len(data):
                    break
                index += 1
                word, pos = _binary_record(data, pos, dim, index, path, matrix[len(words)])
                if word not in seen:
                    seen.add(word)
                    words.append(word)
    return Vectors(words, matrix[: len(words)])


def _binary_header(header: bytes, path: Path) -> tuple[int, int]:
    """``(count, dim)`` from the ASCII ``"N D"`` first line of a binary file."""
    fields = header.split()
    if len(fields) != 2 or not all(_COUNT.fullmatch(x.decode("ascii", "replace")) for x in fields):
        if not header:
            raise ValueError(f"{path}: no word vectors found (the file is empty)")
        raise ValueError(f"{path}: first line {header[:40]!r} is not the 'count dimension' header "
                         "of a word2vec binary file")
    count, dim = int(fields[0]), int(fields[1])
    if dim < 1:
        raise ValueError(f"{path}: the header gives dimension {dim}, expected at least 1")
    return count, dim


def _binary_record(data: mmap.mmap, pos: int, dim: int, index: int, path: Path, out: np.ndarray) -> tuple[str, int]:
    """Read word number ``index`` (1-based) starting at ``pos`` into ``out``; return the word and the next position."""
    where = f"{path}, word {index}"
    end = data.find(b" ", pos)
    if end < 0:
        raise ValueError(f"{where}: the file ends inside the word (truncated file?)")
    raw = data[pos:end]
    if b"\n" in raw:
        raise ValueError(f"{where}: the word contains a line break; is this a text file named .bin?")
    try:
        word = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: the word is not UTF-8 ({exc.reason} at byte {exc.start + 1})") from None
    start, stop = end + 1, end + 1 + 4 * dim
    if stop > len(data):
        got = (len(data) - start) // 4
        raise ValueError(f"{where} ({word!r}): the file ends after {got} of {dim} values (truncated file?)")
    out[:] = np.frombuffer(data[start:stop], dtype="<f4")
    return word, stop


# ---------------------------------------------------------------- alignment to a vocabulary


@dataclass
class Coverage:
    """How many (non-special) vocabulary words got a pretrained vector, exactly or by their lower-case form."""

    total: int
    exact: int
    lowercase: int

    @property
    def found(self) -> int:
        """Words with a pretrained vector."""
        return self.exact + self.lowercase

    @property
    def fraction(self) -> float:
        """Share of the vocabulary words with a pretrained vector (0 for an empty vocabulary)."""
        return self.found / self.total if self.total else 0.0

    def summary(self) -> str:
        """One line for logs, e.g. ``pretrained vectors for 8,123 of 10,000 vocabulary words (81.2 %: ...)``."""
        return (f"pretrained vectors for {self.found:,} of {self.total:,} vocabulary words "
                f"({100 * self.fraction:.1f} %: {self.exact:,} exact, {self.lowercase:,} by lower case)")


def align(vocab_tokens: list[str], vectors: Vectors, specials: int = 2, init_std: float = 0.1,
          seed: int = 0) -> tuple[np.ndarray, Coverage]:
    """Embedding matrix (len(vocab_tokens), dim) float32 for a vocabulary, and its coverage.

    Row ``i`` is the vector of ``vocab_tokens[i]``, else of its lower-case form, else drawn from
    N(0, init_std²) with a Generator seeded by ``seed``. The first ``specials`` tokens are never looked
    up: the padding row (id 0) is zeros, the others (``<unk>``) random. Coverage counts the rest.
    """
    if specials < 0 or init_std < 0:
        raise ValueError(f"specials and init_std must not be negative, got {specials} and {init_std}")
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, init_std, size=(len(vocab_tokens), vectors.dim)).astype(np.float32)
    index: dict[str, int] = {}
    for i, word in enumerate(vectors.words):
        index.setdefault(word, i)
    exact = lowercase = 0
    for row in range(specials, len(vocab_tokens)):
        token = vocab_tokens[row]
        hit = index.get(token)
        if hit is not None:
            exact += 1
        elif (lower := token.lower()) != token and (hit := index.get(lower)) is not None:
            lowercase += 1
        if hit is not None:
            matrix[row] = vectors.matrix[hit]
    if specials > PAD_ID and len(vocab_tokens) > PAD_ID:
        matrix[PAD_ID] = 0.0
    return matrix, Coverage(total=max(len(vocab_tokens) - specials, 0), exact=exact, lowercase=lowercase)
