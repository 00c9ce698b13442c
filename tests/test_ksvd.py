"""K-SVD dictionary learning: quality against scikit-learn, determinism, atom upkeep, errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.decomposition import MiniBatchDictionaryLearning

import smic_fast
from smic_fast import _core

from problems import planted_collection, unit_rows


def _omp_error(x: np.ndarray, d: np.ndarray, k: int) -> float:
    indices, coefs = smic_fast.omp(x, d, k)
    residual = x.astype(np.float64) - smic_fast.reconstruct(indices, coefs, d)
    return float(np.mean(np.sum(residual**2, axis=1)))


def test_no_worse_than_sklearn_minibatch_dictionary_learning(rng):
    x, _ = planted_collection(rng, 4000, 96, 48, 4, noise=0.05)
    ours = smic_fast.learn_dictionary(x, 96, 4, n_iter=15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's convergence chatter is not under test
        peer = MiniBatchDictionaryLearning(
            n_components=96, transform_algorithm="omp", transform_n_nonzero_coefs=4,
            batch_size=256, max_iter=30, random_state=0,
        ).fit(x)
    peer_atoms = peer.components_ / np.linalg.norm(peer.components_, axis=1, keepdims=True)
    ours_error = _omp_error(x, ours, 4)
    peer_error = _omp_error(x, peer_atoms.astype(np.float32), 4)
    assert ours_error <= peer_error


def test_recovers_a_planted_dictionary(rng):
    x, truth = planted_collection(rng, 3000, 40, 32, 3, noise=0.01)
    learned = smic_fast.learn_dictionary(x, 40, 3, n_iter=30, seed=1)
    best_match = np.abs(truth @ learned.T).max(axis=1)
    assert np.mean(best_match > 0.95) >= 0.9


def test_result_shape_dtype_norms_and_decreasing_error(rng):
    x, _ = planted_collection(rng, 1500, 64, 40, 3)
    d, errors = smic_fast.learn_dictionary(x, 64, 3, n_iter=8, return_errors=True)
    assert d.shape == (64, 40) and d.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    assert errors.shape == (8,) and errors[-1] < errors[0]
    # Re-coding with the final atoms does at least about as well as the last refit.
    assert _omp_error(x, d, 3) <= errors[-1] * 1.02


def test_deterministic_for_a_seed_whatever_the_threads(rng):
    x, _ = planted_collection(rng, 1200, 50, 24, 3)
    a = smic_fast.learn_dictionary(x, 50, 3, n_iter=4, seed=7, n_threads=1)
    b = smic_fast.learn_dictionary(x, 50, 3, n_iter=4, seed=7, n_threads=2)
    c = smic_fast.learn_dictionary(x, 50, 3, n_iter=4, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_zero_iterations_returns_distinct_data_rows(rng):
    x = unit_rows(rng, 300, 16)
    d = smic_fast.learn_dictionary(x, 20, 2, n_iter=0, seed=3)
    matches = np.abs(d @ x.T).max(axis=1)
    np.testing.assert_allclose(matches, 1.0, atol=1e-5)
    assert len({tuple(row) for row in d}) == 20


def test_duplicate_and_unused_atoms_are_replaced(rng):
    # Half the rows are copies of one vector: a random start picks it many times over.
    x = unit_rows(rng, 400, 24)
    x[:200] = x[0]
    d, _errors, replaced = _core.learn_dictionary(x, 40, 2, 3, 0, 0, 0.99, None)
    assert replaced > 0
    gram = np.abs(d @ d.T) - np.eye(40)
    assert gram.max() <= 0.99 + 1e-5


def test_progress_is_reported_and_can_stop_or_raise(rng):
    x, _ = planted_collection(rng, 500, 30, 16, 2)
    seen: list[tuple[int, float]] = []
    smic_fast.learn_dictionary(x, 30, 2, n_iter=5, progress=lambda i, e: seen.append((i, e)))
    assert [i for i, _ in seen] == list(range(5)) and all(e > 0 for _, e in seen)

    _, errors = smic_fast.learn_dictionary(
        x, 30, 2, n_iter=5, progress=lambda i, e: i < 1, return_errors=True
    )
    assert len(errors) == 2

    def broken(i, e):
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        smic_fast.learn_dictionary(x, 30, 2, n_iter=5, progress=broken)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_atoms": 101}, r"n_atoms \(101\) must be <= the number of rows of X \(100\)"),
        ({"n_atoms": 0}, "n_atoms must be >= 1"),
        ({"n_nonzero": 0}, "n_nonzero must be >= 1"),
        ({"n_nonzero": 9}, r"n_nonzero \(9\) must be <= min\(n_atoms, d\) = 8"),
        ({"n_iter": -1}, "n_iter must be >= 0"),
        ({"max_coherence": 0.0}, r"max_coherence must be in \(0, 1\]"),
        ({"seed": -2}, "seed must be >= 0"),
        ({"min_usage": 1.0}, r"min_usage must be in \[0, 1\)"),
    ],
)
def test_bad_arguments(rng, kwargs, match):
    x = unit_rows(rng, 100, 8)
    args = {"n_atoms": 10, "n_nonzero": 2, "n_iter": 1} | kwargs
    with pytest.raises(ValueError, match=match):
        smic_fast.learn_dictionary(x, **args)


def test_bad_training_data(rng):
    x = unit_rows(rng, 100, 8)
    x[5, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        smic_fast.learn_dictionary(x, 10, 2)
    with pytest.raises(ValueError, match="fewer non-zero signals"):
        smic_fast.learn_dictionary(np.zeros((50, 8), np.float32), 10, 2)
    with pytest.raises(ValueError, match="X must be a float32 or float64 array"):
        smic_fast.learn_dictionary(np.ones((50, 8), np.int64), 10, 2)
