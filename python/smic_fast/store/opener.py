"""``open()``: a collection, whether one .smic file or a sharded run's folder (``smic compress
--ray``), as one :class:`smic_fast.Collection`. It sits above both readers, so that the plain
file (:mod:`smic_fast.store.collection`) and the sharded run (:mod:`smic_fast.store.manifest`, which builds
on the plain file) never import each other in a circle."""
from __future__ import annotations

import os

from .collection import Collection
from ..coding.dictionary import Dictionary
from .manifest import find_manifest, open_sharded

__all__ = ["open"]


def open(path: str | os.PathLike, dictionary: Dictionary | str | os.PathLike | None = None) -> Collection:  # noqa: A001
    """Open a .smic collection. A collection coded with a shared dictionary needs it passed as
    ``dictionary`` (a :class:`Dictionary` or the path of its .smicd file).

    Raises:
        FileNotFoundError, FormatError (damaged, not a collection, newer version),
        DictionaryMismatchError (the shared dictionary is missing or another one).

    A sharded collection (``OUT.smic.d/`` of ``smic compress --ray``: its folder, its
    ``manifest.json``, or ``OUT.smic`` while only ``OUT.smic.d`` exists) opens as one
    read-only collection (:func:`smic_fast.store.manifest.open_sharded`).
    """
    if find_manifest(path) is not None:
        return open_sharded(path, dictionary)
    return Collection(path, dictionary)
