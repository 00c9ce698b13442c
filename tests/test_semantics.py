"""Semantic arithmetic: combine equals its numpy definition, the expression parser, and ``smic
arith`` (oracles: numpy, the dictionary's own coder, Collection.search), with every error path;
text terms on the tiny random CLIP model, pictures on a tiny random unCLIP pipeline."""
from __future__ import annotations

import json

import numpy as np
import pytest

import smic_fast as smic
from smic_fast.query.atoms import item_atoms
from smic_fast.cli import main
from smic_fast.query.semantics import Term, changes, code_of, combine, parse_expression

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.*", "ignore::FutureWarning:torch.*")


def needs_generate_extra() -> None:
    """Skip unless the [generate] extra imports: `--images` checks it before anything else, so
    without it the refusals that come after (a bad --images or --generator) cannot be reached."""
    for module in ("torch", "diffusers", "transformers"):
        pytest.importorskip(module)


def numpy_combine(pairs) -> np.ndarray:
    total = sum(w * np.asarray(x, np.float64) / np.linalg.norm(np.asarray(x, np.float64)) for w, x in pairs)
    return total / np.linalg.norm(total)


@pytest.fixture(scope="module")
def col_path(tmp_path_factory):
    rng = np.random.default_rng(11)
    folder = tmp_path_factory.mktemp("arith")
    e = rng.standard_normal((300, 32)).astype(np.float32)
    smic.compress(e, folder / "photos.smic", n_atoms=16, ids=[f"p{i}.jpg" for i in range(300)], n_iter=3,
                  model="tiny")
    smic.compress(e[:50], folder / "other.smic", n_atoms=8, n_iter=2, model="tiny")
    smic.compress(rng.standard_normal((60, 48)).astype(np.float32), folder / "wide.smic", n_atoms=8, n_iter=2,
                  model="tiny")
    return folder / "photos.smic"


# ---------------------------------------------------------------- the library


def test_combine_is_the_numpy_definition(rng):
    pairs = [(1.0, rng.standard_normal(32) * 3), (0.5, rng.standard_normal(32)), (-0.7, rng.standard_normal(32) * 0.1)]
    out = combine(pairs)
    assert out.dtype == np.float32 and out.shape == (32,)
    np.testing.assert_allclose(out, numpy_combine(pairs), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out), 1.0, atol=1e-6)
    np.testing.assert_allclose(combine([(2.0, pairs[0][1])]), numpy_combine(pairs[:1]), atol=1e-6)


def test_combine_resolves_collection_items(col_path):
    col = smic.open(col_path)
    out = combine([(1.0, "item:p3.jpg"), (-0.5, f"{col_path}:p7.jpg"), (0.25, col["p9.jpg"])], collection=col)
    np.testing.assert_allclose(out, numpy_combine([(1.0, col["p3.jpg"]), (-0.5, col["p7.jpg"]), (0.25, col["p9.jpg"])]),
                               atol=1e-6)


@pytest.mark.parametrize("pairs, match", [
    ([], "empty expression"),
    ([(1.0, np.ones(4)), (1.0, np.ones(5))], "dimension 5"),
    ([(1.0, np.ones(4)), (-1.0, np.ones(4) * 2)], "cancel out"),
    ([(1.0, np.zeros(4))], "zero vector"),
    ([(1.0, np.array([1.0, np.nan]))], "NaN"),
    ([(np.inf, np.ones(4))], "finite"),
    ([(1.0, np.ones((2, 2)))], r"\(d,\)"),
    ([(1.0,)], "pair"),
    ([(1.0, "item:x")], "needs a collection"),
])
def test_combine_errors(pairs, match):
    with pytest.raises(ValueError, match=match):
        combine(pairs)


def test_combine_errors_with_a_collection(col_path, tmp_path):
    col = smic.open(col_path)
    with pytest.raises(ValueError, match="no item 'nope'"):
        combine([(1.0, "item:nope")], collection=col)
    with pytest.raises(ValueError, match="dimension 48, the collection 32"):
        combine([(1.0, np.ones(48))], collection=col)
    with pytest.raises(ValueError, match="one collection"):
        combine([(1.0, "other.smic:1")], collection=col)
    with pytest.raises(ValueError, match="no image file"):
        combine([(1.0, f"image:{tmp_path / 'missing.jpg'}")], collection=col)


