"""The sweep behind ``smic eval``: code one collection at many settings of smic-fast and of the
baselines, and measure every point from the bytes it writes.

Methods (the ``method`` of a :class:`Point`):

* ``smic`` — our default mode with a dictionary of its own: rate-distortion choice of each
  item's atoms, entropy-coded indices and coefficient ratios; its highest-fidelity setting is
  also coded with the residual refinement layer at several steps (``residual_step``,
  smic_fast.store.collection, residual_step) for the fidelities atoms alone do not reach. The collection is written with
  :func:`smic_fast.compress` and the dictionary saved as a .smicd; the total rate is that of
  the same file with the dictionary embedded (a DICT section in place of the 32-byte DREF:
  ``.smic bytes - 32 + .smicd bytes``). The items are coded as with a given dictionary (one
  more rate-distortion pass than ``compress`` without one makes; the two differ by well under
  1% of the item bytes, tested). With ``learn="rate"`` (the default, as compress's presets)
  each (step, rd_lambda) setting learns its own atoms for the codes it writes
  (:func:`smic_fast.learn_for_rate`); with ``learn="sparsity"`` one K-SVD with ``n_nonzero``
  atoms per item serves every setting of that many atoms (the sweep of earlier releases; a
  16- or 32-atom setting learns its own once per K).
* ``smic-shared`` — the same coding with a shared dictionary: only the .smic file is paid.
  Without ``train`` embeddings its dictionary is the one learned on the collection itself (the
  best case of a dictionary trained on similar photos); with ``train`` it is learned there.
* ``paper`` — the SMIC paper's fixed-length layout (``layout="paper"``) on atoms learned with
  ``n_nonzero`` atoms per item (the paper's own learning).
* ``smic-1`` — the low end: one atom per item over small dictionaries learned for one atom
  (K-SVD with one atom is gain-shape k-means), entropy-coded (``smic_fast.compress`` with
  ``n_nonzero=1``): a few bits per item, the paper's operating point.
* ``scalar`` — no dictionary: components scalar-quantised and range-coded (baselines.py).
* ``pq`` — FAISS product quantisation at several code sizes (baselines.py).
* ``kmeans`` — FAISS spherical k-means, a fixed-length centroid index (baselines.py).
* ``rq`` — FAISS residual quantisation: stages of 256 centroids over the whole vector, a
  fixed-length code per stage (baselines.py). Not in the default methods (its training takes
  minutes at 16 stages); the strongest fixed-length peer from the middle of the curve up.
* ``opq``, ``lsq``, ``rabitq`` — FAISS optimised product quantisation, local search
  quantisation and RaBitQ, fixed-length codes (baselines.py); on request only, as ``rq``.

With ``holdout`` (a fraction), the embeddings are split by a seeded permutation: every method
learns its dictionary, tables or codebooks on the training part, which is "the collection" of
the points above, and codes the held-out part with the same model too (``Sweep.held_out``:
marginal bits of items the codec never saw, the headline of ``smic eval --holdout``; smic's
held-out points are ``smic-shared``: its dictionary and tables are a shared one for them). The
Gaussian and Gaussian-mixture rate–distortion bounds of the training part (bounds.py) are in
``meta["bounds"]``.

Per point: total and marginal bits per item (and per pixel when pixel counts are known), mean
and 5th-percentile cosine similarity to the original embeddings, recall@10 of nearest-neighbour
search with the reconstructions, encode and decode wall time (dictionary or codebook training
is ``fit_s``, shared by the points of one K).
"""
from __future__ import annotations

import math
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..store.collection import compress
from ..store.opener import open as open_collection
from ..coding.dictionary import Dictionary, default_n_atoms, normalize_embeddings
from ..coding.codec import LEARNING_TARGETS, QUALITY_PRESETS, CodingParams
from ..learn.ksvd import learn_dictionary, learn_for_rate
from ..coding.transform import learn_transform
from . import baselines
from .retrieval import query_rows, recall_at_k, true_neighbours

__all__ = ["Point", "Sweep", "SweepConfig", "frontier", "peer_points_beaten", "rate_at_fidelity", "run_sweep", "METHODS",
           "DEFAULT_METHODS"]

