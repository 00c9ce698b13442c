"""Argument clean-up shared by the public wrappers: one place that decides which inputs are
converted (float64 → float32, non-contiguous → contiguous) and which are refused, so every
function gives the same message for the same mistake."""
from __future__ import annotations

import numpy as np


def as_float32_matrix(value: object, name: str, *, columns: int | None = None) -> np.ndarray:
    """Return `value` as a C-contiguous (n, d) float32 array.

    float32 and float64 arrays (any layout) are accepted; float64 and non-contiguous input is
    copied. Anything else — integers, complex, objects, wrong rank, NaN or inf — raises
    ValueError naming `name`.
    """
    array = np.asarray(value)
    if array.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name} must be a float32 or float64 array, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-dimensional (n, d), got shape {array.shape}")
    if columns is not None and array.shape[1] != columns:
        raise ValueError(f"{name} must have {columns} columns, got shape {array.shape}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array.ravel()))[0])
        raise ValueError(f"{name} contains NaN or infinity (first at row {bad // max(array.shape[1], 1)})")
    return array


def as_count(value: object, name: str, *, minimum: int = 0) -> int:
    """Return `value` as an int >= minimum; bools and non-integers raise ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def as_threads(value: int | None) -> int:
    """None means every core OpenMP sees (0 for the core)."""
    return 0 if value is None else as_count(value, "n_threads", minimum=1)
