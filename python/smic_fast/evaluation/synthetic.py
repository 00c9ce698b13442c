"""Seeded synthetic embeddings, one home for the tests, the benchmarks and the examples.

Real CLIP collections are not shipped (and none can be downloaded here), so every figure and
test that needs data of SMIC's shape draws it from these generators: the same seed gives the
same rows everywhere.

- :func:`unit_rows`: isotropic unit rows (the worst case for a dictionary: nothing to learn).
- :func:`planted`: sums of k atoms of a hidden dictionary plus noise (sparse coding can
  recover the support: an oracle for OMP and K-SVD).
- :func:`clustered`: each row mixes 1-4 Zipf-popular "concepts" plus isotropic noise, the
  shape of a photo archive's subjects (the benchmarks' default collection).
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["clustered", "planted", "unit_rows"]


def unit_rows(rng: np.random.Generator, n: int, d: int) -> npt.NDArray[np.float32]:
    """n random unit-norm float32 rows of dimension d."""
    x = rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def planted(rng: np.random.Generator, n: int, n_atoms: int, d: int, k: int, noise: float = 0.1, *,
            normalise: bool = True, away_from_zero: bool = False,
            ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(signals, atoms): n signals that are sums of k of the n_atoms hidden unit atoms plus noise.

    Args:
        noise: spread of the added noise; per coordinate ``noise / sqrt(d)`` when ``normalise``
            (so the noise's norm is about ``noise``), else ``noise`` per coordinate.
        normalise: rows scaled to unit norm (what SMIC codes); False keeps the raw sums.
        away_from_zero: weights ``N(0, 1) + sign(N(0, 1))`` instead of ``N(0, 1)``, so no
            planted atom has a near-zero weight (support recovery is then well posed).
    """
    atoms = unit_rows(rng, n_atoms, d).astype(np.float64)
    support = np.argsort(rng.random((n, n_atoms)), axis=1)[:, :k]
    weights = rng.standard_normal((n, k))
    if away_from_zero:
        weights += np.sign(rng.standard_normal((n, k)))
    x = np.einsum("nk,nkd->nd", weights, atoms[support])
    if normalise:
        x += noise * rng.standard_normal((n, d)) / np.sqrt(d)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    else:
        x += noise * rng.standard_normal((n, d))
    return x.astype(np.float32), atoms.astype(np.float32)


def clustered(rng: np.random.Generator, n: int, d: int = 768, n_concepts: int = 512,
              noise: float = 0.15) -> npt.NDArray[np.float32]:
    """n unit rows, each mixing 1-4 concepts (popularity Zipf-like, exponent 0.8, as subjects
    in a photo archive) with weights in [0.3, 1], plus isotropic noise of norm about `noise`."""
    concepts = unit_rows(rng, n_concepts, d).astype(np.float64)
    popularity = 1.0 / np.arange(1, n_concepts + 1) ** 0.8
    popularity /= popularity.sum()
    counts = np.minimum(rng.geometric(0.5, n), 4)
    x = np.zeros((n, d))
    for i, k in enumerate(counts):
        picked = rng.choice(n_concepts, size=k, replace=False, p=popularity)
        x[i] = rng.uniform(0.3, 1.0, k) @ concepts[picked]
    x += noise * rng.standard_normal((n, d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
