"""The installed C/C++ package: libsmic_c (smic/smic.h) and smic::core through find_package.

One module-scoped build: cpp/ is configured, built (Release) and installed into a temporary
prefix; examples/c and examples/cpp are then built against that installed tree only, run, and
compared with what the Python package reads and writes. The C ABI's error rules are checked on
the installed libsmic_c.so through ctypes.
"""
from __future__ import annotations

import ctypes
import errno
import importlib.metadata
import json
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
# examples/c: a decoder and one program per `smic` command (docs/cpp.md shows each).
C_PROGRAMS = ("decode_collection", "compress", "append", "repack", "info", "search")


# smic_read_rows: int (*)(void* user, size_t start, size_t count, float* out)
READ_ROWS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,
                             ctypes.c_void_p)


class WriteOptions(ctypes.Structure):
    """smic_write_options of smic.h."""
    _fields_ = [("struct_size", ctypes.c_size_t), ("chunk_size", ctypes.c_size_t),
                ("embed_dictionary", ctypes.c_int), ("residual_step", ctypes.c_double),
                ("model", ctypes.c_char_p), ("index_model", ctypes.c_int), ("n_threads", ctypes.c_int),
                ("batch_items", ctypes.c_size_t)]


class FitOptions(ctypes.Structure):
    """smic_fit_options of smic.h."""
    _fields_ = [("struct_size", ctypes.c_size_t), ("quality", ctypes.c_char_p), ("n_atoms", ctypes.c_size_t),
                ("n_nonzero", ctypes.c_size_t), ("step", ctypes.c_double), ("rd_lambda", ctypes.c_double),
                ("learn", ctypes.c_char_p), ("layout", ctypes.c_char_p), ("paper_bits", ctypes.c_uint),
                ("precision", ctypes.c_char_p), ("n_iter", ctypes.c_size_t), ("seed", ctypes.c_uint64),
                ("sample_size", ctypes.c_size_t), ("n_threads", ctypes.c_int)]


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
    for name, targets in (("c", C_PROGRAMS), ("cpp", ("encode_collection",))):
        build = work / name
        # examples/cpp falls back to the source tree when no package is found: not here.
        strict = ["-DCMAKE_REQUIRE_FIND_PACKAGE_smic=ON"] if name == "cpp" else []
        _configure(ROOT / "examples" / name, build, f"-DCMAKE_PREFIX_PATH={prefix}", *strict)
        cache = (build / "CMakeCache.txt").read_text()
        found = re.search(r"^smic_DIR:PATH=(.*)$", cache, re.M)
        assert found and Path(found.group(1)).resolve().is_relative_to(prefix.resolve()), found
        assert "smic_core" not in {p.name for p in build.iterdir()}  # no add_subdirectory copy
        for program in targets:
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
        "smic_dictionary_save": (I, [P, ctypes.c_char_p]),
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
        # issue 31: the rest of the core
        "smic_version_number": (ctypes.c_uint, []), "smic_last_errno": (I, []),
        "smic_dictionary_to_bytes": (I, [P, P, S, ctypes.POINTER(S)]),
        "smic_fit_options_default": (I, [P]),
        "smic_dictionary_fit": (I, [P, S, S, P, ctypes.POINTER(P)]),
        "smic_dictionary_fit_rows": (I, [READ_ROWS, P, S, S, P, ctypes.POINTER(P)]),
        "smic_decode_into": (I, [P, ctypes.c_char_p, S, ctypes.c_double, P, S]),
        "smic_encode_batch": (I, [P, P, S, ctypes.c_double, I, P, S, P, ctypes.POINTER(S)]),
        "smic_file_dictionary_hash": (I, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(I)]),
        "smic_bytes_dictionary_hash": (I, [ctypes.c_char_p, S, ctypes.c_char_p, ctypes.POINTER(I)]),
        "smic_collection_info": (I, [P, P, S, ctypes.POINTER(S)]),
        "smic_collection_format_version": (I, [P, ctypes.POINTER(ctypes.c_uint)]),
        "smic_collection_open_mapped": (I, [ctypes.c_char_p, P, ctypes.POINTER(P)]),
        "smic_collection_decode_into": (I, [P, S, S, P, S, I]),
        "smic_write_options_default": (I, [P]),
        "smic_collection_write_ex": (I, [ctypes.c_char_p, P, S, S, P, c_char_pp, P, P]),
        "smic_collection_write_to_bytes": (I, [P, S, S, P, c_char_pp, P, P, P, S, ctypes.POINTER(S)]),
        "smic_collection_write_rows": (I, [ctypes.c_char_p, READ_ROWS, P, S, S, P, c_char_pp, P, P]),
        "smic_writer_open": (I, [ctypes.c_char_p, S, S, P, c_char_pp, P, P, ctypes.POINTER(P)]),
        "smic_writer_add": (I, [P, P, S]), "smic_writer_rows": (I, [P, ctypes.POINTER(S)]),
        "smic_writer_finish": (I, [P]), "smic_writer_abort": (I, [P]),
        "smic_writer_free": (None, [P]),
        "smic_collection_append_in_place": (I, [P, P, S, S, c_char_pp, P, S, I]),
        "smic_collection_repack": (I, [ctypes.c_char_p, P, I]),
        "smic_search_index_new": (I, [P, I, ctypes.POINTER(P)]),
        "smic_search_index_free": (None, [P]),
        "smic_search_index_size": (I, [P, ctypes.POINTER(S), ctypes.POINTER(S)]),
        "smic_search": (I, [P, P, S, S, S, S, S, I, P, P, S]),
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
    lib.smic_writer_free(None)
    lib.smic_search_index_free(None)


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


# ---- issue 31: what `smic compress/append/repack/info/search` do, through the C ABI alone -----------

def _rows_file(path: Path, E: np.ndarray) -> Path:
    np.ascontiguousarray(E, dtype="<f4").tofile(path)
    return path


