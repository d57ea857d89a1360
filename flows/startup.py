"""Start-up of the flow-running CLI commands: the Prefect API server boots while the rest loads.

With no Prefect API configured, Prefect itself would start a temporary server on the first flow run:
import the server app in this process (~3 s), start it in a subprocess and wait for it (~4 s), all on
the critical path. :class:`BackgroundPrefectServer` starts that same temporary server (the same
uvicorn command and settings Prefect uses) as the very first step instead, so that it boots on another
core while this process imports torch, Prefect and MLflow and opens the MLflow store
(:func:`warm_up`). When an API URL is configured (``PREFECT_API_URL``, a profile, a test harness)
that server is used, as before (a server spawned before the profile was read is stopped at once).
The server stops when the command ends, also on Ctrl-C or SIGTERM, and it never outlives the command's
process: on Linux the kernel sends it SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), and everywhere a
watchdog thread in it exits once its parent process is gone (SIGKILL included).

Run as a script (``python flows/startup.py PARENT_PID UVICORN_ARGS...``) this file is that server's entry
point: it imports nothing from this project, so the server needs no import path set up.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

log = logging.getLogger("seqflow")

_EPHEMERAL_SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
SIGTERM_EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM
_ORPHAN_POLL_S = 0.5  # the watchdog's parent check: one getppid() call, so polling twice a second costs nothing
_GRACEFUL_EXIT_S = 5.0  # uvicorn's graceful shutdown of an idle server takes well under a second here


LIBRARY_LOGGERS = ("seqmodels",)  # the library logs through logging only (it never imports Prefect)


def send_library_logs_to_prefect(level: int = logging.INFO) -> None:
    """Send the library's log lines (the trainer's per-epoch lines) to the Prefect run they happen in.

    Call it before Prefect configures logging (before ``import prefect``): it adds the library's loggers to
    ``PREFECT_LOGGING_EXTRA_LOGGERS``, which flow-run processes started from here inherit; if Prefect has
    configured logging already, the API handler is attached now. Loggers without a level get ``level``, since
    Prefect's default root level (WARNING) would drop the INFO lines before any handler sees them. Lines logged
    outside any flow run are not sent (``PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW=ignore`` unless set).
    """
    named = [name.strip() for name in os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "").split(",") if name.strip()]
    os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = ",".join(named + [n for n in LIBRARY_LOGGERS if n not in named])
    # the library also logs outside flow runs (a bare Trainer, a model loaded in a notebook): those lines still
    # go to stderr, with no warning that they cannot go to a run's logs
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    configured = sys.modules.get("prefect.logging.configuration")
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)
        if configured is not None and configured.PROCESS_LOGGING_CONFIG:
            for handler in logging.getLogger("prefect.extra").handlers:
                if handler not in logger.handlers:
                    logger.addHandler(handler)


class Terminated(SystemExit):
    """Raised in the main thread by the SIGTERM handler of :func:`stop_on_sigterm`."""


# Set by the SIGTERM handler. Raised inside a C extension's import (pydantic_core, while Prefect loads), the
# Terminated exception surfaces as that extension's own failure; this says the SIGTERM caused it.
SIGTERM_RECEIVED = threading.Event()


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While inside: SIGTERM (a scheduler, ``kill``) asks training to stop at its next batch, in whatever
    thread it runs, and raises :class:`Terminated` in the main thread, so clean-up runs as on Ctrl-C.

    Enter it before the server is spawned, so that no SIGTERM can kill the process without clean-up.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        SIGTERM_RECEIVED.set()
        training = sys.modules.get("seqmodels.training")  # not loaded yet: no training can be running
        if training is not None:
            training.request_stop()
        raise Terminated(128 + signum)

    training = sys.modules.get("seqmodels.training")
    if training is not None:
        training.clear_stop_request()  # a request from an earlier command in this process is spent
    SIGTERM_RECEIVED.clear()
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BackgroundPrefectServer:
    """A temporary Prefect API server started at once, in a subprocess, used by flows run inside ``with``.

    ``wait_ready()`` blocks until it answers ``/health``. If it cannot start, it is stopped and Prefect's
    own temporary server takes over on the first flow run, so a failure here never fails the command.
    """

    def __init__(self, startup_timeout_s: float = 60.0):
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self.api_url: str | None = None
        self._undo = ExitStack()

    def __enter__(self) -> "BackgroundPrefectServer":
        # In a fresh process the server is spawned before Prefect is even imported (that import alone takes
        # a second or more); if Prefect's settings then name a server after all, the spawned one is stopped.
        fresh_process = "prefect" not in sys.modules and "PREFECT_API_URL" not in os.environ
        try:
            if fresh_process:
                self._spawn(dict(os.environ))
            self._use_server(fresh_process)
        except BaseException:  # Ctrl-C or SIGTERM while Prefect loads: __exit__ will not run
            self._undo.close()
            self._terminate()
            raise
        return self

    def _use_server(self, spawned: bool) -> None:
        """Point Prefect at the spawned server, unless its settings name another one."""
        from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, get_current_settings, temporary_settings

        settings = get_current_settings()
        if settings.api.url or not settings.server.ephemeral.enabled:
            self._terminate()  # a configured server (or ephemeral mode off): use it, as Prefect would
            return
        if not spawned:
            self._spawn({**os.environ, **settings.to_environment_variables(exclude_unset=True)})
        # no UI is served, so no "View at <url>" links to it
        self._undo.enter_context(temporary_settings(updates={PREFECT_API_URL: self.api_url, PREFECT_UI_URL: ""}))
        _use_settings_in_every_thread(self._undo)
        log.info("starting a temporary Prefect server on %s (set PREFECT_API_URL to use your own)", self.api_url)

    def _spawn(self, env: dict[str, str]) -> None:
        """The uvicorn command Prefect's own temporary server runs, on a free port."""
        import importlib.util

        prefect_dir = Path(importlib.util.find_spec("prefect").origin).parent
        port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), str(os.getpid()), "--app-dir", str(prefect_dir.parent),
             "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "error", "--lifespan", "on"],
            env={**env, **_EPHEMERAL_SERVER_ENV}, stdout=_stderr_fd())  # stdout is the CLI's JSON line alone
        self.api_url = f"http://127.0.0.1:{port}/api"

    def wait_ready(self) -> None:
        """Block until the server answers; on failure fall back to Prefect's own temporary server."""
        if self.process is None:
            return
        import httpx

        deadline = time.monotonic() + self.startup_timeout_s
        with httpx.Client() as client:
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        log.warning("the temporary Prefect server did not start (exit code %s); Prefect will start its own",
                    self.process.poll())
        self._stop()

    def __exit__(self, *exc) -> None:
        self._stop()

    def _stop(self) -> None:
        """Drain Prefect's workers into the server, restore the settings and signal handler, stop the server."""
        try:
            if self.process is not None:
                _drain_prefect_workers()  # logs and events still queued go out while the server is up
        finally:  # a second SIGTERM or Ctrl-C while draining still stops the server
            try:
                self._undo.close()
            finally:
                self._terminate()

    def _terminate(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def _stderr_fd() -> int | None:
    """This process's standard error as a file descriptor for a child's stdout (None: inherit stdout)."""
    try:
        return sys.__stderr__.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _use_settings_in_every_thread(stack: ExitStack) -> None:
    """Make the current settings the process-wide ones too, as Prefect's test harness does, so that
    Prefect's log and event workers (other threads, other contexts) talk to the same server."""
    import prefect.context

    global_context = getattr(prefect.context, "_temporary_global_settings_context", None)
    if global_context is not None:
        stack.enter_context(global_context(prefect.context.get_settings_context()))


def _drain_prefect_workers() -> None:
    """Send the logs and events Prefect's background workers still hold (the harness's shutdown step)."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        try:
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        except RuntimeError:  # never started
            pass
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    run_coro_as_sync(drain())


def warm_up(tracking_uri: str | None = None, data_dir: str | None = None) -> None:
    """Load what a flow run needs while the server boots: the libraries and, given a tracking URI, the
    MLflow store (its tables are created on first use) and experiment."""
    import mlflow  # noqa: F401
    import prefect.flow_engine  # noqa: F401

    if tracking_uri is not None:
        from tasks.settings import configure_mlflow

        configure_mlflow(tracking_uri, data_dir)


# ---- the server process: uvicorn, tied to the life of the process that started it ----------------------------
def _die_with_parent() -> None:
    """Linux: have the kernel send this process SIGTERM when the thread that spawned it ends (the CLI's main
    thread, so: when the CLI's process ends, however it ends). Elsewhere a no-op; the watchdog covers it."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1  # from <linux/prctl.h>
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _exit_when_orphaned(parent_pid: int) -> None:
    """Watchdog thread: once the parent is gone (this process is re-parented), stop gracefully, then for sure."""
    while os.getppid() == parent_pid:
        time.sleep(_ORPHAN_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down on SIGTERM
    time.sleep(_GRACEFUL_EXIT_S)
    os._exit(1)


def serve_while_parent_lives(argv: list[str]) -> None:
    """Entry point of the server process: ``PARENT_PID`` then uvicorn's arguments."""
    import runpy

    parent_pid = int(argv[0])
    _die_with_parent()
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), name="orphan-watchdog", daemon=True).start()
    sys.argv = ["uvicorn", *argv[1:]]
    runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    sys.path.pop(0)  # this file's folder (flows/): its modules must not shadow top-level ones in the server
    serve_while_parent_lives(sys.argv[1:])
