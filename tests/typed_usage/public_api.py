"""A typed user of smic_fast's public API: `mypy --strict` must pass on this file, and it runs.

tests/test_typing.py checks both. The `assert_type` lines pin what a typed caller gets back (a
change that turns a result into `Any` or a union fails mypy here), so keep them in step with
the README's examples.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, assert_type

import numpy as np

import smic_fast as smic
from smic_fast.coding import range_coder


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    unit: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit


def core_api(E: np.ndarray) -> None:
    D = smic.learn_dictionary(E, n_atoms=32, n_nonzero=3, n_iter=2)
    assert_type(D, np.ndarray)
    D2, errors = smic.learn_dictionary(E, 32, 3, n_iter=2, return_errors=True)
    assert_type(errors, np.ndarray)
    indices, coefs = smic.omp(E, D, 3)
    assert_type(indices, np.ndarray)
    again = smic.OmpCoder(D2).encode(E, 3, tol=None)
    assert_type(again, tuple[np.ndarray, np.ndarray])
    approx = smic.reconstruct(indices, coefs, D)
    levels = smic.quantize(coefs, step=0.05)
    back = smic.dequantize(levels, step=0.05)
    freqs = range_coder.frequencies_of(indices.ravel() + 1, alphabet_size=33)
    data = range_coder.encode(indices.ravel() + 1, freqs)
    assert_type(data, bytes)
    symbols = range_coder.decode(data, freqs, indices.size)
    assert np.array_equal(symbols, indices.ravel() + 1)
    assert approx.shape == E.shape and back.shape == coefs.shape


def collection_api(E: np.ndarray, folder: Path) -> None:
    info = smic.compress(E, folder / "photos.smic", ids=[f"img{i}" for i in range(len(E))])
    assert_type(info, dict[Any, Any])
    col = smic.open(folder / "photos.smic")
    assert_type(col, smic.Collection)
    assert_type(col.ids, list[str])
    first: np.ndarray = col[0]
    by_id: np.ndarray = col["img1"]
    everything = col.embeddings()
    assert len(col) == len(E) and everything.shape == E.shape
    assert first.shape == by_id.shape == (E.shape[1],)

    d = smic.Dictionary.fit(E, n_atoms=32)
    assert_type(d, smic.Dictionary)
    saved = d.save(folder / "shared.smicd")
    assert_type(saved, Path)
    smic.compress(E, folder / "day1.smic", dictionary=d)
    col1 = smic.open(folder / "day1.smic", dictionary=folder / "shared.smicd")
    coded = d.encode(E[0])
    assert_type(coded, bytes)
    decoded = d.decode(coded)
    assert float(decoded @ E[0]) > 0.5 and len(col1) == len(E)
    try:
        smic.open(folder / "day1.smic")
    except smic.DictionaryMismatchError as error:
        assert "dictionary" in str(error).lower()
    else:
        raise AssertionError("a shared-dictionary collection opened without its dictionary")


def main() -> None:
    assert_type(smic.__version__, str)
    E = unit_rows(200, 24, seed=0)
    core_api(E)
    with tempfile.TemporaryDirectory() as folder:
        collection_api(E, Path(folder))
    print(f"smic-fast {smic.__version__}: the typed public API ran")


if __name__ == "__main__":
    main()