def _fails(program: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(program), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_c_programs_do_what_the_cli_does(examples, data, tmp_path):
    E, dictionary, smicd = data["E"], data["dictionary"], data["smicd"]
    rows, more, queries = (_rows_file(tmp_path / name, part) for name, part in
                           (("rows.f32", E[:250]), ("more.f32", E[250:]), ("queries.f32", E[:4])))
    # compress with a shared dictionary: Python's bytes; with none: Dictionary.fit's dictionary.
    ours, theirs = tmp_path / "c.smic", tmp_path / "python.smic"
    info = json.loads(_run(examples["compress"], rows, E.shape[1], ours, smicd))
    smic_fast.compress(E[:250], theirs, dictionary=dictionary)
    assert ours.read_bytes() == theirs.read_bytes()
    python_info = smic_fast.open(theirs, dictionary=dictionary).info()
    assert {k: info[k] for k in python_info if k != "path"} == {k: v for k, v in python_info.items() if k != "path"}
    learned = tmp_path / "learned.smic"
    info = json.loads(_run(examples["compress"], rows, E.shape[1], learned))
    assert info["dictionary_hash"] == smic_fast.Dictionary.fit(E[:250]).hash
    assert not info["shared_dictionary"] and info["items"] == 250
    # append (in place) and repack: Python's bytes after each.
    assert _run(examples["append"], ours, more, smicd).strip() == f"items {len(E)}"
    smic_fast.open(theirs, dictionary=dictionary).append(E[250:])
    assert ours.read_bytes() == theirs.read_bytes()
    before = ours.stat().st_size
    assert _run(examples["repack"], ours, smicd).split() == ["bytes", str(before), str(ours.stat().st_size)]
    smic_fast.open(theirs, dictionary=dictionary).repack()
    assert ours.read_bytes() == theirs.read_bytes()
    # info: the dictionary a file needs, before opening it; then the metadata.
    missing = _fails(examples["info"], ours)
    assert missing.returncode == 3 and missing.stdout.split() == ["dictionary", dictionary.hash, "shared"]
    lines = _run(examples["info"], ours, smicd).splitlines()
    assert lines[0].split() == ["dictionary", dictionary.hash, "shared"]
    python_info = smic_fast.open(ours, dictionary=dictionary).info()
    assert {k: json.loads(lines[1])[k] for k in python_info if k != "path"} == \
        {k: v for k, v in python_info.items() if k != "path"}
    # search: Python's ids and scores.
    found = [line.split("\t") for line in _run(examples["search"], ours, queries, 5, smicd).splitlines()]
    result = smic_fast.open(ours, dictionary=dictionary).search(E[:4], k=5)
    assert [[row[2] for row in found if row[0] == str(q)] for q in range(4)] == [list(r) for r in result.ids]
    np.testing.assert_array_equal(np.array([float(row[3]) for row in found], np.float32).reshape(4, 5),
                                  result.scores)
    # Bad input: a status name and a message on stderr, exit status 1, nothing written.
    bad = _rows_file(tmp_path / "nan.f32", np.full((3, E.shape[1]), np.nan, np.float32))
    failed = _fails(examples["compress"], bad, E.shape[1], tmp_path / "never.smic", smicd)
    assert failed.returncode == 1 and "SMIC_ERR_INVALID_ARGUMENT" in failed.stderr
    assert "(E)" not in failed.stderr and not (tmp_path / "never.smic").exists()
    assert list(tmp_path.glob("never.smic*")) == []
    folder = _fails(examples["info"], tmp_path)
    assert folder.returncode == 1 and "SMIC_ERR_IO" in folder.stderr


def test_docs_show_the_c_programs_verbatim():
    """docs/cpp.md quotes each examples/c program whole: what it shows is what the test runs."""
    docs = (ROOT / "docs" / "cpp.md").read_text()
    blocks = re.findall(r"```c\n(.*?)```", docs, re.S)
    for program in C_PROGRAMS[1:]:
        source = (ROOT / "examples" / "c" / f"{program}.c").read_text()
        assert source in blocks, f"docs/cpp.md does not quote examples/c/{program}.c as it is"


def test_version_number_and_errno(lib, tmp_path):
    major, minor, patch = (int(x) for x in smic_fast.__version__.split("."))
    assert lib.smic_version_number() == lib.smic_version() == major * 10000 + minor * 100 + patch
    handle, hex_, embedded = ctypes.c_void_p(), ctypes.create_string_buffer(65), ctypes.c_int()
    assert lib.smic_collection_open_mapped(str(tmp_path / "missing").encode(), None, ctypes.byref(handle)) == IO
    assert lib.smic_last_errno() == errno.ENOENT
    assert lib.smic_file_dictionary_hash(str(tmp_path).encode(), hex_, ctypes.byref(embedded)) == IO
    assert lib.smic_last_errno() == errno.EISDIR and str(tmp_path).encode() in lib.smic_last_error()
    assert lib.smic_collection_open_mapped(str(tmp_path).encode(), None, ctypes.byref(handle)) == IO
    assert lib.smic_last_errno() == errno.EISDIR
    assert lib.smic_collection_open_mapped(None, None, ctypes.byref(handle)) == INVALID
    assert lib.smic_last_errno() == 0  # not an IO error
    assert handle.value is None


def test_dictionary_to_bytes_reports_the_size_needed(lib, data):
    handle = _load_dictionary(lib, data["smicd"])
    expected = data["dictionary"].to_bytes()
    written = ctypes.c_size_t()
    try:
        assert lib.smic_dictionary_to_bytes(handle, None, 0, ctypes.byref(written)) == TOO_SMALL
        assert written.value == len(expected)
        out = ctypes.create_string_buffer(b"\x07" * len(expected), len(expected))
        assert lib.smic_dictionary_to_bytes(handle, out, len(expected) - 1, ctypes.byref(written)) == TOO_SMALL
        assert out.raw == b"\x07" * len(expected) and str(len(expected)).encode() in lib.smic_last_error()
        _check(lib, lib.smic_dictionary_to_bytes(handle, out, len(expected), ctypes.byref(written)))
        assert out.raw[:written.value] == expected
        assert lib.smic_dictionary_to_bytes(None, out, len(expected), ctypes.byref(written)) == INVALID
        assert lib.smic_dictionary_to_bytes(handle, None, 5, ctypes.byref(written)) == INVALID
        assert lib.smic_dictionary_to_bytes(handle, out, len(expected), None) == INVALID
    finally:
        lib.smic_dictionary_free(handle)


def test_file_says_which_dictionary_it_needs(lib, data, tmp_path):
    hex_, embedded = ctypes.create_string_buffer(65), ctypes.c_int(-1)
    _check(lib, lib.smic_file_dictionary_hash(str(data["shared"]).encode(), hex_, ctypes.byref(embedded)))
    assert (hex_.value.decode(), embedded.value) == (data["dictionary"].hash, 0)
    _check(lib, lib.smic_file_dictionary_hash(str(data["embedded"]).encode(), hex_, ctypes.byref(embedded)))
    assert (hex_.value.decode(), embedded.value) == (smic_fast.open(data["embedded"]).dictionary.hash, 1)
    raw = data["embedded"].read_bytes()
    _check(lib, lib.smic_bytes_dictionary_hash(raw, len(raw), hex_, ctypes.byref(embedded)))
    assert embedded.value == 1
    # Damaged bytes, a dictionary file, an empty file: SMIC_ERR_FORMAT and a message.
    for damaged in (raw[:-1], raw[:40], raw[:16], b"", raw[:60] + bytes([raw[60] ^ 1]) + raw[61:],
                    data["smicd"].read_bytes()):
        path = tmp_path / "damaged.smic"
        path.write_bytes(damaged)
        assert lib.smic_file_dictionary_hash(str(path).encode(), hex_, ctypes.byref(embedded)) == FORMAT
        assert lib.smic_last_error()
        assert lib.smic_bytes_dictionary_hash(damaged, len(damaged), hex_, ctypes.byref(embedded)) == FORMAT
    assert lib.smic_bytes_dictionary_hash(None, 0, hex_, ctypes.byref(embedded)) == FORMAT
    assert lib.smic_bytes_dictionary_hash(None, 5, hex_, ctypes.byref(embedded)) == INVALID
    assert lib.smic_file_dictionary_hash(str(data["shared"]).encode(), None, ctypes.byref(embedded)) == INVALID
    assert lib.smic_file_dictionary_hash(str(data["shared"]).encode(), hex_, None) == INVALID


def _info(lib, handle) -> dict:
    size = ctypes.c_size_t()
    assert lib.smic_collection_info(handle, None, 0, ctypes.byref(size)) == TOO_SMALL
    out = ctypes.create_string_buffer(size.value)
    _check(lib, lib.smic_collection_info(handle, out, size.value, ctypes.byref(size)))
    assert size.value == len(out.value) + 1  # with its NUL
    return json.loads(out.value)


@pytest.mark.parametrize("kind", ["embedded", "shared", "pixels", "refined"])
def test_info_is_python_info(lib, data, tmp_path, kind):
    path, dictionary = data["embedded"], None
    if kind == "shared":
        path, dictionary = data["shared"], data["dictionary"]
    elif kind in ("pixels", "refined"):
        path = tmp_path / f"{kind}.smic"
        extra = {"pixels": [1000 + i for i in range(80)]} if kind == "pixels" else {"residual_step": 0.05}
        smic_fast.compress(data["E"][:80], path, n_atoms=16, n_iter=2, model="ViT-B-32", **extra)
    shared = _load_dictionary(lib, data["smicd"]) if dictionary is not None else None
    handle = ctypes.c_void_p()
    try:
        _check(lib, lib.smic_collection_open(str(path).encode(), shared, ctypes.byref(handle)))
        ours = _info(lib, handle)
        col = smic_fast.open(path, dictionary=dictionary)
        python = col.info()
        assert {k: ours[k] for k in python if k != "path"} == {k: v for k, v in python.items() if k != "path"}
        assert ours["name"] == str(path) and ours["batches"] == col._batch_sizes()
        assert ours["chunk_size"] == col._core.chunk_size and ours["writer"] == col.header["writer"]
        assert ("bits_per_pixel" in ours) == (kind == "pixels")
        version = ctypes.c_uint()
        _check(lib, lib.smic_collection_format_version(handle, ctypes.byref(version)))
        assert version.value == python["format_version"]
        short = ctypes.create_string_buffer(b"\x01" * 8, 8)
        size = ctypes.c_size_t()
        assert lib.smic_collection_info(handle, short, 8, ctypes.byref(size)) == TOO_SMALL
        assert short.raw == b"\x01" * 8 and size.value > 8
        assert lib.smic_collection_info(None, short, 8, ctypes.byref(size)) == INVALID
        assert lib.smic_collection_info(handle, short, 8, None) == INVALID
        assert lib.smic_collection_format_version(handle, None) == INVALID
    finally:
        lib.smic_collection_free(handle)
        lib.smic_dictionary_free(shared)


def _write_options(lib, **fields) -> WriteOptions:
    options = WriteOptions()
    _check(lib, lib.smic_write_options_default(ctypes.byref(options)))
    assert options.struct_size == ctypes.sizeof(WriteOptions) and options.embed_dictionary == 1
    for name, value in fields.items():
        setattr(options, name, value)
    return options


def _id_array(ids):
    return None if ids is None else (ctypes.c_char_p * len(ids))(*[i.encode() for i in ids])


@pytest.mark.parametrize("refined", [False, True])
def test_writes_from_memory_and_rows_are_python_compress(lib, data, tmp_path, refined):
    E, dictionary = data["E"][:70], data["dictionary"]
    ids = [f"img-{i}" for i in range(len(E))]
    pixels = (ctypes.c_int64 * len(E))(*[4096 + i for i in range(len(E))])
    step = 0.05 if refined else None
    theirs = tmp_path / "python.smic"
    smic_fast.compress(E, theirs, dictionary=dictionary, ids=ids, pixels=list(pixels), model="m",
                       chunk_size=16, residual_step=step, index_model="remaining")
    expected = theirs.read_bytes()
    options = _write_options(lib, chunk_size=16, embed_dictionary=0, model=b"m",
                             residual_step=step or 0.0, index_model=2, n_threads=1, batch_items=20)
    handle = _load_dictionary(lib, data["smicd"])
    try:
        ours = tmp_path / "ex.smic"
        _check(lib, lib.smic_collection_write_ex(str(ours).encode(), E.ctypes.data, len(E), E.shape[1], handle,
                                                 _id_array(ids), pixels, ctypes.byref(options)))
        assert ours.read_bytes() == expected
        written = ctypes.c_size_t()
        assert lib.smic_collection_write_to_bytes(E.ctypes.data, len(E), E.shape[1], handle, _id_array(ids),
                                                  pixels, ctypes.byref(options), None, 0,
                                                  ctypes.byref(written)) == TOO_SMALL
        assert written.value == len(expected)
        out = ctypes.create_string_buffer(len(expected))
        _check(lib, lib.smic_collection_write_to_bytes(E.ctypes.data, len(E), E.shape[1], handle, _id_array(ids),
                                                       pixels, ctypes.byref(options), out, len(out),
                                                       ctypes.byref(written)))
        assert out.raw == expected
        # Pulled through a smic_read_rows: each row read once (twice with a refinement layer).
        reads = []

        @READ_ROWS
        def read(user, start, count, target):
            reads.append((start, count))
            ctypes.memmove(target, E[start:start + count].ctypes.data, count * E.shape[1] * 4)
            return 0

        pulled = tmp_path / "rows.smic"
        _check(lib, lib.smic_collection_write_rows(str(pulled).encode(), read, None, len(E), E.shape[1], handle,
                                                   _id_array(ids), pixels, ctypes.byref(options)))
        assert pulled.read_bytes() == expected
        assert sum(c for _, c in reads) == len(E) * (2 if refined else 1) and max(c for _, c in reads) <= 32

        @READ_ROWS
        def broken(user, start, count, target):
            return 4 if start else 0  # SMIC_ERR_IO at the second batch

        failed = tmp_path / "failed.smic"
        assert lib.smic_collection_write_rows(str(failed).encode(), broken, None, len(E), E.shape[1], handle,
                                              None, None, ctypes.byref(options)) == IO
        assert b"row reader returned 4" in lib.smic_last_error()
        assert list(tmp_path.glob("failed*")) == []
    finally:
        lib.smic_dictionary_free(handle)


def test_write_options_and_rows_are_checked(lib, data, tmp_path):
    E = np.ascontiguousarray(data["E"][:20])
    handle = _load_dictionary(lib, data["smicd"])
    path = str(tmp_path / "x.smic").encode()
    try:
        for fields, words in (({"struct_size": 8}, b"struct_size"), ({"index_model": 7}, b"index_model"),
                              ({"residual_step": 2.0}, b"residual_step"),
                              ({"residual_step": float("nan")}, b"residual_step"),
                              ({"chunk_size": 1 << 17}, b"chunk_size"), ({"n_threads": -1}, b"n_threads")):
            options = _write_options(lib, **fields)
            assert lib.smic_collection_write_ex(path, E.ctypes.data, len(E), E.shape[1], handle, None, None,
                                                ctypes.byref(options)) == INVALID
            assert words in lib.smic_last_error()
        bad = E.copy()
        bad[7, 3] = np.inf
        assert lib.smic_collection_write_ex(path, bad.ctypes.data, len(E), E.shape[1], handle, None, None,
                                            None) == INVALID
        message = lib.smic_last_error()
        assert b"NaN or infinity" in message and b"row 7" in message and b"(E)" not in message
        assert lib.smic_collection_write_ex(path, E.ctypes.data, 0, E.shape[1], handle, None, None, None) == INVALID
        assert b"(E)" not in lib.smic_last_error() and b"(N = 0)" not in lib.smic_last_error()
        assert lib.smic_collection_write_ex(path, E.ctypes.data, len(E), E.shape[1] + 1, handle, None, None,
                                            None) == INVALID
        assert lib.smic_collection_write_ex(None, E.ctypes.data, len(E), E.shape[1], handle, None, None,
                                            None) == INVALID
        assert lib.smic_collection_write_ex(path, None, len(E), E.shape[1], handle, None, None, None) == INVALID
        assert lib.smic_collection_write_ex(path, E.ctypes.data, len(E), E.shape[1], None, None, None, None) == INVALID
        assert lib.smic_collection_write_rows(path, READ_ROWS(), None, len(E), E.shape[1], handle, None, None,
                                              None) == INVALID
        assert lib.smic_write_options_default(None) == INVALID
        assert not (tmp_path / "x.smic").exists()
    finally:
        lib.smic_dictionary_free(handle)


def _writer(lib, path: Path, n: int, handle, **fields) -> ctypes.c_void_p:
    writer = ctypes.c_void_p()
    options = _write_options(lib, embed_dictionary=0, **fields)
    _check(lib, lib.smic_writer_open(str(path).encode(), n, 32, handle, None, None, ctypes.byref(options),
                                     ctypes.byref(writer)))
    return writer


def test_streaming_writer_gives_python_bytes_and_leaves_nothing_on_failure(lib, data, tmp_path):
    E, dictionary = np.ascontiguousarray(data["E"]), data["dictionary"]
    theirs = tmp_path / "python.smic"
    smic_fast.compress(E, theirs, dictionary=dictionary, chunk_size=8)
    handle = _load_dictionary(lib, data["smicd"])
    try:
        ours = tmp_path / "pushed.smic"
        writer = _writer(lib, ours, len(E), handle, chunk_size=8, batch_items=40)
        try:
            rows = ctypes.c_size_t()
            for start, stop in ((0, 7), (7, 7), (7, 150), (150, 151), (151, len(E) - 1)):
                _check(lib, lib.smic_writer_add(writer, E[start:stop].ctypes.data, stop - start))
            _check(lib, lib.smic_writer_rows(writer, ctypes.byref(rows)))
            assert rows.value == len(E) - 1
            assert lib.smic_writer_finish(writer) == INVALID and b"were added" in lib.smic_last_error()
            assert lib.smic_writer_add(writer, E[-2:].ctypes.data, 2) == INVALID  # more than n
            assert not ours.exists()
            _check(lib, lib.smic_writer_add(writer, E[-1:].ctypes.data, 1))
            _check(lib, lib.smic_writer_finish(writer))
            assert lib.smic_writer_add(writer, E.ctypes.data, 1) == INVALID  # spent
            assert lib.smic_writer_finish(writer) == INVALID
        finally:
            lib.smic_writer_free(writer)
        assert ours.read_bytes() == theirs.read_bytes()

        # Abort, free before finish, a NaN row: the target untouched (an older file stays).
        target = tmp_path / "kept.smic"
        target.write_bytes(b"old")
        writer = _writer(lib, target, len(E), handle)
        _check(lib, lib.smic_writer_add(writer, E[:100].ctypes.data, 100))
        _check(lib, lib.smic_writer_abort(writer))
        assert lib.smic_writer_add(writer, E[:1].ctypes.data, 1) == INVALID
        lib.smic_writer_free(writer)
        writer = _writer(lib, target, len(E), handle)
        _check(lib, lib.smic_writer_add(writer, E[:5000 % len(E)].ctypes.data, 5000 % len(E)))
        lib.smic_writer_free(writer)
        bad = E.copy()
        bad[123, 0] = np.nan
        writer = _writer(lib, target, len(E), handle, batch_items=16)
        try:
            status = OK
            for start in range(0, len(E), 50):
                status = lib.smic_writer_add(writer, bad[start:start + 50].ctypes.data, min(50, len(E) - start))
                if status != OK:
                    break
            if status == OK:
                status = lib.smic_writer_finish(writer)
            assert status == INVALID and b"row 123" in lib.smic_last_error()
            assert lib.smic_writer_finish(writer) == INVALID
        finally:
            lib.smic_writer_free(writer)
        assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.glob("kept*")) == ["kept.smic"]

        out = ctypes.c_void_p()
        options = _write_options(lib, residual_step=0.05)
        for args in ((None, 10, 32, handle), (str(target).encode(), 0, 32, handle),
                     (str(target).encode(), 10, 31, handle), (str(target).encode(), 10, 32, None)):
            assert lib.smic_writer_open(*args, None, None, None, ctypes.byref(out)) == INVALID
        assert lib.smic_writer_open(str(target).encode(), 10, 32, handle, None, None, ctypes.byref(options),
                                    ctypes.byref(out)) == INVALID
        assert b"smic_collection_write_rows" in lib.smic_last_error()
        assert lib.smic_writer_open(str(target).encode(), 10, 32, handle, None, None, None, None) == INVALID
        assert out.value is None
        assert lib.smic_writer_add(None, E.ctypes.data, 1) == INVALID
        assert lib.smic_writer_finish(None) == INVALID and lib.smic_writer_abort(None) == INVALID
    finally:
        lib.smic_dictionary_free(handle)


