"""smic eval --generator: photos beside their regenerations from the original embeddings and
from the embeddings decoded at a few of the sweep's rates. The tiny CLIP model's embeddings of
scikit-image's photos, a tiny random Stable unCLIP (32x32, one step) built locally; seconds."""
from __future__ import annotations

import html
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("matplotlib")
torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from smic_fast.cli import main  # noqa: E402
from smic_fast.evaluation import SweepConfig, regeneration_grid, run_sweep  # noqa: E402
from smic_fast.evaluation.grid import grid_items, grid_points  # noqa: E402
from smic_fast.generate import Generator  # noqa: E402
from smic_fast.generate.tiny import build_tiny_generator  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning:torch.*", "ignore::FutureWarning:torch.*")

FAST = ["--steps", "1", "--guidance", "1", "--device", "cpu"]  # one step, no guidance: seconds on a CPU
CELL = 242  # report._grid_plot: 2.2 inches at 110 dpi per image


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """scikit-image's photos and their mirror images, shrunk (the tiny model reads 64x64)."""
    from PIL import ImageOps

    from smic_fast.encode.clip_export import sample_photos

    photos, kind = sample_photos()
    assert kind == "skimage"
    folder = tmp_path_factory.mktemp("photos")
    for i, image in enumerate(photos):
        image = ImageOps.contain(image, (96, 96))
        image.save(folder / f"p{i}_a.png")
        ImageOps.mirror(image).save(folder / f"p{i}_b.png")
    return folder


@pytest.fixture(scope="module")
def onnx_model(tiny_clip_home) -> str:
    return str(next(Path(tiny_clip_home).glob("clip/tiny--*--fp32/model.onnx")))


@pytest.fixture(scope="module")
def generator_folder(tmp_path_factory) -> Path:
    return build_tiny_generator("unclip", tmp_path_factory.mktemp("gen") / "unclip", dim=32)


@pytest.fixture(scope="module")
def generator(generator_folder) -> Generator:
    return Generator.from_pretrained(generator_folder, device="cpu")


@pytest.fixture(scope="module")
def encoded(photo_folder, onnx_model):
    from smic_fast.encode.clip_onnx import ClipEncoder

    paths = sorted(str(p) for p in photo_folder.iterdir())
    E = ClipEncoder(onnx_model, providers="cpu").encode_images([Image.open(p).convert("RGB") for p in paths])
    return E, paths


@pytest.fixture(scope="module")
def sweep(encoded):
    E, _ = encoded
    # three atoms-only settings and the finest one refined (the residual layer): four smic points
    config = SweepConfig.quick(methods=("smic", "scalar"), queries=8, residual=(0.03,), transform=())
    return run_sweep(E, config, progress=False), config


def _pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _run(args, capsys):
    capsys.readouterr()  # drop what building the fixtures printed
    code = main(args)
    captured = capsys.readouterr()
    return code, captured


# ---------------------------------------------------------------- choices


def test_grid_items_are_evenly_spaced():
    assert grid_items(10, 4) == [0, 3, 6, 9]
    assert grid_items(12, 3) == [0, 6, 11] and grid_items(5, 1) == [0]
    assert grid_items(3, 4) == [0, 1, 2]  # fewer items than asked: all of them
    with pytest.raises(ValueError, match="positive"):
        grid_items(10, 0)


def test_grid_points_low_middle_high_and_targets(sweep):
    points, _ = sweep
    ours = sorted((p for p in points.points if p.method == "smic"), key=lambda p: p.bits_per_item)
    assert len(ours) == 4 and "residual_step" in ours[-1].settings  # the refined point costs the most
    assert grid_points(points.points) == [ours[0], ours[2], ours[3]]  # lowest, middle (by rank), highest
    assert grid_points(points.points, 2) == [ours[0], ours[-1]]
    assert grid_points(points.points, 9) == ours
    # targets: the nearest point each (in log rate), each point once, increasing
    assert grid_points(points.points, [ours[2].bits_per_item, ours[0].bits_per_item * 0.5]) == [ours[0], ours[2]]
    assert grid_points(points.points, [ours[3].bits_per_item * 10]) == [ours[3]]
    assert grid_points(points.points, [ours[1].bits_per_item] * 3) == [ours[1]]
    scalar_only = [p for p in points.points if p.method == "scalar"]
    with pytest.raises(ValueError, match="no 'smic' points"):
        grid_points(scalar_only)
    with pytest.raises(ValueError, match="positive"):
        grid_points(points.points, [-1.0])


# ---------------------------------------------------------------- the library


