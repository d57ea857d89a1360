"""Exactly-once batch prediction of an inbox of text files into Parquet, for a model of any task kind.

- A **ledger** (``OUTPUT/_ledger.jsonl``, append-only) records every processed file by path and
  content hash; a file is new when its (path, hash) pair is not in it. A quarantined file that was
  moved out counts as new again when it reappears (put back after a fix).
- Each file is first copied, hashing the bytes copied, to ``OUTPUT/.reading/``; predictions come from
  that snapshot and are recorded under its hash, so a file that changes while it is read never puts
  rows of one content under the hash of another.
- Outputs are written to a temporary name and renamed, then recorded: a run killed at any moment
  leaves no partial output. The output name carries the content hash, so a file whose output exists
  but was never recorded (killed between rename and record) is recorded, not written twice, even on
  another date.
- An exclusive lock on ``OUTPUT/.lock`` (``flock``, released by the OS if the process dies) keeps two
  runs from processing the same files.
- Inbox and output may be fsspec URLs (``memory://``, ``s3://``...; see :mod:`seqmodels.storage`): the
  ledger is then rewritten whole under a temporary name and moved, and the lock is a lock file.
- A file that fails in any way (unreadable, corrupt, refused by the model) is moved to
  ``OUTPUT/quarantine/`` with an error report beside it and the run goes on; a file that vanished
  after it was listed is skipped and not recorded. Quarantine only ever moves the inbox entry itself:
  a symlink is moved as a link, never its target; in a read-only inbox the file is copied instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import glob
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seqmodels import storage
from seqmodels.locking import file_lock
from seqmodels.readers import FORMATS, ReaderError, ReadSpec, detect_format, iter_chunks

LEDGER, LOCK, QUARANTINE, READING, PARTS = "_ledger.jsonl", ".lock", "quarantine", ".reading", ".parts"
INBOX_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".parquet")
EMPTY_TEXT = "empty text"
UNREADABLE = "unreadable"  # the sha256 of a listed file whose bytes could not be read (it is quarantined)
MAX_NAME_BYTES = 255  # NAME_MAX of ext4, xfs, tmpfs, APFS: a longer file name cannot be created


@dataclass(frozen=True)
class InboxFile:
    """A file found in the inbox, identified by its path and content hash."""

    path: str
    sha256: str
    size: int


@dataclass
class FileOutcome:
    """What happened to one input file (``path`` printable even when the file name is not UTF-8)."""

    path: str
    status: str  # "written" | "recovered" | "quarantined" | "skipped" (vanished; not recorded)
    rows: int = 0
    output: str | None = None
    error: str | None = None
    label_counts: dict = field(default_factory=dict)
    seconds: float = 0.0
    reason_counts: dict = field(default_factory=dict)  # rows per ``reason`` ("empty text", "truncated to ...")


class FileFault(Exception):
    """A failure of one input file (reading or predicting it): the file is quarantined, the run goes on."""


def printable(path: str | Path) -> str:
    """``path`` as valid UTF-8 text: undecodable bytes of a file name become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def sha256_of(path: str | Path) -> str:
    """The hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with storage.open_file(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_inbox(source: str | Path) -> list[Path] | list[str]:
    """The files to consider: ``source`` itself, or the supported files directly inside it, sorted
    (canonical URLs for an fsspec URL)."""
    if storage.is_url(source):
        return _list_remote(str(source))
    source = Path(storage.local(source))
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such file or directory (give an inbox directory or one file)")
    return sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in INBOX_SUFFIXES)


def _list_remote(url: str) -> list[str]:
    """:func:`list_inbox` for an fsspec URL."""
    fs, path = storage.filesystem(url)
    if fs.isfile(path):
        return [fs.unstrip_protocol(path)]
    if not fs.isdir(path):
        raise FileNotFoundError(f"{url}: no such file or directory (give an inbox directory or one file)")
    return sorted(fs.unstrip_protocol(e["name"]) for e in fs.ls(path, detail=True)
                  if e["type"] == "file" and Path(e["name"]).suffix.lower() in INBOX_SUFFIXES)


class Ledger:
    """Append-only JSON Lines record of processed files; a torn last line (a kill mid-append) is ignored."""

    def __init__(self, output: str | Path):
        self.path = storage.join(output, LEDGER) if storage.is_url(output) else Path(storage.local(output)) / LEDGER

    def entries(self) -> list[dict]:
        """Every complete line of the ledger, oldest first."""
        if not storage.exists(self.path):
            return []
        out = []
        for line in storage.read_bytes(self.path).decode("utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
        return out

    def seen(self) -> set[tuple[str, str]]:
        """(path, hash) pairs that are done: written, recovered, or quarantined but still in the inbox.

        A quarantined file that was moved out and reappears was put back on purpose, so it is read again.
        """
        return {(e["path"], e["sha256"]) for e in self.entries()
                if e.get("status") != "quarantined" or e.get("moved") is False}

    def record(self, entry: dict) -> None:
        """Append one entry and fsync it; on an fsspec store (no append there), rewrite the ledger under a
        temporary name and move it (the run lock keeps writers one at a time)."""
        if isinstance(self.path, str):
            before = storage.read_bytes(self.path) if storage.exists(self.path) else b""
            storage.publish_bytes(self.path, before + (json.dumps(entry) + "\n").encode("utf-8"))
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def find_new_files(source: str | Path, output: str | Path) -> list[InboxFile]:
    """Inbox files whose (absolute path, content hash) is not in the ledger; files gone meanwhile are left out."""
    seen = Ledger(output).seen()
    found = []
    for path in list_inbox(source):
        item = _identify(path)
        if item is not None and (item.path, item.sha256) not in seen:
            found.append(item)
    return found


def _identify(path: Path | str) -> InboxFile | None:
    """The path of the inbox entry itself (its folder resolved, a symlink kept as the link) and its hash.

    None when the file vanished since it was listed; an unreadable file gets ``sha256 = "unreadable"``
    so that reading it fails again and quarantines it.
    """
    if isinstance(path, str):  # a canonical fsspec URL
        try:
            fs, inner = storage.filesystem(path)
            return InboxFile(path, sha256_of(path), int(fs.size(inner)))
        except FileNotFoundError:
            return None
        except OSError:
            return InboxFile(path, UNREADABLE, 0)
    entry = str(path.absolute().parent.resolve() / path.name)
    try:
        return InboxFile(entry, sha256_of(path), path.stat().st_size)
    except FileNotFoundError:
        return None
    except OSError:
        return InboxFile(entry, UNREADABLE, 0)


@contextlib.contextmanager
def exclusive_run(output: str | Path, timeout_s: float = 3600.0) -> Iterator[None]:
    """Hold ``OUTPUT/.lock`` for the whole run (a second run waits); clear snapshots and shard parts a killed
    run left. ``flock`` on a local path; a lock file (:class:`seqmodels.storage.LockFile`) on an fsspec URL."""
    if storage.is_url(output):
        lock = storage.LockFile(storage.join(output, LOCK)).hold(timeout_s, LOCK)
    else:
        lock = file_lock(Path(storage.local(output)) / LOCK, timeout_s, LOCK)
    with lock:
        storage.remove(storage.join(output, READING))
        storage.remove(storage.join(output, PARTS))
        yield
        storage.remove(storage.join(output, READING))  # e.g. a snapshot Dask recomputed after a worker died
        storage.remove(storage.join(output, PARTS))


def fit_name(name: str, room: int = MAX_NAME_BYTES) -> str:
    """``name`` if it fits in ``room`` bytes, else its start, ``~``, 8 hex of its digest, and its suffix."""
    if len(os.fsencode(name)) <= room:
        return name
    suffix = Path(name).suffix if len(Path(name).suffix) <= 16 else ""
    tail = f"~{hashlib.sha256(os.fsencode(name)).hexdigest()[:8]}{suffix}"
    stem = name[: room]
    while len(os.fsencode(stem + tail)) > room:
        stem = stem[:-1]
    return stem + tail


def output_name(item: InboxFile) -> str:
    """``<name>-<hash12>.parquet`` (a long name shortened so the temporary ``.<name>.tmp`` still fits)."""
    return f"{fit_name(printable(Path(item.path).name), MAX_NAME_BYTES - 26)}-{item.sha256[:12]}.parquet"


def existing_output(output: str | Path, item: InboxFile) -> Path | str | None:
    """An output already written for this content (in any date partition), if any."""
    if storage.is_url(output):
        return next(iter(storage.glob(output, f"date=*/{glob.escape(output_name(item))}")), None)
    return next(iter(sorted(Path(output).glob(f"date=*/{glob.escape(output_name(item))}"))), None)


PredictFn = Callable[[list], pd.DataFrame]


@dataclass(frozen=True)
class Prediction:
    """How a model predicts an inbox file: ``predict(texts)`` returns one row of prediction columns per text;
    ``types`` fixes those columns' Arrow types (every chunk of every file has the same schema); ``counts(table)``
    summarises a chunk's predictions for the run's report (rows per label, entities per type...)."""

    predict: PredictFn
    types: dict = field(default_factory=dict)
    counts: Callable[[pa.Table], dict] = lambda table: {}

    def __call__(self, texts: list) -> pd.DataFrame:
        return self.predict(texts)
T = TypeVar("T")


def predict_file(item: InboxFile, output: str | Path, predict: Prediction | PredictFn, columns: dict, spec: ReadSpec,
                 today: dt.date | None = None) -> FileOutcome:
    """Stream a snapshot of ``item`` through ``predict`` into ``OUTPUT/date=YYYY-MM-DD/``.

    ``predict(texts)`` returns a DataFrame of prediction columns, one row per text (empty texts are
    not passed: their rows get null predictions and ``reason = "empty text"``); a ``reason`` column in
    it is kept. ``columns`` are constant columns added to every row (model name, version, run id).
    Any failure of the file quarantines it; a file that vanished is skipped. A plain function ``predict``
    gets the prediction columns' types from the data and no counts (see :class:`Prediction`).
    """
    predict = predict if isinstance(predict, Prediction) else Prediction(predict)
    started = time.monotonic()
    output = Path(output)
    try:
        source = open(item.path, "rb")
    except FileNotFoundError:
        return FileOutcome(printable(item.path), "skipped", error=f"{printable(item.path)}: deleted after it was "
                           "listed; nothing recorded, it is read if it comes back", seconds=time.monotonic() - started)
    except OSError as err:
        return _quarantine(output, item, f"{printable(item.path)}: cannot be read ({err.strerror or err})", started)
    try:
        with source:
            snapshot, read = _snapshot(source, item, output / READING)
    except FileFault as fault:
        return _quarantine(output, item, str(fault), started)
    try:
        return _predict_snapshot(snapshot, read, output, predict, columns, spec, today, started)
    finally:
        snapshot.unlink(missing_ok=True)


def _snapshot(source: BinaryIO, item: InboxFile, folder: Path) -> tuple[Path, InboxFile]:
    """Copy the open file into ``folder`` while hashing the bytes copied: what is read is what is recorded.

    A read error is a :class:`FileFault`; a write error (the output disk) is not the file's fault and is raised.
    """
    snapshot, read, _ = copy_snapshot(source, item, folder)
    return Path(snapshot), read


def copy_snapshot(source: BinaryIO, item: InboxFile, folder: Path | str) -> tuple[Path | str, InboxFile, int]:
    """:func:`_snapshot` into a local folder or an fsspec URL, also counting line breaks (``\\n``, ``\\r`` and
    ``\\r\\n`` one each): no format has more records than line breaks + 1, so that bounds a file's rows."""
    suffix = Path(item.path).suffix[:16]
    if storage.is_url(folder):
        name = storage.join(folder, f"{uuid.uuid4().hex}{suffix}")
        copy = storage.open_file(name, "wb")
    else:
        Path(folder).mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=folder, suffix=suffix)
        copy = os.fdopen(handle, "wb")
    digest, size, breaks = hashlib.sha256(), 0, 0
    try:
        with copy:
            while block := _file_step(lambda: source.read(1 << 20), item, Path(str(name))):
                digest.update(block)
                copy.write(block)
                size += len(block)
                breaks += block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
    except BaseException:
        storage.remove(name)
        raise
    return name, InboxFile(item.path, digest.hexdigest(), size), breaks


