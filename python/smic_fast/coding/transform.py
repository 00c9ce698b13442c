"""Learning the transform-coded refinement layer (format version 4).

After its atoms, an item's residual r = e / cos(e, ê) - ê (see :func:`aimed_residuals`) is
rotated into the principal axes of its class (a KLT learned per class on training residuals,
the class being its first atom's group of atoms, which costs no bits) and quantised with one
dead-zone step for every axis, then range-coded with context tables learned here. One step
everywhere realises reverse water-filling: axes whose spread is below the step quantise to zero and cost almost nothing.
The coding itself is C++ (``smic/transform.hpp``); this module learns its parameters with
numpy (covariances and their eigendecompositions), on the items a dictionary was learned on
or on any other training set, and returns the dictionary carrying them, so a shared
``.smicd`` ships the layer to every collection coded with it.

    dictionary = learn_transform(Dictionary.fit(train), train)
    smic_fast.compress(new_items, "new.smic", dictionary=dictionary, residual_step=0.03)
"""
from __future__ import annotations

import math

import numpy as np

from .. import _core
from .._validation import as_count
from .dictionary import Dictionary, normalize_embeddings

__all__ = ["learn_transform", "DEFAULT_TRANSFORM_CLASSES", "TRAINING_STEPS", "QUANTISERS"]

#: Classes of the default transform: groups of atoms (k-means over the atoms, weighted by how
#: many training items each one leads).
DEFAULT_TRANSFORM_CLASSES = 16
#: Steps the context tables are counted at: the tables are indexed by log2(sigma / step), so
#: counts from a spread of steps serve any step in between.
TRAINING_STEPS = (0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625)
#: How a transform's levels are chosen (:func:`learn_transform`'s ``quantiser``).
QUANTISERS = ("greedy", "trellis", "dependent")
#: Rounds of counting a dependent quantiser's tables again on the levels they price.
DEPENDENT_ROUNDS = 7
#: The default ``rdo`` of each quantiser.
DEFAULT_RDO = {"greedy": 0.15, "trellis": 0.15, "dependent": 0.1}


def _atom_classes(atoms: np.ndarray, usage: np.ndarray, n_classes: int, seed: int) -> np.ndarray:
    """Group atoms into n_classes by weighted spherical k-means (weights: training items each
    atom leads, plus one so unused atoms still join their nearest group)."""
    k = len(atoms)
    if n_classes >= k:
        return np.arange(k, dtype=np.uint16)
    weights = usage.astype(np.float64) + 1.0
    rng = np.random.default_rng(seed)
    centres = atoms[rng.choice(k, size=n_classes, replace=False, p=weights / weights.sum())].astype(np.float64)
    labels = np.zeros(k, dtype=np.int64)
    for _ in range(25):
        labels = np.argmax(atoms @ centres.T, axis=1)
        for c in range(n_classes):
            members = labels == c
            if members.any():
                v = (weights[members, None] * atoms[members]).sum(axis=0)
                centres[c] = v / max(np.linalg.norm(v), 1e-12)
    return labels.astype(np.uint16)


