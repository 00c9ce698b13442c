"""The symbols of the item coder: coding parameters, quality presets, and the numpy reference
of the rate-distortion choice (``choose_items``; the C++ core runs it, tests compare the two).
Reconstruction and the paper layout's coding live in the core (smic/coding_dictionary.hpp).

Fidelity is a cosine, so each item's scale is free: an item of k atoms is stored as the
index and sign of its largest-magnitude atom, and for each other atom (sorted by index; the
order carries no information) its index and the quantized ratio of its coefficient to the
largest one, a number in [-1, 1]. The number of atoms per item is chosen by a rate-distortion
criterion: minimise (1 - cosine) + rd_lambda * bits, with the bits of the current models.

The "paper" layout is the SMIC paper's baseline: a fixed number of atoms, each with a
fixed-length index (ceil(log2 K) bits) and a fixed-length coefficient (paper_bits bits).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import _core
from .quantizer import dequantize, quantize
from ..learn.sparse_coding import OmpCoder

__all__ = ["CodingParams", "ItemSymbols", "QUALITY_PRESETS", "QualityPreset", "LEARNING_TARGETS"]

LEARNING_TARGETS = ("rate", "sparsity")


class QualityPreset(NamedTuple):
    """What a ``quality`` name sets together: the coder's sparsity, ratio step and price of a
    bit, the largest dictionary it learns (None: :func:`smic_fast.coding.dictionary.default_n_atoms`
    of N; a smaller K is cheaper per index), and what the dictionary is learned for: ``"rate"``
    (K-SVD coding its training set with the coder's own rate-distortion choice, the codes the
    file will hold) or ``"sparsity"`` (K-SVD with ``n_nonzero`` atoms for every item, as
    earlier releases learned), and the items per chunk of a file it writes (None: the
    collection default, 256; random access decodes at most one chunk to the checkpoint before an
    item, and each chunk costs its offset and the coder's flush, about 16 bytes)."""

    n_nonzero: int
    step: float
    rd_lambda: float
    max_atoms: int | None
    learn: str
    chunk_size: int | None = None


#: quality name -> preset. "low" is the paper's operating point: one atom per item from at
#: most 128 atoms, about 8 bits per item or less (entropy-constrained gain-shape k-means: its
#: rd_lambda makes a rare atom pay for its longer code; 0.02 codes 4% fewer bits than 4e-3 at
#: a mean cosine 0.007 lower on the clustered benchmark), in chunks of 4096 items: at 256 the
#: chunks' framing (16 bytes per chunk) is 0.5 bits of the item's 6-8. "high" learns for
#: sparsity: at its small rd_lambda most items keep most atoms, and learning for the rate gave
#: a slightly higher rate-distortion cost there (BENCHMARKS.md).
QUALITY_PRESETS: dict[str, QualityPreset] = {
    "low": QualityPreset(1, 0.25, 2e-2, 128, "rate", 4096),
    "medium": QualityPreset(4, 0.125, 1.5e-3, None, "rate"),
    "high": QualityPreset(8, 0.0625, 4e-4, None, "sparsity"),
}


@dataclass(frozen=True)
class CodingParams:
    """Everything besides the atoms and tables that the decoder must know."""

    s_max: int = 4
    step: float = 0.125
    rounding: float = 0.5
    rd_lambda: float = 1.5e-3
    layout: str = "smic"  # or "paper"
    paper_bits: int = 8
    paper_range: float = 1.0  # paper layout: coefficients quantized uniformly in [-range, range]

    def __post_init__(self) -> None:
        if not isinstance(self.s_max, int) or isinstance(self.s_max, bool) or self.s_max < 1:
            raise ValueError(f"n_nonzero must be an integer >= 1, got {self.s_max!r}")
        if not (math.isfinite(self.step) and 0 < self.step <= 1):
            raise ValueError(f"step must be in (0, 1], got {self.step}")
        if not 0 <= self.rounding < 1:
            raise ValueError(f"rounding must be in [0, 1), got {self.rounding}")
        if not (math.isfinite(self.rd_lambda) and self.rd_lambda >= 0):
            raise ValueError(f"rd_lambda must be a finite number >= 0, got {self.rd_lambda}")
        if self.layout not in ("smic", "paper"):
            raise ValueError(f"layout must be 'smic' or 'paper', got {self.layout!r}")
        if not 1 <= self.paper_bits <= 16:
            raise ValueError(f"paper_bits must be in [1, 16], got {self.paper_bits}")
        if not (math.isfinite(self.paper_range) and self.paper_range > 0):
            raise ValueError(f"paper_range must be > 0, got {self.paper_range}")

    @property
    def max_level(self) -> int:
        """Largest |level| of a coefficient ratio in [-1, 1]."""
        return int(math.floor(1.0 / self.step + self.rounding))

    @property
    def level_alphabet(self) -> int:
        if self.layout == "paper":
            return 1 << self.paper_bits
        return 2 * self.max_level + 1

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: dict) -> CodingParams:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass
class ItemSymbols:
    """Symbols of n items: counts (n,), first (n,), rest_index and rest_level (n, s_max - 1).

    For the paper layout, first is unused and rest_* hold all s_max atoms (n, s_max)."""

    counts: np.ndarray
    first: np.ndarray
    rest_index: np.ndarray
    rest_level: np.ndarray

    def __len__(self) -> int:
        return len(self.counts)

    def take(self, rows: np.ndarray) -> ItemSymbols:
        return ItemSymbols(self.counts[rows], self.first[rows], self.rest_index[rows], self.rest_level[rows])

    @staticmethod
    def concatenate(parts: list[ItemSymbols]) -> ItemSymbols:
        return ItemSymbols(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                             ("counts", "first", "rest_index", "rest_level")))


