"""The plugin manager: loads plugins one at a time and records what each registers.

Built-in and third-party plugins are both found through the entry-point group
``transfer_advisor``; the built-ins are the ones shipped by the ``transfer-advisor``
distribution. Each plugin is imported and asked to register on its own: a plugin that fails
to import or register is recorded as a ``LoadFailure`` (and whatever it registered is rolled
back) while every other plugin keeps working; ``strict=True`` raises instead.
Set ``TRANSFER_ADVISOR_NO_PLUGINS=1`` to skip third-party plugins.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from advisor.errors import InputError, PluginError
from advisor.plugin import hookspecs
from advisor.plugin.contracts import (
    EVIDENCE_KINDS,
    FAMILIES,
    METRIC_KINDS,
    ROLES,
    Metric,
    Scenario,
    Strategy,
    protocol_members,
)

BUILTIN_DISTRIBUTION = "transfer-advisor"
DISABLE_ENV = "TRANSFER_ADVISOR_NO_PLUGINS"
HOOKS = {
    "strategy": "advisor_register_strategies",
    "metric": "advisor_register_metrics",
    "scenario": "advisor_register_scenarios",
}
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")
#: What each kind of object must have: the members its Protocol declares.
CONTRACTS: dict[str, type] = {"strategy": Strategy, "metric": Metric, "scenario": Scenario}


@dataclass
class PluginInfo:
    """One loaded plugin and what it registered."""

    name: str
    version: str
    source: str  # "builtin" | "entry point" | "registered"
    distribution: str = ""
    strategies: list[dict[str, str]] = field(default_factory=list)
    metrics: list[dict[str, str]] = field(default_factory=list)
    scenarios: list[dict[str, str]] = field(default_factory=list)


@dataclass
class LoadFailure:
    """A plugin that could not be imported or failed while registering."""

    plugin: str
    distribution: str
    stage: str  # "import" | "register"
    error: str


@dataclass
class Registry:
    """Every strategy, metric and scenario, by name, with the plugin that registered it."""

    strategies: dict[str, Strategy] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    owner: dict[tuple[str, str], str] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    failures: list[LoadFailure] = field(default_factory=list)

    def table(self, kind: str) -> dict[str, Any]:
        return {"strategy": self.strategies, "metric": self.metrics, "scenario": self.scenarios}[
            kind
        ]

    def _lookup(self, kind: str, name: str) -> Any:
        items = self.table(kind)
        if name not in items:
            known = ", ".join(sorted(items)) or "none"
            raise InputError(f"unknown {kind} {name!r}; known {kind} names: {known}")
        return items[name]

    def strategy(self, name: str) -> Strategy:
        """The strategy called ``name``; an unknown name raises ``InputError`` listing the known ones."""
        return self._lookup("strategy", name)

    def metric(self, name: str) -> Metric:
        """The metric called ``name`` (``InputError`` when unknown)."""
        return self._lookup("metric", name)

    def scenario(self, name: str) -> Scenario:
        """The scenario called ``name`` (``InputError`` when unknown)."""
        return self._lookup("scenario", name)

    def default_scenario(self) -> str:
        """The scenario a bare ``--demo`` runs: the first declaring ``default = True``, else the first one.

        Raises ``InputError`` when no scenario is registered.
        """
        if not self.scenarios:
            raise InputError("no built-in scenario is registered (see `advisor plugins`)")
        marked = [name for name, s in self.scenarios.items() if getattr(s, "default", False) is True]
        return (marked or list(self.scenarios))[0]

    def select_strategies(self, names: str | Iterable[str] | None) -> list[Strategy]:
        """Strategies named in ``names`` (comma-separated or a list) plus every baseline.

        ``None`` selects all. Unknown names are refused, listing the known ones.
        """
        if names is None:
            return list(self.strategies.values())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        wanted = [self.strategy(n) for n in names]
        if not wanted:
            raise InputError("--strategies is empty; give names separated by commas")
        chosen = {s.name: s for s in wanted}
        for s in self.strategies.values():
            if s.family == "baseline":
                chosen.setdefault(s.name, s)
        return list(chosen.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "plugins": [asdict(p) for p in self.plugins],
            "failures": [asdict(f) for f in self.failures],
        }


def _validate(kind: str, obj: Any, plugin: str, registry: Registry) -> str:
    missing = [a for a in protocol_members(CONTRACTS[kind]) if not hasattr(obj, a)]
    if missing:
        raise PluginError(
            plugin, f"registered a {kind} {obj!r} without required attribute(s): {', '.join(missing)}"
        )
    name = obj.name
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(plugin, f"{kind} name {name!r} must be lower-case letters, digits, - or _")
    if kind == "strategy" and obj.role not in ROLES:
        raise PluginError(plugin, f"strategy {name!r} has role {obj.role!r}; expected one of {ROLES}")
    if kind == "strategy" and obj.family not in FAMILIES:
        raise PluginError(
            plugin, f"strategy {name!r} has family {obj.family!r}; expected one of {FAMILIES}"
        )
    if kind == "strategy" and not callable(getattr(obj, "freeze_range", callable)):
        raise PluginError(plugin, f"strategy {name!r}: freeze_range must be a method (task) -> (low, high)")
    if kind == "metric" and obj.kind not in METRIC_KINDS:
        raise PluginError(
            plugin, f"metric {name!r} has kind {obj.kind!r}; expected one of {METRIC_KINDS}"
        )
    if kind == "metric" and getattr(obj, "evidence", None) not in (None, *EVIDENCE_KINDS):
        raise PluginError(plugin, f"metric {name!r} declares evidence {obj.evidence!r}; expected one of "
                                  f"{', '.join(EVIDENCE_KINDS)} (or none)")
    if name in registry.table(kind):
        other = registry.owner[(kind, name)]
        raise PluginError(plugin, f"{kind} {name!r} is already registered by plugin {other!r}")
    return name


def _register_plugin(pm: pluggy.PluginManager, plugin_name: str, info: PluginInfo,
                     registry: Registry) -> None:
    """Ask one plugin to register everything; all or nothing."""
    added: list[tuple[str, str]] = []
    plugin_obj = pm.get_plugin(plugin_name)
    try:
        for kind, hook_name in HOOKS.items():
            hook = getattr(pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                if impl.plugin is not plugin_obj:
                    continue

                def register(obj: Any, _kind: str = kind) -> None:
                    name = _validate(_kind, obj, plugin_name, registry)
                    registry.table(_kind)[name] = obj
                    registry.owner[(_kind, name)] = plugin_name
                    added.append((_kind, name))

                impl.function(register=register)
    except Exception:
        for kind, name in added:
            registry.table(kind).pop(name, None)
            registry.owner.pop((kind, name), None)
        raise
    for kind, name in added:
        obj = registry.table(kind)[name]
        row = {"name": name}
        if kind == "strategy":
            row["family"] = obj.family
            info.strategies.append(row)
        elif kind == "metric":
            row["kind"] = obj.kind
            info.metrics.append(row)
        else:
            info.scenarios.append(row)


def _entry_points() -> list[metadata.EntryPoint]:
    eps = list(metadata.entry_points(group=hookspecs.PROJECT))
    # Built-ins first, then third-party plugins in a stable order.
    def key(ep: metadata.EntryPoint) -> tuple[bool, str]:
        return (not _is_builtin(ep), ep.name)

    seen: set[tuple[str, str]] = set()
    unique = []
    for ep in sorted(eps, key=key):
        if (ep.name, ep.value) not in seen:  # editable installs can list an entry point twice
            seen.add((ep.name, ep.value))
            unique.append(ep)
    return unique


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else ""


def _is_builtin(ep: metadata.EntryPoint) -> bool:
    return _dist_name(ep).lower().replace("_", "-") == BUILTIN_DISTRIBUTION


def build_registry(
    *,
    strict: bool = False,
    load_entry_points: bool = True,
    third_party: bool | None = None,
    plugins: Iterable[tuple[str, Any]] = (),
) -> Registry:
    """Load plugins and return the registry.

    ``load_entry_points=False`` skips the entry-point group entirely (tests register fakes
    through ``plugins``: ``(name, module_or_object)`` pairs). ``third_party=None`` reads
    ``TRANSFER_ADVISOR_NO_PLUGINS``. With ``strict=True`` the first failure raises.
    """
    if third_party is None:
        third_party = os.environ.get(DISABLE_ENV, "").strip().lower() not in {"1", "true", "yes"}
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    candidates: list[tuple[str, PluginInfo, Any]] = []  # (name, info, loader)

    if load_entry_points:
        for ep in _entry_points():
            builtin = _is_builtin(ep)
            if not builtin and not third_party:
                continue
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                version=dist.version if dist is not None else "",
                source="builtin" if builtin else "entry point",
                distribution=_dist_name(ep),
            )
            candidates.append((ep.name, info, ep.load))
    for name, obj in plugins:
        info = PluginInfo(name=name, version=getattr(obj, "__version__", ""), source="registered")
        candidates.append((name, info, lambda obj=obj: obj))

    for name, info, load in candidates:
        stage = "import"
        try:
            obj = load()
            stage = "register"
            if pm.has_plugin(name):
                raise PluginError(name, "a plugin with this name is already loaded")
            pm.register(obj, name=name)
            _register_plugin(pm, name, info, registry)
        except Exception as exc:  # a broken plugin must not take the others down
            if pm.has_plugin(name) and stage == "register":
                pm.unregister(name=name)
            message = exc.reason if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
            failure = LoadFailure(name, info.distribution, stage, message)
            if strict:
                raise PluginError(name, f"failed to {stage}: {message}") from exc
            registry.failures.append(failure)
            continue
        registry.plugins.append(info)
    return registry


_default: dict[str, Registry] = {}


def get_registry(strict: bool = False) -> Registry:
    """The process-wide registry with entry-point plugins (built once per strictness)."""
    key = "strict" if strict else "lenient"
    if key not in _default:
        _default[key] = build_registry(strict=strict)
    return _default[key]
