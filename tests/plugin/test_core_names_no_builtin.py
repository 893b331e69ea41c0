"""The core names no built-in: no string in advisor/ (docstrings aside) is a built-in plugin's name.

Roles, evidence kinds and the scenario's ``default`` flag carry what the core needs to know, so a
third-party strategy, metric or scenario can take any built-in's place. The built-in names come from a
registry of the built-in plugins; every string constant of every module under advisor/ (f-string
pieces included, docstrings skipped) is split into identifier-like tokens and none may be such a name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from advisor.plugin.registry import build_registry

CORE = Path(__file__).resolve().parents[2] / "advisor"
TOKEN = re.compile(r"[A-Za-z0-9_\-]+")


@pytest.fixture(scope="module")
def builtin_names() -> set[str]:
    reg = build_registry(third_party=False, strict=True)
    names = set(reg.strategies) | set(reg.metrics) | set(reg.scenarios)
    assert {"finetune", "knn", "digits-shift"} <= names  # the built-ins were found
    return names


def _docstring_ids(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def names_in(path: Path, names: set[str]) -> list[str]:
    """``line: name in 'constant'`` for each string constant of ``path`` holding one of ``names``."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstring_ids(tree)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            for name in sorted(names & set(TOKEN.findall(node.value))):
                hits.append(f"{node.lineno}: {name} in {node.value[:60]!r}")
    return hits


def test_no_core_module_holds_a_builtin_name(builtin_names: set[str]) -> None:
    modules = sorted(CORE.rglob("*.py"))
    assert len(modules) > 30
    found = {str(p.relative_to(CORE.parent)): hits for p in modules if (hits := names_in(p, builtin_names))}
    assert found == {}


def test_the_scan_sees_names_in_code_and_skips_docstrings(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('"""Docstrings may say finetune."""\n\n'
                      'def f(x):\n    """Also finetune here."""\n'
                      '    KEY = "baseline:finetune"\n    return f"gain over {x} and knn"\n')
    hits = names_in(sample, {"finetune", "knn"})
    assert [h.split(" in ")[0] for h in hits] == ["5: finetune", "6: knn"]
