"""`smic compress|append|dictionary fit` with .npy embeddings and `smic decompress --embeddings`
streaming (issue 19), run in-process through smic_fast.cli.main: results against the Python API
(byte-identical files), ids from --ids / sibling .ids.json / positions, and every error path
(bad ids, non-2-D, NaN rows, mixed dimensions, photos mixed with .npy, unreadable or truncated
files) with its exit code and nothing written."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import smic_fast as smic
from smic_fast.cli import main


def run(capsys, *args, expect: int = 0) -> tuple[str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == expect, (code, out, err)
    if expect:
        assert "Traceback" not in err
    return out, err


@pytest.fixture
def npy(tmp_path, rng) -> tuple[Path, Path, np.ndarray]:
    c = rng.standard_normal((8, 24))
    E = (c[rng.integers(0, 8, 700)] + 0.4 * rng.standard_normal((700, 24))).astype(np.float32)
    np.save(tmp_path / "a.npy", E[:500])
    np.save(tmp_path / "b.npy", E[500:].astype(np.float16))
    return tmp_path / "a.npy", tmp_path / "b.npy", np.concatenate([E[:500], E[500:].astype(np.float16).astype(np.float32)])


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_compress_npy_equals_python_api(capsys, tmp_path, npy):
    a, b, E = npy
    out, _ = run(capsys, "compress", a, b, "-o", tmp_path / "cli.smic", "--atoms", "16", "--iterations", "2", "--json")
    summary = json.loads(out)
    assert summary["items"] == 700 and summary["ids"] == "positions" and summary["inputs"] == [str(a), str(b)]
    smic.compress(E, tmp_path / "api.smic", n_atoms=16, n_iter=2)
    assert (tmp_path / "cli.smic").read_bytes() == (tmp_path / "api.smic").read_bytes()
    col = smic.open(tmp_path / "cli.smic")
    assert col.ids == [str(i) for i in range(700)] and col.header["model"] is None

    # learning sample and --model recorded as the model that made the embeddings
    run(capsys, "compress", a, b, "-o", tmp_path / "s.smic", "--atoms", "16", "--iterations", "2", "--sample", "300",
        "--seed", "5", "--model", "ViT-B-32")
    smic.compress(E, tmp_path / "s_api.smic", n_atoms=16, n_iter=2, sample_size=300, seed=5, model="ViT-B-32")
    assert (tmp_path / "s.smic").read_bytes() == (tmp_path / "s_api.smic").read_bytes()


def test_ids_from_flag_and_siblings(capsys, tmp_path, npy):
    a, b, E = npy
    ids = [f"img/{i:04d}.jpg" for i in range(700)]
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    (tmp_path / "ids.json").write_text(json.dumps(ids))
    D = smic.Dictionary.fit(E, 16, n_iter=2)
    D.save(tmp_path / "d.smicd")
    for source in ("ids.txt", "ids.json"):
        run(capsys, "compress", a, b, "-o", tmp_path / f"{source}.smic", "--ids", tmp_path / source,
            "--dictionary", tmp_path / "d.smicd")
        assert smic.open(tmp_path / f"{source}.smic", dictionary=D).ids == ids
    # siblings as `smic decompress` writes them
    (tmp_path / "a.ids.json").write_text(json.dumps(ids[:500]))
    (tmp_path / "b.ids.json").write_text(json.dumps(ids[500:]))
    out, _ = run(capsys, "compress", a, b, "-o", tmp_path / "sib.smic", "--dictionary", tmp_path / "d.smicd", "--json")
    assert json.loads(out)["ids"] == "sibling .ids.json"
    assert smic.open(tmp_path / "sib.smic", dictionary=D).ids == ids


def test_decompress_streams_and_round_trips(capsys, tmp_path, npy):
    a, b, E = npy
    ids = [f"x{i}" for i in range(698)] + ["café \"quoted\"", "\ud800 lone surrogate"]
    smic.compress(E, tmp_path / "c.smic", n_atoms=16, n_iter=2, ids=ids, chunk_size=32, residual_step=0.05)
    col = smic.open(tmp_path / "c.smic")
    run(capsys, "decompress", tmp_path / "c.smic", "--embeddings", tmp_path / "out.npy")
    import io

    expected = io.BytesIO()
    np.save(expected, col.embeddings())
    assert (tmp_path / "out.npy").read_bytes() == expected.getvalue()  # what np.save writes
    assert (tmp_path / "out.ids.json").read_bytes() == json.dumps(ids, ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert not [p for p in listing(tmp_path) if p.endswith(".tmp")]
    # and the output goes straight back in, with its ids
    run(capsys, "compress", tmp_path / "out.npy", "-o", tmp_path / "again.smic", "--atoms", "16", "--iterations", "2")
    assert smic.open(tmp_path / "again.smic").ids == ids


def test_append_and_dictionary_fit_npy(capsys, tmp_path, npy):
    a, b, E = npy
    smic.compress(E[:500], tmp_path / "c.smic", n_atoms=16, n_iter=2)
    out, _ = run(capsys, "append", tmp_path / "c.smic", b, "--json")
    assert json.loads(out)["items"] == 700
    col = smic.open(tmp_path / "c.smic")
    assert col.ids == [str(i) for i in range(700)] and col._batch_sizes() == [500, 200]
    smic.compress(E[:500], tmp_path / "api.smic", n_atoms=16, n_iter=2)
    smic.open(tmp_path / "api.smic").append(E[500:])
    assert (tmp_path / "c.smic").read_bytes() == (tmp_path / "api.smic").read_bytes()
    (tmp_path / "more.txt").write_text("\n".join(f"m{i}" for i in range(200)))
    run(capsys, "append", tmp_path / "c.smic", b, "--ids", tmp_path / "more.txt")
    assert smic.open(tmp_path / "c.smic").ids[-200:] == [f"m{i}" for i in range(200)]

    out, _ = run(capsys, "dictionary", "fit", a, b, "-o", tmp_path / "d.smicd", "--atoms", "16", "--iterations", "2",
                 "--sample", "400", "--json")
    fit = json.loads(out)
    assert fit["items"] == 700 and fit["trained_on"] == 400
    assert fit["hash"] == smic.Dictionary.fit(E, 16, n_iter=2, sample_size=400).hash


def save(path: Path, array) -> Path:
    np.save(path, array)
    return path


@pytest.mark.parametrize("case", ["ids_count", "ids_empty_line", "ids_json_type", "ids_missing", "ids_duplicate",
                                  "sibling_partial", "sibling_count", "three_d", "one_d", "int_dtype", "empty",
                                  "nan", "inf", "mixed_dims", "mixed_photos", "missing", "garbage", "truncated",
                                  "folder", "npz", "dictionary_dim"])
def test_compress_npy_errors(capsys, tmp_path, npy, case):
    a, b, E = npy
    inputs, extra, message, code = [a, b], [], None, 1
    if case == "ids_count":
        (tmp_path / "ids.txt").write_text("\n".join(map(str, range(699))))
        extra, message = ["--ids", tmp_path / "ids.txt"], "699 ids for 700 embeddings"
    elif case == "ids_empty_line":
        (tmp_path / "ids.txt").write_text("a\n\nb\n")
        extra, message = ["--ids", tmp_path / "ids.txt"], "line 2 is empty"
    elif case == "ids_json_type":
        (tmp_path / "ids.json").write_text(json.dumps(list(range(700))))
        extra, message = ["--ids", tmp_path / "ids.json"], "JSON list of non-empty strings"
    elif case == "ids_missing":
        extra, message, code = ["--ids", tmp_path / "nope.txt"], "does not exist", 2
    elif case == "ids_duplicate":
        (tmp_path / "ids.txt").write_text("\n".join(["same"] * 700))
        extra, message = ["--ids", tmp_path / "ids.txt"], "duplicate id 'same'"
    elif case == "sibling_partial":
        (tmp_path / "a.ids.json").write_text(json.dumps([str(i) for i in range(500)]))
        message, code = "b.npy has no b.ids.json", 2
    elif case == "sibling_count":
        (tmp_path / "a.ids.json").write_text(json.dumps(["x"]))
        inputs, message = [a], "1 ids for 500 embeddings"
    elif case == "three_d":
        inputs, message = [save(tmp_path / "t.npy", E.reshape(7, 100, 24))], "2-D (N, d) array, got shape (7, 100, 24)"
    elif case == "one_d":
        inputs, message = [save(tmp_path / "t.npy", E[0])], "2-D"
    elif case == "int_dtype":
        inputs, message = [save(tmp_path / "t.npy", E.astype(np.int32))], "float16, float32 or float64, got dtype int32"
    elif case == "empty":
        inputs, message = [save(tmp_path / "t.npy", E[:0])], "no embeddings in it"
    elif case in ("nan", "inf"):
        bad = E.copy()
        bad[617, 3] = np.nan if case == "nan" else -np.inf
        inputs, message = [save(tmp_path / "t.npy", bad)], "t.npy: row 617 contains NaN or infinity"
    elif case == "mixed_dims":
        inputs, message = [a, save(tmp_path / "t.npy", E[:, :20])], "t.npy has embeddings of dimension 20"
    elif case == "mixed_photos":
        (tmp_path / "p.png").write_bytes(b"\x89PNG")
        inputs, message, code = [a, tmp_path / "p.png"], "either photos or .npy embeddings", 2
    elif case == "missing":
        inputs, message, code = [tmp_path / "nope.npy"], "does not exist", 2
    elif case == "garbage":
        (tmp_path / "t.npy").write_bytes(b"\x93NUMPY garbage")
        inputs, message = [tmp_path / "t.npy"], "not a readable .npy array"
    elif case == "truncated":
        data = a.read_bytes()
        (tmp_path / "t.npy").write_bytes(data[: len(data) // 2])
        inputs, message = [tmp_path / "t.npy"], "not a readable .npy array"
    elif case == "folder":
        (tmp_path / "dir.npy").mkdir()
        inputs, message, code = [tmp_path / "dir.npy"], "is a folder", 2
    elif case == "npz":
        np.savez(tmp_path / "t.npz", E=E)
        (tmp_path / "t.npz").rename(tmp_path / "t.npy")
        inputs, message = [tmp_path / "t.npy"], "not a"
    elif case == "dictionary_dim":
        smic.Dictionary.fit(np.random.default_rng(0).standard_normal((100, 8)), 8, n_iter=1).save(tmp_path / "d.smicd")
        extra, message = ["--dictionary", tmp_path / "d.smicd"], "has dimension 8"
    before = listing(tmp_path)
    _, err = run(capsys, "compress", *inputs, "-o", tmp_path / "out.smic", *extra, expect=code)
    assert message in err
    assert listing(tmp_path) == before  # nothing written, no temporary left


def test_append_npy_errors(capsys, tmp_path, npy):
    a, b, E = npy
    smic.compress(E, tmp_path / "c.smic", n_atoms=16, n_iter=2)
    original = (tmp_path / "c.smic").read_bytes()
    _, err = run(capsys, "append", tmp_path / "c.smic", save(tmp_path / "t.npy", E[:5, :20]), expect=1)
    assert "the collection's dimension 24" in err
    (tmp_path / "a.ids.json").write_text(json.dumps([str(i) for i in range(500)]))
    _, err = run(capsys, "append", tmp_path / "c.smic", a, expect=2)  # ids 0..499 are taken
    assert "500 id(s) already in" in err
    (tmp_path / "p.png").write_bytes(b"\x89PNG")
    _, err = run(capsys, "append", tmp_path / "c.smic", a, tmp_path / "p.png", expect=2)
    assert "either photos or .npy" in err
    bad = E[:3].copy()
    bad[1, 0] = np.nan
    _, err = run(capsys, "append", tmp_path / "c.smic", save(tmp_path / "n.npy", bad), expect=1)
    assert "row 1 contains NaN" in err
    assert (tmp_path / "c.smic").read_bytes() == original


def test_dictionary_fit_npy_errors(capsys, tmp_path, npy):
    a, b, E = npy
    _, err = run(capsys, "dictionary", "fit", a, save(tmp_path / "t.npy", E[:, :3]), "-o", tmp_path / "d.smicd",
                 expect=1)
    assert "t.npy has embeddings of dimension 3" in err
    assert not (tmp_path / "d.smicd").exists()
    _, err = run(capsys, "dictionary", "fit", a, "--sample", "8", "--atoms", "16", "-o", tmp_path / "d.smicd",
                 expect=2)
    assert "sample_size" in err and not (tmp_path / "d.smicd").exists()


def test_ids_flag_is_for_npy_inputs(capsys, tmp_path, npy):
    a, b, E = npy
    smic.compress(E, tmp_path / "c.smic", n_atoms=16, n_iter=2)
    (tmp_path / "p.png").write_bytes(b"\x89PNG")
    (tmp_path / "ids.txt").write_text("x\n")
    before = listing(tmp_path)
    for args in (("compress", tmp_path / "p.png", "-o", tmp_path / "out.smic"),
                 ("append", tmp_path / "c.smic", tmp_path / "p.png")):
        _, err = run(capsys, *args, "--ids", tmp_path / "ids.txt", expect=2)
        assert "--ids is for .npy inputs" in err
    assert listing(tmp_path) == before
