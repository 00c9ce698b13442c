"""Dead-zone scalar quantizer: formula, dead zone, reconstruction, errors."""
from __future__ import annotations

import numpy as np
import pytest

import smic_fast


def test_matches_formula_and_round_trips_within_half_a_step(rng):
    x = (rng.standard_normal(10_000) * 3).astype(np.float32)
    for rounding in (0.5, 0.3, 0.0):
        q = smic_fast.quantize(x, 0.25, rounding=rounding)
        expected = np.sign(x) * np.floor(np.abs(x.astype(np.float64)) / 0.25 + rounding)
        np.testing.assert_array_equal(q, expected.astype(np.int32))
    q = smic_fast.quantize(x, 0.25)
    assert q.dtype == np.int32 and q.shape == x.shape
    assert np.abs(smic_fast.dequantize(q, 0.25) - x).max() <= 0.125 + 1e-6


def test_dead_zone_and_bias():
    x = np.array([0.0, 0.6, -0.6, 0.74, 0.76, 1.3, -2.2], np.float32)
    q = smic_fast.quantize(x, 1.0, rounding=0.25)  # zero bin is |x| < 0.75
    np.testing.assert_array_equal(q, [0, 0, 0, 0, 1, 1, -2])
    np.testing.assert_allclose(smic_fast.dequantize(q, 1.0, bias=0.2), [0, 0, 0, 0, 0.8, 0.8, -1.8])


def test_shapes_are_kept_and_float64_converted():
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    q = smic_fast.quantize(x, 0.5)
    assert q.shape == (3, 4)
    assert smic_fast.dequantize(q.astype(np.int64), 0.5).shape == (3, 4)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: smic_fast.quantize(np.ones(3, np.float32), 0.0), "step must be a finite number > 0"),
        (lambda: smic_fast.quantize(np.ones(3, np.float32), np.nan), "step must be a finite number > 0"),
        (lambda: smic_fast.quantize(np.ones(3, np.float32), 1.0, rounding=1.0), r"rounding must be in \[0, 1\)"),
        (lambda: smic_fast.quantize(np.array([1.0, np.inf], np.float32), 1.0), "values contains NaN or infinity"),
        (lambda: smic_fast.quantize(np.array([3e9], np.float32), 1.0), "too large for step"),
        (lambda: smic_fast.quantize(np.array([1, 2]), 1.0), "values must be a float array"),
        (lambda: smic_fast.dequantize(np.array([1.0]), 1.0), "levels must be an integer array"),
        (lambda: smic_fast.dequantize(np.array([2**40]), 1.0), "levels must fit in int32"),
        (lambda: smic_fast.dequantize(np.array([1], np.int32), 1.0, bias=-0.1), r"bias must be in \[0, 1\)"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
