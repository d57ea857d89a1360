"""Inbox files split into row-range shards that any worker process (or host) can predict on its own.

The batch flow's steps, each a plain function here (the Prefect tasks in ``tasks/batch.py`` wrap them):

1. :func:`take_snapshot` copies an inbox file to ``OUTPUT/.reading/`` (on the shared output), hashing and
   counting line breaks as it copies: what is predicted is what is recorded, and no format has more records
   than line breaks + 1, which bounds the file's rows without parsing it.
2. :func:`plan_shards` cuts that bound into ranges of ``shard_rows`` records (the last one open-ended).
3. :func:`run_shard` predicts one range into ``OUTPUT/.parts/<sha256>-<path hash>-v<version>-<run>-<start>-<stop>.parquet``,
   written under a temporary name and moved there. The name is the shard's identity (input digest, model
   version, range): a retried shard whose part exists returns it instead of writing it twice.
4. :func:`finish_file` joins a file's parts in row order into ``OUTPUT/date=.../<name>-<hash12>.parquet``
   (temporary name, then moved) and records the file in the ledger; a shard that failed on the file's
   content (unreadable, refused by the model) quarantines the whole file instead.

Steps 1-3 pass and return paths and small dicts only. Only the process holding the run lock (the flow)
calls :func:`finish_file`, :func:`settle_snapshot` and so writes the ledger and the quarantine.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
import os
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from seqmodels import inbox, storage  # inbox._record / inbox._quarantine: looked up when called
from seqmodels.inbox import (PARTS, READING, FileFault, FileOutcome, InboxFile, Prediction, _add_counts,
                             _reason_counts, _write_predictions, copy_snapshot, existing_output, output_name,
                             printable)
from seqmodels.readers import FORMATS, ReadSpec

# Rows per shard. A shard should be long next to Prefect's cost per task run (~0.05-0.1 s of API calls and
# pickling) and short next to the work a killed worker loses: at the 5,000-20,000 texts/s one CPU worker
# predicts, 100,000 rows are 5-20 s of work (overhead under 2 %, at most ~20 s redone after a crash), and a
# file of a million lines spreads over 10 workers. Smaller files are one shard each.
DEFAULT_SHARD_ROWS = 100_000


@dataclass(frozen=True)
class Shard:
    """One row range of one snapshot, and the part file its predictions go to."""

    path: str  # the inbox file, as listed (messages, the ``source_file`` column)
    sha256: str  # of the snapshot: what is read is what is recorded
    size: int
    snapshot: str  # path or URL of the snapshot on the output
    index: int
    start: int
    stop: int | None  # None: to the end of the file
    part: str  # path or URL of the part file

    @property
    def item(self) -> InboxFile:
        return InboxFile(self.path, self.sha256, self.size)


@dataclass
class ShardResult:
    """What one shard produced (``part`` None when its range held no record) or why the file failed."""

    path: str
    index: int
    rows: int = 0
    part: str | None = None
    error: str | None = None
    label_counts: dict = field(default_factory=dict)
    reason_counts: dict = field(default_factory=dict)
    seconds: float = 0.0


def take_snapshot(item: InboxFile, output: str) -> dict:
    """Copy ``item`` to ``OUTPUT/.reading/``: ``{"status": "ok", "snapshot", "read", "bound"}``, or status
    ``"skipped"`` (deleted since it was listed) or ``"fault"`` (unreadable) with an ``error``."""
    try:
        source = storage.open_file(item.path, "rb")
    except FileNotFoundError:
        return {"status": "skipped", "error": f"{printable(item.path)}: deleted after it was listed; nothing "
                "recorded, it is read if it comes back"}
    except OSError as err:
        return {"status": "fault", "error": f"{printable(item.path)}: cannot be read ({err.strerror or err})"}
    try:
        with source:
            snapshot, read, breaks = copy_snapshot(source, item, storage.join(output, READING))
    except FileFault as fault:
        return {"status": "fault", "error": str(fault)}
    bound = _parquet_rows(snapshot) if FORMATS.get(Path(item.path).suffix.lower()) == "parquet" else breaks + 1
    return {"status": "ok", "snapshot": str(snapshot), "read": asdict(read), "bound": bound}


def _parquet_rows(snapshot: str | Path) -> int:
    """A Parquet snapshot's row count from its footer; 1 (one shard, which reports the damage) if unreadable."""
    try:
        with storage.open_file(snapshot, "rb") as fh:
            return pq.ParquetFile(fh).metadata.num_rows
    except Exception:
        return 1


def plan_shards(snapshot: dict, output: str, model_key: str, shard_rows: int) -> list[Shard]:
    """The shards of a snapshot: ``ceil(bound / shard_rows)`` ranges, the last one open-ended."""
    read = InboxFile(**snapshot["read"])
    where = hashlib.sha256(os.fsencode(read.path)).hexdigest()[:8]  # two inbox files of one content: two parts
    count = max(1, math.ceil(snapshot["bound"] / shard_rows))
    shards = []
    for index in range(count):
        start, stop = index * shard_rows, None if index == count - 1 else (index + 1) * shard_rows
        name = f"{read.sha256}-{where}-{model_key}-{start}-{'end' if stop is None else stop}.parquet"
        shards.append(Shard(read.path, read.sha256, read.size, snapshot["snapshot"], index, start, stop,
                            storage.join(output, PARTS, name)))
    return shards


