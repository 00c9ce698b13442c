"""Item codec (_core.ItemModels): round trips of both layouts, random access to sub-ranges,
ideal code lengths against coded bytes, a pure-Python reference of the bitstream, pinned golden
bytes, argument checks and robustness against corrupt data."""
from __future__ import annotations


import numpy as np
import pytest

from smic_fast import _core

# ---- helpers -------------------------------------------------------------------------------


def random_table(rng: np.random.Generator, size: int, high: int = 1000) -> np.ndarray:
    return rng.integers(1, high, size=size).astype(np.uint32)


def sorted_models(rng, s_max: int, k: int, n_levels: int = 5) -> _core.ItemModels:
    return _core.ItemModels(random_table(rng, s_max + 1), random_table(rng, 2 * k),
                            random_table(rng, k), random_table(rng, n_levels), s_max)


def paper_models(rng, s_max: int, k: int, n_levels: int = 5) -> _core.ItemModels:
    return _core.ItemModels(None, None, random_table(rng, k), random_table(rng, n_levels), s_max,
                            paper=True)


def random_sorted_items(rng, n: int, s_max: int, k: int, n_levels: int):
    """Valid items of the sorted layout; unused slots hold garbage (they must be ignored)."""
    counts = rng.integers(0, min(s_max, k) + 1, size=n).astype(np.int32)
    atoms = np.argsort(rng.random((n, k)), axis=1)[:, :s_max]  # distinct atoms per row
    atoms = np.pad(atoms, ((0, 0), (0, s_max - atoms.shape[1])))  # K < s_max: counts <= K
    first = (2 * atoms[:, 0] + rng.integers(0, 2, size=n)).astype(np.int32)
    first[counts == 0] = rng.integers(-5, 5, size=int((counts == 0).sum()))
    w = s_max - 1
    used = np.arange(w)[None, :] < (counts[:, None] - 1)
    rest = np.where(used, atoms[:, 1:], np.iinfo(np.int32).max)
    rest = np.sort(rest, axis=1)
    garbage = rng.integers(-3, 3 * k + 3, size=(n, w))
    rest_index = np.where(used, rest, garbage).astype(np.int32)
    rest_level = np.where(used, rng.integers(0, n_levels, size=(n, w)),
                          rng.integers(-3, 9, size=(n, w))).astype(np.int32)
    return counts, first, rest_index, rest_level


def random_paper_items(rng, n: int, s_max: int, k: int, n_levels: int):
    return (rng.integers(0, k, size=(n, s_max)).astype(np.int32),
            rng.integers(0, n_levels, size=(n, s_max)).astype(np.int32))


def canonical(items):
    """What decode returns for valid sorted items: -1 wherever a value is unused."""
    counts, first, rest_index, rest_level = (a.copy() for a in items)
    first[counts == 0] = -1
    used = np.arange(rest_index.shape[1])[None, :] < (counts[:, None] - 1)
    rest_index[~used] = -1
    rest_level[~used] = -1
    return counts, first, rest_index, rest_level


def assert_items_equal(got, want) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == np.int32
        np.testing.assert_array_equal(g, w)


def check_decoded_sorted(items, models) -> None:
    """Invariants every successfully decoded sorted-layout result must satisfy."""
    counts, first, rest_index, rest_level = items
    assert ((counts >= 0) & (counts <= models.s_max)).all()
    assert ((first == -1) == (counts == 0)).all()
    assert (first < 2 * models.n_atoms).all()
    used = np.arange(rest_index.shape[1])[None, :] < (counts[:, None] - 1)
    assert ((rest_index >= 0) & (rest_index < models.n_atoms) == used).all()
    assert ((rest_level >= 0) & (rest_level < models.n_levels) == used).all()
    assert (rest_index[~used] == -1).all() and (rest_level[~used] == -1).all()
    ascending = np.diff(rest_index, axis=1) > 0
    assert (ascending | ~used[:, 1:]).all()