def _predict_snapshot(snapshot: Path, item: InboxFile, output: Path, predict: Prediction, columns: dict,
                      spec: ReadSpec, today: dt.date | None, started: float) -> FileOutcome:
    """Write (or recover) the predictions of one snapshot; quarantine the file on a :class:`FileFault`."""
    done = existing_output(output, item)
    if done is not None:
        rows = pq.ParquetFile(done).metadata.num_rows
        return _record(output, item, FileOutcome(printable(item.path), "recovered", rows, printable(done)), started)
    target = output / f"date={(today or dt.date.today()).isoformat()}" / output_name(item)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        outcome = _write_predictions(snapshot, item, tmp, predict, columns, spec)
    except FileFault as fault:
        tmp.unlink(missing_ok=True)
        return _quarantine(output, item, str(fault), started)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    outcome.output = printable(target)
    return _record(output, item, outcome, started)


def _write_predictions(snapshot: Path, item: InboxFile, tmp: Path, predict: Prediction, columns: dict,
                       spec: ReadSpec, rows: tuple[int, int | None] = (0, None)) -> FileOutcome:
    """Read, predict and write chunk by chunk into ``tmp``; input or model failures raise :class:`FileFault`.

    Only records ``rows[0] <= row < rows[1]`` (``None``: to the end) are predicted; nothing is written (no
    ``tmp``) when the range holds none.
    """
    source = printable(item.path)
    outcome = FileOutcome(source, "written")
    spec = _file_step(lambda: dataclasses.replace(spec, fmt=detect_format(item.path, spec.fmt)), item, snapshot)
    chunks = iter_chunks(snapshot, spec)
    writer = None
    try:
        while (chunk := _file_step(lambda: next(chunks, None), item, snapshot)) is not None:
            chunk = _in_range(chunk, rows)
            if chunk is None:
                break
            if chunk.empty:
                continue
            table = _file_step(lambda: _predict_chunk(chunk, source, predict, columns), item, snapshot)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            outcome.rows += table.num_rows
            _add_counts(outcome.label_counts, predict.counts(table))
            _add_counts(outcome.reason_counts, _reason_counts(table))
    finally:
        if writer is not None:
            writer.close()
    return outcome


