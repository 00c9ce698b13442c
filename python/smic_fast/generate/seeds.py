"""Per-item seeds: each item's noise depends only on the base seed and the item's id.

So regenerating one item gives the picture it gets when the whole collection is regenerated,
whatever the batch size or the order of items. The seed is a hash (SHA-256, stable across
Python versions and machines, unlike ``hash()``) of the base seed and the id.
"""
from __future__ import annotations

import hashlib

__all__ = ["item_seed", "item_seeds"]

_SEED_BITS = 63  # torch.Generator.manual_seed takes any non-negative int64


def item_seed(base_seed: int, item_id: str) -> int:
    """The seed of item `item_id` under `base_seed`: a non-negative 63-bit integer."""
    if isinstance(base_seed, bool) or not isinstance(base_seed, int):
        raise ValueError(f"seed must be an integer, got {base_seed!r}")
    if not isinstance(item_id, str):
        raise ValueError(f"item ids must be strings, got {item_id!r}")
    digest = hashlib.sha256(f"smic-seed\0{base_seed}\0{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << _SEED_BITS) - 1)


def item_seeds(base_seed: int, ids: list[str]) -> list[int]:
    """:func:`item_seed` of each id."""
    return [item_seed(base_seed, i) for i in ids]
