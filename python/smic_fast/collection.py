"""SMIC collections: many embeddings in one .smic file of a few bits per item.

    info = compress(E, "photos.smic")           # learn a dictionary, code, write atomically
    col = open("photos.smic")                   # len(col), col.ids, col[i], col["id"]
    col.append(E_new, ids=[...])                # new sections; earlier bytes untouched
    col.info()                                  # rates from the bytes on disk

Sections of a collection (docs/format.md): HEAD (JSON), DICT (an embedded .smicd) or DREF
(the SHA-256 of a shared one), then per batch of items (the first compress and each append)
IDS_ (zlib JSON: ids and pixel counts) and ITEM (chunked range-coded items with an offset
table, so one item decodes without the others), and RESD (the residual refinement, residual.py)
when the collection was made with a ``residual_step``.
"""
from __future__ import annotations

import builtins
import json
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._validation import as_count
from .container import Section, append_sections, read_sections, write_sections
from .dictionary import Dictionary, normalize_embeddings
from .errors import DictionaryMismatchError, FormatError
from .residual import ResidualCode, check_step, encode_residual, refine, residual_levels

__all__ = ["compress", "open", "Collection", "COLLECTION_MAGIC"]

COLLECTION_MAGIC = b"\x89SMIC\r\n\x1a"
_ITEM_HEAD = struct.Struct("<III")  # n_items, chunk_size, n_chunks
_MAX_IDS_BYTES = 1 << 30  # an ids section never inflates past this (zlib bombs)
MAX_CHUNK = 1 << 16  # items per chunk, at most
DEFAULT_CHUNK = 256
RESIDUAL_TAG = b"RESD"
RESIDUAL_FORMAT_VERSION = 2  # files with a refinement layer; version-1 readers refuse them clearly


def _version() -> str:
    from . import __version__
    return __version__


def _check_ids(ids: Sequence[str] | None, n: int, start: int, taken: set[str]) -> list[str]:
    ids = [str(start + i) for i in range(n)] if ids is None else builtins.list(ids)
    if len(ids) != n:
        raise ValueError(f"ids has {len(ids)} entries for {n} embeddings")
    for item_id in ids:
        if not isinstance(item_id, str) or not item_id:
            raise ValueError(f"ids must be non-empty strings, got {item_id!r}")
    seen: set[str] = set()
    for item_id in ids:
        if item_id in seen or item_id in taken:
            raise ValueError(f"duplicate item id {item_id!r}")
        seen.add(item_id)
    return ids


def _check_pixels(pixels: Sequence[int] | None, n: int) -> list[int] | None:
    if pixels is None:
        return None
    values = np.asarray(pixels)
    if values.shape != (n,) or values.dtype.kind not in "iu" or (values <= 0).any():
        raise ValueError(f"pixels must be {n} positive integers (each image's pixel count)")
    return [int(v) for v in values]


def _coded_sections(dictionary: Dictionary, symbols, ids: list[str], pixels, chunk_size: int,
                    start: int, residual: tuple[np.ndarray, float] | None = None) -> list[Section]:
    """IDS_ and ITEM sections of one batch of item symbols whose first item is at `start`, and
    its RESD section when `residual` (levels, step) is given."""
    data, offsets = dictionary.encode_items(symbols, chunk_size)
    item_payload = (_ITEM_HEAD.pack(len(symbols), chunk_size, len(offsets) - 1)
                    + np.asarray(offsets, dtype="<u8").tobytes() + data)
    # Default ids ("0", "1", ... by position) are implied, not stored: they would cost bits.
    implied = ids == [str(start + i) for i in range(len(ids))]
    ids_payload = zlib.compress(json.dumps({"ids": None if implied else ids, "pixels": pixels}).encode(), 9)
    sections = [Section(b"IDS_", ids_payload), Section(b"ITEM", item_payload)]
    if residual is not None:
        levels, step = residual
        sections.append(Section(RESIDUAL_TAG, encode_residual(levels, step, chunk_size)))
    return sections


