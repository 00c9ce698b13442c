"""Export open_clip's image tower to ONNX (needs the ``[export]`` extra: torch, open_clip, onnx).

:func:`export_clip` builds the open_clip model (weights from a pretrained tag found in the
open_clip / Hugging Face caches, a local checkpoint file, or random for tests), exports
``model.visual`` with a dynamic batch axis, stores the model's preprocessing in the ONNX file's
metadata (so the encoder needs no open_clip), and checks ONNX Runtime against PyTorch on real
photos. Exports are cached under ``$SMIC_HOME/clip/<arch>--<weights>--opset<N>--<precision>/``.

The graph's input is ``image`` (N, 3, S, S) float32, normalised as open_clip does; its output
``embedding`` (N, d) float32 is ``model.encode_image`` before L2 normalisation.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._extras import require
from .clip_models import ModelNotFoundError, export_dir, get_pairing
from .images import Preprocess

__all__ = ["ExportCheckError", "ExportResult", "export_clip", "load_open_clip_model", "read_export_metadata",
           "sample_photos", "split_weights"]

log = logging.getLogger("smic_fast.clip")

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_OPSET = 18
# A model larger than this keeps its weights in a side file (<name>.onnx.data): protobuf
# cannot hold more than 2 GiB in one message.
_EXTERNAL_DATA_BYTES = 1_800_000_000
_META_PREFIX = "smic."


class ExportCheckError(RuntimeError):
    """ONNX Runtime's output differs from PyTorch's by more than the tolerance."""


@dataclass
class ExportResult:
    path: str
    arch: str
    pretrained: str | None
    weights: str  # tag, "checkpoint <path>" or "random (seed N)"
    opset: int
    precision: str
    dim: int
    image_size: int
    max_abs_diff: float | None  # ONNX Runtime vs PyTorch on the check photos
    min_cosine: float | None
    check_images: str | None
    cached: bool
    seconds: float
    fused: str = "none"  # fused ONNX Runtime operators, e.g. "attention=12,gelu=12"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- weights --------------------------------------------------------------------------------
def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("SMIC_OFFLINE", "HF_HUB_OFFLINE"))


def _import_open_clip():
    from .._extras import require

    require("export", "loading an open_clip model", ("torch", "open_clip"))
    import open_clip

    return open_clip


_WEIGHTS_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def split_weights(pretrained: str | os.PathLike | None,
                  checkpoint: str | os.PathLike | None) -> tuple[str | None, str | None]:
    """open_clip's convention: ``pretrained`` is a tag or the path of a weights file. Returns
    (tag, checkpoint path): a `pretrained` that names an existing file, or has a path separator,
    a leading ``~`` or a weights suffix (.pt, .pth, .bin, .safetensors, .ckpt), is a checkpoint,
    as if passed as `checkpoint` (the same path may be given as both).

    Raises:
        ValueError: `pretrained` and `checkpoint` name two different files.
    """
    checkpoint = None if checkpoint is None else os.fspath(checkpoint)
    if pretrained is None:
        return None, checkpoint
    text = os.fspath(pretrained)
    is_path = (isinstance(pretrained, os.PathLike) or "/" in text or os.sep in text or text.startswith("~")
               or text.lower().endswith(_WEIGHTS_SUFFIXES) or (bool(text) and os.path.isfile(text)))
    if not is_path:
        return text, checkpoint
    path = os.path.expanduser(text)
    if checkpoint is not None and os.path.abspath(os.path.expanduser(checkpoint)) != os.path.abspath(path):
        raise ValueError(f"two weights files, pretrained={text!r} and checkpoint={checkpoint!r}: "
                         "pass one (--pretrained PATH or --checkpoint PATH)")
    return None, path


def _cached_tag_file(cfg: dict[str, Any], cache_dir: str | None) -> tuple[str | None, list[str]]:
    """Find the weights of a pretrained tag in the local caches without touching the network.

    Returns (path or None, the files that were looked for)."""
    wanted: list[str] = []
    hub = cfg.get("hf_hub") or ""
    if hub:
        from open_clip.pretrained import HF_WEIGHTS_NAME, _get_safe_alternatives

        model_id, filename = os.path.split(hub)
        filename = filename or HF_WEIGHTS_NAME
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover
            try_to_load_from_cache = None
        for name in [*_get_safe_alternatives(filename), filename]:
            wanted.append(f"Hugging Face {model_id}/{name}")
            if try_to_load_from_cache is not None:
                found = try_to_load_from_cache(model_id, name, cache_dir=cache_dir)
                if isinstance(found, str) and os.path.isfile(found):
                    return found, wanted
    url = cfg.get("url") or ""
    if url:
        local = Path(cache_dir or Path.home() / ".cache" / "clip").expanduser() / os.path.basename(url)
        wanted.append(str(local))
        if local.is_file():
            return str(local), wanted
    return None, wanted


def _resolve_weights(open_clip, arch: str, pretrained: str | None, checkpoint: str | None,
                     download: bool, hub_cache: str | None) -> tuple[str | None, dict[str, Any]]:
    """(checkpoint file or None for random weights, the tag's preprocessing overrides)."""
    tag_cfg: dict[str, Any] = {}
    if pretrained:
        tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained) or {}
        if not tag_cfg and checkpoint is None:
            known = open_clip.list_pretrained_tags_by_model(arch)
            raise ModelNotFoundError(
                f"open_clip knows no pretrained tag {pretrained!r} for {arch}; known tags: {known}. "
                "For weights of your own pass their file: --pretrained PATH or --checkpoint PATH "
                "(Python: pretrained=PATH or checkpoint=PATH).")
    if checkpoint is not None:
        if not os.path.isfile(checkpoint):
            raise ModelNotFoundError(
                f"checkpoint file {checkpoint} not found (--checkpoint PATH or --pretrained PATH must name an "
                "existing .pt, .bin or .safetensors file of an open_clip state dict)")
        return str(checkpoint), tag_cfg
    if not pretrained:
        return None, tag_cfg
    found, wanted = _cached_tag_file(tag_cfg, hub_cache)
    if found:
        log.info("weights for %s/%s: %s", arch, pretrained, found)
        return found, tag_cfg
    hint = (f"the weights of {arch}/{pretrained} are not on this machine; looked for: "
            + "; ".join(wanted)
            + ". Download that file where a hub is reachable and pass it with --checkpoint PATH "
              "(Python: checkpoint=PATH), or put it in the Hugging Face cache (HF_HOME) or "
              "open_clip's cache (~/.cache/clip).")
    if not download or _offline():
        raise ModelNotFoundError(hint + " Downloading is off (--no-download, SMIC_OFFLINE or HF_HUB_OFFLINE).")
    try:
        from open_clip.pretrained import download_pretrained

        path = download_pretrained(tag_cfg, cache_dir=hub_cache)
    except Exception as exc:
        raise ModelNotFoundError(hint + f" Downloading failed: {type(exc).__name__}: {exc}") from exc
    if not path or not os.path.isfile(path):
        raise ModelNotFoundError(hint)
    return path, tag_cfg


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:16]


