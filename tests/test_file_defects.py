"""Three defects a C programmer found (issue 31), each guarded here on every layer it reached:

- a folder given where a file is expected is an IO error naming it (Python IsADirectoryError,
  C SMIC_ERR_IO), never "out of memory": the core's file reader took the size of a directory
  from ``tellg()`` (2^63 - 1 on ext4) and allocated it;
- ids containing a NUL byte are refused everywhere, with nothing written: C reads ids as
  NUL-terminated strings, so "a\\0x" and "a\\0y" would both read as "a";
- repack keeps positional ids implied (not written out one by one): the file after repack is
  within 5% of one batch append's.
"""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import smic_fast
from smic_fast.cli import main

IO_STATUS = 4  # SMIC_ERR_IO (smic.h: stable value)
INVALID_STATUS = 1  # SMIC_ERR_INVALID_ARGUMENT


def clustered(rng: np.random.Generator, n: int, d: int = 32, concepts: int = 12) -> np.ndarray:
    centres = rng.standard_normal((concepts, d))
    return (centres[rng.integers(0, concepts, n)] + 0.3 * rng.standard_normal((n, d))).astype(np.float32)


def c_library() -> ctypes.CDLL:
    """libsmic_c.so as the package installs it (smic_fast/lib/), the C ABI a C program links."""
    lib_dir = Path(smic_fast.__file__).parent / "lib"
    found = sorted(lib_dir.glob("libsmic_c.so*"))
    if not found:
        pytest.skip(f"no libsmic_c.so in {lib_dir}")
    lib = ctypes.CDLL(str(found[0]))
    lib.smic_last_error.restype = ctypes.c_char_p
    return lib


@pytest.fixture
def folder(tmp_path) -> Path:
    """A directory named like each kind of file."""
    for name in ("x.smic", "d.smicd"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "inner").write_bytes(b"not read")
    return tmp_path


# ---- a folder where a file is expected ---------------------------------------------------------

def test_python_readers_raise_is_a_directory(folder):
    with pytest.raises(IsADirectoryError) as err:
        smic_fast.open(folder / "x.smic")
    assert err.value.errno == errno.EISDIR and "x.smic" in str(err.value)
    with pytest.raises(IsADirectoryError):
        smic_fast.Dictionary.load(folder / "d.smicd")
    with pytest.raises(IsADirectoryError):
        smic_fast.open(folder / "x.smic").info()


def test_open_with_a_dictionary_folder_raises_is_a_directory(folder, rng):
    E = clustered(rng, 300)
    dictionary = smic_fast.Dictionary.fit(E, n_atoms=16)
    smic_fast.compress(E, folder / "shared.smic", dictionary=dictionary)
    with pytest.raises(IsADirectoryError):
        smic_fast.open(folder / "shared.smic", dictionary=folder / "d.smicd")


@pytest.mark.parametrize("command", [
    ["info", "{x}"], ["repack", "{x}"], ["search", "{x}", "--like", "0"],
    ["append", "{x}", "{q}"], ["decompress", "{x}", "--embeddings", "{out}"],
])
def test_cli_reports_a_folder_and_exits_non_zero(capsys, folder, rng, command):
    q = folder / "q.npy"
    np.save(q, clustered(rng, 2))
    args = [a.format(x=folder / "x.smic", q=q, out=folder / "out") for a in command]
    code = main(args)
    out, err = capsys.readouterr()
    assert code != 0, (out, err)
    assert "Traceback" not in err and "MemoryError" not in err and "bad_alloc" not in err
    assert "directory" in err and "x.smic" in err, err
    assert not (folder / "out").exists()


def test_cli_compress_with_a_dictionary_folder(capsys, folder, rng):
    np.save(folder / "e.npy", clustered(rng, 200))
    code = main(["compress", str(folder / "e.npy"), "-o", str(folder / "o.smic"),
                 "--dictionary", str(folder / "d.smicd")])
    _, err = capsys.readouterr()
    assert code != 0 and "directory" in err and "d.smicd" in err, err
    assert not (folder / "o.smic").exists()


