"""The atoms' meaning: CLIP's text tower exported to ONNX with a pure-Python tokenizer (oracle:
open_clip's tokenizer and PyTorch text model, tiny random model), atoms named by their nearest
labels, one item's code explained (oracle: the decoder's reconstruction), the CLI and its bad
inputs. Shape and determinism only: a random tiny model has no meaning to test."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import smic_fast as smic
from smic_fast.query.atoms import explain_item, item_atoms, label_atoms, read_labels
from smic_fast.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.*", "ignore::FutureWarning:torch.*")

LABELS = ["a photo of a cat", "Astronaut", "coffee cup", "rocket!!", "café au lait", "the year 2024",
          "x_y-z", "  many   spaces  ", "&amp; an html entity", "dog", "sky", "a very long label that is longer "
          "than the tiny model's sixteen tokens, for sure"]


@pytest.fixture(scope="module")
def text_encoder(exported_tiny_home):
    """The text tower exported from open_clip's tiny model (the oracle tests need its weights)."""
    from smic_fast.encode.text_tower import TextEncoder
    return TextEncoder("tiny", cache=exported_tiny_home)


@pytest.fixture(scope="module")
def coded(tmp_path_factory, rng_module):
    """A 32-d collection (the tiny model's dimension), its own dictionary, and a paper-layout one."""
    folder = tmp_path_factory.mktemp("atoms")
    e = rng_module.standard_normal((300, 32)).astype(np.float32)
    smic.compress(e, folder / "own.smic", n_atoms=16, ids=[f"img{i}.jpg" for i in range(300)], n_iter=3)
    smic.compress(e, folder / "paper.smic", n_atoms=16, n_nonzero=3, layout="paper", n_iter=3)
    smic.open(folder / "own.smic").dictionary.save(folder / "d.smicd")
    return folder


@pytest.fixture(scope="module")
def rng_module():
    return np.random.default_rng(5)


def test_tokenizer_matches_open_clip(text_encoder):
    import open_clip
    reference = open_clip.get_tokenizer("tiny")(LABELS).numpy()
    np.testing.assert_array_equal(text_encoder.tokenizer(LABELS), reference)
    assert text_encoder.tokenizer(LABELS).shape == (len(LABELS), 16)


def test_text_tower_matches_pytorch(text_encoder):
    import open_clip
    import torch
    from smic_fast.encode.clip_export import load_open_clip_model

    model = load_open_clip_model("tiny", seed=0)[0]
    with torch.no_grad():
        reference = model.encode_text(open_clip.get_tokenizer("tiny")(LABELS), normalize=True).numpy()
    ours = text_encoder.encode(LABELS)
    assert ours.shape == (len(LABELS), 32)
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    np.testing.assert_array_equal(ours, text_encoder.encode(LABELS))  # deterministic


def test_text_encoder_on_a_tower_built_without_torch(tiny_clip_home):
    """TextEncoder on any tower of the exported interface: unit rows, one per label, the same
    whatever the batching, different labels apart; the tokenizer frames and cuts each label."""
    from smic_fast.encode.text_tower import TextEncoder

    encoder = TextEncoder("tiny", cache=tiny_clip_home)
    assert encoder.dim == 32 and encoder.context_length == 16
    ours = encoder.encode(LABELS)
    assert ours.shape == (len(LABELS), 32) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(ours, encoder.encode(LABELS))  # deterministic
    np.testing.assert_allclose(TextEncoder("tiny", cache=tiny_clip_home, batch_size=5).encode(LABELS), ours,
                               atol=1e-6)
    cosine = ours @ ours.T
    assert cosine[~np.eye(len(LABELS), dtype=bool)].max() < 0.999  # every label has its own embedding
    assert encoder.encode([]).shape == (0, 32)
    tokens = encoder.tokenizer(LABELS)
    tok = encoder.tokenizer
    assert (tokens[:, 0] == tok.sot).all() and tokens[-1, -1] == tok.eot  # the long label is cut, end kept
    assert [list(row).count(tok.eot) for row in tokens] == [1] * len(LABELS)


