"""Transfer Advisor: which transfer strategy to use, with which settings, and proof.

The public Python API, imported lazily so that ``import advisor`` (and ``advisor --help``)
stays instant; torch loads only when training or features are needed::

    import advisor

    doc = advisor.recommend(advisor.InputRequest(demo="digits-shift"), advisor.RecommendOptions(trials=4))
    model = advisor.load_export("model.pt")
"""

from __future__ import annotations

import os as _os
from typing import Any

# OpenMP threads that spin while waiting make a run beside busy processes many times slower;
# waiting passively costs little alone. Set before torch loads (it reads this once), unless the
# user chose a policy or asked for the old behaviour (see advisor.device).
if "OMP_WAIT_POLICY" not in _os.environ and _os.environ.get("TRANSFER_ADVISOR_LEGACY_THREADS", "").strip() in ("", "0"):
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from advisor.plugin.hookspecs import hookimpl

__version__ = "0.1.0"

#: Public name -> "module:attribute", resolved on first use.
_API = {
    "recommend": "advisor.pipeline:recommend",
    "RecommendOptions": "advisor.pipeline:RecommendOptions",
    "InputRequest": "advisor.models.inputs:InputRequest",
    "resolve_inputs": "advisor.models.inputs:resolve_inputs",
    "load_export": "advisor.report.export:load_export",
    "predict_path": "advisor.report.predict:predict_path",
    "get_registry": "advisor.plugin.registry:get_registry",
}
__all__ = ["hookimpl", "__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'advisor' has no attribute {name!r}")
    import importlib

    module, attr = _API[name].split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
