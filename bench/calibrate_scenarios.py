"""Calibrate the built-in digits scenarios: does each one show the ordering it promises?

For every scenario and seed it pretrains the advisor's ``cnn`` on the source exactly as
``advisor recommend`` does (``advisor.models.sources.pretrain_source``), then trains, with small
self-contained loops (Adam, fixed steps, one CPU thread):

- ``target_only``: random init, target train split only;
- ``finetune``: pretrained on the source, fresh head, all blocks fine-tuned on target train;
- ``pooled``: the pretrained model with a fresh head trained on source + target train, the
  source labels as given (cross-entropy on target + lam x cross-entropy on source);
  ``lam`` = 1 and 0.1, the middle and the gentle end of the strategies' source-weight range;
- ``linear_probe``: pretrained blocks frozen, fresh head trained on target train;
- ``source_zero_shot``: the source model's own head on the target (what it knows already).

It prints test accuracy per seed and method, the negative-transfer gaps on the validation
split (``NTG = acc(target_only) - acc(method)``, paired bootstrap 95% interval from
``advisor.search.scoring.paired_bootstrap_diff``), and the verdict-style test gain of ``finetune``
over ``target_only`` when both are retrained on train+val (as ``advisor recommend`` does).

Run from the repository root::

    python -m bench.calibrate_scenarios                  # all scenarios, seeds 0 1 2
    python -m bench.calibrate_scenarios --scenarios digits-shift --seeds 0
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from advisor.data.domain import Domain
from advisor.models.architectures import build
from advisor.models.backbone import Backbone, ModelSpec
from advisor.models.sources import DEFAULT_PRETRAIN_EPOCHS, pretrain_source
from advisor.plugin.registry import build_registry
from advisor.search.scoring import paired_bootstrap_diff

SPEC = ModelSpec("cnn", "images", (1, 16, 16))
TARGET_STEPS = 150
LR = 1e-3
PROBE_LR = 1e-2  # a linear head alone converges faster with a larger step
BATCH = 64


def _tensors(d: Domain) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(d.X)), torch.from_numpy(np.ascontiguousarray(d.y))


def predict(model: nn.Module, d: Domain) -> np.ndarray:
    """Predicted class ids on ``d`` (eval mode, no gradients)."""
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(d.X))).argmax(1).numpy()


def train_target(model: Backbone, target: Domain, seed: int, steps: int = TARGET_STEPS,
                 source: Domain | None = None, lam: float = 0.0, lr: float = LR) -> Backbone:
    """Train ``model``'s trainable parameters on ``target`` (+ ``lam`` x the source term)."""
    x, y = _tensors(target)
    xs, ys = _tensors(source) if source is not None else (None, None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randperm(len(x), generator=gen)[:BATCH]
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        if xs is not None and lam > 0:
            sidx = torch.randint(len(xs), (BATCH,), generator=gen)
            loss = loss + lam * nn.functional.cross_entropy(model(xs[sidx]), ys[sidx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@dataclass
class SeedResult:
    """One scenario and seed: test accuracy and validation predictions per method."""

    test_acc: dict[str, float] = field(default_factory=dict)
    val_pred: dict[str, np.ndarray] = field(default_factory=dict)
    # method -> (test acc of method - test acc of target_only, lo, hi), both retrained on train+val
    retrain_gain: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def run_seed(scenario, seed: int, pretrain_epochs: int | None = None,
             cache_dir: str | None = None) -> tuple[SeedResult, np.ndarray]:
    """Train every method on one scenario and seed; return the results and the val labels."""
    torch.manual_seed(seed)
    data = scenario.build(seed)
    t = data.target
    res = SeedResult()
    k = t.train.num_classes

    def timed(name: str, make) -> Backbone:
        start = time.perf_counter()
        model = make()
        res.seconds[name] = time.perf_counter() - start
        return model

    source_model = timed("pretrain", lambda: pretrain_source(
        data.source, SPEC, seed=seed, epochs=pretrain_epochs, cache_dir=cache_dir)[0])
    res.test_acc["source_zero_shot"] = float(np.mean(predict(source_model, t.test) == t.test.y))

    def target_only(train: Domain) -> Backbone:
        return train_target(build(SPEC, k, seed=seed), train, seed)

    def finetune(train: Domain) -> Backbone:
        return train_target(source_model.with_new_head(k, seed=seed), train, seed)

    def probe(train: Domain) -> Backbone:
        model = source_model.with_new_head(k, seed=seed)
        model.freeze(model.depth)
        return train_target(model, train, seed, lr=PROBE_LR)

    def pooled(lam: float) -> Backbone:
        return train_target(source_model.with_new_head(k, seed=seed), t.train, seed, source=data.source,
                            lam=lam)

    models = {
        "target_only": timed("target_only", lambda: target_only(t.train)),
        "finetune": timed("finetune", lambda: finetune(t.train)),
        "linear_probe": timed("linear_probe", lambda: probe(t.train)),
        "pooled_lam1": timed("pooled_lam1", lambda: pooled(1.0)),
        "pooled_lam0.1": timed("pooled_lam0.1", lambda: pooled(0.1)),
    }
    for name, model in models.items():
        res.test_acc[name] = float(np.mean(predict(model, t.test) == t.test.y))
        res.val_pred[name] = predict(model, t.val)
    trainval = t.train.concat(t.val)
    pred_a = predict(target_only(trainval), t.test)
    res.test_acc["target_only@train+val"] = float(np.mean(pred_a == t.test.y))
    for name, retrain in (("finetune", finetune), ("linear_probe", probe)):
        pred_b = predict(retrain(trainval), t.test)
        res.retrain_gain[name] = paired_bootstrap_diff("accuracy", t.test.y, pred_b, pred_a, seed=seed)
    return res, t.val.y


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="*", default=["digits-shift", "digits-conflict",
                                                          "digits-distant"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--pretrain-epochs", type=int, default=None,
                        help="source pretraining epochs (default: the advisor's own default)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    import advisor_plugins.scenarios as builtin

    registry = build_registry(load_entry_points=False, plugins=[("builtin_scenarios", builtin)])
    methods = ["target_only", "finetune", "linear_probe", "pooled_lam1", "pooled_lam0.1",
               "source_zero_shot"]
    cache_dir = tempfile.mkdtemp(prefix="calibrate-scenarios-")  # fresh: always pretrain here
    epochs = args.pretrain_epochs or DEFAULT_PRETRAIN_EPOCHS["images"]
    print(f"source model: advisor.models.sources.pretrain_source, {epochs} epochs")
    for name in args.scenarios:
        scenario = registry.scenario(name)
        sizes = scenario.sizes
        print(f"\n## {name}  (source {sizes.source}/class, target train {sizes.train}/class, "
              f"val {sizes.val}/class, test the rest)\n")
        print("| seed | " + " | ".join(methods) + " |")
        print("|---" * (len(methods) + 1) + "|")
        gaps: list[str] = []
        for seed in args.seeds:
            res, y_val = run_seed(scenario, seed, args.pretrain_epochs, cache_dir)
            print(f"| {seed} | " + " | ".join(f"{100 * res.test_acc[m]:.1f}" for m in methods) + " |")
            for m in methods[1:-1]:
                d, lo, hi = paired_bootstrap_diff("accuracy", y_val, res.val_pred["target_only"],
                                                  res.val_pred[m], seed=seed)
                gaps.append(f"seed {seed} NTG(val) {m:14s} {100 * d:+6.1f} "
                            f"[{100 * lo:+6.1f}, {100 * hi:+6.1f}]")
            for m, (g, lo, hi) in res.retrain_gain.items():
                gaps.append(f"seed {seed} test gain {m} - target_only, both retrained on train+val "
                            f"(target_only {100 * res.test_acc['target_only@train+val']:.1f}): "
                            f"{100 * g:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]")
            secs = ", ".join(f"{k} {v:.1f}s" for k, v in res.seconds.items())
            gaps.append(f"seed {seed} time: {secs}")
        print("\nTest accuracy in %. NTG = acc(target_only) - acc(method) on val, 95% paired bootstrap:")
        print("\n".join(gaps), flush=True)
    shutil.rmtree(cache_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