def test_c_readers_give_io_status(folder):
    lib = c_library()
    handle = ctypes.c_void_p()
    for function, path in (("smic_collection_open", folder / "x.smic"), ("smic_dictionary_load", folder / "d.smicd")):
        call = getattr(lib, function)
        args = (str(path).encode(), None, ctypes.byref(handle)) if function == "smic_collection_open" else (
            str(path).encode(), ctypes.byref(handle))
        status = call(*args)
        assert status == IO_STATUS, (function, status, lib.smic_last_error())
        assert b"directory" in lib.smic_last_error()
        assert not handle.value


# ---- ids with a NUL byte -----------------------------------------------------------------------

def test_compress_refuses_nul_in_ids_and_writes_nothing(tmp_path, rng):
    E = clustered(rng, 200)
    ids = [f"a\0{i}" for i in range(200)]
    with pytest.raises(ValueError, match="NUL"):
        smic_fast.compress(E, tmp_path / "c.smic", n_atoms=16, ids=ids)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("replace", [False, True])
def test_append_refuses_nul_in_ids(tmp_path, rng, replace):
    E = clustered(rng, 260)
    path = tmp_path / "c.smic"
    smic_fast.compress(E[:200], path, n_atoms=16, ids=[f"id{i}" for i in range(200)])
    before = path.read_bytes()
    col = smic_fast.open(path)
    with pytest.raises(ValueError, match="NUL"):
        col.append(E[200:], ids=[f"id{i}" if i < 205 else f"b\0{i}" for i in range(200, 260)], replace=replace)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.smic"]  # no temporary left


def test_core_writer_refuses_nul_in_ids(tmp_path, rng):
    """The C++ check itself (every writer goes through it: batch, streaming, appends, C ABI)."""
    from smic_fast import _core

    E = clustered(rng, 100)
    dictionary = smic_fast.Dictionary.fit(E, n_atoms=16)
    with pytest.raises(ValueError, match="NUL byte") as err:
        _core.write_collection(str(tmp_path / "c.smic"), E, dictionary._core, ids=[f"x\0{i}" for i in range(100)])
    assert "\\x00" in str(err.value)  # the byte shown, not cut off
    assert not (tmp_path / "c.smic").exists()


# ---- repack keeps positional ids implied -------------------------------------------------------

def test_repack_keeps_positional_ids_compact(tmp_path, rng):
    n, added = 5000, 100
    E = clustered(rng, n + added, d=48)
    dictionary = smic_fast.Dictionary.fit(E[:2000], n_atoms=64)
    single, batch = tmp_path / "single.smic", tmp_path / "batch.smic"
    smic_fast.compress(E[:n], single, dictionary=dictionary, pixels=[224 * 224] * n)
    shutil.copy(single, batch)
    col = smic_fast.open(single, dictionary)
    for i in range(added):
        col.append(E[n + i:n + i + 1], pixels=[224 * 224])
    grown = os.path.getsize(single)
    col.repack()
    smic_fast.open(batch, dictionary).append(E[n:], pixels=[224 * 224] * added)
    repacked, batched = smic_fast.open(single, dictionary), smic_fast.open(batch, dictionary)
    assert repacked.ids == [str(i) for i in range(n + added)]
    np.testing.assert_array_equal(repacked[:], batched[:])
    assert os.path.getsize(single) < grown
    assert os.path.getsize(single) <= 1.05 * os.path.getsize(batch)
    ids_bytes = repacked.info()["section_bytes"]["ids"]
    assert ids_bytes <= batched.info()["section_bytes"]["ids"] + 16, (ids_bytes, batched.info()["section_bytes"])


def test_sharded_run_whose_manifest_is_a_folder(tmp_path):
    from smic_fast.store.manifest import open_sharded

    (tmp_path / "run.smic.d" / "manifest.json").mkdir(parents=True)
    for path in (tmp_path / "run.smic.d", tmp_path / "run.smic.d" / "manifest.json"):
        with pytest.raises(IsADirectoryError, match="manifest.json"):
            open_sharded(path)
        with pytest.raises(IsADirectoryError):
            smic_fast.open(path)
