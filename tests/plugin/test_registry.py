"""The plugin registry: validation, isolation of broken plugins, strictness, selection."""

from __future__ import annotations

import types

import pytest

from advisor import hookimpl
from advisor.errors import InputError, PluginError
from advisor.plugin.contracts import Needs
from advisor.plugin.registry import build_registry


class FakeStrategy:
    def __init__(self, name: str, family: str = "model", role: str = "transfer") -> None:
        self.name = name
        self.family = family
        self.role = role
        self.description = "a fake"
        self.needs = Needs()

    def default_params(self, task):
        return {}

    def search_space(self, trial, task):
        return {}

    def fit(self, task, params, report):
        raise RuntimeError("not used")

    def risks(self, signals, task):
        return []


class FakeMetric:
    name = "fake_metric"
    kind = "similarity"
    description = "a fake"
    needs = Needs()

    def compute(self, inputs):
        raise RuntimeError("not used")


def plugin(**hooks) -> types.SimpleNamespace:
    """A plugin object with the given hook implementations."""
    ns = types.SimpleNamespace()
    for name, fn in hooks.items():
        setattr(ns, name, hookimpl(fn))
    return ns


@pytest.fixture
def good():
    return plugin(
        advisor_register_strategies=lambda register: (register(FakeStrategy("alpha")),
                                                      register(FakeStrategy("base", "baseline"))),
        advisor_register_metrics=lambda register: register(FakeMetric()),
    )


def test_registers_and_records_owner(good):
    reg = build_registry(load_entry_points=False, plugins=[("good", good)])
    assert set(reg.strategies) == {"alpha", "base"}
    assert reg.owner[("strategy", "alpha")] == "good"
    info = reg.plugins[0]
    assert info.name == "good" and info.source == "registered"
    assert {"name": "alpha", "family": "model"} in info.strategies
    assert info.metrics == [{"name": "fake_metric", "kind": "similarity"}]


def test_duplicate_name_is_reported_naming_both_plugins(good):
    dup = plugin(advisor_register_strategies=lambda register: register(FakeStrategy("alpha")))
    reg = build_registry(load_entry_points=False, plugins=[("good", good), ("dup", dup)])
    assert [f.plugin for f in reg.failures] == ["dup"]
    assert "already registered by plugin 'good'" in reg.failures[0].error
    assert reg.owner[("strategy", "alpha")] == "good"


def test_missing_attribute_names_the_plugin_and_rolls_back():
    obj = types.SimpleNamespace(name="broken", family="model", role="transfer", description="no fit", needs=Needs(),
                                default_params=dict, search_space=dict, risks=list)
    bad = plugin(advisor_register_strategies=lambda register: (register(FakeStrategy("ok_one")), register(obj)))
    reg = build_registry(load_entry_points=False, plugins=[("bad", bad)])
    assert reg.failures and reg.failures[0].plugin == "bad"
    assert "fit" in reg.failures[0].error
    assert "ok_one" not in reg.strategies  # all or nothing per plugin
    with pytest.raises(PluginError, match="plugin 'bad'"):
        build_registry(load_entry_points=False, plugins=[("bad", bad)], strict=True)


def test_bad_family_and_kind_are_refused():
    bad = plugin(advisor_register_strategies=lambda register: register(FakeStrategy("x", "magic")))
    reg = build_registry(load_entry_points=False, plugins=[("bad", bad)])
    assert "family 'magic'" in reg.failures[0].error


def test_a_raising_hook_does_not_stop_others(good):
    def boom(register):
        raise ValueError("kaput")

    bad = plugin(advisor_register_metrics=boom)
    reg = build_registry(load_entry_points=False, plugins=[("bad", bad), ("good", good)])
    assert "alpha" in reg.strategies
    assert reg.failures[0].plugin == "bad" and "ValueError: kaput" in reg.failures[0].error


def test_select_strategies_adds_baselines_and_refuses_unknown(good):
    reg = build_registry(load_entry_points=False, plugins=[("good", good)])
    assert [s.name for s in reg.select_strategies("alpha")] == ["alpha", "base"]
    with pytest.raises(InputError, match="unknown strategy 'nope'; known strategy names: alpha, base"):
        reg.select_strategies("alpha,nope")


def test_builtins_come_from_the_entry_point_group():
    reg = build_registry(third_party=False)
    assert {p.source for p in reg.plugins} == {"builtin"}
    assert {"builtin_metrics", "builtin_strategies", "builtin_scenarios"} <= {p.name for p in reg.plugins}
