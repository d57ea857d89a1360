"""The batch flow on a cluster: Dask gives the rows the local runner gives, a killed worker loses and
duplicates nothing, row-range shards join in order, and inbox and output may be fsspec URLs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows.batch_flow import batch_predict_flow
from flows.runners import ClusterOptions, check_cluster, check_shared
from seqmodels import storage
from seqmodels.inbox import InboxFile, Ledger, inbox_spec
from seqmodels.shards import finish_file, plan_shards, run_shard, take_snapshot

TXT = [f"Striker Scores Goal {i}" if i % 3 else f"Bank Shares Fall {i}" for i in range(11)] + [""]
CSV = ["Market Profit Up", "Coach League Match", "Nasa Planet Laser"]


def make_inbox(folder: Path) -> Path:
    folder.mkdir()
    (folder / "a.txt").write_text("\r\n".join(TXT) + "\r\n")  # CRLF: two line-break bytes per line
    pd.DataFrame({"id": range(3), "text": CSV}).to_csv(folder / "b.csv", index=False)
    (folder / "c.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in CSV))
    pd.DataFrame({"text": TXT[:7]}).to_parquet(folder / "d.parquet")
    (folder / "e.csv").write_text("headline\nno text column\n")  # quarantined on every runner
    (folder / "f.txt").write_bytes((folder / "a.txt").read_bytes())  # same content, its own rows
    return folder


def run(trained, inbox, output, **cluster):
    return batch_predict_flow(model_name="topics", inbox=str(inbox), output=str(output),
                              tracking_uri_override=trained["tracking_uri"], home=str(trained["home"]), **cluster)


def outputs(output: Path) -> pd.DataFrame:
    files = sorted(output.glob("date=*/*.parquet"))
    table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return table.sort_values(["source_file", "row"], ignore_index=True)


def ledger_view(output) -> list[tuple]:
    return sorted((Path(e["path"]).name, e["status"], e["rows"]) for e in Ledger(output).entries())


@pytest.fixture(scope="session")
def dask_cluster(prefect_harness):
    """One LocalCluster of 2 single-threaded worker processes for every Dask test (starting one costs seconds)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


def test_dask_gives_the_same_rows_ledger_and_quarantine_as_local(trained_classifier, dask_cluster, tmp_path):
    local_in, dask_in = make_inbox(tmp_path / "in_local"), make_inbox(tmp_path / "in_dask")
    local = run(trained_classifier, local_in, tmp_path / "local")
    dask = run(trained_classifier, dask_in, tmp_path / "dask", task_runner="dask",
               address=dask_cluster.scheduler_address, shard_rows=4, threads=1)  # a.txt: 4 shards, d.parquet: 2
    assert local["rows"] == dask["rows"] == 12 + 3 + 3 + 7 + 12 and dask["task_runner"] == "dask"
    assert local["files_failed"] == dask["files_failed"] == 1
    mine, theirs = outputs(tmp_path / "local"), outputs(tmp_path / "dask")
    mine["source_file"] = mine["source_file"].str.replace("in_local", "in_dask")
    pd.testing.assert_frame_equal(mine, theirs)
    assert theirs.groupby("source_file")["row"].apply(list).map(lambda rows: rows == list(range(len(rows)))).all()
    assert ledger_view(tmp_path / "local") == ledger_view(tmp_path / "dask")
    assert (tmp_path / "dask" / "quarantine" / "e.csv").exists() and not (dask_in / "e.csv").exists()
    assert not list((tmp_path / "dask").glob(".parts/*")) and not list((tmp_path / "dask").glob(".reading/*"))
    assert run(trained_classifier, dask_in, tmp_path / "dask", task_runner="dask",
               address=dask_cluster.scheduler_address)["files"] == 0


def test_a_killed_worker_loses_nothing_and_duplicates_nothing(trained_classifier, dask_cluster, tmp_path):
    from distributed import Client, WorkerPlugin

    class KillAfterFirstShard(WorkerPlugin):
        """The first ``predict_shard`` task to finish kills its worker process before its result leaves it
        (once: a flag file records it), as a machine lost mid-run would. Defined here, so that it travels
        to the workers by value."""

        name = "seqflow-kill-after-first-shard"

        def __init__(self, flag: str):
            self.flag = flag

        def transition(self, key, start, finish, **kwargs):
            if start == "executing" and finish == "memory" and str(key).startswith("predict_shard-"):
                if not os.path.exists(self.flag):
                    Path(self.flag).write_text(f"killed worker pid {os.getpid()} after {key}")
                    os._exit(1)

    plugin = KillAfterFirstShard(str(tmp_path / "killed"))
    inbox = make_inbox(tmp_path / "inbox")
    with Client(dask_cluster, set_as_default=False) as client:
        client.register_plugin(plugin)
        try:
            summary = run(trained_classifier, inbox, tmp_path / "out", task_runner="dask",
                          address=dask_cluster.scheduler_address, shard_rows=4, threads=1)
        finally:
            client.unregister_worker_plugin(plugin.name)
    assert (tmp_path / "killed").exists()  # a worker did die after publishing a part
    table = outputs(tmp_path / "out")
    assert summary["rows"] == len(table) == 37 and not table.duplicated(["source_file", "row"]).any()
    assert sorted(name for name, status, _ in ledger_view(tmp_path / "out") if status == "written") == [
        "a.txt", "b.csv", "c.jsonl", "d.parquet", "f.txt"]


