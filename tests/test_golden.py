"""Golden files pin the format: files written by this version must decode to the same symbols
forever. Regenerate only on purpose: SMIC_REGENERATE_GOLDEN=1 (a missing file fails)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import smic_fast as smic

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))

import make_golden  # noqa: E402

if os.environ.get("SMIC_REGENERATE_GOLDEN") == "1":
    make_golden.write_all()


@pytest.mark.parametrize("name", ["own_float16", "paper_int8", "shared"])
def test_golden_collection_decodes_to_pinned_symbols(name):
    path = GOLDEN / f"{name}.smic"
    assert path.exists(), f"{path} is missing: run SMIC_REGENERATE_GOLDEN=1 pytest tests/test_golden.py"
    dictionary = GOLDEN / "shared.smicd" if name == "shared" else None
    col = smic.open(path, dictionary=dictionary)
    expected = np.load(GOLDEN / f"{name}.expected.npz")
    for i, symbols in enumerate(col._symbols()):
        for field in ("counts", "first", "rest_index", "rest_level"):
            np.testing.assert_array_equal(getattr(symbols, field), expected[f"{field}_{i}"])
    np.testing.assert_allclose(col.embeddings(), expected["embeddings"], atol=1e-6)


def test_golden_files_keep_their_metadata():
    col = smic.open(GOLDEN / "own_float16.smic")
    assert col.ids[:2] == ["photo_0.jpg", "photo_1.jpg"] and len(col) == 40
    assert col.info()["bits_per_pixel"] == pytest.approx(8 * col.info()["file_bytes"] / 40 / (640 * 480))
    shared = smic.open(GOLDEN / "shared.smic", dictionary=GOLDEN / "shared.smicd")
    assert shared.ids[24:27] == ["24", "x0", "x1"] and shared.info()["shared_dictionary"]


def test_reencoding_with_the_golden_dictionary_gives_the_same_items(tmp_path):
    # The encoder is deterministic too: same dictionary + same embeddings -> same bytes.
    dictionary = smic.Dictionary.load(GOLDEN / "shared.smicd")
    e = make_golden.embeddings(0)
    smic.compress(e[:25], tmp_path / "again.smic", dictionary=dictionary, chunk_size=10)
    original = (GOLDEN / "shared.smic").read_bytes()
    again = (tmp_path / "again.smic").read_bytes()
    assert original.startswith(again)  # the first batch is byte-identical