def test_append_in_place_and_repack_are_pythons(lib, data, tmp_path):
    E, dictionary = np.ascontiguousarray(data["E"]), data["dictionary"]
    ours, theirs = tmp_path / "c.smic", tmp_path / "python.smic"
    for path in (ours, theirs):
        smic_fast.compress(E[:100], path, dictionary=dictionary, chunk_size=16)
    shared = _load_dictionary(lib, data["smicd"])
    handle, stale = ctypes.c_void_p(), ctypes.c_void_p()
    try:
        _check(lib, lib.smic_collection_open_mapped(str(ours).encode(), shared, ctypes.byref(handle)))
        _check(lib, lib.smic_collection_open(str(ours).encode(), shared, ctypes.byref(stale)))
        before = ours.read_bytes()
        ids = [f"new-{i}" for i in range(30)]
        _check(lib, lib.smic_collection_append_in_place(handle, E[100:130].ctypes.data, 30, 32, _id_array(ids),
                                                        None, 0, 2))
        smic_fast.open(theirs, dictionary=dictionary).append(E[100:130], ids=ids)
        after = ours.read_bytes()
        assert after == theirs.read_bytes()
        assert after[16:len(before)] == before[16:]  # in place: earlier sections untouched
        n = ctypes.c_size_t()
        _check(lib, lib.smic_collection_size(handle, ctypes.byref(n)))
        assert n.value == 130
        out = np.empty((30, 32), np.float32)
        _check(lib, lib.smic_collection_decode_into(handle, 100, 130, out.ctypes.data, out.size, 1))
        python = smic_fast.open(theirs, dictionary=dictionary)
        np.testing.assert_array_equal(out, np.stack([python[i] for i in range(100, 130)]))
        # An id already there, a stale handle (the file changed since it was opened): refused,
        # the file unchanged.
        assert lib.smic_collection_append_in_place(handle, E[:1].ctypes.data, 1, 32, _id_array(["new-3"]),
                                                   None, 0, 0) == INVALID
        assert lib.smic_collection_append_in_place(stale, E[:1].ctypes.data, 1, 32, None, None, 0, 0) == IO
        assert b"changed since" in lib.smic_last_error()
        assert lib.smic_collection_append_in_place(handle, E[:1].ctypes.data, 1, 31, None, None, 0, 0) == INVALID
        assert lib.smic_collection_append_in_place(handle, None, 1, 32, None, None, 0, 0) == INVALID
        assert lib.smic_collection_append_in_place(None, E[:1].ctypes.data, 1, 32, None, None, 0, 0) == INVALID
        assert lib.smic_collection_append_in_place(handle, E[:1].ctypes.data, 1, 32, None, None, 0, -2) == INVALID
        assert ours.read_bytes() == after
        # A collection from bytes has no file to append to.
        memory = ctypes.c_void_p()
        _check(lib, lib.smic_collection_from_bytes(after, len(after), shared, ctypes.byref(memory)))
        assert lib.smic_collection_append_in_place(memory, E[:1].ctypes.data, 1, 32, None, None, 0, 0) == IO
        lib.smic_collection_free(memory)
        # The 0.1 entry point appends in place too now: Python's bytes.
        _check(lib, lib.smic_collection_append(str(ours).encode(), E[130:140].ctypes.data, 10, 32, None, 0, 0,
                                               shared))
        smic_fast.open(theirs, dictionary=dictionary).append(E[130:140])
        assert ours.read_bytes() == theirs.read_bytes()
        # repack
        _check(lib, lib.smic_collection_repack(str(ours).encode(), shared, 1))
        smic_fast.open(theirs, dictionary=dictionary).repack()
        assert ours.read_bytes() == theirs.read_bytes()
        assert lib.smic_collection_repack(str(ours).encode(), None, 0) == MISMATCH
        assert lib.smic_collection_repack(None, shared, 0) == INVALID
        assert lib.smic_collection_repack(str(tmp_path / "none").encode(), shared, 0) == IO
        assert lib.smic_last_errno() == errno.ENOENT
    finally:
        lib.smic_collection_free(handle)
        lib.smic_collection_free(stale)
        lib.smic_dictionary_free(shared)


