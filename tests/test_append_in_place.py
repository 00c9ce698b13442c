"""Appends that cost what they add (issue 19): in-place appends with a committed section count,
writers killed mid-append many times, torn tails, concurrent writers, and repack."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import smic_fast as smic
from smic_fast import _core


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(3)
    c = rng.standard_normal((10, 32))
    return (c[rng.integers(0, 10, 2000)] + 0.4 * rng.standard_normal((2000, 32))).astype(np.float32)


@pytest.fixture(scope="module")
def dictionary(rows, tmp_path_factory):
    d = smic.Dictionary.fit(rows[:800], 32, n_iter=2)
    path = tmp_path_factory.mktemp("d") / "d.smicd"
    d.save(path)
    return d, path


def preamble_count(path) -> tuple[int, int]:
    data = path.read_bytes()
    return int.from_bytes(data[10:12], "little"), int.from_bytes(data[12:16], "little")


def test_in_place_append_keeps_every_earlier_byte_and_is_what_a_copy_gives(tmp_path, rows, dictionary):
    d, _ = dictionary
    path, copy = tmp_path / "c.smic", tmp_path / "copy.smic"
    smic.compress(rows[:300], path, dictionary=d, chunk_size=16)
    smic.compress(rows[:300], copy, dictionary=d, chunk_size=16)
    before = path.read_bytes()
    col = smic.open(path, dictionary=d)
    for i, (a, b) in enumerate([(300, 301), (301, 340), (340, 341)]):
        ids = None if i != 1 else [f"x{k}" for k in range(b - a)]
        col.append(rows[a:b], ids=ids)
        _core.append_collection(str(copy), rows[a:b], ids, None, False, 0, d._core, 0)  # the copying writer
    after = path.read_bytes()
    assert preamble_count(path) == (1, 2 + 2 * 4)  # flag + HEAD, DREF, 4 batches of IDS_ ITEM
    assert after[:10] == before[:10] and after[16:len(before)] == before[16:]
    # the same sections as the copying writer's, only the preamble differs
    assert after[16:] == copy.read_bytes()[16:]
    again = smic.open(path, dictionary=d)
    assert len(col) == len(again) == 341 and col.ids == again.ids
    assert col.ids[300] == "300" and col.ids[301] == "x0" and col.ids[-1] == "340"
    np.testing.assert_array_equal(col.embeddings(), again.embeddings())
    assert col.info() == again.info()
    with pytest.raises(ValueError, match="duplicate item id 'x3'"):
        col.append(rows[:1], ids=["x3"])
    with pytest.raises(ValueError, match="duplicate item id '5'"):
        col.append(rows[:1], ids=["5"])
    assert path.read_bytes() == after


def test_torn_tail_is_ignored_and_overwritten(tmp_path, rows, dictionary):
    d, _ = dictionary
    path = tmp_path / "c.smic"
    smic.compress(rows[:100], path, dictionary=d)
    col = smic.open(path, dictionary=d)
    col.append(rows[100:110])
    committed = path.read_bytes()
    expected = col.embeddings()
    # an append killed after writing part of its sections: bytes after the committed ones
    for tail in (b"I", b"IDS_\x05\x00", committed[-40:], committed[len(committed) - 200:]):
        path.write_bytes(committed + tail)
        torn = smic.open(path, dictionary=d)
        assert len(torn) == 110 and torn._core.torn_bytes == len(tail)
        assert torn.info()["file_bytes"] == len(committed)
        np.testing.assert_array_equal(torn.embeddings(), expected)
        torn.append(rows[110:111])  # truncates the tail, then appends
        fresh = smic.open(path, dictionary=d)
        assert len(fresh) == 111 and fresh._core.torn_bytes == 0
        np.testing.assert_array_equal(fresh.embeddings()[:110], expected)
    # complete sections written but never committed (killed before the count was raised)
    path.write_bytes(committed)
    col = smic.open(path, dictionary=d)
    col.append(rows[110:120])
    data = bytearray(path.read_bytes())
    data[12:16] = (4 + 2).to_bytes(4, "little")  # the count before that append
    path.write_bytes(bytes(data))
    assert len(smic.open(path, dictionary=d)) == 110
    # a truncated file still fails clearly: fewer sections than committed
    path.write_bytes(committed[: len(committed) - 30])
    with pytest.raises(smic.FormatError, match="truncated"):
        smic.open(path, dictionary=d)
    data = bytearray(committed)
    data[12:16] = (9).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(smic.FormatError, match="6 of the 9 sections it committed"):
        smic.open(path, dictionary=d)


def test_copying_append_and_replace_on_a_counted_file_with_a_torn_tail(tmp_path, rows, dictionary):
    d, _ = dictionary
    path = tmp_path / "c.smic"
    smic.compress(rows[:100], path, dictionary=d)
    col = smic.open(path, dictionary=d)
    col.append(rows[100:105], ids=[f"a{i}" for i in range(5)])
    expected = col.embeddings()
    path.write_bytes(path.read_bytes() + b"torn tail")
    _core.append_collection(str(path), rows[105:107], None, None, False, 0, d._core, 0)
    after = smic.open(path, dictionary=d)
    assert len(after) == 107 and after._core.torn_bytes == 0
    np.testing.assert_array_equal(after.embeddings()[:105], expected)
    after.append(rows[107:108], ids=["a1"], replace=True)  # the rewriting path
    again = smic.open(path, dictionary=d)
    assert len(again) == 107 and again.ids[-1] == "a1" and "a1" not in again.ids[:-1]


def test_a_stale_reader_cannot_append(tmp_path, rows, dictionary):
    d, _ = dictionary
    path = tmp_path / "c.smic"
    smic.compress(rows[:50], path, dictionary=d)
    first, second = smic.open(path, dictionary=d), smic.open(path, dictionary=d)
    first.append(rows[50:51])
    before = path.read_bytes()
    with pytest.raises(OSError, match="changed since it was opened"):
        second.append(rows[51:52])
    assert path.read_bytes() == before
    first.append(rows[51:52])  # the up-to-date reader still can
    assert len(smic.open(path, dictionary=d)) == 52


WRITER = textwrap.dedent("""
    import sys, numpy as np, smic_fast as smic
    path, dictionary, rows, start = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    E = np.load(rows)
    col = smic.open(path, dictionary=dictionary)
    print("ready", flush=True)
    for i in range(start, len(E)):
        col.append(E[i:i + 1], ids=[f"k{i}"])
