"""An exclusive file lock with a timeout: one process at a time on one host (``flock``)."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path

POLL_S = 0.2  # how often a waiting process tries again


@contextlib.contextmanager
def file_lock(path: str | Path, timeout_s: float, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created with its folder); wait at most ``timeout_s``, then raise
    ``TimeoutError`` saying ``what`` was held. Several hosts need a shared lock service instead."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path}: another run has held {what} for {timeout_s:.0f} s") from None
                time.sleep(POLL_S)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
