"""The section container of the C++ core: layout, CRC and length checks, atomic writes."""
from __future__ import annotations

import os
import struct
import zlib

import pytest

from format_helpers import FORMAT_VERSION, Section, parse_sections, read_sections, write_sections
from smic_fast import _core
from smic_fast.errors import FormatError

MAGIC = b"\x89TEST\r\n\x1a"


def test_layout_is_preamble_then_tagged_sections_with_crc(tmp_path):
    path = tmp_path / "f.bin"
    size = write_sections(path, MAGIC, [Section(b"HEAD", b"hello"), Section(b"DATA", b"")])
    data = path.read_bytes()
    assert size == len(data) == 16 + (16 + 5) + 16
    assert data[:8] == MAGIC and struct.unpack_from("<H", data, 8)[0] == 1
    tag, length = struct.unpack_from("<4sQ", data, 16)
    assert (tag, length) == (b"HEAD", 5) and data[28:33] == b"hello"
    assert struct.unpack_from("<I", data, 33)[0] == zlib.crc32(b"hello", zlib.crc32(data[16:28]))
    assert read_sections(path, MAGIC) == [Section(b"HEAD", b"hello"), Section(b"DATA", b"")]


def test_failed_write_leaves_target_and_no_temporary(tmp_path):
    target = tmp_path / "taken"  # a non-empty folder: the final rename must fail
    target.mkdir()
    (target / "inside").write_bytes(b"keep")
    with pytest.raises(OSError, match="cannot replace"):
        _core.atomic_write(str(target), b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert (target / "inside").read_bytes() == b"keep"


def test_missing_folder_is_an_os_error_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        _core.atomic_write(str(tmp_path / "nowhere" / "f.bin"), b"x")


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d[:10], "not a smic file"),
        (lambda d: b"NOTMAGIC" + d[8:], "magic bytes"),
        (lambda d: d[:8] + struct.pack("<H", FORMAT_VERSION + 1) + d[10:], "newer than this smic_fast reads"),
        (lambda d: d[:8] + struct.pack("<H", 0) + d[10:], "invalid format version 0"),
        (lambda d: d[:-1], "claims 5 bytes but the file ends first"),
        (lambda d: d + b"\x00" * 5, "truncated section header"),
        (lambda d: d[:29] + bytes([d[29] ^ 0x40]) + d[30:], "fails its CRC32 check"),
        (lambda d: d[:20] + struct.pack("<Q", 2**63) + d[28:], "claims"),
        (lambda d: d[:20] + struct.pack("<Q", 2**64 - 1) + d[28:], "claims"),
    ],
)
def test_damaged_files_raise_format_error(tmp_path, mutate, match):
    path = tmp_path / "f.bin"
    write_sections(path, MAGIC, [Section(b"HEAD", b"hello")])
    with pytest.raises(FormatError, match=match):
        parse_sections(mutate(path.read_bytes()), MAGIC, kind="smic file")


def test_bad_tag_and_version_are_value_errors():
    with pytest.raises(ValueError, match="4 bytes"):
        _core.encode_container(MAGIC, 1, [(b"TOOLONG", b"")])
    with pytest.raises(ValueError, match="version"):
        _core.encode_container(MAGIC, FORMAT_VERSION + 1, [])


def test_new_files_get_ordinary_permissions_and_replacements_keep_theirs(tmp_path):
    path = tmp_path / "f.bin"
    umask = os.umask(0o022)
    try:
        write_sections(path, MAGIC, [Section(b"HEAD", b"x")])
        assert path.stat().st_mode & 0o777 == 0o644
        path.chmod(0o600)
        write_sections(path, MAGIC, [Section(b"MORE", b"y")])
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(umask)
