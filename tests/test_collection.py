"""Collections end to end: compress, open, random access, append, shared dictionaries, rates
from the bytes on disk, and every kind of bad input."""
from __future__ import annotations

import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import smic_fast as smic
from format_helpers import Section, parse_sections, read_sections, write_sections

from problems import planted_collection


@pytest.fixture
def embeddings(rng) -> np.ndarray:
    x, _ = planted_collection(rng, 600, 24, 64, 3, noise=0.05)
    return x


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def test_round_trip_random_access_and_reported_fidelity(tmp_path, embeddings):
    path = tmp_path / "c.smic"
    ids = [f"img/{i:04d}.jpg" for i in range(len(embeddings))]
    info = smic.compress(embeddings, path, ids=ids, chunk_size=64, n_iter=5)
    col = smic.open(path)
    assert len(col) == 600 and col.ids == ids
    decoded = col.embeddings()
    assert decoded.shape == (600, 64) and decoded.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(decoded, axis=1), 1.0, atol=1e-5)
    for position in (0, 63, 64, 599, -1):
        np.testing.assert_array_equal(col[position], decoded[position])
    np.testing.assert_array_equal(col["img/0100.jpg"], decoded[100])
    cos = _cosines(embeddings, decoded)
    assert info["cosine_mean"] == pytest.approx(cos.mean(), abs=1e-6)
    assert info["cosine_p5"] == pytest.approx(np.percentile(cos, 5), abs=1e-6)
    assert info["cosine_mean"] > 0.9
    with pytest.raises(KeyError):
        col["missing"]
    with pytest.raises(IndexError):
        col[600]


def test_rates_come_from_the_bytes_on_disk(tmp_path, embeddings):
    path = tmp_path / "c.smic"
    pixels = [512 * 512] * 300 + [640 * 480] * 300
    info = smic.compress(embeddings, path, pixels=pixels, n_iter=3)
    size = os.path.getsize(path)
    sections = {s.tag: len(s.payload) for s in parse_sections(path.read_bytes(), smic.store.collection.COLLECTION_MAGIC, kind="x")}
    assert info["file_bytes"] == size
    assert info["bits_per_item"] == pytest.approx(8 * size / 600)
    assert info["marginal_bits_per_item"] == pytest.approx(8 * (16 + sections[b"ITEM"]) / 600)
    assert info["dictionary_share"] == pytest.approx((16 + sections[b"DICT"]) / size)
    expected_bpp = np.mean([8 * size / 600 / p for p in pixels])
    assert info["bits_per_pixel"] == pytest.approx(expected_bpp)
    assert sum(info["section_bytes"].values()) == size


def test_shared_dictionary_pays_no_dictionary_bits(tmp_path, embeddings):
    d = smic.Dictionary.fit(embeddings[:400], n_atoms=32, n_iter=5)
    d.save(tmp_path / "shared.smicd")
    loaded = smic.Dictionary.load(tmp_path / "shared.smicd")
    assert loaded.hash == d.hash
    np.testing.assert_array_equal(loaded.atoms, d.atoms)
    own = smic.compress(embeddings[400:], tmp_path / "own.smic", n_atoms=32, n_iter=5)
    shared = smic.compress(embeddings[400:], tmp_path / "shared.smic", dictionary=d)
    assert shared["shared_dictionary"] and shared["section_bytes"]["dictionary"] == 16 + 32
    assert own["file_bytes"] - shared["file_bytes"] >= 2 * 32 * 64  # at least the float16 atoms
    col = smic.open(tmp_path / "shared.smic", dictionary=tmp_path / "shared.smicd")
    assert _cosines(col.embeddings(), embeddings[400:]).mean() > 0.9
    with pytest.raises(smic.DictionaryMismatchError, match=d.hash):
        smic.open(tmp_path / "shared.smic")
    other = smic.Dictionary.fit(embeddings[:400], n_atoms=32, n_iter=5, seed=1)
    with pytest.raises(smic.DictionaryMismatchError, match="needs dictionary"):
        smic.open(tmp_path / "shared.smic", dictionary=other)


