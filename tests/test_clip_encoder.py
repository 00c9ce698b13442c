"""ClipEncoder: our Pillow + numpy preprocessing and ONNX Runtime against open_clip's own
transform and PyTorch model (the oracle, with the tiny model exported by torch: skipped without
the [export] extra), files vs in-memory images, streaming, providers (on the tiny model built
with onnx alone: these run without torch)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime")

from smic_fast.encode import clip_onnx  # noqa: E402
from smic_fast.encode.clip_export import export_clip, load_open_clip_model, sample_photos  # noqa: E402
from smic_fast.encode.clip_models import ModelNotFoundError  # noqa: E402
from smic_fast.encode.clip_onnx import ClipEncoder, resolve_providers  # noqa: E402
from smic_fast.encode.images import Preprocess  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning:torch.*", "ignore::FutureWarning:torch.*")


@pytest.fixture(scope="module")
def encoder(tiny_clip_home) -> ClipEncoder:
    """The tiny model built with onnx alone (no torch needed)."""
    return ClipEncoder("tiny", cache=tiny_clip_home, batch_size=4)


@pytest.fixture(scope="module")
def exported_encoder(exported_tiny_home) -> ClipEncoder:
    """The tiny model exported from open_clip by torch, for the oracle tests."""
    return ClipEncoder("tiny", cache=exported_tiny_home, batch_size=4)


@pytest.fixture(scope="module")
def torch_tiny(smic_home):  # smic_home registers the tiny config with open_clip
    pytest.importorskip("torch")
    model, preprocess, _, _ = load_open_clip_model("tiny", seed=0)
    return model, preprocess


def _photos() -> list[Image.Image]:
    photos, kind = sample_photos()
    assert kind == "skimage"
    rocket = np.asarray(photos[3])
    portrait = Image.fromarray(np.ascontiguousarray(rocket.transpose(1, 0, 2)))  # 427 wide, 640 high
    odd = photos[1].crop((3, 5, 3 + 301, 5 + 97))  # very wide, odd sizes
    return [*photos, portrait, odd]


def _torch_embeddings(torch_tiny, images) -> np.ndarray:
    import torch

    model, preprocess = torch_tiny
    with torch.no_grad():
        return model.encode_image(torch.stack([preprocess(im) for im in images]), normalize=True).numpy()


def test_preprocessing_tensor_matches_open_clip(exported_encoder, torch_tiny):
    encoder = exported_encoder
    _, preprocess = torch_tiny
    for image in _photos():
        ours = encoder.preprocess(image)
        theirs = preprocess(image).numpy()
        assert ours.shape == theirs.shape == (3, 64, 64)
        # We resample only the crop box (Pillow's resize(box=...)), open_clip the whole image
        # and then crops: the same filter, so the 8-bit pixels agree up to rounding, i.e. a
        # few of them differ by one level (1 / (255 * std) after normalisation).
        one_level = 1.0 / (255.0 * np.asarray(encoder.preprocess.std))[:, None, None]
        diff = np.abs(ours - theirs)
        assert (diff <= one_level * 1.001 + 1e-5).all()
        assert (diff > 1e-5).mean() < 1e-3


def test_oracle_cosine_on_photos(exported_encoder, torch_tiny):
    images = _photos()
    ours = exported_encoder.encode_images(images)
    ref = _torch_embeddings(torch_tiny, images)
    assert ours.dtype == np.float32 and ours.shape == (len(images), 32)
    cos = (ours * ref).sum(1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.9999, cos
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_oracle_cosine_vit_b_32_random(tmp_path):
    """The same oracle on the real ViT-B-32 architecture (random weights, 224 px input)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("open_clip")
    result = export_clip("ViT-B-32", pretrained=None, cache=tmp_path)
    assert result.max_abs_diff <= 1e-4
    model, preprocess, _, _ = load_open_clip_model("ViT-B-32", seed=0)
    images = _photos()
    ours = ClipEncoder(result.path, batch_size=8).encode_images(images)
    with torch.no_grad():
        ref = model.encode_image(torch.stack([preprocess(im) for im in images]), normalize=True).numpy()
    assert ((ours * ref).sum(1)).min() >= 0.9999


def test_paths_match_images_and_draft_is_close(encoder, tmp_path):
    images = _photos()
    paths = []
    for i, im in enumerate(images):
        big = im.resize((im.width * 3, im.height * 3), Image.Resampling.BICUBIC)  # room for draft()
        p = tmp_path / f"{i}.jpg"
        big.save(p, quality=95)
        paths.append(str(p))
    decoded = [Image.open(p).convert("RGB") for p in paths]
    exact = ClipEncoder(encoder.path, draft=False, batch_size=3)
    result = exact.encode_paths(paths)
    assert result.paths == paths and not result.skipped
    np.testing.assert_allclose(result.embeddings, exact.encode_images(decoded), atol=1e-5)
    drafted = encoder.encode_paths(paths)
    assert ((drafted.embeddings * result.embeddings).sum(1)).min() >= 0.999


