"""Bounded-memory compress and decode (issue 19): the streaming writer gives the bytes of the
in-memory writer for any batch size, input type (memory map, float16/64, several blocks) and
refinement; learning on a seeded sample is learning on those rows; decoding in batches or into
a caller's array is embeddings() bit for bit; and the extra memory per item measured as peak
RSS in a subprocess stays flat as N grows 10x."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import smic_fast as smic
from smic_fast import _core
from smic_fast.coding.dictionary import Dictionary, default_n_atoms, learning_sample, normalize_embeddings


def clustered(rng, n: int, d: int = 32, centres: int = 12) -> np.ndarray:
    c = rng.standard_normal((centres, d))
    return (c[rng.integers(0, centres, n)] + 0.4 * rng.standard_normal((n, d))).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    E = clustered(rng, 1300)
    D = smic.Dictionary.fit(E[:600], n_atoms=48, n_iter=2, seed=1)
    return E, D


def in_memory(path, E, D, **kw) -> np.ndarray:
    """The oracle: the one-batch writer (CollectionWriter::write), untouched by streaming."""
    return _core.write_collection(str(path), np.ascontiguousarray(E, dtype=np.float32), D._core, kw.get("ids"), None,
                                  "m", kw.get("chunk", 256), kw.get("step"), "w", kw.get("embed", True), 0, None)


def streamed(path, blocks, D, batch, **kw) -> np.ndarray:
    return _core.write_collection_streaming(str(path), blocks, D._core, kw.get("ids"), None, "m", kw.get("chunk", 256),
                                            kw.get("step"), "w", kw.get("embed", True), 0, None, batch)


@pytest.mark.parametrize("step", [None, 0.05])
@pytest.mark.parametrize("chunk,batch", [(256, 0), (256, 1), (7, 300), (64, 5000), (1, 129)])
def test_streaming_writer_bytes_equal_in_memory_writer(tmp_path, data, step, chunk, batch):
    E, D = data
    want = in_memory(tmp_path / "a.smic", E, D, chunk=chunk, step=step)
    got = streamed(tmp_path / "b.smic", [E[:500], E[500:501], E[501:]], D, batch, chunk=chunk, step=step)
    assert (tmp_path / "a.smic").read_bytes() == (tmp_path / "b.smic").read_bytes()
    np.testing.assert_array_equal(want, got)
    col = smic.open(tmp_path / "b.smic")
    assert len(col) == len(E) and col.residual_step == step


def test_streaming_writer_ids_shared_dictionary_and_dtypes(tmp_path, data):
    E, D = data
    ids = [f"item-{i}" for i in range(len(E))]
    in_memory(tmp_path / "a.smic", E, D, ids=ids, embed=False)
    streamed(tmp_path / "b.smic", [E], D, 100, ids=ids, embed=False)
    assert (tmp_path / "a.smic").read_bytes() == (tmp_path / "b.smic").read_bytes()
    for dtype in (np.float16, np.float64):  # converted per batch as numpy's astype does
        low = E.astype(dtype)
        in_memory(tmp_path / "a.smic", low.astype(np.float32), D)
        streamed(tmp_path / "b.smic", [low[:3], low[3:]], D, 256)
        assert (tmp_path / "a.smic").read_bytes() == (tmp_path / "b.smic").read_bytes(), dtype


def test_compress_memmap_equals_in_memory(tmp_path, data):
    E, D = data
    np.save(tmp_path / "E.npy", E)
    mapped = np.load(tmp_path / "E.npy", mmap_mode="r")
    for kw in ({"dictionary": D}, {"n_atoms": 32, "n_iter": 2}, {"n_atoms": 32, "n_iter": 2, "sample_size": 500},
               {"dictionary": D, "residual_step": 0.05}):
        a = smic.compress(E, tmp_path / "a.smic", **kw)
        b = smic.compress(mapped, tmp_path / "b.smic", batch_size=100, **kw)
        c = smic.compress([mapped[:1000], E[1000:].astype(np.float64)], tmp_path / "c.smic", **kw)
        assert (tmp_path / "a.smic").read_bytes() == (tmp_path / "b.smic").read_bytes() == \
            (tmp_path / "c.smic").read_bytes(), kw
        assert a["cosine_mean"] == b["cosine_mean"] == c["cosine_mean"]


def test_compress_without_sample_is_the_earlier_writer(tmp_path, data):
    """N <= sample_size: learning on all rows and coding with the training symbols, as before."""
    E, _ = data
    smic.compress(E, tmp_path / "a.smic", n_atoms=32, n_iter=2, seed=3)
    unit = normalize_embeddings(E)[0]
    d, symbols, _, rows = Dictionary._fit(unit, 32, None, quality="medium", step=None, rd_lambda=None,
                                          layout="smic", paper_bits=8, precision="float16", n_iter=2, seed=3,
                                          n_threads=None, progress=None)
    assert rows is None
    codes = tuple(np.ascontiguousarray(getattr(symbols, f), dtype=np.int32)
                  for f in ("counts", "first", "rest_index", "rest_level"))
    _core.write_collection(str(tmp_path / "b.smic"), E, d._core, None, None, None, 256, None,
                           f"smic-fast {smic.__version__}", True, 0, codes)
    assert (tmp_path / "a.smic").read_bytes() == (tmp_path / "b.smic").read_bytes()


def test_learning_sample_is_seeded_and_documented():
    assert learning_sample(100, 100) is None and learning_sample(100, None) is None
    a = learning_sample(10_000, 500, seed=4)
    assert len(a) == 500 and len(set(a.tolist())) == 500 and np.all(np.diff(a) > 0) and a[-1] < 10_000
    np.testing.assert_array_equal(a, learning_sample(10_000, 500, seed=4))
    assert not np.array_equal(a, learning_sample(10_000, 500, seed=5))
    np.testing.assert_array_equal(
        a, np.sort(np.random.default_rng(4).choice(10_000, size=500, replace=False)))  # as documented
    with pytest.raises(ValueError, match="sample_size"):
        learning_sample(10, 0)


def test_compress_learns_on_the_sample(tmp_path, data):
    """compress(E, sample_size=m) embeds the dictionary learned on E's sampled rows alone."""
    E, _ = data
    rows = learning_sample(len(E), 400, seed=2)
    k = default_n_atoms(len(E))
    smic.compress(E, tmp_path / "a.smic", sample_size=400, n_iter=2, seed=2)
    smic.compress(E[rows], tmp_path / "s.smic", n_atoms=k, n_iter=2, seed=2)
    a, s = smic.open(tmp_path / "a.smic"), smic.open(tmp_path / "s.smic")
    assert a.dictionary.n_atoms == k
    assert a.dictionary.hash == s.dictionary.hash
    # every item is then coded with it: the file is the shared-dictionary coding of all of E
    smic.compress(E, tmp_path / "b.smic", dictionary=a.dictionary)
    np.testing.assert_array_equal(a.embeddings(), smic.open(tmp_path / "b.smic", dictionary=a.dictionary).embeddings())
    smic.compress(E, tmp_path / "c.smic", sample_size=400, n_iter=2, seed=9)
    assert smic.open(tmp_path / "c.smic").dictionary.hash != a.dictionary.hash
    with pytest.raises(ValueError, match="sample_size"):
        smic.compress(E, tmp_path / "x.smic", n_atoms=64, sample_size=50)


