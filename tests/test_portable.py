"""SMIC_KERNELS=portable forces the plain x86-64 code of every kernel picked at run time, and
SMIC_KERNELS=avx2 keeps the AVX-512 ones out; the files each writes must be byte-identical to
those of the best kernels (what a wheel built for any x86-64 promises: the same input gives
the same file on every machine)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from smic_fast import _core

SCRIPT = r"""
import sys
import numpy as np
import smic_fast as smic
from smic_fast import _core

out = sys.argv[1]
_core.set_atom_screening(sys.argv[2])  # "on": one-item pursuits screen the atoms (same codes)
rng = np.random.default_rng(0)
e = (rng.standard_normal((500, 24)) ** 3 @ rng.standard_normal((24, 300))).astype(np.float32)
smic.compress(e[:400], out + "/own.smic", n_atoms=64, n_nonzero=4, n_iter=3, chunk_size=50)
d = smic.Dictionary.fit(e[:300], n_atoms=48, n_nonzero=3, n_iter=3, precision="int8")
d.save(out + "/d.smicd")
smic.compress(e, out + "/shared.smic", dictionary=d, residual_step=0.05)
smic.compress(e, out + "/remaining.smic", dictionary=d, index_model="remaining")  # version 3
from smic_fast.coding.transform import learn_transform  # version 4: the layer's levels and floats
t = learn_transform(d, e[:300], n_classes=4)
t.save(out + "/t.smicd")
smic.compress(e, out + "/transform.smic", dictionary=t, residual_step=0.03)
np.save(out + "/transform.npy", smic.open(out + "/transform.smic", dictionary=t).embeddings())
with open(out + "/single.bin", "wb") as f:  # one item at a time: the float16 one-row path
    for row in e[::25]:
        f.write(d.encode(row))
# Batch OMP at depth 16 over K = 1000 atoms (a partial last block of every kernel's width) and a
# Gram row stride padded past K: the pursuit's own passes, beyond what the files above reach.
atoms = rng.standard_normal((1000, 96)).astype(np.float32)
atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
x = rng.standard_normal((300, 96)).astype(np.float32)
indices, coefs = smic.omp(x, atoms, 16, n_threads=1)
np.save(out + "/omp.npy", np.concatenate([np.asarray(indices, dtype=np.float64).ravel(),
                                          np.asarray(coefs, dtype=np.float64).ravel()]))
print(_core.gemm_kernel())
"""

FILES = ("own.smic", "d.smicd", "shared.smic", "remaining.smic", "single.bin", "t.smicd", "transform.smic",
         "transform.npy", "omp.npy")


def _run(folder, kernels: str | None, screening: str = "auto") -> str:
    env = dict(os.environ)
    env.pop("SMIC_KERNELS", None)
    if kernels:
        env["SMIC_KERNELS"] = kernels
    folder.mkdir()
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(folder), screening], env=env, check=True,
                            capture_output=True, text=True)
    return result.stdout.strip()


def test_every_kernel_family_writes_identical_files(tmp_path):
    best = _core.gemm_kernel()
    if best == "generic":
        pytest.skip("this CPU has no AVX2/FMA/F16C: only the portable kernels run here")
    assert _run(tmp_path / "best", None) == best
    runs = {"portable": "generic"}
    if best == "avx512":
        runs["avx2"] = "avx2"
    for setting, family in runs.items():
        assert _run(tmp_path / setting, setting) == family
        for name in FILES:
            assert (tmp_path / setting / name).read_bytes() == (tmp_path / "best" / name).read_bytes(), (setting, name)


def test_atom_screening_writes_identical_files_with_every_kernel_family(tmp_path):
    # One-item pursuits that screen the atoms (the int8 bound, then exact products of the
    # candidates: VNNI kernels where the CPU has them, plain C++ under SMIC_KERNELS=portable)
    # must write the bytes of the full product.
    _run(tmp_path / "full", None, "off")
    for setting in (None, "portable"):
        folder = tmp_path / f"screened-{setting or 'best'}"
        _run(folder, setting, "on")
        for name in FILES:
            assert (folder / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), (setting, name)
