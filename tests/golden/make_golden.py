"""Write the golden files that pin the .smic / .smicd format (run only to change the format
on purpose: SMIC_REGENERATE_GOLDEN=1 python -m pytest tests/test_golden.py).

Each collection is stored with the symbols and embeddings it must decode to."""
from __future__ import annotations

from pathlib import Path

import numpy as np

import smic_fast as smic

HERE = Path(__file__).resolve().parent


def embeddings(seed: int, n: int = 40, dim: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((6, dim))
    x = rng.standard_normal((n, 6)) ** 3 @ atoms + 0.1 * rng.standard_normal((n, dim))
    return x.astype(np.float32)


def write_all(folder: Path = HERE) -> dict[str, Path]:
    e = embeddings(0)
    written = {}
    smic.compress(e, folder / "own_float16.smic", n_atoms=8, n_nonzero=3, n_iter=3, chunk_size=16,
                  ids=[f"photo_{i}.jpg" for i in range(len(e))], pixels=[640 * 480] * len(e))
    smic.compress(e, folder / "paper_int8.smic", n_atoms=8, n_nonzero=2, n_iter=3, layout="paper",
                  precision="int8", paper_bits=6)
    shared = smic.Dictionary.fit(embeddings(1), n_atoms=8, n_nonzero=3, n_iter=3, rd_lambda=0.0)
    shared.save(folder / "shared.smicd")
    smic.compress(e[:25], folder / "shared.smic", dictionary=shared, chunk_size=10)
    smic.open(folder / "shared.smic", dictionary=shared).append(e[25:], ids=[f"x{i}" for i in range(15)])
    for name in ("own_float16", "paper_int8", "shared"):
        col = smic.open(folder / f"{name}.smic", dictionary=folder / "shared.smicd" if name == "shared" else None)
        symbols = col._symbols()
        np.savez(folder / f"{name}.expected.npz", embeddings=col.embeddings(),
                 **{f"{field}_{i}": getattr(s, field) for i, s in enumerate(symbols)
                    for field in ("counts", "first", "rest_index", "rest_level")})
        written[name] = folder / f"{name}.smic"
    return written


if __name__ == "__main__":
    write_all()
