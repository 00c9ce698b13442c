"""Generative decoding: tiny random Stable unCLIP and Kandinsky 2.2 pipelines, built from small
configs, saved, and loaded back through Generator.from_pretrained (the users' path); 32x32
pictures on the CPU. Plus the config-only checks (pairing, broken folders) and file naming."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import smic_fast
from smic_fast.encode.clip_models import ModelNotFoundError
from smic_fast.generate import (GeneratorError, GeneratorInfo, GeneratorMismatchError, ImagesReport,
                                check_compatibility, image_names, item_seed, read_generator_info)

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from smic_fast.generate import Generator, write_images  # noqa: E402
from smic_fast.generate.tiny import build_tiny_generator  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning:torch.*", "ignore::FutureWarning:torch.*")

FAMILIES = ("unclip", "kandinsky")
IDS = ["a.jpg", "sub/b.jpg", "../evil.jpg", "c.png", "c.jpg", "d"]
STEPS = 1
FAST = {"steps": STEPS, "guidance": 1.0}  # one step, no classifier-free guidance: seconds on a CPU


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("generators")
    return {f: build_tiny_generator(f, root / f, dim=32) for f in FAMILIES}


@pytest.fixture(scope="module")
def generators(folders) -> dict[str, Generator]:
    return {f: Generator.from_pretrained(folders[f], device="cpu") for f in FAMILIES}


@pytest.fixture(scope="module")
def embeddings() -> np.ndarray:
    E = np.random.default_rng(7).standard_normal((len(IDS), 32)).astype(np.float32)
    return E


@pytest.fixture(scope="module")
def collection(tmp_path_factory, embeddings):
    path = tmp_path_factory.mktemp("col") / "photos.smic"
    smic_fast.compress(embeddings, path, n_atoms=4, n_nonzero=2, ids=IDS, model="tiny")
    return smic_fast.open(path)


def _pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


# ------------------------------------------------------------------------------ generation
@pytest.mark.parametrize("family", FAMILIES)
def test_loaded_through_from_pretrained(generators, folders, family):
    gen = generators[family]
    assert gen.family == family and gen.dim == 32 and gen.device == "cpu"
    assert gen.info.path == folders[family] and gen.info.default_size == 32
    if family == "unclip":  # the CLIP image encoder is never run, so it is not loaded
        assert sum(p.numel() for p in gen.pipeline.image_encoder.parameters()) == 1


def test_unclip_with_text_encoder_encodes_the_empty_prompt_once(tmp_path, embeddings):
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = build_tiny_generator("unclip", tmp_path / "with_text", text_encoder=True)
    gen = Generator.from_pretrained(folder, device="cpu")
    # Oracle: the folder's own tokenizer and text encoder on "" (what the pipeline would run per call).
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    encoder = CLIPTextModel.from_pretrained(folder / "text_encoder")
    ids = tokenizer("", padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        expected = encoder(ids)[0]
    assert gen._prompt_embeds.shape == (1, 8, 32)
    torch.testing.assert_close(gen._prompt_embeds, expected)
    assert gen.pipeline.text_encoder is None and gen.pipeline.tokenizer is None  # freed after use
    images = list(gen.images(embeddings[:2], steps=STEPS, guidance=2.0))
    assert [im.size for im in images] == [(32, 32)] * 2


@pytest.mark.parametrize("family", FAMILIES)
def test_seeds_shapes_and_determinism(generators, embeddings, family):
    gen = generators[family]
    E = embeddings[:3]
    guidance = None if family == "unclip" else 1.0  # unCLIP: its default, classifier-free guidance
    first = list(gen.images(E, seed=1, steps=STEPS, guidance=guidance, size=32, batch_size=3))
    again = list(gen.images(E, seed=1, steps=STEPS, guidance=guidance, size=32, batch_size=3))
    other = list(gen.images(E, seed=2, steps=STEPS, guidance=guidance, size=32, batch_size=3))
    assert [im.size for im in first] == [(32, 32)] * 3 and all(im.mode == "RGB" for im in first)
    for a, b, c in zip(first, again, other):
        assert np.array_equal(_pixels(a), _pixels(b))
        assert np.abs(_pixels(a) - _pixels(c)).mean() > 5  # another seed: another picture
    assert np.abs(_pixels(first[0]) - _pixels(first[1])).mean() > 5  # items get their own noise


@pytest.mark.parametrize("family", FAMILIES)
def test_one_item_equals_its_image_in_the_whole_run(generators, collection, tmp_path, family):
    gen = generators[family]
    whole = write_images(collection, tmp_path / "whole", gen, seed=3, batch_size=4, progress=False, **FAST)
    one = write_images(collection, tmp_path / "one", gen, ids=["c.jpg"], seed=3, progress=False, **FAST)
    two = write_images(collection, tmp_path / "two", gen, ids=["d", "c.jpg"], seed=3, batch_size=1,
                       progress=False, **FAST)
    assert list(one.written) == ["c.jpg"] and list(two.written) == ["d", "c.jpg"]
    single = _pixels(Image.open(one.written["c.jpg"]))
    # The noise depends on the id only, not on the position or the other items:
    assert np.array_equal(single, _pixels(Image.open(two.written["c.jpg"])))
    # In a batch of 4 the convolutions round differently: at most 1 level in a few pixels.
    batched = _pixels(Image.open(whole.written["c.jpg"]))
    assert np.abs(single - batched).max() <= 1 and (single != batched).mean() < 0.02


def test_files_names_and_report(generators, collection, tmp_path):
    out = tmp_path / "out"
    report = write_images(collection, out, generators["kandinsky"], seed=0, batch_size=6, progress=False, **FAST)
    assert isinstance(report, ImagesReport) and not report.failed
    assert set(report.written) == set(IDS)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(["a.png", "sub/b.png", "_/evil.png", "c.png.png", "c.jpg.png", "d.png"])
    for path in report.written.values():
        assert Path(path).resolve().is_relative_to(out.resolve())
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == (32, 32)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["written"] == len(IDS) and data["failed"] == 0 and data["size"] == [32, 32]
    assert data["steps"] == STEPS and data["guidance"] == 1.0 and data["family"] == "kandinsky"
    assert data["cos_reconstructed_mean"] is None


def test_embedding_norm_choice(generators, folders, collection, tmp_path):
    from smic_fast.generate.writer import embedding_norm

    unclip, kandinsky = generators["unclip"], generators["kandinsky"]
    assert unclip.embedding_norm() == pytest.approx(np.sqrt(32))  # the tiny normalizer: mean 0, std 1
    assert kandinsky.embedding_norm() is None
    notes: list[str] = []
    assert embedding_norm("auto", 17.5, unclip, notes) == 17.5 and not notes  # raw collection: its own
    assert embedding_norm("auto", 1.0, unclip, notes) == pytest.approx(np.sqrt(32)) and "typical" in notes[0]
    assert embedding_norm("auto", 1.0, kandinsky, notes) is None and "unit vectors" in notes[1]
    assert embedding_norm(3, 1.0, kandinsky, []) == 3.0 and embedding_norm(None, 5.0, unclip, []) is None
    with pytest.raises(ValueError, match="norm"):
        embedding_norm(-1, 1.0, unclip, [])
    report = write_images(collection, tmp_path / "out", unclip, ids=["d"], progress=False, **FAST)
    assert report.to_dict()["embedding_norm"] == pytest.approx(collection.header["mean_norm"])


def test_failed_item_reported_others_written(generators, collection, tmp_path, monkeypatch):
    gen = generators["kandinsky"]
    bad = item_seed(5, "d")
    real = gen.generate

    def flaky(E, seeds, **options):
        if bad in seeds:
            raise RuntimeError("simulated out of memory")
        return real(E, seeds, **options)

    monkeypatch.setattr(gen, "generate", flaky)
    report = write_images(collection, tmp_path / "out", gen, seed=5, batch_size=4, progress=False, **FAST)
    assert [f.id for f in report.failed] == ["d"] and "simulated out of memory" in report.failed[0].reason
    assert set(report.written) == set(IDS) - {"d"}
    assert not (tmp_path / "out" / "d.png").exists()
    assert not list((tmp_path / "out").rglob("*.tmp"))


def _toy_image_encoder(path: Path):
    """A stand-in CLIP image tower: (N, 3, 32, 32) -> flatten -> fixed random affine map to 32.
    The check only needs a deterministic image -> vector model to re-encode with."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from smic_fast.encode.clip_onnx import ClipEncoder
    from smic_fast.encode.images import Preprocess

    weight = np.random.default_rng(3).standard_normal((3 * 32 * 32, 32)).astype(np.float32)
    bias = np.random.default_rng(4).standard_normal(32).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["pixels"], ["flat"], axis=1), helper.make_node("MatMul", ["flat", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["emb"])],
        "toy", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["N", 32])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return ClipEncoder(path, providers="cpu", preprocess=Preprocess(image_size=32))