def _in_range(chunk: pd.DataFrame, rows: tuple[int, int | None]) -> pd.DataFrame | None:
    """The records of ``chunk`` in ``[start, stop)``; None once the chunk starts at or past ``stop``."""
    start, stop = rows
    if start == 0 and stop is None:
        return chunk
    numbers = chunk["row"]
    if stop is not None and numbers.iloc[0] >= stop:
        return None
    keep = (numbers >= start) & (numbers < (stop if stop is not None else numbers.iloc[-1] + 1))
    return chunk[keep].reset_index(drop=True)


def _file_step(step: Callable[[], T], item: InboxFile, snapshot: Path) -> T:
    """Run one read or predict step; any error becomes a :class:`FileFault` naming the inbox file."""
    try:
        return step()
    except ReaderError as err:
        reason = err.reason.replace(str(snapshot), printable(item.path))
        raise FileFault(str(ReaderError(printable(item.path), reason, err.line, err.column))) from err
    except Exception as err:
        message = str(err).replace(str(snapshot), printable(item.path))
        raise FileFault(f"{printable(item.path)}: {type(err).__name__}: {message}") from err


def _add_counts(total: dict, counts: dict) -> None:
    """Add ``counts`` into ``total`` in place."""
    for key, n in counts.items():
        total[key] = total.get(key, 0) + n