METHODS = ("smic", "smic-shared", "smic-1", "paper", "scalar", "pq", "kmeans", "rq", "opq", "lsq", "rabitq")
#: what a sweep runs unless told otherwise: every method but the FAISS peers added on request
#: (``rq``, ``opq`` and ``lsq`` train for minutes; ``rabitq`` is weak, one bit per dimension)
DEFAULT_METHODS = METHODS[:7]
_DREF_PAYLOAD = 32  # bytes of a shared dictionary's hash in a .smic file


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep. ``n_atoms``: dictionary sizes K, None entries meaning the default K for
    the collection size (:func:`smic_fast.coding.dictionary.default_n_atoms`); by default
    :func:`default_sizes`: that K, half of it and twice it where that leaves at least 8 items
    per atom. ``smic`` settings are (step, rd_lambda) pairs coded with at most
    ``n_nonzero`` atoms, or (step, rd_lambda, atoms) triples coded with at most that many (the
    default has 12- to 32-atom settings: real embeddings, less sparse than the clustered
    benchmark, need them for cosines of about 0.87-0.94; coarse ratio steps, 0.2-0.35, in the
    middle of the curve, where on real sentence embeddings they reach a cosine for fewer bits
    than the 1/8 and 1/16 of earlier releases), and
    ``residual`` the refinement steps added to the last of them (by default the finest 8-atom
    setting: a refinement costs about the same over 8, 16 or 32 atoms at cosine 0.95 on real
    embeddings, and 8 atoms learn fastest), and ``transform`` the steps of the transform-coded
    refinement (format version 4, :func:`smic_fast.coding.transform.learn_transform`, learned on the
    collection or the training part with the atoms) of the setting ``transform_base`` (when it
    is one of ``smic``; otherwise, or None, of the last); ``paper`` settings are (atoms, bits per
    coefficient); ``pq`` and ``rq`` settings are (M, nbits) (``rq``: M stages, each encoded with
    a beam of ``rq_beam``, codebooks learned on ``rq_train`` items, None: all; ``rq`` runs only
    when ``methods`` names it); ``one_atom`` the dictionary sizes of the
    one-atom codes (``smic-1``), each learned and coded at every ``one_atom_lambda`` (0: gain-
    shape k-means, the most correlated atom; above 0: entropy-constrained, an atom chosen by
    (1 - cosine) + rd_lambda * bits, atoms learned for those codes), and ``kmeans`` the
    centroid counts of k-means (sizes above N are skipped). ``learn``: what smic's atoms are learned for, "rate" (per setting, the default) or
    "sparsity" (once per K and number of atoms, with that many atoms per item).
    ``one_atom_chunk``: items per chunk of the one-atom files, as ``quality="low"`` writes them
    (16 bytes of framing per chunk are half a bit per item at 256)."""

    n_atoms: tuple[int | None, ...] | None = None
    n_nonzero: int = 8
    # 8 atoms per item from the low end to the middle, with coarse ratio steps (0.25-0.35); 12
    # to 32 for the cosines of 0.87-0.94 that real (non-sparse) embeddings reach only with more
    # atoms; fine steps for the clustered benchmark's 0.97-0.98; the last setting, refined by
    # `residual`, for 0.95 and above
    smic: tuple[tuple[float, float] | tuple[float, float, int], ...] = (
        (0.25, 4e-2), (0.25, 1.5e-2), (0.25, 6e-3), (0.25, 3e-3), (0.25, 1.5e-3), (0.35, 7e-4),
        (0.35, 4e-4, 12), (0.25, 2.5e-4, 16), (0.25, 1.2e-4, 24), (0.2, 6e-5, 32),
        (0.125, 1e-3), (0.0625, 1e-4), (0.0625, 0.0))
    residual: tuple[float, ...] = (0.1, 0.06, 0.04, 0.025, 0.015, 0.008, 0.004)
    # the transform-coded refinement (per-class KLT, one step with dependent quantisation,
    # context-coded levels): on held-out MiniLM items 44% fewer bits than `residual` at cosine
    # 0.95 (0.021, 0.015 and 0.01 between: on the clustered set's isotropic residual the bits
    # grow 2.4x from one step of the coarser grid to the next above cosine 0.98, and 0.03 for
    # the same reason at 0.98 with dependent quantisation; 0.006 and 0.004 for the top end,
    # where `residual`'s finest point otherwise made the curve; 0.2 and the steps between 0.14
    # and 0.035 because linear reading between points overstates a convex curve's bits)
    transform: tuple[float, ...] = (0.2, 0.14, 0.1, 0.085, 0.07, 0.06, 0.05, 0.042, 0.035, 0.03, 0.025, 0.021,
                                    0.018, 0.015, 0.012, 0.01, 0.008, 0.006, 0.004)
    # the base the transform refines: 8 atoms at ratio step 1/8 and rd_lambda 1e-3 coded held-out
    # MiniLM items at 0.95 in 292 bits with it, where the finest setting (1/16, 0) needed 306
    # (bench_transform.py --base, at K = 512; BENCHMARKS.md)
    transform_base: tuple[float, float] | tuple[float, float, int] | None = (0.125, 1e-3)
    paper: tuple[tuple[int, int], ...] = ((1, 4), (2, 4), (2, 6), (3, 6), (4, 6), (4, 8), (6, 8), (8, 8), (16, 8),
                                         (32, 8))
    scalar: tuple[float, ...] = (0.2, 0.14, 0.1, 0.07, 0.05, 0.035, 0.025, 0.015, 0.008, 0.004)
    pq: tuple[tuple[int, int], ...] = ((1, 8), (2, 8), (4, 8), (8, 8), (16, 8), (32, 8), (64, 8), (128, 8))
    # up to 64 stages (issue 28): on held-out MiniLM 48 stages reach 0.9507 and 64 0.9640; one
    # thread trains 16 / 32 / 64 stages on 12,261 items in about 2 / 7 / 21 minutes
    rq: tuple[tuple[int, int], ...] = ((1, 8), (2, 8), (4, 8), (8, 8), (12, 8), (16, 8), (24, 8), (32, 8),
                                       (48, 8), (64, 8))
    rq_beam: int = 8
    # opq: (M, nbits) as pq (M = 64 trains for about 4 minutes on 12,000 items of d = 384);
    # lsq: (M, nbits) additive codebooks, those that train in under a minute there (16
    # codebooks take about 3 minutes: docs/evaluation.md);
    # rabitq: bits per dimension, 1 only (baselines.rabitq_codec)
    opq: tuple[tuple[int, int], ...] = ((4, 8), (8, 8), (16, 8), (32, 8), (64, 8))
    lsq: tuple[tuple[int, int], ...] = ((2, 8), (4, 8), (8, 8))
    rabitq: tuple[int, ...] = (1,)
    # RQ learns its codebooks on the whole collection, as smic learns its atoms (a sample as
    # small as PQ's pq_train read far below its best on MiniLM)
    rq_train: int | None = None
    # every power of two from 4 up to k-means' largest codebook: one-atom codes fill the low
    # end from about 2 bits (issue 28: the curve starts where the SMIC paper's operating point
    # is, about 2.6 bits) and, at large K, the middle of the marginal-rate curve (an
    # entropy-coded index)
    one_atom: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
    # 0.05 saves 8-12% of the clustered benchmark's one-atom bits at equal cosine (0.1 another
    # 1-2%, but collapses real sentence embeddings onto a few popular atoms: BENCHMARKS.md);
    # 0.02 beats k-means with as many centroids on held-out MiniLM at 32 and 64 atoms (fewer
    # bits at a higher cosine), where 0 and 0.05 did not
    one_atom_lambda: tuple[float, ...] = (0.0, 0.02, 0.05)
    one_atom_chunk: int = QUALITY_PRESETS["low"].chunk_size or 256
    # the same sizes: a sparser k-means grid would read its curve between points further apart
    kmeans: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
    methods: tuple[str, ...] = DEFAULT_METHODS
    precision: str = "float16"
    n_iter: int = 10
    queries: int = 256
    k: int = 10
    pq_train: int = 4096
    seed: int = 0
    learn: str = "rate"

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; choose among {list(METHODS)}")
        if self.learn not in LEARNING_TARGETS:
            raise ValueError(f"learn must be one of {LEARNING_TARGETS}, got {self.learn!r}")
        for setting in self.smic:
            if len(setting) not in (2, 3) or (len(setting) == 3 and (
                    not isinstance(setting[2], int) or isinstance(setting[2], bool) or setting[2] < 1)):
                raise ValueError(f"smic settings are (step, rd_lambda) or (step, rd_lambda, n_nonzero) with "
                                 f"n_nonzero an integer >= 1, got {setting!r}")
        if not isinstance(self.rq_beam, int) or isinstance(self.rq_beam, bool) or self.rq_beam < 1:
            raise ValueError(f"rq_beam must be an integer >= 1, got {self.rq_beam!r}")
        if self.rq_train is not None and (not isinstance(self.rq_train, int) or isinstance(self.rq_train, bool)
                                          or self.rq_train < 2):
            raise ValueError(f"rq_train must be None or an integer >= 2, got {self.rq_train!r}")
        for name in ("opq", "lsq"):
            if any(len(pair) != 2 or min(pair) < 1 for pair in getattr(self, name)):
                raise ValueError(f"{name} settings are (M, nbits) pairs of integers >= 1, got {getattr(self, name)!r}")
        if any(b != 1 for b in self.rabitq):
            raise ValueError(f"rabitq settings are bits per dimension, 1 only (FAISS decodes multi-bit codes from "
                             f"their sign bits), got {self.rabitq!r}")
        if any(not (math.isfinite(v) and v >= 0) for v in self.one_atom_lambda) or not self.one_atom_lambda:
            raise ValueError(f"one_atom_lambda must be finite numbers >= 0, got {self.one_atom_lambda!r}")

    @classmethod
    def quick(cls, **overrides: Any) -> SweepConfig:
        """A few points per method, for tests and a first look (seconds on small collections)."""
        base = cls(n_atoms=(None,), smic=((0.25, 8e-3), (0.125, 1.5e-3), (0.0625, 0.0)), residual=(0.03,),
                   transform=(0.03,),
                   paper=((1, 4), (2, 6), (4, 8)), scalar=(0.2, 0.1, 0.05), pq=((1, 8), (4, 8), (16, 8)),
                   rq=((1, 8), (4, 8)), rq_beam=4, opq=((4, 8), (16, 8)), lsq=((2, 8), (4, 8)), rabitq=(1,),
                   one_atom=(16, 64), one_atom_lambda=(0.0, 0.05), kmeans=(16, 64),
                   n_iter=4, queries=64, pq_train=2048)
        return replace(base, **overrides)


@dataclass
class Point:
    """One codec setting measured on the collection (rates in bits, times in seconds)."""

    method: str
    settings: dict[str, Any]
    items: int
    dim: int
    bits_per_item: float  # total: everything a reader needs, the dictionary or codebook included
    marginal_bits_per_item: float  # the items' own bytes only
    cosine_mean: float
    cosine_p5: float
    recall_at_10: float
    encode_s: float
    decode_s: float
    fit_s: float
    total_bytes: int
    item_bytes: int
    bits_per_pixel: float | None = None
    marginal_bits_per_pixel: float | None = None
    expected_bits_per_item: float | None = None  # paper: the layout's formula, no overhead

    @property
    def label(self) -> str:
        return f"{self.method} " + " ".join(f"{k}={v}" for k, v in self.settings.items())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sweep:
    """All points of one evaluation, the collection's description and a per-item rate sample."""

    points: list[Point]
    meta: dict[str, Any]
    item_bits: dict[str, list[float]] = field(default_factory=dict)  # label -> bits of each item
    #: with ``holdout``: the same models coding the held-out items (rates and fidelity of those only)
    held_out: list[Point] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {"meta": self.meta, "points": [p.to_dict() for p in self.points],
                "comparison": comparison_table(self.points)}
        if self.held_out:
            data["held_out_points"] = [p.to_dict() for p in self.held_out]
            data["held_out_comparison"] = comparison_table(self.held_out, rate="marginal_bits_per_item")
            data["held_out_peer_points"] = peer_points_beaten(self.held_out)
        return data


