"""Training one model in several processes: the launcher the training task calls, and each process's entry point.

``seqflow train KIND ... --nproc N`` prepares the data, opens the MLflow run and, after training, evaluates and
registers in the CLI's own process, as with one process. Only the training step runs in N processes:
:func:`train_on_processes` writes what training needs (Parquet splits, fitted vocabularies, options) as
``RUN_DIR/distributed/spec.json`` and starts ``python -m torch.distributed.run --standalone --nproc-per-node N -m
tasks.distributed_train SPEC`` (torchrun). In each process :func:`main` joins the process group and calls the
kind's ``train`` with the shared :class:`~seqmodels.training.Trainer` (DistributedDataParallel). Rank 0 trains
into the run directory (checkpoints, ``model/``) and logs each epoch to the MLflow run; the other ranks train
into scratch directories (removed after) and log nothing. So one process registers exactly one model version.

No Prefect here: the training processes import this module. ``SEQFLOW_TORCHRUN_ARGS`` replaces
``--standalone`` with torchrun's multi-node flags (README, "Training on several machines").
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from seqmodels import distributed
from seqmodels.kinds import get_kind
from seqmodels.training import TrainerConfig, TrainingStopped, request_stop, resolve_device, stop_requested

log = logging.getLogger(__name__)

SPEC_FILE = "distributed/spec.json"
RENDEZVOUS_ENV = "SEQFLOW_TORCHRUN_ARGS"  # torchrun's multi-node flags instead of --standalone


@dataclass(frozen=True)
class ProcessWatchConfig:
    """How the launcher and the training processes watch each other."""

    poll_s: float = 0.2  # the launcher's check for a stop request while torchrun runs
    stop_grace_s: float = 90.0  # after SIGTERM, torchrun's wait for the ranks (30 s) and their last batch
    launcher_check_s: float = 1.0  # a training process's check that the CLI that launched it is alive
    tail_lines: int = 40  # torchrun's last lines quoted when it fails


WATCH = ProcessWatchConfig()


def train_in_this_process(kind_name: str, splits: dict[str, str], featurizer_dir: str, run_dir: str | Path,
                          model_config: dict, trainer_config: dict, options: dict, resume: bool,
                          callbacks: tuple = ()) -> Path:
    """The kind's ``train`` on these prepared files and configs (dicts, as the flow passes them)."""
    kind = get_kind(kind_name)
    opts = kind.options(**options)
    config = type(kind.model_config(opts)).from_dict(model_config)
    return Path(kind.train(splits, featurizer_dir, Path(run_dir), config, TrainerConfig(**trainer_config), opts,
                           resume=resume, callbacks=callbacks))


# ---- the launcher, in the CLI's process ----------------------------------------------------------------------
def train_on_processes(kind_name: str, splits: dict[str, str], featurizer_dir: str, run_dir: str,
                       model_config: dict, trainer_config: dict, options: dict, resume: bool,
                       run_id: str | None) -> Path:
    """Train in ``options["nproc"]`` processes under torchrun; rank 0's model directory (``run_dir/model``).

    A stop request (SIGTERM) reaches every rank, which stop at the same batch; torchrun's failure is an error
    quoting its last lines."""
    launch = distributed.LaunchConfig(nproc=distributed.process_count(options["nproc"]))
    _check_gpus(launch, trainer_config.get("device", "auto"))
    spec = {"kind": kind_name, "splits": splits, "featurizer_dir": featurizer_dir, "run_dir": str(run_dir),
            "model_config": model_config, "trainer_config": trainer_config, "options": options, "resume": resume,
            "run_id": run_id, "threads": launch.threads_per_process(), "launcher_pid": os.getpid(),
            "launcher_host": socket.gethostname()}
    spec_path = _write_json(Path(run_dir) / SPEC_FILE, spec)
    command = launch.torchrun_command(__name__, [str(spec_path)], rendezvous_flags())
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    log.info("training in %d processes of %d torch threads: %s", launch.nproc, spec["threads"], shlex.join(command))
    code, tail = _run_torchrun(command, env)
    if stop_requested():
        raise TrainingStopped(f"training was asked to stop (SIGTERM) and its {launch.nproc} processes stopped; "
                              f"the checkpoints of finished epochs are in {Path(run_dir) / 'checkpoints'}")
    model_dir = Path(run_dir) / "model"
    if code != 0 or not (model_dir / "model.json").exists():
        raise RuntimeError(f"training in {launch.nproc} processes failed (torchrun exit code {code}); its last "
                           f"lines:\n{tail}")
    return model_dir


def rendezvous_flags() -> list[str]:
    """``--standalone`` (every process on this machine), or the flags in ``$SEQFLOW_TORCHRUN_ARGS``."""
    return shlex.split(os.environ.get(RENDEZVOUS_ENV, "")) or ["--standalone"]