def model_key(model: dict) -> str:
    """``v<version>-<run id>``: which model made a part (a part of another model is never reused)."""
    return f"v{model['model_version']}-{str(model.get('run_id', ''))[:12]}"


def run_shard(shard: Shard, predict: Prediction, columns: dict, spec: ReadSpec) -> ShardResult:
    """Predict one shard into its part file (temporary name, then moved); an existing part is returned as is.

    A failure of the file's content comes back as ``error`` (the file is quarantined); any other error
    (the output store, the worker) is raised, for the task runner to retry.
    """
    started = time.monotonic()
    result = ShardResult(shard.path, shard.index)
    if storage.exists(shard.part):  # a retry of a shard whose part was published: never written twice
        with storage.local_copy(shard.part, ".parquet") as part:
            table = pq.read_table(part)
        _add_counts(result.label_counts, predict.counts(table))
        _add_counts(result.reason_counts, _reason_counts(table))
        result.rows, result.part = table.num_rows, shard.part
        return result
    tmp = _local_tmp(shard.part)
    try:
        with storage.local_copy(shard.snapshot, Path(shard.path).suffix[:16]) as snapshot:
            outcome = _write_predictions(snapshot, shard.item, tmp, predict, columns, spec, (shard.start, shard.stop))
        if outcome.rows:
            storage.publish_file(tmp, shard.part)
            result.part = shard.part
    except FileFault as fault:
        result.error = str(fault)
        return result
    finally:
        tmp.unlink(missing_ok=True)
    result.rows, result.label_counts, result.reason_counts = outcome.rows, outcome.label_counts, outcome.reason_counts
    result.seconds = time.monotonic() - started
    return result


def _local_tmp(location: str) -> Path:
    """Where a file for ``location`` is written first: beside it when local, else a local temporary file."""
    if not storage.is_url(location):
        target = Path(location)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")  # two attempts never share one
    handle, name = tempfile.mkstemp(suffix=".parquet")
    os.close(handle)
    return Path(name)


def settle_snapshot(item: InboxFile, snapshot: dict, output: str, started: float) -> FileOutcome | None:
    """The outcome of a file that needs no shard (skipped, unreadable, or already written by a killed run)."""
    if snapshot["status"] == "skipped":
        return FileOutcome(printable(item.path), "skipped", error=snapshot["error"],
                           seconds=time.monotonic() - started)
    if snapshot["status"] == "fault":
        return inbox._quarantine(output, item, snapshot["error"], started)
    read = InboxFile(**snapshot["read"])
    done = existing_output(output, read)
    if done is None:
        return None
    storage.remove(snapshot["snapshot"])
    with storage.open_file(done, "rb") as fh:
        rows = pq.ParquetFile(fh).metadata.num_rows
    return inbox._record(output, read, FileOutcome(printable(read.path), "recovered", rows, printable(done)), started)


def finish_file(output: str, shards: list[Shard], results: list[ShardResult],
                today: dt.date | None = None) -> FileOutcome:
    """Join the parts of one file in row order into its output and record it, or quarantine it (first error)."""
    item = shards[0].item
    results = sorted(results, key=lambda r: r.index)
    started = time.monotonic() - sum(r.seconds for r in results)  # the file's seconds: its shards' work + the join
    try:
        errors = [r.error for r in results if r.error]
        if errors:
            return inbox._quarantine(output, item, errors[0], started)
        name = output_name(item)
        folder = f"date={(today or dt.date.today()).isoformat()}"
        target = storage.join(output, folder, name)
        _join_parts([r.part for r in results if r.part], target)
        outcome = FileOutcome(printable(item.path), "written", sum(r.rows for r in results), printable(target))
        for r in results:
            _add_counts(outcome.label_counts, r.label_counts)
            _add_counts(outcome.reason_counts, r.reason_counts)
        return inbox._record(output, item, outcome, started)
    finally:
        storage.remove(shards[0].snapshot)
        for shard in shards:
            storage.remove(shard.part)


def _join_parts(parts: list[str], target: str) -> None:
    """One part is moved into place; several are streamed, row group by row group, into a temporary file
    that is then moved there."""
    if len(parts) == 1:
        storage.move(parts[0], target)  # a rename on one filesystem: the part was complete already
        return
    schemas = []
    for part in parts:
        with storage.open_file(part, "rb") as fh:
            schemas.append(pq.ParquetFile(fh).schema_arrow)
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    tmp = _local_tmp(target)
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for part in parts:
                with storage.local_copy(part, ".parquet") as local_part:
                    parquet = pq.ParquetFile(local_part)
                    for group in range(parquet.num_row_groups):
                        writer.write_table(parquet.read_row_group(group).cast(schema))
        storage.publish_file(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def shard_dicts(shards: list[Shard]) -> list[dict]:
    """Shards as plain dicts, what Prefect tasks take."""
    return [dataclasses.asdict(s) for s in shards]
