"""A coding dictionary: atoms, the coding parameters and the integer frequency tables of the
item coder. It lives inside a collection (.smic) or in a file of its own (.smicd) that many
collections refer to by its content hash, so they pay no dictionary bits.

The storage, the tables and the coding live in the C++ core (``smic/coding_dictionary.hpp``,
the same code a C++ or C program links); this class keeps what is Python's: argument
handling, presets and dictionary learning with progress."""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import _core
from .._validation import as_count, as_float32_matrix, as_threads
from .codec import LEARNING_TARGETS, QUALITY_PRESETS, CodingParams, ItemSymbols
from ..learn.ksvd import learn_dictionary, learn_for_rate

__all__ = ["Dictionary", "default_n_atoms", "preset_n_atoms", "normalize_embeddings", "learning_sample",
           "DICTIONARY_MAGIC", "LEARN_SAMPLE"]

DICTIONARY_MAGIC = b"\x89SMID\r\n\x1a"
PRECISIONS = ("float16", "int8")
#: Most items dictionary learning (K-SVD and the coding tables) looks at: larger inputs are
#: learned on a seeded uniform sample of this many rows (:func:`learning_sample`). 50,000
#: rows of d = 768 take about 150 MB and a minute of K-SVD at K = 1024 on two cores.
LEARN_SAMPLE = 50_000


def learning_sample(n_items: int, sample_size: int | None = LEARN_SAMPLE, seed: int = 0) -> np.ndarray | None:
    """The rows dictionary learning uses out of `n_items`: None (all of them, in order) when
    ``n_items <= sample_size`` or ``sample_size`` is None; otherwise ``sample_size`` distinct
    rows drawn uniformly without replacement by ``np.random.default_rng(seed)``, in increasing
    order. Deterministic: the same (n_items, sample_size, seed) always give the same rows."""
    n_items = as_count(n_items, "n_items", minimum=1)
    if sample_size is None:
        return None
    sample_size = as_count(sample_size, "sample_size", minimum=1)
    if n_items <= sample_size:
        return None
    rows = np.random.default_rng(seed).choice(n_items, size=sample_size, replace=False)
    return np.sort(rows)


def embedding_blocks(embeddings: object, name: str = "E", dim: int | None = None) -> list[np.ndarray]:
    """Embeddings as a list of 2-D float16/32/64 C-contiguous arrays with the same number of
    columns, stacked in order: one (N, d) array (a numpy memory map stays one, not copied) or a
    list/tuple of such arrays (several .npy files as one input). Other inputs go through
    np.asarray; non-contiguous arrays are copied. ValueError for other dtypes, ranks, mixed
    dimensions or no rows at all. NaN and infinity are found later, batch by batch."""
    parts = (list(embeddings) if isinstance(embeddings, (list, tuple)) and embeddings
             and all(isinstance(p, np.ndarray) and p.ndim == 2 for p in embeddings) else [embeddings])
    blocks = []
    for part in parts:
        array = np.asarray(part)
        if array.dtype not in (np.float16, np.float32, np.float64):
            raise ValueError(f"{name} must be a float16, float32 or float64 array, got dtype {array.dtype}")
        if array.ndim != 2:
            raise ValueError(f"{name} must be 2-dimensional (n, d), got shape {array.shape}")
        wanted = dim if dim is not None else (blocks[0].shape[1] if blocks else None)
        if wanted is not None and array.shape[1] != wanted:
            raise ValueError(f"{name} must have {wanted} columns, got shape {array.shape}")
        blocks.append(array if array.flags.c_contiguous else np.ascontiguousarray(array))
    if sum(b.shape[0] for b in blocks) == 0:
        raise ValueError(f"{name} has no rows (N = 0): nothing to compress")
    return blocks


def gather_rows(blocks: list[np.ndarray], rows: np.ndarray | None) -> np.ndarray:
    """Rows (sorted positions over the stacked blocks; None: all) as one float32 array."""
    if rows is None:
        if len(blocks) == 1:
            return blocks[0]
        return np.concatenate([b.astype(np.float32, copy=False) for b in blocks])
    out, start = [], 0
    for block in blocks:
        mine = rows[(rows >= start) & (rows < start + block.shape[0])] - start
        out.append(np.asarray(block[mine], dtype=np.float32))
        start += block.shape[0]
    return np.concatenate(out)


def default_n_atoms(n_items: int) -> int:
    """Dictionary size for a collection of n items that carries its own dictionary: about
    3 sqrt(n), as a power of two in [8, 1024] (128 atoms for 1,000 items, 256 for 10,000,
    1024 for 100,000): enough atoms for fidelity, few enough that the dictionary's share of
    the rate falls as the collection grows."""
    if n_items < 1:
        raise ValueError("a collection needs at least one item")
    k = 2 ** round(math.log2(max(3.0 * math.sqrt(n_items), 1.0)))
    return int(min(max(k, 8), 1024, n_items))


