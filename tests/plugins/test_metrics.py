"""Built-in metrics against independent plain NumPy/SciPy computations on small random data."""

from __future__ import annotations

from pathlib import Path

import advisor_plugins.metrics as builtin_metrics
import numpy as np
import pytest
from advisor_plugins.metrics.logme import logme
from scipy.optimize import minimize

from advisor.plugin.contracts import MetricInputs
from advisor.plugin.registry import build_registry

DSLR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "office_caltech_surf" / "dslr.npz"


@pytest.fixture(scope="module")
def metrics() -> dict:
    reg = build_registry(load_entry_points=False, plugins=[("builtin_metrics", builtin_metrics)])
    assert not reg.failures
    return reg.metrics


def _inputs(rng: np.random.Generator, n: int = 60, d: int = 5, c: int = 3, **kw) -> MetricInputs:
    y = rng.integers(0, c, n)
    x = rng.normal(size=(n, d)) + y[:, None] * 0.8
    base = dict(target_features=x, target_labels=y, target_classes=tuple("abcdefgh"[:c]))
    base.update(kw)
    return MetricInputs(**base)


def test_all_ten_registered(metrics: dict) -> None:
    assert set(metrics) == {"mmd", "pad", "coral", "label_shift", "source_accuracy", "logme", "leep",
                            "nce", "hscore", "knn"}
    for m in metrics.values():
        assert m.kind in ("similarity", "transferability") and m.description


# --------------------------------------------------------------------------- similarity


def test_coral_matches_numpy(metrics: dict) -> None:
    rng = np.random.default_rng(0)
    xs, xt = rng.normal(size=(50, 4)), rng.normal(size=(40, 4)) * 2.0
    r = metrics["coral"].compute(MetricInputs(xt, None, (), source_features=xs))
    cs = (xs - xs.mean(0)).T @ (xs - xs.mean(0)) / 49
    ct = (xt - xt.mean(0)).T @ (xt - xt.mean(0)) / 39
    assert r.value == pytest.approx(((cs - ct) ** 2).sum() / (4 * 16), rel=1e-10)
    assert not r.higher_is_better


def test_mmd_matches_numpy_and_detects_shift(metrics: dict) -> None:
    rng = np.random.default_rng(1)
    xs, xt = rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 1.0
    r = metrics["mmd"].compute(MetricInputs(xt, None, (), source_features=xs))
    m = r.details["bandwidth"]
    z = np.concatenate([xs, xt])
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    k = np.mean([np.exp(-d2 / (s * m)) for s in r.details["scales"]], axis=0)
    kxx, kyy, kxy = k[:40, :40], k[40:, 40:], k[:40, 40:]
    expect = ((kxx.sum() - 40) / (40 * 39) + (kyy.sum() - 30) / (30 * 29) - 2 * kxy.mean())
    assert r.value == pytest.approx(expect, rel=1e-4)
    assert r.p_value < 0.01 and r.details["estimator"] == "full"


def test_label_shift_tv_by_name(metrics: dict) -> None:
    ys = np.array([0] * 50 + [1] * 30 + [2] * 20)  # a, b, c
    yt = np.array([0] * 10 + [1] * 30)  # target classes (c, a): 25% c, 75% a
    inp = MetricInputs(np.zeros((40, 2)), yt, ("c", "a"), source_features=np.zeros((100, 2)),
                       source_labels=ys, source_classes=("a", "b", "c"))
    r = metrics["label_shift"].compute(inp)
    p_s = {"a": 0.5, "b": 0.3, "c": 0.2}
    p_t = {"a": 0.75, "b": 0.0, "c": 0.25}
    assert r.value == pytest.approx(0.5 * sum(abs(p_s[k] - p_t[k]) for k in p_s))


def test_label_shift_bbse_recovers_priors(metrics: dict) -> None:
    rng = np.random.default_rng(2)
    k = 3
    conf = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.1, 0.2, 0.7]])  # P(pred | label)
    ys = rng.integers(0, k, 6000)
    pred_s = np.array([rng.choice(k, p=conf[y]) for y in ys])
    q = np.array([0.6, 0.3, 0.1])
    yt = rng.choice(k, 6000, p=q)
    pred_t = np.array([rng.choice(k, p=conf[y]) for y in yt])
    inp = MetricInputs(np.zeros((6000, 2)), None, ("a", "b", "c"), source_features=np.zeros((6000, 2)),
                       source_labels=ys, source_classes=("a", "b", "c"), source_probs=np.eye(k)[pred_t],
                       source_probs_on_source=np.eye(k)[pred_s])
    assert metrics["label_shift"].applicable(inp) is None
    r = metrics["label_shift"].compute(inp)
    est = np.array([r.details["target_priors"][c] for c in "abc"])
    assert np.abs(est - q).max() < 0.05
    true_tv = 0.5 * np.abs(q - np.bincount(ys) / len(ys)).sum()
    assert r.value == pytest.approx(true_tv, abs=0.05)


