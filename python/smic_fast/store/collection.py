"""SMIC collections: many embeddings in one .smic file of a few bits per item.

    info = compress(E, "photos.smic")           # learn a dictionary, code, write atomically
    col = open("photos.smic")                   # len(col), col.ids, col[i], col["id"]
    col.append(E_new, ids=[...])                # new sections; earlier bytes untouched
    col.info()                                  # rates from the bytes on disk

The file format (docs/format.md: HEAD, DICT or DREF, then IDS_ / ITEM / RESD per batch) is
read and written by the C++ core (``smic/collection.hpp``), the same code C++ and C programs
link. This module keeps what is Python's: argument checks, dictionary learning with progress,
and the figures of :meth:`Collection.info`.
"""
from __future__ import annotations

import builtins
import json
import math
import numbers
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import _core
from .._validation import as_count, as_float32_matrix, as_threads
from ..coding.codec import ItemSymbols
from ..coding.dictionary import (LEARN_SAMPLE, Dictionary, embedding_blocks, gather_rows, learning_sample,
                                 preset_chunk_size, preset_n_atoms)
from ..coding.transform import learn_transform

if TYPE_CHECKING:  # pragma: no cover
    from ..query.search import SearchResult

__all__ = ["compress", "Collection", "COLLECTION_MAGIC", "MIN_RESIDUAL_STEP"]

COLLECTION_MAGIC = b"\x89SMIC\r\n\x1a"
MAX_CHUNK = 1 << 16  # items per chunk, at most
DEFAULT_CHUNK = 256
MIN_RESIDUAL_STEP = 1e-4  # finer refinement steps would only code float noise
STREAM_BATCH = 4096  # rows read and coded at a time by compress, decoded at a time by embeddings


def _version() -> str:
    from ..version import __version__
    return __version__


def check_residual_step(step: object) -> float:
    """The refinement step as a float in [MIN_RESIDUAL_STEP, 1], or ValueError."""
    if isinstance(step, bool) or not isinstance(step, numbers.Real):
        raise ValueError(f"residual_step must be a number, got {step!r}")
    value = float(step)
    if not (math.isfinite(value) and MIN_RESIDUAL_STEP <= value <= 1.0):
        raise ValueError(f"residual_step must be in [{MIN_RESIDUAL_STEP:g}, 1], got {step!r}")
    return value


def _check_ids(ids: Sequence[str] | None, n: int, start: int, taken: set[str]) -> list[str] | None:
    """The ids as a list (None: positions start, start + 1, ...), or ValueError."""
    if ids is None:
        clash = next((str(start + i) for i in range(n) if str(start + i) in taken), None)
        if clash is not None:
            raise ValueError(f"duplicate item id {clash!r}")
        return None
    ids = builtins.list(ids)
    if len(ids) != n:
        raise ValueError(f"ids has {len(ids)} entries for {n} embeddings")
    for item_id in ids:
        if not isinstance(item_id, str) or not item_id:
            raise ValueError(f"ids must be non-empty strings, got {item_id!r}")
        if "\0" in item_id:
            # C readers (smic.h) take ids as NUL-terminated strings: "a\0x" would read as "a".
            raise ValueError(f"item id {item_id!r} contains a NUL byte: ids must not (C readers end an id there)")
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


def _check_chunk(chunk_size: object) -> int:
    chunk_size = as_count(chunk_size, "chunk_size", minimum=1)
    if chunk_size > MAX_CHUNK:
        raise ValueError(f"chunk_size must be <= {MAX_CHUNK}, got {chunk_size}")
    return chunk_size


def _checked_embeddings(E: object, dim: int | None = None) -> np.ndarray:
    """E as C-contiguous float32 rows (the core normalises them), or ValueError."""
    raw = as_float32_matrix(E, "E", columns=dim)
    if raw.shape[0] == 0:
        raise ValueError("the embeddings (E) have no rows (N = 0): nothing to compress")
    return raw


#: values of compress(index_model=...)
INDEX_MODELS = ("auto", "order0", "remaining")


def _summary(cosine: np.ndarray) -> dict:
    return {"cosine_mean": float(np.mean(cosine)), "cosine_p5": float(np.percentile(cosine, 5))}


