"""Readers for tagged corpora (NER / POS tagging) and checks of BIO tag sequences.

Four formats are read into one table -- ``sentence`` (0-based), ``line`` (1-based line of the sentence's
first token), ``tokens`` (list[str]) and ``tags`` (list[str]):

- ``conll2003``: ``word POS chunk NER`` per line, blank-line-separated sentences, ``-DOCSTART-`` lines skipped;
  tag columns ``ner`` (default), ``pos``, ``chunk``.
- ``conllu``: Universal Dependencies CoNLL-U; ``#`` comments, multiword-token ranges (``1-2``, their words
  are kept) and empty nodes (``8.1``) skipped; tag columns ``upos`` (default), ``xpos``.
- ``gmb``: the Kaggle GMB ``ner_dataset.csv`` (``Sentence #,Word,POS,Tag``; ``Sentence #`` filled only on
  a sentence's first token; latin-1 by default); tag columns ``ner`` (default, the ``Tag`` column), ``pos``.
- ``tsv``: ``token<TAB>tag`` per line, blank-line-separated sentences; tag column ``tag``.

Bad input raises :class:`seqmodels.readers.ReaderError` naming the file and line. BIO problems are
counted and reported by :func:`check_bio`, never repaired.
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from seqmodels.readers import ReaderError

COLUMNS = ("sentence", "line", "tokens", "tags")
GMB_HEADER = ("Sentence #", "Word", "POS", "Tag")
MAX_EXAMPLES = 10


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence: its tokens, one tag per token, and the 1-based line of its first token."""

    tokens: list[str]
    tags: list[str]
    line: int


@dataclass(frozen=True)
class TagFormat:
    """How a corpus format is laid out: fields per token line, separator, tag columns and default encoding."""

    name: str
    n_fields: int
    separator: str | None  # None: any run of whitespace
    tag_columns: tuple[tuple[str, int], ...]  # (name, 0-based field index)
    default_tag: str
    encoding: str
    layout: str  # human description of a token line, for error messages

    def field_index(self, path: str | Path, tag_column: str | None) -> int:
        """The field holding ``tag_column`` (the default when None); ReaderError for an unknown name."""
        name = self.default_tag if tag_column is None else tag_column
        columns = dict(self.tag_columns)
        if name not in columns:
            raise ReaderError(path, f"unknown tag column {name!r} for format {self.name!r}; "
                              f"use one of {sorted(columns)}", column=name)
        return columns[name]


FORMATS: dict[str, TagFormat] = {
    "conll2003": TagFormat("conll2003", 4, None, (("pos", 1), ("chunk", 2), ("ner", 3)), "ner", "utf-8",
                           "4 space-separated fields (word POS chunk NER)"),
    "conllu": TagFormat("conllu", 10, "\t", (("upos", 3), ("xpos", 4)), "upos", "utf-8",
                        "10 tab-separated fields (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC)"),
    "gmb": TagFormat("gmb", 4, ",", (("pos", 2), ("ner", 3)), "ner", "latin-1",
                     "4 comma-separated fields (Sentence #,Word,POS,Tag)"),
    "tsv": TagFormat("tsv", 2, "\t", (("tag", 1),), "tag", "utf-8", "2 tab-separated fields (token<TAB>tag)"),
}

_BREAK = ("", "")  # a line that ends the current sentence without adding a token (-DOCSTART-)
LineParser = Callable[[Path, list[str], int, int], "tuple[str, str] | None"]


# ----------------------------------------------------------------------------------------------- public API


def read_tagged(path: str | Path, fmt: str, tag_column: str | None = None,
                encoding: str | None = None) -> pd.DataFrame:
    """Read a tagged corpus into a DataFrame with columns ``sentence``, ``line``, ``tokens``, ``tags``."""
    path = Path(path)
    spec = _format(path, fmt)
    index = spec.field_index(path, tag_column)
    text = _read_text(path, encoding or spec.encoding)
    if spec.name == "gmb":
        frame = _read_gmb(path, text, index)
    else:
        frame = _frame(*_parse_lines(path, text, spec, index))
    if frame.empty:
        raise ReaderError(path, f"no sentences found; is this a {spec.name} file ({spec.layout})?")
    return frame


def read_sentences(path: str | Path, fmt: str, tag_column: str | None = None,
                   encoding: str | None = None) -> list[TaggedSentence]:
    """Read a tagged corpus into a list of :class:`TaggedSentence` (see :func:`read_tagged`)."""
    return frame_to_sentences(read_tagged(path, fmt, tag_column, encoding))