# --------------------------------------------------------------------------- smic layout


def _candidate(indices: np.ndarray, coefs: np.ndarray, alpha0: np.ndarray, gram_sub: np.ndarray,
               k: int, params: CodingParams):
    """Quantized k-atom candidates for every item: symbols and reconstruction cosine."""
    n = len(indices)
    valid = (indices[:, :k] >= 0).all(axis=1)
    idx = np.where(indices[:, :k] >= 0, indices[:, :k], 0)
    g = gram_sub[:, :k, :k] + np.where(valid, 0.0, 1.0)[:, None, None] * np.eye(k)
    c = np.linalg.solve(g, alpha0[:, :k, None])[..., 0]  # least squares on the first k atoms
    lead = np.argmax(np.abs(c), axis=1)
    rows = np.arange(n)
    lead_coef = c[rows, lead]
    lead_sign = (lead_coef < 0).astype(np.int32)
    safe = np.where(np.abs(lead_coef) > 0, np.abs(lead_coef), 1.0)
    ratios = (c / safe[:, None]).astype(np.float32)
    levels = quantize(ratios, params.step, params.rounding)
    levels[rows, lead] = 0
    weights = dequantize(levels, params.step).astype(np.float64)
    weights[rows, lead] = np.where(lead_sign == 1, -1.0, 1.0)
    kept = weights != 0
    # cosine from the Gram block: <x_hat, e> = w . alpha0, ||x_hat||^2 = w^T G w (||e|| = 1)
    dot = np.einsum("nk,nk->n", weights, alpha0[:, :k])
    norm = np.sqrt(np.maximum(np.einsum("nk,nkl,nl->n", weights, g, weights), 1e-30))
    cosine = np.where(valid, dot / norm, -np.inf)
    # symbols: rest atoms (non-lead, level != 0) sorted by atom index
    rest_mask = kept.copy()
    rest_mask[rows, lead] = False
    key = np.where(rest_mask, idx, np.iinfo(np.int32).max)
    order = np.argsort(key, axis=1, kind="stable")
    rest_index = np.take_along_axis(np.where(rest_mask, idx, -1), order, axis=1)
    rest_level = np.take_along_axis(np.where(rest_mask, levels + params.max_level, -1), order, axis=1)
    counts = 1 + rest_mask.sum(axis=1)
    first = 2 * idx[rows, lead] + lead_sign
    pad = params.s_max - 1 - rest_index.shape[1]
    rest_index = np.pad(rest_index[:, : params.s_max - 1], ((0, 0), (0, max(pad, 0))), constant_values=-1)
    rest_level = np.pad(rest_level[:, : params.s_max - 1], ((0, 0), (0, max(pad, 0))), constant_values=-1)
    symbols = ItemSymbols(counts.astype(np.int32), first.astype(np.int32),
                          rest_index.astype(np.int32), rest_level.astype(np.int32))
    return symbols, cosine


