"""Codecs that smic-fast is compared with, each measured from the bytes it really produces.

* :func:`scalar_codec` — no dictionary: each embedding alone, every component scalar-quantised
  and range-coded (smic_fast.coding.range_coder) with one static frequency table that is stored (and
  counted) beside the data; items are coded in chunks of 256 as in a .smic file.
* :func:`pq_codec` — FAISS product quantisation (``faiss.ProductQuantizer``): M sub-quantisers
  of ``nbits`` each, M·nbits/8 bytes per item plus the float32 codebook.
* :func:`kmeans_codec` — spherical k-means (``faiss.Kmeans(spherical=True)``): each item is
  its nearest centroid by cosine, a fixed-length index of ceil(log2 k) bits (bit-packed), plus
  the float32 centroids.
* :func:`rq_codec` — FAISS residual quantisation (``faiss.ResidualQuantizer``), beam search.
* :func:`opq_codec` — FAISS optimised product quantisation: a learned rotation
  (``faiss.OPQMatrix``) before PQ (``index_factory("OPQ{M},PQ{M}x{nbits}np")``).
* :func:`lsq_codec` — FAISS local search quantisation (``faiss.LocalSearchQuantizer``): M
  additive codebooks over the whole vector, codes chosen by iterated local search.
* :func:`rabitq_codec` — FAISS RaBitQ (``index_factory("RR{d},RaBitQ")``: a random rotation,
  then one bit per dimension around the training centroid and two float factors per item, all
  in its fixed-length code).
* :func:`paper_bits_per_item` — the SMIC paper's fixed-length code: the rate its layout must
  have, checked against the measured rate of ``compress(..., layout="paper")``.

Each codec returns a :class:`Coded`: the reconstruction a decoder gets from the coded bytes,
the byte counts (marginal: the items' own bytes; fixed: what is paid once per collection, a
table or a codebook) and the encode/decode wall times. Each learns on the collection (its
``unit`` rows, or a sample of them) and, given ``held_out`` rows, codes those too with the
same table or codebooks: ``Coded.held_out`` is their result (``smic eval --holdout``: items
the codec never saw, whose fixed cost is a shared model and not counted again).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .. import _core
from ..coding import range_coder
from ..coding.quantizer import dequantize, quantize

__all__ = ["Coded", "kmeans_codec", "lsq_codec", "opq_codec", "paper_bits_per_item", "pq_codec", "rabitq_codec",
           "rq_codec", "scalar_codec"]

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
    held_out: Coded | None = None  # the held-out rows coded with the same table or codebooks


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _sample(rows: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A seeded uniform sample of at most `size` rows, in their order (contiguous)."""
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(rows[np.sort(rng.choice(len(rows), size=min(size, len(rows)), replace=False))])


