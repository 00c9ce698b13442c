"""Residual refinement: a scalar-quantised correction added to each item's sparse code.

A few atoms carry an item's meaning at a handful of bits, but they stop near the cosine the
dictionary can express (about 0.97 on CLIP-like collections): what is left is spread over every
dimension, and no dictionary compresses it. Search back-ends and anyone who needs higher
fidelity can ask for a refinement layer: the residual ``r = e - ê`` between the unit embedding
and what the atoms decode to is quantised with a uniform ``step`` and range-coded with one
static table per batch (stored beside it). Because the atoms already removed most of the
energy, the residual's levels are far more concentrated than the embedding's own components,
so the refinement costs much less than coding the embedding alone at the same step (the
``scalar`` baseline of ``smic eval``).

The decoder adds ``levels * step`` to the atoms' reconstruction and renormalises. Chunks follow
the items' chunks, so one item still decodes on its own.

Payload of a ``RESD`` section (docs/format.md): ``step`` (f64), ``max_level`` M (u32),
``n_items``, ``dim``, ``chunk_size``, ``n_chunks`` (u32 each), the 2M+1 level counts as LEB128
varints, the chunk byte offsets (u64, n_chunks+1 of them) and the range-coded chunks.
"""
from __future__ import annotations

import math
import numbers
import struct
from dataclasses import dataclass

import numpy as np

from . import range_coder
from ._packing import pack_varints, unpack_varints
from .errors import FormatError
from .quantizer import dequantize, quantize

__all__ = ["MIN_STEP", "ResidualCode", "check_step", "encode_residual", "residual_levels", "refine"]

TAG = b"RESD"
MIN_STEP = 1e-4  # finer steps would only code float noise (levels beyond 2 / step)
_HEAD = struct.Struct("<dIIIII")  # step, max_level, n_items, dim, chunk_size, n_chunks


def check_step(step: object) -> float:
    """The refinement step as a float in [MIN_STEP, 1], or ValueError."""
    if isinstance(step, bool) or not isinstance(step, numbers.Real):
        raise ValueError(f"residual_step must be a number, got {step!r}")
    value = float(step)
    if not (math.isfinite(value) and MIN_STEP <= value <= 1.0):
        raise ValueError(f"residual_step must be in [{MIN_STEP:g}, 1], got {step!r}")
    return value


def residual_levels(unit: np.ndarray, decoded: np.ndarray, step: float) -> np.ndarray:
    """(N, d) int32 levels of ``unit - decoded`` at `step` (round to nearest)."""
    difference = unit.astype(np.float32) - decoded.astype(np.float32)
    return quantize(difference, step)


def refine(decoded: np.ndarray, levels: np.ndarray, step: float) -> np.ndarray:
    """What a reader gets: the atoms' reconstruction plus the dequantised residual, as unit rows
    (float32). Encoder and decoder both call this, so their results are identical."""
    out = decoded.astype(np.float32) + dequantize(levels, step)
    norms = np.linalg.norm(out.astype(np.float64), axis=1, keepdims=True)
    return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def encode_residual(levels: np.ndarray, step: float, chunk_size: int) -> bytes:
    """The RESD payload of one batch's (N, d) residual levels."""
    n, d = levels.shape
    max_level = int(np.abs(levels).max()) if levels.size else 0
    symbols = (levels.astype(np.int64) + max_level).astype(np.int32)
    counts = np.bincount(symbols.ravel(), minlength=2 * max_level + 1).astype(np.uint64)
    freqs = range_coder.frequencies_from_counts(counts)
    chunks = [range_coder.encode(symbols[i:i + chunk_size].ravel(), freqs) for i in range(0, n, chunk_size)]
    offsets = np.zeros(len(chunks) + 1, dtype="<u8")
    offsets[1:] = np.cumsum([len(c) for c in chunks])
    return (_HEAD.pack(step, max_level, n, d, chunk_size, len(chunks)) + pack_varints(counts)
            + offsets.tobytes() + b"".join(chunks))


@dataclass
class ResidualCode:
    """A parsed RESD section: decodes the residual levels of any range of its items."""

    step: float
    max_level: int
    n_items: int
    dim: int
    chunk_size: int
    freqs: np.ndarray
    offsets: np.ndarray
    data: bytes

    @classmethod
    def parse(cls, payload: bytes, name: str = "<residual>") -> ResidualCode:
        """Check every field against the payload's length; FormatError on any inconsistency."""
        if len(payload) < _HEAD.size:
            raise FormatError(f"{name}: truncated residual section")
        step, max_level, n_items, dim, chunk_size, n_chunks = _HEAD.unpack_from(payload, 0)
        if (not (math.isfinite(step) and MIN_STEP <= step <= 1.0) or max_level > 2.0 / step + 1
                or dim < 1 or chunk_size < 1 or n_chunks != -(-n_items // chunk_size)):
            raise FormatError(f"{name}: inconsistent residual section (step={step}, n={n_items}, "
                              f"chunks={n_chunks})")
        counts, pos = unpack_varints(payload, 2 * max_level + 1, _HEAD.size, what=f"{name}: residual table")
        if len(payload) - pos < 8 * (n_chunks + 1):
            raise FormatError(f"{name}: truncated residual section")
        offsets = np.frombuffer(payload, dtype="<u8", count=n_chunks + 1, offset=pos).astype(np.uint64)
        data = payload[pos + 8 * (n_chunks + 1):]
        if offsets[0] != 0 or offsets[-1] != len(data) or (np.diff(offsets.astype(np.int64)) < 0).any():
            raise FormatError(f"{name}: corrupt chunk offsets in residual section")
        try:
            freqs = range_coder.frequencies_from_counts(counts)
        except ValueError as error:
            raise FormatError(f"{name}: bad residual table ({error})") from error
        return cls(step, max_level, n_items, dim, chunk_size, freqs, offsets, data)

    def levels(self, start: int = 0, stop: int | None = None, name: str = "<residual>") -> np.ndarray:
        """(stop - start, dim) int32 levels of items [start, stop), decoding only their chunks."""
        stop = self.n_items if stop is None else stop
        first, last = start // self.chunk_size, -(-stop // self.chunk_size)
        parts = []
        for c in range(first, last):
            count = min(self.chunk_size, self.n_items - c * self.chunk_size)
            chunk = self.data[int(self.offsets[c]):int(self.offsets[c + 1])]
            try:
                parts.append(range_coder.decode(chunk, self.freqs, count * self.dim).reshape(count, self.dim))
            except ValueError as error:  # DecodeError included
                raise FormatError(f"{name}: corrupt residual data ({error})") from error
        if not parts:
            return np.zeros((0, self.dim), np.int32)
        rows = np.concatenate(parts)[start - first * self.chunk_size: stop - first * self.chunk_size]
        return (rows - self.max_level).astype(np.int32)
