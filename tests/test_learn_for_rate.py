"""Learning the dictionary for the rate it will code at (issue 14): K-SVD whose sparse coding is
the coder's own rate-distortion choice, and the quality presets that use it."""
from __future__ import annotations

import numpy as np
import pytest

import smic_fast as smic
from problems import clustered_collection
from smic_fast.coding.codec import QUALITY_PRESETS, CodingParams
from smic_fast.coding.dictionary import normalize_embeddings, preset_n_atoms


@pytest.fixture(scope="module")
def collection() -> np.ndarray:
    return clustered_collection(np.random.default_rng(3), 1500, 48, 40)


def _rate_and_cosine(dictionary: smic.Dictionary, e: np.ndarray) -> tuple[float, float]:
    unit = normalize_embeddings(e)[0]
    s, cosine = dictionary._choose(unit)
    bits = dictionary._models.item_bits(s.counts, s.first, s.rest_index, s.rest_level)
    return float(np.mean(bits)), float(np.mean(cosine))


_SETTINGS = [(0.25, 4e-2), (0.25, 1.5e-2), (0.25, 6e-3), (0.125, 2.5e-3)]


@pytest.fixture(scope="module")
def curves(collection) -> dict[tuple[str, float, float], tuple[float, float]]:
    """(learn, step, rd_lambda) -> (mean bits, mean cosine) of the training items."""
    out = {}
    for step, rd_lambda in _SETTINGS:
        for learn in ("sparsity", "rate"):
            d = smic.Dictionary.fit(collection, n_atoms=32, n_nonzero=4, step=step, rd_lambda=rd_lambda,
                                    learn=learn, n_iter=8)
            out[learn, step, rd_lambda] = _rate_and_cosine(d, collection)
    return out


@pytest.mark.parametrize("step, rd_lambda", _SETTINGS)
def test_rate_learning_lowers_the_cost_it_codes_with(curves, step, rd_lambda):
    """The coder minimises (1 - cosine) + rd_lambda * bits per item; atoms learned for those
    codes give a lower mean cost than atoms learned for n_nonzero atoms per item."""
    cost = {learn: (1 - curves[learn, step, rd_lambda][1]) + rd_lambda * curves[learn, step, rd_lambda][0]
            for learn in ("sparsity", "rate")}
    assert cost["rate"] < cost["sparsity"]


@pytest.mark.parametrize("step, rd_lambda", [(0.25, 1.5e-2), (0.25, 6e-3)])
def test_rate_learning_codes_fewer_bits_at_a_better_cosine(curves, step, rd_lambda):
    """In the middle of the curve the gain is on both axes at once."""
    bits_before, cos_before = curves["sparsity", step, rd_lambda]
    bits_after, cos_after = curves["rate", step, rd_lambda]
    assert bits_after <= bits_before and cos_after >= cos_before


def test_at_a_huge_lambda_it_is_gain_shape_kmeans(collection):
    """Every item keeps one atom: the learning is K-SVD with one atom per item (gain-shape
    k-means: assignment by largest |correlation|, each atom refitted on its items) from the
    same seeded start, so the atoms are those of learn_dictionary(n_nonzero=1)."""
    unit = normalize_embeddings(collection)[0]
    rate = smic.learn_for_rate(unit, 32, CodingParams(s_max=4, step=0.25, rd_lambda=1e3), n_iter=8,
                               sparsity_iterations=0)
    kmeans = smic.learn_dictionary(unit, 32, 1, n_iter=8)
    assert np.min(np.abs(np.sum(rate * kmeans, axis=1))) > 0.999
    d = smic.Dictionary.from_atoms(rate, collection, n_nonzero=4, step=0.25, rd_lambda=1e3)
    assert (d.items_symbols(unit).counts == 1).all()
    # each atom is (close to) the top singular vector of the items it codes
    owner = np.argmax(np.abs(unit @ rate.T), axis=1)
    for k in np.unique(owner):
        x = unit[owner == k].astype(np.float64)
        top = np.linalg.eigh(x.T @ x)[1][:, -1]
        assert abs(top @ rate[k]) > 0.95


