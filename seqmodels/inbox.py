"""Exactly-once batch prediction (classification or tagging) of an inbox of text files into Parquet.

- A **ledger** (``OUTPUT/_ledger.jsonl``, append-only) records every processed file by path and
  content hash; a file is new when its (path, hash) pair is not in it.
- Outputs are written to a temporary name and renamed, then recorded: a run killed at any moment
  leaves no partial output. The output name carries the content hash, so a file whose output exists
  but was never recorded (killed between rename and record) is recorded, not written twice, even on
  another date.
- An exclusive lock on ``OUTPUT/.lock`` (``flock``, released by the OS if the process dies) keeps two
  runs from processing the same files.
- A file that cannot be read is moved to ``OUTPUT/quarantine/`` with an error report beside it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seqmodels.readers import FORMATS, ReaderError, ReadSpec, iter_chunks

LEDGER, LOCK, QUARANTINE = "_ledger.jsonl", ".lock", "quarantine"
INBOX_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".parquet")
EMPTY_TEXT = "empty text"


@dataclass(frozen=True)
class InboxFile:
    """A file found in the inbox, identified by its path and content hash."""

    path: str
    sha256: str
    size: int


@dataclass
class FileOutcome:
    """What happened to one input file."""

    path: str
    status: str  # "written" | "recovered" | "quarantined"
    rows: int = 0
    output: str | None = None
    error: str | None = None
    label_counts: dict = field(default_factory=dict)
    seconds: float = 0.0


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_inbox(source: str | Path) -> list[Path]:
    """The files to consider: ``source`` itself, or the supported files directly inside it, sorted."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such file or directory (give an inbox directory or one file)")
    return sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in INBOX_SUFFIXES)