def test_regeneration_grid_columns_seeds_and_bytes(sweep, encoded, generator):
    result, config = sweep
    E, paths = encoded
    ids = [Path(p).name for p in paths]
    grid = regeneration_grid(result, E, generator, config=config, photos=paths, ids=ids, items=3, seed=5,
                             steps=1, guidance=1.0, progress=False)
    kinds = [c.kind for c in grid.columns_]
    assert kinds == ["original", "uncompressed", "smic", "smic", "smic"]
    assert grid.rows == grid_items(len(E), 3) and grid.ids == [ids[r] for r in grid.rows]
    chosen = [p for i, p in enumerate(sorted((p for p in result.points if p.method == "smic"),
                                             key=lambda p: p.bits_per_item)) if i in (0, 2, 3)]
    ours = [p.bits_per_item for p in chosen]
    assert grid.rates == ours and ours == sorted(ours)  # lowest rate first
    assert "residual_step" in grid.columns_[-1].settings  # the refined point is recoded with its layer too
    # the recoded points are the sweep's bytes (the note would say otherwise)
    assert not [n for n in grid.notes if "recoded" in n]
    for column in grid.columns_:
        assert len(column.images) == 3 and all(im.size == (32, 32) for im in column.images)
    # originals: the photo files, centre-cropped to the pictures' size
    from PIL import ImageOps
    first = ImageOps.fit(Image.open(paths[grid.rows[0]]).convert("RGB"), (32, 32), method=Image.Resampling.BICUBIC)
    assert np.array_equal(_pixels(grid.columns_[0].images[0]), _pixels(first))
    # oracle for the uncompressed column: the generator called directly with each item's own seed
    unit = E[grid.rows] / np.linalg.norm(E[grid.rows], axis=1, keepdims=True)
    assert grid.embedding_norm == pytest.approx(np.sqrt(32))  # unit inputs: the generator's estimate
    direct = list(generator.images(unit, seed=5, ids=grid.ids, steps=1, guidance=1.0, norm=grid.embedding_norm))
    for a, b in zip(grid.columns_[1].images, direct):
        assert np.array_equal(_pixels(a), _pixels(b))
    assert grid.columns_[1].item_cosines == pytest.approx([1.0] * 3, abs=1e-6)
    for column, point in zip(grid.columns_[2:], chosen):
        assert f"{point.bits_per_item:.3g} bits/item" in column.title and f"cos {point.cosine_mean:.3f}" in column.title
        # <= 1: learned for its rate on a few photos, an atom may be a photo's own embedding
        assert column.settings == point.settings and all(-1 <= c <= 1 + 1e-6 for c in column.item_cosines)
    # same seed: identical pictures; another seed: other pictures
    again = regeneration_grid(result, E, generator, config=config, ids=ids, items=3, seed=5, rates=1,
                              steps=1, guidance=1.0, progress=False)
    assert [c.kind for c in again.columns_] == ["uncompressed", "smic"]  # no photos: no originals column
    assert again.rates == ours[:1]
    for a, b in zip(again.columns_[1].images, grid.columns_[2].images):
        assert np.array_equal(_pixels(a), _pixels(b))
    other = next(generator.images(unit[:1], seed=6, ids=grid.ids[:1], steps=1, guidance=1.0,
                                  norm=grid.embedding_norm))
    assert np.abs(_pixels(other) - _pixels(grid.columns_[1].images[0])).mean() > 5
    described = json.loads(json.dumps(grid.to_dict()))  # what results.json gets (the CLI test reads it there)
    assert described["rates"] == ours and described["items"] == grid.ids and len(described["columns"]) == 5


def test_regeneration_grid_refuses_mismatches(sweep, encoded, generator, tmp_path):
    result, config = sweep
    E, paths = encoded
    with pytest.raises(ValueError, match=r"run on 14 x 32 embeddings, E is 14 x 16"):
        regeneration_grid(result, E[:, :16], generator, progress=False)
    with pytest.raises(ValueError, match="photos"):
        regeneration_grid(result, E, generator, photos=paths[:2], progress=False)
    folder = build_tiny_generator("unclip", tmp_path / "g16", dim=16)
    with pytest.raises(ValueError, match="dimension 16"):
        regeneration_grid(result, E, Generator.from_pretrained(folder, device="cpu"), progress=False)


# ---------------------------------------------------------------- the CLI


