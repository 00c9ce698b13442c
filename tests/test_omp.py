"""Batch OMP against scikit-learn's orthogonal_mp_gram, plus its contract and its errors."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import orthogonal_mp_gram

import smic_fast
from smic_fast import _core

from problems import unit_rows, vector_kernel_families


def _dense(indices: np.ndarray, coefs: np.ndarray, n_atoms: int) -> np.ndarray:
    out = np.zeros((indices.shape[0], n_atoms))
    rows, slots = np.nonzero(indices >= 0)
    out[rows, indices[rows, slots]] = coefs[rows, slots]
    return out


def _agreement(x, d, indices, coefs, **sklearn_args) -> float:
    """Fraction of signals whose support and coefficients (to 1e-4) match scikit-learn."""
    d64, x64 = d.astype(np.float64), x.astype(np.float64)
    ref = orthogonal_mp_gram(d64 @ d64.T, d64 @ x64.T, **sklearn_args).T
    ours = _dense(indices, coefs, d.shape[0])
    same_support = ((ours != 0) == (ref != 0)).all(axis=1)
    close = np.abs(ours - ref).max(axis=1) <= 1e-4
    return float(np.mean(same_support & close))


@pytest.mark.parametrize("n_nonzero", [1, 2, 4, 8, 16])
def test_matches_sklearn_on_random_unit_norm_problems(rng, n_nonzero):
    x, d = unit_rows(rng, 3000, 96), unit_rows(rng, 300, 96)
    indices, coefs = smic_fast.omp(x, d, n_nonzero)
    assert indices.dtype == np.int32 and coefs.dtype == np.float32
    assert indices.shape == coefs.shape == (3000, n_nonzero)
    assert _agreement(x, d, indices, coefs, n_nonzero_coefs=n_nonzero) >= 0.999


def test_tol_matches_sklearn_and_leaves_unused_slots_empty(rng):
    x, d = unit_rows(rng, 2000, 64), unit_rows(rng, 256, 64)
    indices, coefs = smic_fast.omp(x, d, 32, tol=0.2)
    norms = np.sum(x.astype(np.float64) ** 2, axis=1)
    assert _agreement(x, d, indices, coefs, tol=0.2, norms_squared=norms) >= 0.999
    used = (indices >= 0).sum(axis=1)
    assert used.min() < used.max() <= 32  # the threshold really varies the count
    # Unused slots come after used ones, with index -1 and coefficient 0.
    for row_idx, row_coef, k in zip(indices, coefs, used):
        assert (row_idx[k:] == -1).all() and (row_coef[k:] == 0).all() and (row_idx[:k] >= 0).all()
    residual = x - smic_fast.reconstruct(indices, coefs, d)
    assert np.sum(residual.astype(np.float64) ** 2, axis=1).max() <= 0.2 + 1e-4


def test_residual_is_orthogonal_to_chosen_atoms(rng):
    x, d = unit_rows(rng, 500, 128), unit_rows(rng, 512, 128)
    indices, coefs = smic_fast.omp(x, d, 6)
    residual = x - smic_fast.reconstruct(indices, coefs, d)
    for i in range(len(x)):
        assert np.abs(d[indices[i]] @ residual[i]).max() < 1e-4


def test_recovers_exactly_sparse_signals(rng):
    d = unit_rows(rng, 200, 64)
    support = np.stack([rng.choice(200, 3, replace=False) for _ in range(300)])
    weights = rng.uniform(0.5, 2.0, (300, 3)) * rng.choice([-1, 1], (300, 3))
    x = np.einsum("nk,nkd->nd", weights, d[support]).astype(np.float32)
    indices, coefs = smic_fast.omp(x, d, 3)
    recovered = np.mean([set(a) == set(b) for a, b in zip(indices, support)])
    assert recovered > 0.95


def test_exact_fit_stops_early_and_zero_signal_uses_no_atom(rng):
    d = unit_rows(rng, 50, 16)
    x = np.stack([0.8 * d[3] - 0.5 * d[7], np.zeros(16, np.float32)]).astype(np.float32)
    indices, coefs = smic_fast.omp(x, d, 5)
    assert set(indices[0][:2]) == {3, 7} and (indices[0][2:] == -1).all()
    np.testing.assert_allclose(sorted(coefs[0][:2]), [-0.5, 0.8], atol=1e-5)
    assert (indices[1] == -1).all() and (coefs[1] == 0).all()


def test_threads_blocks_and_coder_reuse_give_identical_results(rng):
    x, d = unit_rows(rng, 1001, 100), unit_rows(rng, 333, 100)
    one = smic_fast.omp(x, d, 5, n_threads=1)
    two = smic_fast.omp(x, d, 5, n_threads=2)
    coder = smic_fast.OmpCoder(d)
    parts = [coder.encode(x[i : i + 97], 5) for i in range(0, 1001, 97)]
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), one[0])
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), one[1])


@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 7, 3), (17, 33, 257), (300, 100, 513)])
@pytest.mark.parametrize("kernel", ["generic", "avx2", "avx512"])
def test_product_kernels_match_numpy(rng, shape, kernel):
    m, n, k = shape
    try:
        _core.set_gemm_kernel(kernel)
    except ValueError:
        pytest.skip(f"this CPU cannot run the {kernel} kernels")
    try:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((n, k)).astype(np.float32)
        np.testing.assert_allclose(_core.gemm_nt(a, b), a.astype(np.float64) @ b.T, atol=2e-4 * np.sqrt(k))
    finally:
        _core.set_gemm_kernel("auto")


@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 7, 3), (17, 33, 257), (300, 100, 513), (3, 300, 40)])
@pytest.mark.parametrize("half_exact", [False, True])
def test_product_kernels_agree_bit_for_bit(rng, shape, half_exact):
    # B exactly float16 takes the one-row half kernel for m = 1 on AVX2 and AVX-512; any B
    # otherwise. (n = 100: 7 panels, one group of the float16 copy narrower than the others.)
    families = vector_kernel_families()
    if not families:
        pytest.skip("this CPU has no AVX2/FMA/F16C: only the generic kernel runs")
    m, n, k = shape
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k)).astype(np.float16 if half_exact else np.float32).astype(np.float32)
    results = {}
    try:
        for name in ["generic"] + families:
            _core.set_gemm_kernel(name)
            results[name] = [_core.gemm_nt(a, b)] + [_core.gemm_nt(a[i:i + 1], b) for i in range(m)]
    finally:
        _core.set_gemm_kernel("auto")
    for name in families:
        for fast, slow in zip(results[name], results["generic"]):
            np.testing.assert_array_equal(fast, slow)


def test_generic_kernel_gives_the_same_codes_bit_for_bit(rng):
    # Both kernel families fuse each multiply-add (std::fma in the generic one), so a file
    # written on a CPU without AVX2 equals one written with it.
    if not vector_kernel_families():
        pytest.skip("this CPU has no AVX2/FMA/F16C: only the generic kernel runs")
    x, d = unit_rows(rng, 400, 300), unit_rows(rng, 200, 300)
    fast = smic_fast.omp(x, d, 4)
    _core.set_gemm_kernel("generic")
    try:
        slow = smic_fast.omp(x, d, 4)
    finally:
        _core.set_gemm_kernel("auto")
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])


def test_float64_and_strided_input_are_converted(rng):
    x, d = unit_rows(rng, 50, 32), unit_rows(rng, 40, 32)
    ref = smic_fast.omp(x, d, 3)
    wide = np.zeros((50, 64), np.float32)
    wide[:, ::2] = x
    for variant in (x.astype(np.float64), wide[:, ::2], np.asfortranarray(x)):
        got = smic_fast.omp(variant, d, 3)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_allclose(got[1], ref[1], atol=1e-6)


@pytest.mark.parametrize(
    ("make_args", "match"),
    [
        (lambda x, d: (x.astype(np.int32), d, 2), "X must be a float32 or float64 array"),
        (lambda x, d: (x, d.astype(np.complex64), 2), "D must be a float32 or float64 array"),
        (lambda x, d: (x[0], d, 2), r"X must be 2-dimensional"),
        (lambda x, d: (x[None], d, 2), r"X must be 2-dimensional"),
        (lambda x, d: (x[:, :10], d, 2), "X must have 16 columns"),
        (lambda x, d: (np.where(np.arange(16) == 3, np.nan, x).astype(np.float32), d, 2), "X contains NaN"),
        (lambda x, d: (x, np.where(np.arange(16) == 1, np.inf, d).astype(np.float32), 2), "D contains NaN"),
        (lambda x, d: (x, d, 0), "n_nonzero must be >= 1"),
        (lambda x, d: (x, d, 21), r"n_nonzero \(21\) must be <= the number of atoms K \(20\)"),
        (lambda x, d: (x, np.vstack([d, d]), 17), r"n_nonzero \(17\) must be <= the dimension d \(16\)"),
        (lambda x, d: (x, d[:0], 1), r"D must have at least one atom \(K = 0\)"),
        (lambda x, d: (x, 2 * d, 2), "D must have rows of unit norm: row 0 has norm 2"),
        (lambda x, d: (x, d, 2.5), "n_nonzero must be an integer"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(rng, make_args, match):
    x, d = unit_rows(rng, 10, 16), unit_rows(rng, 20, 16)
    with pytest.raises(ValueError, match=match):
        smic_fast.omp(*make_args(x, d))


def test_negative_tol_is_refused(rng):
    x, d = unit_rows(rng, 10, 16), unit_rows(rng, 20, 16)
    with pytest.raises(ValueError, match="tol must be a finite number >= 0"):
        smic_fast.omp(x, d, 2, tol=-1.0)


def test_core_binding_is_strict_about_dtype_and_layout(rng):
    x, d = unit_rows(rng, 10, 16), unit_rows(rng, 20, 16)
    with pytest.raises(ValueError, match="X must have dtype float32, got float64"):
        _core.omp(x.astype(np.float64), d, 2)
    with pytest.raises(ValueError, match="X must be C-contiguous"):
        _core.omp(np.asfortranarray(x), d, 2)
    with pytest.raises(ValueError, match="D must be 2-dimensional"):
        _core.omp(x, d[0], 2)
    with pytest.raises(ValueError, match="X has 8 columns but D has d = 16"):
        _core.omp(np.ascontiguousarray(x[:, :8]), d, 2)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        _core.omp(np.full((2, 16), np.nan, np.float32), d, 2)
    with pytest.raises(ValueError, match="n_nonzero must be >= 1"):
        _core.omp(x, d, 0)
    with pytest.raises(ValueError, match="kernel 'sse9' is not available"):
        _core.set_gemm_kernel("sse9")