def test_pad_near_zero_for_halves_and_two_for_separable(metrics: dict) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 5))
    for split in (300, 450):  # equal and unequal halves
        r = metrics["pad"].compute(MetricInputs(x[split:], None, (), source_features=x[:split], seed=0))
        assert r.value < 0.3, (split, r.value)
    far = metrics["pad"].compute(MetricInputs(x[:200] + 10.0, None, (), source_features=x[200:]))
    assert far.value > 1.9


# --------------------------------------------------------------------------- source head


def _probs(rng: np.random.Generator, n: int, z: int) -> np.ndarray:
    logits = rng.normal(size=(n, z)) * 2
    e = np.exp(logits)
    return e / e.sum(1, keepdims=True)


def test_leep_and_nce_match_numpy(metrics: dict) -> None:
    rng = np.random.default_rng(4)
    n, z, c = 80, 4, 3
    theta, y = _probs(rng, n, z), rng.integers(0, c, n)
    inp = MetricInputs(np.zeros((n, 2)), y, ("a", "b", "c"), source_probs=theta)
    # LEEP, written out with explicit sums
    joint = np.zeros((c, z))
    for i in range(n):
        joint[y[i]] += theta[i] / n
    cond = joint / joint.sum(0)
    leep = np.mean([np.log(sum(cond[y[i], j] * theta[i, j] for j in range(z))) for i in range(n)])
    assert metrics["leep"].compute(inp).value == pytest.approx(leep, rel=1e-10)
    # NCE = -H(Y | Z) with hard predictions
    zh = theta.argmax(1)
    nce = 0.0
    for j in np.unique(zh):
        yz = y[zh == j]
        pz = len(yz) / n
        py = np.bincount(yz, minlength=c) / len(yz)
        nce += pz * np.sum(py[py > 0] * np.log(py[py > 0]))
    assert metrics["nce"].compute(inp).value == pytest.approx(nce, rel=1e-10)


def test_source_accuracy_matches_by_name(metrics: dict) -> None:
    probs = np.eye(3)[[0, 1, 2, 2]]  # predicts source classes x, dog, cat, cat
    inp = MetricInputs(np.zeros((4, 2)), np.array([1, 0, 1, 0]), ("cat", "dog"),
                       source_probs=probs, source_classes=("x", "dog", "cat"))
    # target names: dog, cat, dog, cat; predicted names: x, dog, cat, cat
    assert metrics["source_accuracy"].compute(inp).value == pytest.approx(0.25)
    other = MetricInputs(np.zeros((4, 2)), np.array([1, 0, 1, 0]), ("p", "q"), source_probs=probs,
                         source_classes=("x", "dog", "cat"))
    assert "class name" in metrics["source_accuracy"].applicable(other)


def test_applicability_reasons(metrics: dict) -> None:
    inp = _inputs(np.random.default_rng(5))
    for name in ("mmd", "pad", "coral", "label_shift"):
        assert "--source" in metrics[name].applicable(inp)
    for name in ("leep", "nce", "source_accuracy"):
        assert "predictions" in metrics[name].applicable(inp)
    for name in ("logme", "hscore", "knn"):
        assert metrics[name].applicable(inp) is None


# --------------------------------------------------------------------------- features -> labels


def _evidence_direct(f: np.ndarray, y: np.ndarray, log_a: float, log_b: float) -> float:
    """The closed-form log evidence of Bayesian linear regression, straight from the formula."""
    n, d = f.shape
    a, b = np.exp(log_a), np.exp(log_b)
    big_a = a * np.eye(d) + b * f.T @ f
    m = b * np.linalg.solve(big_a, f.T @ y)
    return (n / 2 * np.log(b) + d / 2 * np.log(a) - n / 2 * np.log(2 * np.pi)
            - b / 2 * np.sum((f @ m - y) ** 2) - a / 2 * m @ m - np.linalg.slogdet(big_a)[1] / 2)


# log α, log β. When N < D a class can be interpolated exactly and the supremum lies at β -> ∞,
# where the direct formula loses precision (β ~ e^30); e^20 is already within 1e-8 of the limit.
BOUNDS = [(-20.0, 25.0), (-20.0, 20.0)]


