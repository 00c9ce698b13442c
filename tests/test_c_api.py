"""The installed C/C++ package: libsmic_c (smic/smic.h) and smic::core through find_package.

One module-scoped build: cpp/ is configured, built (Release) and installed into a temporary
prefix; examples/c and examples/cpp are then built against that installed tree only, run, and
compared with what the Python package reads and writes. The C ABI's error rules are checked on
the installed libsmic_c.so through ctypes.
"""
from __future__ import annotations

import ctypes
import importlib.metadata
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import smic_fast
from test_cpp_example import _tool

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# smic.h's status codes: stable values, checked here so a renumbering fails a test.
STATUS = {"SMIC_OK": 0, "SMIC_ERR_INVALID_ARGUMENT": 1, "SMIC_ERR_FORMAT": 2,
          "SMIC_ERR_DICTIONARY_MISMATCH": 3, "SMIC_ERR_IO": 4, "SMIC_ERR_BUFFER_TOO_SMALL": 5,
          "SMIC_ERR_OUT_OF_MEMORY": 6, "SMIC_ERR_NOT_FOUND": 7, "SMIC_ERR_INTERNAL": 8}
OK, INVALID, FORMAT, MISMATCH, IO, TOO_SMALL = 0, 1, 2, 3, 4, 5
NOT_FOUND = 7


def _env() -> dict:
    return {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "2"}


def _cmake(*args: str) -> None:
    result = subprocess.run([_tool("cmake"), *args], capture_output=True, text=True, env=_env())
    assert result.returncode == 0, f"cmake {' '.join(args)}\n{result.stdout}\n{result.stderr}"


def _configure(source: Path, build: Path, *defines: str) -> None:
    _cmake("-S", str(source), "-B", str(build), "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={_tool('ninja')}",
           "-DCMAKE_BUILD_TYPE=Release", *defines)


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    """cpp/ built and installed (headers, libsmic_core.a, libsmic_c.so, CMake package)."""
    work = tmp_path_factory.mktemp("smic_install")
    build, prefix = work / "build", work / "prefix"
    _configure(ROOT / "cpp", build, f"-DCMAKE_INSTALL_PREFIX={prefix}", "-DSMIC_INSTALL_CPP=ON")
    _cmake("--build", str(build))
    _cmake("--install", str(build))
    return prefix


@pytest.fixture(scope="module")
def examples(prefix, tmp_path_factory) -> dict[str, Path]:
    """examples/c and examples/cpp built against the installed tree only (no source fallback)."""
    work = tmp_path_factory.mktemp("smic_examples")
    programs = {}
    for name, program in (("c", "decode_collection"), ("cpp", "encode_collection")):
        build = work / name
        # examples/cpp falls back to the source tree when no package is found: not here.
        strict = ["-DCMAKE_REQUIRE_FIND_PACKAGE_smic=ON"] if name == "cpp" else []
        _configure(ROOT / "examples" / name, build, f"-DCMAKE_PREFIX_PATH={prefix}", *strict)
        cache = (build / "CMakeCache.txt").read_text()
        found = re.search(r"^smic_DIR:PATH=(.*)$", cache, re.M)
        assert found and Path(found.group(1)).resolve().is_relative_to(prefix.resolve()), found
        assert "smic_core" not in {p.name for p in build.iterdir()}  # no add_subdirectory copy
        _cmake("--build", str(build), "--target", program)
        programs[program] = build / program
    return programs


