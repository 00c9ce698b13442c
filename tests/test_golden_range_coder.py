"""The range coder's golden streams as files (tests/golden/range_coder_*.bin), which the C++
suite (cpp/tests/test_range_coder.cpp) compares its own output with: the Python binding writes
the same bytes, so the files, the hex constants of test_range_coder.py and both languages agree."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smic_fast.coding import range_coder as rc

GOLDEN = Path(__file__).resolve().parent / "golden"
SYMBOLS = np.array([0, 1, 2, 3, 2, 1, 0, 0, 0, 3, 3, 1, 2, 0, 1, 1], dtype=np.int32)


@pytest.mark.parametrize("name,model", [
    ("range_coder_static_pow2.bin", np.array([5, 4, 3, 4], dtype=np.uint32)),
    ("range_coder_static_odd.bin", np.array([5, 4, 3, 7], dtype=np.uint32)),
    ("range_coder_adaptive.bin", None),
])
def test_golden_stream_files_hold_the_coders_bytes(name: str, model: np.ndarray | None) -> None:
    coder_model = rc.Adaptive(4, increment=24, limit=128) if model is None else model
    data = (GOLDEN / name).read_bytes()
    assert rc.encode(SYMBOLS, coder_model) == data
    decode_model = rc.Adaptive(4, increment=24, limit=128) if model is None else model
    np.testing.assert_array_equal(rc.decode(data, decode_model, len(SYMBOLS)), SYMBOLS)


def test_golden_stream_files_match_the_pinned_hex() -> None:
    from test_range_coder import GOLDEN_ADAPTIVE, GOLDEN_STATIC, GOLDEN_STATIC_ODD

    assert (GOLDEN / "range_coder_static_pow2.bin").read_bytes() == GOLDEN_STATIC
    assert (GOLDEN / "range_coder_static_odd.bin").read_bytes() == GOLDEN_STATIC_ODD
    assert (GOLDEN / "range_coder_adaptive.bin").read_bytes() == GOLDEN_ADAPTIVE
