"""Files that are either the old version or the whole new one, never half of either.

Every writer in the package (checkpoints, run records, statistics caches, benchmark results)
goes through ``atomic_write``: the content goes to a temporary file in the target's
directory, is flushed to disk, then renamed over the target (``os.replace`` is atomic on
POSIX when both names are on one file system, which the shared directory guarantees).
"""

from __future__ import annotations

import os
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


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def atomic_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
