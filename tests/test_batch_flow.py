"""The nightly batch flow for real: exactly once, in order, quarantine, recovery after a kill."""

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

import seqmodels.inbox as inbox_module
from flows.batch_flow import batch_predict_flow

CONTRACT = ["source_file", "row", "text", "label", "score", "model_name", "model_version", "run_id"]
TXT = ["Striker Scores Goal", "", "Bank Shares Fall", "Nasa Planet Laser"]
CSV = ["Market Profit Up", "Coach League Match"]
JSONL = ["Quantum Genome Nasa", "Stocks And Shares", "Goal Goal Goal"]


@pytest.fixture
def inbox(tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "a.txt").write_text("\n".join(TXT) + "\n")
    pd.DataFrame({"id": [1, 2], "text": CSV}).to_csv(folder / "b.csv", index=False)
    (folder / "c.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in JSONL))
    return folder


def run(trained, inbox, output):
    return batch_predict_flow(model_name="topics", inbox=str(inbox), output=str(output),
                              tracking_uri_override=trained["tracking_uri"], home=str(trained["home"]))


def outputs(output) -> pd.DataFrame:
    files = sorted(output.glob("date=*/*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def test_rows_in_order_once_and_changed_files_again(trained_classifier, inbox, tmp_path):
    output = tmp_path / "out"
    summary = run(trained_classifier, inbox, output)
    assert summary["files_written"] == 3 and summary["files_failed"] == 0 and summary["rows"] == 9
    assert summary["reasons"] == {"empty text": 1}
    table = outputs(output)
    assert CONTRACT == [c for c in table.columns if c in CONTRACT]
    for name, texts in (("a.txt", TXT), ("b.csv", CSV), ("c.jsonl", JSONL)):
        rows = table[table["source_file"].str.endswith(name)]
        assert rows["text"].fillna("").tolist() == texts and rows["row"].tolist() == list(range(len(texts)))
    empty = table[table["text"].fillna("") == ""]
    assert empty["label"].isna().all() and (empty["reason"] == "empty text").all()
    assert set(table["label"].dropna()) <= {"sports", "business", "science"}
    assert table.loc[table["text"] == "Striker Scores Goal", "label"].item() == "sports"
    assert (table["model_version"] == "1").all()

    again = run(trained_classifier, inbox, output)
    assert again["files"] == 0 and len(outputs(output)) == 9

    (inbox / "b.csv").write_text("text\nNew Market Shares\n")
    changed = run(trained_classifier, inbox, output)
    assert changed["files"] == 1 and changed["rows"] == 1
    assert len(outputs(output)) == 10


def test_bad_files_are_quarantined_and_good_ones_written(trained_classifier, inbox, tmp_path):
    (inbox / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (inbox / "latin.txt").write_bytes(b"ok\ncaf\xe9 au lait\n")
    (inbox / "nocol.csv").write_text("headline\nx\n")
    output = tmp_path / "out"
    summary = run(trained_classifier, inbox, output)
    assert summary["files_written"] == 3 and summary["files_failed"] == 3
    quarantine = output / "quarantine"
    for name, message in (("image.txt", "binary"), ("latin.txt", "latin.txt:2: bytes cannot be decoded as utf-8"),
                          ("nocol.csv", "column 'text': no such column")):
        assert (quarantine / name).exists() and not (inbox / name).exists()
        assert message in (quarantine / f"{name}.error.txt").read_text()
    assert len(outputs(output)) == 9


def test_one_bad_file_never_stops_the_nightly_run(trained_classifier, inbox, tmp_path):
    broken = inbox / "broken.parquet"
    pd.DataFrame({"text": [f"Bank Shares {i}" for i in range(2000)]}).to_parquet(broken, compression=None)
    data = bytearray(broken.read_bytes())
    data[4:64] = b"\xff" * 60  # the first page header: the footer reads, the page does not
    broken.write_bytes(bytes(data))
    (inbox / ("L" * 240 + ".txt")).write_text("Striker Scores Goal\n")
    (inbox / os.fsdecode(b"caf\xe9.txt")).write_text("Market Profit Up\n")
    (inbox / "shifted.csv").write_text("id,text\n1,Stocks rally, oil falls\n2,Coach League Match\n")
    output = tmp_path / "out"
    summary = run(trained_classifier, inbox, output)
    assert summary["files_failed"] == 2 and summary["files_written"] == 5 and summary["rows"] == 11
    assert {Path(f["path"]).name for f in summary["failed"]} == {"broken.parquet", "shifted.csv"}
    assert "shifted.csv:2: row has 3 fields" in (output / "quarantine" / "shifted.csv.error.txt").read_text()
    assert "broken.parquet" in (output / "quarantine" / "broken.parquet.error.txt").read_text()
    assert run(trained_classifier, inbox, output)["files"] == 0


def test_missing_model_fails_before_touching_files(trained_classifier, inbox, tmp_path):
    with pytest.raises(LookupError, match="models:/nope@champion"):
        batch_predict_flow(model_name="nope", inbox=str(inbox), output=str(tmp_path / "out"),
                           tracking_uri_override=trained_classifier["tracking_uri"], home=str(trained_classifier["home"]))
    assert not (tmp_path / "out").exists()


class Killed(BaseException):
    """Stands for the process being killed: not an Exception, so nothing catches it."""


@pytest.mark.parametrize("moment", ["before_second_file", "after_rename_before_ledger"])
def test_interrupted_run_then_normal_run_gives_each_row_once(trained_classifier, inbox, tmp_path, monkeypatch, moment):
    output = tmp_path / "out"
    calls = {"n": 0}
    if moment == "before_second_file":
        real = inbox_module.iter_chunks

        def dying(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise Killed()
            return real(*args, **kwargs)

        monkeypatch.setattr(inbox_module, "iter_chunks", dying)
    else:
        real = inbox_module._record

        def dying(*args, **kwargs):
            raise Killed()

        monkeypatch.setattr(inbox_module, "_record", dying)
    with pytest.raises(BaseException):
        run(trained_classifier, inbox, output)
    monkeypatch.undo()
    assert not list(output.glob("date=*/.*.tmp"))  # no partial output
    summary = run(trained_classifier, inbox, output)
    table = outputs(output)
    assert len(table) == 9 and not table.duplicated(["source_file", "row"]).any()
    assert summary["files"] == 3 - (1 if moment == "before_second_file" else 0)
    assert run(trained_classifier, inbox, output)["files"] == 0
