"""A coding dictionary: atoms, the coding parameters and the integer frequency tables of the
item coder. It lives inside a collection (.smic) or in a file of its own (.smicd) that many
collections refer to by its content hash, so they pay no dictionary bits."""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import _core, range_coder
from ._packing import pack_int8_symbols, pack_varints, unpack_int8_symbols, unpack_varints
from ._validation import as_count, as_float32_matrix, as_threads
from .codec import (
    QUALITY_PRESETS, CodingParams, ItemSymbols, choose_items, paper_items, paper_reconstruct,
    smic_reconstruct,
)
from .container import Section, parse_sections, read_sections, write_sections
from .errors import FormatError
from .ksvd import learn_dictionary
from .sparse_coding import OmpCoder

__all__ = ["Dictionary", "default_n_atoms", "normalize_embeddings", "DICTIONARY_MAGIC"]

DICTIONARY_MAGIC = b"\x89SMID\r\n\x1a"
PRECISIONS = ("float16", "int8")
_TABLES = ("count", "first", "index", "level")


def default_n_atoms(n_items: int) -> int:
    """Dictionary size for a collection of n items that carries its own dictionary: about
    3 sqrt(n), as a power of two in [8, 1024] (128 atoms for 1,000 items, 256 for 10,000,
    1024 for 100,000): enough atoms for fidelity, few enough that the dictionary's share of
    the rate falls as the collection grows."""
    if n_items < 1:
        raise ValueError("a collection needs at least one item")
    k = 2 ** round(math.log2(max(3.0 * math.sqrt(n_items), 1.0)))
    return int(min(max(k, 8), 1024, n_items))


