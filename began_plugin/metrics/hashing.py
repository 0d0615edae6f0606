"""Content hashes and cache keys: the one place that turns settings, tensors and files into hex digests.

Caches of real-data statistics and of the coverage classifier are found on disk by these digests, and every
reported number carries the SHA-256 of the weights behind it, so a digest must never change for the same
input: each function here writes exactly the bytes the earlier per-module helpers wrote, and the tests pin
their values. Change one only together with a format version that retires the old caches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["json_sha256", "state_dict_sha256", "file_sha256", "file_sha256_and_sha1"]

_CHUNK = 1 << 20


def json_sha256(obj: Any) -> str:
    """SHA-256 (hex) of ``obj`` as canonical JSON: sorted keys, no spaces, non-ASCII escaped."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def state_dict_sha256(state: Mapping[str, torch.Tensor], *, include_dtype: bool = True) -> str:
    """SHA-256 (hex) of a state dict: per entry, in key order, its name, (dtype,) shape and raw bytes.

    ``include_dtype=False`` leaves the dtype out; the coverage classifier's recorded hashes were made that way.
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        digest.update(name.encode())
        if include_dtype:
            digest.update(str(t.dtype).encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def _file_hexdigests(path: str, algorithms: tuple[str, ...]) -> tuple[str, ...]:
    hashes = [hashlib.new(name) for name in algorithms]
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            for h in hashes:
                h.update(chunk)
    return tuple(h.hexdigest() for h in hashes)


def file_sha256(path: str) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    return _file_hexdigests(path, ("sha256",))[0]


def file_sha256_and_sha1(path: str) -> tuple[str, str]:
    """(SHA-256, SHA-1) of a file's bytes in one pass: an 87 MB weights file is read once, not twice."""
    sha256, sha1 = _file_hexdigests(path, ("sha256", "sha1"))
    return sha256, sha1