def _logme_direct(f: np.ndarray, labels: np.ndarray) -> float:
    """LogME by maximising the closed-form evidence over (log α, log β) numerically, per class."""
    values = []
    for c in np.unique(labels):
        yc = (labels == c).astype(float)
        best = max(
            (minimize(lambda p, yc=yc: -_evidence_direct(f, yc, p[0], p[1]), x0, method="Nelder-Mead",
                      bounds=BOUNDS, options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 5000})
             for x0 in ([0, 0], [2, 2])),
            key=lambda r: -r.fun,
        )
        values.append(-best.fun / len(f))
    return float(np.mean(values))


@pytest.mark.parametrize("n,d", [(80, 10), (20, 40)])  # N > D and N < D
def test_logme_matches_direct_evidence_maximisation(n: int, d: int) -> None:
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 3, n)
    f = rng.normal(size=(n, d)) + labels[:, None] * 0.5 + rng.normal(size=(1, d))
    r = logme(f, labels)
    assert r.converged
    assert r.value == pytest.approx(_logme_direct(f, labels), abs=1e-5)


def test_logme_keeps_the_log_alpha_term_when_n_below_d() -> None:
    """Dropping (D - r) log α (the authors' default) would give a different, larger value."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 15)
    f = rng.normal(size=(15, 60))
    r = logme(f, labels)
    assert r.value == pytest.approx(_logme_direct(f, labels), abs=1e-5)


@pytest.mark.parametrize("name", ["logme", "hscore", "knn"])
def test_invariant_to_class_permutation_and_gaps(metrics: dict, name: str) -> None:
    rng = np.random.default_rng(8)
    inp = _inputs(rng, n=90, d=6, c=4)
    base = metrics[name].compute(inp).value
    perm = np.array([3, 0, 2, 1])
    gaps = np.array([2, 7, 11, 40])
    for new in (perm[inp.target_labels], gaps[inp.target_labels]):
        other = MetricInputs(inp.target_features, new, tuple("abcdefgh"), device="cpu")
        assert metrics[name].compute(other).value == pytest.approx(base, rel=1e-9, abs=1e-12)


def test_hscore_matches_numpy_when_n_much_larger_than_d(metrics: dict) -> None:
    rng = np.random.default_rng(9)
    inp = _inputs(rng, n=400, d=4, c=3)
    f, y = inp.target_features, inp.target_labels
    cov_f = np.cov(f, rowvar=False, bias=True)
    g = np.stack([f[y == c].mean(0) for c in range(3)])[y]
    cov_g = np.cov(g, rowvar=False, bias=True)
    r = metrics["hscore"].compute(inp)
    assert not r.details["shrunk"]
    assert r.value == pytest.approx(np.trace(np.linalg.pinv(cov_f) @ cov_g), rel=1e-8)


def test_hscore_shrinkage_avoids_the_n_below_d_degeneracy(metrics: dict) -> None:
    rng = np.random.default_rng(10)
    y = np.repeat(np.arange(3), 10)
    noise = rng.normal(size=(30, 50))
    informative = noise.copy()
    informative[:, :3] += np.eye(3)[y] * 3.0  # three class-indicator directions
    plain = np.trace(np.linalg.pinv(np.cov(noise, rowvar=False, bias=True))
                     @ np.cov(np.stack([noise[y == c].mean(0) for c in range(3)])[y], rowvar=False, bias=True))
    assert plain == pytest.approx(2.0, abs=1e-6)  # the plain H-score says C - 1 for pure noise
    h_noise = metrics["hscore"].compute(MetricInputs(noise, y, ("a", "b", "c"))).value
    h_info = metrics["hscore"].compute(MetricInputs(informative, y, ("a", "b", "c"))).value
    assert 0.0 <= h_noise < 1.0 and h_noise + 0.3 < h_info <= 2.0


def test_knn_matches_plain_leave_one_out(metrics: dict) -> None:
    rng = np.random.default_rng(11)
    inp = _inputs(rng, n=50, d=3, c=3)
    f, y = inp.target_features, inp.target_labels
    hits = 0
    for i in range(len(f)):
        d = np.linalg.norm(f - f[i], axis=1)
        d[i] = np.inf
        nn = np.argsort(d, kind="stable")[:5]
        counts = np.bincount(y[nn], minlength=3)
        tied = np.flatnonzero(counts == counts.max())
        pred = next(y[j] for j in nn if y[j] in tied)  # tie: the nearest tied class
        hits += pred == y[i]
    assert metrics["knn"].compute(inp).value == pytest.approx(hits / len(f))


@pytest.mark.skipif(not DSLR.exists(), reason="shared Office-Caltech data not present")
def test_logme_office_caltech_dslr_converged_value() -> None:
    data = np.load(DSLR)
    r = logme(data["X"].astype(np.float64), data["y"])
    assert r.converged
    assert r.value == pytest.approx(0.047, abs=0.001)