def test_dictionary_fit_samples(data):
    E, _ = data
    rows = learning_sample(len(E), 300, seed=0)
    a = smic.Dictionary.fit(E, 16, n_iter=2, sample_size=300)
    b = smic.Dictionary.fit(E[rows], 16, n_iter=2)
    assert a.hash == b.hash
    assert smic.Dictionary.fit(E, 16, n_iter=2).hash != a.hash  # default sample (50,000) holds all 1,300


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_row_reported_and_nothing_written(tmp_path, data, bad):
    E, D = data
    E = E.copy()
    E[1111, 5] = bad
    np.save(tmp_path / "E.npy", E)
    for source in (E, np.load(tmp_path / "E.npy", mmap_mode="r")):
        with pytest.raises(ValueError, match="row 1111"):
            smic.compress(source, tmp_path / "out.smic", dictionary=D, batch_size=64)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["E.npy"]  # no output, no temporary


def test_compress_refuses_bad_inputs(tmp_path, data):
    E, D = data
    for bad, match in ((E.astype(np.int32), "float16, float32 or float64"), (E[None], "2-dimensional"),
                       (E[:0], "no rows"), ([E, E[:, :5]], "columns")):
        with pytest.raises(ValueError, match=match):
            smic.compress(bad, tmp_path / "out.smic", dictionary=D)
    with pytest.raises(ValueError, match="batch_size"):
        smic.compress(E, tmp_path / "out.smic", dictionary=D, batch_size=0)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("step", [None, 0.05])
