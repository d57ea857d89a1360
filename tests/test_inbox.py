"""The inbox ledger without Prefect or a model: quarantine, retries, snapshots, one bad file never stops a run."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import seqmodels.inbox as inbox_module
from seqmodels.inbox import Ledger, exclusive_run, find_new_files, inbox_spec, predict_file

COLUMNS = {"model_name": "m", "model_version": "1", "run_id": "r"}


def fake_predict(texts: list) -> pd.DataFrame:
    """A stand-in classifier: every text is ``x`` with score 0.5."""
    return pd.DataFrame({"label": ["x"] * len(texts), "score": [0.5] * len(texts)})


def run_inbox(inbox: Path, output: Path, predict=fake_predict, chunk_rows: int = 65_536) -> list:
    """What the batch flow does, minus Prefect: every new file through ``predict_file``."""
    with exclusive_run(output):
        return [predict_file(item, output, predict, COLUMNS, inbox_spec(item.path, "text", chunk_rows))
                for item in find_new_files(inbox, output)]


def outputs(output: Path) -> pd.DataFrame:
    files = sorted(output.glob("date=*/*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


@pytest.fixture
def inbox(tmp_path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "z_good.txt").write_text("alpha\nbeta\n")
    return folder


def test_symlink_is_quarantined_as_a_link_and_its_target_stays(inbox, tmp_path):
    outside = tmp_path / "elsewhere" / "secret.txt"
    outside.parent.mkdir()
    outside.write_bytes(b"\x89PNG\x00\x00")
    (inbox / "link.txt").symlink_to(outside)
    outcomes = run_inbox(inbox, tmp_path / "out")
    assert [o.status for o in outcomes] == ["quarantined", "written"]
    assert outside.read_bytes() == b"\x89PNG\x00\x00"
    moved = tmp_path / "out" / "quarantine" / "link.txt"
    assert moved.is_symlink() and os.readlink(moved) == str(outside)
    assert not (inbox / "link.txt").exists() and not (inbox / "link.txt").is_symlink()


def test_quarantined_file_put_back_is_retried(inbox, tmp_path):
    output = tmp_path / "out"
    (inbox / "b.csv").write_text("headline\nStocks up\n")
    assert [o.status for o in run_inbox(inbox, output)] == ["quarantined", "written"]
    (output / "quarantine" / "b.csv").rename(inbox / "b.csv")  # put back unchanged, e.g. after fixing --text-col
    again = find_new_files(inbox, output)
    assert [Path(i.path).name for i in again] == ["b.csv"]


def test_file_changed_after_listing_is_written_under_the_hash_of_what_was_read(inbox, tmp_path):
    output = tmp_path / "out"
    [item] = find_new_files(inbox, output)
    (inbox / "z_good.txt").write_text("alpha\nbeta\ngamma\n")
    outcome = predict_file(item, output, fake_predict, COLUMNS, inbox_spec(item.path, "text", 65_536))
    assert outcome.rows == 3
    assert Ledger(output).entries()[-1]["sha256"] == hashlib.sha256(b"alpha\nbeta\ngamma\n").hexdigest()
    assert find_new_files(inbox, output) == [] and len(outputs(output)) == 3


def test_lines_appended_while_reading_are_not_written_under_the_old_hash(inbox, tmp_path):
    output = tmp_path / "out"
    (inbox / "z_good.txt").write_text("".join(f"line {i}\n" for i in range(6)))
    hashed = hashlib.sha256((inbox / "z_good.txt").read_bytes()).hexdigest()

    def appending(texts: list) -> pd.DataFrame:
        with (inbox / "z_good.txt").open("a") as fh:
            fh.write("late line\n")
        return fake_predict(texts)

    [outcome] = run_inbox(inbox, output, appending, chunk_rows=2)
    assert outcome.rows == 6 and len(outputs(output)) == 6
    assert Ledger(output).entries()[-1]["sha256"] == hashed and hashed[:12] in outcome.output


def corrupt_parquet(path: Path) -> None:
    pd.DataFrame({"text": [f"headline number {i}" for i in range(2000)]}).to_parquet(path, compression=None)
    data = bytearray(path.read_bytes())
    data[4:64] = b"\xff" * 60  # the first page header: the footer still reads, the page does not
    path.write_bytes(bytes(data))


def test_corrupt_parquet_page_is_quarantined_and_the_run_goes_on(inbox, tmp_path):
    corrupt_parquet(inbox / "broken.parquet")
    outcomes = run_inbox(inbox, tmp_path / "out")
    assert [o.status for o in outcomes] == ["quarantined", "written"]
    assert "broken.parquet" in outcomes[0].error
    assert (tmp_path / "out" / "quarantine" / "broken.parquet.error.txt").exists()


def test_prediction_error_on_one_file_quarantines_it(inbox, tmp_path):
    (inbox / "a_weird.txt").write_text("boom\n")

    def fussy(texts: list) -> pd.DataFrame:
        if "boom" in texts:
            raise ValueError("cannot featurize 'boom'")
        return fake_predict(texts)

    outcomes = run_inbox(inbox, tmp_path / "out", fussy)
    assert [o.status for o in outcomes] == ["quarantined", "written"]
    assert "a_weird.txt" in outcomes[0].error and "cannot featurize" in outcomes[0].error


def test_file_deleted_after_listing_is_skipped_and_not_recorded(inbox, tmp_path):
    output = tmp_path / "out"
    (inbox / "a_gone.txt").write_text("soon gone\n")
    items = find_new_files(inbox, output)
    (inbox / "a_gone.txt").unlink()
    outcomes = [predict_file(i, output, fake_predict, COLUMNS, inbox_spec(i.path, "text", 100)) for i in items]
    assert [o.status for o in outcomes] == ["skipped", "written"]
    assert "a_gone.txt" in outcomes[0].error
    assert [Path(e["path"]).name for e in Ledger(output).entries()] == ["z_good.txt"]


def test_file_deleted_while_listing_is_left_out(inbox, tmp_path, monkeypatch):
    real = inbox_module.list_inbox
    monkeypatch.setattr(inbox_module, "list_inbox", lambda source: [inbox / "a_gone.txt", *real(source)])
    assert [Path(i.path).name for i in find_new_files(inbox, tmp_path / "out")] == ["z_good.txt"]


def test_long_file_name_gets_output_and_quarantine_names_that_fit(inbox, tmp_path):
    long_good, long_bad = "g" * 240 + ".txt", "b" * 240 + ".txt"
    (inbox / long_good).write_text("fine text\n")
    (inbox / long_bad).write_bytes(b"\x00\x01")
    output = tmp_path / "out"
    run_inbox(inbox, output)
    (inbox / long_bad).write_bytes(b"\x00\x02")  # quarantined again: the second name carries the hash
    outcomes = run_inbox(inbox, output)
    assert [o.status for o in outcomes] == ["quarantined"]
    names = [p.name for p in output.rglob("*")]
    assert max(len(n.encode()) for n in names) <= 255
    assert len(list(output.glob("date=*/g*.parquet"))) == 1 and len(list(output.glob("quarantine/b*.error.txt"))) == 2


def test_non_utf8_file_name_is_written_with_a_readable_source_file(inbox, tmp_path):
    name = os.fsdecode(b"caf\xe9.txt")
    (inbox / name).write_text("bonjour\n")
    outcomes = run_inbox(inbox, tmp_path / "out")
    assert [o.status for o in outcomes] == ["written", "written"]
    assert outcomes[0].path.endswith("caf\\xe9.txt")
    assert outputs(tmp_path / "out")["source_file"].str.endswith("caf\\xe9.txt").any()
    assert run_inbox(inbox, tmp_path / "out") == []


def test_read_only_inbox_quarantines_by_copy_and_does_not_retry(inbox, tmp_path, monkeypatch):
    (inbox / "a_bad.txt").write_bytes(b"\x00bad")
    real_rename, real_unlink = os.rename, os.unlink

    def refuse(real):
        def guarded(src, *args, **kwargs):
            if Path(src).parent == inbox:
                raise PermissionError(errno.EACCES, "Permission denied", str(src))
            return real(src, *args, **kwargs)
        return guarded

    monkeypatch.setattr(os, "rename", refuse(real_rename))
    monkeypatch.setattr(os, "unlink", refuse(real_unlink))
    output = tmp_path / "out"
    outcomes = run_inbox(inbox, output)
    assert [o.status for o in outcomes] == ["quarantined", "written"]
    assert (inbox / "a_bad.txt").exists() and (output / "quarantine" / "a_bad.txt").read_bytes() == b"\x00bad"
    assert "could not be moved out of the inbox (read-only): the quarantine holds a copy" in (
        output / "quarantine" / "a_bad.txt.error.txt").read_text()
    assert run_inbox(inbox, output) == []


def test_predictor_reasons_are_kept_and_counted(inbox, tmp_path):
    (inbox / "z_good.txt").write_text("ok\n\n...\nvery long\n")

    def with_reasons(texts: list) -> pd.DataFrame:
        reasons = {"...": "empty after cleaning", "very long": "truncated to 400 tokens"}
        return pd.DataFrame({"label": [None if t == "..." else "x" for t in texts], "score": [0.5] * len(texts),
                             "reason": [reasons.get(t) for t in texts]})

    [outcome] = run_inbox(inbox, tmp_path / "out", with_reasons)
    assert outcome.reason_counts == {"empty text": 1, "empty after cleaning": 1, "truncated to 400 tokens": 1}
    [written] = (tmp_path / "out").glob("date=*/*.parquet")
    table = pq.read_table(written)
    assert table.column("reason").to_pylist() == [None, "empty text", "empty after cleaning", "truncated to 400 tokens"]
    assert table.column_names.count("reason") == 1 and table.column_names[-1] == "reason"


def test_without_a_reason_column_only_empty_texts_have_one(inbox, tmp_path):
    (inbox / "z_good.txt").write_text("ok\n  \n")
    [outcome] = run_inbox(inbox, tmp_path / "out")
    assert outcome.reason_counts == {"empty text": 1}
    [written] = (tmp_path / "out").glob("date=*/*.parquet")
    assert pq.read_table(written).column("reason").to_pylist() == [None, "empty text"]


def test_ledger_lines_hold_the_raw_path_of_a_non_utf8_name(inbox, tmp_path):
    name = os.fsdecode(b"n\xff.txt")
    (inbox / name).write_text("x\n")
    run_inbox(inbox, tmp_path / "out")
    paths = [json.loads(line)["path"] for line in (tmp_path / "out" / "_ledger.jsonl").read_text().splitlines()]
    assert str(inbox.resolve() / name) in paths


def test_errors_name_the_inbox_file_not_the_snapshot(inbox, tmp_path):
    (inbox / "fake.parquet").write_text("this is not parquet")
    corrupt_parquet(inbox / "broken.parquet")
    outcomes = run_inbox(inbox, tmp_path / "out")
    assert [o.status for o in outcomes] == ["quarantined", "quarantined", "written"]
    for outcome in outcomes[:2]:
        assert outcome.error.startswith(str(inbox.resolve())) and ".reading" not in outcome.error