#: Fewest items per atom for the sweep's largest default dictionary (twice the default K):
#: with fewer, more of its extra fidelity is its atoms fitting the items themselves, which new
#: items do not see (BENCHMARKS.md, held-out measurement).
ITEMS_PER_ATOM_OF_LARGEST_K = 8


def default_sizes(n: int) -> list[int]:
    """Dictionary sizes the sweep learns on n items when none are given: the default K
    (:func:`smic_fast.coding.dictionary.default_n_atoms`), half of it (cheaper indices at low rates)
    and twice it where that leaves at least ``ITEMS_PER_ATOM_OF_LARGEST_K`` items per atom (on
    15,326 real sentence embeddings, 1024 atoms reach a mean cosine 0.02-0.03 higher than 512
    for the same bits; learned on 80% of them, the sweep with twice the default K needs 21-46%
    fewer marginal bits on the held-out 20% at cosine 0.8-0.9 than without it)."""
    k = default_n_atoms(n)
    sizes = {k, min(n, max(8, k // 2))}
    if 2 * k * ITEMS_PER_ATOM_OF_LARGEST_K <= n:
        sizes.add(2 * k)
    return sorted(sizes)


def _fidelity(unit: np.ndarray, reconstruction: np.ndarray) -> tuple[float, float]:
    cosine = np.sum(unit.astype(np.float64) * reconstruction.astype(np.float64), axis=1)
    return float(np.mean(cosine)), float(np.percentile(cosine, 5))


class _Measure:
    """Turns a reconstruction and byte counts into a Point (fidelity, recall, rates)."""

    def __init__(self, unit: np.ndarray, pixels: np.ndarray | None, config: SweepConfig) -> None:
        self.unit = unit
        self.inverse_pixels = None if pixels is None else float(np.mean(1.0 / pixels.astype(np.float64)))
        self.rows = query_rows(len(unit), config.queries, config.seed)
        self.k = min(config.k, len(unit) - 1)  # recall@k needs k other items
        self.truth = true_neighbours(unit, self.rows, self.k)

    def point(self, method: str, settings: dict, reconstruction: np.ndarray, total_bytes: int,
              item_bytes: int, encode_s: float, decode_s: float, fit_s: float, **extra) -> Point:
        n, d = self.unit.shape
        mean, p5 = _fidelity(self.unit, reconstruction)
        recall = recall_at_k(self.unit, reconstruction, self.rows, self.truth)
        total, marginal = 8.0 * total_bytes / n, 8.0 * item_bytes / n
        bpp = {} if self.inverse_pixels is None else {
            "bits_per_pixel": total * self.inverse_pixels, "marginal_bits_per_pixel": marginal * self.inverse_pixels}
        return Point(method, settings, n, d, total, marginal, mean, p5, recall, encode_s, decode_s, fit_s,
                     int(total_bytes), int(item_bytes), **bpp, **extra)


def code_collection(unit: np.ndarray, atoms: np.ndarray, folder: Path, config: SweepConfig,
                     pixels: list[int] | None, n_threads: int | None, residual_step: float | None = None,
                     reuse: dict[str, Any] | None = None, chunk_size: int | None = None,
                     held_out: tuple[np.ndarray, list[int] | None] | None = None, transform: bool = False,
                     **coding) -> dict[str, Any]:
    """Fit tables for `atoms` (unless `reuse`, the result of an earlier call with the same
    coding, is given: refinement points reuse its dictionary, and count its table time again
    in encode_s), write the collection and its dictionary, decode it back. `held_out`: (rows,
    pixels) coded too with the same dictionary and tables, as a file that refers to it
    (result["held_out"]). `transform`: refine with the transform-coded layer, learned on
    `unit` once per reused dictionary (its time counts as table time)."""
    smic_path, dict_path = folder / "eval.smic", folder / "eval.smicd"
    start = time.perf_counter()
    if reuse is None:
        dictionary = Dictionary.from_atoms(atoms, unit, n_nonzero=coding.pop("n_nonzero", config.n_nonzero),
                                           precision=config.precision, n_threads=n_threads, **coding)
        tables_s = time.perf_counter() - start
    else:
        dictionary, tables_s = reuse["dictionary"], reuse["tables_s"]
        start -= tables_s
    if transform:
        cache = reuse if reuse is not None else {}
        if "transformed" in cache:  # learned for an earlier step: count its time again
            start -= cache["transform_s"]
        else:
            learn_start = time.perf_counter()
            cache["transformed"] = learn_transform(dictionary, unit)
            cache["transform_s"] = time.perf_counter() - learn_start
        dictionary = cache["transformed"]
    write = {"dictionary": dictionary, "n_threads": n_threads, "residual_step": residual_step,
             "chunk_size": chunk_size}  # the held-out items are written alike
    info = compress(unit, smic_path, pixels=pixels, **write)
    encode_s = time.perf_counter() - start
    dictionary.save(dict_path)
    start = time.perf_counter()
    reconstruction = open_collection(smic_path, dictionary=dictionary).embeddings()
    decode_s = time.perf_counter() - start
    result = {"dictionary": dictionary, "tables_s": tables_s, "reconstruction": reconstruction,
              "encode_s": encode_s, "decode_s": decode_s, "smic_bytes": info["file_bytes"],
              "dict_bytes": dict_path.stat().st_size,
              "item_bytes": info["section_bytes"]["items"] + info["section_bytes"]["residual"]}
    if held_out is not None:
        held_path = folder / "held_out.smic"
        start = time.perf_counter()
        held = compress(held_out[0], held_path, pixels=held_out[1], **write)
        held_encode_s = time.perf_counter() - start
        start = time.perf_counter()
        held_reconstruction = open_collection(held_path, dictionary=dictionary).embeddings()
        result["held_out"] = {
            "reconstruction": held_reconstruction, "encode_s": held_encode_s,
            "decode_s": time.perf_counter() - start, "smic_bytes": held["file_bytes"],
            "item_bytes": held["section_bytes"]["items"] + held["section_bytes"]["residual"]}
    return result


def learn_atoms(unit: np.ndarray, k: int, n_nonzero: int, config: SweepConfig, n_threads: int | None) -> np.ndarray:
    """K-SVD atoms learned exactly as :func:`smic_fast.compress` learns them (same input
    normalisation, same seed), so a point's own-dictionary file is the one compress writes."""
    again, _ = normalize_embeddings(unit)
    return learn_dictionary(again, k, n_nonzero, n_iter=config.n_iter, seed=config.seed, n_threads=n_threads)


def learn_atoms_for_rate(unit: np.ndarray, k: int, n_nonzero: int, step: float, rd_lambda: float,
                config: SweepConfig, n_threads: int | None) -> np.ndarray:
    """Atoms learned for the rate of one setting, as :func:`smic_fast.compress` learns them
    with ``learn="rate"`` (same input normalisation, seed and precision)."""
    again, _ = normalize_embeddings(unit)
    params = CodingParams(s_max=n_nonzero, step=step, rd_lambda=rd_lambda)
    return learn_for_rate(again, k, params, precision=config.precision, n_iter=config.n_iter,
                          seed=config.seed, n_threads=n_threads)


def _item_bits(dictionary: Dictionary, unit: np.ndarray) -> list[float]:
    """Ideal code length of each item under the dictionary's stored integer tables (a chunk's
    coded size is their sum plus at most 64 bits of flush)."""
    s = dictionary.items_symbols(unit)
    bits = dictionary._models.item_bits(s.counts, s.first, s.rest_index, s.rest_level)
    return [round(float(b), 3) for b in bits]


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="smic eval", unit="point", disable=not enabled, file=None)


def holdout_split(n: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows) of n items: a seeded permutation, its first
    round(fraction * n) rows held out (at least 2, and at least 2 left to learn on); each
    part in increasing row order."""
    if not (isinstance(fraction, (int, float)) and math.isfinite(fraction) and 0 < fraction < 1):
        raise ValueError(f"holdout must be a fraction in (0, 1), got {fraction!r}")
    n_test = int(round(fraction * n))
    if n_test < 2 or n - n_test < 2:
        raise ValueError(f"holdout {fraction:g} of {n} items leaves {n_test} held out and {n - n_test} to learn "
                         "on; each part needs at least 2")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


#: mean cosines at which the report draws the bounds (and the comparison tables' levels)
BOUND_COSINES = tuple(sorted({*np.round(np.linspace(0.3, 0.99, 70), 3).tolist(), 0.7, 0.8, 0.9, 0.95, 0.97,
                              0.99, 0.995}))


def run_sweep(
    E: np.ndarray, config: SweepConfig | None = None, *, pixels: Sequence[int] | None = None,
    train: np.ndarray | None = None, holdout: float | None = None, workdir: str | os.PathLike | None = None,
    progress: bool = True, n_threads: int | None = None,
) -> Sweep:
    """Measure every method and setting of `config` on the (N, d) embeddings `E`.

    Args:
        E: the collection's embeddings (rows normalised here; fidelity is a cosine).
        config: what to sweep (default :class:`SweepConfig`; :meth:`SweepConfig.quick` for tests).
        pixels: each item's pixel count, for bits per pixel.
        train: embeddings to learn the shared dictionary on (default: the collection itself).
        holdout: a fraction of `E` held out (:func:`holdout_split` with ``config.seed``): the
            rest is the collection every method learns on, and the held-out items are coded
            with the same models (``Sweep.held_out``); not with `train`.
        workdir: where the coded files are written (default: a temporary folder, removed).
        progress: a tqdm progress bar on stderr.
    """
    config = config or SweepConfig()
    unit, _ = normalize_embeddings(E)
    n, d = unit.shape
    if n < 2:
        raise ValueError("an evaluation needs at least 2 items")
    pixel_array = None
    if pixels is not None:
        pixel_array = np.asarray(pixels)
        if pixel_array.shape != (n,) or pixel_array.dtype.kind not in "iu" or (pixel_array <= 0).any():
            raise ValueError(f"pixels must be {n} positive integers (each image's pixel count)")
    held: np.ndarray | None = None  # the held-out rows, coded with every model learned on `unit`
    held_pixels: np.ndarray | None = None
    if holdout is not None:
        if train is not None:
            raise ValueError("holdout and train are exclusive: with holdout every method learns on the rest of E")
        train_rows, test_rows = holdout_split(n, holdout, config.seed)
        unit, held = unit[train_rows], unit[test_rows]
        if pixel_array is not None:
            pixel_array, held_pixels = pixel_array[train_rows], pixel_array[test_rows]
        n = len(unit)
    pixel_list = None if pixel_array is None else [int(p) for p in pixel_array]
    train_unit = None if train is None else normalize_embeddings(train, "train", dim=d)[0]
    measure = _Measure(unit, pixel_array, config)
    held_measure = None if held is None else _Measure(held, held_pixels, config)
    held_for_smic = None if held is None else (held, None if held_pixels is None else [int(p) for p in held_pixels])
    held_points: list[Point] = []

    def add_held(method: str, settings: dict, coded: Any, **extra) -> None:
        """The held-out twin of the point just measured: a baseline's Coded.held_out, or the
        held_out of a code_collection result (the file that refers to the dictionary)."""
        if held_measure is None or coded is None:
            return
        if isinstance(coded, dict):
            held_points.append(held_measure.point(method, settings, coded["reconstruction"], coded["smic_bytes"],
                                                  coded["item_bytes"], coded["encode_s"], coded["decode_s"],
                                                  0.0, **extra))
        else:  # the codebook or table is shared: only the codes are paid
            held_points.append(held_measure.point(method, settings, coded.reconstruction, coded.item_bytes,
                                                  coded.item_bytes, coded.encode_s, coded.decode_s, coded.fit_s))
    ks = sorted({min(default_n_atoms(n) if k is None else int(k), n) for k in config.n_atoms}
                if config.n_atoms is not None else default_sizes(n))
    methods = config.methods
    # (step, rd_lambda, most atoms, refinement step or None, transform-coded); the refinements
    # are of the last setting
    smic_settings: list[tuple[float, float, int, float | None, bool]] = [
        (float(step), float(rd_lambda), int(rest[0]) if rest else config.n_nonzero, None, False)
        for step, rd_lambda, *rest in config.smic]
    if config.smic:
        smic_settings += [(*smic_settings[-1][:3], residual_step, False) for residual_step in config.residual]
        base = smic_settings[-1][:3]
        if config.transform_base is not None:
            step, rd_lambda, *rest = config.transform_base
            wanted = (float(step), float(rd_lambda), int(rest[0]) if rest else config.n_nonzero)
            base = next((b[:3] for b in smic_settings if b[:3] == wanted), base)
        smic_settings += [(*base, float(step), True) for step in config.transform]
    count = (len(ks) * (len(smic_settings) * (("smic" in methods) + ("smic-shared" in methods))
                        + len(config.paper) * ("paper" in methods))
             + len(config.scalar) * ("scalar" in methods) + len(config.pq) * ("pq" in methods)
             + len(config.one_atom) * len(config.one_atom_lambda) * ("smic-1" in methods)
             + len(config.kmeans) * ("kmeans" in methods) + len(config.rq) * ("rq" in methods)
             + len(config.opq) * ("opq" in methods) + len(config.lsq) * ("lsq" in methods)
             + len(config.rabitq) * ("rabitq" in methods))
    points: list[Point] = []
    skipped: list[dict[str, Any]] = []
    item_bits: dict[str, list[float]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp, _progress(count, progress) as bar:
        folder = Path(tmp)
        for k in ks:
            s_fit = min(config.n_nonzero, k, d)
            atoms, fit_s = None, 0.0  # learned only for the methods that code with them
            per_setting = config.learn == "rate"
            sparse_atoms: dict[tuple[str, int], tuple[np.ndarray, float]] = {}  # learn="sparsity": per sparsity

            def learned(which: str, s: int) -> tuple[np.ndarray, float]:
                if (which, s) not in sparse_atoms:
                    start = time.perf_counter()
                    atoms = learn_atoms(unit if which == "own" else train_unit, k, s, config, n_threads)
                    sparse_atoms[which, s] = atoms, time.perf_counter() - start
                return sparse_atoms[which, s]

            if "paper" in methods or (not per_setting and {"smic", "smic-shared"} & set(methods)):
                atoms, fit_s = learned("own", s_fit)
            paper_atoms, paper_fit_s = atoms, fit_s
            shared_atoms, shared_fit_s = atoms if train_unit is None else None, 0.0
            # each base setting's coded results, by (own|shared, step, rd_lambda, atoms): the
            # refinements reuse their base's dictionary
            finest: dict[tuple, Any] = {}
            coded_settings = smic_settings if {"smic", "smic-shared"} & set(methods) else []
            for step, rd_lambda, s_max, residual_step, transformed in coded_settings:
                s_setting = min(s_max, k, d)
                settings = {"K": k, "n_nonzero": s_setting, "step": step, "rd_lambda": rd_lambda}
                coding = {"n_nonzero": s_setting, "step": step, "rd_lambda": rd_lambda}
                if residual_step is not None:
                    settings["residual_step"] = residual_step
                    coding["residual_step"] = residual_step
                if transformed:
                    settings["residual_coding"] = "transform"
                    coding["transform"] = True
                own = None
                if per_setting and residual_step is None:  # the refinements reuse the finest setting's
                    start = time.perf_counter()
                    if "smic" in methods or train_unit is None:
                        atoms = learn_atoms_for_rate(unit, k, s_setting, step, rd_lambda, config, n_threads)
                    fit_s = time.perf_counter() - start
                    if "smic-shared" in methods and train_unit is not None:
                        start = time.perf_counter()
                        shared_atoms = learn_atoms_for_rate(train_unit, k, s_setting, step, rd_lambda, config, n_threads)
                        shared_fit_s = time.perf_counter() - start
                elif not per_setting and residual_step is None:  # once per K and sparsity
                    if "smic" in methods or train_unit is None:
                        atoms, fit_s = learned("own", s_setting)
                    if "smic-shared" in methods and train_unit is not None:
                        shared_atoms, shared_fit_s = learned("train", s_setting)
                if "smic" in methods or train_unit is None:
                    own = code_collection(unit, atoms, folder, config, pixel_list, n_threads,
                                           reuse=finest.get(("own", step, rd_lambda, s_max)) if residual_step else None,
                                           held_out=held_for_smic, **dict(coding))
                    if residual_step is None:
                        finest["own", step, rd_lambda, s_max] = own
                    if held is not None:  # a dictionary learned on the collection, coding new items
                        add_held("smic-shared", {**settings, "train": "training part"}, own["held_out"])
                if "smic" in methods:
                    total = own["smic_bytes"] - _DREF_PAYLOAD + own["dict_bytes"]
                    points.append(measure.point("smic", settings, own["reconstruction"], total, own["item_bytes"],
                                                own["encode_s"], own["decode_s"], fit_s))
                    bar.update()
                    if k == ks[-1] and (step, rd_lambda, s_max, residual_step, transformed) == \
                            smic_settings[len(config.smic) // 2]:
                        item_bits[points[-1].label] = _item_bits(own["dictionary"], unit)  # a middle setting
                if "smic-shared" in methods:
                    shared = own if train_unit is None else code_collection(
                        unit, shared_atoms, folder, config, pixel_list, n_threads,
                        reuse=finest.get(("shared", step, rd_lambda, s_max)) if residual_step else None,
                        **dict(coding))
                    if train_unit is not None:
                        if residual_step is None:
                            finest["shared", step, rd_lambda, s_max] = shared
                    points.append(measure.point(
                        "smic-shared", {**settings, "train": "collection" if train_unit is None else "train"},
                        shared["reconstruction"], shared["smic_bytes"], shared["item_bytes"],
                        shared["encode_s"], shared["decode_s"], fit_s if train_unit is None else shared_fit_s))
                    bar.update()
            for s, bits in config.paper if "paper" in methods else ():
                s = min(s, k, d)
                coded = code_collection(unit, paper_atoms, folder, config, pixel_list, n_threads,
                                         n_nonzero=s, layout="paper", paper_bits=bits, held_out=held_for_smic)
                add_held("paper", {"K": k, "n_nonzero": s, "paper_bits": bits}, coded.get("held_out"),
                         expected_bits_per_item=float(baselines.paper_bits_per_item(k, s, bits)))
                total = coded["smic_bytes"] - _DREF_PAYLOAD + coded["dict_bytes"]
                points.append(measure.point(
                    "paper", {"K": k, "n_nonzero": s, "paper_bits": bits}, coded["reconstruction"], total,
                    coded["item_bytes"], coded["encode_s"], coded["decode_s"], paper_fit_s,
                    expected_bits_per_item=float(baselines.paper_bits_per_item(k, s, bits))))
                bar.update()
        for step in config.scalar if "scalar" in methods else ():
            coded = baselines.scalar_codec(unit, step, held_out=held)
            add_held("scalar", {"step": step}, coded.held_out)
            points.append(measure.point("scalar", {"step": step}, coded.reconstruction,
                                        coded.item_bytes + coded.fixed_bytes, coded.item_bytes,
                                        coded.encode_s, coded.decode_s, coded.fit_s))
            bar.update()
        for m, nbits in config.pq if "pq" in methods else ():
            if d % m or n < (1 << nbits):
                skipped.append({"method": "pq", "M": m, "nbits": nbits,
                                "reason": f"M does not divide d={d}" if d % m
                                else f"fewer items than 2^{nbits} centroids"})
                bar.update()
                continue  # a setting PQ cannot run is reported in meta["skipped"], not an error
            coded = baselines.pq_codec(unit, m, nbits, train_size=config.pq_train, seed=config.seed, held_out=held)
            add_held("pq", {"M": m, "nbits": nbits}, coded.held_out)
            points.append(measure.point("pq", {"M": m, "nbits": nbits}, coded.reconstruction,
                                        coded.item_bytes + coded.fixed_bytes, coded.item_bytes,
                                        coded.encode_s, coded.decode_s, coded.fit_s))
            bar.update()
        for m, nbits in config.rq if "rq" in methods else ():
            if n < (1 << nbits):
                skipped.append({"method": "rq", "M": m, "nbits": nbits,
                                "reason": f"fewer items than 2^{nbits} centroids"})
                bar.update()
                continue
            coded = baselines.rq_codec(unit, m, nbits, beam=config.rq_beam,
                                       train_size=n if config.rq_train is None else config.rq_train,
                                       seed=config.seed, held_out=held)
            add_held("rq", {"M": m, "nbits": nbits, "beam": config.rq_beam}, coded.held_out)
            points.append(measure.point("rq", {"M": m, "nbits": nbits, "beam": config.rq_beam},
                                        coded.reconstruction, coded.item_bytes + coded.fixed_bytes,
                                        coded.item_bytes, coded.encode_s, coded.decode_s, coded.fit_s))
            bar.update()
        for k, rd_lambda in ((k, float(lam)) for k in config.one_atom for lam in config.one_atom_lambda) \
                if "smic-1" in methods else ():
            if k > n:
                skipped.append({"method": "smic-1", "K": k, "rd_lambda": rd_lambda,
                                "reason": f"more atoms than the {n} items"})
                bar.update()
                continue
            start = time.perf_counter()
            # rd_lambda 0: K-SVD with one atom (gain-shape k-means); above: learned for those codes
            atoms = (learn_atoms(unit, k, 1, config, n_threads) if rd_lambda == 0 else
                     learn_atoms_for_rate(unit, k, 1, QUALITY_PRESETS["low"].step, rd_lambda, config, n_threads))
            fit_s = time.perf_counter() - start
            coded = code_collection(unit, atoms, folder, config, pixel_list, n_threads, n_nonzero=1,
                                     step=QUALITY_PRESETS["low"].step, rd_lambda=rd_lambda,
                                     chunk_size=config.one_atom_chunk, held_out=held_for_smic)
            add_held("smic-1", {"K": k, "n_nonzero": 1, "rd_lambda": rd_lambda}, coded.get("held_out"))
            total = coded["smic_bytes"] - _DREF_PAYLOAD + coded["dict_bytes"]
            points.append(measure.point("smic-1", {"K": k, "n_nonzero": 1, "rd_lambda": rd_lambda},
                                        coded["reconstruction"], total, coded["item_bytes"], coded["encode_s"],
                                        coded["decode_s"], fit_s))
            bar.update()
        for k in config.kmeans if "kmeans" in methods else ():
            if k > n:
                skipped.append({"method": "kmeans", "k": k, "reason": f"more centroids than the {n} items"})
                bar.update()
                continue
            coded = baselines.kmeans_codec(unit, k, train_size=max(config.pq_train, 4 * k), seed=config.seed,
                                           held_out=held)
            add_held("kmeans", {"k": k}, coded.held_out)
            points.append(measure.point("kmeans", {"k": k}, coded.reconstruction,
                                        coded.item_bytes + coded.fixed_bytes, coded.item_bytes,
                                        coded.encode_s, coded.decode_s, coded.fit_s))
            bar.update()
        for method, settings, make in _fixed_length_peers(config, methods, n, d, skipped):
            if make is None:
                bar.update()
                continue  # skipped, and said so in meta["skipped_settings"]
            coded = make(unit, held)
            add_held(method, settings, coded.held_out)
            points.append(measure.point(method, settings, coded.reconstruction, coded.item_bytes + coded.fixed_bytes,
                                        coded.item_bytes, coded.encode_s, coded.decode_s, coded.fit_s))
            bar.update()
    meta = {"items": n, "dim": d, "n_atoms": ks, "config": asdict(config), "recall_k": measure.k,
            "skipped_settings": skipped,
            "pixels": pixel_array is not None, "shared_dictionary_trained_on": "collection" if train is None else
            f"{len(train_unit)} training embeddings", "seconds": round(time.perf_counter() - started, 3),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}
    if held is not None:
        from .bounds import bounds_table

        start = time.perf_counter()
        meta["bounds"] = bounds_table(unit, BOUND_COSINES, seed=config.seed)
        meta["bounds"]["seconds"] = round(time.perf_counter() - start, 3)
        meta["holdout"] = {"fraction": holdout, "seed": config.seed, "train_items": n, "held_out_items": len(held),
                           "held_out_rows": [int(r) for r in test_rows], "recall_k": held_measure.k}
        meta["seconds"] = round(time.perf_counter() - started, 3)
    return Sweep(points, meta, item_bits, held_points)


def _fixed_length_peers(config: SweepConfig, methods: Sequence[str], n: int, d: int,
                        skipped: list[dict[str, Any]]):
    """(method, settings, make) of the opq, lsq and rabitq settings asked for: make(unit,
    held) trains on unit and codes both; None (and a line in `skipped`) where a setting
    cannot run."""
    for m, nbits in config.opq if "opq" in methods else ():
        reason = f"M does not divide d={d}" if d % m else (f"fewer items than 2^{nbits} centroids"
                                                           if n < (1 << nbits) else None)
        if reason:
            skipped.append({"method": "opq", "M": m, "nbits": nbits, "reason": reason})
        yield "opq", {"M": m, "nbits": nbits}, None if reason else (
            lambda unit, held, m=m, nbits=nbits: baselines.opq_codec(
                unit, m, nbits, train_size=config.pq_train, seed=config.seed, held_out=held))
    for m, nbits in config.lsq if "lsq" in methods else ():
        reason = f"fewer items than 2^{nbits} codewords" if n < (1 << nbits) else None
        if reason:
            skipped.append({"method": "lsq", "M": m, "nbits": nbits, "reason": reason})
        yield "lsq", {"M": m, "nbits": nbits}, None if reason else (
            lambda unit, held, m=m, nbits=nbits: baselines.lsq_codec(
                unit, m, nbits, train_size=max(config.pq_train, 8192), seed=config.seed, held_out=held))
    for nb_bits in config.rabitq if "rabitq" in methods else ():
        yield "rabitq", {"nb_bits": nb_bits}, (
            lambda unit, held, nb_bits=nb_bits: baselines.rabitq_codec(unit, nb_bits, seed=config.seed,
                                                                       held_out=held))


# ---------------------------------------------------------------- comparing methods


def frontier(points: Sequence[Point], rate: str = "bits_per_item",
             fidelity: str = "cosine_mean") -> list[tuple[float, float]]:
    """The (rate, fidelity) points no other point beats (fewer bits and at least the fidelity),
    sorted by rate: the best a user can pick from a method's settings."""
    pairs = sorted((getattr(p, rate), getattr(p, fidelity)) for p in points)
    best: list[tuple[float, float]] = []
    for r, f in pairs:
        if math.isfinite(r) and math.isfinite(f) and (not best or f > best[-1][1]):
            best.append((r, f))
    return best


def _rate_on_frontier(front: Sequence[tuple[float, float]], level: float) -> float | None:
    """Rate at `level` on one frontier, linear in rate between neighbouring points."""
    for i, (r, f) in enumerate(front):
        if f >= level:
            if i == 0:
                return r
            r0, f0 = front[i - 1]
            return r0 + (r - r0) * (level - f0) / (f - f0)
    return None


def rate_at_fidelity(points: Sequence[Point], level: float, rate: str = "bits_per_item",
                     fidelity: str = "cosine_mean") -> float | None:
    """Fewest bits per item needed to reach `level`; None when no setting reaches it.

    Each curve (the points of one ``method``; for ``smic-1``, of one ``rd_lambda``: a family
    over K, as k-means is) interpolates linearly in rate between neighbouring points of its
    own frontier; points of several curves read as the lowest of the curves at `level`.
    (Interpolating over the union's frontier instead would draw a line from one curve's point
    to another's, which can read above a curve's own line: a union never needs more bits than
    one of its members.)"""
    best: float | None = None
    curves: dict[tuple[str, float | None], list[Point]] = {}
    for p in points:
        key = (p.method, p.settings.get("rd_lambda") if p.method == "smic-1" else None)
        curves.setdefault(key, []).append(p)
    for curve in curves.values():
        r = _rate_on_frontier(frontier(curve, rate, fidelity), level)
        if r is not None and (best is None or r < best):
            best = r
    return best


#: smic-fast's own methods (the others are peers a point of them should match or beat)
SMIC_METHODS = ("smic", "smic-shared", "smic-1")


def peer_points_beaten(points: Sequence[Point], rate: str = "marginal_bits_per_item") -> list[dict[str, Any]]:
    """For each peer point (every method but smic's own), the cheapest smic point that matches
    or beats it: no more bits and no lower mean cosine (a point, not a reading between
    points), as issue 28 asks of the held-out curve; ``beaten_by`` is None where none does,
    and ``nearest`` then names the smic point of least extra bits at no lower cosine, if any."""
    ours = [p for p in points if p.method in SMIC_METHODS]
    out = []
    for peer in (p for p in points if p.method not in SMIC_METHODS):
        bits, cosine = getattr(peer, rate), peer.cosine_mean
        at_cosine = sorted((p for p in ours if p.cosine_mean >= cosine), key=lambda p: getattr(p, rate))
        best = at_cosine[0] if at_cosine else None
        entry = {"method": peer.method, "settings": peer.settings, "bits": bits, "cosine": cosine,
                 "beaten_by": None, "nearest": None}
        if best is not None:
            found = {"method": best.method, "settings": best.settings, "bits": getattr(best, rate),
                     "cosine": best.cosine_mean}
            entry["beaten_by" if found["bits"] <= bits else "nearest"] = found
        out.append(entry)
    return out


def comparison_table(points: Sequence[Point], levels: Sequence[float] = (0.7, 0.8, 0.9, 0.95, 0.97, 0.99),
                     rate: str = "bits_per_item") -> dict[str, dict[str, float | None]]:
    """{method: {str(level): bits per item at that mean cosine or None}}."""
    methods = sorted({p.method for p in points}, key=lambda m: METHODS.index(m) if m in METHODS else 99)
    return {m: {f"{level:g}": rate_at_fidelity([p for p in points if p.method == m], level, rate)
                for level in levels} for m in methods}