def _reason_counts(table: pa.Table) -> dict[str, int]:
    """Rows per non-null ``reason``."""
    reasons = pd.Series(table.column("reason").to_pylist(), dtype=object)
    return {str(k): int(n) for k, n in reasons.value_counts().items()}


def _predict_chunk(chunk: pd.DataFrame, source: str, predict: Prediction, columns: dict) -> pa.Table:
    """Predictions for one chunk; empty texts keep their row with null predictions and a reason.

    ``reason`` is "empty text" for a blank raw text, else the predictor's own ``reason`` when it gives one
    (e.g. "empty after cleaning", "truncated to 400 tokens").
    """
    texts = chunk["text"]
    empty = (texts.isna() | (texts.astype(str).str.strip() == "")).to_numpy()
    predicted = predict(texts[~empty].tolist())
    frame = pd.DataFrame({"source_file": source, "row": chunk["row"].astype("int64"), "text": texts.astype(object)})
    filled = np.flatnonzero(~empty)  # (n_predicted,) rows that got a prediction
    for name in predicted.columns:
        if name != "reason":
            frame[name] = _spread(predicted[name].tolist(), filled, len(chunk))
    for name, value in columns.items():
        frame[name] = value
    reasons = _spread(predicted["reason"].tolist() if "reason" in predicted.columns else [], filled, len(chunk))
    reasons[empty] = EMPTY_TEXT
    frame["reason"] = pd.Series(reasons, dtype=object)
    return pa.Table.from_pandas(frame, preserve_index=False, schema=_schema(frame, predict.types))


