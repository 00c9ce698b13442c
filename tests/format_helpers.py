"""Test-side view of the C++ container (smic_fast._core), for tests that build or damage files
section by section: the byte layout itself lives only in the core."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from smic_fast import _core

FORMAT_VERSION = _core.FORMAT_VERSION
PREAMBLE = struct.Struct("<8sHHI")  # magic, version, flags, reserved (docs/format.md)
SECTION_HEAD = struct.Struct("<4sQ")  # tag, payload length


@dataclass(frozen=True)
class Section:
    tag: bytes
    payload: bytes


def parse_sections(data: bytes, magic: bytes, *, kind: str = "smic file") -> list[Section]:
    return [Section(t, p) for t, p in _core.parse_container(data, magic, kind)[1]]


def read_sections(path, magic: bytes, *, kind: str = "smic file") -> list[Section]:
    with open(path, "rb") as f:
        return parse_sections(f.read(), magic, kind=kind)


def write_sections(path, magic: bytes, sections, *, version: int = 1) -> int:
    data = _core.encode_container(magic, version, [(s.tag, s.payload) for s in sections])
    _core.atomic_write(os.fspath(path), data)
    return len(data)
