"""benchmarks/began_curve.py: bad overrides are one sentence and write nothing; its value parser."""

from __future__ import annotations

from benchmark_scripts import load_benchmark


def test_override_without_equals_is_refused_and_writes_nothing(tmp_path, capsys):
    curve = load_benchmark("began_curve")
    assert curve.main(["run", "--steps", "1", "--out", str(tmp_path / "out"), "lr3e-4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("began_curve.py: error: ") and "KEY=VALUE" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_values_parse_as_numbers_booleans_and_names():
    curve = load_benchmark("began_curve")
    assert curve._value("3e-4") == 3e-4 and curve._value("16") == 16 and curve._value("-1.5") == -1.5
    assert curve._value("true") is True and curve._value("false") is False
    assert curve._value("kaiming") == "kaiming"