def _batch_sections(dictionary: Dictionary, unit: np.ndarray, ids: list[str], pixels, chunk_size: int,
                    start: int, symbols=None, n_threads=None,
                    residual_step: float | None = None) -> tuple[list[Section], np.ndarray]:
    """IDS_, ITEM (and RESD) sections for one batch; also the cosine of each reconstructed item."""
    if symbols is None:
        symbols = dictionary.items_symbols(unit, n_threads=n_threads)
    decoded = dictionary.reconstruct(symbols)  # what a reader will get, measured as such
    residual = None
    if residual_step is not None:
        levels = residual_levels(unit, decoded, residual_step)
        decoded = refine(decoded, levels, residual_step)
        residual = (levels, residual_step)
    cosine = np.sum(decoded.astype(np.float64) * unit, axis=1)
    return _coded_sections(dictionary, symbols, ids, pixels, chunk_size, start, residual), cosine


def _summary(cosine: np.ndarray) -> dict:
    return {"cosine_mean": float(np.mean(cosine)), "cosine_p5": float(np.percentile(cosine, 5))}


def compress(
    E: np.ndarray, path: str | os.PathLike, n_atoms: int | None = None, n_nonzero: int | None = None, *,
    ids: Sequence[str] | None = None, pixels: Sequence[int] | None = None,
    dictionary: Dictionary | str | os.PathLike | None = None, quality: str = "medium",
    step: float | None = None, rd_lambda: float | None = None, layout: str = "smic",
    paper_bits: int = 8, precision: str = "float16", n_iter: int = 10, seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK, model: str | None = None, n_threads: int | None = None,
    progress: Callable[[int, float], object] | None = None, residual_step: float | None = None,
) -> dict:
    """Compress (N, d) embeddings into one .smic file; returns :meth:`Collection.info` plus the
    mean and 5th-percentile cosine similarity between E and its reconstruction.

    Args:
        E: embeddings, one row per image (normalised inside; fidelity is a cosine).
        path: output file, written atomically (no partial file on failure or Ctrl-C).
        n_atoms, n_nonzero, quality, step, rd_lambda, layout, paper_bits, precision, n_iter,
            seed, progress: dictionary learning and coding; see :meth:`Dictionary.fit`.
            Ignored when ``dictionary`` is given (its own settings apply).
        ids: item names (default "0".."N-1"); unique.
        pixels: each image's pixel count, for bits-per-pixel figures.
        dictionary: a shared :class:`Dictionary` (or its .smicd path): the file then stores only
            its hash and pays no dictionary bits.
        chunk_size: items per independently decodable chunk (random access granularity).
        model: name of the CLIP model that made E, recorded in the header.
        residual_step: add a refinement layer (smic_fast.residual): each item's residual after
            its atoms, quantised with this step (in [1e-4, 1]) and range-coded. For cosines above
            what the atoms reach (about 0.97), at hundreds of bits per item; every later append
            uses the same step. None (default): atoms only, a handful of bits per item.
    """
    residual_step = None if residual_step is None else check_step(residual_step)
    unit, norms = normalize_embeddings(E)
    chunk_size = as_count(chunk_size, "chunk_size", minimum=1)
    if chunk_size > MAX_CHUNK:
        raise ValueError(f"chunk_size must be <= {MAX_CHUNK}, got {chunk_size}")
    ids_list = _check_ids(ids, len(unit), 0, set())
    pixels_list = _check_pixels(pixels, len(unit))
    symbols = None
    if dictionary is None:
        dictionary, symbols, _ = Dictionary._fit(
            unit, n_atoms, n_nonzero, quality=quality, step=step, rd_lambda=rd_lambda, layout=layout,
            paper_bits=paper_bits, precision=precision, n_iter=n_iter, seed=seed,
            n_threads=n_threads, progress=progress)
        dict_section = Section(b"DICT", dictionary.to_bytes())
    else:
        if not isinstance(dictionary, Dictionary):
            dictionary = Dictionary.load(dictionary)
        if dictionary.dim != unit.shape[1]:
            raise ValueError(f"E has dimension {unit.shape[1]} but the dictionary has {dictionary.dim}")
        dict_section = Section(b"DREF", bytes.fromhex(dictionary.hash))
    header = {"kind": "smic-collection", "dim": int(unit.shape[1]), "model": model,
              "mean_norm": float(np.mean(norms)), "writer": f"smic-fast {_version()}"}
    if residual_step is not None:
        header["residual_step"] = residual_step
    batch, cosine = _batch_sections(dictionary, unit, ids_list, pixels_list, chunk_size, 0, symbols, n_threads,
                                    residual_step)
    write_sections(path, COLLECTION_MAGIC,
                   [Section(b"HEAD", json.dumps(header, sort_keys=True).encode()), dict_section, *batch],
                   version=1 if residual_step is None else RESIDUAL_FORMAT_VERSION)
    info = open(path, dictionary=dictionary).info()
    info.update(_summary(cosine))
    return info


