"""The C/C++ package inside the installed wheel: after `pip install smic-fast`, a CMake project
finds it with find_package(smic CONFIG) through the `cmake.root` entry point (the one
scikit-build-core reads to set smic_ROOT), and examples/cpp and examples/c build against it
and run, with no source tree and no system install of smic."""
from __future__ import annotations

import importlib.metadata
import os
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import smic_fast
from test_cpp_example import _tool

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def cmake_root() -> Path:
    """What scikit-build-core gives a dependent project as smic_ROOT: the entry point's module."""
    (entry,) = [e for e in importlib.metadata.entry_points(group="cmake.root") if e.name == "smic"]
    spec = __import__(entry.value)
    return Path(spec.__file__).parent


def build(source: Path, build_dir: Path, *targets: str) -> str:
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "2"}
    env.pop("CMAKE_PREFIX_PATH", None)
    configure = [_tool("cmake"), "-S", str(source), "-B", str(build_dir), "-G", "Ninja",
                 f"-DCMAKE_MAKE_PROGRAM={_tool('ninja')}", "-DCMAKE_BUILD_TYPE=Release",
                 f"-Dsmic_ROOT={cmake_root()}", "-DCMAKE_REQUIRE_FIND_PACKAGE_smic=ON"]
    for command in (configure, [_tool("cmake"), "--build", str(build_dir), "--target", *targets]):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
    return (build_dir / "CMakeCache.txt").read_text()


def test_the_cmake_root_entry_point_is_the_installed_package():
    assert cmake_root() == Path(smic_fast.__file__).parent
    assert (cmake_root() / "lib" / "cmake" / "smic" / "smicConfig.cmake").is_file()


def test_examples_cpp_builds_against_the_installed_wheel_and_runs(tmp_path):
    cache = build(ROOT / "examples" / "cpp", tmp_path / "build", "code_vectors")
    found = re.search(r"^smic_DIR:PATH=(.*)$", cache, re.M)
    assert found and Path(found.group(1)).resolve().is_relative_to(cmake_root().resolve()), found
    assert not (tmp_path / "build" / "smic_core").exists()  # not the source tree's add_subdirectory
    result = subprocess.run([str(tmp_path / "build" / "code_vectors")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("coded 400 vectors:")


def test_examples_c_reads_what_python_wrote_through_the_installed_library(tmp_path):
    build(ROOT / "examples" / "c", tmp_path / "build", "decode_collection")
    E = np.random.default_rng(5).standard_normal((30, 16)).astype(np.float32)
    smic_fast.compress(E, tmp_path / "c.smic", n_atoms=16, ids=[f"item{i}" for i in range(30)])
    result = subprocess.run([str(tmp_path / "build" / "decode_collection"), str(tmp_path / "c.smic")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "items 30 dim 16"
    col = smic_fast.open(tmp_path / "c.smic")
    for i, line in enumerate(lines[1:]):
        item, values = line.split("\t")
        assert item == f"item{i}"
        np.testing.assert_array_equal(np.array(values.split(), dtype=np.float32), col[i])


def test_examples_c_compress_and_info_run_against_the_installed_library(tmp_path):
    """The C ABI of issue 31 from the wheel: the streaming writer gives Python's bytes, info its info()."""
    build(ROOT / "examples" / "c", tmp_path / "build", "compress", "info")
    E = np.random.default_rng(6).standard_normal((300, 16)).astype(np.float32)
    E.astype("<f4").tofile(tmp_path / "rows.f32")
    dictionary = smic_fast.Dictionary.fit(E, n_atoms=16, n_iter=2)
    dictionary.save(tmp_path / "d.smicd")
    result = subprocess.run([str(tmp_path / "build" / "compress"), str(tmp_path / "rows.f32"), "16",
                             str(tmp_path / "c.smic"), str(tmp_path / "d.smicd")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    smic_fast.compress(E, tmp_path / "python.smic", dictionary=dictionary)
    assert (tmp_path / "c.smic").read_bytes() == (tmp_path / "python.smic").read_bytes()
    result = subprocess.run([str(tmp_path / "build" / "info"), str(tmp_path / "c.smic"), str(tmp_path / "d.smicd")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    first, info = result.stdout.splitlines()
    assert first.split() == ["dictionary", dictionary.hash, "shared"]
    python = smic_fast.open(tmp_path / "c.smic", dictionary=dictionary).info()
    assert json.loads(info)["file_bytes"] == python["file_bytes"]