def test_memory_inbox_and_output(trained_classifier):
    fs = fsspec.filesystem("memory")
    fs.pipe({"/night/in/a.txt": ("\n".join(TXT) + "\n").encode(), "/night/in/b.csv": b"headline\nx\n",
             "/night/in/c.jsonl": "".join(json.dumps({"text": t}) + "\n" for t in CSV).encode()})
    summary = run(trained_classifier, "memory://night/in", "memory://night/out", shard_rows=5)
    assert summary["rows"] == 12 + 3 and summary["files_failed"] == 1
    written = sorted(fs.glob("/night/out/date=*/*.parquet"))
    assert len(written) == 2
    table = pd.concat([pq.read_table(fs.open(p)).to_pandas() for p in written], ignore_index=True)
    assert table["source_file"].str.startswith("memory://").all() and len(table) == 15
    assert table[table["source_file"].str.endswith("a.txt")]["row"].tolist() == list(range(12))
    assert fs.exists("/night/out/quarantine/b.csv") and not fs.exists("/night/in/b.csv")
    assert "column 'text'" in fs.cat_file("/night/out/quarantine/b.csv.error.txt").decode()
    assert sorted(e["status"] for e in Ledger("memory://night/out").entries()) == ["quarantined", "written", "written"]
    assert not fs.exists("/night/out/.lock") and not fs.glob("/night/out/.parts/*")
    assert run(trained_classifier, "memory://night/in", "memory://night/out")["files"] == 0


def fake_predict(texts: list) -> pd.DataFrame:
    return pd.DataFrame({"label": [t.split()[0] if t.split() else None for t in texts], "score": 0.5})


def test_row_range_shards_join_in_order_and_a_retried_shard_writes_nothing_twice(tmp_path):
    from seqmodels.inbox import Prediction

    inbox, output = make_inbox(tmp_path / "inbox"), str(tmp_path / "out")
    item = InboxFile(str(inbox / "a.txt"), "listed", 0)
    snapshot = take_snapshot(item, output)
    assert snapshot["status"] == "ok" and snapshot["bound"] >= len(TXT)
    shards = plan_shards(snapshot, output, "v1-run", 5)
    predict, spec = Prediction(fake_predict), inbox_spec(item.path, "text", 2)
    results = [run_shard(shard, predict, {"model_version": "1"}, spec) for shard in shards]
    again = run_shard(shards[0], predict, {"model_version": "1"}, spec)  # a retry after its part was published
    assert again.part == results[0].part and again.rows == results[0].rows == 5
    assert [r.rows for r in results if r.rows] == [5, 5, 2] and all(r.part is None for r in results[3:])
    outcome = finish_file(output, shards, results)
    table = pq.read_table(outcome.output).to_pandas()
    assert table["row"].tolist() == list(range(12)) and table["text"].fillna("").tolist() == TXT
    assert outcome.rows == 12 and outcome.reason_counts == {"empty text": 1}
    assert not list(Path(output).glob(".parts/*")) and not list(Path(output).glob(".reading/*"))


def test_lock_file_on_a_shared_store_excludes_a_second_run_and_is_broken_when_stale():
    fs = fsspec.filesystem("memory")
    lock = storage.LockFile("memory://locks/.lock", stale_s=60, poll_s=0.01)
    with lock.hold(1, ".lock"):
        with pytest.raises(TimeoutError, match="another run has held .lock"):
            with lock.hold(0.05, ".lock"):
                pass
    assert not fs.exists("/locks/.lock")
    fs.pipe("/locks/.lock", json.dumps({"owner": "dead-host:1:x", "heartbeat": 0}).encode())  # its holder died
    with lock.hold(1, ".lock"):
        assert "dead-host" not in fs.cat_file("/locks/.lock").decode()


def test_cluster_options_are_checked_before_anything_runs():
    with pytest.raises(ValueError, match="needs --task-runner dask or ray"):
        check_cluster(ClusterOptions(address="tcp://scheduler:8786"))
    with pytest.raises(ValueError, match="memory:// exists in one process only"):
        check_shared(ClusterOptions(task_runner="dask"), "/data/inbox", "memory://out")
    try:
        import prefect_ray  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install 'seqflow\[ray\]'"):
            check_cluster(ClusterOptions(task_runner="ray"))


def test_ray_gives_the_same_rows_as_local(trained_classifier, tmp_path):
    pytest.importorskip("prefect_ray")
    local_in, ray_in = make_inbox(tmp_path / "in_local"), make_inbox(tmp_path / "in_ray")
    run(trained_classifier, local_in, tmp_path / "local")
    run(trained_classifier, ray_in, tmp_path / "ray", task_runner="ray", workers=2, shard_rows=4)
    mine, theirs = outputs(tmp_path / "local"), outputs(tmp_path / "ray")
    mine["source_file"] = mine["source_file"].str.replace("in_local", "in_ray")
    pd.testing.assert_frame_equal(mine, theirs)