def frame_to_sentences(frame: pd.DataFrame) -> list[TaggedSentence]:
    """Rows of a ``tokens`` / ``tags`` / ``line`` table as :class:`TaggedSentence` objects."""
    return [TaggedSentence(list(tok), list(tag), int(line))
            for tok, tag, line in zip(frame["tokens"], frame["tags"], frame["line"])]


def sentences_to_frame(sentences: Iterable[TaggedSentence]) -> pd.DataFrame:
    """The canonical ``sentence`` / ``line`` / ``tokens`` / ``tags`` table of some sentences."""
    items = list(sentences)
    return _frame([s.line for s in items], [list(s.tokens) for s in items], [list(s.tags) for s in items])


# ----------------------------------------------------------------------------------------------- BIO checks


@dataclass(frozen=True)
class BioIssue:
    """One invalid tag: its sentence, 0-based token position, file line, the tag and the tag before it."""

    sentence: int
    token: int
    line: int | None
    tag: str
    previous: str  # "" at the start of a sentence; "(malformed)" issues have the tag itself as the problem


@dataclass(frozen=True)
class BioReport:
    """Counts of BIO (IOB2) problems in a corpus; nothing is repaired.

    ``invalid_transitions`` counts ``I-X`` tags not preceded by ``B-X`` or ``I-X`` (including at a sentence
    start); ``malformed_tags`` counts tags that are neither ``O`` nor ``B-``/``I-`` plus a type.
    """

    n_sentences: int
    n_tokens: int
    invalid_transitions: int
    malformed_tags: int
    by_type: dict[str, int]  # entity type -> invalid I- tags of that type
    by_transition: dict[str, int]  # "O -> I-PER" -> count ("<s>" = sentence start)
    examples: tuple[BioIssue, ...]  # the first few problems, in file order

    @property
    def ok(self) -> bool:
        """True when every tag is well formed and every transition is valid BIO."""
        return self.invalid_transitions == 0 and self.malformed_tags == 0

    def summary(self) -> str:
        """A one-paragraph description: counts, the commonest bad transitions and the first lines."""
        if self.ok:
            return f"valid BIO: {self.n_sentences} sentences, {self.n_tokens} tokens"
        common = sorted(self.by_transition.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        where = ", ".join(f"line {e.line} ({e.previous or '<s>'} -> {e.tag})" if e.line is not None
                          else f"sentence {e.sentence} token {e.token} ({e.previous or '<s>'} -> {e.tag})"
                          for e in self.examples)
        return (f"invalid BIO: {self.invalid_transitions} invalid transition(s) (an I-X not preceded by B-X or "
                f"I-X) and {self.malformed_tags} malformed tag(s) in {self.n_tokens} tokens; commonest: "
                + ", ".join(f"{k} x{v}" for k, v in common) + f"; first at {where}")


def is_bio_tagset(tags: Iterable[str]) -> bool:
    """True when there is at least one tag and every tag is ``O``, ``B-<type>`` or ``I-<type>``."""
    seen = False
    for tag in tags:
        seen = True
        if not (tag == "O" or (tag[:2] in ("B-", "I-") and len(tag) > 2)):
            return False
    return seen


def check_bio(frame: pd.DataFrame, max_examples: int = MAX_EXAMPLES) -> BioReport:
    """Count invalid BIO (IOB2) transitions and malformed tags in a ``tags`` column (vectorised)."""
    lengths = frame["tags"].map(len).to_numpy(dtype=np.int64)  # (sentences,)
    tags = pd.Series(list(itertools.chain.from_iterable(frame["tags"])), dtype=object)  # (tokens,)
    prefix, kind = tags.str[:2], tags.str[2:]
    malformed = (~((tags == "O") | (prefix.isin(["B-", "I-"]) & (kind.str.len() > 0)))).to_numpy()
    starts = np.zeros(len(tags), dtype=bool)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # (sentences,) first token of each
    starts[offsets[lengths > 0]] = True
    prev = tags.shift(1, fill_value="").to_numpy(dtype=object, copy=True)  # (tokens,)
    prev[starts] = ""
    continues = (prev == ("B-" + kind).to_numpy(dtype=object)) | (prev == ("I-" + kind).to_numpy(dtype=object))
    invalid = (prefix == "I-").to_numpy() & ~malformed & ~continues
    return _bio_report(frame, tags, prev, invalid, malformed, lengths, offsets, max_examples)


def raise_on_invalid_bio(path: str | Path, frame: pd.DataFrame) -> None:
    """Raise ReaderError with the counts and first lines when ``frame``'s tags are not valid BIO."""
    report = check_bio(frame)
    if not report.ok:
        first = report.examples[0].line if report.examples else None
        raise ReaderError(path, report.summary() + ". Fix the tags (they are not repaired automatically)",
                          line=first)


def _bio_report(frame: pd.DataFrame, tags: pd.Series, prev: np.ndarray, invalid: np.ndarray,
                malformed: np.ndarray, lengths: np.ndarray, offsets: np.ndarray, max_examples: int) -> BioReport:
    """Assemble a :class:`BioReport` from per-token flags."""
    bad = invalid | malformed
    positions = np.flatnonzero(bad)
    sentence_of = np.repeat(np.arange(len(lengths)), lengths)  # (tokens,)
    lines = frame["line"].to_numpy() if "line" in frame.columns else None
    examples = []
    for pos in positions[:max_examples]:
        sent = int(sentence_of[pos])
        token = int(pos - offsets[sent])
        line = int(lines[sent]) + token if lines is not None else None
        examples.append(BioIssue(sent, token, line, str(tags.iat[pos]),
                                 "(malformed)" if malformed[pos] else str(prev[pos])))
    pairs = pd.Series(np.where(prev[bad] == "", "<s>", prev[bad]), dtype=object) + " -> " + tags[bad].to_numpy()
    return BioReport(
        n_sentences=len(frame), n_tokens=len(tags), invalid_transitions=int(invalid.sum()),
        malformed_tags=int(malformed.sum()),
        by_type={str(k): int(v) for k, v in tags[invalid].str[2:].value_counts().items()},
        by_transition={str(k): int(v) for k, v in pairs.value_counts().items()},
        examples=tuple(examples))


# ----------------------------------------------------------------------------------------------- internals


def _format(path: Path, fmt: str) -> TagFormat:
    """The :class:`TagFormat` named ``fmt``; ReaderError for an unknown name."""
    if fmt not in FORMATS:
        raise ReaderError(path, f"unknown tagged-corpus format {fmt!r}; use one of {sorted(FORMATS)}")
    return FORMATS[fmt]


def _read_text(path: Path, encoding: str) -> str:
    """The whole file decoded; ReaderError naming the line of undecodable bytes, or for an empty file."""
    if not path.is_file():
        raise ReaderError(path, "file not found")
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except LookupError:
        raise ReaderError(path, f"unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        byte_col = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise ReaderError(path, f"byte 0x{data[err.start]:02x} at byte {byte_col} of the line cannot be decoded "
                          f"as {encoding} ({err.reason}); re-save the file as {encoding} or pass the encoding "
                          "it was written in", line=line) from None
    if not text.strip():
        raise ReaderError(path, "the file is empty; give a file with at least one tagged sentence")
    return text[1:] if text.startswith("\ufeff") else text


def _frame(lines: list[int], tokens: list[list[str]], tags: list[list[str]]) -> pd.DataFrame:
    """The canonical table from parallel lists."""
    return pd.DataFrame({"sentence": np.arange(len(lines), dtype=np.int64),
                         "line": np.asarray(lines, dtype=np.int64),
                         "tokens": pd.Series(tokens, dtype=object),
                         "tags": pd.Series(tags, dtype=object)})


def _parse_lines(path: Path, text: str, spec: TagFormat,
                 index: int) -> tuple[list[int], list[list[str]], list[list[str]]]:
    """Blank-line-separated token lines -> (first lines, tokens, tags), one entry per sentence."""
    parse = _LINE_PARSERS[spec.name]
    lines: list[int] = []
    all_tokens: list[list[str]] = []
    all_tags: list[list[str]] = []
    tokens: list[str] = []
    tags: list[str] = []
    for lineno, raw in enumerate(text.split("\n"), start=1):
        blank = not raw.strip()
        item = _BREAK if blank else parse(path, raw.rstrip("\r").split(spec.separator), lineno, index)
        if item is None:
            continue
        if item is _BREAK:
            if tokens:
                all_tokens.append(tokens)
                all_tags.append(tags)
                tokens, tags = [], []
            continue
        if not tokens:
            lines.append(lineno)
        tokens.append(item[0])
        tags.append(item[1])
    if tokens:
        all_tokens.append(tokens)
        all_tags.append(tags)
    return lines, all_tokens, all_tags


def _checked(path: Path, fields: list[str], lineno: int, spec: TagFormat, token: int,
             index: int) -> tuple[str, str]:
    """(token, tag) from ``fields`` after checking the field count and that neither is empty."""
    if len(fields) != spec.n_fields:
        raise ReaderError(path, f"expected {spec.layout}, found {len(fields)} field(s)", line=lineno)
    tok, tag = fields[token], fields[index].strip()
    if not tok or not tag:
        raise ReaderError(path, f"empty {'token' if not tok else 'tag'}; every token line needs {spec.layout}",
                          line=lineno)
    return tok, tag


def _conll2003_line(path: Path, fields: list[str], lineno: int, index: int) -> tuple[str, str] | None:
    """``word POS chunk NER``; ``-DOCSTART-`` ends the sentence."""
    if fields and fields[0] == "-DOCSTART-":
        return _BREAK
    return _checked(path, fields, lineno, FORMATS["conll2003"], 0, index)


def _conllu_line(path: Path, fields: list[str], lineno: int, index: int) -> tuple[str, str] | None:
    """A CoNLL-U word line; None for comments, multiword-token ranges and empty nodes."""
    if fields[0].startswith("#"):
        return None
    if len(fields) == 10 and ("-" in fields[0] or "." in fields[0]):
        return None  # multiword-token range (its words follow) or empty node
    token = _checked(path, fields, lineno, FORMATS["conllu"], 1, index)
    if not fields[0].isdigit():
        raise ReaderError(path, f"token ID {fields[0]!r} is not an integer, a range (1-2) or an empty node (8.1)",
                          line=lineno)
    return token


def _tsv_line(path: Path, fields: list[str], lineno: int, index: int) -> tuple[str, str] | None:
    """``token<TAB>tag``."""
    return _checked(path, fields, lineno, FORMATS["tsv"], 0, index)


_LINE_PARSERS: dict[str, LineParser] = {"conll2003": _conll2003_line, "conllu": _conllu_line, "tsv": _tsv_line}


def _read_gmb(path: Path, text: str, index: int) -> pd.DataFrame:
    """The Kaggle GMB CSV, grouped into sentences with numpy (no per-token Python loop)."""
    _check_gmb_header(path, text)
    columns = _gmb_columns(path, text)  # 4 arrays of (rows,) str
    lines = np.arange(len(columns[0]), dtype=np.int64) + 2  # (rows,) header is line 1
    keep = ~((columns[0] == "") & (columns[1] == "") & (columns[2] == "") & (columns[3] == ""))  # blank lines
    marker, words, tags, lines = columns[0][keep], columns[1][keep], columns[index][keep], lines[keep]
    for values, column in ((words, GMB_HEADER[1]), (tags, GMB_HEADER[index])):
        empty = np.flatnonzero(values == "")
        if len(empty):
            raise ReaderError(path, f"{len(empty)} empty value(s); every token needs a word and a tag",
                              line=int(lines[empty[0]]), column=column)
    starts = np.flatnonzero(marker != "")  # (sentences,) rows where "Sentence #" is filled
    if len(words) and (not len(starts) or starts[0] != 0):
        raise ReaderError(path, "the first token has no 'Sentence #' value, so it belongs to no sentence",
                          line=int(lines[0]), column="Sentence #")
    return _frame(lines[starts].tolist(), [a.tolist() for a in np.split(words, starts[1:])] if len(starts) else [],
                  [a.tolist() for a in np.split(tags, starts[1:])] if len(starts) else [])


def _check_gmb_header(path: Path, text: str) -> None:
    """ReaderError unless the first line is ``Sentence #,Word,POS,Tag``."""
    end = text.find("\n")
    first = text[: end if end >= 0 else len(text)].rstrip("\r")
    header = tuple(next(csv.reader([first]), []))
    if header != GMB_HEADER:
        raise ReaderError(path, f"expected the header {','.join(GMB_HEADER)!r}, found {first[:80]!r}", line=1)


def _gmb_columns(path: Path, text: str) -> list[np.ndarray]:
    """The four GMB columns as object arrays; ReaderError naming the first row with the wrong field count."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    bad: list[tuple[int | None, int]] = []

    def on_invalid(row) -> str:  # pyarrow.csv.InvalidRow
        bad.append((row.number, row.actual_columns))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in GMB_HEADER},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
    except pa.ArrowInvalid as err:
        raise ReaderError(path, f"malformed CSV: {err}") from None
    if bad:
        line, count = bad[0]
        raise ReaderError(path, f"{len(bad)} row(s) without {FORMATS['gmb'].layout}; the first has {count} "
                          "field(s). Quote fields that contain a comma", line=line)
    return [table.column(c).to_numpy(zero_copy_only=False).astype(object) for c in GMB_HEADER]
