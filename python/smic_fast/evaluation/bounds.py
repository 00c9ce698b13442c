"""Rate–distortion bounds of Gaussian models fitted on a training split: the reference curves a
transform coder can approach (``smic eval --holdout`` plots them beside the measured points).

Squared error per item D = ||x - x̂||²; for unit vectors coded as unit vectors the mean cosine
is 1 - D/2, so a mean cosine c asks for D = 2 (1 - c).

* :func:`gaussian_rd_bound` — one Gaussian with the training split's sample covariance,
  eigenvalues λ_i: reverse water-filling, θ solves Σ_i min(θ, λ_i) = D and
  R(D) = Σ_{λ_i > θ} ½ log2(λ_i / θ) bits per item (Cover & Thomas, theorem 10.3.3).
* :func:`mixture_rd_bound` — a Gaussian mixture: k-means classes c with probabilities p_c and
  per-class covariances (eigenvalues λ_{c,i}); the class index is sent (H(class) bits) and each
  class transform-coded with one common water level θ over the union of all classes'
  eigenvalues, weighted by p_c: Σ_c p_c Σ_i min(θ, λ_{c,i}) = D and
  R(D) = H(class) + Σ_c p_c Σ_{λ_{c,i} > θ} ½ log2(λ_{c,i} / θ), the classified-transform-coding
  bound (a common θ is the optimal split of D between the classes).

Both are bounds for their model, estimated from samples: a class with fewer items than
dimensions has a rank-deficient sample covariance (its missing directions cost nothing), which
makes the mixture bound optimistic at high rates. numpy only.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["bounds_table", "covariance_eigenvalues", "distortion_of_cosine", "gaussian_rd_bound", "kmeans_classes",
           "mixture_rd_bound", "reverse_water_filling"]


def distortion_of_cosine(cosines: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """Squared error per item D = 2 (1 - c) of unit vectors at mean cosine c."""
    c = np.asarray(cosines, dtype=np.float64)
    if not np.all(np.isfinite(c)) or np.any(c > 1) or np.any(c < -1):
        raise ValueError(f"cosines must be in [-1, 1], got {cosines!r}")
    return 2.0 * (1.0 - c)


def reverse_water_filling(eigenvalues: np.ndarray, distortion: float | np.ndarray,
                          weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(θ, bits) for each distortion D: θ solves Σ_j w_j min(θ, λ_j) = D, and
    bits = Σ_{λ_j > θ} w_j ½ log2(λ_j / θ) (w_j = 1 by default: one Gaussian; p_c for the
    eigenvalues of class c of a mixture). D at or above Σ w_j λ_j costs 0 bits (θ = inf)."""
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64).ravel(), 0.0, None)
    w = np.ones_like(lam) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != lam.shape or np.any(w < 0):
        raise ValueError("weights must be one non-negative number per eigenvalue")
    d = np.atleast_1d(np.asarray(distortion, dtype=np.float64))
    if np.any(~np.isfinite(d)) or np.any(d <= 0):
        raise ValueError("distortions must be finite and > 0")
    order = np.argsort(lam)
    lam, w = lam[order], w[order]
    # f(θ) on [λ_(k-1), λ_(k)]: the k smallest eigenvalues are below θ, the rest pay θ each
    below = np.concatenate([[0.0], np.cumsum(w * lam)])  # Σ w λ of the k smallest, k = 0..n
    above = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]])  # Σ w of the n - k largest
    f_at = below[:-1] + lam * above[:-1]  # f(λ_(k)), nondecreasing in k
    theta = np.full(d.shape, np.inf)
    bits = np.zeros(d.shape)
    for i, target in enumerate(d):
        if target >= below[-1]:
            continue  # the mean alone (0 bits) meets D
        k = int(np.searchsorted(f_at, target, side="right"))  # θ lies in [λ_(k-1), λ_(k)]
        t = (target - below[k]) / above[k]
        theta[i] = t
        active = lam > t
        bits[i] = float(np.sum(w[active] * 0.5 * np.log2(lam[active] / t)))
    return theta, bits


def covariance_eigenvalues(rows: np.ndarray) -> np.ndarray:
    """Eigenvalues of the sample covariance (1/N, around the mean) of (N, d) rows, float64."""
    x = np.asarray(rows, dtype=np.float64)
    if x.ndim != 2 or len(x) < 1:
        raise ValueError(f"rows must be (N, d) with N >= 1, got {x.shape}")
    x = x - x.mean(axis=0)
    n, d = x.shape
    if n < d:  # the Gram matrix has the same nonzero eigenvalues, and is smaller
        values = np.concatenate([np.linalg.eigvalsh(x @ x.T / n), np.zeros(d - n)])
    else:
        values = np.linalg.eigvalsh(x.T @ x / n)
    return np.clip(values, 0.0, None)


def _as_bits(values: np.ndarray, cosines) -> float | np.ndarray:
    return float(values[0]) if np.ndim(cosines) == 0 else values.reshape(np.shape(cosines))


