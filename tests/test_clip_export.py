"""Export of open_clip image towers to ONNX: the tiny random model built from tests/data/tiny.json,
checked against open_clip's PyTorch output; weights from checkpoints and caches; offline errors;
the `smic export-clip` command."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
ort = pytest.importorskip("onnxruntime")

from smic_fast.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main  # noqa: E402
from smic_fast.encode.clip_export import (  # noqa: E402
                                          export_clip, load_open_clip_model, read_export_metadata, sample_photos, split_weights)
from smic_fast.encode.clip_models import ModelNotFoundError, PAIRINGS, export_dir  # noqa: E402

TINY = Path(__file__).parent / "data" / "tiny.json"
pytestmark = pytest.mark.filterwarnings(
    # torch's exporter and open_clip emit these on some versions; none concerns our code.
    "ignore::DeprecationWarning:torch.*", "ignore::FutureWarning:torch.*",
    "ignore:.*QuickGELU.*:UserWarning")


@pytest.fixture(scope="module")
def tiny_export(smic_home):
    return export_clip("tiny", cache=smic_home)


def _run_onnx(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})[0]


def test_tiny_export_matches_pytorch(tiny_export, smic_home):
    assert tiny_export.max_abs_diff is not None and tiny_export.max_abs_diff <= 1e-4
    assert tiny_export.check_images == "skimage"
    assert Path(tiny_export.path) == export_dir("tiny", "random-seed0", 18, "fp32", smic_home) / "model.onnx"
    model, _, _, _ = load_open_clip_model("tiny", seed=0)
    x = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model.visual(x).numpy()
    out = _run_onnx(tiny_export.path, x.numpy())
    assert out.shape == (5, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)


def test_dynamic_batch_axis(tiny_export):
    session = ort.InferenceSession(tiny_export.path, providers=["CPUExecutionProvider"])
    assert isinstance(session.get_inputs()[0].shape[0], str)
    for n in (1, 3, 17):
        assert session.run(None, {"image": np.zeros((n, 3, 64, 64), np.float32)})[0].shape == (n, 32)


def test_metadata_carries_preprocessing(tiny_export):
    meta = read_export_metadata(tiny_export.path)
    assert meta["arch"] == "tiny" and meta["dim"] == "32" and meta["opset"] == "18"
    assert meta["preprocess"]["image_size"] == 64
    assert meta["preprocess"]["interpolation"] == "bicubic"
    assert float(meta["check_max_abs_diff"]) == tiny_export.max_abs_diff


def test_cache_is_reused(tiny_export, smic_home):
    again = export_clip("tiny", cache=smic_home)
    assert again.cached and again.path == tiny_export.path
    assert again.max_abs_diff == tiny_export.max_abs_diff
    other_opset = export_clip("tiny", cache=smic_home, opset=19, check=False)
    assert not other_opset.cached and "opset19" in other_opset.path


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_checkpoint_file_is_loaded(tmp_path, smic_home, suffix):
    """The 'real weights' path: a state dict on disk goes through open_clip's checkpoint loader."""
    model, _, _, _ = load_open_clip_model("tiny", seed=7)
    path = tmp_path / f"tiny{suffix}"
    if suffix == ".pt":
        torch.save(model.state_dict(), path)
    else:
        from safetensors.torch import save_model

        save_model(model, str(path))
    out = tmp_path / "tiny-ckpt.onnx"
    result = export_clip("tiny", output=out, checkpoint=path, cache=smic_home)
    assert result.weights == f"checkpoint {path}" and result.max_abs_diff <= 1e-4
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model.visual(x).numpy()
    np.testing.assert_allclose(_run_onnx(out, x.numpy()), ref, atol=1e-5, rtol=1e-5)
    # random seed 0 would give other weights: the checkpoint really was loaded
    seed0, _, _, _ = load_open_clip_model("tiny", seed=0)
    with torch.no_grad():
        assert not np.allclose(seed0.visual(x).numpy(), ref, atol=1e-3)


def test_missing_checkpoint_names_the_file_and_flag(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ModelNotFoundError, match=r"nope\.safetensors.*--checkpoint"):
        export_clip("tiny", checkpoint=missing, cache=tmp_path)


