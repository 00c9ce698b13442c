"""The inputs people already have, recognised and opened the same way with and without Ray:

- **photos**: image files and folders (walked recursively, ids relative to their common root);
- **webdataset** tar shards (what img2dataset writes), given as files or brace patterns such
  as ``shards/{00000..00059}.tar``; a sample's id is its webdataset key (the member name up to
  the first dot of its base name), its image the first member with an image extension;
- **clip-retrieval** embedding folders: ``img_emb/img_emb_{N}.npy`` with
  ``metadata/metadata_{N}.parquet``, ids from the parquet's ``image_path`` column, float16 or
  float32 rows, compressed as they are (no re-encoding).

A damaged tar (truncated, unreadable) is found by a scan of its headers before any image is
read, and skipped whole with its reason; a damaged image inside a sound tar is skipped alone.
A damaged embedding part is a ValueError naming the file.
"""
from __future__ import annotations

import itertools
import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "EmbeddingPart", "TarSamples", "classify", "expand_braces", "find_embedding_parts",
           "check_embedding_part", "is_embedding_folder", "is_tar", "read_embedding_part", "read_tar", "scan_tar", "tar_paths"]

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif")
_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext
_PART = re.compile(r"^img_emb_(\d+)\.npy$")


def expand_braces(pattern: str) -> list[str]:
    """``a/{000..002}.tar`` -> ``a/000.tar a/001.tar a/002.tar`` (zero padding kept; several
    ranges give their product; ``{x,y}`` lists too), as webdataset and img2dataset write them."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    body = match.group(1)
    ranged = _RANGE.fullmatch(match.group(0))
    if ranged:
        lo, hi = ranged.group(1), ranged.group(2)
        if int(hi) < int(lo):
            raise ValueError(f"empty brace range {match.group(0)} in {pattern!r}")
        width = len(lo) if lo.startswith("0") else 0
        choices = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    elif "," in body:
        choices = body.split(",")
    else:
        return [pattern]
    head, tail = pattern[:match.start()], pattern[match.end():]
    return list(itertools.chain.from_iterable(expand_braces(head + c + tail) for c in choices))


def is_tar(path: str) -> bool:
    """A webdataset shard: a name ending in .tar (any case)."""
    return str(path).lower().endswith(".tar")


def tar_paths(inputs: Sequence[str]) -> list[str]:
    """The tar files named by `inputs` (brace patterns expanded, in order); FileNotFoundError
    naming the first that does not exist."""
    paths = [p for item in inputs for p in expand_braces(os.fspath(item))]
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"webdataset shard {p!r} does not exist")
    return paths


def is_embedding_folder(path: str | os.PathLike) -> bool:
    """A clip-retrieval output folder: it has ``img_emb/`` and ``metadata/``."""
    p = Path(path)
    return (p / "img_emb").is_dir() and (p / "metadata").is_dir()


EMBEDDING_DTYPES = (np.float16, np.float32, np.float64)
SCAN_ROWS = 1 << 14  # rows checked for NaN at a time (64 MB of float32 at d = 1024)


def is_npy(path: str | os.PathLike) -> bool:
    """True for an input named ``*.npy`` (embeddings), False for photos and folders."""
    return os.fspath(path).lower().endswith(".npy")


def map_embeddings(path: str) -> np.ndarray:
    """A .npy of (N, d) float16/32/64 embeddings, memory-mapped (never loaded whole) and
    checked: FileNotFoundError, IsADirectoryError, or ValueError naming the file and what is
    wrong (not an array, an .npz, another dtype or shape, no rows)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"embeddings file {path} does not exist") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path} is a folder, not a .npy file") from None
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable .npy array ({exc})") from None
    if not isinstance(array, np.ndarray):  # an .npz archive saved under a .npy name
        raise ValueError(f"{path} is not a .npy array (an .npz archive?)")
    if array.dtype not in EMBEDDING_DTYPES:
        raise ValueError(f"{path}: embeddings must be float16, float32 or float64, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{path}: embeddings must be a 2-D (N, d) array, got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{path}: no embeddings in it (shape {array.shape})")
    return array


def check_finite(path: str, array: np.ndarray) -> None:
    """ValueError naming the first row of `array` (from `path`) with NaN or infinity; reads
    SCAN_ROWS rows at a time, so a memory map is never loaded whole."""
    for start in range(0, array.shape[0], SCAN_ROWS):
        block = np.asarray(array[start:start + SCAN_ROWS])
        good = np.isfinite(block).all(axis=1)
        if not good.all():
            row = start + int(np.flatnonzero(~good)[0])
            raise ValueError(f"{path}: row {row} contains NaN or infinity (no output written)")


def classify(inputs: Sequence[str]) -> str:
    """The kind of `inputs`: "npy", "webdataset", "embeddings" (clip-retrieval) or "photos".
    ValueError when kinds are mixed (one collection holds embeddings of one model)."""
    kinds = {"npy" if is_npy(p) else "webdataset" if is_tar(expand_braces(p)[-1])
             else "embeddings" if is_embedding_folder(p) else "photos" for p in map(os.fspath, inputs)}
    if len(kinds) > 1:
        raise ValueError(f"give inputs of one kind per call, not {' and '.join(sorted(kinds))} together: one "
                         "collection holds embeddings of one model")
    return kinds.pop()


# ------------------------------------------------------------------------------ webdataset
@dataclass
class TarSamples:
    """A tar's samples (webdataset key, member holding its image) or, when the tar is damaged,
    the reason (and no samples)."""

    path: str
    samples: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    without_image: list[str] = field(default_factory=list)  # keys with no image member