@pytest.fixture(scope="module")
def lib(prefix) -> ctypes.CDLL:
    """The installed libsmic_c.so with the prototypes of smic.h."""
    (path,) = [p for p in prefix.glob("lib*/libsmic_c.so") if p.exists()]
    lib = ctypes.CDLL(str(path))
    P, S, I = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
    c_char_pp = ctypes.POINTER(ctypes.c_char_p)
    prototypes = {
        "smic_version": (ctypes.c_uint, []), "smic_version_string": (ctypes.c_char_p, []),
        "smic_error_name": (ctypes.c_char_p, [I]), "smic_last_error": (ctypes.c_char_p, []),
        "smic_dictionary_load": (I, [ctypes.c_char_p, ctypes.POINTER(P)]),
        "smic_dictionary_from_bytes": (I, [ctypes.c_char_p, S, ctypes.POINTER(P)]),
        "smic_dictionary_free": (None, [P]),
        "smic_dictionary_dim": (I, [P, ctypes.POINTER(S)]),
        "smic_dictionary_n_atoms": (I, [P, ctypes.POINTER(S)]),
        "smic_dictionary_hash": (I, [P, ctypes.c_char_p]),
        "smic_encode_bound": (I, [P, ctypes.POINTER(S)]),
        "smic_encoder_new": (I, [P, ctypes.POINTER(P)]), "smic_encoder_free": (None, [P]),
        "smic_encode": (I, [P, P, P, S, ctypes.POINTER(S)]),
        "smic_decode": (I, [P, ctypes.c_char_p, S, P]),
        "smic_encode_bound_refined": (I, [P, ctypes.c_double, ctypes.POINTER(S)]),
        "smic_encode_refined": (I, [P, P, ctypes.c_double, P, S, ctypes.POINTER(S)]),
        "smic_decode_refined": (I, [P, ctypes.c_char_p, S, ctypes.c_double, P]),
        "smic_collection_open": (I, [ctypes.c_char_p, P, ctypes.POINTER(P)]),
        "smic_collection_from_bytes": (I, [ctypes.c_char_p, S, P, ctypes.POINTER(P)]),
        "smic_collection_free": (None, [P]),
        "smic_collection_size": (I, [P, ctypes.POINTER(S)]),
        "smic_collection_dim": (I, [P, ctypes.POINTER(S)]),
        "smic_collection_id": (I, [P, S, c_char_pp]),
        "smic_collection_find": (I, [P, ctypes.c_char_p, ctypes.POINTER(S)]),
        "smic_collection_decode": (I, [P, S, S, P]),
        "smic_collection_dictionary": (I, [P, ctypes.POINTER(P)]),
        "smic_collection_write": (I, [ctypes.c_char_p, P, S, S, P, c_char_pp, I, S]),
        "smic_collection_append": (I, [ctypes.c_char_p, P, S, S, c_char_pp, I, S, P]),
    }
    for name, (restype, argtypes) in prototypes.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


