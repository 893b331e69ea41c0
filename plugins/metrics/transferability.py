"""Transferability metrics: how well the source model's features or head serve the target labels.

``logme``, ``hscore`` and ``knn`` read the target features and labels (train+val); ``leep``,
``nce`` and ``source_accuracy`` read the source head's softmax on the same rows. Higher is better
for all of them.
"""

from __future__ import annotations

import numpy as np

from advisor.plugin import KNN_K, MetricInputs, MetricResult, Needs, knn_loo_accuracy

from .base import BaseMetric, one_hot, remap_labels

HSCORE_SHRINK_RATIO = 10  # Ledoit-Wolf shrinkage unless N >= 10 D


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


class SourceAccuracy(BaseMetric):
    """The source classifier's accuracy on the labelled target, classes matched by name."""

    name = "source_accuracy"
    kind = "transferability"
    evidence = "source_head_accuracy"
    description = ("Accuracy of the source classifier on the labelled target, classes matched by name. "
                   "High LEEP/NCE with low source accuracy means the labels mean different things.")
    needs = Needs(source_predictions=True)
    needs_target_labels = True

    def applicable(self, inputs: MetricInputs) -> str | None:
        reason = super().applicable(inputs)
        if reason is None and not set(inputs.source_classes) & set(inputs.target_classes):
            return "no target class name is a source class name"
        return reason

    def compute(self, inputs: MetricInputs) -> MetricResult:
        """Fraction of target rows whose predicted source class has the target label's name."""
        src = np.asarray(inputs.source_classes, dtype=object)
        tgt = np.asarray(inputs.target_classes, dtype=object)
        pred = src[np.asarray(inputs.source_probs).argmax(1)]
        true = tgt[np.asarray(inputs.target_labels, dtype=np.int64)]
        value = float(np.mean(pred == true))
        shared = np.isin(true, src)
        chance = 1.0 / len(np.unique(true))
        if value >= 0.5 + chance / 2:
            text = f"The source classifier already labels the target well ({value:.0%} accurate)."
        elif value > 1.5 * chance:
            text = f"The source classifier labels the target partly right ({value:.0%}; chance {chance:.0%})."
        else:
            text = (f"The source classifier is near or below chance on the target ({value:.0%}; chance "
                    f"{chance:.0%}): its labels do not carry over as they are.")
        return MetricResult(value, True, text, details={
            "chance": chance, "rows_with_shared_class": float(shared.mean())})


class LogME(BaseMetric):
    """LogME evidence (You et al., 2021), fully converged, correct for N < D."""

    name = "logme"
    kind = "transferability"
    evidence = "feature_fit"
    description = ("LogME: maximised log evidence per sample of a Bayesian linear model from target "
                   "features to target labels (correct for N < D, fully converged).")
    needs = Needs()
    needs_target_labels = True

    def compute(self, inputs: MetricInputs) -> MetricResult:
        """Mean over classes of the converged evidence per sample."""
        from .logme import logme

        r = logme(inputs.target_features, inputs.target_labels, device=inputs.device)
        text = (f"A linear model on these features explains the target labels with evidence "
                f"{r.value:.3f} per sample (higher is better; compare models on the same target).")
        return MetricResult(r.value, True, text, details={
            "iterations": r.iterations, "converged": r.converged})


class LEEP(BaseMetric):
    """Log expected empirical prediction (Nguyen et al., 2020) from the source head's softmax."""

    name = "leep"
    kind = "transferability"
    evidence = "label_likelihood"
    description = ("LEEP: average log-likelihood of target labels predicted through the source head's "
                   "softmax and the empirical P(target label | source class).")
    needs = Needs(source_predictions=True)
    needs_target_labels = True

    def compute(self, inputs: MetricInputs) -> MetricResult:
        """LEEP = mean_i log Σ_z P(y_i | z) θ_i(z); -H(Y) is the uninformative level."""
        theta = np.asarray(inputs.source_probs, dtype=np.float64)
        theta = theta / theta.sum(1, keepdims=True)
        y, c = remap_labels(inputs.target_labels)
        joint = one_hot(y, c).T @ theta / len(y)  # C x Z
        p_z = joint.sum(0)
        cond = np.divide(joint, p_z, out=np.zeros_like(joint), where=p_z > 0)
        eep = (theta @ cond.T)[np.arange(len(y)), y]
        value = float(np.mean(np.log(np.clip(eep, 1e-300, None))))
        h_y = _entropy(np.bincount(y) / len(y))
        explained = (value + h_y) / h_y if h_y > 0 else 0.0
        text = (f"The source head's predictions explain {explained:.0%} of the target labels' "
                f"uncertainty (LEEP = {value:.3f}; {-h_y:.3f} is uninformative, 0 is perfect).")
        return MetricResult(value, True, text, details={"uninformative": -h_y, "explained": explained})


