"""Uniform scalar quantizer with a dead zone, for sparse coefficients (C++ core).

    q     = sign(x) * floor(|x| / step + rounding)
    x_hat = sign(q) * (|q| - bias) * step

``rounding=0.5`` rounds to nearest; smaller values widen the zero bin (values with
``|x| < (1 - rounding) * step`` become 0), which lowers the rate of peaked coefficient
distributions. ``bias`` pulls reconstruction points toward zero.
"""
from __future__ import annotations

import numpy as np

from .. import _core

__all__ = ["quantize", "dequantize"]


def quantize(values: np.ndarray, step: float, rounding: float = 0.5) -> np.ndarray:
    """Quantize float values to int32 levels (same shape).

    float64 or non-contiguous input is converted to contiguous float32 first.

    Raises:
        ValueError: step not finite and > 0, rounding outside [0, 1), NaN/inf values, or a
            value too large for an int32 level at this step.
    """
    array = np.asarray(values)
    if array.dtype.kind != "f":
        raise ValueError(f"values must be a float array, got dtype {array.dtype}")
    return _core.quantize(np.ascontiguousarray(array, dtype=np.float32), float(step), float(rounding))


def dequantize(levels: np.ndarray, step: float, bias: float = 0.0) -> np.ndarray:
    """Reconstruction points (float32, same shape) of int levels from :func:`quantize`.

    Raises:
        ValueError: non-integer input, levels outside int32, step not finite and > 0, bias
            outside [0, 1).
    """
    array = np.asarray(levels)
    if array.dtype.kind not in "iu":
        raise ValueError(f"levels must be an integer array, got dtype {array.dtype}")
    if array.size and (array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max):
        raise ValueError("levels must fit in int32")
    return _core.dequantize(np.ascontiguousarray(array, dtype=np.int32), float(step), float(bias))
