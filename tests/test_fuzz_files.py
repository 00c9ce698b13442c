"""Damaged files, 10,000 times over: every mutation of a valid .smic / .smicd either decodes
or raises a smic_fast exception (FormatError / DecodeError) — no crash, hang or other error.

Half the mutations repair the section CRCs afterwards, so the parsers behind the CRC check
(JSON headers, tables, chunk offsets, the range decoder) see the damage too."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

import smic_fast as smic
from format_helpers import PREAMBLE as _PREAMBLE, SECTION_HEAD as _SECTION_HEAD

from problems import planted_collection


def _repair_crcs(data: bytearray) -> bytearray:
    """Recompute every section CRC of a (possibly damaged) container, where lengths allow."""
    pos = _PREAMBLE.size
    while pos + _SECTION_HEAD.size <= len(data):
        _tag, length = _SECTION_HEAD.unpack_from(data, pos)
        end = pos + _SECTION_HEAD.size + length
        if end + 4 > len(data):
            break
        crc = zlib.crc32(bytes(data[pos + _SECTION_HEAD.size : end]), zlib.crc32(bytes(data[pos : pos + _SECTION_HEAD.size])))
        data[end : end + 4] = struct.pack("<I", crc)
        pos = end + 4
    return data


def _mutate(rng: np.random.Generator, original: bytes) -> bytes:
    data = bytearray(original)
    kind = rng.integers(0, 5)
    if kind == 0:  # flip a few bits
        for _ in range(rng.integers(1, 4)):
            i = rng.integers(0, len(data))
            data[i] ^= 1 << rng.integers(0, 8)
    elif kind == 1:  # overwrite a byte
        data[rng.integers(0, len(data))] = rng.integers(0, 256)
    elif kind == 2:  # truncate
        data = data[: rng.integers(0, len(data))]
    elif kind == 3:  # insert random bytes
        i = rng.integers(0, len(data) + 1)
        data[i:i] = rng.integers(0, 256, rng.integers(1, 9), dtype=np.uint8).tobytes()
    else:  # delete a span
        i = rng.integers(0, len(data))
        del data[i : i + rng.integers(1, 9)]
    if rng.random() < 0.5:
        data = _repair_crcs(data)
    return bytes(data)


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    x, _ = planted_collection(np.random.default_rng(5), 60, 8, 12, 2)
    smic.compress(x, folder / "c.smic", n_atoms=8, n_nonzero=3, n_iter=2, chunk_size=8,
                  ids=[f"i{i}" for i in range(60)], pixels=[100] * 60)
    smic.Dictionary.fit(x, n_atoms=8, n_iter=2, precision="int8").save(folder / "d.smicd")
    return folder


def damaged_collections_raised(original: bytes, path, rng: np.random.Generator, count: int) -> int:
    """Open, decode and describe `count` mutations of a valid collection; every one must decode
    or raise FormatError (anything else fails the test). Returns how many raised."""
    raised = 0
    for _ in range(count):
        path.write_bytes(_mutate(rng, original))
        try:
            col = smic.open(path)
            col.embeddings()
            col.info()
        except smic.FormatError:
            raised += 1
    return raised


def test_ten_thousand_damaged_collections_decode_or_raise_format_error(valid_files, tmp_path):
    original = (valid_files / "c.smic").read_bytes()
    raised = damaged_collections_raised(original, tmp_path / "m.smic", np.random.default_rng(2024), 10_000)
    assert raised > 5000


def test_two_thousand_damaged_dictionaries_load_or_raise_format_error(valid_files, tmp_path):
    original = (valid_files / "d.smicd").read_bytes()
    rng = np.random.default_rng(7)
    path = tmp_path / "m.smicd"
    refused = 0
    for _ in range(2_000):
        path.write_bytes(_mutate(rng, original))
        try:
            dictionary = smic.Dictionary.load(path)
        except smic.FormatError:
            refused += 1
            continue
        try:
            dictionary.decode(b"\x00" * 8)
        except smic.DecodeError:  # a bad item stream for this (possibly damaged) dictionary
            pass
    # Half the mutations keep a stale CRC and every truncation cuts a section: most must be
    # refused at load, not decoded with damaged tables.
    print("refused at load:", refused)
    assert refused > 1_500, refused


_HUGE_HEADER_SCRIPT = """
import json, resource, sys, zlib
sys.path.insert(0, {tests!r})
import smic_fast as smic
from format_helpers import parse_sections, Section
from smic_fast import _core
data = open({path!r}, "rb").read()
MAGIC = smic.coding.dictionary.DICTIONARY_MAGIC
sections = {{s.tag: s.payload for s in parse_sections(data, MAGIC)}}
header = json.loads(sections[b"DHDR"])
header.update(n_atoms=65536, dim=1024, precision={precision!r})  # 2^26 values: the cap
empty_tables = zlib.compress(bytes(4))  # four tables of size 0: parse, then atoms load
atoms = open({atoms!r}, "rb").read()
forged = _core.encode_container(MAGIC, 1, [
    (b"DHDR", json.dumps(header).encode()), (b"ATOM", atoms), (b"TABL", empty_tables)])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    smic.Dictionary.from_bytes(forged)
except smic.FormatError as error:
    print("FormatError", error)
print("grew_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.parametrize(("precision", "atoms", "message"), [
    ("float16", b"\x00" * 10, "bytes of float16"),
    ("int8", b"\x00" * (4 * 65536) + b"\x00" + b"\x00" * 5, "int8 values"),
    # range-coded levels whose table does not count K x d values
    ("int8", b"\x00" * (4 * 65536) + b"\x01" + bytes(255) + b"\x07" + b"\x00" * 8, "level table counts"),
])
def test_a_header_claiming_huge_atoms_is_refused_before_allocating(valid_files, tmp_path, precision, atoms, message):
    import subprocess
    import sys
    from pathlib import Path

    tests = str(Path(__file__).resolve().parent)
    (tmp_path / "atoms.bin").write_bytes(atoms)
    script = _HUGE_HEADER_SCRIPT.format(tests=tests, path=str(valid_files / "d.smicd"),
                                        precision=precision, atoms=str(tmp_path / "atoms.bin"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "FormatError" in result.stdout and message in result.stdout
    grew_kb = int(result.stdout.split("grew_kb")[-1])
    assert grew_kb < 64 * 1024  # a K x d float64 buffer would be 512 MB
