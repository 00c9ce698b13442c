"""The shipped machine code targets plain x86-64: instructions beyond SSE2 (AVX, FMA, F16C,
BMI, SSE3/SSSE3/SSE4, POPCNT, ...) appear only in the kernels picked at run time after a CPU
check (cpp/src/kernels/gemm_avx2.cpp, cpp/src/kernels/gemm_avx512.cpp, cpp/src/kernels/screen_avx512.cpp and the
functions named *_avx2 or *_avx512), and no shared library carries an x86 ISA "needed" note
(the property auditwheel reads to require x86_64_v2/v3/v4). A build with -march=native, or
-mavx2 outside those kernels, fails here.

Read from the installed package: libsmic_core.a (its objects keep their symbols, so each
instruction is attributed to its function), _core's extension module and libsmic_c.so."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import smic_fast

PACKAGE = Path(smic_fast.__file__).parent
ARCHIVE = PACKAGE / "lib" / "libsmic_core.a"
KERNEL_OBJECTS = ("gemm_avx2.cpp.o", "gemm_avx512.cpp.o", "screen_avx512.cpp.o")
KERNEL_NAME = re.compile(r"_avx(2|512)\b")
# Mnemonics outside baseline x86-64 (SSE2): any VEX/EVEX instruction (v...), BMI1/2, LZCNT,
# POPCNT, MOVBE, and the SSE3 / SSSE3 / SSE4.1 / SSE4.2 instructions a compiler emits.
BEYOND_BASELINE = re.compile(
    r"^(v[a-z0-9]+|andn|bextr|blsi|blsmsk|blsr|bzhi|mulx|pdep|pext|rorx|sarx|shlx|shrx|lzcnt|tzcnt|"
    r"popcnt|movbe|crc32[bwlq]?|haddp[sd]|hsubp[sd]|addsubp[sd]|movddup|movs[hl]dup|lddqu|"
    r"pshufb|palignr|phadd[wd]|phsub[wd]|pabs[bwd]|psign[bwd]|pmaddubsw|pmulhrsw|"
    r"round[sp][sd]|blendv?p[sd]|pblend(w|vb)|insertps|extractps|pextr[bdq]|pinsr[bdq]|pmulld|"
    r"pmin[su][bwd]|pmax[su][bwd]|ptest|pmov[sz]x\w+|dpp[sd]|mpsadbw|packusdw|phminposuw|"
    r"pcmp[eg][qs]q?|pcmpestr[im]|pcmpistr[im]|movntdqa)$")


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} (binutils) is needed: it comes with the C++ toolchain that builds smic"
    return found


def instructions_beyond_baseline(obj: Path) -> dict[str, set[str]]:
    """{function: mnemonics beyond SSE2} for one object file."""
    listing = subprocess.run([tool("objdump"), "-d", "--no-show-raw-insn", "-C", str(obj)],
                             capture_output=True, text=True, check=True).stdout
    found: dict[str, set[str]] = defaultdict(set)
    function = "?"
    for line in listing.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if header:
            function = header.group(1)
            continue
        parts = line.split("\t")
        if len(parts) >= 2 and re.match(r"^\s*[0-9a-f]+:$", parts[0]):
            mnemonic = parts[1].split()[0] if parts[1].split() else ""
            if BEYOND_BASELINE.match(mnemonic):
                found[function].add(mnemonic)
    return found


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("libsmic_core")
    subprocess.run([tool("ar"), "x", str(ARCHIVE)], cwd=folder, check=True)
    return {path.name: path for path in folder.glob("*.o")}


@pytest.mark.skipif(sys.platform != "linux", reason="x86-64 ELF objects")
def test_only_the_run_time_kernels_use_instructions_beyond_x86_64(objects):
    assert all(name in objects for name in KERNEL_OBJECTS) and len(objects) > 10, sorted(objects)
    outside = {}
    kernels_seen, objects_seen = set(), set()
    for name, obj in objects.items():
        for function, mnemonics in instructions_beyond_baseline(obj).items():
            if name in KERNEL_OBJECTS or KERNEL_NAME.search(function):
                kernels_seen.add(function)
                objects_seen.add(name)
            else:
                outside[f"{name}: {function}"] = sorted(mnemonics)
    assert outside == {}, "instructions beyond x86-64 outside the run-time kernels"
    # The check sees the kernels themselves (so a broken disassembly cannot pass it).
    assert any("micro_kernel_avx2" in f for f in kernels_seen), kernels_seen
    assert objects_seen >= set(KERNEL_OBJECTS), objects_seen


@pytest.mark.skipif(sys.platform != "linux", reason="x86-64 ELF objects")
@pytest.mark.parametrize("kernel_object", KERNEL_OBJECTS)
def test_the_kernel_objects_lend_no_code_to_the_rest(objects, kernel_object):
    """Inline functions and templates compiled with -mavx2 or -mavx512f must not be shared
    (weak/COMDAT) symbols: the linker could pick that copy for every caller, AVX2 or not."""
    table = subprocess.run([tool("nm"), "-C", str(objects[kernel_object])], capture_output=True,
                           text=True, check=True).stdout
    shared = [line for line in table.splitlines() if re.match(r"^[0-9a-f]+ [WVuiB] ", line)]
    assert shared == []


@pytest.mark.skipif(sys.platform != "linux", reason="ELF notes")
def test_no_shared_library_requires_an_x86_64_level():
    libraries = [*PACKAGE.glob("_core*.so"), PACKAGE / "lib" / "libsmic_c.so"]
    assert len(libraries) == 2 and all(p.is_file() for p in libraries), libraries
    for library in libraries:
        notes = subprocess.run([tool("readelf"), "-n", str(library)], capture_output=True, text=True,
                               check=True).stdout
        needed = re.findall(r"x86 ISA needed: (.*)", notes)
        assert all(set(level.split(", ")) <= {"x86-64-baseline"} for level in needed), (library, needed)