def test_semantic_check_against_reencoding(generators, collection, embeddings, tmp_path):
    encoder = _toy_image_encoder(tmp_path / "toy.onnx")
    report = write_images(collection, tmp_path / "out", generators["unclip"], check=True, encoder=encoder,
                          original=embeddings, batch_size=6, progress=False, **FAST)
    assert set(report.cos_reconstructed) == set(report.cos_original) == set(IDS)
    # Oracle: re-encode the PNG files as written and compare with the embeddings directly.
    for i, item_id in enumerate(IDS):
        with Image.open(report.written[item_id]) as im:
            got = encoder.encode_images([im.convert("RGB")])[0]
        rec = collection[item_id] / np.linalg.norm(collection[item_id])
        orig = embeddings[i] / np.linalg.norm(embeddings[i])
        assert report.cos_reconstructed[item_id] == pytest.approx(float(got @ rec), abs=1e-5)
        assert report.cos_original[item_id] == pytest.approx(float(got @ orig), abs=1e-5)
    data = report.to_dict()
    assert data["cos_original_mean"] == pytest.approx(np.mean(list(report.cos_original.values())))
    assert all("cos_reconstructed" in item for item in data["items"])


def test_kandinsky_negative_is_the_zero_image_embedding(generators, collection, tmp_path, monkeypatch):
    from smic_fast.generate.seeds import item_seed
    from smic_fast.generate.writer import zero_image_embedding

    encoder = _toy_image_encoder(tmp_path / "toy.onnx")
    bias = zero_image_embedding(encoder)
    gen = generators["kandinsky"]
    options = {"steps": 1, "guidance": 3.0}
    report = write_images(collection, tmp_path / "out", gen, ids=["d"], encoder=encoder, progress=False, **options)
    assert any("zero image" in note for note in report.notes)
    norm = report.embedding_norm
    E = collection["d"][None]
    with_bias = gen.generate(E, [item_seed(0, "d")], negative=bias, norm=norm, **options)[0]
    with_zeros = gen.generate(E, [item_seed(0, "d")], norm=norm, **options)[0]
    written = _pixels(Image.open(report.written["d"]))
    assert np.array_equal(written, _pixels(with_bias))
    # the negative matters under guidance (little, through a random tiny UNet at one step)
    assert np.abs(written - _pixels(with_zeros)).mean() > 0.1
    monkeypatch.setenv("SMIC_HOME", str(tmp_path / "empty_cache"))  # no export of 'tiny' there
    plain = write_images(collection, tmp_path / "plain", gen, ids=["d"], progress=False, **options)
    assert any("zeros" in note and "smic export-clip" in note for note in plain.notes)


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 30}, "multiple of"), ({"steps": 0}, "steps"), ({"guidance": float("nan")}, "guidance"),
    ({"ids": ["nope"]}, "not in"), ({"batch_size": 0}, "batch_size"),
])
def test_bad_arguments_fail_before_generating(generators, collection, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_images(collection, tmp_path / "out", generators["unclip"], progress=False, **kwargs)
    assert not list(tmp_path.rglob("*.png"))


def test_embedding_dimension_checked(generators):
    with pytest.raises(ValueError, match=r"\(N, 32\)"):
        list(generators["unclip"].images(np.zeros((2, 16), np.float32)))


# ------------------------------------------------------------------------------ pairing checks (no weights)
def _copy(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest)
    return dest


def _edit(path: Path, **changes) -> None:
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_dimension_mismatch_refused_before_weights_load(folders, tmp_path):
    folder = _copy(folders["unclip"], tmp_path / "g48")
    _edit(folder / "image_normalizer" / "config.json", embedding_dim=48)
    _edit(folder / "unet" / "config.json", projection_class_embeddings_input_dim=96)
    for weights in folder.rglob("*.safetensors"):
        weights.write_bytes(b"not weights")  # loading any of them would fail with another error
    with pytest.raises(GeneratorMismatchError) as info:
        Generator.from_pretrained(folder, device="cpu", model="tiny", dim=32)
    message = str(info.value)
    assert "'tiny'" in message and "dim 32" in message and str(folder) in message and "dim 48" in message


def test_family_mismatch_names_both():
    unclip_1280 = GeneratorInfo(Path("x"), "unclip", "StableUnCLIPImg2ImgPipeline", 1280, 768, "my-unclip")
    with pytest.raises(GeneratorMismatchError, match=r"'kandinsky'.*Kandinsky 2\.2.*my-unclip"):
        check_compatibility("kandinsky", 1280, unclip_1280)
    kandinsky_1024 = GeneratorInfo(Path("y"), "kandinsky", "KandinskyV22Pipeline", 1024, 512, "my-kandinsky")
    with pytest.raises(GeneratorMismatchError, match=r"ViT-H-14.*Stable unCLIP.*my-kandinsky"):
        check_compatibility("ViT-H-14", 1024, kandinsky_1024)
    assert check_compatibility("default", 1024, GeneratorInfo(Path("z"), "unclip", "S", 1024, 768)) == []
    assert "only the dimension" in check_compatibility(None, 1024, kandinsky_1024)[0]


def test_default_generator_of_each_pairing():
    from smic_fast.generate import default_generator

    assert default_generator("kandinsky") == "kandinsky-community/kandinsky-2-2-decoder"
    assert default_generator("ViT-L-14") == "stabilityai/stable-diffusion-2-1-unclip-small"
    assert default_generator("fast") is None and default_generator(None) is None


# ------------------------------------------------------------------------------ broken folders
def test_missing_folder_and_files(folders, tmp_path):
    with pytest.raises(ModelNotFoundError, match="nowhere"):
        Generator.from_pretrained(tmp_path / "nowhere")
    folder = _copy(folders["kandinsky"], tmp_path / "no_index")
    (folder / "model_index.json").unlink()
    with pytest.raises(ModelNotFoundError, match=r"model_index\.json is missing"):
        read_generator_info(folder)
    folder = _copy(folders["kandinsky"], tmp_path / "no_unet_weights")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match=r"'unet' has no weights file in .*no_unet_weights/unet"):
        Generator.from_pretrained(folder)
    folder = _copy(folders["unclip"], tmp_path / "no_normalizer")
    shutil.rmtree(folder / "image_normalizer")
    with pytest.raises(ModelNotFoundError, match=r"image_normalizer/config\.json is missing"):
        read_generator_info(folder)


