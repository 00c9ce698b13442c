"""Write the golden files that pin the .smic / .smicd format (run only to change the format
on purpose: python tests/golden/make_golden.py, then review the diff).

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


def save_expected(folder: Path, name: str, col) -> None:
    """<name>.expected.npz: the decoded embeddings and every batch's symbols of `col`."""
    np.savez(folder / f"{name}.expected.npz", embeddings=col.embeddings(),
             **{f"{field}_{i}": getattr(s, field) for i, s in enumerate(col._symbols())
                for field in ("counts", "first", "rest_index", "rest_level")})


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
        save_expected(folder, name, col)
        written[name] = folder / f"{name}.smic"
    return written


#: Version 3 (the remaining-atoms index model): (file, dictionary file or None).
VERSION3 = {"remaining": None, "remaining_shared": "shared.smicd"}


def write_version3(folder: Path = HERE) -> dict[str, Path]:
    """The version-3 files, with the dictionaries they carry or refer to, written by the same
    calls as `version3_again` (which tests/test_golden.py repeats to check byte equality).
    The version-1 files above are never rewritten for this."""
    e = embeddings(0)
    own = smic.Dictionary.fit(e, n_atoms=8, n_nonzero=4, n_iter=3, rd_lambda=0.0)
    written = {}
    for name, path in (("remaining", folder / "remaining.smic"),
                       ("remaining_shared", folder / "remaining_shared.smic")):
        dictionary = own if name == "remaining" else smic.Dictionary.load(folder / "shared.smicd")
        version3_again(name, e, dictionary, path, "smic-fast golden")
        col = smic.open(path, dictionary=None if name == "remaining" else folder / "shared.smicd")
        assert col.info()["format_version"] == 3 and col.info()["index_model"] == "remaining"
        save_expected(folder, name, col)
        written[name] = path
    return written


def version3_again(name: str, e: np.ndarray, dictionary: smic.Dictionary, path: Path, writer: str) -> None:
    """Write version-3 file `name` at `path` from the golden embeddings and its dictionary:
    "remaining" embeds a K=8, 4-atom dictionary, 32-item chunks (checkpoints inside a chunk),
    40 items then 10 appended in place; "remaining_shared" refers to shared.smicd and has a
    refinement layer (RESD), 25 items in chunks of 10, then 15 appended in place."""
    from smic_fast import _core
    if name == "remaining":
        first, rest, chunk, step, embed = e, embeddings(2, n=10), 32, None, True
    else:
        first, rest, chunk, step, embed = e[:25], e[25:], 10, 0.25, False
    _core.write_collection(str(path), first, dictionary._core, ids=[f"v3_{i}" for i in range(len(first))],
                           chunk_size=chunk, residual_step=step, writer=writer,
                           embed_dictionary=embed, index_model="remaining")
    col = smic.open(path, dictionary=None if embed else dictionary)
    col.append(rest, ids=[f"v3_extra_{i}" for i in range(len(rest))])


def recode_version3(folder: Path = HERE, name: str = "remaining_shared") -> dict[str, Path]:
    """Version-3 file `name` and its expected values again with the dictionary it carries or
    refers to: for an encoder that chooses other levels (the format unchanged)."""
    path = folder / f"{name}.smic"
    shared = VERSION3[name]
    dictionary = (smic.open(path).dictionary if shared is None else smic.Dictionary.load(folder / shared))
    version3_again(name, embeddings(0), dictionary, path, "smic-fast golden")
    save_expected(folder, name, smic.open(path, dictionary=None if shared is None else dictionary))
    return {name: path}


#: Version 4 (the transform-coded refinement layer): file -> the .smicd (version 2, with its
#: transform) it refers to.
VERSION4 = {"transform": "transform.smicd"}


def write_version4(folder: Path = HERE, name: str = "transform", quantiser: str = "greedy") -> dict[str, Path]:
    """<name>.smicd (shared.smicd's atoms and tables with a transform learned on embeddings 1,
    two classes, levels chosen by `quantiser`) and <name>.smic coded with it by
    `version4_again`. The transform is learned once here (numpy's eigensolver may differ in the
    last bits elsewhere); tests load the stored dictionary."""
    from smic_fast.coding.transform import learn_transform
    dictionary = learn_transform(smic.Dictionary.load(folder / "shared.smicd"), embeddings(1), n_classes=2,
                                 quantiser=quantiser)
    dictionary.save(folder / f"{name}.smicd")
    return recode_version4(folder, name)


def recode_version4(folder: Path = HERE, name: str = "transform") -> dict[str, Path]:
    """<name>.smic and its expected values again with the stored <name>.smicd: for an encoder
    that chooses other levels (the format unchanged, every earlier file still decoding)."""
    dictionary = smic.Dictionary.load(folder / f"{name}.smicd")
    path = folder / f"{name}.smic"
    version4_again(embeddings(0), dictionary, path, "smic-fast golden")
    col = smic.open(path, dictionary=dictionary)
    assert col.info()["format_version"] == 4
    save_expected(folder, name, col)
    return {name: path}


def version4_again(e: np.ndarray, dictionary: smic.Dictionary, path: Path, writer: str) -> None:
    """transform.smic (and dependent.smic): 25 items in chunks of 10 refined at step 0.05 (the
    remaining-atoms index model), then 15 appended in place."""
    from smic_fast import _core
    _core.write_collection(str(path), e[:25], dictionary._core, ids=[f"v4_{i}" for i in range(25)],
                           chunk_size=10, residual_step=0.05, writer=writer, embed_dictionary=False,
                           index_model="remaining")
    smic.open(path, dictionary=dictionary).append(e[25:], ids=[f"v4_extra_{i}" for i in range(len(e) - 25)])


#: Version 4 with dependent quantisation (XQNT = 2 in the dictionary): file -> its .smicd.
DEPENDENT = {"dependent": "dependent.smicd"}


def write_dependent(folder: Path = HERE) -> dict[str, Path]:
    """dependent.smicd and dependent.smic as `write_version4` writes transform.*, with dependent
    quantisation. The format version stays 4: the dictionary's quantiser says how levels
    reconstruct, and readers that predate it refuse the dictionary."""
    return write_version4(folder, "dependent", "dependent")


if __name__ == "__main__":
    write_all()
    # write_version3() only for a new version-3 golden set (never over the version-1 files),
    # write_version4() likewise for version 4, write_dependent() for dependent quantisation,
    # recode_version3(name=...) / recode_version4(name=...) for an encoder change within a version