def _spread(values: list, positions: np.ndarray, length: int) -> np.ndarray:
    """An object array of ``length`` Nones with ``values`` at ``positions`` (lists stay one cell each)."""
    out = np.full(length, None, dtype=object)
    for position, value in zip(positions, values):
        out[position] = value
    return out


KNOWN_TYPES = {"source_file": pa.string(), "row": pa.int64(), "text": pa.string(), "model_name": pa.string(),
               "model_version": pa.string(), "run_id": pa.string(), "reason": pa.string()}  # every model's columns


def _schema(frame: pd.DataFrame, prediction_types: dict) -> pa.Schema:
    """Fixed types for the contract columns, so every chunk of every file has the same schema."""
    types = {**KNOWN_TYPES, **prediction_types}
    return pa.schema([pa.field(n, types[n]) if n in types else pa.field(n, pa.array(frame[n]).type)
                      for n in frame.columns])


def _record(output: Path, item: InboxFile, outcome: FileOutcome, started: float, **extra: object) -> FileOutcome:
    """Append the outcome to the ledger (under the raw path, so the next listing matches it)."""
    outcome.seconds = time.monotonic() - started
    Ledger(output).record({**asdict(item), "status": outcome.status, "rows": outcome.rows, "output": outcome.output,
                           "processed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **extra})
    return outcome


def _quarantine(output: Path, item: InboxFile, error: str, started: float) -> FileOutcome:
    """Move the inbox entry to ``OUTPUT/quarantine/`` with ``<name>.error.txt`` beside it; record it.

    A symlink is moved as a link. When the inbox is read-only the file is copied and stays; it is then
    recorded as seen, so it is not quarantined again every night until its content changes.
    """
    if storage.is_url(output) or storage.is_url(item.path):
        return _quarantine_url(str(output), item, error, started)
    output = Path(output)
    folder = output / QUARANTINE
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder, Path(item.path).name, item.sha256)
    try:
        moved = _move_out(Path(item.path), target)
    except FileNotFoundError:
        return FileOutcome(printable(item.path), "skipped", error=f"{error} (then deleted before quarantine)")
    copied = "the quarantine holds a copy" if os.path.lexists(target) else "it could not be copied either"
    note = "" if moved else (f" The file could not be moved out of the inbox (read-only): {copied}; it is not read "
                             "again until it changes. Delete or fix the original yourself.")
    report = target.with_name(target.name + ".error.txt")
    report.write_text(f"file: {printable(item.path)}\nsha256: {item.sha256}\nerror: {error}\n"
                      f"fix: correct the file and drop it in the inbox again.{note}\n", encoding="utf-8")
    outcome = FileOutcome(printable(item.path), "quarantined", error=error + note, output=printable(target))
    return _record(output, item, outcome, started, moved=moved)


def _quarantine_url(output: str, item: InboxFile, error: str, started: float) -> FileOutcome:
    """:func:`_quarantine` where the inbox or the output is an fsspec URL (a move between stores is a copy,
    then a delete)."""
    target = str(_free_name(storage.join(output, QUARANTINE), storage.name_of(item.path), item.sha256))
    moved = True
    try:
        storage.move(item.path, target)
    except FileNotFoundError:
        return FileOutcome(printable(item.path), "skipped", error=f"{error} (then deleted before quarantine)")
    except PermissionError:
        moved = False
    copied = "the quarantine holds a copy" if storage.exists(target) else "it could not be copied either"
    note = "" if moved else (f" The file could not be moved out of the inbox (read-only): {copied}; it is not read "
                             "again until it changes. Delete or fix the original yourself.")
    storage.publish_bytes(target + ".error.txt", (f"file: {printable(item.path)}\nsha256: {item.sha256}\nerror: "
                          f"{error}\nfix: correct the file and drop it in the inbox again.{note}\n").encode("utf-8"))
    outcome = FileOutcome(printable(item.path), "quarantined", error=error + note, output=target)
    return _record(output, item, outcome, started, moved=moved)


def _free_name(folder: Path | str, name: str, sha256: str) -> Path | str:
    """A quarantine path for ``name`` that is not taken, and whose ``.error.txt`` report name fits too."""
    room = MAX_NAME_BYTES - len(".error.txt")
    stem, suffix = Path(name).stem, Path(name).suffix[:16]
    numbered = (f"{stem}-{sha256[:12]}-{i}{suffix}" for i in range(2, 1000))
    for candidate in (name, f"{stem}-{sha256[:12]}{suffix}", *numbered):
        target = storage.join(folder, fit_name(candidate, room)) if storage.is_url(folder) else folder / fit_name(
            candidate, room)
        if not storage.exists(target) and not storage.exists(f"{target}.error.txt"):
            return target
    raise FileExistsError(f"{folder}: 1000 quarantined copies of {printable(name)}; empty the quarantine folder")


def _move_out(source: Path, target: Path) -> bool:
    """Move the entry itself (never a symlink's target); False when it must stay (read-only inbox).

    A file that cannot be moved is copied when it can be read; the error report says which happened.
    """
    try:
        os.rename(source, target)
        return True
    except OSError as err:
        if not isinstance(err, PermissionError) and err.errno not in (errno.EXDEV, errno.EROFS):
            raise
    with contextlib.suppress(PermissionError):
        shutil.copy2(source, target, follow_symlinks=False)
    try:
        os.unlink(source)
        return True
    except OSError:
        return False


def inbox_spec(path: str, text_col: str, chunk_rows: int) -> ReadSpec:
    """How to read an inbox file: plain text has no columns; the others need ``text_col``."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    return ReadSpec(text_col="text" if fmt == "text" else text_col, chunk_rows=chunk_rows)
