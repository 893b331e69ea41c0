"""Domain-similarity metrics: ``mmd``, ``pad``, ``coral`` and ``label_shift``.

They compare the source rows with every target row a metric may see (labelled train+val plus
unlabelled target; never the test split). Lower values mean more similar domains.
"""

from __future__ import annotations

import numpy as np

import advisor.plugin as sdk
from advisor.plugin import MetricInputs, MetricResult, Needs

from .base import NO_SOURCE, BaseMetric, priors_by_name, subsample, target_rows

PAD_MAX_PER_DOMAIN = 2000
PAD_FOLDS = 5


class MMD(BaseMetric):
    """Unbiased multi-kernel Gaussian MMD² with a permutation-test p-value."""

    name = "mmd"
    kind = "similarity"
    evidence = "distribution_shift"
    description = ("Maximum mean discrepancy between source and target features (multi-kernel "
                   "Gaussian, median-heuristic bandwidths x powers of two), with a permutation test.")
    needs = Needs(source_data=True)

    def __init__(self, n_permutations: int = 200) -> None:
        self.n_permutations = n_permutations

    def compute(self, inputs: MetricInputs) -> MetricResult:
        """MMD² and its p-value (the full permutation test, or the block test on big inputs)."""
        t = sdk.mmd_test(inputs.source_features, target_rows(inputs), n_permutations=self.n_permutations,
                     seed=inputs.seed, device=inputs.device)
        if t.p_value < 0.05:
            text = (f"Source and target features differ significantly (MMD² = {t.mmd2:.3g}, "
                    f"p = {t.p_value:.3g}): expect a domain shift.")
        else:
            text = (f"No significant difference between source and target features "
                    f"(MMD² = {t.mmd2:.3g}, p = {t.p_value:.3g}).")
        details = {"estimator": t.estimator, "bandwidth": t.bandwidth, "scales": list(sdk.DEFAULT_SCALES),
                   "n_permutations": t.n_permutations, "n_source": t.n_x, "n_target": t.n_y}
        if t.estimator == "block":
            details["block_size"] = t.block_size
            text += " (Large inputs: block estimator with a normal-approximation p-value.)"
        return MetricResult(t.mmd2, False, text, p_value=t.p_value, details=details)


class PAD(BaseMetric):
    """Proxy A-distance from the cross-validated balanced error of a linear domain classifier."""

    name = "pad"
    kind = "similarity"
    evidence = "domain_distance"
    description = ("Proxy A-distance 2(1 - 2e), e the cross-validated balanced error of a linear "
                   "classifier telling source from target: 0 = indistinguishable, 2 = separable.")
    needs = Needs(source_data=True)

    def compute(self, inputs: MetricInputs) -> MetricResult:
        """PAD in [0, 2]; the balanced error makes unequal domain sizes harmless."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import balanced_accuracy_score
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        rng = np.random.default_rng(inputs.seed)
        xs = subsample(np.asarray(inputs.source_features, dtype=np.float64), PAD_MAX_PER_DOMAIN, rng)
        xt = subsample(np.asarray(target_rows(inputs), dtype=np.float64), PAD_MAX_PER_DOMAIN, rng)
        x = np.concatenate([xs, xt])
        d = np.r_[np.zeros(len(xs), dtype=int), np.ones(len(xt), dtype=int)]
        folds = max(2, min(PAD_FOLDS, len(xs), len(xt)))
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        cv = StratifiedKFold(folds, shuffle=True, random_state=inputs.seed)
        pred = cross_val_predict(clf, x, d, cv=cv)
        error = 1.0 - balanced_accuracy_score(d, pred)
        value = 2.0 * (1.0 - 2.0 * min(error, 0.5))
        if value < 0.5:
            text = f"A linear classifier can hardly tell the domains apart (PAD = {value:.2f} of 2)."
        elif value < 1.5:
            text = f"The domains are partly distinguishable (PAD = {value:.2f} of 2): a moderate shift."
        else:
            text = f"The domains are almost perfectly separable (PAD = {value:.2f} of 2): a strong shift."
        return MetricResult(value, False, text, details={
            "balanced_error": error, "folds": folds, "n_source": len(xs), "n_target": len(xt)})


class Coral(BaseMetric):
    """CORAL distance between the feature covariances."""

    name = "coral"
    kind = "similarity"
    evidence = "distribution_shift"
    description = "CORAL distance ||C_s - C_t||²_F / (4 d²) between source and target feature covariances."
    needs = Needs(source_data=True)

    def applicable(self, inputs: MetricInputs) -> str | None:
        reason = super().applicable(inputs)
        if reason is None and (len(inputs.source_features) < 2 or len(target_rows(inputs)) < 2):
            return "needs at least two rows per domain"
        return reason

    def compute(self, inputs: MetricInputs) -> MetricResult:
        """The distance, and in details its size relative to the covariances' own norms."""
        cs = np.cov(np.asarray(inputs.source_features, dtype=np.float64), rowvar=False)
        ct = np.cov(np.asarray(target_rows(inputs), dtype=np.float64), rowvar=False)
        cs, ct = np.atleast_2d(cs), np.atleast_2d(ct)
        dim = cs.shape[0]
        diff = np.linalg.norm(cs - ct)
        value = float(diff**2 / (4.0 * dim * dim))
        scale = 0.5 * (np.linalg.norm(cs) + np.linalg.norm(ct))
        relative = float(diff / scale) if scale > 0 else 0.0
        word = "little" if relative < 0.25 else ("noticeably" if relative < 0.75 else "strongly")
        text = (f"Feature covariances differ {word} (CORAL = {value:.3g}; the difference is "
                f"{relative:.0%} of their typical norm).")
        return MetricResult(value, False, text, details={"relative_difference": relative, "dim": dim})