def gaussian_rd_bound(train_unit: np.ndarray, cosines: float | Sequence[float] | np.ndarray) -> float | np.ndarray:
    """Bits per item that a Gaussian source with the covariance of `train_unit` (N, d), unit
    rows) needs at each mean cosine of `cosines` (reverse water-filling on its eigenvalues,
    D = 2 (1 - cosine)); a float for a scalar cosine, else an array of their shape."""
    _, bits = reverse_water_filling(covariance_eigenvalues(train_unit), distortion_of_cosine(cosines))
    return _as_bits(bits, cosines)


def kmeans_classes(rows: np.ndarray, n_classes: int, *, seed: int = 0, n_iter: int = 25,
                   sample: int = 50_000) -> np.ndarray:
    """Class of each row: Lloyd's k-means (squared Euclidean, k-means++ seeding) fitted on a
    seeded sample of at most `sample` rows, then every row assigned to its nearest centre;
    classes left empty are dropped and the labels renumbered 0..C-1."""
    x = np.asarray(rows, dtype=np.float64)
    n = len(x)
    if not 1 <= n_classes <= n:
        raise ValueError(f"n_classes must be in [1, N = {n}], got {n_classes}")
    rng = np.random.default_rng(seed)
    fit = x[rng.choice(n, size=min(n, sample), replace=False)] if n > sample else x
    norms = np.sum(fit * fit, axis=1)
    centres = np.empty((n_classes, x.shape[1]))
    centres[0] = fit[rng.integers(len(fit))]
    nearest = np.sum((fit - centres[0]) ** 2, axis=1)
    for c in range(1, n_classes):  # k-means++: the next centre with probability ∝ squared distance
        total = nearest.sum()
        pick = rng.choice(len(fit), p=nearest / total) if total > 0 else rng.integers(len(fit))
        centres[c] = fit[pick]
        nearest = np.minimum(nearest, np.sum((fit - centres[c]) ** 2, axis=1))

    def assign(points: np.ndarray, point_norms: np.ndarray) -> np.ndarray:
        distance = point_norms[:, None] - 2.0 * points @ centres.T + np.sum(centres * centres, axis=1)[None, :]
        return np.argmin(distance, axis=1)

    for _ in range(n_iter):
        labels = assign(fit, norms)
        moved = False
        for c in range(n_classes):
            members = fit[labels == c]
            if len(members):
                centre = members.mean(axis=0)
                moved |= not np.allclose(centre, centres[c])
                centres[c] = centre
        if not moved:
            break
    labels = assign(x, np.sum(x * x, axis=1))
    _, renumbered = np.unique(labels, return_inverse=True)
    return renumbered


def mixture_rd_bound(train_unit: np.ndarray, cosines: float | Sequence[float] | np.ndarray,
                     n_classes: int = 32, seed: int = 0,
                     eigenvalues_of: Callable[[np.ndarray], np.ndarray] = covariance_eigenvalues,
                     ) -> float | np.ndarray:
    """Bits per item of a Gaussian mixture fitted on `train_unit` (k-means into `n_classes`
    classes, each with its own mean and sample covariance) at each mean cosine: the class
    entropy H(class) plus reverse water-filling with one water level over all classes'
    eigenvalues, each weighted by its class probability (the module docstring has the
    formula); a float for a scalar cosine, else an array of their shape. `eigenvalues_of`
    (a class's rows -> its covariance's eigenvalues) swaps in another covariance estimate,
    a shrunk one for instance (benchmarks/bench_bounds.py)."""
    x = np.asarray(train_unit, dtype=np.float64)
    labels = kmeans_classes(x, min(n_classes, len(x)), seed=seed)
    counts = np.bincount(labels)
    p = counts / counts.sum()
    entropy = float(-np.sum(p * np.log2(p)))
    eigenvalues = [eigenvalues_of(x[labels == c]) for c in range(len(counts))]
    weights = [np.full(len(e), pc) for e, pc in zip(eigenvalues, p)]
    _, bits = reverse_water_filling(np.concatenate(eigenvalues), distortion_of_cosine(cosines),
                                    np.concatenate(weights))
    return _as_bits(bits + entropy, cosines)


def bounds_table(train_unit: np.ndarray, cosines: Sequence[float], n_classes: int = 32,
                 seed: int = 0) -> dict[str, Any]:
    """{"cosine": [...], "gaussian": [...], "mixture": [...], "n_classes": C, "train_items": N}:
    both bounds in bits per item at `cosines` (what the report plots)."""
    c = np.asarray(cosines, dtype=np.float64)
    gaussian = np.atleast_1d(gaussian_rd_bound(train_unit, c))
    mixture = np.atleast_1d(mixture_rd_bound(train_unit, c, n_classes=n_classes, seed=seed))
    return {"cosine": [float(v) for v in c], "gaussian": [round(float(v), 3) for v in gaussian],
            "mixture": [round(float(v), 3) for v in mixture], "n_classes": int(min(n_classes, len(train_unit))),
            "train_items": len(train_unit)}

