"""The core's reconstruction and paper-layout coding against the numpy reference they replaced
(moved here from smic_fast.coding.codec): the same symbols and bit-identical float32 embeddings, so
files decode exactly as they did when Python wrote them."""
from __future__ import annotations

import numpy as np
import pytest

import smic_fast as smic
from smic_fast.coding.codec import CodingParams, ItemSymbols
from smic_fast.coding.quantizer import dequantize
from smic_fast.learn.sparse_coding import OmpCoder


def smic_reconstruct(symbols: ItemSymbols, atoms: np.ndarray, params: CodingParams) -> np.ndarray:
    """Unit-norm embeddings from smic-layout symbols."""
    n = len(symbols)
    out = np.zeros((n, atoms.shape[1]), np.float64)
    has = symbols.counts > 0
    lead = symbols.first // 2
    sign = np.where(symbols.first % 2 == 1, -1.0, 1.0)
    out[has] = sign[has, None] * atoms[lead[has]]
    used = symbols.rest_index >= 0
    levels = np.where(used, symbols.rest_level - params.max_level, 0).astype(np.int32)
    weights = dequantize(levels, params.step).astype(np.float64)
    for j in range(symbols.rest_index.shape[1]):
        rows = np.flatnonzero(used[:, j])
        out[rows] += weights[rows, j, None] * atoms[symbols.rest_index[rows, j]]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def paper_items(embeddings: np.ndarray, coder: OmpCoder, params: CodingParams,
                n_threads: int | None = None) -> ItemSymbols:
    """Fixed-length symbols: s_max atoms in OMP order, coefficients on paper_bits bits."""
    indices, coefs = coder.encode(embeddings, params.s_max, n_threads=n_threads)
    half = 1 << (params.paper_bits - 1)
    step = params.paper_range / half
    levels = np.clip(np.round(coefs / step), -half, half - 1).astype(np.int32) + half
    # an early-stopped slot repeats atom 0 with coefficient 0 (the layout has no count)
    levels = np.where(indices >= 0, levels, half)
    indices = np.where(indices >= 0, indices, 0)
    n = len(embeddings)
    return ItemSymbols(np.full(n, params.s_max, np.int32), np.zeros(n, np.int32),
                       indices.astype(np.int32), levels.astype(np.int32))


def paper_reconstruct(symbols: ItemSymbols, atoms: np.ndarray, params: CodingParams) -> np.ndarray:
    half = 1 << (params.paper_bits - 1)
    weights = (symbols.rest_level.astype(np.float64) - half) * (params.paper_range / half)
    out = np.einsum("nk,nkd->nd", weights, atoms[symbols.rest_index].astype(np.float64))
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)


@pytest.fixture(scope="module")
def embeddings():
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(12, 40)).astype(np.float32)
    e = (centers[rng.integers(0, 12, 400)] + 0.5 * rng.normal(size=(400, 40))).astype(np.float32)
    e[7] = 0  # a zero embedding: coded as atom 0 (see item_choice.hpp)
    return e


@pytest.mark.parametrize("precision", ["float16", "int8"])
@pytest.mark.parametrize("quality", ["low", "high"])
def test_smic_layout_reconstructs_bit_for_bit(embeddings, precision, quality):
    d = smic.Dictionary.fit(embeddings, n_atoms=24, n_iter=3, precision=precision, quality=quality)
    unit = smic.coding.dictionary.normalize_embeddings(embeddings)[0]
    symbols = d.items_symbols(unit)
    reference = smic_reconstruct(symbols, d.atoms, d.params)
    assert np.array_equal(d.reconstruct(symbols), reference)


def test_paper_layout_codes_and_reconstructs_bit_for_bit(embeddings):
    d = smic.Dictionary.fit(embeddings, n_atoms=24, n_iter=3, layout="paper", paper_bits=5)
    unit = smic.coding.dictionary.normalize_embeddings(embeddings)[0]
    symbols = d.items_symbols(unit)
    reference = paper_items(unit, OmpCoder(d.atoms), d.params)
    for field in ("counts", "first", "rest_index", "rest_level"):
        np.testing.assert_array_equal(getattr(symbols, field), getattr(reference, field))
    assert np.array_equal(d.reconstruct(symbols), paper_reconstruct(symbols, d.atoms, d.params))


def aimed_float32(unit: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """What a refinement codes, written from docs/format.md in float32: s e - ê, s = 1 / c for
    c = e . ê >= 1/2 (summed in eight interleaved lanes combined pairwise), else 1."""
    products = (unit * decoded).astype(np.float32)
    lanes = [np.cumsum(products[:, lane::8], axis=1, dtype=np.float32)[:, -1] for lane in range(8)]
    c = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    aimed = c >= np.float32(0.5)
    s = np.divide(np.float32(1), c, out=np.ones_like(c), where=aimed)
    return (s[:, None] * unit - decoded).astype(np.float32)


def test_refinement_matches_its_numpy_definition(embeddings):
    d = smic.Dictionary.fit(embeddings, n_atoms=24, n_iter=3)
    unit = smic.coding.dictionary.normalize_embeddings(embeddings)[0]
    decoded = d.reconstruct(d.items_symbols(unit))
    levels = smic._core.residual_levels(unit, decoded, 0.02)
    np.testing.assert_array_equal(levels, smic.quantize(aimed_float32(unit, decoded), 0.02))
    # the target is on the item's ray and orthogonal to the decoded row (where cos >= 1/2)
    target = aimed_float32(unit, decoded).astype(np.float64) + decoded
    cosine = np.sum(unit.astype(np.float64) * decoded, axis=1)
    aimed = cosine >= smic._core.TRANSFORM_TARGET_MIN_COSINE
    assert aimed.mean() > 0.5
    np.testing.assert_allclose(np.sum((target - decoded) * decoded, axis=1)[aimed], 0, atol=1e-5)
    np.testing.assert_allclose(target[aimed] * cosine[aimed, None], unit[aimed], atol=1e-5)
    out = decoded + dequantize(levels, 0.02)
    norms = np.linalg.norm(out.astype(np.float64), axis=1, keepdims=True)
    expected = (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    assert np.array_equal(smic._core.refine(decoded, levels, 0.02), expected)