def compress(
    E: np.ndarray | Sequence[np.ndarray], path: str | os.PathLike, n_atoms: int | None = None,
    n_nonzero: int | None = None, *,
    ids: Sequence[str] | None = None, pixels: Sequence[int] | None = None,
    dictionary: Dictionary | str | os.PathLike | None = None, quality: str = "medium",
    step: float | None = None, rd_lambda: float | None = None, layout: str = "smic",
    paper_bits: int = 8, precision: str = "float16", n_iter: int = 10, seed: int = 0,
    chunk_size: int | None = None, model: str | None = None, n_threads: int | None = None,
    progress: Callable[[int, float], object] | None = None, residual_step: float | None = None,
    sample_size: int | None = LEARN_SAMPLE, batch_size: int = STREAM_BATCH, learn: str | None = None,
    index_model: str = "auto", transform: bool = False,
) -> dict:
    """Compress (N, d) embeddings into one .smic file; returns :meth:`Collection.info` plus the
    mean and 5th-percentile cosine similarity between E and its reconstruction.

    Memory stays bounded by a batch, not by N: E is read ``batch_size`` rows at a time, so a
    numpy memory map (``np.load(path, mmap_mode="r")``) is never loaded whole; what is kept per
    item is its norm, its cosine and its coded bytes (tens of bytes). Learning a dictionary
    looks at ``sample_size`` rows at most (docs: :func:`smic_fast.coding.dictionary.learning_sample`).

    Args:
        E: embeddings, one row per image (normalised inside; fidelity is a cosine): an (N, d)
            float16, float32 or float64 array (memory maps welcome), or a list of such arrays
            stacked in order. NaN or infinity anywhere is a ValueError naming the row; nothing
            is written then.
        path: output file, written atomically (no partial file on failure or Ctrl-C).
        n_atoms, n_nonzero, quality, step, rd_lambda, layout, paper_bits, precision, n_iter,
            seed, progress, learn: dictionary learning and coding; see :meth:`Dictionary.fit`
            (``quality`` picks the sparsity, step, rd_lambda, the largest K and what the atoms
            are learned for together; "low" lands at a few bits per item).
            Ignored when ``dictionary`` is given (its own settings apply).
        ids: item names (default "0".."N-1"); unique.
        pixels: each image's pixel count, for bits-per-pixel figures.
        dictionary: a shared :class:`Dictionary` (or its .smicd path): the file then stores only
            its hash and pays no dictionary bits.
        chunk_size: items per independently decodable chunk (random access granularity).
            Default: the quality preset's when the dictionary is learned here (4096 for
            "low", where each chunk's 16 bytes of framing would be 0.5 bits per item), else
            256.
        model: name of the CLIP model that made E, recorded in the header.
        residual_step: add a refinement layer: each item's residual after its atoms, quantised
            with this step (in [1e-4, 1]) and range-coded. For cosines above what the atoms
            reach (about 0.97), at hundreds of bits per item; every later append uses the same
            step. None (default): atoms only, a handful of bits per item.
        sample_size: learn the dictionary (atoms and tables) on at most this many rows, a
            uniform sample drawn with ``seed`` when N is larger (None: all rows). With
            N <= sample_size the file is what learning on all rows gives.
        batch_size: rows read and coded at a time (rounded up to whole chunks); the file does
            not depend on it.
        index_model: how each item's other atoms are coded: ``"order0"`` (one index table, as
            files of format versions 1 and 2), ``"remaining"`` (the table of the smallest of the
            atoms still to code, derived from the index table: no extra bytes; format version
            3), or ``"auto"`` (default): whichever gives the smaller file. Every later append
            uses the collection's model.
        transform: with a dictionary learned here and a ``residual_step``, learn a
            transform-coded refinement layer with it on the same rows
            (:func:`smic_fast.coding.transform.learn_transform`; format version 4): each residual is
            coded in its class's principal axes instead of with one table. The file then
            carries the transform (about 2 x 16 x d² bytes: 4.7 MB at d = 384), which pays
            only in large collections; share it in a .smicd instead where several collections
            use it. A given ``dictionary`` codes with the transform it carries, if any.
    """
    residual_step = None if residual_step is None else check_residual_step(residual_step)
    if transform and (dictionary is not None or residual_step is None):
        raise ValueError("transform=True learns a refinement layer with a dictionary learned here: it needs a "
                         "residual_step and no dictionary (a given dictionary codes with the transform it carries)")
    if index_model not in INDEX_MODELS:  # before learning: a typo should not cost a K-SVD
        raise ValueError(f"index_model must be one of {INDEX_MODELS}, got {index_model!r}")
    blocks = embedding_blocks(E)
    n_items, dim = sum(b.shape[0] for b in blocks), blocks[0].shape[1]
    if chunk_size is None:
        preset_chunk = preset_chunk_size(quality) if dictionary is None else None
        chunk_size = DEFAULT_CHUNK if preset_chunk is None else preset_chunk
    chunk_size = _check_chunk(chunk_size)
    batch_size = as_count(batch_size, "batch_size", minimum=1)
    ids_list = _check_ids(ids, n_items, 0, set())
    pixels_list = _check_pixels(pixels, n_items)
    symbols = None
    embed = dictionary is None
    if dictionary is None:
        rows = learning_sample(n_items, sample_size, seed)
        k = preset_n_atoms(n_items, quality) if n_atoms is None else as_count(n_atoms, "n_atoms", minimum=1)
        if rows is not None and k > len(rows):
            raise ValueError(f"n_atoms ({k}) must be <= sample_size ({len(rows)}), the rows learned on")
        # twice: the rows normalised twice, as compress always did (here, then in _fit): with
        # N <= sample_size the file is byte for byte the earlier one.
        dictionary, symbols, _, _ = Dictionary._fit(
            blocks, k, n_nonzero, quality=quality, step=step, rd_lambda=rd_lambda, layout=layout,
            paper_bits=paper_bits, precision=precision, n_iter=n_iter, seed=seed, n_threads=n_threads,
            progress=progress, sample_size=sample_size, twice=True, learn=learn)
        if transform:
            dictionary = learn_transform(dictionary, gather_rows(blocks, rows))
            symbols = None  # the same atoms and symbols; coded again in the streaming pass
        if rows is not None:
            symbols = None  # the sample's symbols: every item is coded in the streaming pass
    else:
        if not isinstance(dictionary, Dictionary):
            dictionary = Dictionary.load(dictionary)
        if dictionary.dim != dim:
            raise ValueError(f"the embeddings (E) have dimension {dim} but the dictionary has {dictionary.dim}")
    codes = None if symbols is None else tuple(
        np.ascontiguousarray(getattr(symbols, f), dtype=np.int32)
        for f in ("counts", "first", "rest_index", "rest_level"))
    del symbols
    cosine = _core.write_collection_streaming(
        os.fspath(path), blocks, dictionary._core, ids_list, pixels_list, model, chunk_size,
        residual_step, f"smic-fast {_version()}", embed, _threads(n_threads), codes, batch_size,
        index_model)
    del codes
    info = Collection(path, dictionary).info()
    info.update(_summary(cosine))
    return info