def test_label_atoms_is_the_nearest_label(rng):
    atoms = rng.standard_normal((20, 8))
    text = rng.standard_normal((6, 8))
    labels = [f"l{i}" for i in range(6)]
    named = label_atoms(atoms, labels, text, top=2)
    unit_atoms = atoms / np.linalg.norm(atoms, axis=1, keepdims=True)
    cos = unit_atoms @ (text / np.linalg.norm(text, axis=1, keepdims=True)).T
    assert [a.labels[0] for a in named] == [labels[j] for j in cos.argmax(axis=1)]
    assert all(len(a.labels) == 2 and a.scores[0] >= a.scores[1] for a in named)
    assert [a.atom for a in named] == list(range(20))
    with pytest.raises(ValueError, match="labels"):
        label_atoms(atoms, labels[:3], text)
    with pytest.raises(ValueError, match="must be"):
        label_atoms(atoms, labels, text[:, :4])


@pytest.mark.parametrize("name", ["own.smic", "paper.smic"])
def test_item_atoms_rebuild_the_decoded_item(coded, name):
    col = smic.open(coded / name)
    for key in (0, 7, len(col) - 1):
        pairs = item_atoms(col, key)
        assert 1 <= len(pairs) <= col.dictionary.params.s_max
        assert [abs(w) for _, w in pairs] == sorted((abs(w) for _, w in pairs), reverse=True)
        x = sum(w * col.dictionary.atoms[a].astype(np.float64) for a, w in pairs)
        np.testing.assert_allclose(x / np.linalg.norm(x), col[key], atol=1e-5)


def test_explain_item_by_id(coded, rng):
    col = smic.open(coded / "own.smic")
    named = label_atoms(col.dictionary.atoms, [f"w{i}" for i in range(5)], rng.standard_normal((5, 32)))
    result = explain_item(col, "img7.jpg", named)
    assert result["id"] == "img7.jpg" and result["position"] == 7
    assert [(e["atom"], e["weight"]) for e in result["atoms"]] == [(a, round(w, 6)) for a, w in item_atoms(col, 7)]
    assert all(e["labels"] == named[e["atom"]].labels for e in result["atoms"])
    with pytest.raises(KeyError):
        explain_item(col, "nope.jpg", named)


