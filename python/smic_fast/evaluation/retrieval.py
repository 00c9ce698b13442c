"""Retrieval quality of reconstructed embeddings: recall@k of nearest-neighbour search.

For a set of query items, the true neighbours are the k nearest items by inner product among
the *original* unit embeddings; the found neighbours are the k nearest among the
*reconstructed* ones, searched with the original query (a search back-end keeps compressed
items, queries arrive fresh). The query itself is excluded from both lists. recall@k is the
mean fraction of true neighbours found. Exact search with numpy matrix products (the same
result as a FAISS flat inner-product index, without the dependency).
"""
from __future__ import annotations

import numpy as np

__all__ = ["query_rows", "true_neighbours", "recall_at_k"]

_BLOCK = 256  # queries per matrix product: bounds memory at 256 x N floats


def query_rows(n_items: int, n_queries: int, seed: int = 0) -> np.ndarray:
    """Positions of the query items: a fixed random sample of min(n_queries, n_items)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_items, size=min(n_queries, n_items), replace=False))


def _top_k(database: np.ndarray, queries: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """(len(rows), k) positions of the k largest inner products, self excluded, best first."""
    out = np.empty((len(rows), k), np.int64)
    for start in range(0, len(rows), _BLOCK):
        block = rows[start:start + _BLOCK]
        scores = queries[start:start + _BLOCK] @ database.T
        scores[np.arange(len(block)), block] = -np.inf  # not its own neighbour
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        out[start:start + len(block)] = np.take_along_axis(part, order, axis=1)
    return out


def true_neighbours(original: np.ndarray, rows: np.ndarray, k: int = 10) -> np.ndarray:
    """The k true neighbours of each query row among the original embeddings."""
    original = np.ascontiguousarray(original, dtype=np.float32)
    k = min(k, len(original) - 1)
    if k < 1:
        raise ValueError("recall needs at least two items")
    return _top_k(original, original[rows], rows, k)


def recall_at_k(original: np.ndarray, reconstructed: np.ndarray, rows: np.ndarray,
                truth: np.ndarray | None = None, k: int = 10) -> float:
    """Mean fraction of each query's k true neighbours found by searching the reconstructions.

    Args:
        original, reconstructed: (N, d) unit embeddings, same item order.
        rows: query positions (see :func:`query_rows`).
        truth: :func:`true_neighbours` of the same rows and k, if already computed.
    """
    original = np.ascontiguousarray(original, dtype=np.float32)
    reconstructed = np.ascontiguousarray(reconstructed, dtype=np.float32)
    if original.shape != reconstructed.shape:
        raise ValueError(f"shapes differ: {original.shape} vs {reconstructed.shape}")
    if truth is None:
        truth = true_neighbours(original, rows, k)
    k = truth.shape[1]
    found = _top_k(reconstructed, original[rows], rows, k)
    hits = [len(np.intersect1d(t, f, assume_unique=True)) for t, f in zip(truth, found)]
    return float(np.mean(hits) / k)
