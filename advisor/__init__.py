"""Transfer Advisor: which transfer strategy to use, with which settings, and proof.

The public API is imported lazily so that ``import advisor`` (and ``advisor --help``)
stays instant: torch loads only when training or features are needed.
"""

from __future__ import annotations

from advisor.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