def test_uncached_tag_offline_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError) as info:
        export_clip("default", cache=tmp_path, hub_cache=str(tmp_path / "hf"))
    message = str(info.value)
    assert "laion/CLIP-ViT-H-14-laion2B-s32B-b79K" in message
    assert "open_clip_pytorch_model.bin" in message and "--checkpoint PATH" in message


def test_unknown_tag_lists_known_ones(tmp_path):
    with pytest.raises(ModelNotFoundError, match="known tags.*openai"):
        export_clip("ViT-B-32", pretrained="no-such-tag", cache=tmp_path)


def test_tag_found_in_hugging_face_cache(tmp_path, smic_home, monkeypatch):
    """A tag whose weights sit in the HF cache loads from there, offline, with the tag's
    preprocessing (here a mean/std of its own)."""
    from open_clip import pretrained as pretrained_module

    cfg = pretrained_module._pcfg(hf_hub="smic-test/tiny-clip/", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    monkeypatch.setitem(pretrained_module._PRETRAINED, "tiny", {"cached": cfg})
    hub = tmp_path / "hub"
    snapshot = hub / "models--smic-test--tiny-clip" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (hub / "models--smic-test--tiny-clip" / "refs").mkdir()
    (hub / "models--smic-test--tiny-clip" / "refs" / "main").write_text("0123abcd")
    model, _, _, _ = load_open_clip_model("tiny", seed=3)
    torch.save(model.state_dict(), snapshot / "open_clip_pytorch_model.bin")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = export_clip("tiny", pretrained="cached", cache=tmp_path / "smic", hub_cache=str(hub))
    assert result.max_abs_diff <= 1e-4 and "cached" in result.weights
    meta = read_export_metadata(result.path)
    assert meta["preprocess"]["mean"] == [0.5, 0.5, 0.5] and meta["preprocess"]["std"] == [0.25, 0.25, 0.25]


def test_int8_export_stays_close(tiny_export, smic_home):
    result = export_clip("tiny", precision="int8", cache=smic_home)
    assert result.precision == "int8" and result.min_cosine >= 0.99
    photos, _ = sample_photos()
    assert os.path.getsize(result.path) < os.path.getsize(tiny_export.path)
    # Matrix products are quantized; the patch-embedding Conv stays fp32 (ConvInteger is slow).
    import onnx

    ops = {node.op_type for node in onnx.load(result.path, load_external_data=False).graph.node}
    assert "MatMulInteger" in ops and "Conv" in ops and "ConvInteger" not in ops
    assert "QAttention" in ops  # the fused attention (clip_fusion) is quantized too
    # ClipEncoder(name, int8=True) finds this export in the cache, and its embeddings stay close
    from smic_fast.encode.clip_onnx import ClipEncoder

    fast = ClipEncoder("tiny", int8=True, cache=smic_home)
    assert fast.path == Path(result.path)
    full = ClipEncoder("tiny", cache=smic_home)  # the fp32 export (of the highest opset cached)
    assert full.path.parent.name.endswith("--fp32") and full.path.parent.name.startswith("tiny--random-seed0")
    a, b = fast.encode_images(photos), full.encode_images(photos)
    assert np.min(np.sum(a * b, axis=1)) >= 0.99
    with pytest.raises(ModelNotFoundError, match="--precision int8"):
        ClipEncoder("tiny", int8=True, cache=smic_home / "empty")
    with pytest.raises(ValueError, match="not both"):
        ClipEncoder("tiny", int8=True, fp16=True, cache=smic_home)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="precision"):
        export_clip("tiny", precision="fp8", cache=tmp_path)
    with pytest.raises(ValueError, match="opset"):
        export_clip("tiny", opset=11, cache=tmp_path)
    with pytest.raises(ModelNotFoundError, match="--model-config"):
        export_clip("no-such-arch", cache=tmp_path)


def test_pairings_follow_the_design():
    assert PAIRINGS["default"].arch == "ViT-H-14" and PAIRINGS["default"].pretrained == "laion2b_s32b_b79k"
    assert PAIRINGS["small"].dim == 768 and PAIRINGS["kandinsky"].dim == 1280
    assert PAIRINGS["fast"].arch == "ViT-B-32" and PAIRINGS["tiny"].pretrained is None