class LabelShift(BaseMetric):
    """Total-variation distance between source and target class priors, classes matched by name."""

    name = "label_shift"
    kind = "similarity"
    evidence = "class_prior_shift"
    description = ("Total-variation distance between source and target class priors (target priors "
                   "from the source classifier's confusion matrix, BBSE, when target labels are missing).")
    needs = Needs(source_data=True)

    def applicable(self, inputs: MetricInputs) -> str | None:
        if inputs.source_labels is None:
            return "needs labelled source data (--source)"
        if inputs.target_labels is None and (inputs.source_probs is None
                                             or inputs.source_probs_on_source is None):
            return "needs target labels, or source predictions on both domains to estimate them"
        return None

    def compute(self, inputs: MetricInputs) -> MetricResult:
        """TV = ½ Σ_c |p_s(c) - p_t(c)| over the union of class names."""
        if inputs.source_labels is None:
            raise ValueError(NO_SOURCE)
        p_s = priors_by_name(inputs.source_labels, inputs.source_classes)
        if inputs.target_labels is not None:
            p_t = priors_by_name(inputs.target_labels, inputs.target_classes)
            method = "target labels"
        else:
            p_t = bbse_priors(inputs)
            method = "BBSE (source classifier confusion matrix)"
        names = sorted(set(p_s) | set(p_t))
        value = 0.5 * float(sum(abs(p_s.get(c, 0.0) - p_t.get(c, 0.0)) for c in names))
        shared = sorted(set(p_s) & set(p_t))
        if value < 0.1:
            text = f"Class proportions are similar in both domains (TV = {value:.2f})."
        elif value < 0.3:
            text = f"Class proportions differ moderately between domains (TV = {value:.2f})."
        else:
            text = f"Class proportions differ strongly between domains (TV = {value:.2f}): label shift."
        if not shared:
            text += " No class names are shared."
        return MetricResult(value, False, text, details={
            "method": method, "source_priors": p_s, "target_priors": p_t, "shared_classes": len(shared)})


def bbse_priors(inputs: MetricInputs) -> dict[str, float]:
    """Target class priors by black-box shift estimation (Lipton et al., 2018).

    With C[i, j] = P_source(prediction i, label j) and μ the target's prediction frequencies,
    w solves C w = μ (least squares, clipped at 0) and the target priors are w · p_source,
    normalised. Keys are source class names.
    """
    k = len(inputs.source_classes)
    ys = np.asarray(inputs.source_labels, dtype=np.int64)
    pred_s = np.asarray(inputs.source_probs_on_source).argmax(1)
    pred_t = np.asarray(inputs.source_probs).argmax(1)
    joint = np.zeros((k, k))
    np.add.at(joint, (pred_s, ys), 1.0)
    joint /= len(ys)
    mu = np.bincount(pred_t, minlength=k)[:k] / len(pred_t)
    w, *_ = np.linalg.lstsq(joint, mu, rcond=None)
    p_src = np.bincount(ys, minlength=k)[:k] / len(ys)
    q = np.clip(w, 0.0, None) * p_src
    q = q / q.sum() if q.sum() > 0 else p_src
    return {c: float(v) for c, v in zip(inputs.source_classes, q, strict=True)}
