"""The hooks a Transfer Advisor plugin can implement.

Each hook is a *collection* hook: the host calls it once per plugin with a ``register``
callback it owns. The callback validates what it receives (required attributes, unique
names) and records which plugin registered what, so an error names the plugin.

A plugin module looks like::

    from advisor.plugin import StrategyRegister, hookimpl

    @hookimpl
    def advisor_register_strategies(register: StrategyRegister) -> None:
        register(MyStrategy())
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from advisor.plugin.contracts import Metric, Scenario, Strategy

PROJECT = "transfer_advisor"  # also the entry-point group

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

StrategyRegister = Callable[[Strategy], None]
MetricRegister = Callable[[Metric], None]
ScenarioRegister = Callable[[Scenario], None]
#: Any of the three (kept for plugins written against the untyped hooks).
Register = Callable[[Strategy | Metric | Scenario], None]


@hookspec
def advisor_register_strategies(register: StrategyRegister) -> None:
    """Register transfer strategies (objects meeting ``advisor.plugin.Strategy``).

    Called once per plugin when the registry is built, before any command runs. Call
    ``register(strategy)`` for each; a duplicate name or a missing attribute raises
    ``PluginError`` naming this plugin. Returns nothing.
    """


@hookspec
def advisor_register_metrics(register: MetricRegister) -> None:
    """Register similarity or transferability metrics (``advisor.plugin.Metric``).

    Called once per plugin when the registry is built. Call ``register(metric)`` for each.
    Returns nothing.
    """


@hookspec
def advisor_register_scenarios(register: ScenarioRegister) -> None:
    """Register named built-in data sets (``advisor.plugin.Scenario``), such as demos.

    Called once per plugin when the registry is built. Call ``register(scenario)`` for
    each. Returns nothing.
    """
