"""Attention and GELU exported as ONNX Runtime's fused operators (smic_fast.encode.clip_fusion): the
fused graph computes what open_clip's PyTorch model and the plain export compute, int8 turns
the fused attention into QAttention, and the PyTorch model is left as it was."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from smic_fast.cli import EXIT_OK, main  # noqa: E402
from smic_fast.encode.clip_export import export_clip, load_open_clip_model, sample_photos  # noqa: E402
from smic_fast.encode.clip_fusion import fused_for_export  # noqa: E402
from smic_fast.encode.clip_models import register_model_config  # noqa: E402
from smic_fast.encode.clip_onnx import ClipEncoder  # noqa: E402

TINY = Path(__file__).parent / "data" / "tiny.json"
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning:torch.*", "ignore::FutureWarning:torch.*",
    "ignore:.*QuickGELU.*:UserWarning")


def _ops(path) -> Counter:
    return Counter((node.domain or "ai.onnx", node.op_type)
                   for node in onnx.load(str(path), load_external_data=False).graph.node)


def _run(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})[0]


def _inputs(n: int = 4) -> np.ndarray:
    return torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(5)).numpy()


def test_fused_graph_matches_plain_export_and_pytorch(smic_home, tmp_path, capsys):
    fused = export_clip("tiny", cache=smic_home)
    # the plain graph through the command line (--no-fuse)
    code = main(["export-clip", "--model", "tiny", "--model-config", str(TINY), "--no-fuse",
                 "-o", str(tmp_path / "plain.onnx"), "--cache-dir", str(tmp_path)])
    assert code == EXIT_OK
    plain = json.loads(capsys.readouterr().out)
    assert fused.fused == "attention=2,gelu=2" and plain["fused"] == "none"
    plain = SimpleNamespace(**plain)
    ops = _ops(fused.path)
    assert ops[("com.microsoft", "Attention")] == 2 and ops[("com.microsoft", "Gelu")] == 2
    # the exporter's attention layout and the five-node erf GELU are gone
    assert not {"Softmax", "Erf", "Split", "Squeeze"} & {op for _, op in ops}
    assert ops[("ai.onnx", "Transpose")] <= 1  # the patch embedding's, nothing per block
    assert not any(domain == "com.microsoft" for domain, _ in _ops(plain.path))
    x = _inputs()
    out_fused, out_plain = _run(fused.path, x), _run(plain.path, x)
    assert out_fused.shape == (4, 32)
    np.testing.assert_allclose(out_fused, out_plain, atol=1e-4, rtol=0)
    model, _, _, _ = load_open_clip_model("tiny", seed=0)
    with torch.no_grad():
        ref = model.visual(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out_fused, ref, atol=1e-5, rtol=1e-5)


def test_int8_quantizes_the_fused_attention(smic_home):
    fp32 = export_clip("tiny", cache=smic_home)
    int8 = export_clip("tiny", precision="int8", cache=smic_home)
    ops = _ops(int8.path)
    assert ops[("com.microsoft", "QAttention")] == 2 and ("com.microsoft", "Attention") not in ops
    assert int8.min_cosine >= 0.99
    photos, _ = sample_photos()
    a = ClipEncoder(fp32.path, providers="cpu").encode_images(photos)
    b = ClipEncoder(int8.path, providers="cpu").encode_images(photos)
    assert a.shape == b.shape == (len(photos), 32)
    assert float((a * b).sum(1).min()) >= 0.99


def test_quick_gelu_towers_fuse_too(tmp_path):
    """openai weights use QuickGELU (x * sigmoid(1.702 x)): it becomes com.microsoft QuickGelu."""
    config = json.loads(TINY.read_text())
    config["quick_gelu"] = True
    path = tmp_path / "tiny-quickgelu.json"
    path.write_text(json.dumps(config))
    register_model_config(path)
    result = export_clip("tiny-quickgelu", output=tmp_path / "q.onnx")
    assert result.fused == "attention=2,quick_gelu=2"
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    quick = [n for n in onnx.load(result.path).graph.node if n.op_type == "QuickGelu"]
    assert len(quick) == 2 and all(n.domain == "com.microsoft" for n in quick)
    assert onnx.helper.get_attribute_value(quick[0].attribute[0]) == pytest.approx(1.702)


def test_patching_is_exact_and_undone(smic_home):
    model, _, _, _ = load_open_clip_model("tiny", seed=0)
    visual = model.visual
    x = torch.from_numpy(_inputs(3))
    attn_before = [block.attn for block in visual.transformer.resblocks]
    with torch.no_grad():
        ref = visual(x)
        with fused_for_export(visual) as counts:
            assert counts == {"attention": 2, "gelu": 2, "quick_gelu": 0}
            assert all(type(block.attn).__name__ == "FusedSelfAttention" for block in visual.transformer.resblocks)
            patched = visual(x)  # the custom torch ops run eagerly, with the same weights
        after = visual(x)
    torch.testing.assert_close(patched, ref, atol=1e-5, rtol=1e-5)
    assert [block.attn for block in visual.transformer.resblocks] == attn_before
    assert all(isinstance(block.mlp.gelu, torch.nn.GELU) for block in visual.transformer.resblocks)
    assert torch.equal(after, ref)


def test_cache_tells_fused_from_plain(smic_home, tmp_path):
    import shutil

    from smic_fast.encode.clip_models import export_dir

    fused = export_clip("tiny", cache=smic_home)
    cache = tmp_path / "cache"
    folder = export_dir("tiny", "random-seed0", 18, "fp32", cache)
    folder.mkdir(parents=True)
    shutil.copy(fused.path, folder / "model.onnx")
    assert export_clip("tiny", cache=cache).cached  # same setting: reused
    plain = export_clip("tiny", cache=cache, fuse=False, check=False)  # other setting: exported again
    assert not plain.cached and plain.fused == "none" and plain.path == str(folder / "model.onnx")
    assert export_clip("tiny", cache=cache, fuse=False).cached
