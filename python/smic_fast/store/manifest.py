"""A collection written as shards: ``OUT.smic.d/`` holds ``part-00000.smic``, ... (each a
complete .smic file coded with one shared dictionary), ``dictionary.smicd``, ``manifest.json``
and ``errors.jsonl``. A distributed run (:mod:`smic_fast.distributed`) writes it; this module
reads it, with no Ray involved.

The manifest is the commit record: a shard is listed only after its file was written
atomically, with its item count, byte size and CRC32, so a run killed part-way leaves a
manifest of the shards that are complete, and a new run skips them. ``open_sharded`` checks
every listed shard against its size and CRC and gives one read-only :class:`Collection` over
them; :func:`merge` packs the shards into one .smic file, byte for byte the file a
single-process ``compress`` with the same dictionary writes (same items, order, ids, pixels).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import weakref
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core
from .collection import Collection
from ..coding.dictionary import Dictionary
from ..errors import FormatError

__all__ = ["MANIFEST", "Manifest", "ShardRecord", "ShardedCollection", "find_manifest", "merge", "open_sharded",
           "shard_folder"]

MANIFEST = "manifest.json"
DICTIONARY = "dictionary.smicd"
ERRORS = "errors.jsonl"
FORMAT = "smic-manifest"
VERSION = 1


def shard_folder(output: str | os.PathLike) -> Path:
    """Where the shards of ``OUT.smic`` go: ``OUT.smic.d``."""
    output = Path(output)
    return output if output.suffix == ".d" else output.with_name(output.name + ".d")


def find_manifest(path: str | os.PathLike) -> Path | None:
    """The manifest that `path` names: the manifest itself, its folder, or ``OUT.smic`` whose
    ``OUT.smic.d/manifest.json`` exists while ``OUT.smic`` does not. None for a plain file."""
    path = Path(path)
    if path.is_dir() and (path / MANIFEST).is_file():
        return path / MANIFEST
    if path.name == MANIFEST and path.is_file():
        return path
    if not path.exists() and (shard_folder(path) / MANIFEST).is_file():
        return shard_folder(path) / MANIFEST
    return None


def crc32_of(path: str | os.PathLike) -> str:
    """The CRC32 of a file's bytes, as 8 hex digits."""
    crc = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


def pairwise_sum(a: np.ndarray) -> np.ndarray:
    """Sums over the last axis in the C++ core's order (``detail::pairwise_sum``: 8 running
    sums in blocks of up to 128, halves split at a multiple of 8), so that the sums are the
    core's bit for bit: the mean norm a merged file records is the single-process file's."""
    n = a.shape[-1]
    if n < 8:
        res = np.zeros(a.shape[:-1])
        for i in range(n):
            res = res + a[..., i]
        return res
    if n <= 128:
        r = a[..., 0:8].copy()
        i = 8
        while i < n - n % 8:
            r += a[..., i:i + 8]
            i += 8
        res = ((r[..., 0] + r[..., 1]) + (r[..., 2] + r[..., 3])) + ((r[..., 4] + r[..., 5]) + (r[..., 6] + r[..., 7]))
        for j in range(i, n):
            res = res + a[..., j]
        return res
    half = n // 2
    half -= half % 8
    return pairwise_sum(a[..., :half]) + pairwise_sum(a[..., half:])


def item_norms(rows: np.ndarray) -> np.ndarray:
    """Each row's norm as the core computes it when it writes (float32 rows, squares and their
    pairwise sum in double): what a merge needs to record the single-process mean norm."""
    rows = np.asarray(rows, dtype=np.float32).astype(np.float64)
    return np.sqrt(pairwise_sum(rows * rows))


