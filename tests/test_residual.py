"""The residual refinement layer (smic_fast.residual): fidelity it buys, bits it costs against
the entropy of its own levels and against the scalar baseline, random access, append/replace,
the format version, and damaged RESD sections."""
from __future__ import annotations

import struct

import numpy as np
import pytest

import smic_fast as smic
from format_helpers import read_sections, write_sections
from smic_fast.store.collection import COLLECTION_MAGIC
from smic_fast.evaluation.baselines import scalar_codec
from smic_fast._core import ResidualCode, encode_residual, refine, residual_levels

from problems import planted_collection
from test_fuzz_files import damaged_collections_raised


@pytest.fixture(scope="module")
def embeddings() -> np.ndarray:
    # a few concepts per item plus noise that no dictionary of 24 atoms can express
    x, _ = planted_collection(np.random.default_rng(11), 500, 24, 64, 3, noise=0.08)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a.astype(np.float64) * b, axis=1) / np.linalg.norm(b, axis=1)


def _entropy_bits(levels: np.ndarray) -> float:
    _, counts = np.unique(levels, return_counts=True)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())


def test_refinement_raises_fidelity_and_reader_gets_what_encoder_measured(tmp_path, embeddings):
    plain = smic.compress(embeddings, tmp_path / "a.smic", n_atoms=24, n_iter=4, chunk_size=64)
    refined = smic.compress(embeddings, tmp_path / "b.smic", n_atoms=24, n_iter=4, chunk_size=64,
                            residual_step=0.02)
    assert plain["cosine_mean"] < 0.99 < refined["cosine_mean"]
    assert refined["residual_step"] == 0.02 and plain["residual_step"] is None
    col = smic.open(tmp_path / "b.smic")
    decoded = col.embeddings()
    assert np.mean(_cosine(decoded, embeddings)) == pytest.approx(refined["cosine_mean"], abs=1e-6)
    for position in (0, 63, 64, 300, 499):  # one item decodes alone, across chunk borders
        np.testing.assert_array_equal(col[position], decoded[position])
    # the atoms' part of the file is the same: refinement only adds RESD sections
    assert refined["section_bytes"]["items"] == plain["section_bytes"]["items"]
    assert refined["marginal_bits_per_item"] == pytest.approx(
        8 * (refined["section_bytes"]["items"] + refined["section_bytes"]["residual"]) / len(embeddings))


def test_finer_steps_cost_more_and_reach_higher(tmp_path, embeddings):
    dictionary = smic.Dictionary.fit(embeddings, n_atoms=24, n_iter=4)
    results = [smic.compress(embeddings, tmp_path / f"{s}.smic", dictionary=dictionary, residual_step=s)
               for s in (0.08, 0.04, 0.02, 0.01)]
    cosines = [r["cosine_mean"] for r in results]
    bits = [r["marginal_bits_per_item"] for r in results]
    assert cosines == sorted(cosines) and bits == sorted(bits) and cosines[-1] > 0.998


def test_coded_size_is_the_entropy_of_the_levels(embeddings):
    decoded = np.roll(embeddings, 1, axis=1) * 0.2 + embeddings * 0.8  # any reconstruction
    levels = residual_levels(embeddings, decoded, 0.01)
    payload = encode_residual(levels, 0.01, chunk_size=100)
    code = ResidualCode.parse(payload)
    np.testing.assert_array_equal(code.levels(), levels)
    np.testing.assert_array_equal(code.levels(150, 260), levels[150:260])
    bound = _entropy_bits(levels)  # a static table fitted to these very levels cannot beat it
    coded_bits = 8 * code.data_size
    assert bound <= coded_bits <= 1.01 * bound + 64 * 5  # <= 1% above, plus 8 bytes flush per chunk


def test_refinement_beats_coding_the_embedding_alone(embeddings):
    """What the module promises: at the same step, coding the residual after the atoms costs
    fewer bits than the scalar baseline's coding of the embedding itself, at least the fidelity."""
    dictionary = smic.Dictionary.fit(embeddings, n_atoms=24, n_iter=4)
    decoded = dictionary.reconstruct(dictionary.items_symbols(embeddings))
    for step in (0.04, 0.02):
        levels = residual_levels(embeddings, decoded, step)
        refined = refine(decoded, levels, step)
        scalar = scalar_codec(embeddings, step)
        residual_bytes = len(encode_residual(levels, step, 256))
        assert residual_bytes < 0.8 * scalar.item_bytes
        assert np.mean(_cosine(refined, embeddings)) >= np.mean(_cosine(scalar.reconstruction, embeddings)) - 1e-3


