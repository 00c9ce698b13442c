"""Search a .smic collection in the compressed domain: cosine top-k of query embeddings over the
stored item codes, without decoding the (N, d) embeddings.

    col = smic_fast.open("photos.smic")
    result = col.search(queries, k=10)              # exhaustive: exact cosines of the decoded items
    result = col.search(queries, k=10, nprobe=8)    # IVF: only the 8 lists whose centroids score highest
    result.ids[0], result.scores[0]                 # best first

Each item is a few weighted atoms, so its cosine with a unit query q is a weighted sum of a few
entries of the table D q, divided by the norm of the item's reconstruction (precomputed from
the atoms' Gram matrix): one (q x K) product, then a few lookups per item. Items are grouped
in lists, an inverted file: by default (``partition="kmeans"``) a spherical k-means over the
decoded embeddings, run on the codes (about sqrt(N) lists, or ``n_lists``), and ``nprobe``
scans the lists whose centroids score highest, as FAISS's IVF indexes do;
``partition="lead_atom"`` is the earlier grouping by each item's largest atom, kept for
comparison (its lists inherit the atoms' popularity). The partition only decides which items
a query scans: every score is the exact cosine with the decoded item. With a refinement layer
(RESD), ``rerank=R`` re-scores the R best candidates with their refined embeddings.

The index is built in the C++ core (``smic/search.hpp``) on the first search and kept with the
open collection; :func:`index_info` reports its memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _core
from .._validation import as_count, as_float32_matrix, as_threads

if TYPE_CHECKING:  # pragma: no cover
    from ..store.collection import Collection

__all__ = ["SearchResult", "index_info", "search", "search_index"]

_CACHE = "_search_index_cache"


@dataclass
class SearchResult:
    """Top-k of each query, best first: ``ids[q][j]`` (item ids), ``scores`` (q, k) cosines,
    ``positions`` (q, k) item positions. Where a query has fewer than k candidates (``nprobe``
    lists holding fewer items), its row ends with id None, position -1 and score -inf."""

    ids: list[list[str | None]]
    scores: np.ndarray
    positions: np.ndarray
    nprobe: int | None = None
    rerank: int | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def to_dicts(self) -> list[list[dict[str, Any]]]:
        """Per query, [{"id", "position", "score"}] of its valid results (JSON-ready)."""
        out = []
        for ids, positions, scores in zip(self.ids, self.positions, self.scores):
            out.append([{"id": i, "position": int(p), "score": float(s)}
                        for i, p, s in zip(ids, positions, scores) if p >= 0])
        return out


PARTITIONS = ("kmeans", "lead_atom")


def search_index(collection: Collection, n_threads: int | None = None, *, partition: str = "kmeans",
                 n_lists: int | None = None) -> _core.SearchIndex:
    """The collection's search index, built on first use (decoding every item's code once, in
    parallel; then, for ``partition="kmeans"``, a k-means over the codes into ``n_lists`` lists,
    None: about sqrt(N)) and kept while the collection object is open and unchanged. Asking for
    another partition or number of lists builds a new index (and keeps that one)."""
    if partition not in PARTITIONS:
        raise ValueError(f"partition must be one of {PARTITIONS}, not {partition!r}")
    lists = 0 if n_lists is None else as_count(n_lists, "n_lists", minimum=1)
    if lists > len(collection):
        raise ValueError(f"n_lists ({lists}) must be at most the number of items ({len(collection)})")
    core = collection._core
    cached = collection.__dict__.get(_CACHE)
    # An append lapses the cache: a rewriting one reloads _core, one in place adds a batch to
    # it (the old index must not be used then: it points into the batches it was built on).
    key = (core, len(core), partition, lists)
    if cached is not None and cached[0] is core and cached[1:4] == key[1:]:
        return cached[4]
    collection.__dict__.pop(_CACHE, None)
    index = _core.SearchIndex(core, 0 if n_threads is None else as_threads(n_threads),
                              partition=partition, n_lists=lists)
    collection.__dict__[_CACHE] = (*key, index)
    return index


def index_info(collection: Collection) -> dict[str, Any]:
    """Memory and shape of the collection's search index (builds it if needed): bytes held by
    the index and per item, beside the collection's bits per item on disk."""
    cached = collection.__dict__.get(_CACHE)
    index = cached[4] if cached is not None and cached[0] is collection._core else search_index(collection)
    n = len(index)
    sizes = index.list_sizes
    return {
        "items": n, "partition": index.partition, "lists": index.n_lists, "non_empty_lists": int(sum(1 for s in sizes[:-1] if s)),
        "items_without_atoms": int(sizes[-1]), "terms_per_item": index.terms,
        "index_bytes": index.memory_bytes, "index_bytes_per_item": index.memory_bytes / n if n else None,
        "file_bytes": collection._core.file_bytes,
        "file_bits_per_item": 8 * collection._core.file_bytes / n if n else None,
    }


def _queries(queries: object, dim: int) -> np.ndarray:
    array = np.asarray(queries)
    if array.ndim == 1:
        array = array[None, :]
    array = as_float32_matrix(array, "queries")
    if array.shape[1] != dim:
        raise ValueError(f"queries have dimension {array.shape[1]}, the collection {dim} "
                         "(embed them with the collection's CLIP model)")
    if len(array) == 0:
        raise ValueError("queries has no rows: nothing to search for")
    zero = np.flatnonzero(~np.any(array != 0, axis=1))
    if len(zero):
        raise ValueError(f"query {int(zero[0])} is zero (a cosine needs a direction)")
    return np.array(array, dtype=np.float32, order="C", copy=True)  # ours alone while the GIL is released


def search(collection: Collection, queries: object, k: int = 10, *, nprobe: int | None = None,
           rerank: int | None = None, n_threads: int | None = None, partition: str = "kmeans",
           n_lists: int | None = None) -> SearchResult:
    """Cosine top-k of (q, d) query embeddings (or one (d,) query) over the collection's codes;
    see :meth:`smic_fast.Collection.search`."""
    n = len(collection)
    if n == 0:
        raise ValueError("the collection is empty: nothing to search")
    k = as_count(k, "k", minimum=1)
    q = _queries(queries, collection.dim)
    probe = 0 if nprobe is None else as_count(nprobe, "nprobe", minimum=1)
    again = 0 if rerank is None else as_count(rerank, "rerank", minimum=1)
    if again and collection.residual_step is None:
        raise ValueError(f"{collection.path} has no refinement layer (RESD), so its search scores are already "
                         "those of the decoded embeddings: there is nothing to rerank (drop rerank)")
    threads = 0 if n_threads is None else as_threads(n_threads)
    index = search_index(collection, n_threads, partition=partition, n_lists=n_lists)
    k = min(k, n)
    positions, scores = index.search(q, k, probe, max(again, k) if again else 0, threads)
    ids = collection._ids
    named = [[ids[p] if p >= 0 else None for p in row] for row in positions.tolist()]
    return SearchResult(named, scores, positions, nprobe=nprobe, rerank=rerank)
