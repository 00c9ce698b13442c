"""The C++ core links into a plain C++ program through CMake (smic::core), without Python."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    """The tool from this environment's bin (installed by the test extra), else from PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    assert found, f"{name} is needed to build examples/cpp (pip install '.[test]' provides it)"
    return found


def test_example_program_builds_links_and_round_trips(tmp_path):
    build = tmp_path / "build"
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "2"}
    configure = [_tool("cmake"), "-S", str(ROOT / "examples" / "cpp"), "-B", str(build),
                 "-DCMAKE_BUILD_TYPE=Release", "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={_tool('ninja')}"]
    subprocess.run(configure, check=True, capture_output=True, env=env)
    subprocess.run([_tool("cmake"), "--build", str(build)], check=True, capture_output=True, env=env)
    result = subprocess.run([str(build / "code_vectors")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("coded 400 vectors:")
    bits_per_vector = float(result.stdout.split(",")[-1].split()[0])
    assert 0 < bits_per_vector < 64