# A pure-Python reference of the bitstream (range_coder.hpp): with an unbounded integer for
# `low`, carries propagate by themselves and the output is low written in shifts + 8 bytes.
def reference_stream(triples) -> bytes:
    low, rng, shifts = 0, (1 << 64) - 1, 0
    for start, freq, total in triples:
        r = rng // total
        low += r * start
        rng = r * freq
        while rng < 1 << 56:
            low <<= 8
            rng <<= 8
            shifts += 1
    return low.to_bytes(shifts + 8, "big")


def cumulative(freqs: np.ndarray) -> list:
    return [0] + np.cumsum(freqs.astype(np.int64)).tolist()


def reference_sorted(tables, items, chunk_size: int):
    count_c, first_c, index_c, level_c = (cumulative(t) for t in tables)
    k_atoms = len(index_c) - 1
    counts, first, rest_index, rest_level = items
    chunks = []
    for begin in range(0, counts.size, chunk_size):
        triples = []
        for i in range(begin, min(counts.size, begin + chunk_size)):
            k = int(counts[i])
            triples.append((count_c[k], count_c[k + 1] - count_c[k], count_c[-1]))
            if k == 0:
                continue
            f = int(first[i])
            triples.append((first_c[f], first_c[f + 1] - first_c[f], first_c[-1]))
            b = 0
            for j in range(k - 1):
                s, lv = int(rest_index[i, j]), int(rest_level[i, j])
                triples.append((index_c[s] - index_c[b], index_c[s + 1] - index_c[s],
                                index_c[k_atoms] - index_c[b]))
                triples.append((level_c[lv], level_c[lv + 1] - level_c[lv], level_c[-1]))
                b = s + 1
        chunks.append(reference_stream(triples))
    return chunks


def reference_paper(tables, items, chunk_size: int):
    index_c, level_c = (cumulative(t) for t in tables)
    index, level = items
    chunks = []
    for begin in range(0, index.shape[0], chunk_size):
        triples = []
        for i in range(begin, min(index.shape[0], begin + chunk_size)):
            for s, lv in zip(index[i].tolist(), level[i].tolist()):
                triples.append((index_c[s], index_c[s + 1] - index_c[s], index_c[-1]))
                triples.append((level_c[lv], level_c[lv + 1] - level_c[lv], level_c[-1]))
        chunks.append(reference_stream(triples))
    return chunks


def join(chunks):
    offsets = np.zeros(len(chunks) + 1, dtype=np.uint64)
    offsets[1:] = np.cumsum([len(c) for c in chunks])
    return b"".join(chunks), offsets


# ---- round trips ---------------------------------------------------------------------------

N_LEVELS = 7