def preset_n_atoms(n_items: int, quality: str = "medium") -> int:
    """K a collection of n items learns under a quality preset: :func:`default_n_atoms`,
    capped by the preset's ``max_atoms`` (128 for "low": one cheap index per item)."""
    cap = _preset(quality).max_atoms
    k = default_n_atoms(n_items)
    return k if cap is None else min(k, cap)


def preset_chunk_size(quality: str) -> int | None:
    """Items per chunk a quality preset writes (None: the collection default)."""
    return _preset(quality).chunk_size


def _preset(quality: str):
    if quality not in QUALITY_PRESETS:
        raise ValueError(f"quality must be one of {sorted(QUALITY_PRESETS)}, got {quality!r}")
    return QUALITY_PRESETS[quality]


def _learning_target(learn: str | None, quality: str) -> str:
    if learn is None:
        return _preset(quality).learn
    if learn not in LEARNING_TARGETS:
        raise ValueError(f"learn must be one of {LEARNING_TARGETS}, got {learn!r}")
    return learn


def normalize_embeddings(embeddings: object, name: str = "E", dim: int | None = None, *,
                         out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(unit-norm float32 rows, original norms). Zero rows stay zero. ``out`` (optional): a
    C-contiguous float32 array of the same shape that receives the rows; it may be the input
    itself (normalised in place)."""
    e = as_float32_matrix(embeddings, name, columns=dim)
    if e.shape[0] == 0:
        raise ValueError(f"{name} has no rows (N = 0): nothing to compress")
    # Row by row arithmetic, done in blocks: the float64 temporaries stay a block's, and each
    # row's result is what one whole-array expression gives (each block is read before it is
    # written, so `out` may be `e`).
    if out is not None and (out.shape != e.shape or out.dtype != np.float32 or not out.flags.c_contiguous):
        raise ValueError(f"out must be a C-contiguous float32 array of shape {e.shape}")
    unit = np.empty_like(e) if out is None else out
    norms = np.empty(e.shape[0])
    for start in range(0, e.shape[0], _NORMALIZE_BLOCK):
        rows = slice(start, start + _NORMALIZE_BLOCK)
        norms[rows] = np.linalg.norm(e[rows].astype(np.float64), axis=1)
        unit[rows] = e[rows] / np.where(norms[rows] > 0, norms[rows], 1.0)[:, None]
    return unit, norms


_NORMALIZE_BLOCK = 8192


class Dictionary:
    """Atoms + coding parameters + frequency tables: everything needed to code and decode items.

    Build one with :meth:`fit` (or implicitly through :func:`smic_fast.compress`), keep it in a
    file with :meth:`save` / :meth:`load`. ``hash`` identifies the content; a collection coded
    with a shared dictionary stores only this hash.
    """

    def __init__(self, atoms: np.ndarray, params: CodingParams, table_counts: dict[str, np.ndarray],
                 precision: str = "float16") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        counts = {name: np.ascontiguousarray(table_counts[name], dtype=np.uint64)
                  for name in ("count", "first", "index", "level")}
        self._wrap(_core.CodingDictionary(as_float32_matrix(atoms, "atoms"), params.to_json(),
                                          precision, counts))

    def _wrap(self, core: _core.CodingDictionary) -> Dictionary:
        self._core = core
        self.params = CodingParams.from_json(core.params)
        self.precision: str = core.precision
        # Code with exactly the atoms a decoder will see (stored precision, renormalised).
        self.atoms: np.ndarray = core.atoms
        self.atoms.flags.writeable = False
        return self

    @classmethod
    def _from_core(cls, core: _core.CodingDictionary) -> Dictionary:
        return cls.__new__(cls)._wrap(core)

    # ---------------------------------------------------------------- properties
    @property
    def n_atoms(self) -> int:
        return self._core.n_atoms

    @property
    def dim(self) -> int:
        return self._core.dim

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the stored content: header, atoms and tables."""
        return self._core.hash

    @property
    def table_counts(self) -> dict[str, np.ndarray]:
        """Symbol counts of the four tables (count, first, index, level)."""
        return self._core.table_counts

    @property
    def transform(self) -> _core.TransformModel | None:
        """The transform of a transform-coded refinement layer (learned by
        :func:`smic_fast.coding.transform.learn_transform`; ``n_classes``, ``rank``, the axes...), or
        None: collections refined with this dictionary then use one table for every dimension."""
        return self._core.transform

    @property
    def _models(self) -> _core.ItemModels:
        return self._core.models

    def __repr__(self) -> str:
        transform = self.transform
        extra = "" if transform is None else f", transform={transform.n_classes} classes"
        return (f"Dictionary(n_atoms={self.n_atoms}, dim={self.dim}, precision={self.precision!r}, "
                f"layout={self.params.layout!r}, n_nonzero={self.params.s_max}{extra}, hash={self.hash[:12]}…)")

    # ---------------------------------------------------------------- fitting
    @classmethod
    def fit(
        cls, embeddings: np.ndarray, n_atoms: int | None = None, n_nonzero: int | None = None, *,
        quality: str = "medium", step: float | None = None, rd_lambda: float | None = None,
        layout: str = "smic", paper_bits: int = 8, precision: str = "float16", n_iter: int = 10,
        seed: int = 0, n_threads: int | None = None,
        progress: Callable[[int, float], object] | None = None,
        sample_size: int | None = LEARN_SAMPLE, learn: str | None = None,
    ) -> Dictionary:
        """Learn a dictionary and its coding tables from (N, d) embeddings.

        Args:
            embeddings: rows are normalised first (fidelity is measured by cosine). An (N, d)
                float16/32/64 array (a memory map is read, not loaded) or a list of them.
            n_atoms: K; default :func:`preset_n_atoms` of N (of all N, not of the sample):
                :func:`default_n_atoms`, at most 128 for ``quality="low"``.
            sample_size: learn atoms and tables on at most this many rows: above it, a seeded
                uniform sample (:func:`learning_sample` with ``seed``). None: all rows.
            n_nonzero: most atoms per item; default from ``quality``.
            quality: preset of (n_nonzero, step, rd_lambda, largest K, learn): one of
                ``QUALITY_PRESETS`` ("low": one atom of at most 128, a few bits per item).
            learn: what the atoms are learned for: "rate" (:func:`smic_fast.learn_for_rate`:
                K-SVD whose second half of iterations codes the training rows with the
                coder's own rate-distortion choice at these step, rd_lambda and n_nonzero,
                tables re-fitted every iteration: the codes the file will hold; at a large
                rd_lambda those iterations are gain-shape k-means) or "sparsity" (K-SVD with
                n_nonzero atoms for every row, earlier releases' learning). Default from
                ``quality``: "rate" for low and medium, "sparsity" for high. The paper layout
                always learns for sparsity.
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
                        progress=progress, sample_size=sample_size, learn=learn)[0]

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
        preset_s, preset_step, preset_lambda = _preset(quality)[:3]
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
             precision, n_iter, seed, n_threads, progress, sample_size=None, twice=False,
             learn=None) -> tuple[Dictionary, ItemSymbols, np.ndarray, np.ndarray | None]:
        """fit() that also returns the training items' symbols, their unit embeddings and their
        rows (None: all rows, in order; else the sample of :func:`learning_sample`). `twice`:
        normalise the rows twice, as compress() always did (its rows, then fit's), so that its
        files stay byte for byte what they were."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        target = _learning_target(learn, quality)
        blocks = embedding_blocks(embeddings)
        n_items = sum(b.shape[0] for b in blocks)
        rows = learning_sample(n_items, sample_size, seed)
        sample = gather_rows(blocks, rows)
        owned = not any(np.may_share_memory(sample, b) for b in blocks)
        # One float32 copy of the rows learned on at most: a gathered sample is normalised in place.
        unit, _ = normalize_embeddings(sample, out=sample if owned and sample.dtype == np.float32 else None)
        if twice:
            normalize_embeddings(unit, out=unit)
        del blocks, sample
        k = preset_n_atoms(n_items, quality) if n_atoms is None else as_count(n_atoms, "n_atoms", minimum=1)
        if rows is not None and k > len(rows):
            raise ValueError(f"n_atoms ({k}) must be <= sample_size ({len(rows)}), the rows learned on")
        params = cls._params(k, unit.shape[1], n_nonzero, quality, step, rd_lambda, layout, paper_bits)
        if target == "rate" and layout == "smic":
            atoms = learn_for_rate(unit, k, params, precision=precision, n_iter=n_iter, seed=seed,
                                   n_threads=n_threads, progress=progress)
        else:
            atoms = learn_dictionary(unit, k, params.s_max, n_iter=n_iter, seed=seed, n_threads=n_threads,
                                     progress=progress)
        return (*cls._with_tables(atoms, unit, params.s_max, quality=quality, step=params.step,
                                  rd_lambda=params.rd_lambda, layout=layout, paper_bits=paper_bits,
                                  precision=precision, n_threads=n_threads), rows)

    @classmethod
    def _with_tables(cls, atoms, unit, n_nonzero, *, quality, step, rd_lambda, layout, paper_bits,
                     precision, n_threads) -> tuple[Dictionary, ItemSymbols, np.ndarray]:
        """Fit the coding tables of `atoms` on unit embeddings (in the core): code with flat
        tables, fit, code again with the fitted tables (better rate decisions), fit again."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        atoms = as_float32_matrix(atoms, "atoms", columns=unit.shape[1])
        params = cls._params(atoms.shape[0], unit.shape[1], n_nonzero, quality, step, rd_lambda,
                             layout, paper_bits)
        threads = 0 if n_threads is None else as_threads(n_threads)
        core, symbols = _core.CodingDictionary.with_tables(atoms, unit, params.to_json(), precision,
                                                           threads)
        return cls._from_core(core), ItemSymbols(*symbols), unit

    # ---------------------------------------------------------------- coding
    def items_symbols(self, unit: np.ndarray, n_threads: int | None = None) -> ItemSymbols:
        """Symbols of unit-norm embeddings under this dictionary (rate priced by its tables)."""
        return self._choose(unit, n_threads)[0]

    def _choose(self, unit: np.ndarray, n_threads: int | None = None) -> tuple[ItemSymbols, np.ndarray | None]:
        """(symbols, cosine of each reconstruction or None for the paper layout)."""
        threads = 0 if n_threads is None else as_threads(n_threads)
        symbols, cosine = self._core.choose(as_float32_matrix(unit, "unit", columns=self.dim), threads)
        return ItemSymbols(*symbols), cosine

    def reconstruct(self, symbols: ItemSymbols) -> np.ndarray:
        """Unit-norm float32 embeddings from item symbols."""
        return self._core.reconstruct(*_columns(symbols))

    def encode_items(self, symbols: ItemSymbols, chunk_size: int) -> tuple[bytes, np.ndarray]:
        """Range-code item symbols in independent chunks: (bytes, chunk offsets)."""
        return self._core.encode_items(*_columns(symbols), as_count(chunk_size, "chunk_size", minimum=1))

    def decode_items(self, data: bytes, offsets: np.ndarray, n_items: int, chunk_size: int,
                     start: int = 0, stop: int | None = None) -> ItemSymbols:
        """Symbols of items [start, stop) of coded chunks (only the chunks needed are decoded)."""
        return ItemSymbols(*self._core.decode_items(data, np.ascontiguousarray(offsets, dtype=np.uint64),
                                                    n_items, chunk_size, start, stop))

    def encode(self, embedding: np.ndarray, residual_step: float | None = None) -> bytes:
        """Code one embedding (d,) to bytes: exactly what the batch path writes for it as a chunk
        of one (OMP, quantization and range coding on one thread, everything precomputed).
        Decode with :meth:`decode`.

        ``residual_step``: refine the item with this dictionary's transform-coded layer
        (:func:`smic_fast.coding.transform.learn_transform`) at that step, its levels coded after the
        atoms in the same bytes: the levels a collection written at that step holds for the
        item, so :meth:`decode` at the same step returns exactly what the collection decodes
        to. ValueError if the dictionary has no transform or the step is outside [1e-4, 1]."""
        x = np.asarray(embedding)
        if x.dtype != np.float32:
            if x.dtype.kind != "f":
                raise ValueError(f"embedding must be a float array, got dtype {x.dtype}")
            x = x.astype(np.float32)
        if x.size != self.dim:
            raise ValueError(f"embedding must have {self.dim} values, got shape {x.shape}")
        return self._core.encode_one(np.ascontiguousarray(x.reshape(self.dim)), _step(residual_step))

    def decode(self, data: bytes, residual_step: float | None = None) -> np.ndarray:
        """The unit-norm (d,) embedding of bytes made by :meth:`encode`, given the
        ``residual_step`` they were made with (a wrong one raises DecodeError or gives a
        wrong embedding: the step is not stored in the bytes, as a collection stores it once)."""
        return self._core.decode_one(data, _step(residual_step))

    # ---------------------------------------------------------------- storage
    def to_bytes(self) -> bytes:
        """The .smicd file content."""
        return self._core.to_bytes()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the dictionary to `path` (conventionally ``*.smicd``) atomically."""
        self._core.save(os.fspath(path))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Dictionary:
        """Read a .smicd file. Raises FormatError if it is damaged or not a dictionary."""
        return cls._from_core(_core.CodingDictionary.load(os.fspath(path)))

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<dictionary>") -> Dictionary:
        """Parse .smicd bytes (FormatError if damaged)."""
        return cls._from_core(_core.CodingDictionary.from_bytes(data, name))


def _step(residual_step: float | None) -> float:
    """The core's residual step argument: 0 for none."""
    if residual_step is None:
        return 0.0
    step = float(residual_step)
    if not step > 0:
        raise ValueError(f"residual_step must be a step in [1e-4, 1] or None, got {residual_step!r}")
    return step


def _columns(symbols: ItemSymbols) -> tuple[np.ndarray, ...]:
    return tuple(np.ascontiguousarray(getattr(symbols, f), dtype=np.int32)
                 for f in ("counts", "first", "rest_index", "rest_level"))
