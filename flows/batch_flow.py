"""The nightly batch flow: new inbox files -> registered model -> Parquet, exactly once, on any task runner."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import asdict
from typing import Literal

from prefect import flow, unmapped
from prefect.futures import as_completed
from prefect.task_runners import TaskRunner
from prefect.states import Completed

from flows.runners import ClusterOptions, RunnerName, check_cluster, check_shared, make_task_runner, torch_threads
from seqmodels import storage
from seqmodels.inbox import InboxFile, exclusive_run
from seqmodels.shards import (DEFAULT_SHARD_ROWS, Shard, ShardResult, finish_file, model_key, plan_shards,
                              settle_snapshot, shard_dicts)
from tasks.batch import fetch_model, find_new, predict_shard, report_run, snapshot_file
from tasks.settings import tracking_uri


@flow(name="batch-predict", log_prints=True)
def batch_predict_flow(
    model_name: str,
    inbox: str,
    output: str,
    alias: str = "champion",
    text_col: str = "text",
    batch_size: int = 512,
    device: Literal["auto", "cpu", "cuda"] = "auto",
    tracking_uri_override: str | None = None,
    home: str | None = None,
    task_runner: RunnerName = "local",
    address: str | None = None,
    workers: int | None = None,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    threads: int | None = None,
):
    """Predict every new file of ``inbox`` (whatever task the model does) into ``output/date=YYYY-MM-DD/`` with
    ``models:/NAME@ALIAS``; inbox and output are paths or fsspec URLs. ``task_runner`` ``dask`` or ``ray``
    runs the snapshot and prediction tasks on a cluster (``address``, else a local one of ``workers``
    processes); ``threads`` caps torch threads per worker process."""
    started = time.monotonic()
    cluster = ClusterOptions(task_runner=task_runner, address=address, workers=workers, shard_rows=shard_rows)
    check_cluster(cluster)
    check_shared(cluster, inbox, output)
    model = fetch_model(model_name, alias, tracking_uri(tracking_uri_override, home), home)
    with exclusive_run(output):
        items, outcomes = find_new(inbox, output), []
        if items:  # no cluster is started for a night without new files
            with make_task_runner(cluster) as runner:
                shared = output if storage.is_url(output) else os.path.abspath(output)  # workers' cwd may differ
                outcomes = predict_files(runner, items, shared, model, dict(
                    text_col=text_col, batch_size=batch_size, device=device, threads=torch_threads(cluster, threads)),
                    shard_rows)
    summary = report_run(outcomes, model, time.monotonic() - started)
    summary.update(model_name=model["model_name"], model_version=model["model_version"], output=output,
                   task_runner=task_runner)
    message = (f"{summary['files_written']} files / {summary['rows']} rows written, "
               f"{summary['files_failed']} files quarantined, {summary['files_skipped']} skipped (deleted meanwhile)")
    return Completed(message=message, data=summary)


def predict_files(runner: TaskRunner, items: list[dict], output: str, model: dict, settings: dict,
                  shard_rows: int) -> list[dict]:
    """Snapshot the files and map the prediction over their shards on ``runner`` (started by the caller),
    then finish (join, record or quarantine) each file as soon as its last shard is done, here, in the
    process that holds the run lock; outcomes in inbox order. ``settings``: ``predict_shard``'s text_col,
    batch_size, device and threads."""
    started = time.monotonic()
    snapshots = runner.map(snapshot_file, {"item": items, "output": unmapped(output)})
    outcomes: dict[str, dict] = {}
    shards: dict[str, list[Shard]] = {}
    for item, snapshot in zip(items, snapshots):
        settled = settle_snapshot(InboxFile(**item), snapshot.result(), output, started)
        if settled is not None:
            outcomes[item["path"]] = asdict(settled)
        else:
            shards[item["path"]] = plan_shards(snapshot.result(), output, model_key(model), shard_rows)
    planned = [shard for path in shards for shard in shards[path]]
    futures = runner.map(predict_shard, {"shard": shard_dicts(planned), "model": unmapped(model),
                                         **{name: unmapped(value) for name, value in settings.items()}})
    done: dict[str, list[ShardResult]] = defaultdict(list)
    for future in as_completed(futures):
        result = ShardResult(**future.result())  # a shard that failed for good (not its file's fault) fails the run
        done[result.path].append(result)
        if len(done[result.path]) == len(shards[result.path]):
            outcomes[result.path] = asdict(finish_file(output, shards[result.path], done[result.path]))
    return [outcomes[item["path"]] for item in items if item["path"] in outcomes]
