"""Import a research script from benchmarks/experiments/ as a module (the folder is not a package), for its tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parents[1] / "benchmarks" / "experiments"


def load_experiment(name: str):
    """``benchmarks/experiments/NAME.py`` as a module; the scripts import only the installed package."""
    spec = importlib.util.spec_from_file_location(f"experiment_{name}", EXPERIMENTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def classifier_cache(tmp_path_factory) -> Path:
    """One coverage-classifier cache for the whole session: the digits CNN trains once (several seconds)."""
    return tmp_path_factory.getbasetemp() / "coverage-classifier-cache"
