"""Rate-distortion choice of item symbols in C++ (_core.choose_items) against the numpy
reference smic_fast.coding.codec.choose_items, its determinism (single item = batch row, any thread
count, either product kernel), its argument checks, and the few-rows product path under it."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from smic_fast import _core
from smic_fast.coding.codec import CodingParams, choose_items
from smic_fast.coding.range_coder import frequencies_from_counts
from smic_fast.learn.sparse_coding import OmpCoder

from problems import planted_collection, unit_rows, vector_kernel_families

# ---- helpers -------------------------------------------------------------------------------


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_data(rng: np.random.Generator, kind: str, n: int, k: int, d: int):
    """(X, D): unit-norm signals and atoms. "random": independent; "planted": sums of 3 atoms
    plus noise; "clustered": signals near a few centres, atoms near the same centres."""
    if kind == "random":
        return unit_rows(rng, n, d), unit_rows(rng, k, d)
    if kind == "planted":
        x, d_atoms = planted_collection(rng, n, k, d, 3, noise=0.05)
        return unit(x), d_atoms
    centres = unit_rows(rng, 8, d).astype(np.float64)
    x = centres[rng.integers(0, 8, n)] + 0.3 * rng.standard_normal((n, d)) / np.sqrt(d)
    atoms = centres[rng.integers(0, 8, k)] + 0.6 * rng.standard_normal((k, d)) / np.sqrt(d)
    return unit(x), unit(atoms)


def random_models(rng, k: int, params: CodingParams) -> _core.ItemModels:
    """Skewed random tables of the right sizes (levels peaked at 0, counts favouring few)."""
    lv = params.level_alphabet
    level = np.bincount(rng.binomial(lv - 1, 0.5, 4000), minlength=lv) + rng.integers(1, 5, lv)
    count = rng.integers(1, 1000, params.s_max + 1) * (params.s_max + 1 - np.arange(params.s_max + 1))
    tables = [count, rng.integers(1, 1000, 2 * k), rng.integers(1, 1000, k), level]
    return _core.ItemModels(*(t.astype(np.uint32) for t in tables), params.s_max, False)


def fitted_models(x, d_atoms, params: CodingParams) -> _core.ItemModels:
    """Tables fitted to the reference's flat-model symbols, as Dictionary.fit does."""
    sym, _ = reference(x, d_atoms, params, None)
    k, lv, w = len(d_atoms), params.level_alphabet, params.s_max - 1
    used = np.arange(w)[None, :] < (sym.counts[:, None] - 1)
    counts = [np.bincount(sym.counts, minlength=params.s_max + 1),
              np.bincount(sym.first, minlength=2 * k), np.bincount(sym.rest_index[used], minlength=k),
              np.bincount(sym.rest_level[used], minlength=lv)]
    return _core.ItemModels(*(frequencies_from_counts(c.astype(np.uint64)) for c in counts),
                            params.s_max, False)


def reference(x, d_atoms, params, models):
    gram = d_atoms.astype(np.float64) @ d_atoms.astype(np.float64).T
    return choose_items(x, d_atoms, OmpCoder(d_atoms), gram, params, models)


def ours(coder, x, params, models, n_threads=0):
    return _core.choose_items(coder, x, params.s_max, params.step, params.rounding,
                              params.rd_lambda, models, n_threads)


def symbols_equal(out, sym) -> np.ndarray:
    counts, first, rest_index, rest_level, _ = out
    return ((counts == sym.counts) & (first == sym.first)
            & (rest_index == sym.rest_index).all(axis=1) & (rest_level == sym.rest_level).all(axis=1))


def assert_agrees(out, sym, cos, min_rate=0.995, cos_tol=1e-5):
    same = symbols_equal(out, sym)
    assert same.mean() >= min_rate, f"symbols agree on only {same.mean():.4f} of the items"
    np.testing.assert_allclose(out[4][same], cos[same], rtol=0, atol=cos_tol)


# ---- agreement with the numpy reference ----------------------------------------------------

