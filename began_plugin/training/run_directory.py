"""A run directory: what a run leaves behind, written so that nothing is ever half-written.

    config.json          the resolved configuration (model hyper-parameters included)
    provenance.json      versions, git revision, command line, device, start time
    metrics.jsonl        one JSON object per logged step
    tb/                  the same scalars and the sample grids as TensorBoard events
    samples/step_N.png   grids of images generated from one fixed z
    checkpoints/latest.pt  everything needed to resume (weights_only-loadable)
    .lock                held while a trainer writes here

Only the main process writes; the others get a directory object whose writes do nothing.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from began_plugin.atomic_files import atomic_save, atomic_write, is_temporary, sweep_temporaries
from began_plugin.training.config import ConfigError

#: Keys that may change between a run and its resumption.
#: ``out`` is where the run is, not how it was made: a run moved, copied or named by another path resumes.
RESUMABLE_CHANGES = {"resume", "device", "steps", "schedule_steps", "data.num_workers", "log_every", "out"}
#: Keys derived from the others (the data's channel count, the notes on non-paper options): not compared.
DERIVED = ("image_channels", "options_not_in_paper")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _hparam_fields(model: Any) -> list:
    """The dataclass fields of a registered model's ``Hparams`` ([] when the model or its Hparams is unknown)."""
    import dataclasses

    from began_plugin.registry import RegistryError, load_model

    try:
        hparams = load_model(model).Hparams if isinstance(model, str) else None
    except (RegistryError, AttributeError):
        return []
    return list(dataclasses.fields(hparams)) if dataclasses.is_dataclass(hparams) else []


def _model_defaults(model: Any) -> dict[str, Any]:
    """``model_hparams.NAME: value`` that an older run's record without NAME was trained with: the field's
    ``metadata["absent"]`` where it has one (BEGAN's ``elu``: ``torch``, the only ELU before the key existed),
    else its default (interface.py, ``Hparams``)."""
    import dataclasses

    return {
        f"model_hparams.{f.name}": f.metadata.get("absent", f.default)
        for f in _hparam_fields(model)
        if "absent" in f.metadata or f.default is not dataclasses.MISSING
    }


