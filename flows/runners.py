"""Where the batch flow's tasks run: ``local`` (threads here), ``dask`` (prefect-dask) or ``ray`` (prefect-ray).

One options class, :class:`ClusterOptions`: ``seqflow predict`` makes its flags from it, the batch flow
takes its fields as parameters, and the nightly deployment's settings carry them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from seqmodels.options import option
from seqmodels.shards import DEFAULT_SHARD_ROWS

RunnerName = Literal["local", "dask", "ray"]
RAY_MISSING = ("--task-runner ray needs prefect-ray (and Ray, which wants Python >= 3.11): "
               "pip install 'seqflow[ray]'")


@dataclass(frozen=True)
class ClusterOptions:
    """Where the batch flow runs its snapshot and prediction tasks."""

    task_runner: RunnerName = option(
        "local", help="where prediction tasks run: local (threads in this process), dask or ray", group="cluster")
    address: str | None = option(
        None, help="scheduler of an existing cluster: tcp://HOST:8786 (dask) or ray://HOST:10001 (ray); "
        "default: start a local cluster of --workers processes for this run", group="cluster")
    workers: int | None = option(
        None, help="worker processes of the local dask/ray cluster (default: one per core), or threads of "
        "the local runner (default: 1)", group="cluster")
    shard_rows: int = option(
        DEFAULT_SHARD_ROWS, help="records per prediction task: a file of more rows is split", group="cluster")


def check_cluster(options: ClusterOptions) -> None:
    """Refuse contradictory or impossible settings before anything runs."""
    if options.address and options.task_runner == "local":
        raise ValueError(f"--address {options.address} needs --task-runner dask or ray")
    if options.workers is not None and options.workers < 1:
        raise ValueError(f"--workers must be at least 1, not {options.workers}")
    if options.shard_rows < 1:
        raise ValueError(f"--shard-rows must be at least 1, not {options.shard_rows}")
    if options.task_runner == "ray":
        try:
            import prefect_ray  # noqa: F401
        except ImportError:
            raise ImportError(RAY_MISSING) from None


def check_shared(options: ClusterOptions, *locations: str) -> None:
    """Refuse ``memory://`` with worker processes: that filesystem lives inside one process."""
    for location in locations:
        if options.task_runner != "local" and str(location).startswith("memory://"):
            raise ValueError(f"{location}: memory:// exists in one process only; the {options.task_runner} "
                             "workers cannot see it. Use --task-runner local, or a path or store every worker reaches")


def local_workers(options: ClusterOptions) -> int:
    """Worker processes of a cluster started for this run."""
    return options.workers or os.cpu_count() or 1


def make_task_runner(options: ClusterOptions):
    """The Prefect task runner for ``options`` (a local cluster is started when the flow enters it)."""
    from prefect.task_runners import ThreadPoolTaskRunner

    check_cluster(options)
    if options.task_runner == "local":
        return ThreadPoolTaskRunner(max_workers=options.workers or 1)
    if options.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if options.address:
            return DaskTaskRunner(address=options.address)
        return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
            "n_workers": local_workers(options), "threads_per_worker": 1, "processes": True,
            "dashboard_address": None})
    from prefect_ray import RayTaskRunner

    if options.address:
        return RayTaskRunner(address=options.address)
    return RayTaskRunner(init_kwargs={"num_cpus": local_workers(options)})


def torch_threads(options: ClusterOptions, threads: int | None) -> int | None:
    """Torch threads of each worker process: ``threads`` when given; else the cores of this host shared
    among the local cluster's workers (``max(1, cores // workers)``); else None (torch's choice: on a
    remote cluster, give --threads = cores per host // worker processes per host)."""
    if threads:
        return threads
    if options.task_runner == "local" or options.address:
        return None
    return max(1, (os.cpu_count() or 1) // local_workers(options))
