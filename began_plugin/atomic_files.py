"""Files that are either the old version or the whole new one, never half of either.

Every writer in the package (checkpoints, run records, statistics caches, benchmark results)
goes through ``atomic_write``: the content goes to a temporary file in the target's
directory, is flushed to disk, then renamed over the target (``os.replace`` is atomic on
POSIX when both names are on one file system, which the shared directory guarantees), and the
directory is flushed too, so that a power loss cannot undo the rename.

A temporary is named for its writer (``.NAME.HOST.PID.RANDOM.tmp``): ``sweep_temporaries`` removes only
those whose writer has died on this host, so processes sharing a directory never remove each other's.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

#: Test-only hook (tests/test_faults.py): seconds to wait between writing a ``.pt`` file's temporary
#: copy and renaming it, so a test can SIGKILL a process inside that window.  Unset in normal use.
TEST_SLOW_CHECKPOINT_ENV = "BEGAN_PLUGIN_TEST_SLOW_CHECKPOINT"


def _test_slow_checkpoint(path: Path) -> None:
    delay = os.environ.get(TEST_SLOW_CHECKPOINT_ENV)
    if delay and path.suffix == ".pt":
        time.sleep(float(delay))


def _host() -> str:
    # Dots separate the fields of a temporary's name; a host name keeps its own as dashes.
    return socket.gethostname().replace(".", "-") or "localhost"


def fsync_directory(folder: Path) -> None:
    """Flush a directory's entries (a rename in it) to disk; a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not fsync directories; the rename itself has happened
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_host()}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates the file private (0600); a finished file gets the usual umask-governed mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        _test_slow_checkpoint(path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def atomic_save(obj: Any, path: Path) -> None:
    def save(tmp: Path) -> None:
        # Through a file object: a full disk then raises OSError (ENOSPC), where torch.save(obj, path)
        # raises a RuntimeError that names no cause.
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)

    atomic_write(path, save)


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def _writer_alive(path: Path) -> bool:
    """Whether the process that named this temporary may still be writing it (True when that cannot be told)."""
    parts = path.name[: -len(".tmp")].split(".")
    try:
        host, pid = parts[-3], int(parts[-2])
    except (IndexError, ValueError):
        return False  # an older version's name: no owner recorded, only a killed writer leaves one
    if host != _host():
        return True  # another machine's process cannot be checked from here
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temporaries(folder: Path, within: Path | None = None) -> list[Path]:
    """Remove the temporaries in ``folder`` whose writer has died on this host; return them.

    ``within``: the directory the caller owns; a ``folder`` that is a symbolic link, or that resolves
    outside ``within``, is left alone, so a sweep never deletes anything outside what the command owns.
    """
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return []
    if within is not None and not folder.resolve().is_relative_to(Path(within).resolve()):
        return []
    removed = []
    for tmp in folder.glob(".*.tmp"):
        if tmp.is_file() and not tmp.is_symlink() and not _writer_alive(tmp):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
