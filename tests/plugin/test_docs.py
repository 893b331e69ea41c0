"""docs/writing-plugins.md: its code runs as written and imports only the SDK from the core."""

from __future__ import annotations

import ast
import re
import sys
import types
from pathlib import Path

import numpy as np

from advisor.data.domain import Domain
from advisor.models.architectures import build
from advisor.models.backbone import ModelSpec
from advisor.plugin.contracts import TransferTask
from advisor.plugin.registry import build_registry

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "writing-plugins.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_doc_code_imports_only_the_sdk() -> None:
    modules = set()
    for block in _blocks():
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "advisor":
                modules.add(node.module)
            elif isinstance(node, ast.Import):
                modules |= {a.name for a in node.names if a.name.split(".")[0] == "advisor"}
    assert modules == {"advisor.plugin"}


def test_doc_plugin_registers_and_trains_through_the_engine() -> None:
    """The hooks, metric and strategy blocks together are a working plugin module."""
    plugin = types.ModuleType("doc_plugin")
    sys.modules["doc_plugin"] = plugin  # dataclass/annotation machinery may look the module up
    try:
        for block in _blocks()[:3]:
            exec(compile(block, str(DOC), "exec"), plugin.__dict__)
    finally:
        sys.modules.pop("doc_plugin", None)
    reg = build_registry(load_entry_points=False, plugins=[("doc", plugin)])
    assert not reg.failures and set(reg.strategies) == {"head_only"} and set(reg.metrics) == {"centroid_gap"}

    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    X = (rng.normal(size=(40, 4)) + 2.5 * y[:, None]).astype(np.float32)
    dom = Domain("t", X, y, ("a", "b"), "features")
    backbone = build(ModelSpec("mlp", "features", (4,), {"hidden": [8]}), 2, seed=0)
    task = TransferTask(None, dom.subset(np.arange(30)), dom.subset(np.arange(30, 40)), backbone, max_epochs=3)
    strategy = reg.strategy("head_only")
    result = strategy.fit(task, strategy.default_params(task), None)
    assert result.info["freeze"] == task.depth and result.val_score is not None