# -- the command line ----------------------------------------------------------------------------
def test_cli_export_prints_json(tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    code = main(["export-clip", "--model", "tiny", "--model-config", str(TINY), "-o", str(out),
                 "--cache-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    result = json.loads(captured.out)
    assert result["path"] == str(out) and out.is_file()
    assert result["max_abs_diff"] <= 1e-4
    assert "largest difference" in captured.err


def test_cli_pretrained_path_is_a_checkpoint(tmp_path, capsys):
    """open_clip's convention: --pretrained takes a tag or a weights file, for an architecture
    name (here the tiny config registered as "tinyarch", not a pairing); --checkpoint still works."""
    model, _, _, _ = load_open_clip_model("tiny", seed=5)
    weights = tmp_path / "weights.pt"
    torch.save(model.state_dict(), weights)
    arch = tmp_path / "tinyarch.json"
    arch.write_text(TINY.read_text())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        reference = model.visual(x).numpy()
    base = ["export-clip", "--model", "tinyarch", "--model-config", str(arch), "--cache-dir", str(tmp_path / "c")]
    for flag in ("--pretrained", "--checkpoint"):
        out = tmp_path / f"{flag.strip('-')}.onnx"
        code = main([*base, flag, str(weights), "-o", str(out)])
        captured = capsys.readouterr()
        assert code == EXIT_OK, captured.err
        result = json.loads(captured.out)
        assert result["weights"] == f"checkpoint {weights}" and result["pretrained"] is None
        np.testing.assert_allclose(_run_onnx(out, x.numpy()), reference, atol=1e-5, rtol=1e-5)
    assert main([*base, "--pretrained", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "m.onnx")]) == EXIT_FAILURE
    assert "missing.pt" in capsys.readouterr().err
    other = tmp_path / "other.pt"
    other.write_bytes(weights.read_bytes())
    assert main([*base, "--pretrained", str(weights), "--checkpoint", str(other)]) == EXIT_USAGE
    assert "two weights files" in capsys.readouterr().err


def test_cli_export_text_pretrained_path(tmp_path, capsys):
    from smic_fast.encode.text_tower import TextEncoder

    model, _, _, _ = load_open_clip_model("tiny", seed=6)
    weights = tmp_path / "weights.safetensors"
    from safetensors.torch import save_model

    save_model(model, str(weights))
    out = tmp_path / "text.onnx"
    code = main(["export-text", "--model", "tiny", "--model-config", str(TINY), "--pretrained", str(weights),
                 "-o", str(out)])
    assert code == EXIT_OK, capsys.readouterr().err
    assert read_export_metadata(out)["weights"] == f"checkpoint {weights}"
    with torch.no_grad():
        expected = model.encode_text(open_clip.get_tokenizer("tiny")(["a cat"])).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(TextEncoder(out).encode(["a cat"]), expected, atol=1e-5)


def test_split_weights_follows_open_clip(tmp_path):
    assert split_weights("openai", None) == ("openai", None)  # a tag stays a tag
    assert split_weights("", None) == ("", None) and split_weights(None, "w.pt") == (None, "w.pt")
    assert split_weights(tmp_path / "w.bin", None) == (None, str(tmp_path / "w.bin"))
    assert split_weights("~/w.safetensors", None) == (None, os.path.expanduser("~/w.safetensors"))
    assert split_weights("w.pt", "w.pt") == (None, "w.pt")  # the same file twice is one
    with pytest.raises(ValueError, match="two weights files"):
        split_weights("a.pt", "b.pt")


def test_cli_missing_weights_exit_code(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SMIC_OFFLINE", "1")
    code = main(["export-clip", "--model", "fast", "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == EXIT_FAILURE
    assert "ViT-B-32" in err and "--checkpoint PATH" in err


def test_cli_usage_errors(capsys):
    assert main(["export-clip", "--model", "ViT-B-32"]) == EXIT_USAGE  # which weights?
    assert "--pretrained none" in capsys.readouterr().err
    assert main(["no-such-command"]) == EXIT_USAGE
    assert main(["export-clip", "--precision", "fp8"]) == EXIT_USAGE
