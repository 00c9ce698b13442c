"""What the atoms of a dictionary mean, and what the bits of one item say (``smic atoms``,
``smic explain``).

Each atom is named by the text labels whose CLIP text embeddings are nearest to it (cosine):
the SMIC paper's observation that a learned dictionary is a semantic projector. An item's code
is a few atoms with signed weights (the largest is ±1 in the smic layout, the others quantised
ratios; in the paper layout, dequantised coefficients); :func:`explain_item` lists them with
their labels.

    labels = read_labels("labels.txt")
    text = TextEncoder("default").encode(labels)            # (L, d) unit
    named = label_atoms(Dictionary.load("d.smicd").atoms, labels, text)
    explain_item(smic_fast.open("photos.smic"), "beach.jpg", named)
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..coding.codec import CodingParams, ItemSymbols
from ..coding.quantizer import dequantize

__all__ = ["AtomLabels", "explain_item", "item_atoms", "label_atoms", "read_labels"]

MAX_LABELS_BYTES = 16 << 20  # a labels file larger than this is refused


@dataclass
class AtomLabels:
    """The `top` labels nearest to one atom, best first, with their cosine similarities."""

    atom: int
    labels: list[str]
    scores: list[float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_labels(path: str | os.PathLike) -> list[str]:
    """Labels from a UTF-8 text file, one a line; blank lines and ``#`` comments are skipped and
    repeats kept once. Raises FileNotFoundError, or ValueError for an empty, binary, non-UTF-8 or
    oversized file."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"labels file {p} is a directory")
    size = p.stat().st_size  # FileNotFoundError names the path
    if size > MAX_LABELS_BYTES:
        raise ValueError(f"labels file {p} is {size} bytes (more than {MAX_LABELS_BYTES}); one label a line")
    data = p.read_bytes()
    if b"\x00" in data:
        raise ValueError(f"labels file {p} is binary (NUL bytes); expected UTF-8 text, one label a line")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"labels file {p} is not UTF-8 text ({error})") from None
    labels: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        label = line.strip()
        if label and not label.startswith("#") and label not in seen:
            seen.add(label)
            labels.append(label)
    if not labels:
        raise ValueError(f"labels file {p} has no labels (one a line; blank lines and # comments are skipped)")
    return labels


def label_atoms(atoms: np.ndarray, labels: list[str], text_embeddings: np.ndarray, top: int = 3) -> list[AtomLabels]:
    """Name each atom (row of `atoms`) by its `top` nearest labels by cosine similarity.

    Ties are broken by label order, so the result is deterministic."""
    atoms = np.asarray(atoms, dtype=np.float64)
    text = np.asarray(text_embeddings, dtype=np.float64)
    if atoms.ndim != 2 or text.ndim != 2 or atoms.shape[1] != text.shape[1]:
        raise ValueError(f"atoms {atoms.shape} and text embeddings {text.shape} must be (K, d) and (L, d)")
    if len(labels) != len(text):
        raise ValueError(f"{len(labels)} labels but {len(text)} text embeddings")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be a positive integer, got {top!r}")
    unit_atoms = atoms / np.maximum(np.linalg.norm(atoms, axis=1, keepdims=True), 1e-30)
    unit_text = text / np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-30)
    scores = unit_atoms @ unit_text.T
    top = min(top, len(labels))
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    return [AtomLabels(k, [labels[j] for j in row], [round(float(scores[k, j]), 6) for j in row])
            for k, row in enumerate(order)]


def atom_weights(symbols: ItemSymbols, params: CodingParams) -> list[tuple[int, float]]:
    """(atom, weight) of a one-row code, as the decoder weighs them (CodingDictionary::reconstruct
    in the core); repeated atoms (paper layout padding) are summed."""
    total: dict[int, float] = {}
    if params.layout == "paper":
        half = 1 << (params.paper_bits - 1)
        for atom, level in zip(symbols.rest_index[0], symbols.rest_level[0]):
            total[int(atom)] = total.get(int(atom), 0.0) + (int(level) - half) * (params.paper_range / half)
    elif symbols.counts[0] > 0:
        first = int(symbols.first[0])
        total[first // 2] = -1.0 if first % 2 else 1.0
        used = symbols.rest_index[0] >= 0
        levels = (symbols.rest_level[0][used] - params.max_level).astype(np.int32)
        for atom, weight in zip(symbols.rest_index[0][used], dequantize(levels, params.step)):
            total[int(atom)] = total.get(int(atom), 0.0) + float(weight)
    pairs = [(atom, weight) for atom, weight in total.items() if weight != 0.0]
    return sorted(pairs, key=lambda pair: (-abs(pair[1]), pair[0]))


def item_atoms(collection, key: int | str) -> list[tuple[int, float]]:
    """(atom, weight) pairs of one item of an open collection, largest |weight| first; the item's
    reconstruction is the normalised sum of weight x atom."""
    symbols: ItemSymbols = collection.item_symbols(key)
    return atom_weights(symbols, collection.dictionary.params)


def explain_item(collection, key: int | str, named: list[AtomLabels] | None = None) -> dict[str, Any]:
    """What one item's code says: its atoms, weights and (when given) the atoms' labels."""
    pairs = item_atoms(collection, key)
    position = collection.ids.index(key) if isinstance(key, str) else int(key) % len(collection)
    atoms = []
    for atom, weight in pairs:
        entry: dict[str, Any] = {"atom": atom, "weight": round(weight, 6)}
        if named is not None:
            entry["labels"] = named[atom].labels
            entry["scores"] = named[atom].scores
        atoms.append(entry)
    return {"id": collection.ids[position], "position": position, "atoms": atoms,
            "n_atoms": collection.dictionary.n_atoms, "layout": collection.dictionary.params.layout}
