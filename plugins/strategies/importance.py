"""Instance re-weighting: labelled source rows weighted by the target/source density ratio.

A domain classifier (logistic regression on standardised frozen penultimate features; source
= 0, target = 1, unlabelled target rows included) estimates p(target|x). By Bayes,

    w(x) = p_T(x) / p_S(x) = (n_s / n_t) * p(target|x) / p(source|x)

(the ratio of posteriors times the inverse ratio of sample counts; inverting it is a common
bug). Clipping rule: the posterior is clipped to [0.01, 0.99] (so no weight is 0 or infinite),
the weights are normalised to mean 1 over the source rows, then clipped at ``max_weight`` (default
10: no row counts for more than ten average rows) and renormalised to mean 1, repeated until
the largest weight is ``max_weight``. The
effective sample size ESS = (sum w)^2 / sum w^2 says how many source rows really count.

Loss: ``target_share * mean CE(target) + (1 - target_share) * mean w*CE(source)`` (the engine's
source term): the target's share alpha in [0.05, 0.95] is searched and means the same on the
search split and on train+val, whatever the number of source rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from advisor_plugins.strategies._common import (
    DEFAULT_TARGET_SHARE,
    TARGET_SHARE_RANGE,
    base_params,
    source_for_target,
    source_info,
    suggest_base,
)

import advisor.plugin as sdk
from advisor.plugin import FitResult, InputError, MetricResult, Needs, ReportFn, Risk, TransferTask, signal_value

if TYPE_CHECKING:
    import optuna

POSTERIOR_CLIP = 0.01
DEFAULT_MAX_WEIGHT = 10.0


@dataclass
class ImportanceWeights:
    """Per-source-row weights (mean 1) and how concentrated they are."""

    weights: np.ndarray
    ess: float  # effective sample size, in rows
    ess_fraction: float  # ess / number of source rows
    clipped: int  # rows whose weight hit max_weight
    domain_accuracy: float  # training accuracy of the domain classifier


def importance_weights(source_features: np.ndarray, target_features: np.ndarray,
                       max_weight: float = DEFAULT_MAX_WEIGHT, C: float = 1.0,
                       seed: int = 0) -> ImportanceWeights:
    """Density-ratio weights for the source rows (see the module docstring for the rule)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xs = np.asarray(source_features, dtype=np.float64).reshape(len(source_features), -1)
    xt = np.asarray(target_features, dtype=np.float64).reshape(len(target_features), -1)
    n_s, n_t = len(xs), len(xt)
    X = np.concatenate([xs, xt])
    d = np.concatenate([np.zeros(n_s), np.ones(n_t)])
    scaler = StandardScaler().fit(X)
    clf = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(scaler.transform(X), d)
    p_t = np.clip(clf.predict_proba(scaler.transform(xs))[:, 1], POSTERIOR_CLIP, 1 - POSTERIOR_CLIP)
    w = (n_s / n_t) * p_t / (1.0 - p_t)
    w = w / w.mean()
    clipped = int(np.sum(w > max_weight))
    for _ in range(100):  # clip and renormalise until the largest weight is max_weight
        w = np.minimum(w, max_weight)
        w = w / w.mean()
        if w.max() <= max_weight * 1.001:
            break
    ess = float(w.sum() ** 2 / np.sum(w**2))
    acc = float(clf.score(scaler.transform(X), d))
    return ImportanceWeights(w.astype(np.float32), ess, ess / n_s, clipped, acc)


class ImportanceWeighting:
    """Train on the labelled target plus importance-weighted labelled source rows."""

    name = "importance_weighting"
    family = "instance"
    role = "transfer"
    description = ("Re-weight labelled source samples by a domain classifier's density ratio and "
                   "train on them with the target.")
    needs = Needs(source_data=True)

    def freeze_range(self, task: TransferTask) -> tuple[int, int]:
        return 0, task.depth

    def default_params(self, task: TransferTask) -> dict[str, Any]:
        return {**base_params(task, lr=1e-3, freeze=max(0, task.depth - 2)), "target_share": DEFAULT_TARGET_SHARE,
                "max_weight": DEFAULT_MAX_WEIGHT}

    def search_space(self, trial: optuna.Trial, task: TransferTask) -> dict[str, Any]:
        params = suggest_base(trial, task, lr=(1e-4, 1e-2), freeze=self.freeze_range(task))
        params["target_share"] = trial.suggest_float("target_share", *TARGET_SHARE_RANGE)
        params["max_weight"] = trial.suggest_float("max_weight", 3.0, 30.0, log=True)
        return params

    def fit(self, task: TransferTask, params: dict[str, Any], report: ReportFn | None) -> FitResult:
        reason = task.unmet(self.needs)
        if reason is not None:
            raise InputError(f"{self.name} {reason}")
        source, source_head = source_for_target(task.source, task.classes)
        cache = task.cache if task.cache is not None else sdk.FeatureCache(device=task.device)
        fs = cache.features(task.backbone, source)
        targets = [cache.features(task.backbone, task.target_train)]
        if task.target_unlabeled is not None:
            targets.append(cache.features(task.backbone, task.target_unlabeled))
        iw = importance_weights(fs, np.concatenate(targets),
                                float(params.get("max_weight", DEFAULT_MAX_WEIGHT)), seed=task.seed)
        info = {"ess": iw.ess, "ess_fraction": iw.ess_fraction, "clipped_weights": iw.clipped,
                "domain_classifier_accuracy": iw.domain_accuracy, **source_info(source, source_head)}
        model = task.backbone.with_new_head(task.num_classes, seed=task.seed)
        cfg = sdk.config_from_params(task, params, self, source=source, source_weights=iw.weights,
                                     source_head_classes=source_head, info=info)
        return sdk.train(task, model, cfg, report)

    def risks(self, signals: dict[str, MetricResult], task: TransferTask) -> list[Risk]:
        out = []
        pad = signal_value(signals, "pad")
        if pad is not None and pad > 1.5:
            # Medium only: PAD saturates on deep features even when re-weighting helps; the effective
            # sample size measured by the fit is the direct evidence (reported after the search).
            out.append(Risk("medium",
                            f"a domain classifier separates source and target almost perfectly (proxy "
                            f"A-distance {pad:.2f}): the density-ratio weights may concentrate on a few "
                            "source rows (small effective sample size)"))
        shift = signal_value(signals, "label_shift")
        if shift is not None and shift > 0.3:
            out.append(Risk("medium", f"the class proportions differ (label shift {shift:.2f}): covariate-"
                                      "shift weights do not correct a label shift"))
        return out