def test_parse_expression():
    terms = parse_expression(["photos.smic:beach.jpg", "+", "text:snow", "-", "text:summer"], weight=0.5)
    assert terms == [Term(1.0, "photos.smic:beach.jpg"), Term(0.5, "text:snow"), Term(-0.5, "text:summer")]
    assert [(t.kind, t.value, t.collection) for t in terms] == [
        ("item", "beach.jpg", "photos.smic"), ("text", "snow", None), ("text", "summer", None)]
    assert parse_expression(["-", "2*text:a b", "+", "0.25*item:x"]) == [Term(-2.0, "text:a b"), Term(0.25, "item:x")]
    assert Term(1.0, "item:x").kind == "item" and Term(1.0, "item:x").collection is None
    assert Term(1.0, "dir/cat.jpg").kind == "image" and Term(1.0, "image:x:y.png").value == "x:y.png"
    for tokens, match in (([], "empty expression"), (["+"], "ends with an operator"), (["a", "b"], "missing \\+ or -"),
                          (["a", "+", "-", "b"], "two operators"), (["a", "+"], "ends with"),
                          (["text:"], "empty term"), (["a", "+", "  "], "empty term")):
        with pytest.raises(ValueError, match=match):
            parse_expression(tokens)


def test_code_of_is_what_compress_stores(col_path):
    col = smic.open(col_path)
    for key in ("p0.jpg", "p5.jpg"):  # an item's embedding coded again gives its stored code's atoms
        stored = dict(item_atoms(col, key))
        coded = dict(code_of(col[key] * 3.0, col.dictionary))
        assert set(coded) == set(stored)
    moved = changes([(1, 1.0), (2, 0.5)], [(2, -1.0), (3, 0.25)])
    assert moved == {"came": [(3, 0.25)], "went": [(1, 1.0)], "stayed": [(2, -1.0)]}


# ---------------------------------------------------------------- smic arith


