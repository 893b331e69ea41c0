"""Built-in strategies, registered through the transfer_advisor entry-point group like any plugin.

Each strategy lives in its own submodule, imported inside the hook; the submodules import torch
and the training engine only inside their methods, so building the registry never imports torch.
"""

from __future__ import annotations

from advisor.plugin import StrategyRegister, hookimpl


@hookimpl
def advisor_register_strategies(register: StrategyRegister) -> None:
    """Register the built-in strategies: four transfer families, pooled logistic regression, four baselines."""
    from advisor_plugins.strategies.alignment import FeatureAlignment
    from advisor_plugins.strategies.baselines import Finetune, LinearProbe, TargetOnly
    from advisor_plugins.strategies.importance import ImportanceWeighting
    from advisor_plugins.strategies.l2sp import L2SP
    from advisor_plugins.strategies.linear import PooledLinear, TargetLinear
    from advisor_plugins.strategies.progressive import ProgressiveUnfreezing

    for strategy in (ImportanceWeighting(), FeatureAlignment(), L2SP(), ProgressiveUnfreezing(),
                     PooledLinear(), TargetOnly(), TargetLinear(), LinearProbe(), Finetune()):
        register(strategy)