def load_open_clip_model(model: str, pretrained: str | None = None, *, checkpoint: str | None = None,
                         download: bool = True, hub_cache: str | None = None, seed: int = 0):
    """Build an open_clip model in eval mode on CPU.

    Returns ``(model, torch_preprocess, preprocess_cfg, weights_label)``: open_clip's own
    inference transform, its ``PreprocessCfg`` as a dict, and a label for where the weights
    came from. `model` is a pairing name or an open_clip architecture; `pretrained` a tag or,
    as in open_clip, the path of a weights file (:func:`split_weights`)."""
    pretrained, checkpoint = split_weights(pretrained, checkpoint)
    open_clip = _import_open_clip()
    import torch

    arch, pretrained = arch_and_tag(model, pretrained)
    if arch not in open_clip.list_models():
        raise ModelNotFoundError(
            f"open_clip has no model config named {arch!r}; register one with "
            "--model-config PATH.json (Python: smic_fast.encode.clip_models.register_model_config)")
    weights_file, tag_cfg = _resolve_weights(open_clip, arch, pretrained, checkpoint, download, hub_cache)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        # open_clip warns when a tag's QuickGELU setting differs from the config's.
        warnings.simplefilter("ignore", UserWarning)
        clip, _, torch_preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=weights_file, load_weights=weights_file is not None,
            image_mean=tag_cfg.get("mean"), image_std=tag_cfg.get("std"),
            image_interpolation=tag_cfg.get("interpolation"), image_resize_mode=tag_cfg.get("resize_mode"))
    clip.eval()
    if weights_file is None:
        label = f"random (seed {seed})"
    elif checkpoint is not None:
        label = f"checkpoint {checkpoint}"
    else:
        label = f"{pretrained} ({weights_file})"
    cfg = dict(getattr(clip.visual, "preprocess_cfg", {}) or {})
    return clip, torch_preprocess, cfg, label


