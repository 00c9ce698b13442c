"""Embeddings a user already has, as ``.npy`` files: the input stage of ``compress``, ``append``
and ``dictionary fit`` when their inputs end in ``.npy``.

Each file is memory-mapped (``np.load(..., mmap_mode="r")``), never loaded whole: it must hold
a 2-D float16, float32 or float64 array. Ids come from ``--ids`` (a JSON list, or a text file
with one id per line), else from each file's sibling ``E.ids.json`` (what ``smic decompress
--embeddings E.npy`` writes), else they are positions. Every check below runs before anything
is written: a non-2-D array, a mismatch between ids and rows, NaN or infinity in a row, and
different dimensions across files each stop the command with a message naming the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..sources.inputs import check_finite, find_embedding_parts, is_npy, map_embeddings, read_embedding_part
from ._shared import EXIT_USAGE, CliError



def npy_inputs(inputs: list[str]) -> bool:
    """True when every input is a .npy file, False when none is; CliError when mixed."""
    npy = [is_npy(p) for p in inputs]
    if any(npy) and not all(npy):
        raise CliError("give either photos or .npy embeddings in one call, not both: photos are encoded "
                       "here with --model, a .npy already holds embeddings of some model, and one "
                       "collection must hold embeddings of one model (run the command twice: "
                       + ", ".join(p for p, n in zip(inputs, npy) if n)[:200] + " are .npy)", EXIT_USAGE)
    return all(npy)


def ids_path(embeddings_path: str | Path) -> Path:
    """Where the ids of an embeddings file go: ``out.npy`` -> ``out.ids.json``."""
    path = Path(embeddings_path)
    return path.with_name(path.stem + ".ids.json") if path.suffix == ".npy" else path.with_name(path.name + ".ids.json")


@dataclass
class NpyEmbeddings:
    """Memory-mapped embeddings of one or more .npy files, with their ids (None: positions)."""

    blocks: list[np.ndarray]
    paths: list[str]
    ids: list[str] | None
    ids_source: str  # "--ids FILE", "sibling .ids.json" or "positions"

    @property
    def n(self) -> int:
        return sum(b.shape[0] for b in self.blocks)

    @property
    def dim(self) -> int:
        return self.blocks[0].shape[1]

    def rows(self) -> np.ndarray:
        """All rows as one in-memory float32 array (for appends, which code in one batch)."""
        return np.concatenate([np.asarray(b, dtype=np.float32) for b in self.blocks])


def _map(path: str) -> np.ndarray:
    """The checked memory map of a .npy (smic_fast.sources.inputs.map_embeddings) or a CliError."""
    try:
        return map_embeddings(path)
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _check_finite(path: str, array: np.ndarray) -> None:
    try:
        check_finite(path, array)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def read_ids_file(path: str | Path) -> list[str]:
    """Ids from a JSON list of strings (``.json``) or a text file of one id per line."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8", "surrogatepass")  # ids as the format keeps them
    except FileNotFoundError:
        raise CliError(f"ids file {path} does not exist", EXIT_USAGE) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read ids file {path} ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            ids = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"ids file {path} is not valid JSON ({exc})") from None
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise CliError(f"ids file {path} must hold a JSON list of non-empty strings")
        return ids
    ids = text.split("\n")
    if ids and ids[-1] == "":
        ids.pop()  # the final newline
    ids = [i[:-1] if i.endswith("\r") else i for i in ids]
    empty = next((n for n, i in enumerate(ids) if not i), None)
    if empty is not None:
        raise CliError(f"ids file {path}: line {empty + 1} is empty (one non-empty id per line)")
    return ids


def open_embeddings(paths: list[str], ids_file: str | None = None, dim: int | None = None,
                    check_finite: bool = True) -> NpyEmbeddings:
    """Map and check .npy embeddings and their ids; CliError naming the file on any problem."""
    blocks = [_map(p) for p in paths]
    for path, block in zip(paths, blocks):
        wanted = dim if dim is not None else blocks[0].shape[1]
        if block.shape[1] != wanted:
            against = f"the collection's dimension {dim}" if dim is not None else f"{paths[0]} has {wanted}"
            raise CliError(f"{path} has embeddings of dimension {block.shape[1]}, but {against}")
    n = sum(b.shape[0] for b in blocks)
    names = " + ".join(paths) if len(paths) <= 3 else f"{paths[0]} + {len(paths) - 1} more files"
    if ids_file is not None:
        ids: list[str] | None = read_ids_file(ids_file)
        source = f"--ids {ids_file}"
        if len(ids) != n:
            raise CliError(f"ids file {ids_file} has {len(ids):,} ids for {n:,} embeddings in {names}")
    else:
        siblings = [ids_path(p) for p in paths]
        present = [s.exists() for s in siblings]
        if any(present) and not all(present):
            missing = next(p for p, ok in zip(paths, present) if not ok)
            raise CliError(f"{missing} has no {ids_path(missing).name} beside it while other inputs have "
                           "one: pass --ids for all of them", EXIT_USAGE)
        if all(present):
            ids, source = [], "sibling .ids.json"
            for path, sibling, block in zip(paths, siblings, blocks):
                part = read_ids_file(sibling)
                if len(part) != block.shape[0]:
                    raise CliError(f"{sibling} has {len(part):,} ids for {block.shape[0]:,} embeddings in {path}")
                ids += part
        else:
            ids, source = None, "positions"
    if ids is not None:
        seen: set[str] = set()
        for item_id in ids:
            if item_id in seen:
                raise CliError(f"duplicate id {item_id!r} in {source}")
            seen.add(item_id)
    if check_finite:
        for path, block in zip(paths, blocks):
            _check_finite(path, block)
    return NpyEmbeddings(blocks, list(paths), ids, source)


def clip_retrieval_embeddings(inputs: list[str]) -> NpyEmbeddings:
    """The parts of one clip-retrieval folder (img_emb/img_emb_N.npy, memory-mapped, float16 or
    float32; ids from metadata/metadata_N.parquet's image_path), checked like .npy inputs."""
    if len(inputs) != 1:
        raise CliError("give one clip-retrieval folder per call", EXIT_USAGE)
    try:
        parts = [read_embedding_part(p) for p in find_embedding_parts(inputs[0])]
    except ValueError as exc:
        raise CliError(str(exc)) from None
    dims = {a.shape[1] for a, _ in parts}
    if len(dims) > 1:
        raise CliError(f"{inputs[0]}: its parts have embeddings of dimensions {sorted(dims)}")
    ids = [i for _, part_ids in parts for i in part_ids]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        duplicate = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise CliError(f"{inputs[0]}: duplicate image_path {duplicate!r}")
    return NpyEmbeddings([a for a, _ in parts], [str(p) for p in find_embedding_parts(inputs[0])], ids,
                         "metadata image_path")