def test_learn_for_rate_is_deterministic_and_checks_its_inputs(collection):
    unit = normalize_embeddings(collection)[0]
    params = CodingParams(s_max=3, step=0.25, rd_lambda=6e-3)
    a, errors = smic.learn_for_rate(unit, 16, params, n_iter=3, return_errors=True)
    b = smic.learn_for_rate(unit, 16, params, n_iter=3, n_threads=1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (16, 48) and len(errors) == 3
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="unit-norm rows"):
        smic.learn_for_rate(unit * 2, 16, params, n_iter=1)
    with pytest.raises(ValueError, match="smic layout"):
        smic.learn_for_rate(unit, 16, CodingParams(layout="paper"), n_iter=1)
    with pytest.raises(ValueError, match="n_nonzero"):
        smic.learn_for_rate(unit, 2, params, n_iter=1)
    with pytest.raises(TypeError, match="CodingParams"):
        smic.learn_for_rate(unit, 16, {"s_max": 3}, n_iter=1)
    with pytest.raises(ValueError, match="learn must be one of"):
        smic.Dictionary.fit(collection, n_atoms=16, learn="fidelity")
    stopped = smic.learn_for_rate(unit, 16, params, n_iter=5, progress=lambda i, mse: i < 1,
                                  return_errors=True)[1]
    assert len(stopped) == 2
    # all iterations for sparsity: K-SVD itself
    np.testing.assert_array_equal(smic.learn_for_rate(unit, 16, params, n_iter=3, sparsity_iterations=3),
                                  smic.learn_dictionary(unit, 16, 3, n_iter=3))
    with pytest.raises(ValueError, match="sparsity_iterations"):
        smic.learn_for_rate(unit, 16, params, n_iter=3, sparsity_iterations=-2)


def test_presets_pick_k_sparsity_lambda_and_learning_together():
    assert QUALITY_PRESETS["low"].n_nonzero == 1 and QUALITY_PRESETS["low"].max_atoms == 128
    assert QUALITY_PRESETS["low"].learn == QUALITY_PRESETS["medium"].learn == "rate"
    assert preset_n_atoms(100_000, "low") == 128 and preset_n_atoms(100_000, "medium") == 1024
    assert preset_n_atoms(1000, "low") == 128 and preset_n_atoms(100, "low") == 32


def test_quality_low_lands_at_the_low_end(tmp_path, collection):
    """The paper's operating point: one atom of at most 128, at most 8 bits per item."""
    info = smic.compress(collection, tmp_path / "low.smic", quality="low", n_iter=5)
    marginal = 8 * info["section_bytes"]["items"] / len(collection)
    assert marginal <= 8.0
    # in chunks of 4096 items: 256-item chunks pay about 16 bytes each of offset and flush
    assert smic.open(tmp_path / "low.smic")._core.chunk_size == QUALITY_PRESETS["low"].chunk_size == 4096
    framed = smic.compress(collection, tmp_path / "low256.smic", quality="low", n_iter=5, chunk_size=256)
    assert 8 * framed["section_bytes"]["items"] / len(collection) > marginal
    assert info["cosine_mean"] > 0.6
    medium = smic.compress(collection, tmp_path / "medium.smic", n_iter=5)
    assert 8 * medium["section_bytes"]["items"] / len(collection) > marginal
    assert medium["cosine_mean"] > info["cosine_mean"]


def test_sparsity_learning_still_writes_the_same_file(tmp_path, collection):
    """learn="sparsity" is the earlier learning: its file is the one written from atoms
    learned with n_nonzero atoms per item and tables fitted on them."""
    smic.compress(collection, tmp_path / "a.smic", n_atoms=32, learn="sparsity", n_iter=4)
    unit = normalize_embeddings(normalize_embeddings(collection)[0])[0]
    atoms = smic.learn_dictionary(unit, 32, 4, n_iter=4)
    d = smic.Dictionary._with_tables(atoms, unit, 4, quality="medium", step=None, rd_lambda=None,
                                     layout="smic", paper_bits=8, precision="float16", n_threads=None)[0]
    assert smic.open(tmp_path / "a.smic").dictionary.hash == d.hash