def arch_and_tag(model: str, pretrained: str | None) -> tuple[str, str | None]:
    pairing = get_pairing(model)
    if pairing is not None:
        return pairing.arch, pretrained if pretrained is not None else pairing.pretrained
    return model, pretrained


# -- check photos ---------------------------------------------------------------------------
_SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "camera")


def sample_photos(limit: int | None = None) -> tuple[list, str]:
    """Real photos for checks: scikit-image's CC0 samples as PIL images ("skimage"), or
    synthetic gradients where scikit-image is not installed ("synthetic")."""
    from PIL import Image

    try:
        import skimage.data
    except ImportError:
        rng = np.random.default_rng(0)
        images = []
        for i in range(limit or 4):
            h, w = 200 + 37 * i, 300 - 23 * i
            yy, xx = np.mgrid[0:h, 0:w]
            rgb = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 127 // (h + w)], -1)
            rgb = np.clip(rgb + rng.integers(0, 40, rgb.shape), 0, 255).astype(np.uint8)
            images.append(Image.fromarray(rgb, "RGB"))
        return images, "synthetic"
    names = _SKIMAGE_PHOTOS[:limit] if limit else _SKIMAGE_PHOTOS
    images = []
    for name in names:
        array = getattr(skimage.data, name)()
        if array.ndim == 2:
            array = np.stack([array] * 3, -1)
        images.append(Image.fromarray(np.ascontiguousarray(array[..., :3]), "RGB"))
    return images, "skimage"


# -- export -----------------------------------------------------------------------------------
def _torch_export(visual, image_size: int, path: Path, opset: int, external: bool,
                  fuse: bool = True) -> dict[str, int]:
    """Export `visual` to `path`; with `fuse`, attention and GELU as ONNX Runtime's fused
    operators (:mod:`smic_fast.encode.clip_fusion`). Returns the counts of fused operators."""
    import torch

    example = torch.zeros(2, 3, image_size, image_size)
    batch = torch.export.Dim("batch", min=1)
    with contextlib.ExitStack() as stack:
        counts: dict[str, int] = {}
        table = None
        if fuse:
            from .clip_fusion import fused_for_export, translation_table

            counts = stack.enter_context(fused_for_export(visual))
            table = translation_table()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter internals (deprecations, tracer notes)
            program = torch.onnx.export(
                visual, (example,), input_names=["image"], output_names=["embedding"],
                dynamic_shapes=({0: batch},), opset_version=opset, dynamo=True, verbose=False,
                custom_translation_table=table)
    program.save(str(path), external_data=external)
    return counts


def write_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    kept = [p for p in proto.metadata_props if not p.key.startswith(_META_PREFIX)]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = _META_PREFIX + key, value
    onnx.save(proto, str(path))


def _read_metadata(path: Path) -> dict[str, str]:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key[len(_META_PREFIX):]: p.value for p in proto.metadata_props if p.key.startswith(_META_PREFIX)}


def _convert_precision(fp32_path: Path, out_path: Path, precision: str) -> None:
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # 7-bit weights (reduce_range): without it the u8 x s8 products saturate on CPUs
        # without VNNI and a random ViT-B-32 falls to a cosine of 0.98; with it, 0.9997.
        # Matrix products only: the patch-embedding Conv as ConvInteger took 12% of the int8
        # model's time (its fp32 Conv: under 3%), so it stays fp32 (1.53x -> 1.73x torch).
        # A fused com.microsoft Attention (clip_fusion) becomes QAttention.
        quantize_dynamic(str(fp32_path), str(out_path), weight_type=QuantType.QInt8,
                         per_channel=True, reduce_range=True,
                         op_types_to_quantize=["MatMul", "Gemm", "Attention"])
    elif precision == "fp16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        proto = onnx.load(str(fp32_path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "values clipped to fp16 range"
            half = convert_float_to_float16(proto, keep_io_types=True)
        onnx.save(half, str(out_path), save_as_external_data=half.ByteSize() > _EXTERNAL_DATA_BYTES)
    else:  # pragma: no cover - validated by the caller
        raise ValueError(precision)