CASES = [  # kind, K, d, s_max, step, rounding, rd_lambda, models
    ("random", 64, 32, 1, 0.125, 0.5, 1.5e-3, None),
    ("random", 64, 32, 2, 0.25, 0.5, 0.0, "random"),
    ("random", 300, 64, 4, 0.125, 0.5, 5e-3, None),
    ("random", 300, 64, 4, 0.125, 0.5, 5e-3, "random"),
    ("random", 128, 200, 8, 0.0625, 0.5, 2e-3, "fitted"),
    ("random", 200, 48, 6, 0.1, 0.35, 4e-3, "random"),
    ("planted", 256, 64, 4, 0.125, 0.5, 1.5e-3, "fitted"),
    ("planted", 256, 64, 8, 0.0625, 0.5, 0.0, None),
    ("planted", 96, 128, 3, 0.3, 0.4, 0.01, "random"),
    ("planted", 512, 96, 5, 1.0, 0.5, 2e-3, "fitted"),
    ("clustered", 128, 64, 4, 0.125, 0.5, 1.5e-3, "fitted"),
    ("clustered", 300, 80, 7, 0.2, 0.25, 4e-3, None),
    ("clustered", 64, 256, 2, 0.5, 0.5, 5e-3, "random"),
    ("clustered", 200, 64, 8, 0.0625, 0.5, 4e-4, "random"),
    # one atom priced by fitted tables: the atom of lowest cost among all K
    ("random", 64, 32, 1, 0.25, 0.5, 0.02, "random"),
    ("clustered", 128, 64, 1, 0.25, 0.5, 0.05, "fitted"),
    ("planted", 300, 48, 1, 0.125, 0.5, 4e-3, "random"),
]


@pytest.mark.parametrize("kind,k,d,s_max,step,rounding,rd_lambda,models", CASES)
def test_matches_numpy_reference(kind, k, d, s_max, step, rounding, rd_lambda, models):
    rng = np.random.default_rng(zlib.crc32(repr((kind, k, d, s_max)).encode()))
    x, d_atoms = make_data(rng, kind, 1500, k, d)
    params = CodingParams(s_max=s_max, step=step, rounding=rounding, rd_lambda=rd_lambda)
    if models == "random":
        models = random_models(rng, k, params)
    elif models == "fitted":
        models = fitted_models(x, d_atoms, params)
    sym, cos = reference(x, d_atoms, params, models)
    out = ours(_core.OmpCoder(d_atoms, 0), x, params, models)
    assert_agrees(out, sym, cos)
    # The choice is not trivial: several counts occur (unless one atom or no rate term).
    if s_max > 1 and rd_lambda > 0:
        assert len(np.unique(out[0])) > 1


@pytest.mark.parametrize("rd_lambda", [0.0, 1e-3, 0.05])
def test_rd_lambda_trades_atoms_for_bits(rng, rd_lambda):
    x, d_atoms = make_data(rng, "planted", 800, 128, 64)
    params = CodingParams(s_max=6, step=0.125, rd_lambda=rd_lambda)
    sym, cos = reference(x, d_atoms, params, None)
    out = ours(_core.OmpCoder(d_atoms, 0), x, params, None)
    assert_agrees(out, sym, cos)
    if rd_lambda == 0.0:  # distortion only: the most atoms mostly wins
        assert out[0].mean() > 4
    if rd_lambda == 0.05:  # an extra atom costs ~11 bits, i.e. ~0.55 of cosine: one atom
        assert out[0].mean() < 1.05


def one_atom_costs(x, d_atoms, params, models):
    """Cost (1 - cosine) + rd_lambda * bits of every one-atom code of every item, in float64."""
    k = len(d_atoms)
    first = np.arange(2 * k, dtype=np.int32)
    bits = models.item_bits(np.ones(2 * k, np.int32), first, np.zeros((2 * k, 0), np.int32),
                            np.zeros((2 * k, 0), np.int32))
    corr = x.astype(np.float64) @ d_atoms.astype(np.float64).T
    return (1 - np.abs(corr)) + params.rd_lambda * bits[2 * np.arange(k) + (corr < 0)], bits