@pytest.mark.parametrize("n", [0, 1, 1000])
@pytest.mark.parametrize("k", [1, 2, 5, 1024])
@pytest.mark.parametrize("s_max", [1, 2, 3, 8])
def test_round_trip_sorted(s_max: int, k: int, n: int) -> None:
    rng = np.random.default_rng([s_max, k, n])
    models = sorted_models(rng, s_max, k, N_LEVELS)
    items = random_sorted_items(rng, n, s_max, k, N_LEVELS)
    want = canonical(items)
    for chunk_size in (1, 7, 256):
        data, offsets = models.encode(*items, chunk_size)
        assert isinstance(data, bytes)
        assert offsets.dtype == np.uint64 and offsets.shape == (-(-n // chunk_size) + 1,)
        assert offsets[0] == 0 and offsets[-1] == len(data)
        got = models.decode(data, offsets, n, chunk_size)
        assert_items_equal(got, want)
        assert got[2].shape == (n, s_max - 1)
        # Re-encoding the decoded items gives the same bytes.
        assert models.encode(*got, chunk_size)[0] == data


@pytest.mark.parametrize("n", [0, 1, 1000])
@pytest.mark.parametrize("k", [1, 2, 5, 1024])
@pytest.mark.parametrize("s_max", [1, 2, 3, 8])
def test_round_trip_paper(s_max: int, k: int, n: int) -> None:
    rng = np.random.default_rng([s_max, k, n, 1])
    models = paper_models(rng, s_max, k, N_LEVELS)
    items = random_paper_items(rng, n, s_max, k, N_LEVELS)
    for chunk_size in (1, 7, 256):
        data, offsets = models.encode_paper(*items, chunk_size)
        got = models.decode_paper(data, offsets, n, chunk_size)
        assert_items_equal(got, items)


def test_round_trip_extreme_tables() -> None:
    # Power-of-two totals (shift path), totals of exactly 2^31, one dominant symbol.
    rng = np.random.default_rng(5)
    s_max, k = 4, 64
    tables = [np.full(s_max + 1, 1 << 10, np.uint32), np.full(2 * k, 1 << 20, np.uint32),
              np.full(k, 1 << 25, np.uint32), np.array([(1 << 31) - 3, 1, 1, 1], np.uint32)]
    models = _core.ItemModels(*tables, s_max)
    items = random_sorted_items(rng, 500, s_max, k, 4)
    data, offsets = models.encode(*items, 16)
    assert_items_equal(models.decode(data, offsets, 500, 16), canonical(items))
    assert join(reference_sorted(tables, items, 16))[0] == data


def test_decode_sub_ranges() -> None:
    rng = np.random.default_rng(11)
    s_max, k, n = 5, 300, 1000
    models = sorted_models(rng, s_max, k, N_LEVELS)
    pmodels = paper_models(rng, s_max, k, N_LEVELS)
    items = random_sorted_items(rng, n, s_max, k, N_LEVELS)
    pitems = random_paper_items(rng, n, s_max, k, N_LEVELS)
    for chunk_size in (1, 7, 256):
        data, offsets = models.encode(*items, chunk_size)
        full = models.decode(data, offsets, n, chunk_size)
        pdata, poffsets = pmodels.encode_paper(*pitems, chunk_size)
        pfull = pmodels.decode_paper(pdata, poffsets, n, chunk_size)
        ranges = [(0, 0), (0, 1), (n - 1, n), (n, n), (6, 8), (7, 14), (255, 257), (0, n)]
        ranges += [tuple(sorted(rng.integers(0, n + 1, size=2))) for _ in range(30)]
        for start, stop in ranges:
            got = models.decode(data, offsets, n, chunk_size, start, stop)
            assert_items_equal(got, [a[start:stop] for a in full])
            got = pmodels.decode_paper(pdata, poffsets, n, chunk_size, start=start, stop=stop)
            assert_items_equal(got, [a[start:stop] for a in pfull])
        # stop=None means n_items; start alone works.
        assert_items_equal(models.decode(data, offsets, n, chunk_size, 990),
                           [a[990:] for a in full])


def test_threads_and_buffer_types_agree() -> None:
    rng = np.random.default_rng(12)
    # Large enough for the chunks to be coded on two threads.
    n = 40_000
    models = sorted_models(rng, 6, 200, N_LEVELS)
    items = random_sorted_items(rng, n, 6, 200, N_LEVELS)
    data, offsets = models.encode(*items, 64, n_threads=2)
    data1, offsets1 = models.encode(*items, 64, n_threads=1)
    assert data1 == data and np.array_equal(offsets1, offsets)
    want = canonical(items)
    for buf in (data, bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)):
        assert_items_equal(models.decode(buf, offsets, n, 64, n_threads=2), want)
    assert_items_equal(models.decode(data, offsets, n, 64, n_threads=1), want)
    np.testing.assert_array_equal(models.item_bits(*items, n_threads=1),
                                  models.item_bits(*items, n_threads=2))
    # A corrupt chunk is reported from a parallel decode too.
    bad = bytearray(data)
    bad[int(offsets[300]) + 3] ^= 0x55
    bad[int(offsets[301]) - 1] ^= 0x55
    with pytest.raises(_core.DecodeError, match="chunk 30[01]"):
        models.decode(bytes(bad), offsets, n, 64, n_threads=2)


def test_chunks_are_independent() -> None:
    rng = np.random.default_rng(13)
    models = sorted_models(rng, 4, 50, N_LEVELS)
    items = random_sorted_items(rng, 100, 4, 50, N_LEVELS)
    data, offsets = models.encode(*items, 10)
    # Decoding chunk 3 alone works from its bytes and a two-entry offsets table.
    lo, hi = int(offsets[3]), int(offsets[4])
    got = models.decode(data[lo:hi], np.array([0, hi - lo], np.uint64), 10, 10)
    assert_items_equal(got, [a[30:40] for a in canonical(items)])
    # Damage to chunk 0 does not reach items of other chunks.
    bad = bytearray(data)
    bad[0] ^= 0xFF
    got = models.decode(bytes(bad), offsets, 100, 10, 10, 100)
    assert_items_equal(got, [a[10:] for a in canonical(items)])


# ---- the bitstream: reference implementation and golden bytes ------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_bitstream(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    s_max, k, n_levels = int(rng.integers(1, 6)), int(rng.integers(1, 40)), int(rng.integers(1, 9))
    tables = [random_table(rng, s_max + 1, 5000), random_table(rng, 2 * k, 5000),
              random_table(rng, k, 5000), random_table(rng, n_levels, 5000)]
    items = random_sorted_items(rng, 60, s_max, k, n_levels)
    data, offsets = _core.ItemModels(*tables, s_max).encode(*items, 9)
    ref_data, ref_offsets = join(reference_sorted(tables, items, 9))
    assert data == ref_data
    np.testing.assert_array_equal(offsets, ref_offsets)

    pitems = random_paper_items(rng, 60, s_max, k, n_levels)
    pmodels = _core.ItemModels(None, None, tables[2], tables[3], s_max, paper=True)
    data, offsets = pmodels.encode_paper(*pitems, 9)
    ref_data, ref_offsets = join(reference_paper(tables[2:], pitems, 9))
    assert data == ref_data
    np.testing.assert_array_equal(offsets, ref_offsets)


GOLDEN_TABLES = [np.array([1, 2, 3, 4], np.uint32), np.arange(1, 9, dtype=np.uint32),
                 np.array([5, 1, 2, 3], np.uint32), np.array([1, 1, 2], np.uint32)]
GOLDEN_ITEMS = (np.array([3, 0, 1, 2], np.int32), np.array([5, 0, 7, 2], np.int32),
                np.array([[0, 3], [9, 9], [9, 9], [2, -1]], np.int32),
                np.array([[1, 2], [0, 0], [0, 0], [0, 5]], np.int32))


def test_golden_bytes_sorted() -> None:
    models = _core.ItemModels(*GOLDEN_TABLES, 3)
    data, offsets = models.encode(*GOLDEN_ITEMS, 2)
    assert data == bytes.fromhex("c7a91d7a91d7a917" "00" "454670546705466b70")
    assert offsets.tolist() == [0, 9, 18]
    assert data == join(reference_sorted(GOLDEN_TABLES, GOLDEN_ITEMS, 2))[0]
    assert_items_equal(models.decode(data, offsets, 4, 2), canonical(GOLDEN_ITEMS))


def test_golden_bytes_paper() -> None:
    models = _core.ItemModels(None, None, GOLDEN_TABLES[2], GOLDEN_TABLES[3], 2, paper=True)
    index = np.array([[0, 3], [1, 1], [2, 0]], np.int32)
    level = np.array([[2, 0], [1, 2], [0, 0]], np.int32)
    data, offsets = models.encode_paper(index, level, 2)
    assert data == bytes.fromhex("666f2ba910593e7cdf" "8ba2e8ba2e8ba2e6")
    assert offsets.tolist() == [0, 9, 17]
    assert data == join(reference_paper(GOLDEN_TABLES[2:], (index, level), 2))[0]
    assert_items_equal(models.decode_paper(data, offsets, 3, 2), (index, level))


# ---- ideal code lengths --------------------------------------------------------------------

@pytest.mark.parametrize("pow2", [False, True])
@pytest.mark.parametrize("paper", [False, True])
def test_item_bits_match_coded_size(paper: bool, pow2: bool) -> None:
    rng = np.random.default_rng([paper, pow2])
    s_max, k, n, chunk_size = 6, 512, 2000, 50

    def table(size):
        return (np.full(size, 1 << 12, np.uint32) if pow2 else random_table(rng, size, 1 << 16))

    if paper:
        models = _core.ItemModels(None, None, table(k), table(9), s_max, paper=True)
        items = random_paper_items(rng, n, s_max, k, 9)
        bits = models.item_bits_paper(*items)
        data, offsets = models.encode_paper(*items, chunk_size)
    else:
        models = _core.ItemModels(table(s_max + 1), table(2 * k), table(k), table(9), s_max)
        items = random_sorted_items(rng, n, s_max, k, 9)
        bits = models.item_bits(*items)
        data, offsets = models.encode(*items, chunk_size)
    assert bits.dtype == np.float64 and bits.shape == (n,)
    assert (bits > 0).all()
    for c in range(len(offsets) - 1):
        coded = 8 * int(offsets[c + 1] - offsets[c])
        ideal = bits[c * chunk_size:(c + 1) * chunk_size].sum()
        # The flush writes 56 to 64 bits beyond the ideal length; rounding adds ~2^-24 / symbol.
        assert 56 - 1e-6 <= coded - ideal <= 64 + 1e-3, (c, coded, ideal)


def test_item_bits_by_hand() -> None:
    models = _core.ItemModels(*GOLDEN_TABLES, 3)
    bits = models.item_bits(*GOLDEN_ITEMS)
    # item 0: count 3 (4/10), first 5 (6/36), atom 0 of [0, 4) (5/11), level 1 (1/4),
    #         atom 3 of [1, 4) (3/6), level 2 (2/4)
    want0 = -np.log2([4 / 10, 6 / 36, 5 / 11, 1 / 4, 3 / 6, 2 / 4]).sum()
    want = [want0, -np.log2(1 / 10), -np.log2(2 / 10 * 8 / 36),
            -np.log2(3 / 10 * 3 / 36 * 2 / 11 * 1 / 4)]
    np.testing.assert_allclose(bits, want, rtol=1e-12)
    assert models.item_bits(*(a[:0] for a in GOLDEN_ITEMS)).shape == (0,)


def test_sorted_coding_beats_unsorted() -> None:
    # The conditional code of ascending atoms never costs more than coding each atom with the
    # unconditional index model, and saves bits on average.
    rng = np.random.default_rng(21)
    s_max, k, n = 8, 1024, 3000
    index_table = random_table(rng, k)
    models = _core.ItemModels(np.ones(s_max + 1, np.uint32), np.ones(2 * k, np.uint32),
                              index_table, np.ones(1, np.uint32), s_max)
    counts = np.full(n, s_max, np.int32)
    atoms = np.argsort(rng.random((n, k)), axis=1)[:, :s_max]
    first = (2 * atoms[:, 0]).astype(np.int32)
    rest_index = np.sort(atoms[:, 1:], axis=1).astype(np.int32)
    rest_level = np.zeros_like(rest_index)
    fixed = np.log2(s_max + 1) + np.log2(2 * k)  # count and first under uniform tables
    conditional = models.item_bits(counts, first, rest_index, rest_level) - fixed
    p = index_table / index_table.sum(dtype=np.float64)
    unconditional = -np.log2(p[rest_index]).sum(axis=1)
    assert (conditional <= unconditional + 1e-9).all()
    saving = (unconditional - conditional).mean()
    # 7 ascending atoms of 1024: about log2(8^6 / 7!) = 5.7 bits (for a uniform table).
    assert saving > 4.0, saving


# ---- argument checks -----------------------------------------------------------------------

def small_sorted():
    models = _core.ItemModels(*GOLDEN_TABLES, 3)
    return models, tuple(a.copy() for a in GOLDEN_ITEMS)


@pytest.mark.parametrize("field, row, col, value, match", [
    ("rest_index", 0, 1, 0, r"rest_index\[0, 1\] = 0 is not greater than rest_index\[0, 0\]"),
    ("rest_index", 0, 0, 3, r"rest_index\[0, 1\] = 3 is not greater"),
    ("rest_index", 0, 1, 4, r"rest_index\[0, 1\] = 4 is outside \[0, 4\)"),
    ("rest_index", 3, 0, -1, r"rest_index\[3, 0\] = -1 is outside"),
    ("rest_level", 0, 1, 3, r"rest_level\[0, 1\] = 3 is outside \[0, 3\)"),
    ("rest_level", 3, 0, -2, r"rest_level\[3, 0\]"),
    ("counts", 1, None, 4, r"counts\[1\] = 4 is outside \[0, 4\)"),
    ("counts", 2, None, -1, r"counts\[2\] = -1"),
    ("first", 2, None, 8, r"first\[2\] = 8 is outside \[0, 8\)"),
    ("first", 0, None, -1, r"first\[0\] = -1"),
])
def test_invalid_items(field, row, col, value, match) -> None:
    models, items = small_sorted()
    arrays = dict(zip(("counts", "first", "rest_index", "rest_level"), items))
    if col is None:
        arrays[field][row] = value
    else:
        arrays[field][row, col] = value
    with pytest.raises(ValueError, match=match):
        models.encode(*items, 2)
    with pytest.raises(ValueError, match=match):
        models.item_bits(*items)


def test_invalid_paper_items() -> None:
    models = _core.ItemModels(None, None, GOLDEN_TABLES[2], GOLDEN_TABLES[3], 2, paper=True)
    index = np.zeros((3, 2), np.int32)
    level = np.zeros((3, 2), np.int32)
    index[1, 1] = 4
    with pytest.raises(ValueError, match=r"index\[1, 1\] = 4 is outside \[0, 4\)"):
        models.encode_paper(index, level, 1)
    index[1, 1] = 0
    level[2, 0] = 3
    with pytest.raises(ValueError, match=r"level\[2, 0\] = 3 is outside \[0, 3\)"):
        models.item_bits_paper(index, level)
    level[2, 0] = 0
    # Paper items need not be sorted or distinct.
    index[0] = [3, 3]
    data, offsets = models.encode_paper(index, level, 1)
    assert_items_equal(models.decode_paper(data, offsets, 3, 1), (index, level))


def test_invalid_array_types() -> None:
    models, (counts, first, rest_index, rest_level) = small_sorted()
    with pytest.raises(ValueError, match="counts must have dtype int32"):
        models.encode(counts.astype(np.int64), first, rest_index, rest_level, 2)
    with pytest.raises(ValueError, match="rest_level must have dtype int32"):
        models.item_bits(counts, first, rest_index, rest_level.astype(np.uint32))
    with pytest.raises(ValueError, match=r"rest_index must have shape \(4, 2\), got \(4, 3\)"):
        models.encode(counts, first, np.zeros((4, 3), np.int32), rest_level, 2)
    with pytest.raises(ValueError, match=r"first must have shape \(4,\), got \(3,\)"):
        models.encode(counts, first[:3], rest_index, rest_level, 2)
    with pytest.raises(ValueError, match="rest_index must be 2-dimensional"):
        models.encode(counts, first, rest_index.ravel(), rest_level, 2)
    with pytest.raises(ValueError, match="rest_level must be C-contiguous"):
        models.encode(counts, first, rest_index, np.asfortranarray(rest_level), 2)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        models.encode(counts, first, rest_index, rest_level, 0)
    data, offsets = models.encode(counts, first, rest_index, rest_level, 2)
    with pytest.raises(ValueError, match="offsets must have dtype uint64"):
        models.decode(data, offsets.astype(np.int64), 4, 2)
    with pytest.raises(ValueError, match="data must be a contiguous buffer of bytes"):
        models.decode(np.frombuffer(data, np.uint8).view(np.int16), offsets, 4, 2)
    with pytest.raises(ValueError, match="n_items must be >= 0"):
        models.decode(data, offsets, -1, 2)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        models.decode(data, offsets, 4, 0)
    for start, stop in ((-1, 2), (3, 2), (0, 5)):
        with pytest.raises(ValueError, match="need 0 <= start <= stop <= n_items"):
            models.decode(data, offsets, 4, 2, start, stop)
    # Methods of the other layout.
    with pytest.raises(ValueError, match="paper=False.*use encode/decode/item_bits"):
        models.encode_paper(rest_index, rest_level, 2)
    pmodels = _core.ItemModels(None, None, GOLDEN_TABLES[2], GOLDEN_TABLES[3], 2, paper=True)
    with pytest.raises(ValueError, match="paper=True.*use the \\*_paper methods"):
        pmodels.decode(data, offsets, 4, 2)
    with pytest.raises(ValueError, match=r"index must have shape \(4, 2\), got \(4, 3\)"):
        pmodels.item_bits_paper(np.zeros((4, 3), np.int32), np.zeros((4, 2), np.int32))


@pytest.mark.parametrize("change, match", [
    (lambda t: t.__setitem__(0, t[0][:-1]), "count frequency table must have s_max \\+ 1 = 4"),
    (lambda t: t.__setitem__(1, t[1][:-1]), "first frequency table must have 2K = 8"),
    (lambda t: t.__setitem__(2, t[2][:0]), "index frequency table must have 1 to 2\\^30"),
    (lambda t: t.__setitem__(3, t[3][:0]), "level frequency table must not be empty"),
    (lambda t: t[3].__setitem__(1, 0), "level frequency table: freqs\\[1\\] is 0"),
    (lambda t: t[2].__setitem__(0, 1 << 31), "index frequency table: frequencies sum to more"),
    (lambda t: t.__setitem__(0, t[0].astype(np.int32)), "count_freqs must have dtype uint32"),
    (lambda t: t.__setitem__(2, t[2].astype(np.float64)), "index_freqs must have dtype uint32"),
    (lambda t: t.__setitem__(3, t[3].reshape(1, -1)), "level_freqs must be 1-dimensional"),
    (lambda t: t.__setitem__(0, None), "count_freqs is required unless paper=True"),
    (lambda t: t.__setitem__(1, [1, 2]), "first_freqs must be a numpy array"),
])
def test_invalid_tables(change, match) -> None:
    tables = [t.copy() for t in GOLDEN_TABLES]
    change(tables)
    with pytest.raises(ValueError, match=match):
        _core.ItemModels(*tables, 3)


def test_invalid_model_settings() -> None:
    t = GOLDEN_TABLES
    for s_max in (0, -1, 1 << 17):
        with pytest.raises(ValueError, match="s_max must be in"):
            _core.ItemModels(t[0], t[1], t[2], t[3], s_max)
    with pytest.raises(ValueError, match="count_freqs is unused in the paper layout"):
        _core.ItemModels(t[0], None, t[2], t[3], 3, paper=True)
    empty = np.zeros(0, np.uint32)
    models = _core.ItemModels(empty, empty, t[2], t[3], 3, paper=True)
    assert (models.paper, models.s_max, models.n_atoms, models.n_levels) == (True, 3, 4, 3)
    models = _core.ItemModels(*t, 3)
    assert (models.paper, models.s_max, models.n_atoms, models.n_levels) == (False, 3, 4, 3)
    assert repr(models) == "ItemModels(s_max=3, n_atoms=4, n_levels=3, paper=False)"


# ---- corrupt data --------------------------------------------------------------------------

def test_bad_offsets() -> None:
    models, items = small_sorted()
    data, offsets = models.encode(*items, 2)  # offsets [0, 9, 18]
    cases = [
        (data, np.array([0, 9], np.uint64), 4, 2, "need 3 offsets, got 2"),
        (data, np.array([1, 9, 18], np.uint64), 4, 2, "offsets\\[0\\] must be 0"),
        (data, np.array([0, 19, 18], np.uint64), 4, 2, "offsets decrease at chunk 1"),
        (data, np.array([0, 9, 17], np.uint64), 4, 2, "offsets end at byte 17 but the data "
                                                      "holds 18"),
        (data[:-1], offsets, 4, 2, "offsets end at byte 18 but the data holds 17"),
        (data, np.array([0, 1 << 63, 18], np.uint64), 4, 2, "offsets decrease"),
        (data, offsets, 4, 4, "need 2 offsets, got 3"),
        (data, np.array([0, 18], np.uint64), 4, 4, "unread byte|corrupt|truncated"),
        (data, np.array([0, 4, 18], np.uint64), 4, 2, "chunk 0.*truncated"),
        (data, np.array([0, 10, 18], np.uint64), 4, 2, "chunk 0"),
    ]
    for d, o, n, cs, match in cases:
        with pytest.raises(_core.DecodeError, match=match):
            models.decode(d, o, n, cs)
    assert issubclass(_core.DecodeError, ValueError)
    # An item count that the chunk's bytes cannot hold is rejected without decoding it.
    with pytest.raises(_core.DecodeError, match="too few bytes for 1000000000000 items"):
        models.decode(data, np.array([0, 18], np.uint64), 10**12, 10**12, 0, 1)


def test_atoms_past_the_last_atom() -> None:
    # A stream (built with the reference coder) whose item claims 3 atoms of K = 2 with the
    # second atom already the last one: no encoder writes it; the decoder must reject it.
    tables = [np.ones(4, np.uint32), np.ones(4, np.uint32), np.ones(2, np.uint32),
              np.ones(1, np.uint32)]
    models = _core.ItemModels(*tables, 3)
    stream = reference_stream([(3, 1, 4), (0, 1, 4), (1, 1, 2), (0, 1, 1), (0, 1, 1)])
    with pytest.raises(_core.DecodeError, match="chunk 0 .*atoms run past the last atom"):
        models.decode(stream, np.array([0, len(stream)], np.uint64), 1, 1)


def test_random_corruptions() -> None:
    """Thousands of damaged inputs: each either decodes to valid-looking items or raises
    DecodeError; never a crash, hang or other exception."""
    rng = np.random.default_rng(2024)
    trials = raised = 0
    for setup in range(16):
        s_max, k = int(rng.integers(1, 9)), int(rng.choice([1, 3, 40, 1024]))
        paper = setup % 2 == 1
        chunk_size = int(rng.choice([1, 7, 16]))
        n = int(rng.integers(1, 60))
        if paper:
            models = paper_models(rng, s_max, k, N_LEVELS)
            items = random_paper_items(rng, n, s_max, k, N_LEVELS)
            data, offsets = models.encode_paper(*items, chunk_size)
            decode = models.decode_paper
        else:
            models = sorted_models(rng, s_max, k, N_LEVELS)
            items = random_sorted_items(rng, n, s_max, k, N_LEVELS)
            data, offsets = models.encode(*items, chunk_size)
            decode = models.decode
        for _ in range(250):
            d, o = bytearray(data), offsets.copy()
            n_items, cs = n, chunk_size
            kind = int(rng.integers(0, 6))
            if kind == 0:  # flipped bytes
                for _ in range(int(rng.integers(1, 4))):
                    d[int(rng.integers(0, len(d)))] ^= int(rng.integers(1, 256))
            elif kind == 1:  # truncated stream, offsets moved to match
                cut = int(rng.integers(0, len(d)))
                d = d[:cut]
                o = np.minimum(o, cut).astype(np.uint64)
                o[-1] = cut
            elif kind == 2:  # truncated stream, offsets unchanged
                d = d[: int(rng.integers(0, len(d)))]
            elif kind == 3:  # one offset changed
                o[int(rng.integers(0, len(o)))] = int(rng.integers(0, len(d) + 3))
            elif kind == 4:  # random bytes of the right length
                d = bytearray(rng.integers(0, 256, size=len(d), dtype=np.uint8).tobytes())
            else:  # wrong item count or chunk size
                n_items = int(rng.integers(0, 3 * n + 2))
                cs = int(rng.integers(1, 3 * chunk_size + 2))
            start = int(rng.integers(0, n_items + 1))
            stop = int(rng.integers(start, n_items + 1))
            trials += 1
            try:
                got = decode(bytes(d), o, n_items, cs, start, stop)
            except _core.DecodeError:
                raised += 1
                continue
            if paper:
                index, level = got
                assert ((index >= 0) & (index < k)).all() and ((level >= 0) & (level < 7)).all()
            else:
                check_decoded_sorted(got, models)
    print(f"{trials} corrupt inputs, {raised} raised DecodeError")
    assert trials >= 2000
    assert raised > trials // 4  # most damage is detected