def test_batches_and_out_equal_embeddings(tmp_path, data, step):
    E, D = data
    ids = [f"e{i}" for i in range(len(E))]
    smic.compress(E, tmp_path / "a.smic", dictionary=D, ids=ids, chunk_size=64, residual_step=step)
    col = smic.open(tmp_path / "a.smic", dictionary=D)
    whole = col._core.decode(0, len(col))  # the one-call decoder
    np.testing.assert_array_equal(col.embeddings(), whole)
    np.testing.assert_array_equal(col.embeddings(batch_size=7), whole)
    for size in (1, 100, 5000):
        got_ids, parts = [], []
        for batch_ids, batch in col.iter_batches(size):
            assert batch.dtype == np.float32 and batch.shape == (len(batch_ids), col.dim)
            assert 1 <= len(batch_ids) <= size
            got_ids += batch_ids
            parts.append(batch)
        assert got_ids == ids
        np.testing.assert_array_equal(np.concatenate(parts), whole)
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=whole.shape)
    assert col.embeddings(out=out, batch_size=300) is out
    out.flush()
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), whole)
    half = np.zeros(whole.shape, np.float16)
    col.embeddings(out=half)
    np.testing.assert_array_equal(half, whole.astype(np.float16))
    strided = np.zeros((whole.shape[1], whole.shape[0]), np.float32).T  # not C-contiguous: filled by copy
    col.embeddings(out=strided)
    np.testing.assert_array_equal(strided, whole)


def test_embeddings_out_refused(tmp_path, data):
    E, D = data
    smic.compress(E, tmp_path / "a.smic", dictionary=D)
    col = smic.open(tmp_path / "a.smic", dictionary=D)
    for out in (np.zeros((len(E) - 1, E.shape[1]), np.float32), np.zeros((len(E), E.shape[1]), np.int32), [[0.0]]):
        with pytest.raises(ValueError, match="out must be"):
            col.embeddings(out=out)
    frozen = np.zeros(E.shape, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        col.embeddings(out=frozen)
    with pytest.raises(ValueError, match="batch_size"):
        next(col.iter_batches(0))
    with pytest.raises(ValueError, match="out must"):  # the binding checks too
        col._core.decode_into(0, 2, np.zeros((3, E.shape[1]), np.float32))


MEASURE = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import smic_fast as smic
    what, path, dictionary, out = sys.argv[1:5]
    def status_kb(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    def rss_kb():  # and restart the peak (VmHWM) from here: ru_maxrss would carry the parent's
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return status_kb("VmRSS")
    D = smic.Dictionary.load(dictionary)
    if what == "compress":
        E = np.load(path, mmap_mode="r")
        base = rss_kb()
        smic.compress(E, out, dictionary=D)
        n, mapped = len(E), os.path.getsize(path)
    else:
        base = rss_kb()
        col = smic.open(out, dictionary=D)
        n, mapped = len(col), 0
        for ids, batch in col.iter_batches(4096):
            pass
    peak = status_kb("VmHWM")
    print(json.dumps({"n": n, "extra": (peak - base) * 1024 - mapped}))
""")


@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer's shadow memory and quarantine (make sanitize) inflate the RSS")
def test_memory_grows_with_the_batch_not_the_collection(tmp_path):
    """Peak RSS above the start of compress (minus the memory-mapped input, at most all of it
    resident) and of a streamed decode, at N and 10 N: the extra per added item stays small
    (the coded bytes, a norm, a cosine, the reader's id tables), far below the 1 KB a row of
    the input takes (d = 256 float32), while a whole-input copy would cost more than that."""
    rng = np.random.default_rng(0)
    d = 256
    D = smic.Dictionary.fit(clustered(rng, 2000, d), 64, n_iter=2)
    D.save(tmp_path / "d.smicd")
    extra = {}
    for n in (8_000, 80_000):
        np.save(tmp_path / f"E{n}.npy", clustered(rng, n, d))
        for what in ("compress", "decode"):
            result = subprocess.run(
                [sys.executable, "-c", MEASURE, what, str(tmp_path / f"E{n}.npy"), str(tmp_path / "d.smicd"),
                 str(tmp_path / f"E{n}.smic")], capture_output=True, text=True, check=True, timeout=300)
            extra[what, n] = json.loads(result.stdout)["extra"]
    for what in ("compress", "decode"):
        per_added_item = (extra[what, 80_000] - extra[what, 8_000]) / 72_000
        assert per_added_item < 400, (what, extra)  # bytes per item; a row of E is 1,024