def _check_gpus(launch: distributed.LaunchConfig, device: str) -> None:
    """NCCL needs a GPU per process: more processes than GPUs is a clear error before anything starts."""
    import torch

    if resolve_device(device).type != "cuda" or RENDEZVOUS_ENV in os.environ:
        return
    gpus = torch.cuda.device_count()
    if launch.nproc > gpus:
        raise ValueError(f"--nproc {launch.nproc} with {gpus} GPU(s): training on GPUs takes one GPU per process; "
                         f"use --nproc {gpus}, or --device cpu")


def _write_json(path: Path, data: dict) -> Path:
    """``data`` as JSON at ``path``, written under a temporary name first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _run_torchrun(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run torchrun, relaying its output to this run's log; on a stop request (or when this process is ended
    by an exception: SIGTERM, Ctrl-C) SIGTERM it, which stops its ranks at their next batch. Returns its exit
    code and last lines."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    tail: deque[str] = deque(maxlen=WATCH.tail_lines)
    relay = threading.Thread(target=contextvars.copy_context().run, args=(_relay, proc.stdout, tail), daemon=True)
    relay.start()
    try:
        while proc.poll() is None:
            if stop_requested():
                break
            time.sleep(WATCH.poll_s)
    finally:
        if proc.poll() is None:
            _stop(proc)
        relay.join(timeout=5)
    return proc.returncode, "".join(tail)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to torchrun (it passes it to the ranks), then, past the grace period, SIGKILL."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=WATCH.stop_grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _relay(stream, tail: deque) -> None:
    """Each line of torchrun's output into this run's log (Prefect's run logger inside a run), and the tail."""
    logger = _run_logger()
    for line in stream:
        tail.append(line)
        logger.info(line.rstrip("\n"))


def _run_logger():
    """The Prefect run's logger when this runs inside one (the copied context carries it), else this module's."""
    try:
        from prefect import get_run_logger
        from prefect.exceptions import MissingContextError
    except ImportError:
        return log
    try:
        return get_run_logger()
    except MissingContextError:
        return log


# ---- each training process, under torchrun -------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """One rank: join the process group, train, leave it. 0 on success, 143 when stopped."""
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    _set_up_process(spec)
    distributed.start_process_group(resolve_device(spec["trainer_config"].get("device", "auto")))
    try:
        train_rank(spec)
    except TrainingStopped as err:
        log.warning("%s", err)
        return 128 + signal.SIGTERM
    finally:
        distributed.stop_process_group()
    return 0


def _set_up_process(spec: dict) -> None:
    """Log lines named by rank (the ranks above 0 only warnings), torch threads, SIGTERM stops training at the
    next batch, and a watch on the CLI that launched the processes when it runs on this machine (gone: stop
    too)."""
    import torch

    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, stream=sys.stderr,
                        format=f"[rank {rank}] %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(int(spec["threads"]))
    signal.signal(signal.SIGTERM, lambda signum, frame: request_stop())
    if spec.get("launcher_host") == socket.gethostname():
        threading.Thread(target=_stop_when_gone, args=(int(spec["launcher_pid"]),), daemon=True).start()


def _stop_when_gone(pid: int) -> None:
    """Ask training to stop once process ``pid`` (the CLI) no longer exists, e.g. after a SIGKILL."""
    while True:
        time.sleep(WATCH.launcher_check_s)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            request_stop()
            return
        except PermissionError:  # alive, someone else's: not ours to judge
            continue


def train_rank(spec: dict) -> Path:
    """This rank's training: rank 0 into the run directory, logging each epoch to MLflow; the others into a
    scratch directory of their own (removed after), sharing rank 0's checkpoints for a resume."""
    run_dir = Path(spec["run_dir"])
    main_rank = distributed.is_main_process()
    target = run_dir if main_rank else _scratch_dir(run_dir, distributed.rank())
    callbacks = ()
    if main_rank and spec.get("run_id"):
        from tasks.epoch_logging import MlflowEpochLogger

        callbacks = (MlflowEpochLogger(spec["run_id"]),)
    try:
        return train_in_this_process(spec["kind"], spec["splits"], spec["featurizer_dir"], target,
                                     spec["model_config"], spec["trainer_config"], spec["options"], spec["resume"],
                                     callbacks)
    finally:
        if not main_rank:
            shutil.rmtree(target, ignore_errors=True)


def _scratch_dir(run_dir: Path, rank: int) -> Path:
    """``RUN_DIR/distributed/rank<N>``, empty but for ``checkpoints``, a link to the run's own (rank 0 writes
    there; every rank reads it to resume)."""
    scratch = run_dir / "distributed" / f"rank{rank}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (scratch / "checkpoints").symlink_to((run_dir / "checkpoints").resolve(), target_is_directory=True)
    return scratch


if __name__ == "__main__":
    sys.exit(main())
