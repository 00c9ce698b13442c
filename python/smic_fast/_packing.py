"""Small binary encodings used inside sections: LEB128 varints of count tables, and int8
atoms range-coded with a table of their own when that is smaller than storing them raw."""
from __future__ import annotations

import numpy as np

from . import range_coder
from .errors import FormatError


def pack_varints(values: np.ndarray) -> bytes:
    """Unsigned LEB128 of each value (little groups of 7 bits, high bit = more follows)."""
    out = bytearray()
    for value in np.asarray(values, dtype=np.uint64).tolist():
        while True:
            byte = value & 0x7F
            value >>= 7
            if value:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                break
    return bytes(out)


def unpack_varints(data: bytes, count: int, pos: int = 0, *, what: str = "table") -> tuple[np.ndarray, int]:
    """Read `count` varints from data[pos:]; returns (values, new position)."""
    values = np.empty(count, dtype=np.uint64)
    for i in range(count):
        value, shift = 0, 0
        while True:
            if pos >= len(data):
                raise FormatError(f"{what}: truncated varint")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 63:
                raise FormatError(f"{what}: varint too long")
        values[i] = value
    return values, pos


def pack_int8_symbols(levels: np.ndarray) -> bytes:
    """int8 values: flag 0 + raw bytes, or flag 1 + 256 varint counts + range-coded stream,
    whichever is shorter."""
    raw = b"\x00" + levels.astype(np.int8).tobytes()
    symbols = levels.astype(np.int32).ravel() + 128
    counts = np.bincount(symbols, minlength=256)
    coded = b"\x01" + pack_varints(counts) + range_coder.encode(
        symbols, range_coder.frequencies_from_counts(counts))
    return coded if len(coded) < len(raw) else raw


def unpack_int8_symbols(data: bytes, count: int) -> np.ndarray:
    """Inverse of :func:`pack_int8_symbols`."""
    if not data:
        raise FormatError("atoms: empty payload")
    if data[0] == 0:
        if len(data) != 1 + count:
            raise FormatError(f"atoms: expected {count} int8 values, found {len(data) - 1} bytes")
        return np.frombuffer(data, dtype=np.int8, offset=1).copy()
    if data[0] != 1:
        raise FormatError(f"atoms: unknown coding flag {data[0]}")
    counts, pos = unpack_varints(data, 256, 1, what="atom table")
    try:
        freqs = range_coder.frequencies_from_counts(counts)
        symbols = range_coder.decode(data[pos:], freqs, count)
    except ValueError as error:
        raise FormatError(f"atoms: {error}") from error
    return (symbols - 128).astype(np.int8)
