"""Built-in demo scenarios built from scikit-learn's bundled digits (no download).

- ``digits-shift``: related, shifted target with few labels: transfer should clearly help.
- ``digits-conflict``: source labels conflict with the target's: training on source data hurts.
- ``digits-distant``: a distant source: transfer gives little or nothing.

Registered through the same ``@hookimpl`` API as third-party plugins. Nothing here imports
torch or sklearn at import time: the registry imports this module whenever the CLI starts.
"""

from __future__ import annotations

from advisor.plugin import ScenarioRegister, hookimpl

from . import conflict, distant, shift


@hookimpl
def advisor_register_scenarios(register: ScenarioRegister) -> None:
    """Register ``digits-shift``, ``digits-conflict`` and ``digits-distant``."""
    for module in (shift, conflict, distant):
        register(module.scenario())