def test_hub_name_not_cached_is_a_clear_error():
    with pytest.raises(ModelNotFoundError, match=r"not-a-user/not-a-model.*not in the Hugging Face cache"):
        Generator.from_pretrained("not-a-user/not-a-model")


@pytest.mark.parametrize("family", FAMILIES)
def test_truncated_weights_file(folders, tmp_path, family):
    folder = _copy(folders[family], tmp_path / "truncated")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(GeneratorError, match=r"truncated.* could not be loaded"):
        Generator.from_pretrained(folder, device="cpu")


@pytest.fixture(scope="module")
def unsized_folders(tmp_path_factory) -> dict[str, Path]:
    """Generators saved by diffusers from UNets built without a sample_size (diffusers' default:
    their unet/config.json says "sample_size": null)."""
    root = tmp_path_factory.mktemp("unsized")
    return {f: build_tiny_generator(f, root / f, dim=32, sample_size=None) for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_folder_without_sample_size_is_accepted(unsized_folders, folders, family, embeddings):
    from smic_fast.generate.configs import FAMILIES as FAMILY_SPECS

    folder = unsized_folders[family]
    assert json.loads((folder / "unet" / "config.json").read_text())["sample_size"] is None  # as diffusers saved it
    usual = FAMILY_SPECS[family].usual_size
    info = read_generator_info(folder)
    assert info.default_size == usual and f"{usual}x{usual}" in info.size_note and "no sample_size" in info.size_note
    assert read_generator_info(folders[family]).size_note == ""  # a folder with a size says nothing
    gen = Generator.from_pretrained(folder, device="cpu")
    assert gen.settings()[2] == (usual, usual)
    (image,) = gen.generate(embeddings[:1], [0], size=32, **FAST)
    assert image.size == (32, 32)


def test_sample_size_pairs_and_bad_values(folders, tmp_path):
    from smic_fast.generate.configs import FAMILIES as FAMILY_SPECS

    folder = _copy(folders["kandinsky"], tmp_path / "pair")
    sample = json.loads((folder / "unet" / "config.json").read_text())["sample_size"]
    scale = read_generator_info(folder).default_size // sample  # the autoencoder's
    _edit(folder / "unet" / "config.json", sample_size=[8, 8])
    assert read_generator_info(folder).default_size == 8 * scale and read_generator_info(folder).size_note == ""
    _edit(folder / "unet" / "config.json", sample_size=[8, 12])
    info = read_generator_info(folder)
    assert info.default_size == FAMILY_SPECS["kandinsky"].usual_size and "not square" in info.size_note
    _edit(folder / "unet" / "config.json", sample_size=[8, "x"])
    with pytest.raises(GeneratorError, match="'sample_size' must be a positive integer"):
        read_generator_info(folder)


def test_default_size_without_sample_size_is_said(unsized_folders, collection, tmp_path, monkeypatch):
    gen = Generator.from_pretrained(unsized_folders["kandinsky"], device="cpu")
    sizes = []

    def blank(E, seeds, *, size, **options):  # the size chosen, without drawing 512x512 pictures
        sizes.append(size)
        return [Image.new("RGB", size) for _ in seeds]

    monkeypatch.setattr(gen, "generate", blank)
    report = write_images(collection, tmp_path / "default", gen, ids=["d"], progress=False, **FAST)
    usual = gen.info.default_size
    assert sizes == [(usual, usual)] and report.size == (usual, usual)
    assert gen.info.size_note in report.notes
    report = write_images(collection, tmp_path / "given", gen, ids=["d"], size=32, progress=False, **FAST)
    assert sizes[-1] == (32, 32) and gen.info.size_note not in report.notes


@pytest.mark.parametrize("family", FAMILIES)
def test_smic_decompress_folder_without_sample_size(unsized_folders, collection, tmp_path, capsys, family):
    from smic_fast.cli import main

    out = tmp_path / "imgs"
    code = main(["decompress", str(collection.path), "--images", str(out), "--generator", str(unsized_folders[family]),
                 "--size", "32", "--steps", "1", "--guidance", "1", "--ids", "d", "--device", "cpu", "--json", "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)["images"]
    assert summary["written"] == 1 and summary["size"] == [32, 32]
    with Image.open(out / "d.png") as image:
        assert image.size == (32, 32)


@pytest.mark.parametrize("component, file, changes, message", [
    ("image_normalizer", "config.json", {"embedding_dim": "32"}, r"'embedding_dim' must be a positive integer"),
    ("unet", "config.json", {"projection_class_embeddings_input_dim": 40}, "twice"),
    ("unet", "config.json", {"sample_size": -1}, "'sample_size'"),
])
def test_wrong_config_values(folders, tmp_path, component, file, changes, message):
    folder = _copy(folders["unclip"], tmp_path / "bad")
    _edit(folder / component / file, **changes)
    with pytest.raises(GeneratorError, match=message) as info:
        read_generator_info(folder)
    assert str(folder / component / file) in str(info.value)


def test_unreadable_or_wrong_pipeline(folders, tmp_path):
    folder = _copy(folders["kandinsky"], tmp_path / "broken")
    (folder / "unet" / "config.json").write_text("{not json")
    with pytest.raises(GeneratorError, match=r"unet/config\.json: unreadable JSON"):
        read_generator_info(folder)
    folder = _copy(folders["kandinsky"], tmp_path / "prior")
    _edit(folder / "model_index.json", _class_name="KandinskyV22PriorPipeline")
    with pytest.raises(GeneratorError, match="kandinsky-2-2-decoder"):
        read_generator_info(folder)
    folder = _copy(folders["kandinsky"], tmp_path / "list")
    (folder / "model_index.json").write_text("[1, 2]")
    with pytest.raises(GeneratorError, match="expected a JSON object"):
        read_generator_info(folder)
    folder = _copy(folders["kandinsky"], tmp_path / "nomovq")
    _edit(folder / "model_index.json", movq=None)
    with pytest.raises(GeneratorError, match=r"component 'movq' must be \[library, class\]"):
        read_generator_info(folder)


# ------------------------------------------------------------------------------ names, seeds, imports
def test_image_names_stay_inside_and_do_not_collide():
    names = image_names(["a.jpg", "a.png", "A.JPG", "/etc/passwd", "..\\..\\x.jpg", "C:\\p\\q.jpeg",
                         "..", "dir/.hidden", "x/./y.tif", "noext"])
    assert names["/etc/passwd"] == "etc/passwd.png"
    assert names["..\\..\\x.jpg"] == "_/_/x.png"
    assert names["C:\\p\\q.jpeg"] == "C_/p/q.png"
    assert names[".."] == "_.png" and names["dir/.hidden"] == "dir/.hidden.png"
    assert names["x/./y.tif"] == "x/y.png" and names["noext"] == "noext.png"
    # "A.JPG.png" would clash with "a.jpg.png" on a case-insensitive file system
    assert [names["a.jpg"], names["a.png"], names["A.JPG"]] == ["a.jpg.png", "a.png.png", "A.JPG~1.png"]
    assert len({n.lower() for n in names.values()}) == len(names)


def test_item_seed_is_stable():
    assert item_seed(0, "a") == item_seed(0, "a") != item_seed(1, "a") != item_seed(0, "b")
    assert 0 <= item_seed(2**40, "x" * 1000) < 2**63
    with pytest.raises(ValueError):
        item_seed(1.5, "a")  # type: ignore[arg-type]


def test_importing_does_not_import_torch():
    code = "import sys, smic_fast, smic_fast.generate; assert 'torch' not in sys.modules and 'diffusers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_smic_decompress_images_and_exit_codes(folders, collection, tmp_path, capsys):
    import json

    from smic_fast.cli import main

    out = tmp_path / "imgs"
    base = ["decompress", str(collection.path), "--images", str(out)]
    code = main([*base, "--generator", str(folders["kandinsky"]), "--steps", "1", "--guidance", "1",
                 "--ids", "d", "a.jpg", "--device", "cpu", "--seed", "4", "--embeddings", str(tmp_path / "e.npy"),
                 "--json", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["images"]["written"] == 2 and summary["images"]["seed"] == 4 and summary["items"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "d.png"]
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy")[1], collection["a.jpg"])
    assert main([*base, "--generator", str(tmp_path / "missing")]) == 1  # nothing written
    assert "missing" in capsys.readouterr().err
    assert main([*base, "--generator", str(folders["unclip"]), "--size", "20"]) == 2
    assert "multiple of 8" in capsys.readouterr().err
    assert main([*base, "--ids", "no-such-id"]) == 2
