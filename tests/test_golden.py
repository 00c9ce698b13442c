"""Golden files pin the format: files written by this version must decode to the same symbols
forever. Regenerate only on purpose, by hand: ``python tests/golden/make_golden.py``, then
review the diff. This module never writes the files it compares (a test that regenerated them
first would compare each file with itself and always pass)."""
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

if os.environ.get("SMIC_REGENERATE_GOLDEN"):
    raise pytest.UsageError("SMIC_REGENERATE_GOLDEN is gone: regenerate with `python tests/golden/make_golden.py`, "
                            "then run the tests against the files it wrote")


@pytest.mark.parametrize("name", ["own_float16", "paper_int8", "shared"])
def test_golden_collection_decodes_to_pinned_symbols(name):
    path = GOLDEN / f"{name}.smic"
    assert path.exists(), f"{path} is missing: run python tests/golden/make_golden.py"
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
    smic.compress(e[:25], tmp_path / "again.smic", dictionary=dictionary, chunk_size=10,
                  index_model="order0")  # the version-1 coding of the golden file
    original = (GOLDEN / "shared.smic").read_bytes()
    again = (tmp_path / "again.smic").read_bytes()
    assert original.startswith(again)  # the first batch is byte-identical


# ---- format version 3: the remaining-atoms index model ------------------------------------------

def _open_v3(name, folder=GOLDEN):
    dictionary = make_golden.VERSION3[name]
    return smic.open(folder / f"{name}.smic", dictionary=None if dictionary is None else GOLDEN / dictionary)


@pytest.mark.parametrize("name", sorted(make_golden.VERSION3))
def test_golden_version3_decodes_to_pinned_symbols(name):
    col = _open_v3(name)
    info = col.info()
    assert info["format_version"] == 3 and info["index_model"] == "remaining"
    assert col._batch_sizes() == ([40, 10] if name == "remaining" else [25, 15])
    expected = np.load(GOLDEN / f"{name}.expected.npz")
    for i, symbols in enumerate(col._symbols()):
        for field in ("counts", "first", "rest_index", "rest_level"):
            np.testing.assert_array_equal(getattr(symbols, field), expected[f"{field}_{i}"])
    # Items with 3 and 4 atoms: the derived tables of r = 2 and 3 are what decodes them.
    assert (expected["counts_0"] >= 3).sum() >= 10
    np.testing.assert_allclose(col.embeddings(), expected["embeddings"], atol=1e-6)
    # One item at a time, last first: every read after the first in a chunk resumes from a
    # checkpoint (every 16 items of the 32-item chunks).
    fresh = _open_v3(name)
    for i in reversed(range(len(fresh))):
        np.testing.assert_allclose(fresh[i], expected["embeddings"][i], atol=1e-6)


@pytest.mark.parametrize("name", sorted(make_golden.VERSION3))
def test_golden_version3_is_what_the_writer_writes(tmp_path, name):
    golden = _open_v3(name)
    dictionary = golden.dictionary if name == "remaining" else smic.Dictionary.load(GOLDEN / "shared.smicd")
    again = tmp_path / f"{name}.smic"
    make_golden.version3_again(name, make_golden.embeddings(0), dictionary, again, golden.header["writer"])
    assert again.read_bytes() == (GOLDEN / f"{name}.smic").read_bytes()


def test_golden_version3_symbols_coded_order0_give_other_bytes(tmp_path):
    # The model changes the bytes: a reader that ignored it would decode other symbols.
    from smic_fast import _core
    col = _open_v3("remaining")
    codes = tuple(np.ascontiguousarray(getattr(col._symbols()[0], f), dtype=np.int32)
                  for f in ("counts", "first", "rest_index", "rest_level"))
    e = make_golden.embeddings(0)
    sizes = {}
    for model in ("order0", "remaining"):
        path = tmp_path / f"{model}.smic"
        _core.write_collection(str(path), e, col.dictionary._core, chunk_size=32, codes=codes, index_model=model)
        written = smic.open(path)
        assert written.info()["format_version"] == (3 if model == "remaining" else 1)
        assert "index_model" in written.header if model == "remaining" else "index_model" not in written.header
        sizes[model] = written.section_bytes["items"]
        np.testing.assert_array_equal(written._symbols()[0].rest_index, codes[2])
    assert sizes["remaining"] < sizes["order0"]


