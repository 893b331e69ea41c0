"""Built-in metrics, registered through the transfer_advisor entry-point group like any plugin.

Importing this package must stay cheap (the registry imports it when the CLI starts): the metric
modules import numpy only; torch and scikit-learn load inside ``compute``.
"""

from __future__ import annotations

from advisor.plugin import MetricRegister, hookimpl


@hookimpl
def advisor_register_metrics(register: MetricRegister) -> None:
    """Register the ten built-in similarity and transferability metrics."""
    from .similarity import MMD, PAD, Coral, LabelShift
    from .transferability import KNN, LEEP, NCE, HScore, LogME, SourceAccuracy

    for metric in (MMD(), PAD(), Coral(), LabelShift(), SourceAccuracy(), LogME(), LEEP(), NCE(),
                   HScore(), KNN()):
        register(metric)