def _embeddings(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Clustered float32 rows of various norms: a few concepts, as CLIP embeddings are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((6, dim))
    picks = rng.integers(0, len(centres), (n, 2))
    E = centres[picks[:, 0]] + 0.6 * centres[picks[:, 1]] + 0.2 * rng.standard_normal((n, dim))
    return (E * rng.uniform(0.5, 2.0, (n, 1))).astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """A dictionary saved as .smicd, and collections Python wrote (embedded and shared)."""
    work = tmp_path_factory.mktemp("smic_data")
    E = _embeddings(300)
    dictionary = smic_fast.Dictionary.fit(E, n_atoms=16, n_iter=3)
    dictionary.save(work / "shared.smicd")
    embedded, shared = work / "embedded.smic", work / "shared.smic"
    smic_fast.compress(E[:200], embedded, n_atoms=16, n_iter=3, chunk_size=32,
                       ids=[f"photo-{i}" for i in range(200)])
    smic_fast.open(embedded).append(E[200:250], ids=[f"late-{i}" for i in range(50)], chunk_size=7)
    smic_fast.compress(E[250:], shared, dictionary=dictionary, chunk_size=16)
    return {"E": E, "dictionary": dictionary, "smicd": work / "shared.smicd",
            "embedded": embedded, "shared": shared, "work": work}


def _check(lib, status: int, expected: int = OK) -> None:
    assert status == expected, (lib.smic_error_name(status), lib.smic_last_error())


def _load_dictionary(lib, path: Path) -> ctypes.c_void_p:
    handle = ctypes.c_void_p()
    _check(lib, lib.smic_dictionary_load(str(path).encode(), ctypes.byref(handle)))
    return handle


# ---- the installed package ----------------------------------------------------------------

def test_install_gives_headers_libraries_and_cmake_package(prefix):
    assert (prefix / "include" / "smic" / "smic.h").is_file()
    assert (prefix / "include" / "smic" / "collection.hpp").is_file()
    (libdir,) = {p.parent for p in prefix.glob("lib*/libsmic_c.so")}
    assert (libdir / "libsmic_core.a").is_file()
    package = libdir / "cmake" / "smic"
    for name in ("smicConfig.cmake", "smicConfigVersion.cmake", "smicTargets.cmake"):
        assert (package / name).is_file(), name
    config = (package / "smicConfig.cmake").read_text()
    assert "find_dependency(ZLIB)" in config and "find_dependency(OpenMP" in config
    targets = "".join(p.read_text() for p in package.glob("smicTargets*.cmake"))
    assert "smic::core" in targets and "smic::c" in targets
    assert str(ROOT) not in targets  # nothing points back into the source tree


def test_shared_library_exports_only_smic_symbols(prefix):
    (path,) = prefix.glob("lib*/libsmic_c.so")
    listing = subprocess.run([shutil.which("nm") or "nm", "-D", "--defined-only", str(path)],
                             capture_output=True, text=True, check=True).stdout
    names = [line.split()[-1] for line in listing.splitlines() if line.strip()]
    assert names and all(name.startswith("smic_") for name in names), \
        [n for n in names if not n.startswith("smic_")]
    header = (prefix / "include" / "smic" / "smic.h").read_text()
    declared = set(re.findall(r"SMIC_API [^;]*?\b(smic_\w+)\(", header))
    assert declared == set(names)  # every declared function is there, nothing else


def test_version_matches_the_python_package(lib, prefix):
    # The version is written once, in smic.h (tests/test_version.py checks every other place).
    project = importlib.metadata.version("smic-fast")
    assert lib.smic_version_string().decode() == project == smic_fast.__version__
    major, minor, patch = (int(x) for x in project.split("."))
    assert lib.smic_version() == major * 10000 + minor * 100 + patch
    version_file = next(prefix.glob("lib*/cmake/smic/smicConfigVersion.cmake")).read_text()
    assert f'set(PACKAGE_VERSION "{project}")' in version_file


# ---- the example programs, against the installed tree ---------------------------------------

def _run(program: Path, *args) -> str:
    result = subprocess.run([str(program), *map(str, args)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _parse_items(text: str) -> tuple[list[str], np.ndarray]:
    lines = text.splitlines()
    n, dim = (int(v) for v in re.fullmatch(r"items (\d+) dim (\d+)", lines[0]).groups())
    ids, rows = [], []
    for line in lines[1:]:
        item_id, values = line.split("\t")
        ids.append(item_id)
        rows.append(np.array(values.split(), dtype=np.float32))
    assert len(ids) == n
    return ids, np.array(rows, dtype=np.float32).reshape(n, dim)


@pytest.mark.parametrize("kind", ["embedded", "shared"])
def test_c_example_prints_what_python_decodes(examples, data, kind):
    args = [data[kind]] + ([data["smicd"]] if kind == "shared" else [])
    ids, values = _parse_items(_run(examples["decode_collection"], *args))
    col = smic_fast.open(data[kind], dictionary=data["dictionary"] if kind == "shared" else None)
    assert ids == col.ids
    expected = np.stack([col[i] for i in range(len(col))])
    np.testing.assert_array_equal(values, expected)  # bit-exact: 9 digits round-trip float32


def test_c_example_reports_a_missing_dictionary(examples, data):
    result = subprocess.run([str(examples["decode_collection"]), str(data["shared"])],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "SMIC_ERR_DICTIONARY_MISMATCH" in result.stderr


def test_cpp_example_encodes_what_python_decodes(examples, data, tmp_path):
    E, dictionary = data["E"][:60], data["dictionary"]
    raw, out = tmp_path / "embeddings.f32", tmp_path / "from_cpp.smic"
    E.astype("<f4").tofile(raw)
    lines = _run(examples["encode_collection"], data["smicd"], raw, E.shape[1], out).splitlines()
    assert [line.split("\t")[0] for line in lines] == [f"item-{i}" for i in range(len(E))]
    coded = [bytes.fromhex(line.split("\t")[1]) for line in lines]
    # One item coded in C++ gives the bytes Python's Dictionary.encode gives.
    assert coded == [dictionary.encode(x) for x in E]
    col = smic_fast.open(out)
    assert col.ids == [f"item-{i}" for i in range(len(E))]
    assert col.info()["model"] == "example"
    reference = tmp_path / "from_python.smic"
    smic_fast.compress(E, reference, dictionary=dictionary)
    python = smic_fast.open(reference, dictionary=dictionary)
    for i, x in enumerate(coded):
        np.testing.assert_array_equal(col[i], dictionary.decode(x))
        np.testing.assert_array_equal(col[i], python[i])


# ---- the C ABI through ctypes ------------------------------------------------------------------

def test_error_names_and_stable_codes(lib):
    for name, code in STATUS.items():
        assert lib.smic_error_name(code).decode() == name
    assert lib.smic_error_name(999).decode() == "SMIC_ERR_UNKNOWN"
    assert lib.smic_error_name(-1).decode() == "SMIC_ERR_UNKNOWN"
    header = (ROOT / "cpp" / "include" / "smic" / "smic.h").read_text()
    assert dict((k, int(v)) for k, v in re.findall(r"(SMIC_(?:OK|ERR_\w+)) = (\d+)", header)) == STATUS


def test_every_free_accepts_null(lib):
    lib.smic_dictionary_free(None)
    lib.smic_encoder_free(None)
    lib.smic_collection_free(None)


def test_encode_into_a_short_buffer_says_how_much_is_needed(lib, data):
    dictionary = _load_dictionary(lib, data["smicd"])
    encoder = ctypes.c_void_p()
    _check(lib, lib.smic_encoder_new(dictionary, ctypes.byref(encoder)))
    bound, written = ctypes.c_size_t(), ctypes.c_size_t()
    _check(lib, lib.smic_encode_bound(dictionary, ctypes.byref(bound)))
    try:
        for x in data["E"][:20]:
            x = np.ascontiguousarray(x)
            expected = data["dictionary"].encode(x)
            assert 0 < len(expected) <= bound.value
            out = (ctypes.c_uint8 * bound.value)()
            for capacity in (0, len(expected) - 1):
                sentinel = bytes(out)
                status = lib.smic_encode(encoder, x.ctypes.data, out, capacity, ctypes.byref(written))
                assert lib.smic_error_name(status) == b"SMIC_ERR_BUFFER_TOO_SMALL"
                assert written.value == len(expected)  # the size needed
                assert bytes(out) == sentinel  # untouched
                assert f"needs {len(expected)} bytes".encode() in lib.smic_last_error()
            _check(lib, lib.smic_encode(encoder, x.ctypes.data, out, len(expected), ctypes.byref(written)))
            assert bytes(out[:written.value]) == expected
            decoded = np.empty(x.shape, np.float32)
            _check(lib, lib.smic_decode(dictionary, expected, len(expected), decoded.ctypes.data))
            np.testing.assert_array_equal(decoded, data["dictionary"].decode(expected))
    finally:
        lib.smic_encoder_free(encoder)
        lib.smic_dictionary_free(dictionary)


def test_bad_input_gives_status_name_and_message(lib, data, tmp_path):
    handle = ctypes.c_void_p()
    missing = tmp_path / "missing.smicd"
    assert lib.smic_dictionary_load(str(missing).encode(), ctypes.byref(handle)) == IO
    assert str(missing).encode() in lib.smic_last_error()
    damaged = tmp_path / "damaged.smicd"
    damaged.write_bytes(data["smicd"].read_bytes()[:-9])
    assert lib.smic_dictionary_load(str(damaged).encode(), ctypes.byref(handle)) == FORMAT
    assert lib.smic_last_error()
    assert lib.smic_dictionary_from_bytes(b"not a dictionary", 16, ctypes.byref(handle)) == FORMAT
    assert lib.smic_dictionary_load(None, ctypes.byref(handle)) == INVALID
    assert b"path is NULL" in lib.smic_last_error()
    assert lib.smic_dictionary_load(str(data["smicd"]).encode(), None) == INVALID
    assert handle.value is None  # never written on failure
    # A collection coded with a shared dictionary, opened without it.
    assert lib.smic_collection_open(str(data["shared"]).encode(), None, ctypes.byref(handle)) == MISMATCH
    assert lib.smic_error_name(MISMATCH) == b"SMIC_ERR_DICTIONARY_MISMATCH"
    other = smic_fast.Dictionary.fit(_embeddings(100, seed=5), n_atoms=8, n_iter=2)
    other_handle = ctypes.c_void_p()
    _check(lib, lib.smic_dictionary_from_bytes(other.to_bytes(), len(other.to_bytes()),
                                               ctypes.byref(other_handle)))
    assert lib.smic_collection_open(str(data["shared"]).encode(), other_handle,
                                    ctypes.byref(handle)) == MISMATCH
    lib.smic_dictionary_free(other_handle)
    truncated = data["embedded"].read_bytes()[:100]
    assert lib.smic_collection_from_bytes(truncated, len(truncated), None, ctypes.byref(handle)) == FORMAT


def test_bad_item_input_is_refused(lib, data):
    dictionary = _load_dictionary(lib, data["smicd"])
    encoder = ctypes.c_void_p()
    _check(lib, lib.smic_encoder_new(dictionary, ctypes.byref(encoder)))
    out, written = (ctypes.c_uint8 * 256)(), ctypes.c_size_t()
    decoded = np.empty(32, np.float32)
    try:
        x = np.ones(32, np.float32)
        x[3] = np.nan
        assert lib.smic_encode(encoder, x.ctypes.data, out, 256, ctypes.byref(written)) == INVALID
        assert b"NaN" in lib.smic_last_error()
        assert lib.smic_encode(encoder, None, out, 256, ctypes.byref(written)) == INVALID
        assert lib.smic_encode(None, x.ctypes.data, out, 256, ctypes.byref(written)) == INVALID
        for garbage in (b"", b"\xff" * 5, bytes(100)):
            assert lib.smic_decode(dictionary, garbage, len(garbage), decoded.ctypes.data) == FORMAT
            assert lib.smic_last_error()
    finally:
        lib.smic_encoder_free(encoder)
        lib.smic_dictionary_free(dictionary)


def test_last_error_is_per_thread(lib, tmp_path):
    handle = ctypes.c_void_p()
    assert lib.smic_dictionary_load(str(tmp_path / "mine").encode(), ctypes.byref(handle)) == IO
    mine = lib.smic_last_error()
    other = []

    def fail_elsewhere():
        lib.smic_dictionary_load(str(tmp_path / "theirs").encode(), ctypes.byref(ctypes.c_void_p()))
        other.append(lib.smic_last_error())

    thread = threading.Thread(target=fail_elsewhere)
    thread.start()
    thread.join()
    assert b"theirs" in other[0] and b"mine" in mine
    assert lib.smic_last_error() == mine


def test_collection_reads_like_python(lib, data):
    handle = ctypes.c_void_p()
    _check(lib, lib.smic_collection_open(str(data["embedded"]).encode(), None, ctypes.byref(handle)))
    col = smic_fast.open(data["embedded"])
    try:
        n, dim = ctypes.c_size_t(), ctypes.c_size_t()
        _check(lib, lib.smic_collection_size(handle, ctypes.byref(n)))
        _check(lib, lib.smic_collection_dim(handle, ctypes.byref(dim)))
        assert (n.value, dim.value) == (len(col), col.dim)
        out = np.empty((n.value, dim.value), np.float32)
        _check(lib, lib.smic_collection_decode(handle, 0, n.value, out.ctypes.data))
        np.testing.assert_array_equal(out, np.stack([col[i] for i in range(len(col))]))
        index, text = ctypes.c_size_t(), ctypes.c_char_p()
        _check(lib, lib.smic_collection_find(handle, b"late-3", ctypes.byref(index)))
        assert index.value == col.ids.index("late-3")
        _check(lib, lib.smic_collection_id(handle, index.value, ctypes.byref(text)))
        assert text.value == b"late-3"
        assert lib.smic_collection_find(handle, b"nobody", ctypes.byref(index)) == NOT_FOUND
        assert b"nobody" in lib.smic_last_error()
        assert lib.smic_collection_id(handle, n.value, ctypes.byref(text)) == INVALID
        assert lib.smic_collection_decode(handle, 5, n.value + 1, out.ctypes.data) == INVALID
        assert lib.smic_collection_decode(handle, 6, 5, out.ctypes.data) == INVALID
        _check(lib, lib.smic_collection_decode(handle, 3, 3, None))  # empty range
    finally:
        lib.smic_collection_free(handle)


@pytest.mark.parametrize("name", ["remaining", "remaining_shared", "transform"])
def test_collection_reads_format_version_3(lib, name):
    # The golden files of the remaining-atoms index model (version 3) and of the transform-coded
    # refinement layer (version 4, with a version-2 dictionary), item by item and as a whole.
    golden = ROOT / "tests" / "golden"
    expected = np.load(golden / f"{name}.expected.npz")["embeddings"]
    shared = {"remaining_shared": "shared.smicd", "transform": "transform.smicd"}.get(name)
    dictionary = _load_dictionary(lib, golden / shared) if shared else None
    handle = ctypes.c_void_p()
    try:
        _check(lib, lib.smic_collection_open(str(golden / f"{name}.smic").encode(), dictionary,
                                             ctypes.byref(handle)))
        n = ctypes.c_size_t()
        _check(lib, lib.smic_collection_size(handle, ctypes.byref(n)))
        assert n.value == len(expected)
        one = np.empty((1, expected.shape[1]), np.float32)
        for i in reversed(range(n.value)):
            _check(lib, lib.smic_collection_decode(handle, i, i + 1, one.ctypes.data))
            np.testing.assert_allclose(one[0], expected[i], atol=1e-6)
        out = np.empty_like(expected)
        _check(lib, lib.smic_collection_decode(handle, 0, n.value, out.ctypes.data))
        np.testing.assert_allclose(out, expected, atol=1e-6)
    finally:
        lib.smic_collection_free(handle)
        if dictionary is not None:
            lib.smic_dictionary_free(dictionary)


def test_write_is_byte_identical_to_python_and_append_replaces(lib, data, tmp_path):
    E, dictionary = data["E"][:40], data["dictionary"]
    handle = _load_dictionary(lib, data["smicd"])
    digest = ctypes.create_string_buffer(65)
    _check(lib, lib.smic_dictionary_hash(handle, digest))
    assert digest.value.decode() == dictionary.hash
    ids = (ctypes.c_char_p * len(E))(*[f"a{i}".encode() for i in range(len(E))])
    ours, theirs = tmp_path / "c.smic", tmp_path / "python.smic"
    try:
        _check(lib, lib.smic_collection_write(str(ours).encode(), E.ctypes.data, len(E), E.shape[1],
                                              handle, ids, 0, 16))
        smic_fast.compress(E, theirs, dictionary=dictionary, ids=[f"a{i}" for i in range(len(E))],
                           chunk_size=16)
        assert ours.read_bytes() == theirs.read_bytes()

        new = np.ascontiguousarray(data["E"][40:45])
        new_ids = (ctypes.c_char_p * 5)(b"a1", b"b1", b"b2", b"b3", b"b4")
        before = ours.read_bytes()
        status = lib.smic_collection_append(str(ours).encode(), new.ctypes.data, 5, new.shape[1],
                                            new_ids, 0, 0, handle)
        assert status == INVALID and b"a1" in lib.smic_last_error()
        assert ours.read_bytes() == before  # a failed append leaves the file as it was
        _check(lib, lib.smic_collection_append(str(ours).encode(), new.ctypes.data, 5, new.shape[1],
                                               new_ids, 1, 0, handle))
        smic_fast.open(theirs, dictionary=dictionary).append(
            new, ids=["a1", "b1", "b2", "b3", "b4"], replace=True)
        col = smic_fast.open(ours, dictionary=dictionary)
        assert col.ids == smic_fast.open(theirs, dictionary=dictionary).ids
        assert ours.read_bytes() == theirs.read_bytes()
        np.testing.assert_array_equal(col["a1"], dictionary.decode(dictionary.encode(new[0])))
        # Without the shared dictionary the append cannot code anything.
        assert lib.smic_collection_append(str(ours).encode(), new.ctypes.data, 1, new.shape[1],
                                          None, 0, 0, None) == MISMATCH
    finally:
        lib.smic_dictionary_free(handle)


def test_refined_single_items_match_python(lib, data):
    # The transform-coded layer on single items: the bytes and embeddings of Python's
    # Dictionary.encode / decode at a residual step; a dictionary without a transform refuses.
    golden = ROOT / "tests" / "golden"
    python = smic_fast.Dictionary.load(golden / "transform.smicd")
    inputs = np.load(golden / "transform.expected.npz")["embeddings"][:20]
    dictionary = _load_dictionary(lib, golden / "transform.smicd")
    encoder = ctypes.c_void_p()
    try:
        _check(lib, lib.smic_encoder_new(dictionary, ctypes.byref(encoder)))
        bound, written = ctypes.c_size_t(), ctypes.c_size_t()
        _check(lib, lib.smic_encode_bound_refined(dictionary, 0.02, ctypes.byref(bound)))
        out = (ctypes.c_uint8 * bound.value)()
        decoded = np.empty(python.dim, np.float32)
        for x in inputs:
            x = np.ascontiguousarray(x, dtype=np.float32)
            _check(lib, lib.smic_encode_refined(encoder, x.ctypes.data, 0.02, out, bound.value,
                                                ctypes.byref(written)))
            expected = python.encode(x, residual_step=0.02)
            assert bytes(out[:written.value]) == expected
            _check(lib, lib.smic_decode_refined(dictionary, expected, len(expected), 0.02, decoded.ctypes.data))
            np.testing.assert_array_equal(decoded, python.decode(expected, residual_step=0.02))
        plain = _load_dictionary(lib, data["smicd"])
        try:
            assert lib.smic_encode_bound_refined(plain, 0.02, ctypes.byref(bound)) == INVALID
            assert b"transform" in lib.smic_last_error()
        finally:
            lib.smic_dictionary_free(plain)
    finally:
        lib.smic_encoder_free(encoder)
        lib.smic_dictionary_free(dictionary)


def test_one_dictionary_serves_many_threads(lib, data):
    """A loaded dictionary is shared read-only; each thread has its own encoder context."""
    handle = _load_dictionary(lib, data["smicd"])
    E = data["E"]
    expected = [data["dictionary"].encode(x) for x in E]
    bound = ctypes.c_size_t()
    _check(lib, lib.smic_encode_bound(handle, ctypes.byref(bound)))
    results: dict[int, list[bytes]] = {}

    def work(worker: int) -> None:
        encoder = ctypes.c_void_p()
        assert lib.smic_encoder_new(handle, ctypes.byref(encoder)) == OK
        out, written, coded = (ctypes.c_uint8 * bound.value)(), ctypes.c_size_t(), []
        for x in E:
            assert lib.smic_encode(encoder, x.ctypes.data, out, bound.value, ctypes.byref(written)) == OK
            coded.append(bytes(out[:written.value]))
        lib.smic_encoder_free(encoder)
        results[worker] = coded

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lib.smic_dictionary_free(handle)
    assert len(results) == 4 and all(coded == expected for coded in results.values())


def test_encoder_keeps_its_dictionary_alive(lib, data):
    handle = _load_dictionary(lib, data["smicd"])
    encoder = ctypes.c_void_p()
    _check(lib, lib.smic_encoder_new(handle, ctypes.byref(encoder)))
    lib.smic_dictionary_free(handle)  # documented as allowed before the encoder goes
    x = np.ascontiguousarray(data["E"][0])
    out, written = (ctypes.c_uint8 * 256)(), ctypes.c_size_t()
    _check(lib, lib.smic_encode(encoder, x.ctypes.data, out, 256, ctypes.byref(written)))
    assert bytes(out[:written.value]) == data["dictionary"].encode(x)
    lib.smic_encoder_free(encoder)