def test_append_and_replace_keep_the_step_and_old_items(tmp_path, embeddings):
    path = tmp_path / "c.smic"
    smic.compress(embeddings[:300], path, n_atoms=24, n_iter=4, chunk_size=50, residual_step=0.03,
                  ids=[f"a{i}" for i in range(300)])
    before = smic.open(path).embeddings()
    info = smic.open(path).append(embeddings[300:400], ids=[f"b{i}" for i in range(100)])
    assert info["cosine_mean"] > 0.99 and info["residual_step"] == 0.03
    col = smic.open(path)
    np.testing.assert_array_equal(col.embeddings()[:300], before)
    assert np.mean(_cosine(col.embeddings()[300:], embeddings[300:400])) == pytest.approx(info["cosine_mean"], abs=1e-6)
    after_append = col.embeddings()
    col.append(embeddings[400:402], ids=["a7", "new"], replace=True)  # a7 sits in the first batch
    col = smic.open(path)
    assert len(col) == 401 and col.ids[-2:] == ["a7", "new"]
    kept = [i for i in range(400) if i != 7]
    np.testing.assert_array_equal(col.embeddings()[:399], after_append[kept])


def test_version_two_only_with_refinement(tmp_path, embeddings):
    # (index_model="order0": the remaining-atoms model would make either version 3)
    smic.compress(embeddings[:50], tmp_path / "a.smic", n_atoms=8, n_iter=2, index_model="order0")
    smic.compress(embeddings[:50], tmp_path / "b.smic", n_atoms=8, n_iter=2, residual_step=0.05,
                  index_model="order0")
    assert struct.unpack_from("<H", (tmp_path / "a.smic").read_bytes(), 8)[0] == 1
    assert struct.unpack_from("<H", (tmp_path / "b.smic").read_bytes(), 8)[0] == 2
    assert smic.open(tmp_path / "b.smic").info()["format_version"] == 2


@pytest.mark.parametrize("step", [0, -0.1, 2.0, float("nan"), 1e-6, "0.1", True])
def test_bad_steps_are_refused(tmp_path, embeddings, step):
    with pytest.raises(ValueError, match="residual_step"):
        smic.compress(embeddings[:20], tmp_path / "x.smic", n_atoms=4, n_iter=1, residual_step=step)
    assert not (tmp_path / "x.smic").exists()


def _rewrite(path, change) -> None:
    """Rewrite a collection with `change(sections)` applied; CRCs are recomputed (the parser
    behind the CRC check must catch the damage itself)."""
    sections = read_sections(path, COLLECTION_MAGIC)
    write_sections(path, COLLECTION_MAGIC, change(sections), version=2)


@pytest.fixture
def refined_file(tmp_path, embeddings):
    path = tmp_path / "r.smic"
    smic.compress(embeddings[:120], path, n_atoms=8, n_iter=2, chunk_size=32, residual_step=0.05)
    return path


def _with_payload(sections, tag, payload):
    return [type(s)(s.tag, payload(s.payload)) if s.tag == tag else s for s in sections]


@pytest.mark.parametrize("change, message", [
    (lambda ss: [s for s in ss if s.tag != b"RESD"], "missing sections"),
    (lambda ss: _with_payload(ss, b"RESD", lambda p: p[:20]), "truncated residual"),
    (lambda ss: _with_payload(ss, b"RESD", lambda p: p[:-3]), "offsets"),
    (lambda ss: _with_payload(ss, b"RESD", lambda p: struct.pack("<d", 0.07) + p[8:]), "does not match"),
    (lambda ss: _with_payload(ss, b"RESD", lambda p: struct.pack("<d", float("inf")) + p[8:]), "inconsistent"),
    (lambda ss: _with_payload(ss, b"RESD", lambda p: p[:8] + struct.pack("<I", 10**9) + p[12:]), "inconsistent"),
    (lambda ss: _with_payload(ss, b"RESD", lambda p: p[:24] + struct.pack("<I", 16) + p[28:]), "inconsistent"),
    (lambda ss: _with_payload(ss, b"HEAD", lambda p: p.replace(b'"residual_step": 0.05', b'"residual_step": "x"')),
     "residual_step"),
    (lambda ss: _with_payload(ss, b"HEAD", lambda p: p.replace(b', "residual_step": 0.05', b"")), "sections"),
])
def test_damaged_refinement_is_a_format_error(refined_file, change, message):
    _rewrite(refined_file, change)
    with pytest.raises(smic.FormatError, match=message):
        smic.open(refined_file).embeddings()


def test_three_thousand_damaged_refined_collections_decode_or_raise(refined_file, tmp_path):
    raised = damaged_collections_raised(refined_file.read_bytes(), tmp_path / "m.smic", np.random.default_rng(99), 3000)
    assert raised > 1500
