"""The shape of the package: only :mod:`detal.ultra` imports ``ultralytics``, and modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import detal

PACKAGE = Path(detal.__file__).resolve().parent
ULTRA = PACKAGE / "ultra"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imported(tree: ast.AST) -> set[str]:
    """Top-level package names imported anywhere in ``tree`` (lazy imports inside functions too)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    ("source", "imports_ultralytics"),
    [
        ("import ultralytics", True),
        ("import ultralytics.utils as u", True),
        ("def f():\n    from ultralytics.utils import ops\n", True),
        ("from ultralytics import YOLO", True),
        ("import ultralyticsplus", False),
        ("from detal.ultra import UltralyticsAdapter", False),
        ("from . import ultralytics", False),
    ],
)
def test_the_scan_sees_every_form_of_import(source, imports_ultralytics):
    assert ("ultralytics" in _imported(ast.parse(source))) is imports_ultralytics


def test_only_detal_ultra_imports_ultralytics():
    assert ULTRA.is_dir() and any("ultralytics" in _imported(ast.parse(p.read_text())) for p in ULTRA.rglob("*.py"))
    outside = [
        str(p.relative_to(PACKAGE))
        for p in _modules()
        if ULTRA not in p.parents and "ultralytics" in _imported(ast.parse(p.read_text(encoding="utf-8")))
    ]
    assert outside == []


def test_every_ultra_module_is_under_500_lines():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in ULTRA.rglob("*.py")}
    assert sizes and {name: n for name, n in sizes.items() if n >= 500} == {}