class Ledger:
    """Append-only JSON Lines record of processed files; a torn last line (a kill mid-append) is ignored."""

    def __init__(self, output: str | Path):
        self.path = Path(output) / LEDGER

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
        return out

    def seen(self) -> set[tuple[str, str]]:
        return {(e["path"], e["sha256"]) for e in self.entries()}

    def record(self, entry: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def find_new_files(source: str | Path, output: str | Path) -> list[InboxFile]:
    """Inbox files whose (absolute path, content hash) is not in the ledger."""
    seen = Ledger(output).seen()
    found = []
    for path in list_inbox(source):
        item = InboxFile(str(path.resolve()), sha256_of(path), path.stat().st_size)
        if (item.path, item.sha256) not in seen:
            found.append(item)
    return found


@contextlib.contextmanager
def exclusive_run(output: str | Path, timeout_s: float = 3600.0) -> Iterator[None]:
    """Hold ``OUTPUT/.lock`` for the whole run; a second run waits for the first to finish."""
    Path(output).mkdir(parents=True, exist_ok=True)
    with open(Path(output) / LOCK, "a+") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{output}: another run has held {LOCK} for {timeout_s:.0f} s") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def output_name(item: InboxFile) -> str:
    """``<stem>.<suffix>-<hash12>.parquet``: one output per input content, whatever the date."""
    return f"{Path(item.path).name}-{item.sha256[:12]}.parquet"


def existing_output(output: str | Path, item: InboxFile) -> Path | None:
    """An output already written for this content (in any date partition), if any."""
    return next(iter(sorted(Path(output).glob(f"date=*/{output_name(item)}"))), None)


PredictFn = Callable[[list], pd.DataFrame]


def predict_file(item: InboxFile, output: str | Path, predict: PredictFn, columns: dict, spec: ReadSpec,
                 today: dt.date | None = None) -> FileOutcome:
    """Stream ``item`` through ``predict`` into ``OUTPUT/date=YYYY-MM-DD/``; quarantine it if unreadable.

    ``predict(texts)`` returns a DataFrame of prediction columns, one row per text (empty texts are
    not passed: their rows get null predictions and ``reason = "empty text"``). ``columns`` are
    constant columns added to every row (model name, version, run id).
    """
    started = time.monotonic()
    output = Path(output)
    done = existing_output(output, item)
    if done is not None:
        rows = pq.ParquetFile(done).metadata.num_rows
        return _record(output, item, FileOutcome(item.path, "recovered", rows, str(done)), started)
    target = output / f"date={(today or dt.date.today()).isoformat()}" / output_name(item)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    counts: dict[str, int] = {}
    rows = 0
    try:
        writer = None
        for chunk in iter_chunks(item.path, spec):
            table = _predict_chunk(chunk, item.path, predict, columns)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            rows += table.num_rows
            for label, n in _prediction_counts(table).items():
                counts[label] = counts.get(label, 0) + n
        if writer is not None:
            writer.close()
    except (ReaderError, UnicodeDecodeError, pa.ArrowInvalid) as err:
        tmp.unlink(missing_ok=True)
        return _quarantine(output, item, str(err), started)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return _record(output, item, FileOutcome(item.path, "written", rows, str(target), label_counts=counts), started)


def _prediction_counts(table: pa.Table) -> dict[str, int]:
    """What a file's predictions hold: rows per label (classifiers) or entities per type (BIO taggers)."""
    if "label" in table.column_names:
        return {str(k): int(n) for k, n in pd.Series(table.column("label").to_pylist()).value_counts().items()}
    if "entities" in table.column_names:
        types = [e["type"] for row in table.column("entities").to_pylist() if row for e in row]
        return {str(k): int(n) for k, n in pd.Series(types, dtype=object).value_counts().items()}
    return {}


def _predict_chunk(chunk: pd.DataFrame, source: str, predict: PredictFn, columns: dict) -> pa.Table:
    """Predictions for one chunk; empty texts keep their row with null predictions and a reason."""
    texts = chunk["text"]
    empty = (texts.isna() | (texts.astype(str).str.strip() == "")).to_numpy()
    predicted = predict(texts[~empty].tolist())
    frame = pd.DataFrame({"source_file": source, "row": chunk["row"].astype("int64"), "text": texts.astype(object)})
    filled = np.flatnonzero(~empty)  # (n_predicted,) rows that got a prediction
    for name in predicted.columns:
        values = np.full(len(chunk), None, dtype=object)
        for position, value in zip(filled, predicted[name].tolist()):  # lists (tokens, tags) stay one cell each
            values[position] = value
        frame[name] = values
    for name, value in columns.items():
        frame[name] = value
    frame["reason"] = pd.Series(np.where(empty, EMPTY_TEXT, None), dtype=object)
    return pa.Table.from_pandas(frame, preserve_index=False, schema=_schema(frame))


KNOWN_TYPES = {"source_file": pa.string(), "row": pa.int64(), "text": pa.string(), "label": pa.string(),
               "score": pa.float64(), "model_name": pa.string(), "model_version": pa.string(), "run_id": pa.string(),
               "reason": pa.string(), "tokens": pa.list_(pa.string()), "tags": pa.list_(pa.string()),
               "entities": pa.list_(pa.struct([("type", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
                                               ("text", pa.string()), ("char_start", pa.int64()),
                                               ("char_end", pa.int64())]))}


def _schema(frame: pd.DataFrame) -> pa.Schema:
    """Fixed types for the contract columns, so every chunk of every file has the same schema."""
    return pa.schema([pa.field(n, KNOWN_TYPES[n]) if n in KNOWN_TYPES else pa.field(n, pa.array(frame[n]).type)
                      for n in frame.columns])


def _record(output: Path, item: InboxFile, outcome: FileOutcome, started: float) -> FileOutcome:
    outcome.seconds = time.monotonic() - started
    Ledger(output).record({**asdict(item), "status": outcome.status, "rows": outcome.rows, "output": outcome.output,
                           "processed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    return outcome


def _quarantine(output: Path, item: InboxFile, error: str, started: float) -> FileOutcome:
    """Move the file to ``OUTPUT/quarantine/`` with ``<name>.error.txt`` beside it; record it as handled."""
    folder = output / QUARANTINE
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(item.path)
    target = folder / source.name
    if target.exists():
        target = folder / f"{source.stem}-{item.sha256[:12]}{source.suffix}"
    report = target.with_name(target.name + ".error.txt")
    report.write_text(f"file: {item.path}\nsha256: {item.sha256}\nerror: {error}\n"
                      "fix: correct the file and drop it in the inbox again.\n", encoding="utf-8")
    shutil.move(str(source), target)
    outcome = FileOutcome(item.path, "quarantined", error=error, output=str(target))
    return _record(output, item, outcome, started)


def inbox_spec(path: str, text_col: str, chunk_rows: int) -> ReadSpec:
    """How to read an inbox file: plain text has no columns; the others need ``text_col``."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    return ReadSpec(text_col="text" if fmt == "text" else text_col, chunk_rows=chunk_rows)