def test_cli_eval_with_generator_on_photos(photo_folder, onnx_model, generator_folder, tmp_path, capsys):
    out = tmp_path / "report"
    code, captured = _run(["eval", str(photo_folder), "--output", str(out), "--model", onnx_model, "--quick",
                           "--methods", "smic,scalar", "--queries", "8", "--generator", str(generator_folder),
                           "--grid-items", "3", "--seed", "2", *FAST, "--json", "-q"], capsys)
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    grid = summary["grid"]
    assert [c["kind"] for c in grid["columns"]] == ["original", "uncompressed", "smic", "smic", "smic"]
    assert len(grid["rates"]) == 3 and grid["rates"] == sorted(grid["rates"]) and len(set(grid["rates"])) == 3
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["grid"]["rates"] == grid["rates"]
    ours = sorted(p["bits_per_item"] for p in data["points"] if p["method"] == "smic")
    # quick: 3 settings + the finest refined with one table and transform-coded
    assert len(ours) == 5 and grid["rates"] == [ours[0], ours[2], ours[4]]
    names = sorted(p.name for p in photo_folder.iterdir())
    assert grid["items"] == [names[i] for i in grid_items(len(names), 3)] and grid["seed"] == 2
    for column in grid["columns"][2:]:
        assert "bits/item" in column["title"] and "marginal" in column["title"] and "cos " in column["title"]
    assert not [note for note in grid["notes"] if "recoded" in note]  # the pictures are of the measured bytes
    with Image.open(out / "regenerations.png") as png:
        assert png.size == (5 * CELL, 3 * CELL)
    page = (out / "index.html").read_text()
    assert "alt='regenerations'" in page and page.count("data:image/png;base64,") == 5
    assert html.escape(grid["caption"]) in page


def test_cli_eval_with_generator_on_embeddings_draws_regenerations_only(encoded, generator_folder, tmp_path,
                                                                        capsys):
    E, _ = encoded
    np.save(tmp_path / "e.npy", E)
    out = tmp_path / "report"
    code, captured = _run(["eval", str(tmp_path / "e.npy"), "--output", str(out), "--quick", "--methods", "smic",
                           "--queries", "8", "--generator", str(generator_folder), "--grid-items", "2",
                           "--grid-rates", "1,1000", *FAST, "--json", "-q"], capsys)
    assert code == 0, captured.err
    grid = json.loads(captured.out)["grid"]
    assert [c["kind"] for c in grid["columns"]] == ["uncompressed", "smic", "smic"]  # no photos to show
    assert grid["items"] == ["0", str(len(E) - 1)]
    ours = sorted(p["bits_per_item"] for p in json.loads((out / "results.json").read_text())["points"])
    nearest = [min(ours, key=lambda rate: abs(math.log(rate / target))) for target in (1, 1000)]
    assert grid["rates"] == nearest  # the points nearest 1 and 1000 bits per item
    assert any("only the dimension was checked" in note for note in grid["notes"])  # no CLIP model to pair
    with Image.open(out / "regenerations.png") as png:
        assert png.size == (3 * CELL, 2 * CELL)


@pytest.fixture
def no_sweep(monkeypatch):
    """Fail the test if the sweep starts: a bad generator must be refused before it."""
    import smic_fast.evaluation

    def refuse(*args, **kwargs):
        raise AssertionError("the sweep ran before the generator was checked")

    monkeypatch.setattr(smic_fast.evaluation, "run_sweep", refuse)


def _broken(generator_folder: Path, tmp_path: Path, how: str) -> Path:
    folder = tmp_path / how
    shutil.copytree(generator_folder, folder)
    if how == "index":
        (folder / "model_index.json").write_text("{not json")
    elif how == "weights":
        weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    return folder


@pytest.mark.parametrize("how, code, message", [
    ("missing", 1, "not found"), ("index", 2, "unreadable JSON"), ("weights", 2, "could not be loaded"),
    ("dim16", 2, "dimensions differ"),
])
def test_cli_eval_bad_generator_fails_before_the_sweep(encoded, generator_folder, tmp_path, capsys, no_sweep,
                                                      how, code, message):
    E, _ = encoded
    np.save(tmp_path / "e.npy", E)
    if how == "missing":
        folder = tmp_path / "nowhere"
    elif how == "dim16":
        folder = build_tiny_generator("unclip", tmp_path / "g16", dim=16)
    else:
        folder = _broken(generator_folder, tmp_path, how)
    out = tmp_path / "report"
    got, captured = _run(["eval", str(tmp_path / "e.npy"), "--output", str(out), "--quick", "--generator",
                          str(folder), *FAST, "-q"], capsys)
    assert got == code and message in captured.err and captured.err.startswith("smic eval:")
    assert not out.exists() and not list(tmp_path.glob(".smic-eval-*"))


