"""The package layering of docs/architecture.md, and the module size limit, checked on the source tree.

Each package of ``hap3d`` may import only the packages below it. Imports are read from the source with ``ast``
(module level and inside functions alike), so a lazy import cannot hide an upward arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "hap3d"

# What each part of the package may import (besides itself). Top-level modules count as parts of their own.
ALLOWED: dict[str, set[str]] = {
    "utils": set(),
    "files": {"utils"},
    "precision": {"utils"},
    "config": {"files", "utils"},
    "body": {"files", "utils"},
    "render": {"files", "utils"},
    "model": {"files", "body", "config", "precision", "utils"},
    "data": {"files", "body", "config", "utils"},
    "synth": {"files", "body", "config", "data", "render", "utils"},
    "engine": {"files", "body", "config", "data", "model", "precision", "utils"},
    "infer": {"files", "body", "config", "data", "model", "precision", "render", "utils"},
}
ALLOWED["quickstart"] = set(ALLOWED) - {"cli", "quickstart"}  # everything below the command line
ALLOWED["cli"] = set(ALLOWED) - {"cli"}
MAX_MODULE_LINES = 550  # "no module much over 500 lines": split a module before it grows past this


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def _part(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_parts(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "hap3d" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_part_is_declared():
    parts = {_part(p) for p in _modules()} - {"__init__"}
    assert parts <= ALLOWED.keys(), f"add {sorted(parts - ALLOWED.keys())} to ALLOWED and docs/architecture.md"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path):
    part = _part(path)
    if part == "__init__":
        return
    upward = _imported_parts(path) - ALLOWED[part] - {part}
    where = path.relative_to(SRC)
    assert not upward, f"{where} ({part}) imports {sorted(upward)}: not below it in docs/architecture.md"


def test_modules_stay_small():
    sizes = {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in _modules()}
    big = {k: v for k, v in sizes.items() if v > MAX_MODULE_LINES}
    assert not big, f"modules over {MAX_MODULE_LINES} lines (split them by concern): {big}"