@dataclass
class ShardRecord:
    """One complete shard: its file (None when every input of the shard was skipped), what
    it holds and the inputs it skipped (``{"id", "path", "reason"}``)."""

    index: int
    source: str  # the input it came from: a tar, an .npy part, or "paths i..j"
    items: int
    file: str | None = None
    bytes: int = 0
    crc32: str | None = None
    norms_file: str | None = None  # the items' norms (float64 .npy): the merged header's mean norm
    norms_crc32: str | None = None
    first_id: str | None = None
    last_id: str | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Manifest:
    """What ``manifest.json`` holds. ``plan`` identifies the run (inputs, shard plan, model,
    dictionary): a resumed run must have the same plan, or its shards would not fit."""

    folder: Path
    plan: dict[str, Any]
    n_shards: int
    dictionary_hash: str
    model: str | None
    shards: list[ShardRecord] = field(default_factory=list)
    complete: bool = False
    writer: str = ""

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST

    @property
    def items(self) -> int:
        return sum(s.items for s in self.shards)

    @property
    def skipped(self) -> list[dict[str, str]]:
        return [s for shard in self.shards for s in shard.skipped]

    def done(self) -> set[int]:
        return {s.index for s in self.shards}

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "writer": self.writer, "plan": self.plan,
                "n_shards": self.n_shards, "complete": self.complete, "model": self.model,
                "dictionary": {"file": DICTIONARY, "hash": self.dictionary_hash},
                "items": self.items, "skipped": len(self.skipped), "errors": ERRORS,
                "shards": [asdict(s) for s in sorted(self.shards, key=lambda s: s.index)]}

    def save(self) -> None:
        """Rewrite manifest.json atomically (temporary file, fsync, rename)."""
        text = json.dumps(self.to_json(), indent=1, ensure_ascii=False)
        _core.atomic_write(str(self.path), text.encode("utf-8", "surrogatepass"))

    def write_errors(self) -> Path:
        """errors.jsonl: one JSON object per skipped input (id, path, reason, shard), atomically."""
        lines = [json.dumps({**s, "shard": shard.index}, ensure_ascii=False)
                 for shard in sorted(self.shards, key=lambda s: s.index) for s in shard.skipped]
        path = self.folder / ERRORS
        _core.atomic_write(str(path), "".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass"))
        return path

    def add(self, record: ShardRecord) -> None:
        """Commit a shard whose file is already in place: listed once, then the manifest saved."""
        self.shards = [s for s in self.shards if s.index != record.index] + [record]
        self.save()

    @classmethod
    def load(cls, path: str | os.PathLike) -> Manifest:
        """Read a manifest; FormatError naming it when it is not one this version reads."""
        path = Path(path)
        try:
            data = json.loads(path.read_bytes().decode("utf-8", "surrogatepass"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"{path}: not a readable smic manifest ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise FormatError(f"{path}: not a smic manifest (no \"format\": \"{FORMAT}\")")
        if data.get("version") != VERSION:
            raise FormatError(f"{path}: manifest version {data.get('version')!r}; this smic-fast reads {VERSION}")
        try:
            shards = [ShardRecord(**s) for s in data["shards"]]
            return cls(folder=path.parent, plan=dict(data["plan"]), n_shards=int(data["n_shards"]),
                       dictionary_hash=str(data["dictionary"]["hash"]), model=data.get("model"), shards=shards,
                       complete=bool(data["complete"]), writer=str(data.get("writer", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"{path}: damaged manifest ({type(exc).__name__}: {exc})") from None

    def check_shard(self, record: ShardRecord) -> Path | None:
        """The shard's file, after checking its size and CRC32 against the manifest (FormatError)."""
        if record.file is None:
            return None
        file = self.folder / record.file
        if not file.is_file():
            raise FormatError(f"{self.path}: shard {record.file} is missing")
        if file.stat().st_size != record.bytes or crc32_of(file) != record.crc32:
            raise FormatError(f"{self.path}: shard {record.file} does not match the manifest (size or CRC32 "
                              "differs: damaged or replaced)")
        if record.norms_file is not None:
            norms = self.folder / record.norms_file
            if not norms.is_file() or crc32_of(norms) != record.norms_crc32:
                raise FormatError(f"{self.path}: {record.norms_file} is missing or does not match the manifest")
        return file

    def dictionary(self, given: Dictionary | str | os.PathLike | None = None) -> Dictionary:
        """The shards' shared dictionary: `given`, else the folder's dictionary.smicd; its hash
        must be the manifest's."""
        if given is None:
            given = self.folder / DICTIONARY
        dictionary = given if isinstance(given, Dictionary) else Dictionary.load(given)
        if dictionary.hash != self.dictionary_hash:
            from ..errors import DictionaryMismatchError
            raise DictionaryMismatchError(f"{self.path}: the shards were coded with dictionary {self.dictionary_hash}, "
                                          f"not {dictionary.hash}")
        return dictionary

    def require_complete(self) -> None:
        if not self.complete or len(self.shards) != self.n_shards:
            raise FormatError(f"{self.path}: incomplete run ({len(self.shards)} of {self.n_shards} shards written); "
                              "run the same command again to resume it")


def _gather(manifest: Manifest, dictionary: Dictionary) -> tuple[list, list[str], list[int] | None, int, list]:
    """Every shard's codes, ids, pixel counts and norms, in shard order (checked against the manifest)."""

    codes: list[tuple[np.ndarray, ...]] = []
    ids: list[str] = []
    pixels: list[int] | None = []
    norms: list[np.ndarray] | None = []
    chunk = 0
    for record in sorted(manifest.shards, key=lambda s: s.index):
        file = manifest.check_shard(record)
        if file is None:
            continue
        shard = Collection(file, dictionary)
        if len(shard) != record.items:
            raise FormatError(f"{manifest.path}: shard {record.file} holds {len(shard)} items, the manifest says "
                              f"{record.items}")
        if shard.residual_step is not None:
            raise FormatError(f"{file}: shards with a refinement layer cannot be merged")
        codes.append(shard._core.codes(0, len(shard)))
        ids += shard._core.ids
        shard_pixels = shard._core.pixels
        known = len(shard_pixels) == len(shard) and all(p is not None for p in shard_pixels)
        pixels = pixels + list(shard_pixels) if pixels is not None and known else None  # all or none
        chunk = chunk or shard._core.chunk_size
        if norms is not None and record.norms_file is not None:
            norms.append(np.load(manifest.folder / record.norms_file, allow_pickle=False))
        else:
            norms = None
    if not ids:
        raise FormatError(f"{manifest.path}: no items in any shard")
    return codes, ids, pixels, chunk, norms


def _complete_run(path: str | os.PathLike, dictionary: Dictionary | str | os.PathLike | None):
    """The manifest at or beside `path` of a run whose shards are all written, and its
    dictionary (FileNotFoundError without a manifest; ValueError for an unfinished run)."""
    found = find_manifest(path)
    if found is None:
        for candidate in (Path(path), Path(path) / MANIFEST):
            if candidate.name == MANIFEST and candidate.is_dir():
                raise IsADirectoryError(errno.EISDIR, f"{candidate}: is a directory, not a file")
        raise FileNotFoundError(f"no {MANIFEST} at {path}")
    manifest = Manifest.load(found)
    manifest.require_complete()
    return manifest, manifest.dictionary(dictionary)


def merge(path: str | os.PathLike, output: str | os.PathLike, dictionary: Dictionary | str | os.PathLike | None = None,
          *, embed_dictionary: bool = False) -> Path:
    """Pack a sharded collection (the manifest, its folder or ``OUT.smic`` of a distributed
    run) into one .smic file, atomically. Only the stored codes are re-packed (no coding):
    the result is byte for byte what ``compress(E, output, dictionary=D)`` writes in one
    process for the same items. With ``embed_dictionary`` the file carries the dictionary
    (readable without the .smicd; then it is not the shared-dictionary file)."""
    from ..version import __version__

    manifest, dictionary = _complete_run(path, dictionary)
    codes, ids, pixels, chunk, norms = _gather(manifest, dictionary)
    # The header's mean norm over all items, summed in the core's order (None: shards without norms).
    mean_norm = None if norms is None else float(pairwise_sum(np.concatenate(norms))) / len(ids)
    joined = tuple(np.ascontiguousarray(np.concatenate([c[f] for c in codes]), dtype=np.int32) for f in range(4))
    # The rows are only read for the cosines the writer returns (ignored here), the mean norm
    # (given) and a refinement layer (refused above): with the codes given, the bytes depend on
    # codes, ids, pixels and options alone. One unit row repeated keeps memory at one block.
    block = np.zeros((min(len(ids), 4096), dictionary.dim), np.float32)
    block[:, 0] = 1.0
    blocks = [block] * (len(ids) // len(block)) + ([block[:len(ids) % len(block)]] if len(ids) % len(block) else [])
    _core.write_collection_streaming(
        os.fspath(output), blocks, dictionary._core, ids, pixels, manifest.model, chunk, None,
        f"smic-fast {__version__}", embed_dictionary, 0, joined, 0, mean_norm=mean_norm)
    return Path(output)


class ShardedCollection:
    """Marker base for :func:`open_sharded`'s result (see there)."""


def open_sharded(path: str | os.PathLike, dictionary: Dictionary | str | os.PathLike | None = None):
    """A sharded collection as one read-only :class:`smic_fast.Collection`: the shards are
    checked (size, CRC32, item counts) and their codes packed into a private temporary file
    (a few bits per item: cheap), so every reader (ids, decoding, search, info) works as on
    one file. ``append`` and ``repack`` refuse: ``smic merge`` it into one file first."""

    manifest, shared = _complete_run(path, dictionary)
    found = manifest.path
    scratch = Path(tempfile.mkdtemp(prefix="smic-sharded-"))
    try:
        merged = merge(found, scratch / "merged.smic", shared)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise

    class _Sharded(Collection, ShardedCollection):
        def append(self, *args: Any, **kwargs: Any) -> dict:  # noqa: D102
            raise ValueError(f"{found.parent} is a sharded collection (read-only): `smic merge` it into one "
                             ".smic file, then append to that")

        def repack(self, *args: Any, **kwargs: Any) -> dict:  # noqa: D102
            raise ValueError(f"{found.parent} is a sharded collection (read-only): `smic merge` packs it into "
                             "one batch of one file")

        def info(self) -> dict:
            info = super().info()
            shard_bytes = sum(s.bytes for s in manifest.shards)
            info.update(path=str(found.parent), manifest=str(found), shards=len(manifest.shards),
                        shard_bytes=shard_bytes, merged_file_bytes=info["file_bytes"])
            return info

    collection = _Sharded(merged, shared)
    collection.manifest = manifest  # type: ignore[attr-defined]
    weakref.finalize(collection, shutil.rmtree, scratch, True)
    return collection