def aimed_residuals(unit: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """What the layer codes of each item, float64 (n, d): e / cos(e, ê) - ê for unit rows e and
    their atoms' unit reconstructions ê (e - ê where the cosine is under 1/2).

    The reader renormalises what it rebuilds, so any point on e's ray decodes alike; this one
    leaves the residual orthogonal to ê, without the radial part e - ê carries, and codes
    new items in fewer bits at equal cosine (BENCHMARKS.md). Both C++ writers aim there
    (``coding/residual_target.hpp``, in float32); this float64 copy is what the transform is
    learned on.
    """
    unit64, decoded64 = np.asarray(unit, dtype=np.float64), np.asarray(decoded, dtype=np.float64)
    cosine = np.sum(unit64 * decoded64, axis=1, keepdims=True)
    return unit64 / np.where(cosine >= _core.TRANSFORM_TARGET_MIN_COSINE, cosine, 1.0) - decoded64


def learn_transform(
    dictionary: Dictionary, embeddings: np.ndarray, *, n_classes: int | None = None,
    rank: int | None = None, shrinkage: float = 4.0, rounding: float = 0.45, bias: float = 0.05,
    rdo: float | None = None, quantiser: str = "dependent",
    steps: tuple[float, ...] = TRAINING_STEPS, seed: int = 0,
) -> Dictionary:
    """`dictionary` with a transform-coded refinement layer learned on training `embeddings`.

    Collections coded with the returned dictionary and a ``residual_step`` code each item's
    residual after its atoms in its class's principal axes (format version 4) instead of
    with one table for every dimension.

    Args:
        dictionary: the atoms and tables the residuals are taken after (smic layout).
        embeddings: (N, d) training rows (normalised here), N >= 2; the items the dictionary
            was learned on, or others like the items to be coded.
        n_classes: groups of atoms with a KLT each (1: one global KLT), at most n_atoms;
            default: :data:`DEFAULT_TRANSFORM_CLASSES`, or n_atoms if fewer.
        rank: axes kept per class, at most d - 1 (the default); the rest are never coded.
        shrinkage: weight of the global covariance in each class's, as ``shrinkage * d``
            pseudo-items (>= 0): small classes lean on the global axes.
        rounding: (greedy and trellis) dead-zone rounding of |y| / step in [0, 1) (0.5:
            nearest; smaller widens the zero bin, which entropy coding makes cheap).
        bias: reconstruction of level q at (|q| - bias) * step, in [0, 1) (the centroid of a
            Laplacian bin lies below its middle); for ``"dependent"``, in half steps: level k
            of quantiser Q at (2|k| - Q - bias) * step / 2.
        rdo: rate-distortion quantisation: the price of one bit is rdo * step² of squared error
            under the learned tables (stored with the transform, so every encoder chooses
            alike); 0: off for the greedy quantiser, distortion alone for the dependent one.
            Default: 0.1 for ``"dependent"``, 0.15 for the others (each its best on held-out
            MiniLM items in BENCHMARKS.md).
        quantiser: how levels are chosen (stored with the transform):
            ``"dependent"`` (the default) is dependent quantisation, the trellis-coded
            quantisation of JPEG 2000 part 2 and VVC: two quantisers on interleaved grids, the
            one for each coefficient set by the parities of the levels before it, the levels
            found by a Viterbi search over the item. It packs reconstructions more densely than
            one grid: on held-out MiniLM items it coded cosine 0.95, 0.97 and 0.99 in 7% fewer
            bits than ``"greedy"`` (BENCHMARKS.md, issue 28), encoding
            at about 0.6x greedy's speed. Older smic-fast builds refuse its dictionaries
            (unknown transform quantiser 2) rather than misread them. ``"greedy"`` picks each
            level among the dead-zone one (``rounding``), one less and 0 in coding order;
            ``"trellis"`` picks the same candidates by the least cost over the whole item and
            the item's gain by the same cost. Those two decode alike (an encoder choice), as
            every transform before ``"dependent"`` did.
        steps: residual steps whose levels the context tables are counted on.
        seed: seed of the atom grouping.
    """
    if not isinstance(dictionary, Dictionary):
        raise TypeError(f"dictionary must be a smic_fast.Dictionary, got {type(dictionary).__name__}")
    if dictionary.params.layout != "smic":
        raise ValueError("a transform layer needs a dictionary of the smic layout")
    unit, _ = normalize_embeddings(embeddings, "embeddings", dim=dictionary.dim)
    n, d = unit.shape
    if n < 2:
        raise ValueError(f"learning a transform needs at least 2 training rows, got {n}")
    n_classes = (min(DEFAULT_TRANSFORM_CLASSES, dictionary.n_atoms) if n_classes is None
                 else as_count(n_classes, "n_classes", minimum=1))
    if n_classes > min(dictionary.n_atoms, 4096):
        raise ValueError(f"n_classes must be <= min(n_atoms, 4096) = {min(dictionary.n_atoms, 4096)}, got {n_classes}")
    if d < 2:
        raise ValueError("a transform layer needs embeddings of at least 2 dimensions")
    rank = d - 1 if rank is None else as_count(rank, "rank", minimum=1)
    if rank >= d:
        raise ValueError(f"rank must be < d = {d} (the last slot of a levels row holds the gain), got {rank}")
    if not (isinstance(shrinkage, (int, float)) and math.isfinite(shrinkage) and shrinkage >= 0):
        raise ValueError(f"shrinkage must be a finite number >= 0, got {shrinkage!r}")
    if quantiser not in QUANTISERS:
        raise ValueError(f"quantiser must be one of {', '.join(map(repr, QUANTISERS))}, got {quantiser!r}")
    if rdo is None:
        rdo = DEFAULT_RDO[quantiser]
    if not (isinstance(rdo, (int, float)) and math.isfinite(rdo) and 0 <= rdo <= 16):
        raise ValueError(f"rdo must be a number in [0, 16], got {rdo!r}")
    if not steps or any(not (isinstance(s, (int, float)) and 0 < s <= 1) for s in steps):
        raise ValueError(f"steps must be numbers in (0, 1], got {steps!r}")

    symbols = dictionary.items_symbols(unit)
    decoded = dictionary.reconstruct(symbols)
    residual = aimed_residuals(unit, decoded)
    first = np.where(symbols.counts > 0, symbols.first // 2, -1)
    usage = np.bincount(first[first >= 0], minlength=dictionary.n_atoms)
    atom_class = _atom_classes(dictionary.atoms.astype(np.float64), usage, n_classes, seed)
    n_classes = int(atom_class.max()) + 1 if len(atom_class) else 1
    classes = np.where(first >= 0, atom_class[np.maximum(first, 0)], 0).astype(np.uint32)

    overall = residual.T @ residual / n
    pseudo = shrinkage * d
    mean = np.zeros((n_classes, d), dtype=np.float32)
    basis = np.zeros((n_classes, rank, d), dtype=np.float32)
    scale = np.zeros((n_classes, rank), dtype=np.int16)
    for c in range(n_classes):
        rows = residual[classes == c]
        m = len(rows)
        mu = rows.mean(axis=0) * (m / (m + pseudo)) if m else np.zeros(d)
        centred = rows - mu
        cov = (centred.T @ centred + pseudo * overall) / max(m + pseudo, 1e-12)
        values, vectors = np.linalg.eigh(cov)
        order = np.argsort(values)[::-1][:rank]
        mean[c] = mu
        basis[c] = vectors[:, order].T
        sigma = np.sqrt(np.maximum(values[order], 1e-30))
        scale[c] = np.clip(np.round(4 * np.log2(sigma)), -256, 256).astype(np.int16)

    dependent = quantiser == "dependent"
    n_tables = _core.TRANSFORM_CONTEXTS * (2 if dependent else 1)
    flat = np.zeros((n_tables, _core.TRANSFORM_ESCAPE + 1), dtype=np.uint64)
    flat_gains = np.zeros(_core.TRANSFORM_GAINS, dtype=np.uint64)
    unit32 = np.ascontiguousarray(unit, dtype=np.float32)

    def counted(model: _core.TransformModel) -> tuple[np.ndarray, np.ndarray]:
        counts, gains = np.zeros_like(flat), np.zeros_like(flat_gains)
        for step in steps:
            levels = model.levels(unit32, decoded, classes, float(step))
            step_counts, step_gains = model.count_contexts(levels, classes, float(step))
            counts += step_counts
            gains += step_gains
        return counts, gains

    # Dependent quantisation's levels are always a search under the tables (rdo 0 prices no
    # bits), so its first count already uses the final quantiser, and the tables and the levels
    # they price are counted again until they settle (each round the search finds more non-zero
    # levels worth their price). The others start from plain dead-zone levels, then count once
    # more with the rate-distortion choice the tables allow.
    first_rdo, first_quantiser = (rdo, quantiser) if dependent else (0.0, "greedy")
    counts, gains = counted(_core.TransformModel(atom_class, mean, basis, scale, rounding, bias, flat, flat_gains,
                                                 first_rdo, first_quantiser))
    for _ in range((DEPENDENT_ROUNDS if dependent else 1) if rdo > 0 else 0):
        counts, gains = counted(_core.TransformModel(atom_class, mean, basis, scale, rounding, bias, counts, gains,
                                                     rdo, quantiser))
    model = _core.TransformModel(atom_class, mean, basis, scale, rounding, bias, counts, gains, rdo,
                                 quantiser if rdo > 0 or dependent else "greedy")
    return Dictionary._from_core(dictionary._core.with_transform(model))