def test_streaming_keeps_a_bounded_window(encoder, tmp_path, monkeypatch):
    im = _photos()[0].resize((80, 80))
    path = tmp_path / "a.png"
    im.save(path)
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    original = encoder._load

    def counting_load(p):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        return original(p)

    consumed = 0

    def paths():
        nonlocal consumed
        for _ in range(200):
            consumed += 1
            yield path

    monkeypatch.setattr(encoder, "_load", counting_load)
    gen = encoder.iter_encode(paths(), prefetch=8)
    names, emb, skipped = next(gen)
    assert len(names) == 4 and emb.shape == (4, 32)
    assert consumed <= 4 + 8 + 1  # the source is read lazily, a window ahead
    total = len(names) + sum(len(n) for n, _, _ in gen)
    assert total == 200 and consumed == 200


def test_empty_inputs(encoder):
    assert encoder.encode_images([]).shape == (0, 32)
    result = encoder.encode_paths([])
    assert result.embeddings.shape == (0, 32) and result.paths == [] and result.skipped == []


def test_raw_output_when_not_normalized(exported_encoder, torch_tiny):
    import torch

    raw = ClipEncoder(exported_encoder.path, normalize=False)
    images = _photos()[:3]
    model, preprocess = torch_tiny
    with torch.no_grad():
        ref = model.encode_image(torch.stack([preprocess(im) for im in images])).numpy()
    np.testing.assert_allclose(raw.encode_images(images), ref, rtol=1e-4, atol=1e-4)


def test_providers(encoder, caplog):
    assert encoder.provider == "CPUExecutionProvider"
    assert encoder.providers[-1] == "CPUExecutionProvider"
    assert resolve_providers("cpu") == ["CPUExecutionProvider"]
    assert resolve_providers("cuda")[0] == "CUDAExecutionProvider"
    assert resolve_providers("tensorrt")[:2] == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    with pytest.raises(ValueError, match="auto"):
        resolve_providers("tpu")
    # Asking for CUDA on a machine without it falls back to CPU, read from the session.
    with caplog.at_level("WARNING", logger="smic_fast.clip"):
        fallback = ClipEncoder(encoder.path, providers="cuda")
    assert fallback.provider == "CPUExecutionProvider"
    assert "CUDAExecutionProvider" in caplog.text and "onnxruntime-gpu" in caplog.text


def test_fp16_needs_a_gpu(encoder):
    """onnxruntime's CPU provider does not run float16 ViTs: refused with a clear message
    (fp16 itself is checked on a GPU, see BENCHMARKS.md)."""
    with pytest.raises(ValueError, match="GPU provider.*int8"):
        ClipEncoder(encoder.path, fp16=True, providers="cpu")


def test_missing_models_say_how_to_make_them(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"smic export-clip --model default"):
        ClipEncoder("default", cache=tmp_path)
    with pytest.raises(ModelNotFoundError, match=r"missing\.onnx"):
        ClipEncoder(tmp_path / "missing.onnx")


def test_bad_arguments(encoder):
    with pytest.raises(ValueError, match="batch_size"):
        ClipEncoder(encoder.path, batch_size=0)
    with pytest.raises(ValueError, match=r"images\[1\]"):
        encoder.encode_images([_photos()[0], np.zeros((4, 4, 3))])
    with pytest.raises(ValueError, match="shape"):
        encoder.encode_arrays(np.zeros((2, 3, 32, 32), np.float32))


def test_preprocess_validation_and_round_trip():
    p = Preprocess(image_size=224, mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2), interpolation="bilinear")
    assert Preprocess.from_json(p.to_json()) == p
    with pytest.raises(ValueError, match="resize_mode"):
        Preprocess(resize_mode="stretch")
    with pytest.raises(ValueError, match="image_size"):
        Preprocess(image_size=0)


@pytest.mark.parametrize("mode", ["squash", "longest"])
def test_other_resize_modes_match_open_clip(mode):
    pytest.importorskip("torch")
    pytest.importorskip("open_clip")
    from open_clip.transform import image_transform

    theirs = image_transform(64, is_train=False, resize_mode=mode)
    ours = Preprocess(image_size=64, resize_mode=mode)
    for image in _photos():
        np.testing.assert_allclose(ours(image), theirs(image).numpy(), atol=1e-5)


def test_module_exports():
    assert {"ClipEncoder", "EncodeResult", "Skipped"} <= set(clip_onnx.__all__)
