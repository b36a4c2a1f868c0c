"""Small pieces: no function over 50 lines and no module over 450 lines in ``mediarunner/``.

The one accepted exception is an alembic migration's ``upgrade``/``downgrade``: a migration is a
frozen record of a schema step, read top to bottom, never edited after it shipped.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mediarunner"
MAX_FUNCTION_LINES = 50
MAX_MODULE_LINES = 450
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _long_functions(source: str) -> list[str]:
    return [f"{node.name} (line {node.lineno}): {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_and_its_functions_are_small(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    lines = source.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines (at most {MAX_MODULE_LINES}): split it"
    assert _long_functions(source) == [], f"functions over {MAX_FUNCTION_LINES} lines: split them"


def test_the_check_catches_a_long_function() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert _long_functions(f"def f():\n{body}\n") == [f"f (line 1): {MAX_FUNCTION_LINES + 1} lines"]
