"""Semantic arithmetic in CLIP space: weighted sums of image, text and collection-item
embeddings, and what such a sum looks like in a collection's dictionary.

    v = combine([(1.0, "photos.smic:beach.jpg"), (1.0, "text:snow"), (-1.0, "text:summer")],
                collection=col)                    # unit (d,) vector
    v = combine([(1.0, e1), (0.5, e2)])            # plain arrays: sum(w * e / |e|) / |...|

:func:`combine` normalises every term to unit length, adds them with their weights and
normalises the sum (the numpy definition, tested as such). Terms are arrays or references:
``text:WORDS`` (the collection's text tower, exported with ``smic export-text``),
``image:PATH`` (or the path of an existing image file: its image tower), ``item:ID`` or
``PHOTOS.smic:ID`` (a decoded item of the collection). :func:`parse_expression` reads the
``TERM + TERM - TERM`` form of ``smic arith``; :func:`code_of` gives a vector's code over a
dictionary, the way ``smic explain`` shows an item's.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Term", "changes", "code_of", "combine", "parse_expression", "resolve_term"]

_OPERATORS = {"+": 1.0, "-": -1.0}


@dataclass(frozen=True)
class Term:
    """One term of an expression: its signed weight and what it names (``text:..``, ``image:..``,
    ``item:ID`` or ``PHOTOS.smic:ID``)."""

    weight: float
    ref: str

    @property
    def kind(self) -> str:
        """"text", "image" or "item"."""
        head, sep, _ = self.ref.partition(":")
        if sep and head in ("text", "image", "item"):
            return head
        if _item_reference(self.ref) is not None:
            return "item"
        return "image"

    @property
    def value(self) -> str:
        """The text, the image path or the item id."""
        head, sep, rest = self.ref.partition(":")
        if sep and head in ("text", "image", "item"):
            return rest
        item = _item_reference(self.ref)
        return item[1] if item is not None else self.ref

    @property
    def collection(self) -> str | None:
        """The collection a ``PHOTOS.smic:ID`` term names (None otherwise)."""
        item = _item_reference(self.ref)
        return item[0] if item is not None and not self.ref.startswith("item:") else None


def _item_reference(ref: str) -> tuple[str, str] | None:
    """("photos.smic", "ID") for "photos.smic:ID"."""
    marker = ".smic:"
    at = ref.find(marker)
    if at < 0:
        return None
    return ref[:at + len(".smic")], ref[at + len(marker):]


def _weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a weight (expected a number before '*')") from None
    if not math.isfinite(value):
        raise ValueError(f"weight {text!r} is not finite")
    return value


def parse_expression(tokens: Sequence[str], weight: float = 1.0) -> list[Term]:
    """Terms of ``TERM (+|- TERM)*``: the first term has weight 1, each later one +-`weight`;
    a term written ``W*REF`` has W as its own weight instead (times the sign before it).
    A leading ``+`` or ``-`` signs the first term. Raises ValueError for an empty expression,
    two operators or two terms in a row, a trailing operator or an empty reference."""
    if not math.isfinite(weight):
        raise ValueError(f"--weight must be finite, got {weight}")
    tokens = [t for t in tokens]
    if not tokens:
        raise ValueError("empty expression: give at least one term, e.g. \"photos.smic:ID\" + \"text:snow\"")
    terms: list[Term] = []
    sign: float | None = None
    for token in tokens:
        if token in _OPERATORS:
            if sign is not None:
                raise ValueError(f"two operators in a row before {token!r}")
            sign = _OPERATORS[token]
            continue
        if terms and sign is None:
            raise ValueError(f"missing + or - between {terms[-1].ref!r} and {token!r}")
        ref, own = token, None
        head, star, rest = token.partition("*")
        if star and head and not os.path.exists(token):
            try:
                own = _weight(head)
                ref = rest
            except ValueError:
                ref, own = token, None
        if not ref.strip() or ref.endswith(":") and ref[:-1] in ("text", "image", "item"):
            raise ValueError(f"empty term {token!r}")
        base = own if own is not None else (1.0 if not terms else weight)
        terms.append(Term((1.0 if sign is None else sign) * base, ref))
        sign = None
    if sign is not None:
        raise ValueError("the expression ends with an operator")
    if not terms:
        raise ValueError("empty expression: give at least one term")
    return terms


def combine(terms: Sequence[tuple[float, Any]], *, collection=None, text_encoder=None,
            image_encoder=None) -> np.ndarray:
    """The unit (d,) float32 vector ``sum_i w_i x_i / |x_i|`` normalised, for (w_i, x_i) pairs.

    Each x_i is a (d,) array or a reference string resolved by :func:`resolve_term`
    (``text:..``, ``image:..``, ``item:ID``, ``PHOTOS.smic:ID``) with `collection` and the
    encoders (loaded from the collection's model when not given). Raises ValueError for no
    terms, a zero or non-finite term, mismatched dimensions, or terms that cancel out."""
    pairs = list(terms)
    if not pairs:
        raise ValueError("empty expression: nothing to combine")
    cache: dict[str, Any] = {"text": text_encoder, "image": image_encoder}
    total: np.ndarray | None = None
    for i, pair in enumerate(pairs):
        try:
            weight, x = pair
        except (TypeError, ValueError):
            raise ValueError(f"term {i} must be a (weight, embedding or reference) pair, got {pair!r}") from None
        if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating, np.integer)) \
                or not math.isfinite(float(weight)):
            raise ValueError(f"term {i}: the weight must be a finite number, got {weight!r}")
        name = x if isinstance(x, str) else f"term {i}"
        vector = resolve_term(x, collection, cache) if isinstance(x, str) else np.asarray(x)
        if vector.ndim != 1 or vector.dtype.kind not in "fiu":
            raise ValueError(f"{name}: expected a (d,) numeric embedding, got shape {vector.shape} dtype {vector.dtype}")
        vector = vector.astype(np.float64)
        if not np.isfinite(vector).all():
            raise ValueError(f"{name}: contains NaN or infinity")
        if total is not None and len(vector) != len(total):
            raise ValueError(f"{name} has dimension {len(vector)}, the terms before it {len(total)}")
        if collection is not None and len(vector) != collection.dim:
            raise ValueError(f"{name} has dimension {len(vector)}, the collection {collection.dim}")
        length = np.linalg.norm(vector)
        if length == 0:
            raise ValueError(f"{name} is a zero vector (it has no direction)")
        part = float(weight) * vector / length
        total = part if total is None else total + part
    assert total is not None
    length = np.linalg.norm(total)
    if not length > 1e-12:
        raise ValueError("the terms cancel out: their weighted sum is zero")
    return (total / length).astype(np.float32)


def resolve_term(ref: str, collection=None, cache: dict[str, Any] | None = None) -> np.ndarray:
    """The embedding a reference names (see :class:`Term`); `cache` keeps the encoders loaded
    (keys "text", "image"). Raises ValueError (no collection, unknown item, unreadable image),
    ModelNotFoundError (no exported tower; the message names the command that makes it)."""
    cache = {} if cache is None else cache
    term = Term(1.0, ref)
    kind, value = term.kind, term.value
    if kind == "item":
        if collection is None:
            raise ValueError(f"{ref}: an item term needs a collection")
        if term.collection is not None and Path(term.collection).resolve() != Path(collection.path).resolve():
            raise ValueError(f"{ref}: every item must come from one collection ({collection.path})")
        try:
            return collection[value]
        except KeyError:
            raise ValueError(f"no item {value!r} in {collection.path} ({len(collection)} items)") from None
    model = _model(collection, cache)
    if kind == "text":
        if not value.strip():
            raise ValueError(f"{ref}: empty text")
        if cache.get("text") is None:
            from ..encode.text_tower import TextEncoder
            cache["text"] = TextEncoder(model, cache=cache.get("cache_dir"))
        return cache["text"].encode([value])[0]
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"{ref}: no image file {path} (texts are written text:WORDS, items PHOTOS.smic:ID)")
    if cache.get("image") is None:
        cache["image"] = _image_encoder(model, cache.get("cache_dir"))
    result = cache["image"].encode_paths([str(path)])
    if result.skipped:
        raise ValueError(f"{path}: {result.skipped[0].reason}")
    return result.embeddings[0]


def _image_encoder(model: str, cache_dir: str | None):
    from ..encode.clip_onnx import ClipEncoder
    return ClipEncoder(model, cache=cache_dir)


def _model(collection, cache: dict[str, Any]) -> str:
    model = cache.get("model") or (collection.header.get("model") if collection is not None else None)
    if not model:
        raise ValueError("no CLIP model to embed texts and images with: the collection records none; pass --model")
    return str(model)


def code_of(vector: np.ndarray, dictionary) -> list[tuple[int, float]]:
    """(atom, weight) pairs of `vector`'s code over `dictionary`, largest |weight| first: what
    a collection would store for it (the same coder and quantizer as compress)."""
    from .atoms import atom_weights
    from ..coding.dictionary import normalize_embeddings

    unit = normalize_embeddings(np.asarray(vector, dtype=np.float32)[None, :], "vector", dictionary.dim)[0]
    symbols, _ = dictionary._choose(unit)
    return atom_weights(symbols, dictionary.params)


def changes(before: list[tuple[int, float]], after: list[tuple[int, float]]) -> dict[str, list[tuple[int, float]]]:
    """Atoms that came (in `after` only), went (in `before` only) and stayed (weight after)."""
    old, new = dict(before), dict(after)
    return {"came": [(a, w) for a, w in after if a not in old], "went": [(a, w) for a, w in before if a not in new],
            "stayed": [(a, w) for a, w in after if a in old]}

