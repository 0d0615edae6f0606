"""benchmarks/began_curve.py: bad overrides are one sentence and write nothing; its value parser."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("began_curve", ROOT / "benchmarks" / "began_curve.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_override_without_equals_is_refused_and_writes_nothing(tmp_path, capsys):
    curve = _load()
    assert curve.main(["run", "--steps", "1", "--out", str(tmp_path / "out"), "lr3e-4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("began_curve.py: error: ") and "KEY=VALUE" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_values_parse_as_numbers_booleans_and_names():
    curve = _load()
    assert curve._value("3e-4") == 3e-4 and curve._value("16") == 16 and curve._value("-1.5") == -1.5
    assert curve._value("true") is True and curve._value("false") is False
    assert curve._value("kaiming") == "kaiming"
