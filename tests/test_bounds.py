"""The Gaussian and Gaussian-mixture rate–distortion bounds (smic_fast.evaluation.bounds) against
their closed forms: reverse water-filling on known spectra, sampled Gaussians, mixtures."""
from __future__ import annotations

import math

import numpy as np
import pytest

from smic_fast.evaluation.bounds import (bounds_table, covariance_eigenvalues, distortion_of_cosine,
                                         gaussian_rd_bound, kmeans_classes, mixture_rd_bound,
                                         reverse_water_filling)


def test_isotropic_spectrum_costs_d_halves_of_log_variance_over_theta():
    d, variance = 16, 0.01
    for distortion in (0.001, 0.02, 0.08, 0.159):
        theta, bits = reverse_water_filling(np.full(d, variance), distortion)
        assert theta[0] == pytest.approx(distortion / d)  # every component gets D/d
        assert bits[0] == pytest.approx(d / 2 * math.log2(variance / (distortion / d)))
    theta, bits = reverse_water_filling(np.full(d, variance), [0.16, 0.5])  # D at or above the variance: free
    assert np.all(np.isinf(theta)) and np.all(bits == 0)


def test_water_level_meets_the_distortion_and_skips_weak_components():
    eigenvalues = np.array([1.0, 0.5, 0.1, 0.01, 0.001])
    distortions = np.array([0.004, 0.05, 0.3, 1.2])
    theta, bits = reverse_water_filling(eigenvalues, distortions)
    for t, b, target in zip(theta, bits, distortions):
        assert np.sum(np.minimum(t, eigenvalues)) == pytest.approx(target)
        strong = eigenvalues[eigenvalues > t]
        assert b == pytest.approx(0.5 * np.sum(np.log2(strong / t)))
    # D = 0.3: the two weakest components are dropped (0.011), the three strongest share the rest
    assert theta[2] == pytest.approx((0.3 - 0.011) / 3)
    assert np.all(np.diff(bits) < 0)  # more distortion, fewer bits


def test_weights_act_as_repeated_eigenvalues():
    """A mixture's weighting: an eigenvalue of weight 1/2 twice is the eigenvalue once."""
    eigenvalues = np.array([0.3, 0.05, 0.02, 0.001])
    once = reverse_water_filling(eigenvalues, [0.01, 0.1])
    twice = reverse_water_filling(np.concatenate([eigenvalues, eigenvalues]), [0.01, 0.1],
                                  weights=np.full(8, 0.5))
    np.testing.assert_allclose(once[0], twice[0])
    np.testing.assert_allclose(once[1], twice[1])


def test_sampled_isotropic_gaussian_matches_the_closed_form():
    rng = np.random.default_rng(0)
    d, variance = 16, 0.01
    x = rng.standard_normal((200_000, d)) * math.sqrt(variance)
    for cosine in (0.96, 0.99):
        theta = 2 * (1 - cosine) / d
        assert gaussian_rd_bound(x, cosine) == pytest.approx(d / 2 * math.log2(variance / theta), rel=0.01)
    bits = gaussian_rd_bound(x, [0.9, 0.96, 0.99])
    assert isinstance(bits, np.ndarray) and bits.shape == (3,) and bits[0] == 0.0  # D = 0.2 > total variance


def mixture(rng: np.random.Generator, n: int, d: int, classes: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.standard_normal((classes, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(classes, size=n)
    x = centres[labels] + spread * rng.standard_normal((n, d)) / math.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)), labels


def test_mixture_bound_beats_one_gaussian_on_a_mixture_by_at_most_the_class_bits():
    rng = np.random.default_rng(1)
    x, _ = mixture(rng, 6000, 48, 8, 0.2)
    cosines = [0.9, 0.95, 0.99]
    gaussian = gaussian_rd_bound(x, cosines)
    mixed = mixture_rd_bound(x, cosines, n_classes=8)
    assert np.all(mixed <= gaussian + math.log2(8))
    assert np.all(mixed < gaussian - 5)  # well-separated classes: far cheaper than one Gaussian
    assert np.all(mixed > math.log2(8) - 0.1)  # at least the class index (8 equiprobable classes)
    assert mixed[0] == pytest.approx(mixed[1])  # D above the classes' variance: the index is enough
    assert mixed[1] == pytest.approx(math.log2(8), abs=0.05)
    assert mixed[2] > mixed[1] + 10


def test_one_class_mixture_is_the_gaussian_bound():
    rng = np.random.default_rng(2)
    x, _ = mixture(rng, 2000, 24, 4, 0.5)
    cosines = np.array([0.8, 0.9, 0.97])
    np.testing.assert_allclose(mixture_rd_bound(x, cosines, n_classes=1), gaussian_rd_bound(x, cosines))


def test_kmeans_classes_find_separated_clusters():
    rng = np.random.default_rng(3)
    x, truth = mixture(rng, 1500, 32, 5, 0.1)
    labels = kmeans_classes(x, 5, seed=0)
    assert labels.min() == 0 and labels.max() == 4
    for c in range(5):  # each found class is one true class
        assert len(set(truth[labels == c])) == 1
    np.testing.assert_array_equal(labels, kmeans_classes(x, 5, seed=0))  # seeded


def test_rank_deficient_class_covariance_uses_the_gram_matrix():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((10, 40))
    values = covariance_eigenvalues(x)
    centred = x - x.mean(axis=0)
    np.testing.assert_allclose(np.sort(values), np.sort(np.clip(np.linalg.eigvalsh(centred.T @ centred / 10),
                                                                0, None)), atol=1e-10)


def test_bad_inputs_and_the_report_table():
    with pytest.raises(ValueError, match="cosines"):
        distortion_of_cosine(1.5)
    with pytest.raises(ValueError, match="distortions"):
        reverse_water_filling(np.ones(3), 0.0)
    rng = np.random.default_rng(5)
    x, _ = mixture(rng, 400, 16, 4, 0.3)
    table = bounds_table(x, [0.8, 0.9], n_classes=4)
    assert table["cosine"] == [0.8, 0.9] and table["n_classes"] == 4 and table["train_items"] == 400
    assert table["gaussian"][1] == pytest.approx(gaussian_rd_bound(x, 0.9), abs=1e-3)


def test_the_mixture_bound_takes_another_covariance_estimate():
    """eigenvalues_of replaces the sample covariance: the same estimate gives the same bits,
    and every eigenvalue four times larger costs one more bit per dimension above the water."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((600, 12)) * np.linspace(2, 0.2, 12)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cosines = [0.9, 0.95]
    plain = mixture_rd_bound(x, cosines, n_classes=4)
    np.testing.assert_allclose(mixture_rd_bound(x, cosines, n_classes=4, eigenvalues_of=covariance_eigenvalues), plain)
    larger = mixture_rd_bound(x, cosines, n_classes=4, eigenvalues_of=lambda rows: 4 * covariance_eigenvalues(rows))
    assert np.all(larger > plain + 1)