@dataclass
class _Batch:
    start: int
    n_items: int
    chunk_size: int
    offsets: np.ndarray
    data: bytes
    section_bytes: int
    residual: ResidualCode | None = None


class Collection:
    """A .smic file opened for reading and appending. Items decode lazily, one chunk at a time."""

    def __init__(self, path: str | os.PathLike, dictionary: Dictionary | str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        if dictionary is not None and not isinstance(dictionary, Dictionary):
            dictionary = Dictionary.load(dictionary)
        self._given_dictionary = dictionary
        self._load()

    def _load(self) -> None:
        """Parse the file; any inconsistency is a FormatError naming the file."""
        try:
            self._parse()
        except FormatError:
            raise
        except (ValueError, OverflowError, MemoryError) as error:
            raise FormatError(f"{self.path}: invalid content ({error})") from error

    def _parse(self) -> None:
        name = str(self.path)
        sections = read_sections(self.path, COLLECTION_MAGIC, kind="smic collection")
        if len(sections) < 2 or sections[0].tag != b"HEAD":
            raise FormatError(f"{name}: the first section must be HEAD")
        try:
            self.header = json.loads(sections[0].payload)
            self.dim = int(self.header["dim"])
        except (ValueError, KeyError, TypeError) as error:
            raise FormatError(f"{name}: unreadable header ({error})") from error
        self.residual_step = self.header.get("residual_step")  # a dict: self.header["dim"] was read
        if self.residual_step is not None:
            try:
                self.residual_step = check_step(self.residual_step)
            except ValueError as error:
                raise FormatError(f"{name}: bad header ({error})") from error
        self.section_bytes = {"header": 16 + 16 + len(sections[0].payload), "dictionary": 0,
                              "ids": 0, "items": 0, "residual": 0}
        tag, payload = sections[1].tag, sections[1].payload
        self.section_bytes["dictionary"] = 16 + len(payload)
        if tag == b"DICT":
            self.dictionary = Dictionary.from_bytes(payload, f"{name} (embedded dictionary)")
            self.shared_dictionary = False
        elif tag == b"DREF":
            if len(payload) != 32:
                raise FormatError(f"{name}: dictionary reference must be 32 bytes")
            wanted = payload.hex()
            given = self._given_dictionary
            if given is None:
                raise DictionaryMismatchError(
                    f"{name} was coded with shared dictionary {wanted}; pass it: "
                    f"smic_fast.open(path, dictionary='....smicd')")
            if given.hash != wanted:
                raise DictionaryMismatchError(
                    f"{name} needs dictionary {wanted}, but the one given has hash {given.hash}")
            self.dictionary = given
            self.shared_dictionary = True
        else:
            raise FormatError(f"{name}: second section must be DICT or DREF, found {tag!r}")
        if self.dictionary.dim != self.dim:
            raise FormatError(f"{name}: header dimension {self.dim} != dictionary dimension {self.dictionary.dim}")
        self._batches: list[_Batch] = []
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self._pixels: list[int | None] = []
        for group in self._batch_groups(sections):
            if [s.tag for s in group] != self._batch_tags:
                raise FormatError(f"{name}: expected sections {b' '.join(self._batch_tags).decode()}, "
                                  f"found {b' '.join(s.tag for s in group)!r}")
            self._read_batch(name, group[0].payload, group[1].payload,
                             group[2].payload if len(group) > 2 else None)

    @property
    def _batch_tags(self) -> list[bytes]:
        """The sections of one batch, in order."""
        return [b"IDS_", b"ITEM"] + ([RESIDUAL_TAG] if self.residual_step is not None else [])

    def _batch_groups(self, sections: list[Section]) -> list[list[Section]]:
        """The sections after HEAD and the dictionary, one list per batch."""
        rest, size = sections[2:], len(self._batch_tags)
        if len(rest) % size:
            raise FormatError(f"{self.path}: a batch with missing sections (truncated?)")
        return [rest[i:i + size] for i in range(0, len(rest), size)]

    def _read_batch(self, name: str, ids_payload: bytes, item_payload: bytes,
                    residual_payload: bytes | None = None) -> None:
        try:
            inflater = zlib.decompressobj()
            text = inflater.decompress(ids_payload, _MAX_IDS_BYTES)
            if inflater.unconsumed_tail:
                raise ValueError(f"more than {_MAX_IDS_BYTES} bytes of ids")
            meta = json.loads(text)
            ids, pixels = meta["ids"], meta["pixels"]
        except (zlib.error, ValueError, KeyError, TypeError) as error:
            raise FormatError(f"{name}: unreadable ids section ({error})") from error
        if len(item_payload) < _ITEM_HEAD.size:
            raise FormatError(f"{name}: truncated items section")
        n_items, chunk_size, n_chunks = _ITEM_HEAD.unpack_from(item_payload, 0)
        table_end = _ITEM_HEAD.size + 8 * (n_chunks + 1)
        if (not 1 <= chunk_size <= MAX_CHUNK or n_chunks != -(-n_items // chunk_size)
                or len(item_payload) < table_end):
            raise FormatError(f"{name}: inconsistent items section (n={n_items}, chunks={n_chunks})")
        if ids is None:  # implied ids: positions
            ids = [str(len(self._ids) + i) for i in range(n_items)]
        if (not isinstance(ids, builtins.list) or len(ids) != n_items
                or not all(isinstance(i, str) for i in ids)
                or (pixels is not None and (not isinstance(pixels, builtins.list) or len(pixels) != n_items
                                            or not all(type(p) is int and p > 0 for p in pixels)))):
            raise FormatError(f"{name}: inconsistent items section (n={n_items}, chunks={n_chunks})")
        offsets = np.frombuffer(item_payload, dtype="<u8", count=n_chunks + 1, offset=_ITEM_HEAD.size)
        data = item_payload[table_end:]
        if offsets[0] != 0 or offsets[-1] != len(data) or (np.diff(offsets.astype(np.int64)) < 0).any():
            raise FormatError(f"{name}: corrupt chunk offsets in items section")
        if len(set(ids)) != len(ids) or any(i in self._index for i in ids):
            raise FormatError(f"{name}: duplicate item ids")
        residual = None
        if residual_payload is not None:
            residual = ResidualCode.parse(residual_payload, name)
            if (residual.n_items, residual.dim, residual.chunk_size, residual.step) != (
                    n_items, self.dim, chunk_size, self.residual_step):
                raise FormatError(f"{name}: residual section does not match its items section")
            self.section_bytes["residual"] += 16 + len(residual_payload)
        self._index.update((item_id, len(self._ids) + k) for k, item_id in enumerate(ids))
        self._batches.append(_Batch(len(self._ids), n_items, chunk_size, offsets.astype(np.uint64), data,
                                    16 + len(item_payload), residual))
        self._ids.extend(ids)
        self._pixels.extend(pixels if pixels is not None else [None] * n_items)
        self.section_bytes["ids"] += 16 + len(ids_payload)
        self.section_bytes["items"] += 16 + len(item_payload)

    # ---------------------------------------------------------------- reading
    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        return builtins.list(self._ids)

    def _decode(self, batch: _Batch, start: int, stop: int) -> np.ndarray:
        try:
            symbols = self.dictionary.decode_items(batch.data, batch.offsets, batch.n_items,
                                                   batch.chunk_size, start, stop)
        except FormatError:
            raise
        except ValueError as error:  # DecodeError included
            raise FormatError(f"{self.path}: corrupt items ({error})") from error
        decoded = self.dictionary.reconstruct(symbols)
        if batch.residual is not None:
            levels = batch.residual.levels(start, stop, str(self.path))
            decoded = refine(decoded, levels, batch.residual.step)
        return decoded

    def _symbols(self) -> list:
        """Decoded item symbols of every batch (for format tests)."""
        return [self.dictionary.decode_items(b.data, b.offsets, b.n_items, b.chunk_size) for b in self._batches]

    def _locate(self, key: int | str) -> tuple[_Batch, int]:
        """The batch holding item `key` (position or id) and the item's place in it."""
        if isinstance(key, str):
            if key not in self._index:
                raise KeyError(key)
            position = self._index[key]
        else:
            position = int(key)
            if position < 0:
                position += len(self)
            if not 0 <= position < len(self):
                raise IndexError(f"item {key} out of range for {len(self)} items")
        for batch in self._batches:
            if position < batch.start + batch.n_items:
                return batch, position - batch.start
        raise IndexError(key)  # unreachable

    def __getitem__(self, key: int | str) -> np.ndarray:
        """The reconstructed (d,) unit embedding of item `key` (position or id)."""
        batch, local = self._locate(key)
        return self._decode(batch, local, local + 1)[0]

    def item_symbols(self, key: int | str):
        """The decoded code of item `key` (a one-row :class:`smic_fast.codec.ItemSymbols`: its
        atoms and quantised coefficients), without reconstructing it; see smic_fast.atoms."""
        batch, local = self._locate(key)
        try:
            return self.dictionary.decode_items(batch.data, batch.offsets, batch.n_items, batch.chunk_size,
                                                local, local + 1)
        except FormatError:
            raise
        except ValueError as error:  # DecodeError included
            raise FormatError(f"{self.path}: corrupt items ({error})") from error

    def embeddings(self) -> np.ndarray:
        """All reconstructed embeddings, (N, d) float32 unit rows, in item order."""
        parts = [self._decode(b, 0, b.n_items) for b in self._batches]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    # ---------------------------------------------------------------- writing
    def append(self, E: np.ndarray, ids: Sequence[str] | None = None, pixels: Sequence[int] | None = None,
               *, replace: bool = False, chunk_size: int | None = None, n_threads: int | None = None) -> dict:
        """Code new embeddings with the stored dictionary and append them as new sections.

        Earlier items are untouched (their bytes are copied unchanged); the write is atomic.
        New items get the collection's residual refinement, if it has one (same step).
        An id already in the collection is an error, unless `replace`: its old item is then
        dropped (the other items of its batch are re-packed from their decoded symbols, so
        they decode exactly as before) and the new one appended.
        Returns the new :meth:`info` with the cosine summary of the appended items.
        """
        unit, _ = normalize_embeddings(E, dim=self.dim)
        replaced = set(self._ids) & set(ids or ()) if replace else set()
        ids_list = _check_ids(ids, len(unit), len(self) - len(replaced), set(self._ids) - replaced)
        pixels_list = _check_pixels(pixels, len(unit))
        chunk = self._batches[0].chunk_size if chunk_size is None and self._batches else (chunk_size or DEFAULT_CHUNK)
        chunk = as_count(chunk, "chunk_size", minimum=1)
        if not replaced:
            batch, cosine = _batch_sections(self.dictionary, unit, ids_list, pixels_list, chunk, len(self),
                                            n_threads=n_threads, residual_step=self.residual_step)
            append_sections(self.path, COLLECTION_MAGIC, batch)
        else:
            kept = self._sections_without(replaced)
            start = len(self) - len(replaced)
            batch, cosine = _batch_sections(self.dictionary, unit, ids_list, pixels_list, chunk, start,
                                            n_threads=n_threads, residual_step=self.residual_step)
            write_sections(self.path, COLLECTION_MAGIC, [*kept, *batch], version=self._format_version)
        self._load()
        info = self.info()
        info.update(_summary(cosine))
        return info

    @property
    def _format_version(self) -> int:
        return 1 if self.residual_step is None else RESIDUAL_FORMAT_VERSION

    def _sections_without(self, dropped: set[str]) -> list[Section]:
        """HEAD, dictionary and batch sections of this file with the items `dropped` removed;
        untouched batches keep their bytes, the others are re-packed from their symbols (and
        residual levels), so every kept item decodes exactly as before."""
        sections = read_sections(self.path, COLLECTION_MAGIC, kind="smic collection")
        out = sections[:2]
        position = 0
        for batch, group in zip(self._batches, self._batch_groups(sections)):
            ids = self._ids[batch.start:batch.start + batch.n_items]
            keep = np.array([i not in dropped for i in ids], dtype=bool)
            # Implied ids are positions: an untouched batch keeps its bytes only if nothing before moved.
            if keep.all() and position == batch.start:
                out += group
            elif keep.any():
                rows = np.flatnonzero(keep)
                symbols = self.dictionary.decode_items(batch.data, batch.offsets, batch.n_items,
                                                       batch.chunk_size).take(rows)
                residual = None
                if batch.residual is not None:
                    residual = (batch.residual.levels(name=str(self.path))[rows], batch.residual.step)
                pixels = [self._pixels[batch.start + r] for r in rows]
                out += _coded_sections(self.dictionary, symbols, [ids[r] for r in rows],
                                       None if None in pixels else pixels, batch.chunk_size, position, residual)
            position += int(keep.sum())
        return out

    # ---------------------------------------------------------------- rates
    def info(self) -> dict:
        """Rates from the bytes on disk, and what the file holds."""
        n = len(self)
        size = self.path.stat().st_size
        item_bits = 8 * (self.section_bytes["items"] + self.section_bytes["residual"])  # the items' own bytes
        pixels = [p for p in self._pixels if p is not None]
        info = {
            "path": str(self.path), "items": n, "dim": self.dim, "model": self.header.get("model"),
            "n_atoms": self.dictionary.n_atoms, "n_nonzero": self.dictionary.params.s_max,
            "layout": self.dictionary.params.layout, "precision": self.dictionary.precision,
            "shared_dictionary": self.shared_dictionary, "dictionary_hash": self.dictionary.hash,
            "file_bytes": size, "section_bytes": dict(self.section_bytes),
            "bits_per_item": 8 * size / n if n else None,
            "marginal_bits_per_item": item_bits / n if n else None,
            "dictionary_share": self.section_bytes["dictionary"] / size,
            "format_version": self._format_version, "residual_step": self.residual_step,
        }
        if pixels and len(pixels) == n:
            per_item_total = 8 * size / n
            info["bits_per_pixel"] = float(np.mean([per_item_total / p for p in pixels]))
            info["marginal_bits_per_pixel"] = float(np.mean([(item_bits / n) / p for p in pixels]))
        return info


def open(path: str | os.PathLike, dictionary: Dictionary | str | os.PathLike | None = None) -> Collection:  # noqa: A001
    """Open a .smic collection. A collection coded with a shared dictionary needs it passed as
    ``dictionary`` (a :class:`Dictionary` or the path of its .smicd file).

    Raises:
        FileNotFoundError, FormatError (damaged, not a collection, newer version),
        DictionaryMismatchError (the shared dictionary is missing or another one).
    """
    return Collection(path, dictionary)
