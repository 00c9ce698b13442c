"""Codecs that smic-fast is compared with, each measured from the bytes it really produces.

* :func:`scalar_codec` — no dictionary: each embedding alone, every component scalar-quantised
  and range-coded (smic_fast.range_coder) with one static frequency table that is stored (and
  counted) beside the data; items are coded in chunks of 256 as in a .smic file.
* :func:`pq_codec` — FAISS product quantisation (``faiss.ProductQuantizer``): M sub-quantisers
  of ``nbits`` each, M·nbits/8 bytes per item plus the float32 codebook.
* :func:`kmeans_codec` — spherical k-means (``faiss.Kmeans(spherical=True)``): each item is
  its nearest centroid by cosine, a fixed-length index of ceil(log2 k) bits (bit-packed), plus
  the float32 centroids.
* :func:`paper_bits_per_item` — the SMIC paper's fixed-length code: the rate its layout must
  have, checked against the measured rate of ``compress(..., layout="paper")``.

Each codec returns a :class:`Coded`: the reconstruction a decoder gets from the coded bytes,
the byte counts (marginal: the items' own bytes; fixed: what is paid once per collection, a
table or a codebook) and the encode/decode wall times.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .. import _core, range_coder
from ..quantizer import dequantize, quantize

__all__ = ["Coded", "kmeans_codec", "paper_bits_per_item", "pq_codec", "rq_codec", "scalar_codec"]

SCALAR_CHUNK = 256  # items per range-coded chunk (as DEFAULT_CHUNK of a collection)
_OFFSET_BYTES = 8  # a u64 chunk offset per chunk, as in an ITEM section


@dataclass
class Coded:
    """A baseline's result on one collection: reconstruction, sizes and times."""

    reconstruction: np.ndarray  # (N, d) float32, unit rows
    item_bytes: int  # bytes that grow with the collection (codes, chunk offsets)
    fixed_bytes: int  # bytes paid once (frequency table, codebook)
    encode_s: float
    decode_s: float
    fit_s: float = 0.0  # training (PQ codebook); 0 when there is none


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _sample(rows: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A seeded uniform sample of at most `size` rows, in their order (contiguous)."""
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(rows[np.sort(rng.choice(len(rows), size=min(size, len(rows)), replace=False))])


def _train_and_code(quantizer, unit: np.ndarray, sample: np.ndarray, codebook) -> Coded:
    """Train a FAISS quantizer with train / compute_codes / decode (PQ, RQ) on `sample`, code
    and decode `unit`, timing each step; `codebook` is the trained codebook's float vector."""
    import faiss

    start = time.perf_counter()
    quantizer.train(sample)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    codes = quantizer.compute_codes(np.ascontiguousarray(unit))
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    reconstruction = _unit(quantizer.decode(codes))
    decode_s = time.perf_counter() - start
    fixed = faiss.vector_to_array(codebook(quantizer)).nbytes
    return Coded(reconstruction, int(codes.nbytes), int(fixed), encode_s, decode_s, fit_s)


def scalar_codec(unit: np.ndarray, step: float) -> Coded:
    """Scalar-quantise each component of unit embeddings with `step` (round to nearest) and
    range-code the levels with one static table fitted on the collection; decode the bytes
    and return what the decoder rebuilds."""
    if not (math.isfinite(step) and 0 < step <= 1):
        raise ValueError(f"step must be in (0, 1], got {step}")
    start = time.perf_counter()
    levels = quantize(unit, step)
    max_level = int(math.floor(1.0 / step + 0.5))
    symbols = (levels + max_level).astype(np.int32)
    alphabet = 2 * max_level + 1
    counts = np.bincount(symbols.ravel(), minlength=alphabet).astype(np.uint64)
    freqs = range_coder.frequencies_from_counts(counts)
    table = _core.pack_varints(np.array([alphabet], dtype=np.uint64)) + _core.pack_varints(counts)  # what a reader needs
    chunks = [range_coder.encode(symbols[i:i + SCALAR_CHUNK].ravel(), freqs)
              for i in range(0, len(symbols), SCALAR_CHUNK)]
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    d = unit.shape[1]
    decoded = np.concatenate([
        range_coder.decode(data, freqs, min(SCALAR_CHUNK, len(symbols) - i) * d).reshape(-1, d)
        for data, i in zip(chunks, range(0, len(symbols), SCALAR_CHUNK))])
    reconstruction = _unit(dequantize(decoded - max_level, step))
    decode_s = time.perf_counter() - start
    item_bytes = sum(len(c) for c in chunks) + _OFFSET_BYTES * (len(chunks) + 1)
    return Coded(reconstruction, item_bytes, len(table), encode_s, decode_s)


def pq_codec(unit: np.ndarray, m: int, nbits: int = 8, *, train_size: int = 8192, n_iter: int = 10,
             seed: int = 0) -> Coded:
    """FAISS product quantisation with `m` sub-quantisers of `nbits` bits, trained on a random
    sample of at most `train_size` items (k-means, `n_iter` iterations)."""
    from .._extras import require

    require("eval", "the FAISS PQ baseline", ("faiss",))
    import faiss
    d = unit.shape[1]
    if d % m:
        raise ValueError(f"PQ needs the dimension ({d}) divisible by M ({m})")
    pq = faiss.ProductQuantizer(d, m, nbits)
    pq.cp.niter = n_iter
    pq.cp.seed = seed
    pq.cp.max_points_per_centroid = max(1, train_size // (1 << nbits))
    pq.cp.min_points_per_centroid = 1  # small collections: no warning on stderr, we know
    return _train_and_code(pq, unit, _sample(unit, train_size, seed), lambda q: q.centroids)


def rq_codec(unit: np.ndarray, m: int, nbits: int = 8, *, beam: int = 8, train_size: int = 8192,
             seed: int = 0, train: np.ndarray | None = None) -> Coded:
    """FAISS residual quantisation: `m` stages of 2^nbits centroids over the whole vector, each
    stage coding what the earlier ones left (beam search of width `beam` when encoding),
    trained on a random sample of at most `train_size` rows of `train` (default: `unit`
    itself; other unit rows measure items the codebooks were not learned on). Fixed-length
    codes of m * nbits bits per item (as FAISS packs them); the float32 codebooks are the
    fixed cost."""
    from .._extras import require

    require("eval", "the FAISS residual quantisation baseline", ("faiss",))
    import faiss
    n, d = unit.shape
    if m < 1 or not 1 <= nbits <= 16 or beam < 1:
        raise ValueError(f"RQ needs M >= 1, 1 <= nbits <= 16 and beam >= 1, got {m}, {nbits}, {beam}")
    source = unit if train is None else np.asarray(train, dtype=np.float32)
    if source.ndim != 2 or source.shape[1] != d:
        raise ValueError(f"RQ training rows must be (N, {d}), got {source.shape}")
    rq = faiss.ResidualQuantizer(d, m, nbits)
    rq.max_beam_size = beam
    rq.cp.seed = seed
    # FAISS's own k-means sampling cap (256 points per centroid), not PQ's train_size // 2^nbits:
    # each stage trains on the residuals of every beam of every item, beam times the sample,
    # and the lower cap subsamples those (a visibly lower cosine on MiniLM)
    rq.cp.min_points_per_centroid = 1  # small collections: no warning on stderr, we know
    return _train_and_code(rq, unit, _sample(source, train_size, seed), lambda q: q.codebooks)


def kmeans_codec(unit: np.ndarray, k: int, *, train_size: int = 8192, n_iter: int = 20,
                 seed: int = 0) -> Coded:
    """Spherical k-means with `k` centroids (FAISS), trained on a random sample of at most
    `train_size` items: each item becomes its nearest centroid by cosine, coded as a
    fixed-length index of ceil(log2 k) bits (the N indices bit-packed); the float32 centroids
    are the fixed cost."""
    from .._extras import require

    require("eval", "the FAISS k-means baseline", ("faiss",))
    import faiss
    n, d = unit.shape
    if not 2 <= k <= n:
        raise ValueError(f"k-means needs 2 <= k <= N = {n} centroids, got {k}")
    start = time.perf_counter()
    kmeans = faiss.Kmeans(d, k, niter=n_iter, seed=seed, spherical=True,
                          max_points_per_centroid=max(1, train_size // k), min_points_per_centroid=1)
    kmeans.train(_sample(unit, max(train_size, k), seed))
    centroids = _unit(kmeans.centroids)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    index = faiss.IndexFlatIP(d)
    index.add(centroids)
    _, nearest = index.search(np.ascontiguousarray(unit), 1)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    reconstruction = centroids[nearest[:, 0]]
    decode_s = time.perf_counter() - start
    index_bits = max(1, math.ceil(math.log2(k)))
    return Coded(reconstruction, math.ceil(n * index_bits / 8), int(centroids.nbytes), encode_s, decode_s,
                 fit_s)


def paper_bits_per_item(n_atoms: int, n_nonzero: int, paper_bits: int) -> int:
    """Bits of one item in the paper layout: n_nonzero pairs of a fixed-length atom index
    (ceil(log2 K) bits) and a fixed-length coefficient (paper_bits bits). Container overhead
    (section headers, chunk offsets, the coder's flush bytes per chunk) comes on top."""
    return n_nonzero * (max(0, math.ceil(math.log2(n_atoms))) + paper_bits)