def test_mapped_open_reads_like_open_and_refuses_damage(lib, data, tmp_path):
    handle = ctypes.c_void_p()
    col = smic_fast.open(data["embedded"])
    _check(lib, lib.smic_collection_open_mapped(str(data["embedded"]).encode(), None, ctypes.byref(handle)))
    try:
        out = np.empty((len(col), col.dim), np.float32)
        _check(lib, lib.smic_collection_decode_into(handle, 0, len(col), out.ctypes.data, out.size, 0))
        np.testing.assert_array_equal(out, np.stack([col[i] for i in range(len(col))]))
        sentinel = np.full(8, 7.0, np.float32)
        assert lib.smic_collection_decode_into(handle, 0, 1, sentinel.ctypes.data, 8, 0) == TOO_SMALL
        assert (sentinel == 7.0).all() and b"need 32 floats" in lib.smic_last_error()
        assert lib.smic_collection_decode_into(handle, 2, 1, out.ctypes.data, out.size, 0) == INVALID
        assert lib.smic_collection_decode_into(handle, 0, 1, None, 32, 0) == INVALID
        assert lib.smic_collection_decode_into(handle, 0, 1, out.ctypes.data, 32, -1) == INVALID
        _check(lib, lib.smic_collection_decode_into(handle, 4, 4, None, 0, 0))
    finally:
        lib.smic_collection_free(handle)
    raw = data["embedded"].read_bytes()
    path = tmp_path / "damaged.smic"
    handle = ctypes.c_void_p()
    for cut in (0, 10, 16, 100, len(raw) // 2, len(raw) - 1):
        path.write_bytes(raw[:cut])
        assert lib.smic_collection_open_mapped(str(path).encode(), None, ctypes.byref(handle)) == FORMAT
    rng = np.random.default_rng(1)
    for at in rng.integers(16, len(raw), 20):
        path.write_bytes(raw[:at] + bytes([raw[at] ^ 0x5A]) + raw[at + 1:])
        assert lib.smic_collection_open_mapped(str(path).encode(), None, ctypes.byref(handle)) == FORMAT
        assert lib.smic_last_error()
    assert handle.value is None


def test_decode_into_and_encode_batch(lib, data):
    E, dictionary = np.ascontiguousarray(data["E"][:120]), data["dictionary"]
    handle = _load_dictionary(lib, data["smicd"])
    try:
        expected = [dictionary.encode(x) for x in E]
        total = sum(map(len, expected))
        offsets = (ctypes.c_size_t * (len(E) + 1))()
        written = ctypes.c_size_t()
        assert lib.smic_encode_batch(handle, E.ctypes.data, len(E), 0.0, 2, None, 0, offsets,
                                     ctypes.byref(written)) == TOO_SMALL
        assert written.value == total and list(offsets) == [0] * (len(E) + 1)
        for threads in (1, 2):
            out = ctypes.create_string_buffer(total)
            _check(lib, lib.smic_encode_batch(handle, E.ctypes.data, len(E), 0.0, threads, out, total, offsets,
                                              ctypes.byref(written)))
            assert [out.raw[offsets[i]:offsets[i + 1]] for i in range(len(E))] == expected
        bad = E.copy()
        bad[50, 1] = np.nan
        assert lib.smic_encode_batch(handle, bad.ctypes.data, len(E), 0.0, 2, out, total, offsets,
                                     ctypes.byref(written)) == INVALID
        assert b"NaN" in lib.smic_last_error()
        assert lib.smic_encode_batch(handle, E.ctypes.data, len(E), 0.02, 1, out, total, offsets,
                                     ctypes.byref(written)) == INVALID  # no transform: no refinement
        assert lib.smic_encode_batch(handle, E.ctypes.data, len(E), 0.0, 1, out, total, None,
                                     ctypes.byref(written)) == INVALID
        assert lib.smic_encode_batch(handle, E.ctypes.data, len(E), 0.0, -1, out, total, offsets,
                                     ctypes.byref(written)) == INVALID
        _check(lib, lib.smic_encode_batch(handle, None, 0, 0.0, 0, None, 0, offsets, ctypes.byref(written)))
        assert written.value == 0 and offsets[0] == 0
        decoded = np.full(32, 3.0, np.float32)
        assert lib.smic_decode_into(handle, expected[0], len(expected[0]), 0.0, decoded.ctypes.data, 31) == TOO_SMALL
        assert (decoded == 3.0).all()
        _check(lib, lib.smic_decode_into(handle, expected[0], len(expected[0]), 0.0, decoded.ctypes.data, 32))
        np.testing.assert_array_equal(decoded, dictionary.decode(expected[0]))
        for garbage in (b"", b"\xff" * 3, expected[0][:-1] + b"\xff\xff\xff"):
            status = lib.smic_decode_into(handle, garbage, len(garbage), 0.0, decoded.ctypes.data, 32)
            assert status in (OK, FORMAT) and (status == OK or lib.smic_last_error())
        assert lib.smic_decode_into(handle, b"", 0, 0.0, decoded.ctypes.data, 32) == FORMAT
        assert lib.smic_decode_into(None, expected[0], len(expected[0]), 0.0, decoded.ctypes.data, 32) == INVALID
        assert lib.smic_decode_into(handle, None, 4, 0.0, decoded.ctypes.data, 32) == INVALID
        assert lib.smic_decode_into(handle, expected[0], len(expected[0]), 0.0, None, 32) == INVALID
    finally:
        lib.smic_dictionary_free(handle)


def _fit_options(lib, **fields) -> FitOptions:
    options = FitOptions()
    _check(lib, lib.smic_fit_options_default(ctypes.byref(options)))
    assert (options.quality, options.n_iter, options.sample_size) == (b"medium", 10, 50000)
    for name, value in fields.items():
        setattr(options, name, value)
    return options


@pytest.mark.parametrize("settings", [{}, {"quality": "low"}, {"quality": "high", "n_atoms": 16},
                                      {"learn": "sparsity", "n_atoms": 12, "n_nonzero": 3, "precision": "int8"},
                                      {"layout": "paper", "n_atoms": 16, "paper_bits": 6}])
def test_fit_learns_pythons_dictionary(lib, data, settings):
    E = np.ascontiguousarray(data["E"])
    fields = {k: (v.encode() if isinstance(v, str) else v) for k, v in settings.items()}
    options = _fit_options(lib, n_iter=3, **fields)
    handle = ctypes.c_void_p()
    _check(lib, lib.smic_dictionary_fit(E.ctypes.data, len(E), E.shape[1], ctypes.byref(options),
                                        ctypes.byref(handle)))
    try:
        digest = ctypes.create_string_buffer(65)
        _check(lib, lib.smic_dictionary_hash(handle, digest))
        assert digest.value.decode() == smic_fast.Dictionary.fit(E, n_iter=3, **settings).hash
    finally:
        lib.smic_dictionary_free(handle)


def test_fit_reads_only_a_sample_and_checks_its_options(lib, data):
    E = np.ascontiguousarray(data["E"])
    reads = []

    @READ_ROWS
    def read(user, start, count, target):
        reads.append((start, count))
        ctypes.memmove(target, E[start:start + count].ctypes.data, count * E.shape[1] * 4)
        return 0

    options = _fit_options(lib, n_iter=2, sample_size=40, n_atoms=8, seed=3)
    handle, again = ctypes.c_void_p(), ctypes.c_void_p()
    _check(lib, lib.smic_dictionary_fit_rows(read, None, len(E), E.shape[1], ctypes.byref(options),
                                             ctypes.byref(handle)))
    rows = [start + i for start, count in reads for i in range(count)]
    assert len(rows) == 40 == len(set(rows)) and rows == sorted(rows) and rows[-1] < len(E)
    _check(lib, lib.smic_dictionary_fit(E.ctypes.data, len(E), E.shape[1], ctypes.byref(options),
                                        ctypes.byref(again)))
    hashes = []
    for h in (handle, again):
        digest = ctypes.create_string_buffer(65)
        _check(lib, lib.smic_dictionary_hash(h, digest))
        hashes.append(digest.value)
        lib.smic_dictionary_free(h)
    assert hashes[0] == hashes[1]  # the same sample, read or in memory
    # The sample's dictionary is Python's on the same rows.
    assert hashes[0].decode() == smic_fast.Dictionary.fit(E[rows], n_atoms=8, n_iter=2, seed=3).hash

    @READ_ROWS
    def failing(user, start, count, target):
        return 99

    out = ctypes.c_void_p()
    assert lib.smic_dictionary_fit_rows(failing, None, len(E), E.shape[1], None, ctypes.byref(out)) == IO
    for fields, words in (({"quality": b"ultra"}, b"quality"), ({"learn": b"fast"}, b"learn"),
                          ({"layout": b"dense"}, b"layout"), ({"precision": b"float8"}, b"precision"),
                          ({"n_atoms": len(E) + 1}, b"n_atoms"), ({"n_atoms": 8, "n_nonzero": 9}, b"n_nonzero"),
                          ({"step": 2.0}, b"step"), ({"struct_size": 4}, b"struct_size"),
                          ({"n_threads": -3}, b"n_threads"), ({"sample_size": 5, "n_atoms": 8}, b"n_atoms")):
        options = _fit_options(lib, n_iter=1, **fields)
        assert lib.smic_dictionary_fit(E.ctypes.data, len(E), E.shape[1], ctypes.byref(options),
                                       ctypes.byref(out)) == INVALID, fields
        assert words in lib.smic_last_error(), (fields, lib.smic_last_error())
    bad = E.copy()
    bad[9, 9] = np.nan
    assert lib.smic_dictionary_fit(bad.ctypes.data, len(E), E.shape[1], None, ctypes.byref(out)) == INVALID
    assert b"(E)" not in lib.smic_last_error()
    assert lib.smic_dictionary_fit(None, len(E), E.shape[1], None, ctypes.byref(out)) == INVALID
    assert lib.smic_dictionary_fit(E.ctypes.data, 0, E.shape[1], None, ctypes.byref(out)) == INVALID
    assert lib.smic_dictionary_fit(E.ctypes.data, len(E), 0, None, ctypes.byref(out)) == INVALID
    assert lib.smic_dictionary_fit(E.ctypes.data, len(E), E.shape[1], None, None) == INVALID
    assert lib.smic_dictionary_fit_rows(READ_ROWS(), None, len(E), E.shape[1], None, ctypes.byref(out)) == INVALID
    assert lib.smic_fit_options_default(None) == INVALID
    assert out.value is None


def test_search_is_pythons(lib, data):
    col = smic_fast.open(data["embedded"])
    queries = np.ascontiguousarray(data["E"][:6])
    handle, index = ctypes.c_void_p(), ctypes.c_void_p()
    _check(lib, lib.smic_collection_open(str(data["embedded"]).encode(), None, ctypes.byref(handle)))
    try:
        _check(lib, lib.smic_search_index_new(handle, 2, ctypes.byref(index)))
    finally:
        lib.smic_collection_free(handle)  # the index keeps the collection alive
    try:
        n, memory = ctypes.c_size_t(), ctypes.c_size_t()
        _check(lib, lib.smic_search_index_size(index, ctypes.byref(n), ctypes.byref(memory)))
        assert n.value == len(col) and memory.value > 0
        for k, nprobe in ((5, 0), (3, 2), (len(col) + 5, 0)):
            positions = (ctypes.c_int64 * (6 * k))()
            scores = (ctypes.c_float * (6 * k))()
            for threads in (1, 2):
                _check(lib, lib.smic_search(index, queries.ctypes.data, 6, 32, k, nprobe, 0, threads, positions,
                                            scores, 6 * k))
                result = col.search(queries, k=k, nprobe=nprobe or None)
                kept = min(k, len(col))  # Python returns at most len(col) per query
                np.testing.assert_array_equal(np.array(positions).reshape(6, k)[:, :kept], result.positions)
                np.testing.assert_array_equal(np.array(scores, np.float32).reshape(6, k)[:, :kept], result.scores)
        assert (np.array(positions).reshape(6, -1)[:, len(col):] == -1).all()  # fewer than k items
        positions, scores = (ctypes.c_int64 * 30)(), (ctypes.c_float * 30)()
        assert lib.smic_search(index, queries.ctypes.data, 6, 32, 5, 0, 0, 0, positions, scores, 29) == TOO_SMALL
        assert list(positions) == [0] * 30 and b"need 30 entries" in lib.smic_last_error()
        assert lib.smic_search(index, queries.ctypes.data, 6, 31, 5, 0, 0, 0, positions, scores, 30) == INVALID
        assert lib.smic_search(index, queries.ctypes.data, 6, 32, 0, 0, 0, 0, positions, scores, 30) == INVALID
        assert lib.smic_search(index, queries.ctypes.data, 6, 32, 5, 0, 4, 0, positions, scores, 30) == INVALID
        assert b"refinement" in lib.smic_last_error() or b"rerank" in lib.smic_last_error()
        zero = np.zeros((1, 32), np.float32)
        assert lib.smic_search(index, zero.ctypes.data, 1, 32, 5, 0, 0, 0, positions, scores, 30) == INVALID
        assert lib.smic_search(index, None, 6, 32, 5, 0, 0, 0, positions, scores, 30) == INVALID
        assert lib.smic_search(index, queries.ctypes.data, 6, 32, 5, 0, 0, 0, None, scores, 30) == INVALID
        assert lib.smic_search(None, queries.ctypes.data, 6, 32, 5, 0, 0, 0, positions, scores, 30) == INVALID
        _check(lib, lib.smic_search(index, None, 0, 32, 5, 0, 0, 0, None, None, 0))
        assert lib.smic_search_index_size(index, None, None) == INVALID
        assert lib.smic_search_index_new(None, 0, ctypes.byref(ctypes.c_void_p())) == INVALID
    finally:
        lib.smic_search_index_free(index)


def test_dictionary_accessors_and_save(lib, data, tmp_path):
    handle, from_collection = _load_dictionary(lib, data["smicd"]), ctypes.c_void_p()
    collection = ctypes.c_void_p()
    size = ctypes.c_size_t()
    try:
        _check(lib, lib.smic_dictionary_dim(handle, ctypes.byref(size)))
        assert size.value == data["dictionary"].dim
        _check(lib, lib.smic_dictionary_n_atoms(handle, ctypes.byref(size)))
        assert size.value == data["dictionary"].n_atoms
        _check(lib, lib.smic_dictionary_save(handle, str(tmp_path / "copy.smicd").encode()))
        assert (tmp_path / "copy.smicd").read_bytes() == data["dictionary"].to_bytes()
        assert lib.smic_dictionary_save(handle, str(tmp_path / "no" / "such" / "dir.smicd").encode()) == IO
        assert lib.smic_last_errno() == errno.ENOENT
        assert lib.smic_dictionary_dim(None, ctypes.byref(size)) == INVALID
        assert lib.smic_dictionary_n_atoms(handle, None) == INVALID
        _check(lib, lib.smic_collection_open(str(data["embedded"]).encode(), None, ctypes.byref(collection)))
        _check(lib, lib.smic_collection_dictionary(collection, ctypes.byref(from_collection)))
        digest = ctypes.create_string_buffer(65)
        _check(lib, lib.smic_dictionary_hash(from_collection, digest))
        assert digest.value.decode() == smic_fast.open(data["embedded"]).dictionary.hash
        assert lib.smic_collection_dictionary(collection, None) == INVALID
    finally:
        lib.smic_dictionary_free(from_collection)
        lib.smic_collection_free(collection)
        lib.smic_dictionary_free(handle)


def test_every_new_entry_point_refuses_null(lib, data):
    """Each function issue 31 added, with a NULL where a pointer is needed: SMIC_ERR_INVALID_ARGUMENT and a
    message naming the function (the ones with more cases have tests of their own above)."""
    dictionary, collection = _load_dictionary(lib, data["smicd"]), ctypes.c_void_p()
    _check(lib, lib.smic_collection_open(str(data["embedded"]).encode(), None, ctypes.byref(collection)))
    size, number, flag = ctypes.c_size_t(), ctypes.c_uint(), ctypes.c_int()
    hex_ = ctypes.create_string_buffer(65)
    floats = np.zeros(64, np.float32)
    path = str(data["work"] / "never.smic").encode()
    calls = {
        "smic_dictionary_to_bytes": lambda: lib.smic_dictionary_to_bytes(None, None, 0, ctypes.byref(size)),
        "smic_fit_options_default": lambda: lib.smic_fit_options_default(None),
        "smic_dictionary_fit": lambda: lib.smic_dictionary_fit(floats.ctypes.data, 2, 32, None, None),
        "smic_dictionary_fit_rows": lambda: lib.smic_dictionary_fit_rows(READ_ROWS(), None, 2, 32, None,
                                                                         ctypes.byref(ctypes.c_void_p())),
        "smic_decode_into": lambda: lib.smic_decode_into(None, b"x", 1, 0.0, floats.ctypes.data, 64),
        "smic_encode_batch": lambda: lib.smic_encode_batch(dictionary, floats.ctypes.data, 1, 0.0, 0, None, 0,
                                                           None, ctypes.byref(size)),
        "smic_file_dictionary_hash": lambda: lib.smic_file_dictionary_hash(None, hex_, ctypes.byref(flag)),
        "smic_bytes_dictionary_hash": lambda: lib.smic_bytes_dictionary_hash(b"x", 1, None, ctypes.byref(flag)),
        "smic_collection_info": lambda: lib.smic_collection_info(collection, None, 0, None),
        "smic_collection_format_version": lambda: lib.smic_collection_format_version(None, ctypes.byref(number)),
        "smic_collection_open_mapped": lambda: lib.smic_collection_open_mapped(str(data["embedded"]).encode(),
                                                                               None, None),
        "smic_collection_decode_into": lambda: lib.smic_collection_decode_into(None, 0, 1, floats.ctypes.data,
                                                                               64, 0),
        "smic_write_options_default": lambda: lib.smic_write_options_default(None),
        "smic_collection_write_ex": lambda: lib.smic_collection_write_ex(path, floats.ctypes.data, 2, 32, None,
                                                                         None, None, None),
        "smic_collection_write_to_bytes": lambda: lib.smic_collection_write_to_bytes(
            floats.ctypes.data, 2, 32, dictionary, None, None, None, None, 0, None),
        "smic_collection_write_rows": lambda: lib.smic_collection_write_rows(None, READ_ROWS(), None, 2, 32,
                                                                             dictionary, None, None, None),
        "smic_writer_open": lambda: lib.smic_writer_open(path, 2, 32, None, None, None, None,
                                                         ctypes.byref(ctypes.c_void_p())),
        "smic_writer_add": lambda: lib.smic_writer_add(None, floats.ctypes.data, 1),
        "smic_writer_rows": lambda: lib.smic_writer_rows(None, ctypes.byref(size)),
        "smic_writer_finish": lambda: lib.smic_writer_finish(None),
        "smic_writer_abort": lambda: lib.smic_writer_abort(None),
        "smic_collection_append_in_place": lambda: lib.smic_collection_append_in_place(
            None, floats.ctypes.data, 1, 32, None, None, 0, 0),
        "smic_collection_repack": lambda: lib.smic_collection_repack(None, None, 0),
        "smic_search_index_new": lambda: lib.smic_search_index_new(collection, 0, None),
        "smic_search_index_size": lambda: lib.smic_search_index_size(None, ctypes.byref(size), None),
        "smic_search": lambda: lib.smic_search(None, floats.ctypes.data, 1, 32, 1, 0, 0, 0, None, None, 0),
    }
    try:
        for name, call in calls.items():
            assert call() == INVALID, name
            assert lib.smic_last_error().startswith(name.encode()), (name, lib.smic_last_error())
            assert lib.smic_last_errno() == 0
    finally:
        lib.smic_collection_free(collection)
        lib.smic_dictionary_free(dictionary)
    assert not Path(path.decode()).exists()
    # Every function smic.h declares is exercised here or above.
    header = (ROOT / "cpp" / "include" / "smic" / "smic.h").read_text()
    declared = set(re.findall(r"SMIC_API [^;]*?\b(smic_\w+)\(", header))
    source = Path(__file__).read_text()
    assert all(f"lib.{name}(" in source for name in declared), \
        sorted(n for n in declared if f"lib.{n}(" not in source)