def test_append_codes_new_items_and_keeps_old_bytes(tmp_path, embeddings):
    path = tmp_path / "c.smic"
    smic.compress(embeddings[:500], path, n_iter=5)
    before = path.read_bytes()
    old = smic.open(path).embeddings()
    col = smic.open(path)
    info = col.append(embeddings[500:], ids=[f"new{i}" for i in range(100)])
    after = path.read_bytes()
    # in place: every earlier section's bytes stay; the preamble now counts the committed sections
    assert after[:10] == before[:10] and after[16:len(before)] == before[16:]
    assert after[10:16] == bytes([1, 0, 6, 0, 0, 0])  # flag 1, 6 sections (HEAD DICT + 2 batches)
    assert len(col) == 600 and info["items"] == 600 and info["cosine_mean"] > 0.9
    again = smic.open(path)
    np.testing.assert_array_equal(again.embeddings()[:500], old)
    np.testing.assert_array_equal(again["new7"], again.embeddings()[507])
    assert again.ids[:3] == ["0", "1", "2"]
    with pytest.raises(ValueError, match="duplicate item id 'new7'"):
        again.append(embeddings[:1], ids=["new7"])
    with pytest.raises(ValueError, match="must have 64 columns"):
        again.append(np.ones((2, 10), np.float32))
    bad = embeddings[:2].copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        again.append(bad)
    assert len(smic.open(path)) == 600


def test_append_replace_keeps_every_other_item_exactly(tmp_path, embeddings):
    path = tmp_path / "c.smic"
    smic.compress(embeddings[:300], path, chunk_size=64, n_iter=5)  # implied ids "0".."299"
    col = smic.open(path)
    col.append(embeddings[300:400], ids=[f"b{i}" for i in range(100)], pixels=[1000] * 100)
    before = dict(zip(col.ids, col.embeddings()))
    replaced = ["5", "b7"]  # one in each batch: positions after them move
    info = col.append(embeddings[400:402], ids=replaced, replace=True)
    after = smic.open(path)
    assert info["items"] == 400 == len(after)
    assert after.ids[-2:] == replaced and "5" not in after.ids[:-2] and after.ids[5] == "6"
    for item_id, embedding in before.items():
        if item_id in replaced:
            assert float(after[item_id] @ embedding) < 0.99
        else:
            np.testing.assert_array_equal(after[item_id], embedding)
    np.testing.assert_allclose(_cosines(after.embeddings()[-2:], embeddings[400:402]), 1, atol=0.1)
    with pytest.raises(ValueError, match="duplicate item id"):
        after.append(embeddings[:1], ids=["b8"])  # replace is opt-in


