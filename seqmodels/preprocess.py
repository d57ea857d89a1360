"""The shared preprocessing stage on Parquet: clean and tokenise a canonical table's ``text`` column.

Counts of what it did (texts read, dropped as empty after cleaning, truncated) are kept in the output's
Parquet metadata (:func:`preprocess_counts`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seqmodels.cleaning import CleanConfig
from seqmodels.featurize import tokenize_texts
from seqmodels.parquet import write_parquet_atomic
from seqmodels.readers import ReaderError, detect_format

log = logging.getLogger(__name__)
# Above this fraction of texts that clean to nothing, preprocessing stops: 0 of the 24,452 texts of the
# shipped English datasets (AG News titles, TREC, SUBJ) clean to nothing, so a stray few (emoji-only lines,
# "???") are dropped with a warning, but 5 % means the cleaning does not fit the data (wrong column, text
# the cleaning cannot read) and dropping that much would silently change what the model learns.
MAX_EMPTY_FRACTION = 0.05
PREPROCESS_METADATA_KEY = b"seqflow.preprocess"


def preprocess_table(raw_path: str | Path, out_path: str | Path, clean: CleanConfig,
                     max_empty_fraction: float = MAX_EMPTY_FRACTION) -> Path:
    """Add ``clean`` (cleaned string) and ``tokens`` (word tokens, at most ``clean.max_tokens``) columns to
    a canonical table.

    Texts that clean to nothing are dropped with a WARNING naming them; more than ``max_empty_fraction``
    of them is an error. The counts (:func:`preprocess_counts`) are kept in the file's metadata and logged.
    """
    table = pq.read_table(raw_path)
    tokenized = tokenize_texts(table.column("text"), clean)
    source, lines = _source_lines(table, raw_path)
    counts = {"rows_read": table.num_rows, "empty_after_cleaning": int(tokenized.empty.sum()),
              "truncated": int(tokenized.truncated.sum()), "max_tokens": clean.max_tokens}
    _check_empty(tokenized.empty, source, lines, table.column("text"), max_empty_fraction)
    out = table.append_column("clean", tokenized.cleaned).append_column("tokens", tokenized.tokens)
    if counts["empty_after_cleaning"]:
        out = out.filter(pa.array(~tokenized.empty))
    log.info("preprocessed %s: %d texts, %d empty after cleaning (dropped), %d truncated to %s tokens", source,
             counts["rows_read"], counts["empty_after_cleaning"], counts["truncated"], clean.max_tokens)
    metadata = {**(out.schema.metadata or {}), PREPROCESS_METADATA_KEY: json.dumps(counts).encode()}
    return write_parquet_atomic(out.replace_schema_metadata(metadata), out_path)


def preprocess_counts(path: str | Path) -> dict:
    """What :func:`preprocess_table` counted for a file: ``rows_read``, ``empty_after_cleaning`` (dropped),
    ``truncated`` and ``max_tokens``; ``{}`` for a file it did not write."""
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[PREPROCESS_METADATA_KEY]) if PREPROCESS_METADATA_KEY in metadata else {}


def _source_lines(table: pa.Table, raw_path: str | Path) -> tuple[str, np.ndarray]:
    """The user's file behind a canonical table and the line of each row in it (1-based; after a CSV/TSV
    header); without ``source`` / ``row`` columns, the table's own path and row numbers."""
    if "source" not in table.column_names or "row" not in table.column_names or table.num_rows == 0:
        return str(raw_path), np.arange(1, table.num_rows + 1)
    source = str(table.column("source")[0].as_py())
    try:
        first_line = 2 if detect_format(source) in ("csv", "tsv") else 1
    except ReaderError:
        first_line = 1
    return source, table.column("row").to_numpy(zero_copy_only=False) + first_line


def _check_empty(empty: np.ndarray, source: str, lines: np.ndarray, texts: pa.ChunkedArray,
                 max_fraction: float) -> None:
    """Raise when more than ``max_fraction`` of the texts clean to nothing; warn about fewer."""
    count = int(empty.sum())
    if count == 0:
        return
    rows = np.flatnonzero(empty)
    where = ", ".join(f"line {lines[r]} {str(texts[int(r)].as_py())[:40]!r}" for r in rows[:5])
    what = f"{count} of {len(empty)} texts ({count / len(empty):.1%}) are empty after cleaning ({where}"
    what += ", ...)" if count > 5 else ")"
    if count > max_fraction * len(empty):
        raise ValueError(f"{source}: {what}; more than {max_fraction:.0%} means the cleaning does not fit this "
                         "text: check --text-col, or try --no-remove-stopwords")
    log.warning("%s: %s; those rows are dropped", source, what)
