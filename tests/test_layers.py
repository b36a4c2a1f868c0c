"""Layers point down only: each top-level piece of ``mediarunner`` may import only the pieces
listed for it here (function-local imports included). Lowest first:

``errors`` → ``config`` → ``models`` → ``storage`` → ``media`` → ``speech`` → ``tasks`` | ``scheduler``
→ ``fleet`` → ``workers`` | ``client`` | ``metrics`` | ``runner`` → ``connectors`` | ``api`` → ``web`` → ``cli``.

A new top-level module or package must be added to the table, which is the point: its place in
the layering is a decision, not an accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mediarunner"

_BASE = {"errors", "config"}
_MODELS = _BASE | {"models"}
_LIBS = _MODELS | {"storage", "media", "speech"}
_ENGINE = _LIBS | {"tasks", "scheduler"}
_SERVICES = _ENGINE | {"fleet"}
_PROCESSES = _SERVICES | {"workers", "client", "metrics", "runner"}

#: piece -> the pieces it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "config": {"errors"},
    "models": _BASE,
    "storage": _MODELS,
    "media": _MODELS | {"storage"},
    "speech": _MODELS | {"storage", "media"},
    "tasks": _LIBS,
    "scheduler": _MODELS,
    "fleet": _ENGINE,
    "workers": _SERVICES,
    "client": _SERVICES | {"workers"},  # publishes through the workers' Celery app
    "metrics": _SERVICES,
    "runner": _ENGINE,  # a remote runner: the handlers, over the HTTP API (no database, broker, storage)
    "connectors": _LIBS | {"client"},  # PeerTube's runner protocol served with ordinary jobs, through the client
    "api": _PROCESSES,
    "web": _PROCESSES | {"api"},
    "cli": _PROCESSES | {"api", "web", "connectors"},  # `mediarunner api` serves the API with the web admin
    "__init__": {"client", "models"},
    "__main__": {"cli"},
}


def _piece(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_pieces(path: Path) -> set[tuple[int, str]]:
    """(line, piece) for every ``mediarunner.<piece>`` this module imports."""
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module != "mediarunner" else [f"mediarunner.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "mediarunner" and len(parts) > 1:
                found.add((node.lineno, parts[1]))
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def test_every_piece_has_a_place() -> None:
    pieces = {_piece(p) for p in _modules()}
    assert pieces <= set(ALLOWED), f"add these to ALLOWED in {__file__}: {sorted(pieces - set(ALLOWED))}"


def test_no_relative_imports_across_pieces() -> None:
    bad = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level > 1:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not bad, f"use absolute imports across packages: {bad}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    piece = _piece(path)
    allowed = ALLOWED.get(piece, set()) | {piece, "__version__"}
    wrong = sorted(f"line {line}: {piece} -> {target}" for line, target in _imported_pieces(path)
                   if target not in allowed)
    assert not wrong, f"{path.relative_to(PACKAGE.parent)} imports upward: {wrong}"


def test_table_has_no_cycles() -> None:
    """The table itself is a partial order: no two pieces may import each other, even indirectly."""
    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in ALLOWED.get(todo.pop(), set()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert [p for p in ALLOWED if p in reach(p)] == []


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from mediarunner.workers.app import app\n    return app\n")
    assert (2, "workers") in _imported_pieces(module)