def test_cli_eval_generator_flags_and_missing_extra(encoded, generator_folder, tmp_path, capsys, no_sweep,
                                                    monkeypatch):
    E, _ = encoded
    np.save(tmp_path / "e.npy", E)
    base = ["eval", str(tmp_path / "e.npy"), "--output", str(tmp_path / "r"), "--quick", "-q"]
    assert _run([*base, "--grid-items", "3"], capsys)[0] == 2  # needs --generator
    code, captured = _run([*base, "--generator", str(generator_folder), "--grid-rates", "10,x"], capsys)
    assert code == 2 and "--grid-rates" in captured.err
    code, captured = _run([*base, "--generator", str(generator_folder), "--methods", "scalar"], capsys)
    assert code == 2 and "keep 'smic'" in captured.err
    code, captured = _run([*base, "--generator", str(generator_folder), "--size", "20", "--device", "cpu"], capsys)
    assert code == 2 and "multiple of 8" in captured.err
    import smic_fast.generate.pipelines as pipelines

    def no_torch():
        raise ImportError("generating images needs torch and diffusers (No module named 'torch'); "
                          "install 'smic-fast[generate]'")

    monkeypatch.setattr(pipelines, "import_torch", no_torch)
    code, captured = _run([*base, "--generator", str(generator_folder)], capsys)
    assert code == 1 and "smic-fast[generate]" in captured.err
    assert not (tmp_path / "r").exists()


def test_cli_eval_kandinsky_grid_uses_the_zero_image_negative(photo_folder, onnx_model, tmp_path, capsys):
    """Kandinsky 2.2: the negative image embedding is the CLIP tower's output for a zero image,
    made with the model the photos were encoded with (as `smic decompress --images` does)."""
    folder = build_tiny_generator("kandinsky", tmp_path / "kandinsky", dim=32)
    out = tmp_path / "report"
    code, captured = _run(["eval", str(photo_folder), "--output", str(out), "--model", onnx_model, "--quick",
                           "--methods", "smic", "--queries", "8", "--generator", str(folder), "--grid-items", "1",
                           "--grid-rates", "1", *FAST, "--json", "-q"], capsys)
    assert code == 0, captured.err
    grid = json.loads(captured.out)["grid"]
    assert grid["family"] == "kandinsky"
    assert [c["kind"] for c in grid["columns"]] == ["original", "uncompressed", "smic"]
    assert any("zero image" in note for note in grid["notes"])
    with Image.open(out / "regenerations.png") as png:
        assert png.size == (3 * CELL, 1 * CELL)


def test_cli_eval_generation_failure_keeps_the_report(encoded, generator_folder, tmp_path, capsys, monkeypatch):
    """A generator that fails after the sweep (say, out of memory) costs the grid, not the report: exit 3."""
    E, _ = encoded
    np.save(tmp_path / "e.npy", E)

    def out_of_memory(self, *args, **kwargs):
        raise RuntimeError("simulated out of memory")

    monkeypatch.setattr(Generator, "generate", out_of_memory)
    out = tmp_path / "report"
    code, captured = _run(["eval", str(tmp_path / "e.npy"), "--output", str(out), "--quick", "--methods", "smic",
                           "--queries", "8", "--generator", str(generator_folder), *FAST, "--json"], capsys)
    assert code == 3
    assert "simulated out of memory" in captured.err and "written without it" in captured.err
    data = json.loads((out / "results.json").read_text())
    assert "simulated out of memory" in data["meta"]["grid"]["error"] and data["points"]
    assert not (out / "regenerations.png").exists()


def test_cli_eval_generator_without_sample_size_says_its_size(encoded, tmp_path, capsys, monkeypatch):
    """A generator folder whose UNet config has "sample_size": null (as diffusers saves it) is
    accepted; without --size the grid uses its family's usual size, and says so."""
    E, _ = encoded
    np.save(tmp_path / "e.npy", E)
    folder = build_tiny_generator("unclip", tmp_path / "unsized", dim=E.shape[1], sample_size=None)
    sizes = []

    def blank(self, embeddings, seeds, *, steps=None, guidance=None, size=None, **options):
        width, height = self.settings(steps, guidance, size)[2]  # the size chosen, without drawing it
        sizes.append((width, height))
        return [Image.new("RGB", (width, height)) for _ in seeds]

    monkeypatch.setattr(Generator, "generate", blank)
    code, captured = _run(["eval", str(tmp_path / "e.npy"), "--output", str(tmp_path / "report"), "--quick",
                           "--methods", "smic", "--queries", "8", "--generator", str(folder), "--grid-items", "1",
                           "--grid-rates", "1", *FAST, "--json"], capsys)
    assert code == 0, captured.err
    from smic_fast.generate import read_generator_info

    usual = read_generator_info(folder)
    assert sizes and set(sizes) == {(usual.default_size, usual.default_size)}
    assert usual.size_note in json.loads(captured.out)["grid"]["notes"] and "no sample_size" in captured.err
