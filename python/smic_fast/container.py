"""The section container shared by .smic collections and .smicd dictionaries.

A file is a 16-byte preamble (8-byte magic, format version, flags, reserved) followed by
sections, each ``tag (4 bytes) | length (u64) | payload | crc32 (u32)`` with the CRC over tag,
length and payload. Readers check every length against the file size before reading and every
CRC before parsing, so a truncated or corrupted file raises FormatError and never produces
garbage. Writers are atomic: the new content goes to a temporary file in the same folder,
is flushed to disk, then renamed over the target; on any failure the target is untouched.
Appending writes new sections after the old ones without changing their bytes.
See docs/format.md for the layout of each section.
"""
from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import FormatError

__all__ = ["FORMAT_VERSION", "Section", "append_sections", "atomic_write", "read_sections", "write_sections"]

FORMAT_VERSION = 2  # the newest version this reader understands (2: collections with RESD sections)
_PREAMBLE = struct.Struct("<8sHHI")  # magic, version, flags, reserved
_SECTION_HEAD = struct.Struct("<4sQ")  # tag, payload length
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class Section:
    """One section of a container file: a 4-byte tag and its payload."""

    tag: bytes
    payload: bytes


def _encode_sections(sections: Iterable[Section]) -> bytes:
    out = bytearray()
    for section in sections:
        if len(section.tag) != 4:
            raise ValueError(f"section tag must be 4 bytes, got {section.tag!r}")
        head = _SECTION_HEAD.pack(section.tag, len(section.payload))
        out += head + section.payload
        out += _CRC.pack(zlib.crc32(section.payload, zlib.crc32(head)))
    return bytes(out)


def atomic_write(path: Path, write) -> None:
    """Run write(file) on a temporary file beside `path`, fsync, then rename it over `path`."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        # mkstemp makes the file private; give it the mode a plain open() would (or keep the
        # mode of the file it replaces).
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp_name, mode)
        with os.fdopen(fd, "wb") as tmp:
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:  # KeyboardInterrupt included: never leave a partial file behind
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


def write_sections(path: str | os.PathLike, magic: bytes, sections: Iterable[Section], *, version: int = 1) -> int:
    """Write a new container file atomically; returns its size in bytes. `version` is the
    lowest format version that describes the content (1 unless a newer feature is used), so
    older readers keep reading what they can."""
    if not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"version must be in [1, {FORMAT_VERSION}], got {version}")
    body = _PREAMBLE.pack(magic, version, 0, 0) + _encode_sections(sections)
    atomic_write(Path(path), lambda f: f.write(body))
    return len(body)


def append_sections(path: str | os.PathLike, magic: bytes, sections: Iterable[Section]) -> int:
    """Append sections to an existing, valid container atomically (copy, append, rename).

    The existing bytes are copied unchanged; if anything fails the original file is left as it
    was. Returns the new file size.
    """
    path = Path(path)
    read_sections(path, magic)  # refuse to extend a damaged file
    extra = _encode_sections(sections)

    def write(tmp) -> None:
        with open(path, "rb") as src:
            shutil.copyfileobj(src, tmp, 1 << 20)
        tmp.write(extra)

    atomic_write(path, write)
    return path.stat().st_size


def read_sections(path: str | os.PathLike, magic: bytes, *, kind: str = "smic file") -> list[Section]:
    """Read and verify every section of a container file.

    Raises:
        FileNotFoundError: no such file.
        FormatError: wrong magic (not this kind of file), newer format version, truncated
            section, CRC mismatch, trailing bytes.
    """
    path = Path(path)
    data = path.read_bytes()
    return parse_sections(data, magic, kind=kind, name=str(path))


def parse_sections(data: bytes, magic: bytes, *, kind: str, name: str = "<bytes>") -> list[Section]:
    """Verify and split an in-memory container (see :func:`read_sections`)."""
    if len(data) < _PREAMBLE.size:
        raise FormatError(f"{name}: not a {kind} (only {len(data)} bytes)")
    found_magic, version, _flags, _reserved = _PREAMBLE.unpack_from(data, 0)
    if found_magic != magic:
        raise FormatError(f"{name}: not a {kind} (magic bytes {found_magic!r}, expected {magic!r})")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{name}: format version {version} is newer than this smic_fast reads "
            f"({FORMAT_VERSION}); upgrade smic-fast"
        )
    if version == 0:
        raise FormatError(f"{name}: invalid format version 0")
    sections: list[Section] = []
    pos = _PREAMBLE.size
    while pos < len(data):
        if len(data) - pos < _SECTION_HEAD.size:
            raise FormatError(f"{name}: truncated section header at byte {pos}")
        tag, length = _SECTION_HEAD.unpack_from(data, pos)
        start = pos + _SECTION_HEAD.size
        if length > len(data) - start - _CRC.size:
            raise FormatError(
                f"{name}: section {tag!r} at byte {pos} claims {length} bytes but the file ends "
                f"first (truncated?)"
            )
        payload = data[start : start + length]
        (crc,) = _CRC.unpack_from(data, start + length)
        if crc != zlib.crc32(payload, zlib.crc32(data[pos:start])):
            raise FormatError(f"{name}: section {tag!r} at byte {pos} fails its CRC32 check (corrupted)")
        sections.append(Section(tag, payload))
        pos = start + length + _CRC.size
    return sections