class NCE(BaseMetric):
    """Negative conditional entropy -H(Y | Z) (Tran et al., 2019), Z the source head's hard label."""

    name = "nce"
    kind = "transferability"
    evidence = "label_predictability"
    description = "NCE: -H(target label | source head's predicted class) on the target rows."
    needs = Needs(source_predictions=True)
    needs_target_labels = True

    def compute(self, inputs: MetricInputs) -> MetricResult:
        """NCE = Σ_{y,z} P(y, z) log P(y | z) with the empirical joint of hard predictions."""
        z = np.asarray(inputs.source_probs).argmax(1)
        y, c = remap_labels(inputs.target_labels)
        joint = one_hot(y, c).T @ one_hot(z, np.asarray(inputs.source_probs).shape[1]) / len(y)
        p_z = joint.sum(0, keepdims=True)
        mask = joint > 0
        value = float((joint[mask] * np.log(joint[mask] / np.broadcast_to(p_z, joint.shape)[mask])).sum())
        h_y = _entropy(np.bincount(y) / len(y))
        explained = (value + h_y) / h_y if h_y > 0 else 0.0
        text = (f"Knowing the source head's predicted class removes {explained:.0%} of the uncertainty "
                f"about the target label (NCE = {value:.3f}; {-h_y:.3f} is uninformative, 0 is perfect).")
        return MetricResult(value, True, text, details={"uninformative": -h_y, "explained": explained})


class HScore(BaseMetric):
    """H-score tr(Σ_f⁻¹ Σ_g) (Bao et al., 2019), Ledoit-Wolf shrinkage when N is not >> D.

    The shrunk form is Ibrahim et al.'s (ICLR 2023): Σ_f -> (1 - s) Σ_f + s μ I, Σ_g -> (1 - s) Σ_g.
    """

    name = "hscore"
    kind = "transferability"
    evidence = "feature_fit"
    description = ("H-score tr(cov(f)^-1 cov(E[f|y])): how well class means separate relative to the "
                   "feature spread; Ledoit-Wolf-shrunk covariance when N < 10 D.")
    needs = Needs()
    needs_target_labels = True

    def compute(self, inputs: MetricInputs) -> MetricResult:
        """The H-score in [0, C - 1] and whether the covariance was shrunk."""
        f = np.asarray(inputs.target_features, dtype=np.float64)
        y, c = remap_labels(inputs.target_labels)
        n, d = f.shape
        shrunk = n < HSCORE_SHRINK_RATIO * d
        if shrunk:
            from sklearn.covariance import ledoit_wolf

            cov_f, shrinkage = ledoit_wolf(f)
        else:
            cov_f, shrinkage = np.atleast_2d(np.cov(f, rowvar=False, bias=True)), 0.0
        means = (one_hot(y, c).T @ f) / np.bincount(y, minlength=c)[:, None]
        g = means[y]
        # shrink the between-class covariance by the same (1 - s) (Ibrahim et al., 2022), so that
        # cov_g <= cov_f still holds and the score stays within [0, C - 1]
        cov_g = (1.0 - shrinkage) * np.atleast_2d(np.cov(g, rowvar=False, bias=True))
        value = float(np.trace(np.linalg.pinv(cov_f, hermitian=True) @ cov_g))
        frac = value / (c - 1)
        text = (f"Target classes are {'well' if frac > 0.5 else 'partly' if frac > 0.2 else 'poorly'} "
                f"separated in these features (H-score {value:.2f} of at most {c - 1}).")
        return MetricResult(value, True, text, details={
            "max": c - 1, "shrunk": shrunk, "shrinkage": float(shrinkage)})


class KNN(BaseMetric):
    """Leave-one-out k-NN accuracy on the target features: the baseline that is hard to beat."""

    name = "knn"
    kind = "transferability"
    evidence = "feature_quality"
    description = (f"Leave-one-out {KNN_K}-nearest-neighbour accuracy on the target features "
                   "(Euclidean): a simple, strong transferability baseline.")
    needs = Needs()
    needs_target_labels = True

    def compute(self, inputs: MetricInputs) -> MetricResult:
        """LOO accuracy; ties go to the tied class with the nearest neighbour (label-free rule)."""
        f = np.asarray(inputs.target_features, dtype=np.float64)
        y, c = remap_labels(inputs.target_labels)
        acc = knn_loo_accuracy(f, y, c, KNN_K)
        chance = float(np.bincount(y).max() / len(y))
        text = (f"Nearest neighbours in these features get {acc:.0%} of target labels right "
                f"(majority-class rate {chance:.0%}).")
        return MetricResult(acc, True, text, details={"k": min(KNN_K, len(y) - 1), "majority_rate": chance})
