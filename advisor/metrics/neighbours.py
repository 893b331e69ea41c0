"""Leave-one-out k-nearest-neighbour accuracy: a cheap, training-free read of how separable labels are.

Two users: the ``knn`` metric plugin (on the source model's features of the target) and the
quick advice (on the raw target inputs, the "how far does the target alone get" evidence).
Numpy only, so the advice stays torch-free.
"""

from __future__ import annotations

import numpy as np

from advisor.data.domain import Domain, as_float

KNN_K = 5
ROW_CHUNK = 1024
#: Raw inputs: at most this many rows (seeded subsample) and, past MAX_DIM columns, a seeded
#: Gaussian projection to PROJECTED_DIM (Johnson-Lindenstrauss; distances kept up to ~10%).
MAX_ROWS = 2000
MAX_DIM = 4096
PROJECTED_DIM = 1024


def knn_loo_accuracy(f: np.ndarray, y: np.ndarray, c: int, k: int = KNN_K) -> float:
    """Leave-one-out k-NN accuracy (Euclidean), distances in row chunks (no per-sample loop).

    Ties go to the tied class whose neighbour is nearest (a label-free rule).
    """
    n = len(f)
    k = min(k, n - 1)
    norms = (f * f).sum(1)
    hits = 0
    for start in range(0, n, ROW_CHUNK):
        rows = np.arange(start, min(start + ROW_CHUNK, n))
        d2 = norms[rows, None] + norms[None, :] - 2.0 * f[rows] @ f.T
        d2[np.arange(len(rows)), rows] = np.inf  # leave the row itself out
        nn = np.argpartition(d2, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(d2, nn, 1).argsort(1, kind="stable")
        nn = np.take_along_axis(nn, order, 1)  # k neighbours, nearest first
        labels = y[nn]  # rows x k
        votes = np.zeros((len(rows), c))
        np.add.at(votes, (np.repeat(np.arange(len(rows)), k), labels.ravel()), 1.0)
        first = np.full((len(rows), c), k, dtype=float)  # rank of each class's nearest neighbour
        np.minimum.at(first, (np.repeat(np.arange(len(rows)), k), labels.ravel()),
                      np.tile(np.arange(k, dtype=float), len(rows)))
        pred = (votes * (k + 1) - first).argmax(1)
        hits += int((pred == y[rows]).sum())
    return hits / n


def raw_knn_accuracy(domain: Domain, seed: int = 0) -> float | None:
    """LOO k-NN accuracy on a labelled domain's raw inputs, flattened and column-standardised.

    ``None`` with fewer than 3 labelled rows. Large domains are subsampled and projected (see
    ``MAX_ROWS``/``MAX_DIM``), seeded, so the cost stays under a second.
    """
    if domain.y is None or len(domain) < 3:
        return None
    rng = np.random.default_rng(seed)
    idx = np.arange(len(domain))
    if len(idx) > MAX_ROWS:
        idx = np.sort(rng.choice(idx, MAX_ROWS, replace=False))
    x = as_float(domain.X[idx]).astype(np.float64).reshape(len(idx), -1)  # uint8 images in [0, 1]
    mean, sd = x.mean(0), x.std(0)
    x = (x - mean) / np.where(sd <= 1e-6 * (1.0 + np.abs(mean)), 1.0, sd)  # constant columns: scale 1
    if x.shape[1] > MAX_DIM:
        x = x @ rng.normal(size=(x.shape[1], PROJECTED_DIM)) / np.sqrt(PROJECTED_DIM)
    _, y = np.unique(domain.y[idx], return_inverse=True)
    return knn_loo_accuracy(x, y, int(y.max()) + 1)
