"""``smic encode --dictionary``: single-item codes made here, in this process, with no service:
the bytes Dictionary.encode gives (and a server with the same dictionary), the cosine of each
decoded item, and clear refusals (bad arrays, a dimension mismatch, server-only flags)."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

import smic_fast as smic
from smic_fast.cli import main


@pytest.fixture
def coded(tmp_path, rng):
    centres = rng.standard_normal((6, 20))
    E = (centres[rng.integers(0, 6, 300)] + 0.3 * rng.standard_normal((300, 20))).astype(np.float32)
    dictionary = smic.Dictionary.fit(E, n_atoms=16, n_iter=3)
    dictionary.save(tmp_path / "d.smicd")
    np.save(tmp_path / "e.npy", E[:40])
    return tmp_path, dictionary, E[:40]


def test_npy_rows_coded_here_equal_dictionary_encode(capsys, coded):
    folder, dictionary, E = coded
    assert main(["encode", str(folder / "e.npy"), "--dictionary", str(folder / "d.smicd"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["input"] for r in rows] == [f"{folder / 'e.npy'}:{i}" for i in range(40)]
    for row, e in zip(rows, E):
        code = base64.b64decode(row["code"])
        assert code == dictionary.encode(e) and row["bits"] == 8 * len(code)
        unit = e / np.linalg.norm(e)
        assert row["cosine"] == pytest.approx(float(dictionary.decode(code) @ unit), abs=1e-5)


@pytest.mark.parametrize("case", ["nan", "dim", "append", "neither", "mixed"])
def test_refusals(capsys, coded, case):
    folder, _, E = coded
    bad = E.copy()
    if case == "nan":
        bad[7, 3] = np.nan
        np.save(folder / "bad.npy", bad)
        args = ["encode", str(folder / "bad.npy"), "--dictionary", str(folder / "d.smicd")]
    elif case == "dim":
        np.save(folder / "bad.npy", E[:, :10])
        args = ["encode", str(folder / "bad.npy"), "--dictionary", str(folder / "d.smicd")]
    elif case == "append":
        args = ["encode", str(folder / "e.npy"), "--dictionary", str(folder / "d.smicd"), "--append"]
    elif case == "neither":
        args = ["encode", str(folder / "e.npy")]
    else:
        args = ["encode", str(folder / "e.npy"), "x.png", "--dictionary", str(folder / "d.smicd")]
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    expected = {"nan": "row 7", "dim": "dimension 10", "append": "--append is for --server", "neither": "--server",
                "mixed": "not both"}[case]
    assert expected in err, err


def test_images_coded_here_are_the_encoders_embeddings_coded(capsys, monkeypatch, tmp_path, tiny_clip_home):
    monkeypatch.setenv("SMIC_HOME", str(tiny_clip_home))
    from pathlib import Path

    import skimage.data

    folder = tmp_path / "photos"
    folder.mkdir()
    source = Path(skimage.data.__file__).parent
    for name in ("astronaut.png", "coffee.png"):
        (folder / name).write_bytes((source / name).read_bytes())
    (folder / "broken.png").write_bytes(b"not an image")
    encoder = smic.ClipEncoder("tiny", cache=tiny_clip_home)
    result = encoder.encode_paths(sorted(str(p) for p in folder.iterdir()))
    rng = np.random.default_rng(0)
    E = result.embeddings[rng.integers(0, len(result.embeddings), 64)] + 0.05 * rng.standard_normal((64, encoder.dim))
    dictionary = smic.Dictionary.fit(E.astype(np.float32), n_atoms=8, n_iter=2)
    dictionary.save(tmp_path / "d.smicd")
    code = main(["encode", str(folder), "--dictionary", str(tmp_path / "d.smicd"), "--model", "tiny", "--json", "-q",
                 "--providers", "cpu"])
    out, err = capsys.readouterr()
    assert code == 3 and "broken.png" in err, (code, out, err)  # written, one input skipped
    rows = {json.loads(line)["input"]: json.loads(line) for line in out.splitlines()}
    assert sorted(rows) == ["astronaut.png", "coffee.png"]
    for path, e in zip(result.paths, result.embeddings):
        name = Path(path).name
        assert base64.b64decode(rows[name]["code"]) == dictionary.encode(e)