def _held_rows(held_out: np.ndarray | None, d: int) -> np.ndarray | None:
    if held_out is None:
        return None
    rows = np.ascontiguousarray(held_out, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != d or len(rows) < 1:
        raise ValueError(f"held-out rows must be (N, {d}) with N >= 1, got {rows.shape}")
    return rows


def _code_fixed_length(encode, decode, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(codes, unit reconstruction, encode s, decode s) of a fixed-length FAISS code."""
    start = time.perf_counter()
    codes = encode(np.ascontiguousarray(rows))
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    reconstruction = _unit(decode(codes))
    return codes, reconstruction, encode_s, time.perf_counter() - start


def _train_and_code(quantizer, unit: np.ndarray, sample: np.ndarray, codebook,
                    held_out: np.ndarray | None = None) -> Coded:
    """Train a FAISS quantizer with train / compute_codes / decode (PQ, RQ, LSQ) on `sample`,
    code and decode `unit` (and `held_out`), timing each step; `codebook` is the trained
    codebook's float vector."""
    import faiss

    return _train_and_code_with(quantizer.train, quantizer.compute_codes, quantizer.decode, unit, sample,
                                lambda: faiss.vector_to_array(codebook(quantizer)).nbytes, held_out)


def _train_and_code_with(train, encode, decode, unit: np.ndarray, sample: np.ndarray, fixed_bytes,
                         held_out: np.ndarray | None) -> Coded:
    """Train with `train(sample)`, then code `unit` (and `held_out`) with `encode` / `decode`
    (codes: one fixed-length row of bytes per item); `fixed_bytes()` is the trained model's size."""
    held = _held_rows(held_out, unit.shape[1])
    start = time.perf_counter()
    train(sample)
    fit_s = time.perf_counter() - start
    codes, reconstruction, encode_s, decode_s = _code_fixed_length(encode, decode, unit)
    fixed = int(fixed_bytes())
    coded = Coded(reconstruction, int(codes.nbytes), fixed, encode_s, decode_s, fit_s)
    if held is not None:
        codes, reconstruction, encode_s, decode_s = _code_fixed_length(encode, decode, held)
        coded.held_out = Coded(reconstruction, int(codes.nbytes), fixed, encode_s, decode_s, fit_s)
    return coded


def _scalar_code(unit: np.ndarray, step: float, freqs: np.ndarray) -> tuple[np.ndarray, int, float, float]:
    """Range-code the levels of `unit` under `freqs` in chunks; (reconstruction, item bytes,
    encode s, decode s), the decoder's output from the bytes."""
    start = time.perf_counter()
    max_level = int(math.floor(1.0 / step + 0.5))
    symbols = (quantize(unit, step) + max_level).astype(np.int32)
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
    return reconstruction, sum(len(c) for c in chunks) + _OFFSET_BYTES * (len(chunks) + 1), encode_s, decode_s


def scalar_codec(unit: np.ndarray, step: float, *, held_out: np.ndarray | None = None) -> Coded:
    """Scalar-quantise each component of unit embeddings with `step` (round to nearest) and
    range-code the levels with one static table fitted on the collection; decode the bytes
    and return what the decoder rebuilds. `held_out` rows are coded with a table of the
    collection's counts plus one for every level (a level the collection never used still
    has a code), counted in the table's time."""
    if not (math.isfinite(step) and 0 < step <= 1):
        raise ValueError(f"step must be in (0, 1], got {step}")
    held = _held_rows(held_out, unit.shape[1])
    start = time.perf_counter()
    max_level = int(math.floor(1.0 / step + 0.5))
    alphabet = 2 * max_level + 1
    counts = np.bincount((quantize(unit, step) + max_level).ravel(), minlength=alphabet).astype(np.uint64)
    freqs = range_coder.frequencies_from_counts(counts)
    table = _core.pack_varints(np.array([alphabet], dtype=np.uint64)) + _core.pack_varints(counts)  # what a reader needs
    table_s = time.perf_counter() - start
    reconstruction, item_bytes, encode_s, decode_s = _scalar_code(unit, step, freqs)
    coded = Coded(reconstruction, item_bytes, len(table), table_s + encode_s, decode_s)
    if held is not None:
        start = time.perf_counter()
        shared = range_coder.frequencies_from_counts(counts + np.uint64(1))
        table_s = time.perf_counter() - start
        reconstruction, item_bytes, encode_s, decode_s = _scalar_code(held, step, shared)
        coded.held_out = Coded(reconstruction, item_bytes, len(table), table_s + encode_s, decode_s)
    return coded


def pq_codec(unit: np.ndarray, m: int, nbits: int = 8, *, train_size: int = 8192, n_iter: int = 10,
             seed: int = 0, held_out: np.ndarray | None = None) -> Coded:
    """FAISS product quantisation with `m` sub-quantisers of `nbits` bits, trained on a random
    sample of at most `train_size` items (k-means, `n_iter` iterations); `held_out` rows are
    coded with the same codebooks."""
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
    return _train_and_code(pq, unit, _sample(unit, train_size, seed), lambda q: q.centroids, held_out)


def rq_codec(unit: np.ndarray, m: int, nbits: int = 8, *, beam: int = 8, train_size: int = 8192,
             seed: int = 0, train: np.ndarray | None = None, held_out: np.ndarray | None = None) -> Coded:
    """FAISS residual quantisation: `m` stages of 2^nbits centroids over the whole vector, each
    stage coding what the earlier ones left (beam search of width `beam` when encoding),
    trained on a random sample of at most `train_size` rows of `train` (default: `unit`
    itself; other unit rows measure items the codebooks were not learned on). Fixed-length
    codes of m * nbits bits per item (as FAISS packs them); the float32 codebooks are the
    fixed cost. `held_out` rows are coded with the same codebooks."""
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
    return _train_and_code(rq, unit, _sample(source, train_size, seed), lambda q: q.codebooks, held_out)


def kmeans_codec(unit: np.ndarray, k: int, *, train_size: int = 8192, n_iter: int = 20,
                 seed: int = 0, held_out: np.ndarray | None = None) -> Coded:
    """Spherical k-means with `k` centroids (FAISS), trained on a random sample of at most
    `train_size` items: each item becomes its nearest centroid by cosine, coded as a
    fixed-length index of ceil(log2 k) bits (the N indices bit-packed); the float32 centroids
    are the fixed cost. `held_out` rows get their nearest of the same centroids."""
    from .._extras import require

    require("eval", "the FAISS k-means baseline", ("faiss",))
    import faiss
    n, d = unit.shape
    if not 2 <= k <= n:
        raise ValueError(f"k-means needs 2 <= k <= N = {n} centroids, got {k}")
    held = _held_rows(held_out, d)
    start = time.perf_counter()
    kmeans = faiss.Kmeans(d, k, niter=n_iter, seed=seed, spherical=True,
                          max_points_per_centroid=max(1, train_size // k), min_points_per_centroid=1)
    kmeans.train(_sample(unit, max(train_size, k), seed))
    centroids = _unit(kmeans.centroids)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    index = faiss.IndexFlatIP(d)
    index.add(centroids)
    index_bits = max(1, math.ceil(math.log2(k)))

    def code(rows: np.ndarray, index_s: float) -> Coded:
        start = time.perf_counter()
        _, nearest = index.search(np.ascontiguousarray(rows), 1)
        encode_s = time.perf_counter() - start + index_s
        start = time.perf_counter()
        reconstruction = centroids[nearest[:, 0]]
        decode_s = time.perf_counter() - start
        return Coded(reconstruction, math.ceil(len(rows) * index_bits / 8), int(centroids.nbytes), encode_s,
                     decode_s, fit_s)

    coded = code(unit, time.perf_counter() - start)
    if held is not None:
        coded.held_out = code(held, 0.0)
    return coded


def opq_codec(unit: np.ndarray, m: int, nbits: int = 8, *, train_size: int = 8192, n_iter: int = 10,
              opq_iter: int = 25, seed: int = 0, held_out: np.ndarray | None = None) -> Coded:
    """FAISS optimised product quantisation: a d x d rotation learned with the PQ codebooks
    (``faiss.OPQMatrix``, `opq_iter` alternations) before `m` sub-quantisers of `nbits` bits
    (``index_factory("OPQ{m},PQ{m}x{nbits}np")``), trained on a random sample of at most
    `train_size` items. Fixed-length codes of m * nbits bits; the float32 rotation and
    codebooks are the fixed cost. `held_out` rows are coded with the same rotation and
    codebooks."""
    from .._extras import require

    require("eval", "the FAISS OPQ baseline", ("faiss",))
    import faiss
    d = unit.shape[1]
    if m < 1 or d % m or not 1 <= nbits <= 16:
        raise ValueError(f"OPQ needs the dimension ({d}) divisible by M ({m}) and 1 <= nbits <= 16")
    index = faiss.index_factory(d, f"OPQ{m},PQ{m}x{nbits}np")  # np: no polysemous training (search only)
    opq = faiss.downcast_VectorTransform(index.chain.at(0))
    opq.niter = opq_iter
    opq.niter_pq = max(1, n_iter // 2)  # the PQ inside each alternation (FAISS's default: 4)
    inner = faiss.ProductQuantizer(d, m, nbits)  # OPQ's own PQ would have 8 bits whatever nbits is
    pq = faiss.downcast_index(index.index).pq
    for quantizer in (inner, pq):
        quantizer.cp.niter = n_iter
        quantizer.cp.seed = seed
        quantizer.cp.max_points_per_centroid = max(1, train_size // (1 << nbits))
        quantizer.cp.min_points_per_centroid = 1  # small collections: no warning on stderr, we know
    opq.pq = inner
    sample = _sample(unit, train_size, seed)

    def fixed_bytes() -> int:
        return 4 * (d * d + d) + faiss.vector_to_array(pq.centroids).nbytes  # the rotation (A, b) and codebooks

    coded = _train_and_code_with(index.train, index.sa_encode, index.sa_decode, unit, sample, fixed_bytes,
                                 held_out)
    del inner  # (kept alive until OPQ was trained: the matrix holds a raw pointer to it)
    return coded


def lsq_codec(unit: np.ndarray, m: int, nbits: int = 8, *, train_size: int = 8192, train_iters: int = 10,
              encode_ils_iters: int = 4, seed: int = 0, held_out: np.ndarray | None = None) -> Coded:
    """FAISS local search quantisation (Martinez et al., LSQ++): `m` additive codebooks of
    2^nbits codewords over the whole vector, learned on a random sample of at most
    `train_size` items with `train_iters` alternations, each item's codes chosen by
    `encode_ils_iters` rounds of iterated local search. Fixed-length codes of m * nbits bits
    (no norm stored: decoding sums the codewords); the float32 codebooks are the fixed cost.
    FAISS's defaults (25 training iterations, 16 local-search rounds) train for many minutes at
    N = 15,000 and d = 384; with these, 8 codebooks of 256 train in about 40 s on one core and
    16 in about 3 minutes (docs/evaluation.md). `held_out` rows are coded with the same
    codebooks."""
    from .._extras import require

    require("eval", "the FAISS LSQ baseline", ("faiss",))
    import faiss
    d = unit.shape[1]
    if m < 1 or not 1 <= nbits <= 16 or train_iters < 1 or encode_ils_iters < 1:
        raise ValueError(f"LSQ needs M >= 1, 1 <= nbits <= 16 and iterations >= 1, got {m}, {nbits}, "
                         f"{train_iters}, {encode_ils_iters}")
    lsq = faiss.LocalSearchQuantizer(d, m, nbits)
    lsq.train_iters = train_iters
    lsq.encode_ils_iters = encode_ils_iters
    lsq.random_seed = seed
    return _train_and_code(lsq, unit, _sample(unit, train_size, seed), lambda q: q.codebooks, held_out)


def rabitq_codec(unit: np.ndarray, nb_bits: int = 1, *, seed: int = 0,
                 held_out: np.ndarray | None = None) -> Coded:
    """FAISS RaBitQ (Gao & Long, 2024): a seeded random rotation, then the sign of each
    dimension of the item's offset from the training centroid, with two float factors per item
    (``index_factory("RR{d},RaBitQ")``). Fixed-length codes of FAISS's code size (the factors
    included: d/8 + 8 bytes); the rotation and the centroid are the fixed cost. `held_out`
    rows are coded with the same rotation and centroid.

    Only `nb_bits` = 1: FAISS 1.15 writes multi-bit RaBitQ codes (``RaBitQ4``) but its
    ``sa_decode`` rebuilds a vector from their sign bits alone (the extra bits serve its
    distance estimates), so their reconstruction would be measured at the price of the extra
    bits without their benefit."""
    from .._extras import require

    require("eval", "the FAISS RaBitQ baseline", ("faiss",))
    import faiss
    d = unit.shape[1]
    if not hasattr(faiss, "IndexRaBitQ"):
        raise ValueError(f"this FAISS ({faiss.__version__}) has no RaBitQ (IndexRaBitQ came with FAISS 1.11)")
    if nb_bits != 1:
        raise ValueError(f"RaBitQ reconstructions are measured with one bit per dimension only, got {nb_bits} "
                         "(FAISS decodes multi-bit codes from their sign bits)")
    index = faiss.index_factory(d, f"RR{d},RaBitQ")
    faiss.downcast_VectorTransform(index.chain.at(0)).init(seed)  # the rotation, seeded before train
    return _train_and_code_with(index.train, index.sa_encode, index.sa_decode, unit, np.ascontiguousarray(unit),
                                lambda: 4 * (d * d + d), held_out)


def paper_bits_per_item(n_atoms: int, n_nonzero: int, paper_bits: int) -> int:
    """Bits of one item in the paper layout: n_nonzero pairs of a fixed-length atom index
    (ceil(log2 K) bits) and a fixed-length coefficient (paper_bits bits). Container overhead
    (section headers, chunk offsets, the coder's flush bytes per chunk) comes on top."""
    return n_nonzero * (max(0, math.ceil(math.log2(n_atoms))) + paper_bits)
