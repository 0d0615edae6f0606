"""Checkpoints that survive a kill at any moment and load with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors, numbers, strings and containers of them: the model's
``state_dict`` (BEGAN's k_t and plateau-rule state included), every optimizer's, the
step, the position in the data order and every random generator's state (torch, CUDA,
NumPy, Python).  Writes go to a temporary file in the same directory, are flushed to
disk, then renamed over the target (``os.replace`` is atomic on POSIX), so a reader
sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read; the message says which file and what to do."""


def safe_load(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with one-sentence errors."""
    import zipfile

    # torch.save writes a zip archive; anything else (a file cut short, random bytes) would reach pickle.
    if Path(path).is_file() and not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"checkpoint {path} is unreadable (not a whole torch.save archive: cut short, or another kind of file); "
            f"delete it to start over or restore it from a copy."
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint {path} does not exist; check the run directory or start without resume=true."
        ) from None
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} needs pickled Python code to load, which weights_only=True refuses for safety "
            f"(first refusal: {str(exc).splitlines()[0][:160]}); only load files you made with this package."
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); delete it to start over or restore it from a copy."
        ) from None


def capture_rng() -> dict[str, Any]:
    """Every random generator's state as tensors and ints (weights_only-loadable)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
