"""``smic doctor``: what this installation can do — versions, ONNX Runtime providers, optional
packages, and which exported models and generators are on this machine."""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
from pathlib import Path

from ._shared import EXIT_OK, add_output_flags, emit

NAME = "doctor"
HELP = "show versions, ONNX Runtime providers, and the models present on this machine"

# onnxruntime itself has its own rows (version, providers, problems): not listed again here.
_OPTIONAL = ("numpy", "onnxruntime-gpu", "Pillow", "tqdm", "torch", "open_clip_torch", "onnx", "onnxscript",
             "diffusers", "transformers", "faiss-cpu", "matplotlib")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", default=None, help="cache of exported models (default: $SMIC_HOME or ~/.cache/smic)")
    add_output_flags(p, force=False)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _exported_models(cache: Path) -> list[str]:
    root = cache / "clip"
    return sorted(p.name for p in root.glob("*") if (p / "model.onnx").is_file()) if root.is_dir() else []


def _hub_cache() -> Path:
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")),
                                                     "huggingface")
    return Path(os.environ.get("HF_HUB_CACHE") or os.path.join(home, "hub")).expanduser()


def _generators(hub: Path) -> dict[str, bool]:
    from ..encode.clip_models import PAIRINGS

    found = {}
    for pairing in PAIRINGS.values():
        if pairing.generator and "/" in pairing.generator:
            folder = hub / ("models--" + pairing.generator.replace("/", "--"))
            found[pairing.generator] = (folder / "snapshots").is_dir()
    return found


def run(args: argparse.Namespace) -> int:
    from .. import _core
    from ..encode.clip_models import cache_dir
    from ..encode.clip_onnx import runtime_info
    from ..learn.device import cuda_status

    cache = cache_dir(args.cache_dir)
    hub = _hub_cache()
    report = {
        "smic_fast": _core.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "onnxruntime": runtime_info(),
        "packages": {name: _version(name) for name in _OPTIONAL},
        "smic_cache": str(cache), "exported_models": _exported_models(cache),
        "huggingface_cache": str(hub), "generators": _generators(hub),
    }
    usable, reason = cuda_status()
    report["cuda_omp"] = {"usable": usable, "reason": reason}
    ort = report["onnxruntime"]
    rows = [("smic-fast", report["smic_fast"]), ("python", report["python"]), ("platform", report["platform"]),
            ("cpu cores", report["cpu_count"]),
            ("onnxruntime", ort.get("onnxruntime")),
            ("onnxruntime providers", ", ".join(ort.get("providers", [])) or None)]
    rows += [("onnxruntime problem", problem) for problem in ort.get("problems", [])]
    rows += [(name, version or "not installed") for name, version in report["packages"].items()]
    rows += [("smic cache", f"{cache} ({'present' if cache.is_dir() else 'absent'})"),
             ("exported CLIP models", ", ".join(report["exported_models"]) or "none (see smic export-clip)"),
             ("Hugging Face cache", str(hub))]
    rows += [("CUDA OMP (smic_fast._cuda)", "usable" if usable else reason)]
    rows += [(f"generator {name}", "present" if ok else "absent") for name, ok in report["generators"].items()]
    emit(report, rows, args.json, title="smic doctor")
    return EXIT_OK