def recorded_hparams(model: Any, hparams: dict[str, Any]) -> dict[str, Any]:
    """A run's recorded ``model_hparams`` with each missing key that has ``absent`` metadata filled in: the
    model an older run was trained as (BEGAN recorded without ``elu``: ``elu=torch``), not today's default."""
    absent = {f.name: f.metadata["absent"] for f in _hparam_fields(model) if "absent" in f.metadata}
    return {**absent, **hparams}


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for each key that differs; a key an older version did not write counts as its default
    (or as its field's ``absent`` metadata, where it has one)."""
    import dataclasses

    from began_plugin.training.config import TrainConfig, to_dict

    defaults = {k: v for k, v in _flatten(to_dict(TrainConfig())).items() if v != {}}
    # a host key with ``absent`` metadata (channels_last) counts as what runs were trained with before it existed
    defaults.update({f.name: f.metadata["absent"] for f in dataclasses.fields(TrainConfig) if "absent" in f.metadata})
    b = _flatten(new)
    later = {k: v for k, v in _model_defaults(new.get("model")).items() if k in b}
    a = {**defaults, **later, **_flatten(old)}
    return [
        f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
        for k in sorted(set(a) | set(b))
        if k not in RESUMABLE_CHANGES and not k.startswith(DERIVED) and a.get(k) != b.get(k)
    ]


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import torchvision

    # The modules' own strings carry the build (e.g. 2.14.1+cu130); metadata versions do not.
    out = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__}
    for dist in ("began-plugin", "torch-fidelity", "pytorch-fid", "numpy", "scipy", "omegaconf"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def git_revision() -> str | None:
    """The source tree's commit (with ``-dirty`` when it has changes), or None outside git."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _leftover(path: Path) -> bool:
    """What a run killed before writing config.json can leave: its lock and ``atomic_write`` temporaries."""
    return path.name == ".lock" or is_temporary(path)


def read_config(path: Path) -> dict[str, Any]:
    """A run's ``config.json``, or a ConfigError that names the file and what to do."""
    try:
        config = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; pass the out= directory of a gan-train run.") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"{path} cannot be read as a run configuration ({type(exc).__name__}: {str(exc)[:120]}); "
            f"restore it from a copy, or start a new run in another out= directory."
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        raise ConfigError(
            f"{path} is not a run configuration (a JSON object with a model name); restore it from a copy, "
            f"or start a new run in another out= directory."
        )
    return config


def read_log(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl``; a final line cut short by a kill is dropped, any other bad line refused."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}); restore it from a copy or move it away to resume.") from None
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                raise ValueError("not a row with a step")
        except ValueError:
            if number == len(lines):
                break  # a line cut by a kill is the end of what was written
            raise ConfigError(
                f"line {number} of {path} is not a log row ({line[:40]!r}), and the {len(lines) - number} rows "
                f"after it would be lost if it were cut; repair or delete that line, then rerun."
            ) from None
        rows.append(row)
    return rows


class RunDirectory:
    def __init__(self, root: Path, write: bool = True) -> None:
        self.root = Path(root)
        self.write = write
        self.checkpoint_path = self.root / "checkpoints" / "latest.pt"
        self.config_path = self.root / "config.json"
        self.metrics_path = self.root / "metrics.jsonl"
        self.lock_path = self.root / ".lock"
        self.provenance_path = self.root / "provenance.json"
        self._locked = False
        self._lock_fd = -1

    # -- opening: every check happens before the first byte is written -------------
    def check(self, config: dict[str, Any], resume: bool) -> None:
        """Refuse a directory that holds another run, or a resume under a changed config."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"out={str(self.root)!r} is a file, not a directory; choose a directory for the run.")
        if resume and not self.root.exists():
            raise ConfigError(
                f"resume=true but out={str(self.root)!r} does not exist, so there is no run to resume; "
                f"check the path, or leave out resume=true to start a new run there."
            )
        if self.config_path.exists():
            if not resume:
                raise ConfigError(
                    f"out={str(self.root)!r} already holds a run; pass resume=true to continue it "
                    f"or choose another out= directory."
                )
            old = read_config(self.config_path)
            read_log(self.metrics_path)  # a bad row or record is refused now, before anything is written
            self._provenance()
            diffs = config_differences(old, config)
            if diffs:
                raise ConfigError(
                    f"cannot resume {str(self.root)!r} under a changed configuration ({'; '.join(diffs)}); "
                    f"rerun with the original values or start a new run in another out= directory."
                )
        elif resume and self.root.exists() and any(not _leftover(p) for p in self.root.iterdir()):
            raise ConfigError(f"out={str(self.root)!r} holds no run to resume (no config.json); check the path.")
        elif self.root.exists() and any(not _leftover(p) for p in self.root.iterdir()):
            raise ConfigError(
                f"out={str(self.root)!r} is not empty and is not a run directory; choose an empty or new directory."
            )

    def open(self, config: dict[str, Any], argv: list[str] | None = None) -> None:
        """Take the lock and write the configuration and provenance (after ``check``)."""
        if not self.write:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._acquire_lock()
        except PermissionError:
            raise ConfigError(f"out={str(self.root)!r} is not writable; choose a directory you can write to.") from None
        except OSError as exc:
            raise ConfigError(
                f"out={str(self.root)!r} cannot be written ({exc.strerror}); free space or choose another directory."
            ) from None
        # Temporaries of writes cut short by a kill (never through a link out of the run directory).
        for folder in (self.root, self.root / "checkpoints", self.root / "samples"):
            sweep_temporaries(folder, within=self.root)
        if not self.config_path.exists():
            self._write_json(self.config_path, config)
        start = {
            "versions": package_versions(),
            "git_revision": git_revision(),
            "argv": argv if argv is not None else sys.argv,
            "device": str(torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "torch_threads": torch.get_num_threads(),
        }
        first = self._provenance()
        if first is not None:  # a resumption: the first start's record is kept, this one is added to it
            start = {**first, "resumes": [*first.get("resumes", []), start]}
        self._write_json(self.provenance_path, start)

    def _provenance(self) -> dict[str, Any] | None:
        """The run's provenance record, if it has one (a bad one is refused, never overwritten)."""
        try:
            record = json.loads(self.provenance_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, ValueError):
            record = None
        if not isinstance(record, dict):
            raise ConfigError(
                f"{self.provenance_path} cannot be read as the run's provenance record; restore it from a copy, "
                f"or move it away to resume with a new one."
            )
        return record

    def _acquire_lock(self) -> None:
        """Hold ``.lock`` for the run's lifetime: an ``flock`` on it, released by the kernel when the process dies.

        The file names its holder (``pid host``) for the messages only; whether a lock is held is the kernel's
        answer, so there is no window in which an empty or stale file can be taken over by two processes.
        """
        import fcntl

        me = f"{os.getpid()} {socket.gethostname()}"
        if self.lock_path.is_dir() or self.lock_path.is_symlink():
            raise ConfigError(
                f"{self.lock_path} is a directory or a link, not a lock file; remove it if no trainer is running, then rerun."
            )
        for _ in range(5):
            fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0), 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid, _host = self._holder(fd)
                os.close(fd)
                who = f"pid {pid}" if pid > 0 else "a live process"
                raise ConfigError(
                    f"another trainer ({who}) is writing to out={str(self.root)!r}; wait for it to finish "
                    f"or stop it, or choose another out= directory."
                ) from None
            except OSError:
                os.close(fd)
                raise
            try:
                same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # its holder removed the file between our open and our lock: take the new one
                os.close(fd)
                continue
            pid, host = self._holder(fd)
            if pid > 0 and host and host != socket.gethostname():
                os.close(fd)
                # A file system shared by machines: flock may not reach across them, so that process is not ours to judge.
                raise ConfigError(
                    f"out={str(self.root)!r} is locked by pid {pid} on host {host!r}, which cannot be "
                    f"checked from here; if no trainer runs there any more, delete {self.lock_path} and rerun."
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, me.encode(), 0)
            os.fsync(fd)
            self._lock_fd = fd
            self._locked = True
            return
        raise ConfigError(f"could not take the lock {self.lock_path}; remove it if no trainer is running.")

    @staticmethod
    def _holder(fd: int) -> tuple[int, str]:
        try:
            pid_s, host = os.pread(fd, 512, 0).decode(errors="replace").split(maxsplit=1)
            return int(pid_s), host.strip()
        except (ValueError, OSError):
            return -1, ""

    def close(self) -> None:
        if self._locked:
            try:  # still our file (not deleted and replaced by hand): remove it while we hold it
                if os.stat(self.lock_path).st_ino == os.fstat(self._lock_fd).st_ino:
                    self.lock_path.unlink()
            except OSError:
                pass
            os.close(self._lock_fd)
            self._locked = False

    # -- writing -----------------------------------------------------------------------
    def _write_json(self, path: Path, obj: Any) -> None:
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"))

    def log(self, row: dict[str, Any], writer=None) -> None:
        if not self.write:
            return
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        if writer is not None:
            for key, value in row.items():
                if key != "step":
                    writer.add_scalar(key, value, row["step"])

    def truncate_log(self, step: int) -> None:
        """Drop log rows after ``step`` (the resumed run writes them again) and a final line cut by a kill."""
        if not self.write or not self.metrics_path.exists():
            return
        keep = [row for row in read_log(self.metrics_path) if row["step"] <= step]
        atomic_write(self.metrics_path, lambda tmp: tmp.write_text("".join(f"{json.dumps(r)}\n" for r in keep)))

    def tensorboard(self, purge_step: int | None = None):
        if not self.write:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.root / "tb"), purge_step=purge_step)

    def save_samples(self, step: int, images: torch.Tensor, writer=None) -> None:
        if not self.write:
            return
        from torchvision.utils import make_grid, save_image

        grid = make_grid(images.detach().float().cpu() * 0.5 + 0.5, nrow=8, padding=2)
        atomic_write(self.root / "samples" / f"step_{step:07d}.png", lambda tmp: save_image(grid, tmp, format="png"))
        if writer is not None:
            writer.add_image("samples", grid.clamp(0, 1), step)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        if self.write:
            atomic_save(state, self.checkpoint_path)
