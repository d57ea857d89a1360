"""Readers for the text files users bring: CSV / TSV, JSON Lines, Parquet and plain text.

Every reader yields chunks of a canonical table -- ``row`` (0-based record number in the source),
``text`` and, when asked for, ``label`` -- so training reads a whole file and the batch flow streams
a file of any size through the same code. Bad input raises :class:`ReaderError`, which names the
file, the line or column, and what to do about it.
"""

from __future__ import annotations

import codecs
import csv
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".txt": "text"}
DEFAULT_CHUNK_ROWS = 65_536
_SCAN_BLOCK = 1 << 20


class ReaderError(ValueError):
    """A file that cannot be read as asked; the message names the file, line or column and a fix."""

    def __init__(self, path: str | Path, message: str, line: int | None = None, column: str | None = None):
        self.path, self.line, self.column, self.reason = str(path), line, column, message
        where = self.path + (f":{line}" if line is not None else "")
        col = f" column {column!r}:" if column is not None else ""
        super().__init__(f"{where}:{col} {message}")


@dataclass(frozen=True)
class ReadSpec:
    """What to read from a file: its format (from the suffix when None) and the column names."""

    text_col: str = "text"
    label_col: str | None = None
    fmt: str | None = None
    encoding: str = "utf-8"
    chunk_rows: int = DEFAULT_CHUNK_ROWS