# ---- format version 4: the transform-coded refinement layer --------------------------------------

V4_FILES = {**make_golden.VERSION4, **make_golden.DEPENDENT}


@pytest.mark.parametrize("name", sorted(V4_FILES))
def test_golden_version4_decodes_to_pinned_symbols_and_embeddings(name):
    dictionary = GOLDEN / V4_FILES[name]
    col = smic.open(GOLDEN / f"{name}.smic", dictionary=dictionary)
    info = col.info()
    assert info["format_version"] == 4 and col.header["residual_coding"] == "transform"
    assert col._batch_sizes() == [25, 15] and info["residual_step"] == 0.05
    transform = smic.Dictionary.load(dictionary)._core.transform
    assert transform.n_classes == 2
    assert transform.quantiser == ("dependent" if name == "dependent" else "greedy")
    expected = np.load(GOLDEN / f"{name}.expected.npz")
    for i, symbols in enumerate(col._symbols()):
        for field in ("counts", "first", "rest_index", "rest_level"):
            np.testing.assert_array_equal(getattr(symbols, field), expected[f"{field}_{i}"])
    np.testing.assert_allclose(col.embeddings(), expected["embeddings"], atol=1e-6)
    fresh = smic.open(GOLDEN / f"{name}.smic", dictionary=dictionary)
    for i in reversed(range(len(fresh))):  # one item at a time decodes its chunk's levels
        np.testing.assert_allclose(fresh[i], expected["embeddings"][i], atol=1e-6)
    # the layer changes the decoded embeddings: the atoms alone are further from the items
    e = make_golden.embeddings(0)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    atoms_only = col.dictionary.reconstruct(smic.coding.codec.ItemSymbols.concatenate(col._symbols()))
    assert np.mean(np.sum(expected["embeddings"] * e, 1)) > np.mean(np.sum(atoms_only * e, 1)) + 0.01


@pytest.mark.parametrize("name", sorted(V4_FILES))
def test_golden_version4_is_what_the_writer_writes(tmp_path, name):
    golden = smic.open(GOLDEN / f"{name}.smic", dictionary=GOLDEN / V4_FILES[name])
    again = tmp_path / f"{name}.smic"
    make_golden.version4_again(make_golden.embeddings(0), smic.Dictionary.load(GOLDEN / V4_FILES[name]), again,
                               golden.header["writer"])
    assert again.read_bytes() == (GOLDEN / f"{name}.smic").read_bytes()


def test_golden_dependent_dictionary_states_its_quantiser(tmp_path):
    """The dependent transform's XQNT payload is the byte 2: readers that predate it refuse the
    dictionary (as this one refuses 3) rather than misread its levels, and relabelled as
    another quantiser (whose levels reconstruct on another grid) it no longer parses, since
    the tables' size follows the quantiser."""
    from smic_fast import _core
    raw = (GOLDEN / "dependent.smicd").read_bytes()
    magic = raw[:8]
    version, sections = _core.parse_container(raw, magic, "dictionary")
    assert dict(sections)[b"XQNT"] == b"\x02"
    assert b"XQNT" not in dict(_core.parse_container((GOLDEN / "transform.smicd").read_bytes(), magic,
                                                     "dictionary")[1])
    for byte, message in ((3, "quantiser 3"), (1, "transform section"), (0, "transform section")):
        path = tmp_path / f"q{byte}.smicd"
        path.write_bytes(_core.encode_container(magic, version, [(tag, bytes([byte]) if tag == b"XQNT" else payload)
                                                                 for tag, payload in sections]))
        with pytest.raises(smic.FormatError, match=message):
            smic.Dictionary.load(path)