def test_failed_append_leaves_the_file_as_it_was(tmp_path, embeddings):
    """A write that fails half way (the file size limit stops it, as a full disk would) leaves
    the collection byte-identical and no temporary file behind."""
    path = tmp_path / "c.smic"
    smic.compress(embeddings[:300], path, n_iter=3)
    before = path.read_bytes()
    np.save(tmp_path / "more.npy", embeddings[300:])
    script = (
        "import resource, signal, sys, numpy as np, smic_fast as smic\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({len(before) + 100}, resource.RLIM_INFINITY))\n"
        "try:\n"
        f"    smic.open({str(path)!r}).append(np.load({str(tmp_path / 'more.npy')!r}))\n"
        "except OSError as error:\n"
        "    print('OSError', error)\n"
        "    sys.exit(3)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "write failed" in result.stdout
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.smic", "more.npy"]


def test_single_item_encode_matches_collection_coding(embeddings):
    d = smic.Dictionary.fit(embeddings, n_atoms=32, n_iter=5)
    data = d.encode(embeddings[7])
    assert isinstance(data, bytes) and len(data) < 24
    e = d.decode(data)
    assert _cosines(e[None], embeddings[7:8])[0] > 0.9
    with pytest.raises(ValueError, match="embedding must have 64 values"):
        d.encode(np.ones(3, np.float32))


@pytest.mark.parametrize("layout,chunk_size", [("smic", 37), ("smic", 16), ("smic", 1), ("paper", 40)])
def test_single_item_reads_equal_the_full_decode(tmp_path, embeddings, layout, chunk_size):
    # The first read of a chunk decodes it in full and keeps decoder checkpoints; later reads
    # resume from them. Any order, any number of times, over appended batches: same bits.
    d = smic.Dictionary.fit(embeddings[:300], n_atoms=32, n_nonzero=3, n_iter=3, layout=layout)
    smic.compress(embeddings[:350], tmp_path / "c.smic", dictionary=d, chunk_size=chunk_size)
    smic.open(tmp_path / "c.smic", dictionary=d).append(embeddings[350:], ids=[f"x{i}" for i in range(250)])
    full = smic.open(tmp_path / "c.smic", dictionary=d).embeddings()
    col = smic.open(tmp_path / "c.smic", dictionary=d)
    order = np.random.default_rng(1).permutation(len(full))
    for i in list(order) + list(order[::-1]) + list(range(len(full))):
        np.testing.assert_array_equal(col[int(i)], full[i])
    for start in (0, 5, 349, 350, 590):  # short ranges, within a chunk or across
        np.testing.assert_array_equal(col._core.decode(start, start + 3), full[start:start + 3])


def test_a_corrupt_chunk_is_reported_on_its_first_single_read(tmp_path, embeddings):
    # Damage chunk 2's bytes (CRCs rewritten, so only the range decoder can notice): reading one
    # of its items fails with a FormatError every time, other chunks still read.
    d = smic.Dictionary.fit(embeddings[:300], n_atoms=32, n_nonzero=3, n_iter=3)
    path = tmp_path / "c.smic"
    smic.compress(embeddings[:200], path, dictionary=d, chunk_size=50)
    sections = read_sections(path, smic.store.collection.COLLECTION_MAGIC)
    item = next(i for i, s in enumerate(sections) if s.tag == b"ITEM")
    payload = bytearray(sections[item].payload)
    n_chunks = 4
    data_start = 12 + 8 * (n_chunks + 1)
    offsets = struct.unpack_from(f"<{n_chunks + 1}Q", payload, 12)
    for at in range(data_start + offsets[2], data_start + offsets[3]):
        payload[at] ^= 0x5A
    sections[item] = Section(b"ITEM", bytes(payload))
    write_sections(path, smic.store.collection.COLLECTION_MAGIC, sections, version=1)
    col = smic.open(path, dictionary=d)
    good = col[10]
    for _ in range(2):
        with pytest.raises(smic.FormatError, match="corrupt items"):
            col[120]
    np.testing.assert_array_equal(col[10], good)


@pytest.mark.parametrize("precision", ["float16", "int8"])
def test_one_item_codes_as_the_batch_does(tmp_path, precision):
    # One item correlates with the stored atoms' float16 values (or int8 levels) times a factor
    # per atom, reading a float16 copy; the batch path reads float32 panels. Same codes, bit for
    # bit, over several depth blocks (d = 520) and atom panels with padding (K = 100).
    rng = np.random.default_rng(3)
    e = (rng.standard_normal((300, 40)) ** 3 @ rng.standard_normal((40, 520))).astype(np.float32)
    d = smic.Dictionary.fit(e[:200], n_atoms=100, n_nonzero=4, n_iter=3, precision=precision)
    smic.compress(e, tmp_path / "c.smic", dictionary=d)
    col = smic.open(tmp_path / "c.smic", dictionary=d)
    for i in range(0, 300, 7):
        data = d.encode(e[i])
        assert d.encode(e[i]) == data  # the next call runs over the atoms the other way
        np.testing.assert_array_equal(d.decode(data), col[i])


@pytest.mark.parametrize("precision", ["float16", "int8"])
@pytest.mark.parametrize("layout", ["smic", "paper"])
def test_layouts_and_precisions(tmp_path, embeddings, precision, layout):
    info = smic.compress(embeddings, tmp_path / "c.smic", layout=layout, precision=precision,
                         n_atoms=32, n_nonzero=3, n_iter=5)
    col = smic.open(tmp_path / "c.smic")
    assert info["layout"] == layout and info["precision"] == precision
    assert _cosines(col.embeddings(), embeddings).mean() == pytest.approx(info["cosine_mean"], abs=1e-6)
    if layout == "paper":
        # fixed-length: 3 x (5-bit index + 8-bit coefficient) per item, plus chunk flushes
        assert 39 <= info["marginal_bits_per_item"] <= 39 + 4
    d16 = smic.Dictionary.fit(embeddings, n_atoms=32, n_iter=2, precision="float16")
    d8 = smic.Dictionary.fit(embeddings, n_atoms=32, n_iter=2, precision="int8")
    assert len(d8.to_bytes()) < 0.6 * len(d16.to_bytes())


def test_rate_distortion_knob_trades_bits_for_fidelity(tmp_path, embeddings):
    d = smic.Dictionary.fit(embeddings, n_atoms=48, n_nonzero=6, n_iter=8)
    results = []
    for rd_lambda in (0.0, 2e-3, 2e-2):
        tuned = smic.Dictionary.fit(embeddings, n_atoms=48, n_nonzero=6, n_iter=8, rd_lambda=rd_lambda)
        info = smic.compress(embeddings, tmp_path / f"{rd_lambda}.smic", dictionary=tuned)
        results.append((info["marginal_bits_per_item"], info["cosine_mean"]))
    bits, cos = zip(*results)
    assert bits[0] > bits[1] > bits[2] and cos[0] > cos[2]
    assert d.params.s_max == 6


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda p, e: smic.compress(e[:0], p), ValueError, r"N = 0"),
        (lambda p, e: smic.compress(np.where(np.eye(1, 64, 5, dtype=bool), np.nan, e).astype(np.float32), p), ValueError, "NaN"),
        (lambda p, e: smic.compress(e, p, ids=["a"] * len(e)), ValueError, "duplicate item id 'a'"),
        (lambda p, e: smic.compress(e, p, ids=["a"]), ValueError, "ids has 1 entries"),
        (lambda p, e: smic.compress(e, p, pixels=[0] * len(e)), ValueError, "pixels must be"),
        (lambda p, e: smic.compress(e, p, quality="best"), ValueError, "quality must be one of"),
        (lambda p, e: smic.compress(e, p, layout="zip"), ValueError, "layout must be"),
        (lambda p, e: smic.compress(e, p, precision="float8"), ValueError, "precision must be one of"),
        (lambda p, e: smic.compress(e, p, step=0.0), ValueError, "step must be in"),
        (lambda p, e: smic.compress(e, p, n_atoms=10_000), ValueError, "n_atoms"),
        (lambda p, e: smic.compress(e, p, chunk_size=0), ValueError, "chunk_size must be >= 1"),
    ],
)
def test_bad_arguments_write_nothing(tmp_path, embeddings, call, error, match):
    with pytest.raises(error, match=match):
        call(tmp_path / "c.smic", embeddings)
    assert list(tmp_path.iterdir()) == []