def _ort_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _compare(session_path: Path, inputs: np.ndarray, reference: np.ndarray,
             gpu: bool = False) -> tuple[float, float]:
    import onnxruntime as ort

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if gpu else ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(session_path), providers=providers)
    out = session.run(None, {"image": inputs})[0].astype(np.float64)
    ref = reference.astype(np.float64)
    cos = (out * ref).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1))
    return float(np.abs(out - ref).max()), float(cos.min())


def export_clip(model: str = "default", pretrained: str | None = None, output: str | os.PathLike | None = None,
                *, checkpoint: str | os.PathLike | None = None, opset: int = DEFAULT_OPSET,
                precision: str = "fp32", cache: str | os.PathLike | None = None, check: bool = True,
                tolerance: float = 1e-4, force: bool = False, download: bool = True,
                hub_cache: str | None = None, seed: int = 0, fuse: bool = True) -> ExportResult:
    """Export the image tower of an open_clip model to ONNX and check it against PyTorch.

    model: a pairing name ("default", "small", "kandinsky", "fast", "tiny") or an open_clip
        architecture ("ViT-B-32"); a pairing supplies its pretrained tag.
    pretrained: an open_clip pretrained tag, or (as open_clip takes it) the path of a weights
        file, which is then the checkpoint (:func:`split_weights`); None with no checkpoint
        means random weights.
    checkpoint: a local weights file (offline use); the tag, if given, still picks the
        preprocessing (mean, std, interpolation) that goes with those weights.
    output: where to write the .onnx file; None: the cache (``$SMIC_HOME``, ~/.cache/smic),
        reused when already there unless `force`.
    precision: "fp32"; "fp16" (for GPUs; inputs and outputs stay float32) or "int8"
        (onnxruntime dynamic quantization, for CPUs), both derived from the fp32 export.
    check: compare ONNX Runtime with PyTorch on the sample photos; fp32 fails with
        :class:`ExportCheckError` above `tolerance` (largest absolute difference of the
        output), fp16/int8 below a cosine of 0.99.
    fuse: write attention and GELU as ONNX Runtime's fused operators (com.microsoft
        Attention / Gelu / QuickGelu, see :mod:`smic_fast.encode.clip_fusion`; faster on CPU, and
        int8 quantizes the attention as QAttention). The file then needs ONNX Runtime (other
        ONNX runtimes lack these operators); False gives a standard-ONNX graph. A cached
        export is reused only if it was made with the same setting.
    """
    start = time.perf_counter()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if isinstance(opset, bool) or not isinstance(opset, int) or not 18 <= opset <= 23:
        raise ValueError(f"opset must be an integer in 18..23 (torch's ONNX exporter), got {opset!r}")
    pretrained, checkpoint = split_weights(pretrained, checkpoint)
    arch, tag = arch_and_tag(model, pretrained)
    if checkpoint is not None:
        if not os.path.isfile(checkpoint):
            raise ModelNotFoundError(
                f"checkpoint file {checkpoint} not found (--checkpoint PATH or --pretrained PATH must name an "
                "existing .pt, .bin or .safetensors file of an open_clip state dict)")
        weights_key = f"ckpt-{file_digest(checkpoint)}"
    else:
        weights_key = tag or f"random-seed{seed}"

    if output is None:
        folder = export_dir(arch, weights_key, opset, precision, cache)
        target = folder / "model.onnx"
        # Exports made before fusion existed carry no "fuse" key: they count as unfused.
        if target.is_file() and not force and _read_metadata(target).get("fuse", "0") == str(int(fuse)):
            return _cached_result(target, start)
    else:
        target = Path(output).expanduser()
        if target.suffix != ".onnx":
            raise ValueError(f"output must end in .onnx, got {target}")

    # Everything the export runs (torch.onnx's exporter needs onnx and onnxscript), before the model loads.
    require("export", "exporting a CLIP model to ONNX")
    clip, torch_preprocess, cfg, label = load_open_clip_model(
        arch, tag, checkpoint=checkpoint, download=download, hub_cache=hub_cache, seed=seed)
    preprocess = Preprocess.from_open_clip(cfg)
    visual = clip.visual
    n_bytes = sum(p.numel() * p.element_size() for p in visual.parameters())
    external = n_bytes > _EXTERNAL_DATA_BYTES
    meta = {
        "arch": arch, "pretrained": tag or "", "weights": label, "opset": str(opset),
        "precision": precision, "preprocess": preprocess.to_json(),
        "dim": str(int(getattr(clip, "embed_dim", 0) or visual.output_dim)),
        "exporter": "torch.onnx dynamo",
    }

    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".smic-export-", dir=parent))
    try:
        fp32_path = work / ("fp32.onnx" if precision != "fp32" else target.name)
        log.info("exporting %s (%s) to ONNX opset %d", arch, label, opset)
        fused = _torch_export(visual, preprocess.image_size, fp32_path, opset, external, fuse=fuse)
        meta["fuse"] = str(int(fuse))
        meta["fused"] = ",".join(f"{k}={v}" for k, v in fused.items() if v) or "none"
        log.info("fused operators: %s", meta["fused"])
        out_path = work / target.name
        if precision != "fp32":
            _convert_precision(fp32_path, out_path, precision)
        max_diff = min_cos = None
        check_kind = None
        if check and precision == "fp16" and "CUDAExecutionProvider" not in _ort_providers():
            log.warning("fp16 model not checked: onnxruntime here has no CUDA provider "
                        "(its CPU kernels do not run float16 graphs)")
            check = False
        if check:
            import torch

            photos, check_kind = sample_photos()
            inputs = torch.stack([torch_preprocess(im) for im in photos])
            with torch.no_grad():
                reference = visual(inputs).numpy()
            max_diff, min_cos = _compare(out_path, inputs.numpy(), reference, gpu=precision == "fp16")
            log.info("ONNX Runtime vs PyTorch on %d %s photos: max |diff| %.3g, min cosine %.7f",
                     len(photos), check_kind, max_diff, min_cos)
            if precision == "fp32" and not max_diff <= tolerance:
                raise ExportCheckError(
                    f"ONNX Runtime differs from PyTorch by {max_diff:.3g} > {tolerance:g} "
                    f"(largest absolute difference of the embeddings of {len(photos)} photos)")
            if precision != "fp32" and not min_cos >= 0.99:
                raise ExportCheckError(
                    f"{precision} model's cosine to PyTorch fp32 is {min_cos:.4f} < 0.99")
            meta.update(check_max_abs_diff=repr(max_diff), check_min_cosine=repr(min_cos),
                        check_images=check_kind)
        write_metadata(out_path, meta)
        _install(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ExportResult(
        path=str(target), arch=arch, pretrained=tag, weights=label, opset=opset, precision=precision,
        dim=int(meta["dim"]), image_size=preprocess.image_size, max_abs_diff=max_diff,
        min_cosine=min_cos, check_images=check_kind, cached=False,
        seconds=time.perf_counter() - start, fused=meta["fused"])


def _install(work: Path, target: Path) -> None:
    """Move the finished files next to `target` (rename: a reader never sees half a file)."""
    data = work / (target.name + ".data")
    if data.exists():
        os.replace(data, target.parent / data.name)
    os.replace(work / target.name, target)


def _cached_result(target: Path, start: float) -> ExportResult:
    meta = _read_metadata(target)
    pre = Preprocess.from_json(meta["preprocess"])
    diff = meta.get("check_max_abs_diff")
    cos = meta.get("check_min_cosine")
    log.info("reusing cached export %s", target)
    return ExportResult(
        path=str(target), arch=meta.get("arch", "?"), pretrained=meta.get("pretrained") or None,
        weights=meta.get("weights", "?"), opset=int(meta.get("opset", 0)),
        precision=meta.get("precision", "fp32"), dim=int(meta.get("dim", 0)), image_size=pre.image_size,
        max_abs_diff=None if diff is None else float(diff), min_cosine=None if cos is None else float(cos),
        check_images=meta.get("check_images"), cached=True, seconds=time.perf_counter() - start,
        fused=meta.get("fused", "none"))


def read_export_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The smic metadata of an exported file (arch, weights, preprocessing, check results)."""
    meta: dict[str, Any] = dict(_read_metadata(Path(path)))
    if "preprocess" in meta:
        meta["preprocess"] = json.loads(meta["preprocess"])
    return meta
