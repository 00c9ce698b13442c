"""One-item pursuits that screen the atoms (cpp/src/coding/atom_screen.hpp): an int8 product gives
every atom an approximate correlation and a proven bound, and only atoms that can still be the
largest get their exact product. The choice must be exactly the full product's: same atoms,
same float coefficients, same bytes, ties included."""
from __future__ import annotations

import numpy as np
import pytest

import smic_fast as smic
from smic_fast import _core

from problems import clustered_collection, unit_rows


@pytest.fixture
def screening():
    """Set the screening mode inside a test; 'auto' again after it."""
    yield _core.set_atom_screening
    _core.set_atom_screening("auto")


def _half_exact(atoms: np.ndarray) -> np.ndarray:
    """Unit rows whose values are exact float16 (as atoms read from a file)."""
    return atoms.astype(np.float16).astype(np.float32)


def _near_ties(rng, n_atoms: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Atoms all close to one direction (5 %), and signals too: every correlation is
    within the int8 bound of every other, so every atom is a candidate at every step."""
    common = unit_rows(rng, 1, dim)[0]
    atoms = common + 0.05 * unit_rows(rng, n_atoms, dim)
    atoms = _half_exact(atoms / np.linalg.norm(atoms, axis=1, keepdims=True))
    signals = common + 0.05 * unit_rows(rng, 40, dim)
    return atoms, (signals / np.linalg.norm(signals, axis=1, keepdims=True)).astype(np.float32)


def _problem(rng, kind: str, n_atoms: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == "random":
        return _half_exact(unit_rows(rng, n_atoms, dim)), unit_rows(rng, 60, dim)
    if kind == "clustered":
        data = clustered_collection(rng, n_atoms + 60, dim, 40)
        return _half_exact(data[:n_atoms]), data[n_atoms:]
    if kind == "duplicated":  # exact ties: the lower index must win, as numpy.argmax
        atoms = _half_exact(unit_rows(rng, n_atoms // 2, dim))
        return np.repeat(atoms, 2, axis=0), unit_rows(rng, 60, dim)
    return _near_ties(rng, n_atoms, dim)


def test_modes_are_named_and_checked(screening):
    screening("on")
    assert _core.atom_screening()
    screening("off")
    assert not _core.atom_screening()
    with pytest.raises(ValueError, match="'auto', 'on', 'off'"):
        screening("fast")
    assert not _core.atom_screening()  # a refused mode changes nothing


@pytest.mark.parametrize("kind,n_atoms,dim", [
    ("random", 1024, 1024), ("clustered", 512, 768), ("random", 300, 520), ("random", 100, 37),
    ("duplicated", 64, 300), ("near-ties", 256, 264)])
def test_screened_pursuit_equals_the_full_product(rng, screening, kind, n_atoms, dim):
    atoms, signals = _problem(rng, kind, n_atoms, dim)
    coder = _core.OmpCoder(atoms, 0)
    for n_nonzero in (1, 3, 8):
        screening("off")
        indices, coefs = coder.encode(signals, n_nonzero, -1.0, 1)
        screening("on")
        for i in range(len(signals)):
            one_i, one_c = coder.encode(signals[i:i + 1], n_nonzero, -1.0, 1)
            np.testing.assert_array_equal(one_i[0], indices[i], err_msg=f"{kind} item {i}")
            np.testing.assert_array_equal(one_c[0], coefs[i], err_msg=f"{kind} item {i}")


def test_near_ties_are_not_all_the_same_choice(rng):
    # The near-tie problem must really make the choice hinge on the exact products: several
    # different first atoms over its signals.
    atoms, signals = _near_ties(rng, 256, 264)
    first = _core.OmpCoder(atoms, 0).encode(signals, 1, -1.0, 1)[0][:, 0]
    assert len(set(first.tolist())) > 5


@pytest.mark.parametrize("precision,n_nonzero", [("float16", 4), ("int8", 4), ("float16", 1)])
def test_dictionary_encode_bytes_do_not_depend_on_screening(rng, screening, precision, n_nonzero):
    # Through the rate-distortion choice (OMP paths) and the coder, for both stored precisions
    # (int8 atoms carry a scale per atom, which the exact products apply last); one atom per
    # item prices every atom, which takes the full product even with screening on.
    data = clustered_collection(rng, 1500, 256, 60)
    dictionary = smic.Dictionary.fit(data[:1200], n_atoms=256, n_nonzero=n_nonzero, n_iter=2,
                                     precision=precision, rd_lambda=0.03 if n_nonzero == 1 else 1.5e-3)
    screening("off")
    full = [dictionary.encode(x) for x in data[1200:]]
    screening("on")
    assert [dictionary.encode(x) for x in data[1200:]] == full


@pytest.mark.parametrize("scale", [1e-9, 1e-5, 3e-3, 40.0, 1e5, 1e9])
def test_unnormalised_signals_give_the_full_products_choice(rng, screening, scale):
    # The bounds scale with |x|; far from unit norm the pursuit takes the full product.
    atoms, signals = _problem(rng, "clustered", 512, 300)
    signals = (signals * scale).astype(np.float32)
    coder = _core.OmpCoder(atoms, 0)
    screening("off")
    indices, coefs = coder.encode(signals, 4, -1.0, 1)
    screening("on")
    for i in range(0, len(signals), 3):
        one_i, one_c = coder.encode(signals[i:i + 1], 4, -1.0, 1)
        np.testing.assert_array_equal(one_i[0], indices[i])
        np.testing.assert_array_equal(one_c[0], coefs[i])
