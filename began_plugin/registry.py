"""Model discovery over the entry-point group ``gan_trainer.models``.

Listing reads package metadata only (no plugin is imported); loading imports one
entry point and checks it against the contract in :mod:`began_plugin.interface`.
Our own models (``began``, ``dcgan``, ``wgan_gp``) are found through the same
group as anyone else's.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from torch import nn

from began_plugin.interface import REQUIRED_ATTRIBUTES

GROUP = "gan_trainer.models"


class RegistryError(LookupError):
    """A model name cannot be resolved to a conforming model class."""


@dataclass(frozen=True)
class ModelEntry:
    """One registered model, as its distribution's metadata declares it."""

    name: str
    value: str
    distribution: str
    version: str
    entry_point: EntryPoint

    def describe(self) -> str:
        return f"{self.name!r} ({self.value}, from {self.distribution} {self.version})"


def _entries() -> dict[str, list[ModelEntry]]:
    found: dict[str, list[ModelEntry]] = {}
    for ep in entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        entry = ModelEntry(
            name=ep.name,
            value=ep.value,
            distribution=dist.metadata["Name"] if dist is not None else "<unknown distribution>",
            version=dist.version if dist is not None else "?",
            entry_point=ep,
        )
        bucket = found.setdefault(ep.name, [])
        # The same distribution found twice on the import path is one registration, not a clash.
        if not any(e.distribution == entry.distribution and e.value == entry.value for e in bucket):
            bucket.append(entry)
    return found


def list_models() -> list[str]:
    """Registered model names, sorted; imports no plugin."""
    return sorted(_entries())


def model_entries() -> list[ModelEntry]:
    """Every registration (a duplicated name appears once per distribution)."""
    found = _entries()
    return [e for name in sorted(found) for e in found[name]]


def _entry(name: str) -> ModelEntry:
    found = _entries()
    if name not in found:
        raise RegistryError(
            f"unknown model {name!r}; the registered models are {sorted(found)} "
            f"(entry-point group {GROUP!r}): pick one of them or install the package that provides it."
        )
    regs = found[name]
    if len(regs) > 1:
        raise RegistryError(
            f"model name {name!r} is registered twice, by "
            + " and by ".join(r.describe() for r in regs)
            + ": uninstall one of the two distributions."
        )
    return regs[0]


def check_conforms(obj: Any, name: str = "<model>") -> None:
    """Raise ``RegistryError`` naming the first missing part of the contract."""
    if not (inspect.isclass(obj) and issubclass(obj, nn.Module)):
        raise RegistryError(
            f"model {name!r} resolves to {obj!r}, which is not an nn.Module subclass; "
            f"the gan_trainer.models contract needs a model class (see began_plugin.interface)."
        )
    missing = [attr for attr in REQUIRED_ATTRIBUTES if not hasattr(obj, attr)]
    if missing:
        raise RegistryError(
            f"model {name!r} ({obj.__module__}.{obj.__qualname__}) does not conform to the "
            f"gan_trainer.models contract: it lacks {', '.join(missing)} (see began_plugin.interface)."
        )
    if not dataclasses.is_dataclass(obj.Hparams):
        raise RegistryError(
            f"model {name!r}: its Hparams is {obj.Hparams!r}, not a dataclass; "
            f"declare the hyper-parameters and their defaults as a @dataclass."
        )


def load_model(name: str) -> type[nn.Module]:
    """Import the model class registered as ``name`` and check it conforms."""
    entry = _entry(name)
    try:
        obj = entry.entry_point.load()
    except Exception as exc:  # any import failure of a third-party plugin
        raise RegistryError(
            f"model {name!r} failed to import from entry point {entry.value!r} of "
            f"{entry.distribution} {entry.version}: {type(exc).__name__}: {exc}"
        ) from exc
    check_conforms(obj, name)
    return obj


def create_model(name: str, image_size: int = 32, channels: int = 3, **hparams: Any) -> nn.Module:
    """``load_model(name)(image_size=..., channels=..., **hparams)``."""
    return load_model(name)(image_size=image_size, channels=channels, **hparams)


def model_status() -> list[tuple[ModelEntry, str]]:
    """Each registration with ``"ok"`` or the one-sentence reason it does not load.

    One broken plugin never hides the others.
    """
    rows = []
    for entry in model_entries():
        try:
            load_model(entry.name)
            status = "ok"
        except RegistryError as exc:
            status = str(exc)
        rows.append((entry, status))
    return rows
