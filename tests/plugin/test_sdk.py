"""The plugin SDK: one cheap import that is all plugins use, typed contracts checked from the Protocols."""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path

import pytest

import advisor
import advisor.plugin as sdk
from advisor.plugin.contracts import protocol_members
from advisor.plugin.registry import build_registry

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIRS = [ROOT / "plugins", ROOT / "examples"]


def test_importing_the_sdk_does_not_import_torch_and_every_name_resolves() -> None:
    code = ("import sys, advisor.plugin as p; torch_now = 'torch' in sys.modules; "
            "missing = [n for n in p.__all__ if getattr(p, n, None) is None]; "
            "print(torch_now, missing, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "[]", "True"]  # torch only once an engine name is used


def test_old_plugins_keep_their_hookimpl() -> None:
    assert advisor.hookimpl is sdk.hookimpl


def _core_imports(path: Path) -> set[str]:
    """Every ``advisor`` / ``advisor.*`` module a source file imports (anywhere in it)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name == "advisor" or a.name.startswith("advisor.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "advisor" or node.module.startswith("advisor."):
                found.add(node.module)
    return found


def test_plugins_and_the_example_import_only_the_sdk_from_the_core() -> None:
    files = [p for d in PLUGIN_DIRS for p in d.rglob("*.py")]
    assert len(files) > 10  # the built-ins and the example were found
    offenders = {str(p.relative_to(ROOT)): sorted(mods - {"advisor.plugin"})
                 for p in files if (mods := _core_imports(p)) - {"advisor.plugin"}}
    assert offenders == {}


def test_the_scan_sees_an_offending_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from advisor.search.training import train\n    import advisor.metrics.kernels\n")
    assert _core_imports(bad) == {"advisor.search.training", "advisor.metrics.kernels"}


def test_required_members_come_from_the_protocols() -> None:
    assert set(protocol_members(sdk.Strategy)) == {"name", "family", "role", "description", "needs",
                                                   "default_params", "search_space", "fit", "risks"}
    assert set(protocol_members(sdk.Metric)) == {"name", "kind", "description", "needs", "compute"}
    assert set(protocol_members(sdk.Scenario)) == {"name", "description", "expected", "build"}


class _Metric:
    name, kind, description, needs = "m", "similarity", "a metric", sdk.Needs()

    def __init__(self, evidence: str | None) -> None:
        self.evidence = evidence

    def compute(self, inputs: sdk.MetricInputs) -> sdk.MetricResult:
        return sdk.MetricResult(1.0, False, "one")


def _plugin(**hooks: object) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{name: sdk.hookimpl(fn) for name, fn in hooks.items()})


def test_evidence_kinds_are_checked_at_registration() -> None:
    good = _plugin(advisor_register_metrics=lambda register: register(_Metric("domain_distance")))
    assert not build_registry(load_entry_points=False, plugins=[("good", good)]).failures
    bad = _plugin(advisor_register_metrics=lambda register: register(_Metric("vibes")))
    failures = build_registry(load_entry_points=False, plugins=[("bad", bad)]).failures
    assert failures and "evidence 'vibes'" in failures[0].error


class _Scenario:
    description, expected = "a scenario", ""

    def __init__(self, name: str, default: bool = False) -> None:
        self.name, self.default = name, default

    def build(self, seed: int = 0) -> sdk.ScenarioData:
        raise RuntimeError("not used")


def test_the_default_scenario_is_declared_by_its_plugin() -> None:
    plain = _plugin(advisor_register_scenarios=lambda register: (register(_Scenario("a")), register(_Scenario("b"))))
    marked = _plugin(advisor_register_scenarios=lambda register: register(_Scenario("c", default=True)))
    assert build_registry(load_entry_points=False, plugins=[("p", plain)]).default_scenario() == "a"
    both = build_registry(load_entry_points=False, plugins=[("p", plain), ("m", marked)])
    assert both.default_scenario() == "c"
    with pytest.raises(sdk.InputError, match="no built-in scenario"):
        build_registry(load_entry_points=False).default_scenario()


def test_freeze_range_defaults_to_every_depth_and_is_clamped_to_the_backbone() -> None:
    task = types.SimpleNamespace(depth=3)
    assert sdk.freeze_range(object(), task) == (0, 3)
    wide = types.SimpleNamespace(freeze_range=lambda t: (-2, 9))
    assert sdk.freeze_range(wide, task) == (0, 3)
    with pytest.raises(ValueError, match="empty"):
        sdk.freeze_range(types.SimpleNamespace(freeze_range=lambda t: (3, 1)), task)
