"""Range coding of integer symbols with integer-only probability models.

A byte-oriented range coder (64-bit state, carry propagation) codes a 1-D array of symbols in
``[0, alphabet_size)`` with one of two models:

* a **static** model: a 1-D ``uint32`` frequency table, every entry >= 1, summing to at most
  2^31 (build one with :func:`frequencies_from_counts` or :func:`frequencies_of`); the table
  must be stored beside the data, the decoder needs the same one;
* an **adaptive** model, :class:`Adaptive`: every symbol starts at frequency 1 and gains
  ``increment`` each time it is coded; all frequencies are halved (rounding up) when their total
  exceeds ``limit``. Nothing needs storing beside the data but the three parameters.

Both models are integer arithmetic only, so data coded on one machine decodes bit-exactly on
any other. The stream does not record its length: store the symbol count and pass it to
:func:`decode`. Corrupt or truncated data raises :class:`smic_fast.DecodeError` (a
``ValueError``), never a crash.

>>> import numpy as np
>>> from smic_fast import range_coder
>>> symbols = np.array([0, 1, 1, 2, 1, 1], dtype=np.int32)
>>> freqs = range_coder.frequencies_of(symbols, alphabet_size=3)
>>> data = range_coder.encode(symbols, freqs)
>>> range_coder.decode(data, freqs, count=len(symbols)).tolist()
[0, 1, 1, 2, 1, 1]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from .. import _core
from .._core import DecodeError
from .._validation import as_count

__all__ = [
    "Adaptive",
    "DecodeError",
    "MAX_TOTAL",
    "decode",
    "encode",
    "frequencies_from_counts",
    "frequencies_of",
]

#: Largest sum a static frequency table may have (and largest adaptive ``limit``).
MAX_TOTAL = 1 << 31


@dataclass(frozen=True)
class Adaptive:
    """Parameters of the adaptive model (see the module docstring).

    Bounds (checked here, ValueError otherwise): ``1 <= alphabet_size <= limit // 2``,
    ``1 <= increment <= limit // 4``, ``2 <= limit <= 2**31``. A larger ``increment`` adapts
    faster; a larger ``limit`` remembers longer (an alphabet of 65536 needs ``limit >= 2**17``).
    """

    alphabet_size: int
    increment: int = 24
    limit: int = 65536

    def __post_init__(self) -> None:
        limit = as_count(self.limit, "limit", minimum=2)
        if limit > MAX_TOTAL:
            raise ValueError(f"limit must be <= 2**31, got {limit}")
        size = as_count(self.alphabet_size, "alphabet_size", minimum=1)
        if size > limit // 2:
            raise ValueError(f"alphabet_size must be <= limit // 2 = {limit // 2}, got {size}")
        increment = as_count(self.increment, "increment", minimum=1)
        if increment > limit // 4:
            raise ValueError(f"increment must be <= limit // 4 = {limit // 4}, got {increment}")


Model = Union[np.ndarray, Adaptive]


def _symbols(symbols: object, alphabet_size: int) -> np.ndarray:
    """`symbols` as C-contiguous int32, refusing non-integers and (before any narrowing cast)
    values outside [0, alphabet_size), naming the first bad position."""
    array = np.asarray(symbols)
    if array.ndim != 1:
        raise ValueError(f"symbols must be 1-dimensional, got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int32)
    if array.dtype.kind not in "iu":
        raise ValueError(f"symbols must have an integer dtype, got {array.dtype}")
    if array.dtype == np.int32:
        # The core checks the range inside its coding loop (no extra pass over the data).
        return np.ascontiguousarray(array)
    bad = (array < 0) | (array >= alphabet_size)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"symbols[{i}] = {array[i]} is outside [0, {alphabet_size})")
    return np.ascontiguousarray(array, dtype=np.int32)


def _freqs(freqs: object) -> np.ndarray:
    """A static table as C-contiguous uint32 (the core checks zeros and the sum)."""
    array = np.asarray(freqs)
    if array.dtype != np.uint32:
        raise ValueError(
            f"freqs must be a uint32 array (see frequencies_from_counts) or an Adaptive, "
            f"got dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"freqs must be 1-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError("freqs must not be empty")
    return np.ascontiguousarray(array)


def encode(symbols: np.ndarray, freqs: Model) -> bytes:
    """Range-code `symbols` with a model; return the coded bytes.

    Args:
        symbols: 1-D array of any integer dtype, values in ``[0, alphabet_size)``; converted
            to int32 (values are range-checked first, so nothing wraps).
        freqs: a static model (1-D ``uint32`` table, entries >= 1, sum <= 2^31; its length is
            the alphabet size) or an :class:`Adaptive`.

    Returns:
        The coded stream. Its length is 8 bytes plus about ``sum(-log2 p(symbol)) / 8``.

    Raises:
        ValueError: bad dtype, shape or table, or a symbol out of range (its position named).
    """
    if isinstance(freqs, Adaptive):
        s = _symbols(symbols, freqs.alphabet_size)
        return _core.range_encode_adaptive(s, freqs.alphabet_size, freqs.increment, freqs.limit)
    table = _freqs(freqs)
    return _core.range_encode_static(_symbols(symbols, table.size), table)


def decode(data: bytes, freqs: Model, count: int) -> np.ndarray:
    """Decode `count` symbols from `data` with the model used to encode them.

    Args:
        data: bytes-like (bytes, bytearray, memoryview), exactly as returned by :func:`encode`.
        freqs: the same static table or :class:`Adaptive` as given to :func:`encode`.
        count: number of symbols to decode (the stream does not record it).

    Returns:
        1-D int32 array of `count` symbols.

    Raises:
        DecodeError: `data` is truncated, corrupt, longer than `count` symbols need, or was
            coded with another model (detected in most but not all cases).
        ValueError: bad `freqs` or `count`.
    """
    count = as_count(count, "count")
    if not isinstance(data, bytes):
        try:
            data = bytes(memoryview(data))
        except TypeError:
            raise ValueError(f"data must be bytes-like, got {type(data).__name__}") from None
    if isinstance(freqs, Adaptive):
        return _core.range_decode_adaptive(data, count, freqs.alphabet_size, freqs.increment,
                                           freqs.limit)
    return _core.range_decode_static(data, _freqs(freqs), count)


def frequencies_from_counts(counts: np.ndarray, total_bits: int | None = None) -> np.ndarray:
    """Static frequency table (uint32) from non-negative symbol counts.

    Zero counts become 1, so every symbol stays codable. With ``total_bits`` (0..31), or when
    the counts sum past 2^31 (then ``total_bits = 31``), the table is rescaled to sum exactly
    ``2**total_bits``, every entry >= 1, with close to the least code-length loss
    (proportional floors, then greedy +1/-1 fix-ups by marginal gain). Integer-only and
    deterministic: the same counts give the same table on every machine. A power-of-two total
    also codes a little faster.

    Args:
        counts: 1-D array of non-negative integers (any integer dtype; summing below 2^64).
        total_bits: the table's sum is ``2**total_bits``; needs ``len(counts) <= 2**total_bits``.
    """
    array = np.asarray(counts)
    if array.ndim != 1:
        raise ValueError(f"counts must be 1-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError("counts must not be empty")
    if array.dtype.kind not in "iu":
        raise ValueError(f"counts must have an integer dtype, got {array.dtype}")
    if array.dtype.kind == "i" and (array < 0).any():
        i = int(np.flatnonzero(array < 0)[0])
        raise ValueError(f"counts[{i}] = {array[i]} is negative")
    if total_bits is None:
        bits = -1
    else:
        bits = as_count(total_bits, "total_bits")
        if bits > 31:
            raise ValueError(f"total_bits must be in [0, 31], got {bits}")
        if array.size > (1 << bits):
            raise ValueError(
                f"total_bits={bits} leaves no room for {array.size} symbols with frequency >= 1")
    return _core.frequencies_from_counts(np.ascontiguousarray(array, dtype=np.uint64), bits)


def frequencies_of(symbols: np.ndarray, alphabet_size: int,
                   total_bits: int | None = None) -> np.ndarray:
    """Static frequency table fitted to `symbols` (counts, then :func:`frequencies_from_counts`).

    Args:
        symbols: 1-D integer array with values in ``[0, alphabet_size)``.
        alphabet_size: length of the table.
        total_bits: as in :func:`frequencies_from_counts`.
    """
    size = as_count(alphabet_size, "alphabet_size", minimum=1)
    if size > MAX_TOTAL:
        raise ValueError(f"alphabet_size must be <= 2**31, got {size}")
    s = _symbols(symbols, size)
    if s.size and (int(s.min()) < 0 or int(s.max()) >= size):
        bad = (s < 0) | (s >= size)
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"symbols[{i}] = {s[i]} is outside [0, {size})")
    counts = np.bincount(s, minlength=size).astype(np.uint64)
    return frequencies_from_counts(counts, total_bits)
