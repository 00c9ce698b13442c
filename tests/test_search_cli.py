"""``smic search``: text queries through the exported text tower, image queries through the image
tower, ``--like`` an item, on the tiny random CLIP model (oracle: Collection.search with the
towers' own embeddings), and every error path."""
from __future__ import annotations

import json

import numpy as np
import pytest

import smic_fast as smic
from smic_fast.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.*", "ignore::FutureWarning:torch.*")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three scikit-image photos as files, for image queries, and one broken file."""
    from smic_fast.encode.clip_export import sample_photos

    folder = tmp_path_factory.mktemp("query_photos")
    images, _ = sample_photos()
    for i, im in enumerate(images[:3]):
        im.save(folder / f"q{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return folder


@pytest.fixture(scope="module")
def tiny_collection(tmp_path_factory):
    """A 32-d collection recorded as made by the tiny model, one with no model, one 48-d, and one
    with a refinement layer."""
    rng = np.random.default_rng(3)
    folder = tmp_path_factory.mktemp("search_cli")
    e = rng.standard_normal((400, 32)).astype(np.float32)
    ids = [f"img{i}.jpg" for i in range(400)]
    smic.compress(e, folder / "tiny.smic", n_atoms=16, ids=ids, n_iter=3, model="tiny")
    smic.compress(e, folder / "nomodel.smic", n_atoms=16, n_iter=3)
    smic.compress(rng.standard_normal((100, 48)).astype(np.float32), folder / "wide.smic", n_atoms=8, n_iter=2,
                  model="tiny")
    smic.compress(e, folder / "refined.smic", n_atoms=16, ids=ids, n_iter=3, model="tiny", residual_step=0.05)
    return folder


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_text_query_is_the_text_towers_embedding(tiny_clip_home, tiny_collection, capsys):
    from smic_fast.encode.text_tower import TextEncoder

    path = tiny_collection / "tiny.smic"
    flags = ["--cache-dir", str(tiny_clip_home), "--json"]
    assert main(["search", str(path), "--text", "a dog on a beach", "--top", "7", *flags]) == 0
    out = _json(capsys)
    query = TextEncoder("tiny", cache=tiny_clip_home).encode(["a dog on a beach"])
    expected = smic.open(path).search(query, k=7)
    assert [r["id"] for r in out["results"]] == expected.ids[0]
    np.testing.assert_allclose([r["score"] for r in out["results"]], expected.scores[0], atol=1e-6)
    assert out["query"] == {"text": "a dog on a beach"} and out["index"]["items"] == 400
    assert main(["search", str(path), "--text", "a dog on a beach", "--top", "7", "--nprobe", "3", *flags]) == 0
    probed = smic.open(path).search(query, k=7, nprobe=3)
    assert [r["id"] for r in _json(capsys)["results"]] == [i for i in probed.ids[0] if i is not None]
    assert main(["search", str(path), "--text", "a dog", "--top", "3", "--cache-dir", str(tiny_clip_home)]) == 0
    table = capsys.readouterr().out
    assert "rank" in table and "score" in table and len(table.strip().splitlines()) == 2 + 3


def test_image_query_is_the_image_towers_embedding(tiny_clip_home, tiny_collection, photos, capsys):
    from smic_fast.encode.clip_onnx import ClipEncoder

    path = tiny_collection / "tiny.smic"
    assert main(["search", str(path), "--image", str(photos / "q1.png"), "--cache-dir", str(tiny_clip_home),
                 "--json"]) == 0
    out = _json(capsys)
    query = ClipEncoder("tiny", cache=tiny_clip_home).encode_paths([str(photos / "q1.png")]).embeddings
    expected = smic.open(path).search(query, k=10)
    assert [r["id"] for r in out["results"]] == expected.ids[0]


def test_like_an_item_finds_itself_first(tiny_collection, capsys):
    path = tiny_collection / "refined.smic"
    assert main(["search", str(path), "--like", "img42.jpg", "--rerank", "50", "--json"]) == 0
    out = _json(capsys)
    assert out["results"][0]["id"] == "img42.jpg" and out["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    col = smic.open(path)
    expected = col.search(col["img42.jpg"], k=10, rerank=50)
    assert [r["id"] for r in out["results"]] == expected.ids[0]


@pytest.mark.parametrize("argv, code, message", [
    (["--like", "nope.jpg"], 2, "no item 'nope.jpg'"),
    (["--like", "img1.jpg", "--rerank", "5"], 2, "no refinement layer"),
    (["--text", "   "], 2, "--text is empty"),
    (["--image", "missing.png"], 2, "no image file"),
    (["--like", "img1.jpg", "--nprobe", "0"], 2, ""),
    (["--like", "img1.jpg", "--top", "-3"], 2, ""),
    ([], 2, ""),  # no query
    (["--like", "img1.jpg", "--text", "x"], 2, ""),  # two queries
])
def test_search_usage_errors(tiny_collection, argv, code, message, capsys):
    assert main(["search", str(tiny_collection / "tiny.smic"), *argv]) == code
    assert message in capsys.readouterr().err


def test_search_model_errors(tiny_clip_home, tiny_collection, photos, tmp_path, capsys):
    tiny = str(tiny_collection / "tiny.smic")
    # No exported text tower in this cache: the error names the command that makes one.
    assert main(["search", tiny, "--text", "a cat", "--cache-dir", str(tmp_path)]) == 1
    assert "smic export-text" in capsys.readouterr().err
    assert main(["search", tiny, "--image", str(photos / "q0.png"), "--cache-dir", str(tmp_path)]) == 1
    assert "smic export-clip" in capsys.readouterr().err
    # The collection records no model.
    assert main(["search", str(tiny_collection / "nomodel.smic"), "--text", "a cat"]) == 2
    assert "pass --model" in capsys.readouterr().err
    # Dimensions that do not match: the tiny model gives 32, the collection has 48.
    assert main(["search", str(tiny_collection / "wide.smic"), "--text", "a cat", "--cache-dir",
                 str(tiny_clip_home)]) == 2
    assert "dimension" in capsys.readouterr().err
    # An unreadable image.
    assert main(["search", tiny, "--image", str(photos / "broken.png"), "--cache-dir", str(tiny_clip_home)]) == 2
    assert "broken.png" in capsys.readouterr().err


def test_search_file_errors(tiny_collection, tmp_path, capsys):
    assert main(["search", str(tmp_path / "none.smic"), "--like", "1"]) == 1
    assert "none.smic" in capsys.readouterr().err
    damaged = tmp_path / "damaged.smic"
    data = bytearray((tiny_collection / "tiny.smic").read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    assert main(["search", str(damaged), "--like", "img1.jpg"]) == 1
    assert "damaged.smic" in capsys.readouterr().err
    truncated = tmp_path / "truncated.smic"
    truncated.write_bytes((tiny_collection / "tiny.smic").read_bytes()[:-7])
    assert main(["search", str(truncated), "--like", "img1.jpg"]) == 1
    dictionary = tmp_path / "d.smicd"
    smic.open(tiny_collection / "tiny.smic").dictionary.save(dictionary)
    assert main(["search", str(dictionary), "--like", "img1.jpg"]) == 1  # a dictionary, not a collection
    assert "d.smicd" in capsys.readouterr().err


def test_every_flag_is_documented():
    """docs/search.md names every flag of smic search and smic arith."""
    import argparse
    from pathlib import Path

    from smic_fast.cli import setup_args

    text = (Path(__file__).parent.parent / "docs" / "search.md").read_text(encoding="utf-8")
    sub = next(a for a in setup_args()._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("search", "arith"):
        flags = {s for action in sub.choices[name]._actions for s in action.option_strings if s.startswith("--")}
        missing = sorted(f for f in flags - {"--help"} if f"`{f}" not in text)
        assert not missing, f"smic {name}: {missing} not in docs/search.md"


# ---------------------------------------------------------------- optional modules


def test_search_and_arith_need_no_extra(tiny_clip_home, tiny_collection):
    """Search and arithmetic run on the core and ONNX Runtime alone (the towers exported
    beforehand): every optional module unimportable."""
    import os

    from test_extras import ALL_OPTIONAL, smic_without

    env = {**os.environ, "SMIC_HOME": str(tiny_clip_home)}
    tiny = tiny_collection / "tiny.smic"
    for args in (("search", tiny, "--like", "img3.jpg", "--json"), ("search", tiny, "--text", "a cat", "--json"),
                 ("arith", f"{tiny}:img3.jpg", "+", "text:snow", "--search", "--json")):
        result = smic_without(ALL_OPTIONAL, *args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert json.loads(result.stdout)["command"] == args[0]


@pytest.mark.parametrize("module", ["torch", "diffusers"])
def test_arith_images_names_its_extra_before_any_work(tiny_collection, tmp_path, module):
    from test_extras import assert_names_extra, smic_without

    result = smic_without([module], "arith", f"{tiny_collection / 'tiny.smic'}:img3.jpg", "--images", tmp_path / "out",
                          "--generator", tmp_path / "no-such-folder", forbid=["smic_fast.store.collection:open"])
    assert_names_extra(result, "arith", "generate", module)
    assert not (tmp_path / "out").exists()
