"""The README's promises: it is short, it starts with the two setup commands, and its Python example runs."""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"

SETUP_TRAIN = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.14.1 torchvision==0.29.1 "
    '&& pip install -e ".[dev]" && gan-train'
)
SETUP_TEST = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.14.1 torchvision==0.29.1 "
    '&& pip install -e ".[dev]" && python -m pytest -q'
)
MAX_LINES = 160


def _lines() -> list[str]:
    return README.read_text(encoding="utf-8").splitlines()


def _command_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, text) of every non-empty code line: inside ``` fences or indented by 4 spaces."""
    found, fenced = [], False
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or (line.startswith("    ") and line.strip()):
            if line.strip():
                found.append((number, line.strip()))
    return found


def _first_python_block(text: str) -> str:
    match = re.search(r"^```python[ \t]*\n(.*?)^```", text, flags=re.S | re.M)
    assert match, "README.md has no ```python block"
    return match.group(1)


def test_readme_is_short_and_starts_with_the_setup_commands():
    lines = _lines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; keep it to {MAX_LINES} at most"
    commands = _command_lines(lines)
    assert [text for _, text in commands[:2]] == [SETUP_TRAIN, SETUP_TEST], commands[:2]
    assert all(number <= 15 for number, _ in commands[:2]), commands[:2]
    assert 'python -m pytest -q -m "not slow"' in "\n".join(lines[:20])


def test_readme_python_example_runs():
    source = _first_python_block(README.read_text(encoding="utf-8"))
    assert len(source.splitlines()) <= 25
    torch.manual_seed(0)
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(source, str(README), "exec"), namespace)
    logs = namespace["logs"]
    assert logs, "the example's train_step returned no logs"
    for key, value in logs.items():
        assert math.isfinite(float(value)), f"{key} = {float(value)} is not finite"
    images = namespace["images"]
    assert images.shape == (8, 1, 32, 32)
    assert float(images.min()) >= -1.0 and float(images.max()) <= 1.0