def test_wrong_kinds_of_file(tmp_path, embeddings):
    (tmp_path / "text.smic").write_text("hello, I am not a collection")
    (tmp_path / "empty.smic").write_bytes(b"")
    d = smic.Dictionary.fit(embeddings, n_atoms=16, n_iter=1)
    d.save(tmp_path / "d.smicd")
    for name in ("text.smic", "empty.smic", "d.smicd"):
        with pytest.raises(smic.FormatError, match="not a smic collection"):
            smic.open(tmp_path / name)
    smic.compress(embeddings, tmp_path / "c.smic", n_iter=1)
    with pytest.raises(smic.FormatError, match="not a smic dictionary"):
        smic.Dictionary.load(tmp_path / "c.smic")
    with pytest.raises(FileNotFoundError):
        smic.open(tmp_path / "missing.smic")


def test_default_dictionary_size_grows_with_the_collection():
    from smic_fast.coding.dictionary import default_n_atoms

    assert [default_n_atoms(n) for n in (5, 10, 1000, 10_000, 100_000, 10**7)] == [5, 8, 128, 256, 1024, 1024]
    with pytest.raises(ValueError, match="at least one item"):
        default_n_atoms(0)


def test_single_item_encode_validates_its_input(embeddings):
    d = smic.Dictionary.fit(embeddings, n_atoms=16, n_iter=1)
    with pytest.raises(ValueError, match="NaN or infinity"):
        d.encode(np.full(64, np.nan, np.float32))
    with pytest.raises(ValueError, match="must be a float array"):
        d.encode(np.ones(64, np.int64))
    # float64 and a (1, d) row are accepted; a zero vector still codes (to atom 0)
    assert d.encode(embeddings[3].astype(np.float64)) == d.encode(embeddings[3][None])
    assert len(d.decode(d.encode(np.zeros(64, np.float32)))) == 64


def test_slices_decode_like_positions(tmp_path):
    """col[a:b] (and any slice) gives the rows col[i] gives, decoding only the chunks they
    occupy; an empty slice is (0, d)."""
    rng = np.random.default_rng(7)
    E = rng.standard_normal((600, 16)).astype(np.float32)
    smic.compress(E, tmp_path / "s.smic", n_atoms=16, chunk_size=64)
    col = smic.open(tmp_path / "s.smic")
    rows = np.stack([col[i] for i in range(len(col))])
    for key in (slice(None), slice(10, 300), slice(-50, None), slice(None, None, -3), slice(500, 100, -7),
                slice(5, 2), slice(1000, 2000)):
        np.testing.assert_array_equal(col[key], rows[key], err_msg=str(key))
    assert col[5:2].shape == (0, 16)
