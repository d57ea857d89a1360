"""Where the batch flow reads and writes: a local path, or an fsspec URL (``memory://``, ``s3://``, ``gs://``...).

Local paths keep the local code paths of :mod:`seqmodels.inbox` (``os.replace``, ``flock``, symlinks moved as
links). A URL goes through fsspec, with the same promises where the store can give them:

- a file is published by writing it under a temporary name beside its target, then moving it (on an object
  store a single PUT is already all-or-nothing; the move costs a copy there);
- the run lock is a lock file created with exclusive create (``open(..., "xb")``), refreshed by a heartbeat
  and broken when the heartbeat is older than ``stale_s``. Whether exclusive create is atomic depends on the
  backend (S3 with conditional writes and ``memory://`` are; check yours), so see the README before sharing
  an output between hosts.

Nothing here imports a filesystem package beyond fsspec: ``s3://`` needs ``s3fs`` installed, and so on.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def is_url(location: str | Path) -> bool:
    """Whether ``location`` names an fsspec filesystem other than the local one (``file://`` is local)."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def local(location: str | Path) -> str:
    """A local path, with a ``file://`` prefix removed."""
    text = str(location)
    return text[len("file://"):] if text.startswith("file://") else text


def filesystem(url: str) -> tuple[Any, str]:
    """``(fs, path)`` for an fsspec URL; a missing filesystem package is named with how to install it."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as err:
        raise ValueError(f"{url}: no filesystem for this URL here ({err}); install its fsspec package "
                         "(s3fs for s3://, gcsfs for gs://, adlfs for az://)") from None


def canonical(url: str) -> str:
    """The one spelling of a URL used in ledgers and outputs (``memory://x`` and ``memory:///x`` are one file)."""
    fs, path = filesystem(url)
    return fs.unstrip_protocol(path)


def join(base: str | Path, *names: str) -> str:
    """``base/name/...`` for a local path or a URL."""
    if is_url(base):
        return "/".join([str(base).rstrip("/"), *names])
    return str(Path(local(base), *names))


def name_of(location: str | Path) -> str:
    """The last component of a path or URL."""
    return str(location).rstrip("/").rsplit("/", 1)[-1] if is_url(location) else Path(location).name


def exists(location: str | Path) -> bool:
    """Whether a file or folder exists (a dangling local symlink counts)."""
    if is_url(location):
        fs, path = filesystem(str(location))
        return fs.exists(path)
    return os.path.lexists(local(location))


def read_bytes(location: str | Path) -> bytes:
    """The bytes of a file."""
    if is_url(location):
        fs, path = filesystem(str(location))
        return fs.cat_file(path)
    return Path(local(location)).read_bytes()


def publish_bytes(location: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary name beside ``location``, then move it there: never half a file."""
    if not is_url(location):
        target = Path(local(location))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return
    fs, path = filesystem(str(location))
    tmp = _tmp_beside(path)
    with fs.open(tmp, "wb") as fh:
        fh.write(data)
    fs.mv(tmp, path)


def publish_file(source: Path, location: str | Path) -> None:
    """Move (local) or upload (URL) the finished file ``source`` to ``location`` under a temporary name first."""
    if not is_url(location):
        Path(local(location)).parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, local(location))
        return
    fs, path = filesystem(str(location))
    tmp = _tmp_beside(path)
    fs.put_file(str(source), tmp)
    fs.mv(tmp, path)
    source.unlink(missing_ok=True)


def _tmp_beside(path: str) -> str:
    """A temporary name in the folder of ``path`` (hidden, unique, ending in ``.tmp``)."""
    folder, _, name = path.rpartition("/")
    return f"{folder}/.{name}.{uuid.uuid4().hex[:8]}.tmp"


def remove(location: str | Path) -> None:
    """Delete a file or a folder tree; nothing if it is not there."""
    if is_url(location):
        fs, path = filesystem(str(location))
        if fs.exists(path):
            fs.rm(path, recursive=True)
        return
    target = Path(local(location))
    if target.is_dir() and not target.is_symlink():
        import shutil

        shutil.rmtree(target, ignore_errors=True)
    else:
        target.unlink(missing_ok=True)


def move(source: str | Path, target: str | Path) -> None:
    """Rename within one filesystem, else copy then delete (between two URLs, or a URL and a local path)."""
    if not is_url(source) and not is_url(target):
        Path(local(target)).parent.mkdir(parents=True, exist_ok=True)
        os.replace(local(source), local(target))
        return
    if is_url(source) and is_url(target) and filesystem(str(source))[0] is filesystem(str(target))[0]:
        fs = filesystem(str(source))[0]
        fs.mv(filesystem(str(source))[1], filesystem(str(target))[1])
        return
    with open_file(source, "rb") as src, open_file(target, "wb") as dst:
        while block := src.read(1 << 20):
            dst.write(block)
    remove(source)


def open_file(location: str | Path, mode: str = "rb"):
    """An open binary file on the local disk or through fsspec (folders are created for writing)."""
    if not is_url(location):
        if "r" not in mode:
            Path(local(location)).parent.mkdir(parents=True, exist_ok=True)
        return open(local(location), mode)
    fs, path = filesystem(str(location))
    return fs.open(path, mode)


@contextlib.contextmanager
def local_copy(location: str | Path, suffix: str = "") -> Iterator[Path]:
    """The file as a local path: itself when local, else a temporary download removed afterwards."""
    if not is_url(location):
        yield Path(local(location))
        return
    handle, name = tempfile.mkstemp(suffix=suffix)
    os.close(handle)
    try:
        fs, path = filesystem(str(location))
        fs.get_file(path, name)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def glob(folder: str | Path, pattern: str) -> list[str]:
    """Paths (or canonical URLs) under ``folder`` matching ``pattern``, sorted."""
    if not is_url(folder):
        return sorted(str(p) for p in Path(local(folder)).glob(pattern))
    fs, path = filesystem(str(folder))
    return sorted(fs.unstrip_protocol(p) for p in fs.glob(f"{path.rstrip('/')}/{pattern}"))


@dataclass(frozen=True)
class LockFile:
    """An exclusive run lock for a shared output on any fsspec store: ``path`` created with exclusive create."""

    url: str
    stale_s: float = 600.0  # a holder refreshes every stale_s / 10; older than this it is taken to be dead
    poll_s: float = 0.5

    @contextlib.contextmanager
    def hold(self, timeout_s: float, what: str) -> Iterator[None]:
        """Create the lock file (waiting at most ``timeout_s``), refresh it while held, delete it after."""
        fs, path = filesystem(self.url)
        token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        deadline = time.monotonic() + timeout_s
        while not self._try_create(fs, path, token):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.url}: another run has held {what} for {timeout_s:.0f} s "
                                   f"(holder: {self._holder(fs, path).get('owner', '?')}); if no run is active, "
                                   "delete the lock file")
            time.sleep(self.poll_s)
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(fs, path, token, stop), daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            if self._holder(fs, path).get("owner") == token:
                fs.rm(path)

    def _try_create(self, fs: Any, path: str, token: str) -> bool:
        """Create the lock file if absent (or stale); True when this process now holds it."""
        holder = self._holder(fs, path)
        if holder and time.time() - float(holder.get("heartbeat", 0)) > self.stale_s:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(path)  # its holder stopped refreshing it: dead, or cut off from the store
        try:
            with fs.open(path, "xb") as fh:
                fh.write(self._body(token))
        except (FileExistsError, OSError):
            return False
        return self._holder(fs, path).get("owner") == token

    def _heartbeat(self, fs: Any, path: str, token: str, stop: threading.Event) -> None:
        """Rewrite the lock file's heartbeat every ``stale_s / 10`` while it is held."""
        while not stop.wait(self.stale_s / 10):
            with contextlib.suppress(Exception), fs.open(path, "wb") as fh:
                fh.write(self._body(token))

    @staticmethod
    def _body(token: str) -> bytes:
        return json.dumps({"owner": token, "heartbeat": time.time()}).encode()

    @staticmethod
    def _holder(fs: Any, path: str) -> dict:
        """The lock file's content, or {} when there is none (or it is half written)."""
        try:
            return json.loads(fs.cat_file(path))
        except (FileNotFoundError, ValueError):
            return {}