def test_read_labels(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("\ufeffcat\n\n# a comment\n dog \ncat\n", encoding="utf-8")
    assert read_labels(path) == ["cat", "dog"]
    for content, match in ((b"", "no labels"), (b"\n# only\n  \n", "no labels"), (b"cat\x00dog", "binary"),
                           (b"caf\xe9\n", "UTF-8")):
        path.write_bytes(content)
        with pytest.raises(ValueError, match=match):
            read_labels(path)
    with pytest.raises(FileNotFoundError):
        read_labels(tmp_path / "missing.txt")


# ---------------------------------------------------------------- CLI


def _labels_file(tmp_path) -> Path:
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    return path


def test_cli_atoms_and_explain(tiny_clip_home, coded, tmp_path, capsys):
    labels = _labels_file(tmp_path)
    flags = ["--labels", str(labels), "--model", "tiny", "--cache-dir", str(tiny_clip_home), "--label-top", "2"]
    assert main(["atoms", str(coded / "d.smicd"), *flags, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["n_atoms"] == 16 and len(first["atoms"]) == 16
    assert all(len(a["labels"]) == 2 and set(a["labels"]) <= {s.strip() for s in LABELS} for a in first["atoms"])
    assert main(["atoms", str(coded / "own.smic"), *flags, "--json"]) == 0  # a collection's own dictionary
    assert json.loads(capsys.readouterr().out)["atoms"] == first["atoms"]  # same dictionary, deterministic
    assert main(["explain", str(coded / "own.smic"), "img3.jpg", *flags, "--json"]) == 0
    explained = json.loads(capsys.readouterr().out)
    col = smic.open(coded / "own.smic")
    assert [e["atom"] for e in explained["atoms"]] == [a for a, _ in item_atoms(col, 3)]
    assert all(e["labels"] == first["atoms"][e["atom"]]["labels"] for e in explained["atoms"])
    assert main(["explain", str(coded / "own.smic"), "-1", "--position"]) == 0  # no labels: atoms and weights
    assert "img299.jpg" in capsys.readouterr().out


def test_cli_atoms_bad_inputs(tiny_clip_home, coded, tmp_path, capsys):
    flags = ["--model", "tiny", "--cache-dir", str(tiny_clip_home)]
    dictionary = str(coded / "d.smicd")
    empty, binary = tmp_path / "empty.txt", tmp_path / "binary.txt"
    empty.write_text("")
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert main(["atoms", dictionary, "--labels", str(empty), *flags]) == 2
    assert "no labels" in capsys.readouterr().err
    assert main(["atoms", dictionary, "--labels", str(binary), *flags]) == 2
    assert "binary" in capsys.readouterr().err
    assert main(["atoms", dictionary, "--labels", str(tmp_path / "missing.txt"), *flags]) == 2
    assert "does not exist" in capsys.readouterr().err
    labels = str(_labels_file(tmp_path))
    corrupt = tmp_path / "bad.smicd"
    data = bytearray((coded / "d.smicd").read_bytes())
    data[40] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    assert main(["atoms", str(corrupt), "--labels", labels, *flags]) == 1
    err = capsys.readouterr().err
    assert "bad.smicd" in err and "CRC32" in err
    assert main(["atoms", str(tmp_path / "none.smicd"), "--labels", labels, *flags]) == 1
    assert main(["atoms", dictionary, "--labels", labels, "--model", "tiny", "--cache-dir", str(tmp_path)]) == 1
    assert "smic export-text" in capsys.readouterr().err
    wide = tmp_path / "wide.smicd"
    smic.Dictionary.fit(np.random.default_rng(0).standard_normal((64, 48)), n_atoms=8, n_iter=2).save(wide)
    assert main(["atoms", str(wide), "--labels", labels, *flags]) == 2
    assert "dimension" in capsys.readouterr().err


def test_cli_explain_bad_inputs(coded, capsys):
    assert main(["explain", str(coded / "own.smic"), "nope.jpg"]) == 2
    assert "no item 'nope.jpg'" in capsys.readouterr().err
    assert main(["explain", str(coded / "own.smic"), "300", "--position"]) == 2
    assert main(["explain", str(coded / "own.smic"), "x", "--position"]) == 2


# ---------------------------------------------------------------- eval on the tiny model's photos


def test_eval_on_tiny_model_photos(tiny_clip_home, tmp_path, capsys):
    """smic eval on scikit-image's photos (and mirrored copies) encoded by the tiny model: the
    report parses, pixel counts come from the images, an unreadable file is reported (exit 3)."""
    from PIL import ImageOps
    from smic_fast.encode.clip_export import sample_photos

    photos, kind = sample_photos()
    assert kind == "skimage"
    folder = tmp_path / "photos"
    folder.mkdir()
    pixels = []
    for i, im in enumerate(photos):
        for j, variant in enumerate((im, ImageOps.mirror(im), ImageOps.flip(im))):
            variant.save(folder / f"p{i}_{j}.png")
            pixels.append(variant.size[0] * variant.size[1])
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "report"
    code = main(["eval", str(folder), "--output", str(out), "--model", str(
        next(Path(tiny_clip_home).glob("clip/tiny--*--fp32/model.onnx"))), "--quick", "--json", "-q"])
    assert code == 3
    summary = json.loads(capsys.readouterr().out)
    assert [s["id"] for s in summary["skipped"]] == ["broken.png"]
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["items"] == len(pixels) and data["meta"]["dim"] == 32
    assert {p["method"] for p in data["points"]} == {"smic", "smic-shared", "smic-1", "paper", "scalar", "kmeans"}
    # fewer photos than PQ's 256 centroids, and than the larger low-end sizes (16 and 64 quick)
    skipped = {(s["method"], s.get("K", s.get("k"))) for s in data["meta"]["skipped_settings"] if s["method"] != "pq"}
    assert skipped == {(m, size) for m in ("smic-1", "kmeans") for size in (16, 64) if size > len(pixels)}
    assert "pq" in {s["method"] for s in data["meta"]["skipped_settings"]}
    mean_inverse = np.mean(1.0 / np.array(pixels, dtype=np.float64))
    for p in data["points"]:
        assert p["bits_per_pixel"] == pytest.approx(p["bits_per_item"] * mean_inverse)
        assert -1 <= p["cosine_mean"] <= 1 and 0 <= p["recall_at_10"] <= 1
    assert (out / "index.html").read_text().count("data:image/png;base64,") >= 3