def test_arith_items(col_path, capsys):
    col = smic.open(col_path)
    argv = ["arith", f"{col_path}:p1.jpg", "+", "item:p2.jpg", "-", f"{col_path}:p3.jpg", "--weight", "0.5",
            "--search", "--top", "4", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    expected = numpy_combine([(1.0, col["p1.jpg"]), (0.5, col["p2.jpg"]), (-0.5, col["p3.jpg"])])
    assert [t["weight"] for t in out["terms"]] == [1.0, 0.5, -0.5]
    assert [(e["atom"], e["weight"]) for e in out["result"]] == [
        (a, round(w, 6)) for a, w in code_of(expected.astype(np.float32), col.dictionary)]
    assert [(e["atom"], e["weight"]) for e in out["original"]] == [(a, round(w, 6)) for a, w in item_atoms(col, "p1.jpg")]
    before, after = {e["atom"] for e in out["original"]}, {e["atom"] for e in out["result"]}
    assert {e["atom"] for e in out["came"]} == after - before and {e["atom"] for e in out["went"]} == before - after
    nearest = col.search(expected, k=4)
    assert [r["id"] for r in out["nearest"]] == nearest.ids[0]
    assert out["cosine_to_first"] == pytest.approx(float(expected @ col["p1.jpg"]), abs=1e-5)
    assert main(argv[:-1]) == 0  # the table
    table = capsys.readouterr().out
    assert "came" in table and "went" in table and "nearest items" in table


def test_arith_text_with_labels(tiny_clip_home, col_path, tmp_path, capsys):
    from smic_fast.encode.text_tower import TextEncoder

    labels = tmp_path / "labels.txt"
    labels.write_text("snow\nsummer\na beach\na dog\n", encoding="utf-8")
    col = smic.open(col_path)
    assert main(["arith", f"{col_path}:p4.jpg", "+", "text:snow", "-", "0.3*text:summer", "--labels", str(labels),
                 "--label-top", "2", "--cache-dir", str(tiny_clip_home), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    text = TextEncoder("tiny", cache=tiny_clip_home).encode(["snow", "summer"])
    expected = numpy_combine([(1.0, col["p4.jpg"]), (1.0, text[0]), (-0.3, text[1])])
    assert [e["atom"] for e in out["result"]] == [a for a, _ in code_of(expected.astype(np.float32), col.dictionary)]
    assert all(len(e["labels"]) == 2 and set(e["labels"]) <= {"snow", "summer", "a beach", "a dog"}
               for e in out["result"] + out["original"])


@pytest.mark.parametrize("argv, message", [
    ([], "empty expression"),
    (["{c}:p1.jpg", "+"], "ends with an operator"),
    (["{c}:p1.jpg", "+", "-", "item:p2.jpg"], "two operators"),
    (["{c}:p1.jpg", "item:p2.jpg"], "missing + or -"),
    (["{c}:nope.jpg"], "no item 'nope.jpg'"),
    (["{c}:p1.jpg", "-", "{c}:p1.jpg"], "cancel out"),
    (["item:p1.jpg"], "no collection"),
    (["{c}:p1.jpg", "+", "{o}:1"], "2 collections"),
    (["{c}:p1.jpg", "--collection", "{o}"], "not from --collection"),
    (["{c}:p1.jpg", "--search", "--rerank", "5"], "no refinement layer"),
    (["{c}:p1.jpg", "+", "image:{c}.missing.jpg"], "no image file"),
    (["{c}:p1.jpg", "--weight", "nan"], ""),
    (["{c}:p1.jpg", "--labels", "{c}.missing.txt"], "does not exist"),
    (["{c}:p1.jpg", "--images", "{c}"], "is a file"),
])
def test_arith_usage_errors(col_path, argv, message, capsys):
    if "--images" in argv:
        needs_generate_extra()
    other = col_path.with_name("other.smic")
    argv = [a.format(c=col_path, o=other) for a in argv]
    assert main(["arith", *argv]) == 2
    assert message in capsys.readouterr().err


def test_arith_model_errors(tiny_clip_home, col_path, tmp_path, capsys):
    assert main(["arith", f"{col_path}:p1.jpg", "+", "text:snow", "--cache-dir", str(tmp_path)]) == 1
    assert "smic export-text" in capsys.readouterr().err
    wide = col_path.with_name("wide.smic")
    assert main(["arith", f"{wide}:1", "+", "text:snow", "--cache-dir", str(tiny_clip_home)]) == 2
    assert "dimension 32, the collection 48" in capsys.readouterr().err


def test_arith_missing_generator(col_path, tmp_path, capsys):
    needs_generate_extra()
    assert main(["arith", f"{col_path}:p1.jpg", "--images", str(tmp_path / "out"), "--generator",
                 str(tmp_path / "no-such-generator")]) == 1
    assert "no-such-generator" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_arith_images_same_seed(col_path, tmp_path, capsys):
    """--images regenerates the first term and the result with one seed: equal terms give
    the same picture, so the only difference between the two is the arithmetic."""
    needs_generate_extra()
    from PIL import Image

    from smic_fast.generate import Generator
    from smic_fast.generate.tiny import build_tiny_generator

    folder = build_tiny_generator("unclip", tmp_path / "gen", dim=32)
    fast = ["--generator", str(folder), "--steps", "1", "--guidance", "1", "--device", "cpu", "--seed", "5"]
    out = tmp_path / "pictures"
    assert main(["arith", f"{col_path}:p1.jpg", "+", "0.8*item:p2.jpg", "--images", str(out), *fast, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["images"]
    original, result = (np.asarray(Image.open(out / n).convert("RGB")) for n in ("original.png", "result.png"))
    assert original.shape == result.shape == (32, 32, 3)
    col = smic.open(col_path)
    generator = Generator.from_pretrained(folder, device="cpu")
    norm = col.header["mean_norm"]  # "auto": the collection's raw embeddings' mean length
    first = col["p1.jpg"]
    result_vector = combine([(1.0, first), (0.8, col["p2.jpg"])])
    again = generator.generate(np.stack([first, result_vector]), [5, 5], steps=1, guidance=1.0, norm=norm)
    np.testing.assert_array_equal(np.asarray(again[0].convert("RGB")), original)  # same seed, same pictures
    np.testing.assert_array_equal(np.asarray(again[1].convert("RGB")), result)
    assert not np.array_equal(original, result)  # the arithmetic shows
    assert summary["seed"] == 5 and summary["original"].endswith("original.png")