def _split(name: str) -> tuple[str, str] | None:
    match = _KEY.match(name)
    return (match.group(1), match.group(2).lower()) if match else None


def scan_tar(path: str) -> TarSamples:
    """Read a tar's headers only (seeking over the data): its samples in order and whether
    every member's data is there. Never raises for a bad tar; the reason goes to ``error``."""
    out = TarSamples(path)
    images: dict[str, str] = {}
    keys: list[str] = []
    try:
        size = os.path.getsize(path)
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                if member.offset_data + member.size > size:
                    out.error = f"truncated tar: member {member.name} ends past the end of the file"
                    break
                split = _split(member.name)
                if split is None:
                    continue
                key, ext = split
                if key not in images and key not in keys:
                    keys.append(key)
                if ext in IMAGE_EXTENSIONS and key not in images:
                    images[key] = member.name
    except (tarfile.TarError, OSError, EOFError) as exc:
        out.error = f"unreadable tar ({type(exc).__name__}: {exc})"
    if out.error is not None:  # a damaged tar is skipped whole, the same with and without Ray
        out.error += f" (its {len(keys)} readable samples were not used)"
        return out
    for key in keys:
        if key in images:
            out.samples.append((key, images[key]))
        else:
            out.without_image.append(key)
    return out


def read_tar(scan: TarSamples) -> Iterator[tuple[str, bytes | None, str | None]]:
    """The scanned samples of a tar as ``(key, image bytes, None)``, or ``(key, None, reason)``
    for a member that cannot be read."""
    wanted = dict((name, key) for key, name in scan.samples)
    try:
        with tarfile.open(scan.path, "r:") as tar:
            for member in tar:
                key = wanted.pop(member.name, None)
                if key is None:
                    continue
                try:
                    stream = tar.extractfile(member)
                    data = stream.read() if stream is not None else b""
                except (tarfile.TarError, OSError, EOFError) as exc:
                    yield key, None, f"unreadable tar member {member.name} ({exc})"
                    continue
                yield key, data, None
                if not wanted:
                    return
    except (tarfile.TarError, OSError, EOFError) as exc:
        for key in wanted.values():
            yield key, None, f"unreadable tar ({exc})"
        return
    for key in wanted.values():
        yield key, None, "member vanished from the tar"


# ------------------------------------------------------------------------------ clip-retrieval
@dataclass(frozen=True)
class EmbeddingPart:
    """One part of a clip-retrieval folder: its embeddings and its metadata."""

    number: int
    npy: Path
    parquet: Path


def find_embedding_parts(folder: str | os.PathLike) -> list[EmbeddingPart]:
    """The parts of a clip-retrieval folder in numeric order; ValueError when an embeddings
    file has no metadata file (or there is none)."""
    folder = Path(folder)
    parts = []
    for npy in (folder / "img_emb").iterdir():
        match = _PART.match(npy.name)
        if not match:
            continue
        number = int(match.group(1))
        parquet = folder / "metadata" / f"metadata_{match.group(1)}.parquet"
        if not parquet.is_file():
            raise ValueError(f"{npy} has no metadata file {parquet} (ids come from its image_path column)")
        parts.append(EmbeddingPart(number, npy, parquet))
    if not parts:
        raise ValueError(f"{folder}/img_emb holds no img_emb_N.npy file")
    return sorted(parts, key=lambda p: p.number)


def read_part_ids(part: EmbeddingPart) -> list[str]:
    """The ``image_path`` column of a part's parquet file (pyarrow), as item ids."""
    from .._extras import require

    require("ray", "clip-retrieval metadata (parquet files)", ["pyarrow"])
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(part.parquet, columns=["image_path"])
    except Exception as exc:  # pyarrow raises ArrowInvalid, KeyError, OSError ...
        raise ValueError(f"{part.parquet}: cannot read its image_path column ({type(exc).__name__}: {exc})") from None
    column = table.column("image_path")
    if column.null_count:
        raise ValueError(f"{part.parquet}: image_path has {column.null_count} empty values (ids must be names)")
    return [str(v) for v in column.to_pylist()]


def read_embedding_part(part: EmbeddingPart) -> tuple[np.ndarray, list[str]]:
    """A part's embeddings (memory-mapped, float16 or float32 as stored) and ids, checked:
    ValueError naming the file for a damaged array, NaN, or a row count that the metadata
    does not match."""
    try:
        array = map_embeddings(str(part.npy))
    except OSError as exc:  # a missing file or a folder: the same ValueError as any damage
        raise ValueError(str(exc)) from None
    check_finite(str(part.npy), array)
    ids = read_part_ids(part)
    if len(ids) != array.shape[0]:
        raise ValueError(f"{part.parquet} has {len(ids):,} rows for {array.shape[0]:,} embeddings in {part.npy}")
    return array, ids


def check_embedding_part(part: EmbeddingPart) -> int:
    """A part's row count after the checks that need no data read (array header, parquet
    metadata): ValueError naming the file, before a distributed run starts any work."""
    try:
        rows = map_embeddings(str(part.npy)).shape[0]
    except OSError as exc:
        raise ValueError(str(exc)) from None
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(part.parquet)
        names = meta.schema_arrow.names
        count = meta.metadata.num_rows
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError ...
        raise ValueError(f"{part.parquet}: not a readable parquet file ({type(exc).__name__}: {exc})") from None
    if "image_path" not in names:
        raise ValueError(f"{part.parquet} has no image_path column (columns: {', '.join(names)[:200]})")
    if count != rows:
        raise ValueError(f"{part.parquet} has {count:,} rows for {rows:,} embeddings in {part.npy}")
    return rows