def normalize_embeddings(embeddings: object, name: str = "E", dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(unit-norm float32 rows, original norms). Zero rows stay zero."""
    e = as_float32_matrix(embeddings, name, columns=dim)
    if e.shape[0] == 0:
        raise ValueError(f"{name} has no rows (N = 0): nothing to compress")
    norms = np.linalg.norm(e.astype(np.float64), axis=1)
    return (e / np.where(norms > 0, norms, 1.0)[:, None]).astype(np.float32), norms


def _store_atoms(atoms: np.ndarray, precision: str) -> bytes:
    if precision == "float16":
        return atoms.astype("<f2").tobytes()
    scales = np.abs(atoms).max(axis=1) / 127.0
    scales = np.where(scales > 0, scales, 1.0).astype("<f4")
    levels = np.clip(np.round(atoms / scales[:, None]), -127, 127).astype(np.int8)
    return scales.tobytes() + pack_int8_symbols(levels)


def _load_atoms(payload: bytes, n_atoms: int, dim: int, precision: str) -> np.ndarray:
    """Unit-norm float32 atoms from a stored payload; FormatError if damaged."""
    with np.errstate(over="ignore", invalid="ignore"):  # damaged values are checked below
        return _load_atoms_unchecked(payload, n_atoms, dim, precision)


def _load_atoms_unchecked(payload: bytes, n_atoms: int, dim: int, precision: str) -> np.ndarray:
    if precision == "float16":
        if len(payload) != 2 * n_atoms * dim:
            raise FormatError(f"atoms: expected {2 * n_atoms * dim} bytes of float16, found {len(payload)}")
        atoms = np.frombuffer(payload, dtype="<f2").astype(np.float32).reshape(n_atoms, dim)
    elif precision == "int8":
        if len(payload) < 4 * n_atoms:
            raise FormatError("atoms: truncated scales")
        scales = np.frombuffer(payload, dtype="<f4", count=n_atoms).astype(np.float32)
        levels = unpack_int8_symbols(payload[4 * n_atoms :], n_atoms * dim).reshape(n_atoms, dim)
        atoms = levels.astype(np.float64) * scales[:, None]
    else:
        raise FormatError(f"atoms: unknown precision {precision!r}")
    atoms = atoms.astype(np.float64)
    if not np.isfinite(atoms).all():
        raise FormatError("atoms: non-finite values")
    peak = np.abs(atoms).max(axis=1, keepdims=True)
    if (peak == 0).any():
        raise FormatError("atoms: an atom is zero")
    scaled = atoms / peak  # in [-1, 1]: the norm cannot overflow
    return (scaled / np.linalg.norm(scaled, axis=1, keepdims=True)).astype(np.float32)


class Dictionary:
    """Atoms + coding parameters + frequency tables: everything needed to code and decode items.

    Build one with :meth:`fit` (or implicitly through :func:`smic_fast.compress`), keep it in a
    file with :meth:`save` / :meth:`load`. ``hash`` identifies the content; a collection coded
    with a shared dictionary stores only this hash.
    """

    def __init__(self, atoms: np.ndarray, params: CodingParams, table_counts: dict[str, np.ndarray],
                 precision: str = "float16", *, _atom_payload: bytes | None = None) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.params = params
        self.precision = precision
        atoms = as_float32_matrix(atoms, "atoms")
        self._atom_payload = _atom_payload if _atom_payload is not None else _store_atoms(atoms, precision)
        # Code with exactly the atoms a decoder will see.
        self.atoms: np.ndarray = _load_atoms(self._atom_payload, atoms.shape[0], atoms.shape[1], precision)
        self.table_counts = {name: np.asarray(table_counts[name], dtype=np.uint64) for name in _TABLES}
        self._flat = not any(int(c.sum()) for c in self.table_counts.values())  # no fitted tables yet
        self._coder: OmpCoder | None = None
        self._gram: np.ndarray | None = None
        self._models = self._build_models()

    # ---------------------------------------------------------------- properties
    @property
    def n_atoms(self) -> int:
        return self.atoms.shape[0]

    @property
    def dim(self) -> int:
        return self.atoms.shape[1]

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the stored content: header, atoms and tables."""
        digest = hashlib.sha256()
        for section in self._sections():
            digest.update(section.tag + struct.pack("<Q", len(section.payload)) + section.payload)
        return digest.hexdigest()

    def __repr__(self) -> str:
        return (f"Dictionary(n_atoms={self.n_atoms}, dim={self.dim}, precision={self.precision!r}, "
                f"layout={self.params.layout!r}, n_nonzero={self.params.s_max}, hash={self.hash[:12]}…)")

    # ---------------------------------------------------------------- fitting
    @classmethod
    def fit(
        cls, embeddings: np.ndarray, n_atoms: int | None = None, n_nonzero: int | None = None, *,
        quality: str = "medium", step: float | None = None, rd_lambda: float | None = None,
        layout: str = "smic", paper_bits: int = 8, precision: str = "float16", n_iter: int = 10,
        seed: int = 0, n_threads: int | None = None,
        progress: Callable[[int, float], object] | None = None,
    ) -> Dictionary:
        """Learn a dictionary and its coding tables from (N, d) embeddings.

        Args:
            embeddings: rows are normalised first (fidelity is measured by cosine).
            n_atoms: K; default :func:`default_n_atoms` of N.
            n_nonzero: most atoms per item; default from ``quality``.
            quality: preset of (n_nonzero, step, rd_lambda): one of ``QUALITY_PRESETS``.
            step: quantizer step of coefficient ratios (in (0, 1]); default from ``quality``.
            rd_lambda: price of one bit in cosine; larger gives fewer atoms per item. 0 always
                uses n_nonzero atoms. Default from ``quality``.
            layout: "smic" (entropy-coded, scale-free) or "paper" (the paper's fixed-length code).
            paper_bits: bits per coefficient in the paper layout.
            precision: how atoms are stored: "float16" or "int8" (per-atom scale, entropy-coded
                when that is smaller).
            n_iter, seed, n_threads, progress: as in :func:`smic_fast.learn_dictionary`.
        """
        return cls._fit(embeddings, n_atoms, n_nonzero, quality=quality, step=step,
                        rd_lambda=rd_lambda, layout=layout, paper_bits=paper_bits,
                        precision=precision, n_iter=n_iter, seed=seed, n_threads=n_threads,
                        progress=progress)[0]

    @classmethod
    def from_atoms(
        cls, atoms: np.ndarray, embeddings: np.ndarray, n_nonzero: int | None = None, *,
        quality: str = "medium", step: float | None = None, rd_lambda: float | None = None,
        layout: str = "smic", paper_bits: int = 8, precision: str = "float16",
        n_threads: int | None = None,
    ) -> Dictionary:
        """A dictionary with given atoms (rows, normalised here), its coding tables fitted on
        `embeddings`. Arguments as in :meth:`fit`."""
        unit, _ = normalize_embeddings(embeddings)
        return cls._with_tables(as_float32_matrix(atoms, "atoms", columns=unit.shape[1]), unit,
                                n_nonzero, quality=quality, step=step, rd_lambda=rd_lambda,
                                layout=layout, paper_bits=paper_bits, precision=precision,
                                n_threads=n_threads)[0]

    @staticmethod
    def _params(n_atoms: int, dim: int, n_nonzero, quality, step, rd_lambda, layout, paper_bits) -> CodingParams:
        if quality not in QUALITY_PRESETS:
            raise ValueError(f"quality must be one of {sorted(QUALITY_PRESETS)}, got {quality!r}")
        preset_s, preset_step, preset_lambda = QUALITY_PRESETS[quality]
        if n_nonzero is None:
            s_max = min(preset_s, n_atoms, dim)
        else:
            s_max = as_count(n_nonzero, "n_nonzero", minimum=1)
            if s_max > min(n_atoms, dim):
                raise ValueError(f"n_nonzero ({s_max}) must be <= min(n_atoms, d) = {min(n_atoms, dim)}")
        return CodingParams(s_max=s_max, step=preset_step if step is None else float(step),
                            rd_lambda=preset_lambda if rd_lambda is None else float(rd_lambda),
                            layout=layout, paper_bits=paper_bits)

    @classmethod
    def _fit(cls, embeddings, n_atoms, n_nonzero, *, quality, step, rd_lambda, layout, paper_bits,
             precision, n_iter, seed, n_threads, progress) -> tuple[Dictionary, ItemSymbols, np.ndarray]:
        """fit() that also returns the training items' symbols and unit embeddings."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        unit, _ = normalize_embeddings(embeddings)
        k = default_n_atoms(unit.shape[0]) if n_atoms is None else as_count(n_atoms, "n_atoms", minimum=1)
        params = cls._params(k, unit.shape[1], n_nonzero, quality, step, rd_lambda, layout, paper_bits)
        atoms = learn_dictionary(unit, k, params.s_max, n_iter=n_iter, seed=seed, n_threads=n_threads,
                                 progress=progress)
        return cls._with_tables(atoms, unit, params.s_max, quality=quality, step=params.step,
                                rd_lambda=params.rd_lambda, layout=layout, paper_bits=paper_bits,
                                precision=precision, n_threads=n_threads)

    @classmethod
    def _with_tables(cls, atoms, unit, n_nonzero, *, quality, step, rd_lambda, layout, paper_bits,
                     precision, n_threads) -> tuple[Dictionary, ItemSymbols, np.ndarray]:
        """Fit the coding tables of `atoms` on unit embeddings: code with flat tables, fit,
        code again with the fitted tables (better rate decisions), fit again."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        k = atoms.shape[0]
        params = cls._params(k, unit.shape[1], n_nonzero, quality, step, rd_lambda, layout, paper_bits)
        if layout == "paper":
            _, coefs = OmpCoder(atoms / np.linalg.norm(atoms, axis=1, keepdims=True)).encode(
                unit, params.s_max, n_threads=n_threads)
            peak = float(np.abs(coefs).max()) if coefs.size else 1.0
            params = CodingParams(**{**params.to_json(), "paper_range": max(peak, 1e-6)})
        draft = cls(atoms, params, _flat_counts(k, params), precision)
        if layout == "paper":
            return draft, draft.items_symbols(unit, n_threads=n_threads), unit
        symbols = draft.items_symbols(unit, n_threads=n_threads)  # flat-model rates
        tuned = cls(atoms, params, _fit_counts(symbols, k, params), precision,
                    _atom_payload=draft._atom_payload)
        symbols = tuned.items_symbols(unit, n_threads=n_threads)  # rates of the fitted tables
        final = cls(atoms, params, _fit_counts(symbols, k, params), precision,
                    _atom_payload=draft._atom_payload)
        return final, symbols, unit

    # ---------------------------------------------------------------- coding
    def _prepare(self) -> tuple[OmpCoder, np.ndarray]:
        if self._coder is None:
            self._coder = OmpCoder(self.atoms)
            self._gram = _core.gemm_nt(self.atoms, self.atoms).astype(np.float64)
        return self._coder, self._gram


    def items_symbols(self, unit: np.ndarray, n_threads: int | None = None) -> ItemSymbols:
        """Symbols of unit-norm embeddings under this dictionary (rate priced by its tables)."""
        return self._choose(unit, n_threads)[0]

    def _choose(self, unit: np.ndarray, n_threads: int | None = None) -> tuple[ItemSymbols, np.ndarray | None]:
        """(symbols, cosine of each reconstruction or None) — the rate-distortion choice runs
        in the C++ core (codec.choose_items is its numpy reference)."""
        coder, _ = self._prepare()
        if self.params.layout == "paper":
            return paper_items(unit, coder, self.params, n_threads=n_threads), None
        p = self.params
        models = None if self._flat else self._models
        threads = 0 if n_threads is None else as_threads(n_threads)
        counts, first, rest_index, rest_level, cosine = _core.choose_items(
            coder._coder, unit, p.s_max, p.step, p.rounding, p.rd_lambda, models, threads)
        return ItemSymbols(counts, first, rest_index, rest_level), cosine

    def reconstruct(self, symbols: ItemSymbols) -> np.ndarray:
        """Unit-norm embeddings from item symbols."""
        if self.params.layout == "paper":
            return paper_reconstruct(symbols, self.atoms, self.params)
        return smic_reconstruct(symbols, self.atoms, self.params)

    def encode_items(self, symbols: ItemSymbols, chunk_size: int) -> tuple[bytes, np.ndarray]:
        """Range-code item symbols in independent chunks: (bytes, chunk offsets)."""
        if self.params.layout == "paper":
            return self._models.encode_paper(symbols.rest_index, symbols.rest_level, chunk_size)
        return self._models.encode(symbols.counts, symbols.first, symbols.rest_index,
                                   symbols.rest_level, chunk_size)

    def decode_items(self, data: bytes, offsets: np.ndarray, n_items: int, chunk_size: int,
                     start: int = 0, stop: int | None = None) -> ItemSymbols:
        """Symbols of items [start, stop) of coded chunks (only the chunks needed are decoded)."""
        stop = n_items if stop is None else stop
        if self.params.layout == "paper":
            index, level = self._models.decode_paper(data, offsets, n_items, chunk_size, start, stop)
            n = len(index)
            return ItemSymbols(np.full(n, self.params.s_max, np.int32), np.zeros(n, np.int32), index, level)
        return ItemSymbols(*self._models.decode(data, offsets, n_items, chunk_size, start, stop))

    def encode(self, embedding: np.ndarray) -> bytes:
        """Code one embedding (d,) to bytes: OMP, quantization and range coding with everything
        precomputed (low latency: no thread start-up, no Python loop). Decode with :meth:`decode`."""
        x = np.asarray(embedding)
        if x.dtype != np.float32:
            if x.dtype.kind != "f":
                raise ValueError(f"embedding must be a float array, got dtype {x.dtype}")
            x = x.astype(np.float32)
        if x.size != self.dim:
            raise ValueError(f"embedding must have {self.dim} values, got shape {x.shape}")
        x = x.reshape(1, self.dim)
        norm = float(np.sqrt(np.dot(x[0], x[0])))
        if not np.isfinite(norm):
            raise ValueError("embedding contains NaN or infinity")
        if norm > 0:
            x = x / np.float32(norm)
        symbols, _ = self._choose(np.ascontiguousarray(x), n_threads=1)
        data, _offsets = self.encode_items(symbols, 1)
        return data

    def decode(self, data: bytes) -> np.ndarray:
        """The unit-norm (d,) embedding of bytes made by :meth:`encode`."""
        offsets = np.array([0, len(data)], dtype=np.uint64)
        return self.reconstruct(self.decode_items(bytes(data), offsets, 1, 1))[0]

    # ---------------------------------------------------------------- storage
    def _build_models(self) -> _core.ItemModels:
        p, k = self.params, self.n_atoms
        if p.layout == "paper":
            width = 1 << max(0, math.ceil(math.log2(k)))  # fixed-length indices
            empty = np.zeros(0, np.uint32)
            flat = [range_coder.frequencies_from_counts(np.zeros(size, np.uint64))
                    for size in (width, p.level_alphabet)]
            return _core.ItemModels(empty, empty, *flat, p.s_max, True)
        freqs = [range_coder.frequencies_from_counts(self.table_counts[name]) for name in _TABLES]
        return _core.ItemModels(*freqs, p.s_max, False)

    def _sections(self) -> list[Section]:
        header = {"kind": "smic-dictionary", "n_atoms": self.n_atoms, "dim": self.dim,
                  "precision": self.precision, "params": self.params.to_json()}
        tables = b"".join(pack_varints(np.array([len(self.table_counts[name])])) +
                          pack_varints(self.table_counts[name]) for name in _TABLES)
        return [Section(b"DHDR", json.dumps(header, sort_keys=True).encode()),
                Section(b"ATOM", self._atom_payload),
                Section(b"TABL", zlib.compress(tables, 9))]

    def to_bytes(self) -> bytes:
        """The .smicd file content."""
        from .container import _PREAMBLE, _encode_sections
        return _PREAMBLE.pack(DICTIONARY_MAGIC, 1, 0, 0) + _encode_sections(self._sections())  # version 1 format

    def save(self, path: str | os.PathLike) -> Path:
        """Write the dictionary to `path` (conventionally ``*.smicd``) atomically."""
        write_sections(path, DICTIONARY_MAGIC, self._sections())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Dictionary:
        """Read a .smicd file. Raises FormatError if it is damaged or not a dictionary."""
        return cls._from_sections(read_sections(path, DICTIONARY_MAGIC, kind="smic dictionary"), str(path))

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<dictionary>") -> Dictionary:
        return cls._from_sections(parse_sections(data, DICTIONARY_MAGIC, kind="smic dictionary", name=name), name)

    @classmethod
    def _from_sections(cls, sections: list[Section], name: str) -> Dictionary:
        found = {s.tag: s.payload for s in sections}
        for tag in (b"DHDR", b"ATOM", b"TABL"):
            if tag not in found:
                raise FormatError(f"{name}: missing section {tag.decode()}")
        try:
            header = json.loads(found[b"DHDR"])
            n_atoms, dim, precision = int(header["n_atoms"]), int(header["dim"]), header["precision"]
            params = CodingParams.from_json(header["params"])
        except (ValueError, KeyError, TypeError) as error:
            raise FormatError(f"{name}: unreadable dictionary header ({error})") from error
        if (not (1 <= n_atoms <= 1 << 16 and 1 <= dim <= 1 << 14 and n_atoms * dim <= 1 << 26)
                or precision not in PRECISIONS or params.s_max > min(n_atoms, dim)):
            raise FormatError(f"{name}: implausible dictionary header {header}")
        try:
            tables = zlib.decompress(found[b"TABL"])
        except zlib.error as error:
            raise FormatError(f"{name}: tables section does not decompress ({error})") from error
        counts, pos = {}, 0
        expected = {"count": params.s_max + 1, "first": 2 * n_atoms, "index": n_atoms,
                    "level": params.level_alphabet}
        for table in _TABLES:
            (size,), pos = unpack_varints(tables, 1, pos, what=f"{name}: {table} table")
            if int(size) not in (0, expected[table]):
                raise FormatError(f"{name}: {table} table has {size} entries, expected {expected[table]}")
            counts[table], pos = unpack_varints(tables, int(size), pos, what=f"{name}: {table} table")
        if pos != len(tables):
            raise FormatError(f"{name}: trailing bytes after the tables")
        atoms = _load_atoms(found[b"ATOM"], n_atoms, dim, precision)
        try:
            return cls(atoms, params, counts, precision, _atom_payload=found[b"ATOM"])
        except ValueError as error:  # e.g. tables the coder refuses
            raise FormatError(f"{name}: invalid dictionary ({error})") from error


def _flat_counts(n_atoms: int, params: CodingParams) -> dict[str, np.ndarray]:
    """All-zero counts: flat tables (every symbol frequency 1)."""
    return {"count": np.zeros(params.s_max + 1, np.uint64), "first": np.zeros(2 * n_atoms, np.uint64),
            "index": np.zeros(n_atoms, np.uint64), "level": np.zeros(params.level_alphabet, np.uint64)}


def _fit_counts(symbols: ItemSymbols, n_atoms: int, params: CodingParams) -> dict[str, np.ndarray]:
    used = symbols.rest_index >= 0
    return {
        "count": np.bincount(symbols.counts, minlength=params.s_max + 1).astype(np.uint64),
        "first": np.bincount(symbols.first[symbols.counts > 0], minlength=2 * n_atoms).astype(np.uint64),
        "index": np.bincount(symbols.rest_index[used], minlength=n_atoms).astype(np.uint64),
        "level": np.bincount(symbols.rest_level[used], minlength=params.level_alphabet).astype(np.uint64),
    }