def detect_format(path: str | Path, fmt: str | None = None) -> str:
    """The reader format for ``path``: the given one, else from its suffix."""
    if fmt:
        if fmt not in set(FORMATS.values()):
            raise ReaderError(path, f"unknown format {fmt!r}; use one of {sorted(set(FORMATS.values()))}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ReaderError(path, f"cannot tell the format from suffix {suffix!r}; use one of {sorted(FORMATS)} or pass a format")
    return FORMATS[suffix]


def check_text_file(path: str | Path, encoding: str = "utf-8") -> None:
    """Fail early, naming the line, on a binary file, undecodable bytes or an empty file."""
    path = Path(path)
    if not path.exists():
        raise ReaderError(path, "file not found")
    decoder = codecs.getincrementaldecoder(encoding)()
    lines_before, seen_bytes = 0, 0
    with path.open("rb") as fh:
        while block := fh.read(_SCAN_BLOCK):
            if b"\x00" in block:
                line = lines_before + block[: block.index(b"\x00")].count(b"\n") + 1
                raise ReaderError(path, "contains NUL bytes: this looks like a binary file, not text", line=line)
            try:
                decoder.decode(block)
            except UnicodeDecodeError as err:
                line = lines_before + block[: max(err.start, 0)].count(b"\n") + 1
                raise ReaderError(
                    path, f"bytes cannot be decoded as {encoding} ({err.reason}); re-save the file as {encoding} "
                    "or pass the encoding it was written in", line=line) from None
            lines_before += block.count(b"\n")
            seen_bytes += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as err:
            raise ReaderError(path, f"file ends inside a multi-byte {encoding} character ({err.reason})",
                              line=lines_before + 1) from None
    if seen_bytes == 0 or not path.read_bytes().strip():
        raise ReaderError(path, "the file is empty; give a file with at least one text")


def iter_chunks(path: str | Path, spec: ReadSpec = ReadSpec()) -> Iterator[pd.DataFrame]:
    """Yield the file as DataFrames of at most ``spec.chunk_rows`` rows: ``row``, ``text`` [, ``label``]."""
    fmt = detect_format(path, spec.fmt)
    if fmt != "parquet":
        check_text_file(path, spec.encoding)
    reader = {"csv": _iter_delimited, "tsv": _iter_delimited, "jsonl": _iter_jsonl,
              "parquet": _iter_parquet, "text": _iter_text}[fmt]
    first_row = 0
    for chunk in reader(Path(path), spec, fmt):
        chunk.insert(0, "row", range(first_row, first_row + len(chunk)))
        first_row += len(chunk)
        yield chunk.reset_index(drop=True)
    if first_row == 0:
        raise ReaderError(path, "the file has no records; give a file with at least one text")


def read_table(path: str | Path, spec: ReadSpec = ReadSpec()) -> pd.DataFrame:
    """The whole file as one canonical DataFrame (see :func:`iter_chunks`)."""
    return pd.concat(list(iter_chunks(path, spec)), ignore_index=True)


def read_labeled(path: str | Path, spec: ReadSpec) -> pd.DataFrame:
    """Read a training file and check it: no empty texts, no missing labels, at least two classes."""
    table = read_table(path, spec)
    first_line = 2 if detect_format(path, spec.fmt) in ("csv", "tsv") else 1
    require_nonempty(path, table, "text", spec.text_col, first_line)
    if spec.label_col is not None:
        require_nonempty(path, table, "label", spec.label_col, first_line)
        classes = table["label"].unique()
        if len(classes) < 2:
            raise ReaderError(path, f"has a single class ({classes[0]!r}); a classifier needs at least two",
                              column=spec.label_col)
    return table


def require_nonempty(path, table: pd.DataFrame, field: str, column: str, first_line: int) -> None:
    """Raise naming the lines where ``field`` is null or blank; nothing is dropped silently."""
    values = table[field]
    blank = values.isna() | (values.astype(str).str.strip() == "")
    if blank.any():
        rows = table.loc[blank, "row"].tolist()
        lines = ", ".join(str(r + first_line) for r in rows[:10]) + (" ..." if len(rows) > 10 else "")
        raise ReaderError(path, f"{len(rows)} empty value(s) at line(s) {lines}; fill or remove those rows",
                          line=rows[0] + first_line, column=column)


def _select(path: Path, frame: pd.DataFrame, spec: ReadSpec, line_of_header: int | None) -> pd.DataFrame:
    """Rename the user's columns to ``text`` / ``label``, raising on a missing one."""
    wanted = {spec.text_col: "text"}
    if spec.label_col is not None:
        wanted[spec.label_col] = "label"
    for col in wanted:
        if col not in frame.columns:
            raise ReaderError(path, f"no such column; the file has {list(map(str, frame.columns))}. "
                              "Pass the right name (--text-col / --label-col)", line=line_of_header, column=col)
    out = frame[list(wanted)].rename(columns=wanted)
    return out.astype({c: "string" for c in out.columns}).astype(object).where(out.notna(), None)


def _iter_delimited(path: Path, spec: ReadSpec, fmt: str) -> Iterator[pd.DataFrame]:
    """CSV / TSV in chunks. Never infers an index column: a row with more fields than the header is an error."""
    sep = "," if fmt == "csv" else "\t"
    try:
        reader = _csv_step(path, spec, sep, lambda: pd.read_csv(
            path, sep=sep, dtype=str, keep_default_na=False, na_values=[], encoding=spec.encoding,
            chunksize=spec.chunk_rows, index_col=False))
        while (frame := _csv_step(path, spec, sep, lambda: next(reader, None))) is not None:
            yield _select(path, frame, spec, line_of_header=1)
    except pd.errors.ParserError as err:
        raise _overlong_row_error(path, sep, spec.encoding, str(err)) from None
    except pd.errors.EmptyDataError:
        raise ReaderError(path, "the file is empty; give a file with a header and at least one row") from None


def _csv_step(path: Path, spec: ReadSpec, sep: str, step: Callable[[], Any]) -> Any:
    """Run one pandas parsing step with its "lengths do not match" warning (an overlong row) as an error.

    pandas only warns, then drops the extra fields, when the first data row has more fields than the header
    and ``index_col=False``; without ``index_col=False`` it silently turns the first column into an index.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            return step()
        except pd.errors.ParserWarning as warning:
            raise _overlong_row_error(path, sep, spec.encoding, str(warning)) from None


def _overlong_row_error(path: Path, sep: str, encoding: str, detail: str) -> ReaderError:
    """The error for the first record with more fields than the header, naming its first physical line."""
    name = "comma" if sep == "," else "tab"
    try:
        with path.open("r", encoding=encoding, newline="") as fh:
            records = csv.reader(fh, delimiter=sep)
            header = next(records, [])
            line = records.line_num + 1
            for record in records:
                if len(record) > len(header):
                    return ReaderError(
                        path, f"row has {len(record)} fields but the header has {len(header)}: an unquoted {name} "
                        f"inside a field shifts every column. Quote fields that contain a {name}", line=line)
                line = records.line_num + 1
    except (csv.Error, UnicodeDecodeError):
        pass
    kind = "CSV" if sep == "," else "TSV"
    return ReaderError(path, f"malformed {kind}: {detail}. Quote fields that contain a {name}")


def _iter_jsonl(path: Path, spec: ReadSpec, fmt: str) -> Iterator[pd.DataFrame]:
    records: list[dict] = []
    with path.open("r", encoding=spec.encoding) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                raise ReaderError(path, "blank line in JSON Lines; every line must be one JSON object", line=lineno)
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ReaderError(path, f"invalid JSON ({err.msg} at character {err.pos})", line=lineno) from None
            if not isinstance(record, dict):
                raise ReaderError(path, "each line must be a JSON object", line=lineno)
            _require_json_string(path, record.get(spec.text_col), lineno, spec.text_col)
            records.append(record)
            if len(records) == spec.chunk_rows:
                yield _jsonl_frame(path, records, spec, lineno - len(records) + 1)
                records = []
    if records:
        yield _jsonl_frame(path, records, spec, lineno - len(records) + 1)


JSON_KINDS = {bool: "boolean", int: "int", float: "float", list: "list", dict: "object"}


def _require_json_string(path: Path, value: object, lineno: int, column: str) -> None:
    """Refuse a text that is a JSON number, boolean, list or object rather than stringify it."""
    if value is not None and not isinstance(value, str):
        kind = JSON_KINDS.get(type(value), type(value).__name__)
        raise ReaderError(path, f"holds a JSON {kind} ({json.dumps(value)[:40]}), not a string; write each text "
                          "as a JSON string", line=lineno, column=column)


def _jsonl_frame(path: Path, records: list[dict], spec: ReadSpec, first_line: int) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records)
    for col in (spec.text_col, spec.label_col):
        if col is not None and col in frame.columns and frame[col].isna().any():
            missing = int(frame[col].isna().to_numpy().argmax())
            raise ReaderError(path, "key missing or null", line=first_line + missing, column=col)
    return _select(path, frame, spec, line_of_header=first_line)


def _iter_parquet(path: Path, spec: ReadSpec, fmt: str) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for non-Parquet bytes
        raise ReaderError(path, f"not a readable Parquet file ({err})") from None
    _require_parquet_strings(path, parquet.schema_arrow, spec.text_col)
    for batch in parquet.iter_batches(batch_size=spec.chunk_rows):
        yield _select(path, batch.to_pandas(), spec, line_of_header=None)


def _require_parquet_strings(path: Path, schema, column: str) -> None:
    """Refuse a Parquet text column of numbers, lists or structs rather than stringify it."""
    import pyarrow as pa

    if column not in schema.names:
        return  # _select names the missing column with the columns there are
    kind = schema.field(column).type
    value_kind = kind.value_type if pa.types.is_dictionary(kind) else kind
    if not (pa.types.is_string(value_kind) or pa.types.is_large_string(value_kind)
            or pa.types.is_string_view(value_kind) or pa.types.is_null(value_kind)):
        raise ReaderError(path, f"holds {kind} values, not strings; store the texts as a string column "
                          "or pass the right --text-col", column=column)


def _iter_text(path: Path, spec: ReadSpec, fmt: str) -> Iterator[pd.DataFrame]:
    if spec.label_col is not None:
        raise ReaderError(path, "plain text files hold one text per line and no labels; use CSV, TSV, JSONL or Parquet")
    lines: list[str] = []
    with path.open("r", encoding=spec.encoding, newline=None) as fh:
        for line in fh:
            lines.append(line.rstrip("\n"))
            if len(lines) == spec.chunk_rows:
                yield pd.DataFrame({"text": lines}, dtype=object)
                lines = []
    if lines:
        yield pd.DataFrame({"text": lines}, dtype=object)
