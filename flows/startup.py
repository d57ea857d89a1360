"""Start-up of the flow-running CLI commands: the Prefect API server boots while the rest loads.

With no Prefect API configured, Prefect itself would start a temporary server on the first flow run:
import the server app in this process (~3 s), start it in a subprocess and wait for it (~4 s), all on
the critical path. :class:`BackgroundPrefectServer` starts that same temporary server (the same
uvicorn command and settings Prefect uses) as the very first step instead, so that it boots on another
core while this process imports torch, Prefect and MLflow and opens the MLflow store
(:func:`warm_up`). When an API URL is configured (``PREFECT_API_URL``, a profile, a test harness)
that server is used, as before (a server spawned before the profile was read is stopped at once).
The server stops when the command ends, also on Ctrl-C or SIGTERM.
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
from contextlib import ExitStack
from pathlib import Path

log = logging.getLogger("seqflow")

_EPHEMERAL_SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}


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
        if fresh_process:
            self._spawn(dict(os.environ))
        from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, get_current_settings, temporary_settings

        settings = get_current_settings()
        if settings.api.url or not settings.server.ephemeral.enabled:
            self._terminate()  # a configured server (or ephemeral mode off): use it, as Prefect would
            return self
        if not fresh_process:
            self._spawn({**os.environ, **settings.to_environment_variables(exclude_unset=True)})
        # no UI is served, so no "View at <url>" links to it
        self._undo.enter_context(temporary_settings(updates={PREFECT_API_URL: self.api_url, PREFECT_UI_URL: ""}))
        _use_settings_in_every_thread(self._undo)
        self._stop_on_sigterm()
        log.info("starting a temporary Prefect server on %s (set PREFECT_API_URL to use your own)", self.api_url)
        return self

    def _spawn(self, env: dict[str, str]) -> None:
        """The uvicorn command Prefect's own temporary server runs, on a free port."""
        import importlib.util

        prefect_dir = Path(importlib.util.find_spec("prefect").origin).parent
        port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect_dir.parent), "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "error", "--lifespan", "on"],
            env={**env, **_EPHEMERAL_SERVER_ENV}, stdout=_stderr_fd())  # stdout is the CLI's JSON line alone
        self.api_url = f"http://127.0.0.1:{port}/api"

    def _stop_on_sigterm(self) -> None:
        """SIGTERM (a scheduler, ``kill``) exits through ``__exit__`` as Ctrl-C does, so the server stops too."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if previous is not signal.SIG_DFL:
            return  # someone else handles SIGTERM here

        def exit_cleanly(signum, frame):
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, exit_cleanly)
        self._undo.callback(signal.signal, signal.SIGTERM, previous)

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
        if self.process is not None:
            _drain_prefect_workers()  # logs and events still queued go out while the server is up
        self._undo.close()
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