""")


def test_writers_killed_mid_append_lose_nothing_committed(tmp_path, rows, dictionary):
    """SIGKILL a process that appends one item after another, at random moments, 25 times;
    after each kill the file opens, every item committed before is there and decodes as it
    did, the appended items are a prefix of the stream in order, and appending goes on."""
    d, d_path = dictionary
    path = tmp_path / "c.smic"
    base = 200
    smic.compress(rows[:base], path, dictionary=d)
    np.save(tmp_path / "rows.npy", rows)
    # what every item must decode to: single-item batches code each row alone
    reference = smic.compress(rows, tmp_path / "ref.smic", dictionary=d, chunk_size=1)
    expected = smic.open(tmp_path / "ref.smic", dictionary=d).embeddings()
    rng = random.Random(0)
    seen_torn, count = 0, base
    for attempt in range(25):
        with subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(d_path), str(tmp_path / "rows.npy"),
                               str(count)], stdout=subprocess.PIPE, text=True) as child:
            assert child.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.05))
            child.kill()
        col = smic.open(path, dictionary=d)
        seen_torn += col._core.torn_bytes > 0
        assert len(col) >= count  # nothing committed was lost
        count = len(col)
        assert col.ids[:base] == [str(i) for i in range(base)]
        assert col.ids[base:] == [f"k{i}" for i in range(base, count)]
        np.testing.assert_array_equal(col.embeddings(), expected[:count])
        if count >= len(rows):
            break
    assert count > base  # the writers did append
    assert reference["items"] == len(rows)
    print(f"{attempt + 1} kills, {count - base} items appended, {seen_torn} torn tails seen")


@pytest.mark.parametrize("step", [None, 0.05])
def test_repack_merges_batches_and_every_item_decodes_the_same(tmp_path, rows, dictionary, step):
    d, _ = dictionary
    path = tmp_path / "c.smic"
    smic.compress(rows[:100], path, n_atoms=32, n_iter=2, chunk_size=8, residual_step=step,
                  pixels=[1000 + i for i in range(100)])
    col = smic.open(path)
    for i in range(100, 160):
        col.append(rows[i:i + 1], ids=[f"n{i}"], pixels=[5000])
    col.append(rows[160:190], pixels=[7] * 30)
    before_info, before_e, before_ids = col.info(), col.embeddings(), col.ids
    assert len(col._batch_sizes()) == 62
    after = col.repack()
    assert col._batch_sizes() == [190] and after["items"] == 190
    np.testing.assert_array_equal(col.embeddings(), before_e)
    assert col.ids == before_ids and col._core.pixels == [1000 + i for i in range(100)] + [5000] * 60 + [7] * 30
    assert after["marginal_bits_per_item"] < before_info["marginal_bits_per_item"] / 2
    assert preamble_count(path) == (0, 0)  # an atomic rewrite: no committed count needed
    fresh = smic.open(path)
    np.testing.assert_array_equal(fresh.embeddings(), before_e)
    assert fresh.residual_step == step
    # one compress of the same rows codes the same symbols: the same rate as a single batch
    one = smic.compress(rows[:190], tmp_path / "one.smic", dictionary=col.dictionary, chunk_size=8,
                        residual_step=step)
    assert after["marginal_bits_per_item"] == pytest.approx(one["marginal_bits_per_item"], rel=0.02)


def test_repack_cli_and_shared_dictionary(tmp_path, rows, dictionary, capsys):
    from smic_fast.cli import main

    d, d_path = dictionary
    path = tmp_path / "c.smic"
    smic.compress(rows[:50], path, dictionary=d)
    col = smic.open(path, dictionary=d)
    for i in range(50, 80):
        col.append(rows[i:i + 1])
    expected = col.embeddings()
    assert main(["repack", str(path)]) == 1  # needs its dictionary
    assert "dictionary" in capsys.readouterr().err
    assert main(["repack", str(path), "--dictionary", str(d_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["batches_before"] == 31 and summary["items"] == 80
    assert summary["bits_per_item"] < summary["bits_per_item_before"]
    np.testing.assert_array_equal(smic.open(path, dictionary=d).embeddings(), expected)
    path.write_bytes(path.read_bytes()[:-10])
    assert main(["repack", str(path), "--dictionary", str(d_path)]) == 1
    assert "truncated" in capsys.readouterr().err


def test_positions_are_found_without_an_index(tmp_path, rows, dictionary):
    """Implied ids (positions) are not indexed; find() recognises the canonical decimal of a
    position in a batch without ids, and nothing else."""
    d, _ = dictionary
    path = tmp_path / "c.smic"
    smic.compress(rows[:20], path, dictionary=d)
    col = smic.open(path, dictionary=d)
    col.append(rows[20:22], ids=["a", "b"])
    col.append(rows[22:25])
    for fresh in (col, smic.open(path, dictionary=d)):
        for item_id, position in [("0", 0), ("19", 19), ("a", 20), ("b", 21), ("22", 22), ("24", 24)]:
            assert fresh._core.find(item_id) == position
            np.testing.assert_array_equal(fresh[item_id], fresh.embeddings()[position])
        for item_id in ["20", "21", "25", "05", "-1", "+3", "1e1", "", " 3", "9" * 30]:
            assert fresh._core.find(item_id) is None
        with pytest.raises(KeyError):
            fresh["20"]
        assert fresh.ids == [str(i) for i in range(20)] + ["a", "b", "22", "23", "24"]
    for taken in ("3", "a", "23"):
        with pytest.raises(ValueError, match=f"duplicate item id '{taken}'"):
            col.append(rows[:1], ids=[taken])
    col.append(rows[:1], ids=["25x"])
    assert len(smic.open(path, dictionary=d)) == 26


def test_a_reader_of_a_replaced_file_cannot_append(tmp_path, rows, dictionary):
    """Another file renamed over the one a reader opened, even with the very same bytes (so
    size and preamble match): refused by the inode check."""
    d, _ = dictionary
    path, other = tmp_path / "c.smic", tmp_path / "o.smic"
    smic.compress(rows[:50], path, dictionary=d)
    other.write_bytes(path.read_bytes())
    stale = smic.open(path, dictionary=d)
    other.replace(path)
    replaced = path.read_bytes()
    with pytest.raises(OSError, match="changed since it was opened"):
        stale.append(rows[100:101])
    assert path.read_bytes() == replaced