def _uniform_bits(symbols: ItemSymbols, n_atoms: int, params: CodingParams) -> np.ndarray:
    """Code lengths under flat models, for the first rate-distortion pass."""
    rest = symbols.counts - 1
    return (math.log2(params.s_max + 1) + math.log2(2 * n_atoms)
            + rest * (math.log2(n_atoms) + math.log2(params.level_alphabet))).astype(np.float64)


def choose_items(embeddings: np.ndarray, atoms: np.ndarray, coder: OmpCoder, gram: np.ndarray,
                 params: CodingParams, models: _core.ItemModels | None,
                 n_threads: int | None = None) -> tuple[ItemSymbols, np.ndarray]:
    """Pick each item's atoms and levels (smic layout). Returns the symbols and the cosine of
    each item's reconstruction. `models` prices the rate; None uses flat models."""
    indices, coefs = coder.encode(embeddings, params.s_max, n_threads=n_threads)
    safe = np.where(indices >= 0, indices, 0)
    gram_sub = gram[safe[:, :, None], safe[:, None, :]].astype(np.float64)
    alpha0 = np.einsum("nkl,nl->nk", gram_sub, coefs.astype(np.float64))  # D_I e = G_II c
    best_cost = np.full(len(embeddings), np.inf)
    chosen: ItemSymbols | None = None
    chosen_cos = np.zeros(len(embeddings))
    for k in range(1, params.s_max + 1):
        symbols, cosine = _candidate(indices, coefs, alpha0, gram_sub, k, params)
        bits = (models.item_bits(symbols.counts, symbols.first, symbols.rest_index, symbols.rest_level)
                if models is not None else _uniform_bits(symbols, len(atoms), params))
        cost = (1.0 - cosine) + params.rd_lambda * bits
        better = cost < best_cost
        if chosen is None:
            chosen, chosen_cos = symbols, cosine.copy()
        else:
            for field in ("counts", "first", "rest_index", "rest_level"):
                getattr(chosen, field)[better] = getattr(symbols, field)[better]
            chosen_cos[better] = cosine[better]
        best_cost = np.where(better, cost, best_cost)
    if params.s_max == 1 and params.rd_lambda > 0 and models is not None:
        _price_every_atom(embeddings, atoms, gram, params, models, indices[:, 0] >= 0, chosen, chosen_cos)
    # Items with no usable atom (zero vectors) keep a valid single-atom code of atom 0.
    return chosen, np.where(np.isfinite(chosen_cos), chosen_cos, 0.0)


def _price_every_atom(embeddings: np.ndarray, atoms: np.ndarray, gram: np.ndarray, params: CodingParams,
                      models: _core.ItemModels, found: np.ndarray, chosen: ItemSymbols,
                      chosen_cos: np.ndarray) -> None:
    """One atom per item with fitted tables: each item found by OMP takes the atom of lowest
    (1 - cosine) + rd_lambda * bits among all K (entropy-constrained gain-shape VQ), in place."""
    k = len(atoms)
    first = np.arange(2 * k, dtype=np.int32)
    bits = models.item_bits(np.ones(2 * k, np.int32), first, np.zeros((2 * k, 0), np.int32),
                            np.zeros((2 * k, 0), np.int32))  # code length of each first symbol
    corr = embeddings.astype(np.float32) @ atoms.astype(np.float32).T
    negative = corr < 0
    cosine = np.abs(corr.astype(np.float64)) / np.sqrt(np.maximum(np.diag(gram).astype(np.float64), 1e-30))
    cost = (1.0 - cosine) + params.rd_lambda * bits[2 * np.arange(k) + negative]
    best = np.argmin(cost, axis=1)  # ties to the smaller atom
    rows = np.flatnonzero(found)
    chosen.first[rows] = 2 * best[rows] + negative[rows, best[rows]]
    chosen.counts[rows] = 1
    chosen_cos[rows] = cosine[rows, best[rows]]