def _threads(n_threads: int | None) -> int:
    return 0 if n_threads is None else as_threads(n_threads)


class Collection:
    """A .smic file opened for reading and appending. Items decode lazily, one chunk at a time."""

    def __init__(self, path: str | os.PathLike, dictionary: Dictionary | str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        if dictionary is not None and not isinstance(dictionary, Dictionary):
            dictionary = Dictionary.load(dictionary)
        self._given_dictionary = dictionary
        self._load()

    def _load(self) -> None:
        """Parse the file (in the core); any inconsistency is a FormatError naming the file."""
        given = self._given_dictionary
        self._core = _core.Collection.open(os.fspath(self.path), None if given is None else given._core)
        self.header: dict = json.loads(self._core.header_json)
        self.dim: int = self._core.dim
        self.residual_step: float | None = self._core.residual_step
        self.shared_dictionary: bool = self._core.shared_dictionary
        self.dictionary = given if self.shared_dictionary else Dictionary._from_core(self._core.dictionary)
        self.section_bytes: dict[str, int] = self._core.section_bytes
        self._id_list: list[str] | None = None  # built on first use: 1M ids are ~60 MB of str

    # ---------------------------------------------------------------- reading
    def __len__(self) -> int:
        return len(self._core)

    @property
    def _ids(self) -> list[str]:
        if self._id_list is None:
            self._id_list = self._core.ids
        return self._id_list

    @property
    def ids(self) -> list[str]:
        return builtins.list(self._ids)

    def _position(self, key: int | str) -> int:
        if isinstance(key, str):
            position = self._core.find(key)
            if position is None:
                raise KeyError(key)
            return position
        position = int(key)
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError(f"item {key} out of range for {len(self)} items")
        return position

    def __getitem__(self, key: int | str | slice) -> np.ndarray:
        """The reconstructed (d,) unit embedding of item `key` (position or id), or the
        (n, d) embeddings of a slice of positions (only the chunks holding them are decoded)."""
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self._core.decode(start, max(start, stop))
            rows = range(start, stop, step)
            if not rows:
                return np.zeros((0, self.dim), np.float32)
            lo, hi = min(rows), max(rows) + 1
            return self._core.decode(lo, hi)[np.asarray(rows) - lo]
        position = self._position(key)
        return self._core.decode(position, position + 1)[0]

    def item_symbols(self, key: int | str) -> ItemSymbols:
        """The decoded code of item `key` (a one-row :class:`smic_fast.coding.codec.ItemSymbols`: its
        atoms and quantised coefficients), without reconstructing it; see smic_fast.query.atoms."""
        position = self._position(key)
        return ItemSymbols(*self._core.codes(position, position + 1))

    def _symbols(self) -> list[ItemSymbols]:
        """Decoded item symbols of every batch (for format tests)."""
        out, start = [], 0
        for size in self._batch_sizes():
            out.append(ItemSymbols(*self._core.codes(start, start + size)))
            start += size
        return out

    def _batch_sizes(self) -> list[int]:
        """Items per batch, from the ITEM sections' headers (n_items)."""
        return self._core.batch_sizes

    def embeddings(self, out: np.ndarray | None = None, *, batch_size: int = STREAM_BATCH) -> np.ndarray:
        """All reconstructed embeddings, (N, d) unit rows, in item order.

        Decoded ``batch_size`` items at a time into ``out`` (default: a new float32 array), so
        the memory beyond the result is one batch. ``out`` may be any writeable (N, d) float
        array, a memory map included (``np.lib.format.open_memmap``): float32 C-contiguous
        arrays are decoded into directly, others receive each batch converted. Returns ``out``.
        """
        batch_size = as_count(batch_size, "batch_size", minimum=1)
        n, d = len(self), self.dim
        if out is None:
            out = np.empty((n, d), dtype=np.float32)
        elif not isinstance(out, np.ndarray) or out.shape != (n, d) or out.dtype.kind != "f":
            raise ValueError(f"out must be a float array of shape ({n}, {d}), got "
                             f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
        elif not out.flags.writeable:
            raise ValueError("out must be writeable")
        direct = out.dtype == np.float32 and out.flags.c_contiguous
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            if direct:
                self._core.decode_into(start, stop, out[start:stop])
            else:
                out[start:stop] = self._core.decode(start, stop)
        return out

    def iter_batches(self, batch_size: int = STREAM_BATCH) -> Iterator[tuple[list[str], np.ndarray]]:
        """Stream the collection: ``(ids, embeddings)`` for ``batch_size`` items at a time, in
        item order, embeddings a fresh (n, d) float32 array of unit rows (the last batch may
        be shorter). Memory stays one batch, whatever the collection's size; the batches
        concatenated are :meth:`embeddings` bit for bit.

            for ids, E in col.iter_batches(10_000):
                index.add_with_ids(E, ids)
        """
        batch_size = as_count(batch_size, "batch_size", minimum=1)
        for start in range(0, len(self), batch_size):
            stop = min(len(self), start + batch_size)
            yield self._core.ids_range(start, stop), self._core.decode(start, stop)

    # ---------------------------------------------------------------- writing
    def append(self, E: np.ndarray, ids: Sequence[str] | None = None, pixels: Sequence[int] | None = None,
               *, replace: bool = False, chunk_size: int | None = None, n_threads: int | None = None) -> dict:
        """Code new embeddings with the stored dictionary and append them as a new batch.

        Without ``replace`` the batch is written in place at the end of the file, in time
        proportional to the batch, not to the file: its sections go after the committed ones,
        are synced, and only then does the file's committed section count (in its preamble)
        take them in. A failed or killed append leaves every earlier item readable and
        unchanged (docs/format.md, "Appends"). Each append costs its own section headers; after
        many small ones, :meth:`repack` merges them into one batch.
        New items get the collection's residual refinement, if it has one (same step).
        An id already in the collection is an error, unless `replace`: its old item is then
        dropped (the other items of its batch are re-packed from their decoded symbols, so
        they decode exactly as before) and the new one appended; that rewrites the file
        atomically (time proportional to the file).
        Returns the new :meth:`info` with the cosine summary of the appended items.
        """
        raw = _checked_embeddings(E, dim=self.dim)
        pixels_list = _check_pixels(pixels, len(raw))
        chunk = 0 if chunk_size is None else _check_chunk(chunk_size)
        if not replace:
            # Types and duplicates within the batch here; against the collection in the core,
            # through its index (no set of every id).
            ids_list = _check_ids(ids, len(raw), len(self), set())
            cosine = self._core.append_in_place(raw, ids_list, pixels_list, chunk, _threads(n_threads))
            self.section_bytes = self._core.section_bytes
            if self._id_list is not None:
                self._id_list += ids_list if ids_list is not None else [
                    str(i) for i in range(len(self._id_list), len(self))]
        else:
            replaced = set(self._ids) & set(ids or ())
            ids_list = _check_ids(ids, len(raw), len(self) - len(replaced), set(self._ids) - replaced)
            given = self._given_dictionary
            cosine = _core.append_collection(
                os.fspath(self.path), raw, ids_list, pixels_list,
                True, chunk, None if given is None else given._core, _threads(n_threads))
            self._load()
        info = self.info()
        info.update(_summary(cosine))
        return info

    def repack(self, n_threads: int | None = None) -> dict:
        """Rewrite the file with all its batches merged into one, atomically: after many small
        appends, the rate per item returns to that of one batch (no section headers, offsets
        and coder flushes per append). Every item keeps its id and decodes to exactly the same
        embedding. Returns the new :meth:`info`."""
        given = self._given_dictionary
        _core.repack_collection(os.fspath(self.path), None if given is None else given._core, _threads(n_threads))
        self._load()
        return self.info()

    # ---------------------------------------------------------------- search
    def search(self, queries: np.ndarray, k: int = 10, *, nprobe: int | None = None, rerank: int | None = None,
               n_threads: int | None = None, partition: str = "kmeans", n_lists: int | None = None) -> SearchResult:
        """Cosine top-k of (q, d) query embeddings (or one (d,) query) over the stored codes,
        without decoding the collection: a :class:`smic_fast.query.search.SearchResult` (ids, scores,
        positions, best first). Scores are the cosines with the decoded items (atoms only when
        the file has a refinement layer, unless reranked).

        Args:
            queries: embeddings from the collection's CLIP model (any non-zero norm).
            k: results per query (at most len(self)).
            nprobe: scan only the nprobe lists whose centroids score highest with the query:
                faster, approximate. None or >= the number of lists: every item.
            rerank: with a refinement layer (RESD), re-score the `rerank` best candidates with
                their refined embeddings (exact decoded cosines for those).
            n_threads: threads for the search (None: all); results do not depend on it.
            partition: how the index groups items into lists: "kmeans" (a spherical k-means
                over the decoded embeddings, as FAISS's IVF) or "lead_atom" (one list per atom,
                by each item's largest atom; kept for comparison). Scores are exact either way.
            n_lists: lists of the "kmeans" partition (None: about sqrt(len(self))).

        The index is built in the C++ core on the first call and kept with this object; see
        :func:`smic_fast.query.search.index_info` for its memory.
        """
        from ..query.search import search
        return search(self, queries, k, nprobe=nprobe, rerank=rerank, n_threads=n_threads, partition=partition,
                      n_lists=n_lists)

    @property
    def _format_version(self) -> int:
        return self._core.format_version

    # ---------------------------------------------------------------- rates
    def info(self) -> dict:
        """Rates from the bytes on disk, and what the file holds."""
        n = len(self)
        size = self._core.file_bytes
        item_bits = 8 * (self.section_bytes["items"] + self.section_bytes["residual"])  # the items' own bytes
        known, inverse_sum = self._core.pixel_terms  # items with a pixel count, sum of 1 / pixels
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
            # how the refinement layer codes residuals: one table ("table", version 2) or in the
            # dictionary's transform ("transform", version 4); None without a layer
            "residual_coding": None if self.residual_step is None else
            "transform" if self._core.residual_transform else "table",
            "index_model": self._core.index_model,
        }
        if n and known == n:
            info["bits_per_pixel"] = float(8 * size / n * inverse_sum / n)
            info["marginal_bits_per_pixel"] = float(item_bits / n * inverse_sum / n)
        return info