@pytest.mark.parametrize("rd_lambda", [2e-3, 0.02, 0.08])
def test_one_atom_is_the_cheapest_by_rate_and_distortion(rng, rd_lambda):
    # Entropy-constrained choice: with one atom per item and fitted tables, each item takes the
    # atom of least cost among all K (not the most correlated one), so a rare atom must be
    # closer to pay for its longer code. Skewed tables make the two choices differ.
    x, d_atoms = make_data(rng, "clustered", 1200, 96, 48)
    params = CodingParams(s_max=1, step=0.25, rd_lambda=rd_lambda)
    skew = (1000 / np.arange(1, 97) ** 1.5).astype(np.uint32) + 1
    first = np.repeat(skew, 2)
    models = _core.ItemModels(np.array([1, 1000], np.uint32), first.astype(np.uint32),
                              np.ones(96, np.uint32), np.ones(params.level_alphabet, np.uint32), 1, False)
    counts, chosen, _, _, cosine = ours(_core.OmpCoder(d_atoms, 0), x, params, models)
    cost, bits = one_atom_costs(x, d_atoms, params, models)
    rows = np.arange(len(x))
    chosen_cost = (1 - cosine) + rd_lambda * bits[chosen]
    np.testing.assert_allclose(chosen_cost, cost.min(axis=1), rtol=0, atol=1e-6)
    assert (counts == 1).all()
    # the most correlated atom, priced the same way, costs at least as much
    nearest = np.argmax(np.abs(x @ d_atoms.T), axis=1)
    assert (cost[rows, nearest] >= chosen_cost - 1e-6).all()
    differs = (chosen // 2) != nearest
    assert differs.any()  # the rate changed some choices ...
    # ... towards cheaper codes and lower cosines; the mean cost fell
    assert (bits[chosen][differs] < bits[2 * nearest[differs]]).all()
    assert cost.min(axis=1).mean() < cost[rows, nearest].mean()
    np.testing.assert_allclose(cosine, np.abs(np.sum(x.astype(np.float64) * d_atoms[chosen // 2], 1)),
                               rtol=0, atol=1e-5)
    if rd_lambda == 0.08:  # a strong price of a bit: the popular atoms take most items
        assert np.mean(chosen // 2 < 10) > np.mean(nearest < 10)


def test_one_atom_without_tables_or_rate_takes_the_most_correlated(rng):
    # Flat models (the first pass of table fitting) or rd_lambda = 0: the OMP atom, as before.
    x, d_atoms = make_data(rng, "clustered", 400, 96, 48)
    nearest = np.argmax(np.abs(x @ d_atoms.T), axis=1)
    coder = _core.OmpCoder(d_atoms, 0)
    for rd_lambda, models in ((0.05, None), (0.0, random_models(rng, 96, CodingParams(s_max=1, step=0.25)))):
        params = CodingParams(s_max=1, step=0.25, rd_lambda=rd_lambda)
        _, first, _, _, _ = ours(coder, x, params, models)
        np.testing.assert_array_equal(first // 2, nearest)


def test_zero_rows_get_atom_zero_and_cosine_zero(rng):
    x, d_atoms = make_data(rng, "random", 50, 40, 24)
    x[[0, 7, 49]] = 0.0
    params = CodingParams(s_max=4)
    models = random_models(rng, 40, params)
    sym, cos = reference(x, d_atoms, params, models)
    counts, first, rest_index, rest_level, cosine = ours(_core.OmpCoder(d_atoms, 0), x, params, models)
    for i in (0, 7, 49):
        assert counts[i] == 1 and first[i] == 0 and cosine[i] == 0.0
        assert (rest_index[i] == -1).all() and (rest_level[i] == -1).all()
    assert_agrees((counts, first, rest_index, rest_level, cosine), sym, cos, min_rate=1.0)


def test_output_layout(rng):
    x, d_atoms = make_data(rng, "random", 90, 50, 20)
    coder = _core.OmpCoder(d_atoms, 0)
    for s_max in (1, 5):
        params = CodingParams(s_max=s_max)
        counts, first, rest_index, rest_level, cosine = ours(coder, x, params, None)
        assert counts.dtype == first.dtype == rest_index.dtype == rest_level.dtype == np.int32
        assert cosine.dtype == np.float64
        assert counts.shape == first.shape == cosine.shape == (90,)
        assert rest_index.shape == rest_level.shape == (90, s_max - 1)
        used = np.arange(s_max - 1)[None, :] < (counts[:, None] - 1)
        assert (rest_index[~used] == -1).all() and (rest_level[~used] == -1).all()
        assert (np.diff(np.where(used, rest_index, 10**6), axis=1) > 0).all()  # ascending
        assert ((cosine > 0) & (cosine <= 1 + 1e-6)).all()
    empty = ours(coder, np.zeros((0, 20), np.float32), CodingParams(s_max=3), None)
    assert [a.shape for a in empty] == [(0,), (0,), (0, 2), (0, 2), (0,)]


# ---- determinism ---------------------------------------------------------------------------


@pytest.fixture
def kernel():
    """Run a test under each available product kernel, restoring the default after it."""
    kernels = ["generic"] + vector_kernel_families()
    yield kernels
    _core.set_gemm_kernel("auto")


@pytest.mark.parametrize("s_max", [5, 1])
def test_single_items_equal_batch_rows_and_threads_do_not_matter(rng, kernel, s_max):
    # s_max = 1 with tables prices every atom: a single item takes the full product then
    x, d_atoms = make_data(rng, "planted", 300, 256, 96)
    params = CodingParams(s_max=s_max, step=0.1, rd_lambda=1e-3 if s_max > 1 else 0.02)
    models = random_models(rng, 256, params)
    coder = _core.OmpCoder(d_atoms, 0)
    for name in kernel:
        _core.set_gemm_kernel(name)
        batch = ours(coder, x, params, models, n_threads=1)
        two = ours(coder, x, params, models, n_threads=2)
        for a, b in zip(batch, two):
            np.testing.assert_array_equal(a, b)
        for i in list(range(0, 300, 23)) + [299]:
            for rows in (slice(i, i + 1), slice(i, min(i + 4, 300))):
                part = ours(coder, np.ascontiguousarray(x[rows]), params, models, n_threads=1)
                for a, b in zip(part, batch):
                    np.testing.assert_array_equal(a, b[rows])


# ---- the few-rows product path -------------------------------------------------------------


@pytest.mark.parametrize("k,d", [(1024, 1024), (100, 37), (17, 300), (5, 3)])
def test_row_kernel_equals_micro_kernel(rng, kernel, k, d):
    a, b = unit_rows(rng, 150, d), unit_rows(rng, k, d)
    exact = a.astype(np.float64) @ b.astype(np.float64).T
    for name in kernel:
        _core.set_gemm_kernel(name)
        full = _core.gemm_nt(a, b)  # blocks of 72 rows: micro-kernel (rows 144..149: row kernel)
        np.testing.assert_allclose(full, exact, rtol=0, atol=1e-5)
        for m in (1, 2, 3, 4, 5, 6, 7):
            for i in (0, 41, 150 - m):
                np.testing.assert_array_equal(_core.gemm_nt(a[i:i + m], b), full[i:i + m])


@pytest.mark.parametrize("k,d", [(1024, 1024), (300, 40), (100, 520), (17, 300), (5, 3)])
def test_one_row_over_float16_atoms_equals_the_batch_product(rng, kernel, k, d):
    # Atoms that are exactly float16 (as read from a file) are kept in a float16 copy too; one
    # row reads it, in alternating directions from call to call, and must give the batch's bits.
    a = unit_rows(rng, 80, d)
    b = unit_rows(rng, k, d).astype(np.float16).astype(np.float32)
    for name in kernel:
        _core.set_gemm_kernel(name)
        full = _core.gemm_nt(a, b)
        for i in (0, 1, 2, 37, 79):
            for _ in range(3):  # forwards, backwards, forwards
                np.testing.assert_array_equal(_core.gemm_nt(a[i:i + 1], b), full[i:i + 1])


def test_omp_of_one_signal_equals_batch(rng, kernel):
    x, d_atoms = unit_rows(rng, 200, 128), unit_rows(rng, 512, 128)
    coder = _core.OmpCoder(d_atoms, 0)
    for name in kernel:
        _core.set_gemm_kernel(name)
        indices, coefs = coder.encode(x, 8, -1.0, 1)
        for i in range(0, 200, 13):
            one_i, one_c = coder.encode(x[i:i + 1], 8, -1.0, 1)
            np.testing.assert_array_equal(one_i[0], indices[i])
            np.testing.assert_array_equal(one_c[0], coefs[i])


# ---- argument checks -----------------------------------------------------------------------


def test_errors(rng):
    x, d_atoms = make_data(rng, "random", 10, 30, 16)
    coder = _core.OmpCoder(d_atoms, 0)
    models = random_models(rng, 30, CodingParams(s_max=4))

    def call(X=x, s_max=4, step=0.125, rounding=0.5, rd_lambda=1e-3, m=models):
        return _core.choose_items(coder, X, s_max, step, rounding, rd_lambda, m)

    call()  # the baseline is valid
    bad = [
        (dict(X=x.astype(np.float64)), "X must have dtype float32"),
        (dict(X=x[0]), "X must be 2-dimensional"),
        (dict(X=np.asfortranarray(x)), "X must be C-contiguous"),
        (dict(X=np.ones((3, 15), np.float32)), "X has 15 columns"),
        (dict(X=np.where(np.arange(16) == 3, np.nan, x).astype(np.float32)), "X contains NaN"),
        (dict(X=np.full((2, 16), np.inf, np.float32)), "X contains NaN or infinity"),
        (dict(s_max=0), "s_max must be >= 1"),
        (dict(s_max=17, m=None), r"s_max must be in \[1, min\(K, d\)\] = \[1, 16\]"),
        (dict(step=0.0), "step must be in"),
        (dict(step=1.5), "step must be in"),
        (dict(step=float("nan")), "step must be in"),
        (dict(step=1e-12, m=None), "step is too small"),
        (dict(rounding=1.0), "rounding must be in"),
        (dict(rounding=-0.1), "rounding must be in"),
        (dict(rounding=float("nan")), "rounding must be in"),
        (dict(rd_lambda=-1e-3), "rd_lambda must be"),
        (dict(rd_lambda=float("inf")), "rd_lambda must be"),
        (dict(rd_lambda=float("nan")), "rd_lambda must be"),
        (dict(m=random_models(rng, 31, CodingParams(s_max=4))), "models are for K = 31"),
        (dict(m=random_models(rng, 30, CodingParams(s_max=3))), "models are for s_max = 3"),
        (dict(step=0.25), "models have 17 level symbols but .* = 9"),
        (dict(m=_core.ItemModels(None, None, np.ones(30, np.uint32), np.ones(17, np.uint32), 4,
                                 paper=True)), "sorted layout"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            call(**kwargs)
    with pytest.raises(TypeError):
        call(m="not models")
