"""smic eval: the sweep's rates against real files and formulas, the baselines against their
definitions, recall@k against FAISS, the report files, the CLI and its bad inputs; and the
sweep on the tiny CLIP model's embeddings of scikit-image's photos."""
from __future__ import annotations

import base64
import csv
import json
import math

import numpy as np
import pytest

import smic_fast as smic
from smic_fast.cli import main
from smic_fast.coding.dictionary import default_n_atoms
from smic_fast.evaluation import SweepConfig, recall_at_k, run_sweep, write_report
from smic_fast.evaluation.baselines import kmeans_codec, paper_bits_per_item, pq_codec, rq_codec, scalar_codec
from smic_fast.evaluation.retrieval import query_rows, true_neighbours
from smic_fast.evaluation.sweep import DEFAULT_METHODS, METHODS, Point, default_sizes, frontier, rate_at_fidelity

faiss = pytest.importorskip("faiss")
pytest.importorskip("matplotlib")


def clustered(rng: np.random.Generator, n: int, d: int, n_concepts: int = 24, noise: float = 0.15) -> np.ndarray:
    """Items mixing 1-3 of a few concepts plus noise (as benchmarks/_common.clustered, smaller)."""
    concepts = rng.standard_normal((n_concepts, d))
    concepts /= np.linalg.norm(concepts, axis=1, keepdims=True)
    x = np.zeros((n, d))
    for i in range(n):
        picked = rng.choice(n_concepts, size=rng.integers(1, 4), replace=False)
        x[i] = rng.uniform(0.3, 1.0, len(picked)) @ concepts[picked]
    x += noise * rng.standard_normal((n, d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def collection() -> np.ndarray:
    return clustered(np.random.default_rng(7), 600, 64)


@pytest.fixture(scope="module")
def sweep(collection):
    config = SweepConfig.quick(n_atoms=(32,), smic=((0.25, 8e-3), (0.25, 2e-3), (0.25, 0.0)),
                               paper=((1, 6), (2, 6), (4, 6), (2, 8)), scalar=(0.4, 0.25, 0.15, 0.1),
                               pq=((1, 8), (4, 8), (16, 8)), queries=100, pq_train=600)
    pixels = np.full(len(collection), 512 * 512)
    return run_sweep(collection, config, pixels=pixels, progress=False)


def _of(sweep, method):
    return [p for p in sweep.points if p.method == method]


# ---------------------------------------------------------------- rates from the bytes


def test_own_dictionary_total_is_the_file_compress_writes(sweep, collection, tmp_path):
    """The own-dictionary total (.smic with DREF - 32 + .smicd) has exactly the non-item bytes
    of the file smic_fast.compress writes with the dictionary embedded (header, the same
    dictionary, ids); the items differ by the last rate-distortion pass only (compress keeps
    the symbols its tables were fitted on, a given dictionary re-chooses them), well under 2%."""
    point = _of(sweep, "smic")[1]
    info = smic.compress(collection, tmp_path / "own.smic", n_atoms=32, n_nonzero=point.settings["n_nonzero"],
                         step=point.settings["step"], rd_lambda=point.settings["rd_lambda"], n_iter=4,
                         pixels=[512 * 512] * len(collection))
    assert point.total_bytes - point.item_bytes == info["file_bytes"] - info["section_bytes"]["items"]
    assert point.item_bytes == pytest.approx(info["section_bytes"]["items"], rel=0.02)
    assert point.cosine_mean == pytest.approx(info["cosine_mean"], abs=2e-3)


def test_shared_dictionary_pays_only_the_collection_file(sweep):
    own, shared = _of(sweep, "smic"), _of(sweep, "smic-shared")
    assert len(own) == len(shared) == 5  # 3 settings + the finest one refined (one table, transform)
    for a, b in zip(own, shared):
        assert a.item_bytes == b.item_bytes and a.cosine_mean == b.cosine_mean
        assert b.total_bytes < a.total_bytes  # the dictionary is not in the shared file
        assert a.total_bytes - b.total_bytes > 32 * 64  # at least the float16 atoms (32 x 64 x 2 bytes)


def test_paper_rate_matches_its_formula(sweep):
    """Paper layout: n_nonzero x (ceil(log2 K) + bits) per item, plus the ITEM section's fixed
    overhead (16-byte section frame, 12-byte head, 8 bytes per chunk offset) and the range
    coder's flush (at most 8 bytes per chunk)."""
    points = _of(sweep, "paper")
    assert len(points) == 4
    for p in points:
        k, s, bits = p.settings["K"], p.settings["n_nonzero"], p.settings["paper_bits"]
        assert p.expected_bits_per_item == s * (math.ceil(math.log2(k)) + bits) == paper_bits_per_item(k, s, bits)
        chunks = math.ceil(p.items / 256)
        fixed = 8 * (16 + 12 + 8 * (chunks + 1))
        assert p.expected_bits_per_item * p.items + fixed <= 8 * p.item_bytes
        assert 8 * p.item_bytes <= p.expected_bits_per_item * p.items + fixed + 64 * chunks


# ---------------------------------------------------------------- curves


def test_curves_are_monotone_where_they_must_be(sweep):
    # scalar: a finer step costs more and reconstructs better
    scalar = sorted(_of(sweep, "scalar"), key=lambda p: -p.settings["step"])
    assert all(a.marginal_bits_per_item < b.marginal_bits_per_item for a, b in zip(scalar, scalar[1:]))
    assert all(a.cosine_mean < b.cosine_mean for a, b in zip(scalar, scalar[1:]))
    # PQ: M sub-quantisers of 8 bits cost exactly 8M bits per item; more of them fit better
    pq = sorted(_of(sweep, "pq"), key=lambda p: p.settings["M"])
    assert [p.marginal_bits_per_item for p in pq] == [8.0 * p.settings["M"] for p in pq]
    assert all(a.cosine_mean < b.cosine_mean for a, b in zip(pq, pq[1:]))
    # paper: more atoms at the same bits per coefficient cost more and fit better
    paper = sorted((p for p in _of(sweep, "paper") if p.settings["paper_bits"] == 6),
                   key=lambda p: p.settings["n_nonzero"])
    assert all(a.marginal_bits_per_item < b.marginal_bits_per_item for a, b in zip(paper, paper[1:]))
    assert all(a.cosine_mean < b.cosine_mean for a, b in zip(paper, paper[1:]))
    # smic: a cheaper bit (smaller rd_lambda) buys more bits and more fidelity; each setting
    # learns its own atoms for its rate (learn="rate"), so once the ratio step limits the
    # fidelity (0.25 here) more bits may buy nothing, but never cost cosine beyond noise
    atoms_only = [p for p in _of(sweep, "smic") if "residual_step" not in p.settings]
    ours = sorted(atoms_only, key=lambda p: -p.settings["rd_lambda"])
    assert sweep.meta["config"]["learn"] == "rate"
    assert all(a.marginal_bits_per_item < b.marginal_bits_per_item for a, b in zip(ours, ours[1:]))
    assert all(a.cosine_mean < b.cosine_mean + 1e-3 for a, b in zip(ours, ours[1:]))
    assert ours[0].cosine_mean < min(p.cosine_mean for p in ours[1:])
    # the refinement of the finest setting costs more and reaches higher than any atoms-only point
    (refined,) = [p for p in _of(sweep, "smic") if "residual_step" in p.settings
                  and "residual_coding" not in p.settings]
    assert refined.settings["rd_lambda"] == ours[-1].settings["rd_lambda"]
    assert refined.marginal_bits_per_item > ours[-1].marginal_bits_per_item
    assert refined.cosine_mean > max(p.cosine_mean for p in atoms_only)
    for p in sweep.points:
        assert 0 <= p.recall_at_10 <= 1 and p.cosine_p5 <= p.cosine_mean <= 1 + 1e-6


def test_frontier_and_rate_at_fidelity(sweep):
    points = _of(sweep, "scalar")
    front = frontier(points)
    assert [r for r, _ in front] == sorted(r for r, _ in front)
    assert all(f1 < f2 for (_, f1), (_, f2) in zip(front, front[1:]))
    (r0, f0), (r1, f1) = front[:2]
    middle = (f0 + f1) / 2
    assert rate_at_fidelity(points, middle) == pytest.approx((r0 + r1) / 2)
    assert rate_at_fidelity(points, 1.01) is None


def _point(method: str, bits: float, cosine: float) -> Point:
    return Point(method, {}, 100, 8, bits, bits, cosine, cosine, 1.0, 0.0, 0.0, 0.0, 0, 0)


def test_rate_of_several_methods_is_never_above_one_of_them():
    """Two methods' points read as the lower of their own curves: a's line from (6, 0.75) to
    (7, 0.85) gives 6.5 bits at 0.8; b's point (6.9, 0.78) lies on the union's frontier, and a
    line from it to a's (7, 0.85) would read 6.93 there, above a alone."""
    a = [_point("a", 6.0, 0.75), _point("a", 7.0, 0.85)]
    b = [_point("b", 6.9, 0.78), _point("b", 9.0, 0.95)]
    assert rate_at_fidelity(a, 0.8) == pytest.approx(6.5)
    assert rate_at_fidelity(a + b, 0.8) == pytest.approx(6.5)
    assert rate_at_fidelity(a + b, 0.77) == pytest.approx(6.2)  # a's line is still below b's point
    assert rate_at_fidelity(a + b, 0.9) == pytest.approx(6.9 + 2.1 * (0.9 - 0.78) / (0.95 - 0.78))  # a stops at 0.85
    for level in np.linspace(0.7, 0.95, 26):
        union = rate_at_fidelity(a + b, level)
        members = [r for r in (rate_at_fidelity(a, level), rate_at_fidelity(b, level)) if r is not None]
        assert union == pytest.approx(min(members))


def test_each_one_atom_price_is_its_own_curve():
    """smic-1 points of two rd_lambda are two curves over K (as k-means' sizes are one): the
    same points as in the test above read as the lower curve, not as a line between them."""
    def one(bits, cosine, lam):
        return Point("smic-1", {"K": 64, "n_nonzero": 1, "rd_lambda": lam}, 100, 8, bits, bits, cosine, cosine,
                     1.0, 0.0, 0.0, 0.0, 0, 0)
    a = [one(6.0, 0.75, 0.05), one(7.0, 0.85, 0.05)]
    b = [one(6.9, 0.78, 0.0), one(9.0, 0.95, 0.0)]
    assert rate_at_fidelity(a + b, 0.8) == pytest.approx(6.5)  # one merged curve would read 6.93
    assert rate_at_fidelity(a + b, 0.9) == pytest.approx(6.9 + 2.1 * (0.9 - 0.78) / (0.95 - 0.78))


# ---------------------------------------------------------------- baselines and recall


def test_scalar_codec_decodes_its_quantised_levels_and_costs_their_entropy(collection):
    coded = scalar_codec(collection, 0.1)
    levels = smic.quantize(collection, 0.1)
    expected = smic.dequantize(levels, 0.1).astype(np.float64)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(coded.reconstruction, expected, atol=1e-6)
    counts = np.bincount((levels + 10).ravel(), minlength=21)
    p = counts[counts > 0] / counts.sum()
    entropy_bits = -(counts[counts > 0] * np.log2(p)).sum()
    chunks = math.ceil(len(collection) / 256)
    coded_bits = 8 * (coded.item_bytes - 8 * (chunks + 1))
    assert entropy_bits <= coded_bits <= entropy_bits * 1.001 + 64 * chunks
    with pytest.raises(ValueError, match="step"):
        scalar_codec(collection, 0.0)


def test_pq_codec_sizes_and_faiss_reconstruction(collection):
    coded = pq_codec(collection, 4, 8, train_size=600)
    assert coded.item_bytes == len(collection) * 4
    assert coded.fixed_bytes == 256 * 64 * 4  # 2^nbits centroids of d/M floats, M times
    assert np.allclose(np.linalg.norm(coded.reconstruction, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        pq_codec(collection, 5, 8)


def test_rq_codec_sizes_and_more_stages_code_closer(collection):
    one, four = (rq_codec(collection, m, 6, beam=4, train_size=600) for m in (1, 4))
    assert four.item_bytes == len(collection) * 3  # 4 stages x 6 bits, FAISS packs 24 bits in 3 bytes
    assert four.fixed_bytes == 4 * 64 * 64 * 4  # M codebooks of 2^nbits float32 vectors of d
    assert np.allclose(np.linalg.norm(four.reconstruction, axis=1), 1.0, atol=1e-5)
    # one stage: at most 2^nbits distinct reconstructions; each later stage refines the residual
    assert len(np.unique(one.reconstruction, axis=0)) <= 64
    cosine = [np.mean(np.sum(collection * c.reconstruction, axis=1)) for c in (one, four)]
    assert cosine[1] > cosine[0] + 0.02
    for bad in ({"m": 0}, {"nbits": 0}, {"beam": 0}):
        with pytest.raises(ValueError, match="RQ needs"):
            rq_codec(collection, **{"m": 2, "nbits": 6, **bad})
    # codebooks learned on other rows code these rows less closely than their own
    held = rq_codec(collection[:100], 4, 6, beam=4, train=collection[100:])
    own = rq_codec(collection[:100], 4, 6, beam=4)
    assert np.mean(np.sum(collection[:100] * held.reconstruction, axis=1)) < \
        np.mean(np.sum(collection[:100] * own.reconstruction, axis=1))
    with pytest.raises(ValueError, match="training rows"):
        rq_codec(collection, 2, 6, train=collection[:, :8])


def test_rq_runs_only_on_request_and_skips_codebooks_larger_than_n(collection):
    assert "rq" in METHODS and "rq" not in DEFAULT_METHODS and SweepConfig().methods == DEFAULT_METHODS
    from smic_fast.cli import eval as eval_cli  # the CLI keeps its own copy to import lean
    assert (eval_cli._METHODS, eval_cli._DEFAULT_METHODS) == (METHODS, DEFAULT_METHODS)
    config = SweepConfig.quick(methods=("rq",), rq=((2, 6), (1, 10)), queries=16)
    sweep = run_sweep(collection, config, progress=False)
    (point,) = _of(sweep, "rq")
    assert point.settings == {"M": 2, "nbits": 6, "beam": 4} and point.marginal_bits_per_item == 16
    assert point.bits_per_item == 16 + 8 * 2 * 64 * 64 * 4 / len(collection)
    assert sweep.meta["skipped_settings"] == [{"method": "rq", "M": 1, "nbits": 10,
                                               "reason": "fewer items than 2^10 centroids"}]
    with pytest.raises(ValueError, match="rq_beam"):
        SweepConfig(rq_beam=0)
    with pytest.raises(ValueError, match="rq_train"):
        SweepConfig(rq_train=1)


def test_kmeans_codec_assigns_each_item_its_nearest_centroid(collection):
    coded = kmeans_codec(collection, 32, train_size=600)
    centroids = np.unique(coded.reconstruction, axis=0)
    assert len(centroids) <= 32 and coded.fixed_bytes == 32 * 64 * 4
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    # Every item is the centroid of largest cosine (numpy's argmax over the codebook).
    best = centroids[np.argmax(collection.astype(np.float64) @ centroids.T.astype(np.float64), axis=1)]
    chosen = np.sum(collection * coded.reconstruction, axis=1)
    assert np.all(chosen >= np.sum(collection * best, axis=1) - 1e-5)
    assert coded.item_bytes == math.ceil(len(collection) * 5 / 8)  # 5-bit indices, bit-packed
    with pytest.raises(ValueError, match="2 <= k <= N"):
        kmeans_codec(collection, len(collection) + 1)


def test_low_end_points_reach_a_few_bits_per_item(collection):
    # One atom over small dictionaries and k-means: the paper's operating point, a few bits.
    config = SweepConfig.quick(methods=("smic-1", "kmeans"), one_atom=(16, 64, 1000), one_atom_lambda=(0.0,),
                               kmeans=(16, 64, 1000), queries=50, pq_train=600)
    sweep = run_sweep(collection, config, progress=False)
    one, km = _of(sweep, "smic-1"), _of(sweep, "kmeans")
    assert [p.settings["K"] for p in one] == [16, 64] and [p.settings["k"] for p in km] == [16, 64]
    assert {s["method"] for s in sweep.meta["skipped_settings"]} == {"smic-1", "kmeans"}  # 1000 > N
    for p in one:
        assert p.marginal_bits_per_item <= math.log2(2 * p.settings["K"]) + 1  # sign + atom, + flush
        assert p.cosine_mean > 0.5
    assert one[1].cosine_mean > one[0].cosine_mean and km[1].cosine_mean > km[0].cosine_mean
    assert [p.marginal_bits_per_item for p in km] == [4.0, 6.0]


def test_entropy_constrained_one_atom_codes_beat_k_means_at_equal_cosine():
    """One-atom codes learned and coded for the rate (rd_lambda > 0: an atom is chosen by
    (1 - cosine) + rd_lambda * bits) against gain-shape k-means (rd_lambda 0) over the same
    sizes, on a collection with Zipf-popular concepts: at every K the rate lowers the bits, and
    read at equal cosine the entropy-constrained curve needs fewer marginal bits. Fails if the
    choice ignores the rate (equal points) or prices it wrongly."""
    rng = np.random.default_rng(11)
    concepts = rng.standard_normal((48, 64))
    concepts /= np.linalg.norm(concepts, axis=1, keepdims=True)
    popularity = 1.0 / np.arange(1, 49) ** 0.8
    picked = rng.choice(48, size=(3000, 2), p=popularity / popularity.sum())
    x = concepts[picked[:, 0]] + rng.uniform(0, 0.6, (3000, 1)) * concepts[picked[:, 1]]
    x += 0.2 * rng.standard_normal(x.shape) / 8
    e = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    config = SweepConfig(methods=("smic-1",), one_atom=(16, 32, 64, 128), one_atom_lambda=(0.0, 0.05),
                         n_iter=6, queries=32)
    sweep = run_sweep(e, config, progress=False)
    plain = {p.settings["K"]: p for p in sweep.points if p.settings["rd_lambda"] == 0}
    priced = {p.settings["K"]: p for p in sweep.points if p.settings["rd_lambda"] == 0.05}
    assert sorted(plain) == sorted(priced) == [16, 32, 64, 128]
    for k in plain:
        assert priced[k].marginal_bits_per_item < plain[k].marginal_bits_per_item - 0.1
    levels = [c for c in np.linspace(0.6, 0.95, 15)
              if rate_at_fidelity(list(plain.values()), c, "marginal_bits_per_item") is not None
              and rate_at_fidelity(list(priced.values()), c, "marginal_bits_per_item") is not None]
    assert len(levels) >= 3
    for c in levels:
        assert (rate_at_fidelity(list(priced.values()), c, "marginal_bits_per_item")
                < rate_at_fidelity(list(plain.values()), c, "marginal_bits_per_item"))


def test_one_atom_lambda_is_checked():
    for bad in ((), (-0.1,), (float("nan"),)):
        with pytest.raises(ValueError, match="one_atom_lambda"):
            SweepConfig(one_atom_lambda=bad)


def dense(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Non-sparse unit embeddings: a Gaussian with a slowly decaying spectrum (component i has
    standard deviation i^-1/2) around a common direction, like sentence embeddings rather than
    a mix of a few concepts: 8 atoms of a small dictionary leave much of each item out."""
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    x = (rng.standard_normal((n, d)) * np.arange(1, d + 1) ** -0.5) @ basis.T + 0.5 * basis[:, 0]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_default_sweep_reaches_the_high_end_where_8_atoms_cannot():
    """The default smic settings include 16- and 32-atom codes: on non-sparse embeddings where
    no 8-atom setting reaches cosine 0.95, an atoms-only setting does, and the curve at 0.95
    needs fewer marginal bits than the 8-atom settings with their refinement layer alone (the
    sweep of earlier releases) and than the paper layout."""
    e = dense(np.random.default_rng(3), 1000, 64)
    config = SweepConfig(methods=("smic", "paper"), n_iter=4, queries=32)  # the default settings
    sweep = run_sweep(e, config, progress=False)
    ours, paper = _of(sweep, "smic"), _of(sweep, "paper")
    atoms_only = [p for p in ours if "residual_step" not in p.settings]
    eight = [p for p in ours if p.settings["n_nonzero"] == 8 and "residual_coding" not in p.settings]
    assert {p.settings["n_nonzero"] for p in atoms_only} == {8, 12, 16, 24, 32}
    assert max(p.cosine_mean for p in atoms_only if p.settings["n_nonzero"] == 8) < 0.93
    assert max(p.cosine_mean for p in atoms_only if p.settings["n_nonzero"] > 8) >= 0.95
    marginal = "marginal_bits_per_item"
    for level in (0.9, 0.95):
        assert rate_at_fidelity(ours, level, marginal) < rate_at_fidelity(paper, level, marginal)
    assert rate_at_fidelity(ours, 0.95, marginal) < 0.9 * rate_at_fidelity(eight, 0.95, marginal)
    # refinements still refine the last setting, the finest 8-atom one
    refined = [p for p in ours if "residual_step" in p.settings]
    assert len(refined) == (len(config.residual) + len(config.transform)) * len(sweep.meta["n_atoms"])
    one_table = {(p.settings["n_nonzero"], p.settings["rd_lambda"]) for p in refined
                 if "residual_coding" not in p.settings}
    transformed = {(p.settings["n_nonzero"], p.settings["step"], p.settings["rd_lambda"]) for p in refined
                   if p.settings.get("residual_coding") == "transform"}
    assert one_table == {(8, 0.0)} and transformed == {(8, *config.transform_base)}


@pytest.mark.parametrize("n, sizes", [(1000, [64, 128]), (4000, [128, 256]), (10000, [128, 256, 512]),
                                      (15326, [256, 512, 1024]), (200000, [512, 1024, 2048])])
def test_default_sizes_add_twice_the_default_k_only_on_large_enough_collections(n, sizes):
    """Half, the default and twice the default K; twice only where it leaves 8 items per atom
    (fewer, and its atoms would fit the items themselves)."""
    assert default_sizes(n) == sizes
    assert default_n_atoms(n) == sizes[1]


def test_default_sweep_learns_every_default_size():
    e = dense(np.random.default_rng(5), 2400, 16)
    config = SweepConfig(methods=("smic",), smic=((0.25, 4e-3),), residual=(), transform=(), n_iter=2, queries=16)
    sweep = run_sweep(e, config, progress=False)
    assert sweep.meta["n_atoms"] == default_sizes(2400) == [64, 128, 256]
    by_k = {p.settings["K"]: p for p in _of(sweep, "smic") if "residual_coding" not in p.settings}
    assert sorted(by_k) == [64, 128, 256]
    # on its own items, the largest dictionary reaches the highest cosine
    assert by_k[256].cosine_mean > by_k[128].cosine_mean > by_k[64].cosine_mean


def test_sweep_settings_with_their_own_number_of_atoms(collection):
    config = SweepConfig.quick(methods=("smic",), learn="sparsity", smic=((0.25, 8e-3), (0.125, 0.0, 16)),
                               residual=(), transform=(), n_atoms=(32,), queries=32)
    sweep = run_sweep(collection, config, progress=False)
    few, many = _of(sweep, "smic")
    assert few.settings["n_nonzero"] == 8 and many.settings["n_nonzero"] == 16
    assert many.cosine_mean > few.cosine_mean and many.fit_s > 0  # its own 16-atom K-SVD
    for bad in ((0.25, 8e-3, 0), (0.25, 8e-3, 2.0), (0.25,), (0.25, 8e-3, 8, 1)):
        with pytest.raises(ValueError, match="smic settings"):
            SweepConfig(smic=(bad,))


def test_recall_against_faiss_flat_index(collection, rng):
    noisy = collection + 0.05 * rng.standard_normal(collection.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    rows = query_rows(len(collection), 50, seed=3)
    truth = true_neighbours(collection, rows, 10)
    # oracle: FAISS exact inner-product search, the query's own row dropped
    def search(db):
        index = faiss.IndexFlatIP(db.shape[1])
        index.add(db)
        _, found = index.search(collection[rows], 11)
        return [[j for j in f if j != r][:10] for f, r in zip(found, rows)]
    assert [sorted(t) for t in truth] == [sorted(f) for f in search(collection)]
    expected = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, search(noisy))])
    assert recall_at_k(collection, noisy, rows, truth) == pytest.approx(expected)
    assert recall_at_k(collection, collection, rows) == 1.0
    assert 0.0 < expected < 1.0


# ---------------------------------------------------------------- report


def test_report_files_exist_and_parse(sweep, tmp_path):
    files = write_report(sweep, tmp_path / "report")
    for name in ("index.html", "results.json", "results.csv", "rate_cosine.png", "rate_recall.png",
                 "bits_histogram.png"):
        assert (tmp_path / "report" / name).is_file(), name
    for png in tmp_path.glob("report/*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(files["results.json"].read_text())
    assert len(data["points"]) == len(sweep.points)
    assert set(data["comparison"]) == {"smic", "smic-shared", "smic-1", "paper", "scalar", "pq", "kmeans"}
    with files["results.csv"].open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(sweep.points)
    assert float(rows[0]["bits_per_item"]) == pytest.approx(sweep.points[0].bits_per_item)
    page = files["index.html"].read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained
    images = page.split("src='data:image/png;base64,")[1:]
    assert len(images) == 4
    assert base64.b64decode(images[0].split("'")[0])[:4] == b"\x89PNG"


# ---------------------------------------------------------------- CLI


def test_cli_eval_on_embeddings(collection, tmp_path, capsys):
    np.save(tmp_path / "e.npy", collection[:300])
    out = tmp_path / "rep"
    code = main(["eval", str(tmp_path / "e.npy"), "--output", str(out), "--quick", "--json", "--methods",
                 "smic,paper,scalar", "--pixels", "65536", "-q"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["items"] == 300 and set(summary["bits_per_item_at_cosine"]) == {"smic", "paper", "scalar"}
    data = json.loads((out / "results.json").read_text())
    assert all(p["bits_per_pixel"] == pytest.approx(p["bits_per_item"] / 65536) for p in data["points"])
    # an existing report is not overwritten without --force
    assert main(["eval", str(tmp_path / "e.npy"), "--output", str(out), "--quick", "-q"]) == 2


@pytest.mark.parametrize("content, expected", [
    ("missing", 2), ("text", 1), ("vector", 1), ("nan", 1), ("pickle", 1),
])
def test_cli_eval_bad_embeddings(tmp_path, capsys, content, expected):
    path = tmp_path / "e.npy"
    if content == "text":
        path.write_text("not an array\n")
    elif content == "vector":
        np.save(path, np.ones(5, np.float32))
    elif content == "nan":
        np.save(path, np.full((4, 3), np.nan, np.float32))
    elif content == "pickle":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    out = tmp_path / "rep"
    assert main(["eval", str(path), "--output", str(out), "--quick", "-q"]) == expected
    assert "smic eval:" in capsys.readouterr().err
    assert not out.exists()  # nothing written
    assert not list(tmp_path.glob(".smic-eval-*"))


def test_cli_eval_bad_options(collection, tmp_path):
    np.save(tmp_path / "e.npy", collection[:50])
    assert main(["eval", str(tmp_path / "e.npy"), "--output", str(tmp_path / "r"), "--methods", "smic,jpeg", "-q"]) == 2
    assert main(["eval", str(tmp_path / "e.npy"), "--output", str(tmp_path / "r"), "--pixels", "0", "-q"]) == 2
    np.save(tmp_path / "t.npy", collection[:50, :10])
    assert main(["eval", str(tmp_path / "e.npy"), "--output", str(tmp_path / "r"), "--train", str(tmp_path / "t.npy"),
                 "-q"]) == 2
    assert not (tmp_path / "r").exists()


def test_import_smic_fast_stays_lean():
    """`import smic_fast` (and its CLI) must not pull in FAISS, matplotlib or torch."""
    import subprocess
    import sys
    code = ("import sys, smic_fast, smic_fast.cli, smic_fast.evaluation.sweep; "
            "print(sorted(m for m in ('faiss', 'matplotlib', 'torch', 'open_clip') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_shared_dictionary_learned_on_a_training_set(collection):
    """With `train`, the shared dictionary comes from other items (here of other concepts): its
    points are coded apart, fit worse than the collection's own atoms, and the meta says where
    the dictionary was learned."""
    train = clustered(np.random.default_rng(8), 400, 64)  # another seed: other concepts
    config = SweepConfig.quick(n_atoms=(32,), methods=("smic", "smic-shared"), smic=((0.25, 2e-3),),
                               residual=(), transform=(), queries=50)
    sweep = run_sweep(collection, config, train=train, progress=False)
    own, shared = sweep.points
    assert (own.method, shared.method) == ("smic", "smic-shared")
    assert shared.settings["train"] == "train" and sweep.meta["shared_dictionary_trained_on"] == "400 training embeddings"
    assert shared.item_bytes != own.item_bytes and shared.total_bytes < own.total_bytes
    assert shared.cosine_mean < own.cosine_mean - 0.05  # atoms of other concepts fit worse
    with pytest.raises(ValueError, match="train"):
        run_sweep(collection, config, train=train[:, :10], progress=False)


def test_report_grid_of_regenerations(sweep, tmp_path):
    """The originals-beside-regenerations grid (fed by a generator) is drawn and embedded."""
    rng = np.random.default_rng(0)
    originals = [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(3)]
    grid = [("original", originals), ("12 bits", originals[::-1]), ("30 bits", originals)]
    files = write_report(sweep, tmp_path / "r", grid=grid)
    assert files["regenerations"].read_bytes()[:4] == b"\x89PNG"
    assert files["index.html"].read_text().count("data:image/png;base64,") == 5
    with pytest.raises(ValueError, match="at least one image"):
        write_report(sweep, tmp_path / "r2", grid=[("original", [])])


# ---------------------------------------------------------------- held-out protocol (--holdout)


def test_holdout_split_is_a_seeded_disjoint_partition():
    from smic_fast.evaluation.sweep import holdout_split

    train, test = holdout_split(100, 0.2, seed=3)
    assert len(test) == 20 and len(train) == 80
    assert not set(train) & set(test) and sorted({*train, *test}) == list(range(100))
    again = holdout_split(100, 0.2, seed=3)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test)
    assert not np.array_equal(holdout_split(100, 0.2, seed=4)[1], test)
    for bad in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="fraction"):
            holdout_split(100, bad)
    with pytest.raises(ValueError, match="at least 2"):
        holdout_split(5, 0.1)


@pytest.fixture(scope="module")
def held_sweep(collection):
    config = SweepConfig.quick(n_atoms=(32,), smic=((0.25, 8e-3), (0.25, 0.0)), residual=(0.05,),
                               paper=((2, 6),), scalar=(0.25, 0.1), pq=((4, 8), (16, 8)), kmeans=(16, 64),
                               one_atom=(16,), one_atom_lambda=(0.0,), queries=60, pq_train=600,
                               methods=("smic", "smic-shared", "smic-1", "paper", "scalar", "pq", "kmeans"))
    pixels = np.arange(len(collection)) + 1000  # each item its own count: the split must carry them along
    return run_sweep(collection, config, pixels=pixels, holdout=0.25, progress=False)


def test_holdout_learns_on_the_rest_and_codes_only_the_held_out_items(held_sweep, collection):
    from smic_fast.evaluation.sweep import holdout_split

    train_rows, test_rows = holdout_split(len(collection), 0.25, seed=0)
    meta = held_sweep.meta["holdout"]
    assert meta["held_out_rows"] == test_rows.tolist() and not set(test_rows) & set(train_rows)
    assert (meta["train_items"], meta["held_out_items"]) == (450, 150) and held_sweep.meta["items"] == 450
    assert all(p.items == 450 for p in held_sweep.points)
    assert all(p.items == 150 for p in held_sweep.held_out)
    methods = {p.method for p in held_sweep.held_out}
    assert methods == {"smic-shared", "smic-1", "paper", "scalar", "pq", "kmeans"}
    # one held-out twin per setting; smic's own and shared points share one (the same files)
    # (2 settings, the finest refined with one table and transform-coded)
    assert len([p for p in held_sweep.held_out if p.method == "smic-shared"]) == 4
    assert len(held_sweep.held_out) == len([p for p in held_sweep.points if p.method != "smic-shared"])
    pixels = (np.arange(len(collection)) + 1000)[test_rows]
    for p in held_sweep.held_out:  # rates of the held-out items, per item and per pixel of those items
        assert p.marginal_bits_per_item == pytest.approx(8 * p.item_bytes / 150)
        assert p.marginal_bits_per_pixel == pytest.approx(p.marginal_bits_per_item * np.mean(1 / pixels))


def test_held_out_baselines_code_the_test_items_with_codebooks_of_the_training_part(held_sweep, collection):
    from smic_fast.evaluation.sweep import holdout_split

    train_rows, test_rows = holdout_split(len(collection), 0.25, seed=0)
    train, test = collection[train_rows], collection[test_rows]
    held = {p.label: p for p in held_sweep.held_out}
    pq = held["pq M=16 nbits=8"]
    coded = pq_codec(train, 16, 8, train_size=600, held_out=test)
    cosine = np.sum(test.astype(np.float64) * coded.held_out.reconstruction, axis=1)
    assert pq.cosine_mean == pytest.approx(cosine.mean(), abs=1e-6)
    assert pq.item_bytes == coded.held_out.item_bytes == 150 * 16
    # the in-collection point is the training part coded with the same codebooks, which fit the
    # items they were learned on better than new ones
    in_collection = next(p for p in held_sweep.points if p.label == "pq M=16 nbits=8")
    assert in_collection.cosine_mean == pytest.approx(np.mean(np.sum(train * coded.reconstruction, axis=1)), abs=1e-6)
    assert in_collection.cosine_mean > pq.cosine_mean + 0.01
    # k-means: the held-out items get their nearest of the training part's centroids
    km = held["kmeans k=64"]
    coded = kmeans_codec(train, 64, train_size=max(600, 4 * 64), held_out=test)
    assert km.cosine_mean == pytest.approx(np.mean(np.sum(test * coded.held_out.reconstruction, axis=1)), abs=1e-6)
    assert km.item_bytes == math.ceil(150 * 6 / 8)


def test_held_out_scalar_table_is_the_training_parts(held_sweep, collection):
    """The held-out items' levels, coded under the training part's table (every level counted
    once more), cost at least their own empirical entropy: the table is not fitted on them."""
    from smic_fast.evaluation.sweep import holdout_split
    from smic_fast.coding.quantizer import quantize

    _, test_rows = holdout_split(len(collection), 0.25, seed=0)
    test = collection[test_rows]
    point = next(p for p in held_sweep.held_out if p.label == "scalar step=0.1")
    _, counts = np.unique(quantize(test, 0.1), return_counts=True)
    p = counts / counts.sum()
    assert point.item_bytes * 8 > -np.sum(counts * np.log2(p))
    coded = scalar_codec(collection[np.setdiff1d(np.arange(len(collection)), test_rows)], 0.1, held_out=test)
    assert coded.held_out.item_bytes == point.item_bytes
    np.testing.assert_allclose(coded.held_out.reconstruction, scalar_codec(test, 0.1).reconstruction)


def test_held_out_smic_points_pay_the_file_without_the_dictionary(held_sweep):
    """smic's held-out twin of a setting codes new items with the collection's dictionary and
    tables: a shared-dictionary file, fewer bits per item than with the dictionary embedded,
    and a lower cosine than on the items the atoms were learned on (clustered data: slightly)."""
    own = [p for p in held_sweep.points if p.method == "smic"]
    held = [p for p in held_sweep.held_out if p.method == "smic-shared"]
    assert [p.settings["step"] for p in own] == [p.settings["step"] for p in held]
    assert all(p.settings["train"] == "training part" for p in held)
    for a, b in zip(own, held):
        assert b.bits_per_item > b.marginal_bits_per_item  # the .smic file's header and DREF
        assert b.bits_per_item < a.bits_per_item  # no dictionary in it
        assert b.cosine_mean < a.cosine_mean + 0.01
    assert held[-1].cosine_mean > held[0].cosine_mean  # the refinement still refines new items


def test_holdout_bounds_and_report(held_sweep, tmp_path):
    bounds = held_sweep.meta["bounds"]
    assert bounds["train_items"] == 450 and 0.95 in bounds["cosine"]
    gaussian, mixture = np.array(bounds["gaussian"]), np.array(bounds["mixture"])
    assert np.all(np.diff(gaussian) >= 0) and gaussian[-1] > 0
    assert np.all(mixture <= gaussian + math.log2(bounds["n_classes"]) + 1e-6)
    files = write_report(held_sweep, tmp_path / "report")
    page = files["index.html"].read_text()
    assert page.index("Held-out items") < page.index("In the collection")
    assert "Gaussian-mixture bound (32 classes)" in page
    assert page.count("data:image/png;base64,") == 5  # the held-out plot leads, then the usual four
    assert files["rate_cosine_held_out"].read_bytes()[:4] == b"\x89PNG"
    data = json.loads(files["results.json"].read_text())
    assert len(data["held_out_points"]) == len(held_sweep.held_out)
    assert set(data["held_out_comparison"]) == {"smic-shared", "smic-1", "paper", "scalar", "pq", "kmeans"}
    with files["results_held_out.csv"].open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(held_sweep.held_out) and {r["items"] for r in rows} == {"150"}


def test_peer_points_beaten_names_the_cheapest_smic_point_at_no_lower_cosine():
    from smic_fast.evaluation.sweep import peer_points_beaten

    def point(method, bits, cosine, **settings):
        return Point(method, settings, 100, 8, bits + 1, bits, cosine, cosine, 0, 0, 0, 0, 0, 0)

    points = [point("smic-1", 3.9, 0.46, K=16), point("smic-1", 4.1, 0.48, K=32), point("smic-shared", 5.5, 0.52),
              point("kmeans", 4.0, 0.47, k=16),   # 3.9 bits is cheaper but below its cosine: only nearest
              point("kmeans", 5.0, 0.45, k=32),   # beaten by the 3.9-bit point (fewest bits at >= 0.45)
              point("pq", 6.0, 0.60, M=1)]        # no smic point reaches its cosine
    k16, k32, pq = peer_points_beaten(points)
    assert k16["beaten_by"] is None and k16["nearest"]["settings"] == {"K": 32} and k16["nearest"]["bits"] == 4.1
    assert k32["beaten_by"]["settings"] == {"K": 16} and k32["nearest"] is None
    assert pq["beaten_by"] is None and pq["nearest"] is None
    tie = peer_points_beaten([point("smic-1", 4.0, 0.47, K=16), point("kmeans", 4.0, 0.47, k=16)])
    assert tie[0]["beaten_by"]["settings"] == {"K": 16}  # equal bits and cosine: matched


def test_holdout_is_not_with_train(collection):
    with pytest.raises(ValueError, match="exclusive"):
        run_sweep(collection, SweepConfig.quick(methods=("scalar",)), train=collection, holdout=0.2, progress=False)


def test_cli_eval_holdout(collection, tmp_path, capsys):
    np.save(tmp_path / "e.npy", collection)
    out = tmp_path / "rep"
    code = main(["eval", str(tmp_path / "e.npy"), "--output", str(out), "--quick", "--json", "--methods",
                 "smic,scalar,pq", "--holdout", "0.2", "--seed", "5", "-q"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["holdout"] == {"fraction": 0.2, "seed": 5, "train_items": 480, "held_out_items": 120,
                                  "recall_k": 10}
    held = summary["held_out_marginal_bits_per_item_at_cosine"]
    assert set(held) == {"smic-shared", "scalar", "pq", "gaussian bound", "mixture bound"}
    peers = summary["held_out_peer_points"]  # every scalar and PQ point, each with its verdict
    assert {p["method"] for p in peers} == {"scalar", "pq"}
    for p in peers:
        if p["beaten_by"] is not None:
            assert p["beaten_by"]["bits"] <= p["bits"] and p["beaten_by"]["cosine"] >= p["cosine"]
    assert held["gaussian bound"]["0.9"] is not None
    assert set(summary["bits_per_item_at_cosine"]) == {"smic", "scalar", "pq"}  # in the collection
    data = json.loads((out / "results.json").read_text())
    assert len(data["meta"]["holdout"]["held_out_rows"]) == 120
    # --holdout with --train: a usage error, before any work; a fraction outside (0, 1) too
    np.save(tmp_path / "t.npy", collection[300:400])
    for extra in (["--train", str(tmp_path / "t.npy"), "--holdout", "0.2"], ["--holdout", "1.5"],
                  ["--holdout", "x"], ["--holdout", "0.001"]):
        assert main(["eval", str(tmp_path / "e.npy"), "--output", str(tmp_path / "r"), "--quick", "-q", *extra]) == 2
    err = capsys.readouterr().err
    assert "--holdout and --train are exclusive" in err and "expected a fraction between 0 and 1" in err
    assert "each part needs at least 2" in err
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- OPQ, LSQ, RaBitQ


def test_opq_codec_sizes_and_rotation_helps_on_correlated_data(collection):
    from smic_fast.evaluation.baselines import opq_codec

    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((64, 64))  # correlated dimensions: what OPQ's rotation undoes
    x = collection @ mixing
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    train, test = x[:450], x[450:]
    opq = opq_codec(train, 8, 4, train_size=450, opq_iter=6, held_out=test)
    pq = pq_codec(train, 8, 4, train_size=450, held_out=test)
    assert opq.item_bytes == 450 * 4 and opq.held_out.item_bytes == 150 * 4  # 8 x 4 bits
    assert opq.fixed_bytes == 4 * (64 * 64 + 64) + 4 * 8 * 16 * 8  # rotation + 8 codebooks of 16 x 8 floats
    assert opq.held_out.reconstruction.shape == test.shape
    cos = lambda a, b: float(np.mean(np.sum(a * b, axis=1)))  # noqa: E731
    assert cos(test, opq.held_out.reconstruction) > cos(test, pq.held_out.reconstruction)
    with pytest.raises(ValueError, match="divisible"):
        opq_codec(train, 7)


def test_lsq_codec_sizes_and_more_codebooks_code_closer(collection):
    from smic_fast.evaluation.baselines import lsq_codec

    train, test = collection[:450], collection[450:]
    two = lsq_codec(train, 2, 4, train_iters=3, encode_ils_iters=2, held_out=test)
    four = lsq_codec(train, 4, 4, train_iters=3, encode_ils_iters=2, held_out=test)
    assert (two.item_bytes, two.held_out.item_bytes, four.held_out.item_bytes) == (450, 150, 300)
    assert two.fixed_bytes == 4 * 2 * 16 * 64
    cos = lambda a, b: float(np.mean(np.sum(a * b, axis=1)))  # noqa: E731
    assert cos(test, four.held_out.reconstruction) > cos(test, two.held_out.reconstruction)


def test_rabitq_codec_code_size_is_faiss_code_size(collection):
    from smic_fast.evaluation.baselines import rabitq_codec

    if not hasattr(faiss, "IndexRaBitQ"):
        pytest.skip(f"FAISS {faiss.__version__} has no RaBitQ")
    train, test = collection[:450], collection[450:]
    one = rabitq_codec(train, held_out=test)
    size = faiss.index_factory(64, "RR64,RaBitQ").sa_code_size()
    assert size == 64 // 8 + 8  # the sign bits and two float32 factors
    assert one.item_bytes == 450 * size and one.held_out.item_bytes == 150 * size
    cos = lambda a, b: float(np.mean(np.sum(a * b, axis=1)))  # noqa: E731
    # one bit per dimension: about sqrt(2/pi) of the offset from the centroid, better with the centroid
    assert 0.7 < cos(test, one.held_out.reconstruction) < 0.95
    assert np.array_equal(rabitq_codec(train, seed=0).reconstruction, one.reconstruction)  # seeded rotation
    with pytest.raises(ValueError, match="one bit"):
        rabitq_codec(train, 4)


def test_new_peers_run_in_the_sweep_on_request_only(collection):
    assert not {"opq", "lsq", "rabitq"} & set(DEFAULT_METHODS)
    methods = ("opq", "lsq") + (("rabitq",) if hasattr(faiss, "IndexRaBitQ") else ())
    config = SweepConfig.quick(methods=methods, opq=((4, 4), (7, 4)), lsq=((2, 4),), rabitq=(1,), queries=40)
    sweep = run_sweep(collection[:300], config, holdout=0.2, progress=False)
    assert {p.method for p in sweep.points} == set(methods) == {p.method for p in sweep.held_out}
    assert sweep.meta["skipped_settings"] == [{"method": "opq", "M": 7, "nbits": 4,
                                               "reason": "M does not divide d=64"}]
    for p in sweep.points:
        assert p.bits_per_item > p.marginal_bits_per_item  # the codebook or rotation
    opq = next(p for p in sweep.held_out if p.method == "opq")
    assert opq.marginal_bits_per_item == 16 and opq.items == 60
    with pytest.raises(ValueError, match="rabitq"):
        SweepConfig(rabitq=(0,))
