"""The README's demo: compress the sample photos that ship with scikit-image into one .smic
file with the ``smic`` command line, decode the embeddings back, and check them against the
encoder's own output.

Uses the default CLIP model (ViT-H-14) when it is exported or its weights are on this machine;
otherwise the ``tiny`` random-weight model, and says so: figures then show speed and rate, not
semantic fidelity. Run with ``make demo`` (or ``python examples/demo_photos.py [OUT_DIR]``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

import smic_fast as smic
from smic_fast.encode.clip_models import ModelNotFoundError
from smic_fast.encode.clip_onnx import find_exported

HERE = Path(__file__).resolve().parent
TINY_CONFIG = HERE.parent / "tests" / "data" / "tiny.json"
SMIC = [sys.executable, "-m", "smic_fast"]


def sample_photos(folder: Path) -> list[Path]:
    """Copy scikit-image's bundled colour and greyscale photos (PNG, JPEG) into `folder`."""
    import skimage

    data = Path(skimage.__file__).parent / "data"
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for source in sorted(data.glob("*")):
        if source.suffix.lower() in (".png", ".jpg", ".jpeg"):
            shutil.copy2(source, folder / source.name)
            copied.append(folder / source.name)
    return copied


def choose_model() -> str:
    """"default" when its export is cached or can be made offline, else "tiny" (exported here)."""
    try:
        find_exported("default")
        return "default"
    except ModelNotFoundError:
        pass
    try:
        from smic_fast.encode.clip_export import export_clip

        export_clip("default", download=False)
        return "default"
    except (ModelNotFoundError, ImportError):
        pass
    from smic_fast.encode.clip_export import export_clip
    from smic_fast.encode.clip_models import register_model_config

    register_model_config(TINY_CONFIG)
    export_clip("tiny")  # random weights, cached under $SMIC_HOME
    banner = ("No CLIP weights on this machine (no exported model, no open_clip / Hugging Face cache "
              "of ViT-H-14): this demo uses the TINY RANDOM model. Its figures show speed and rate, "
              "not semantic fidelity. `smic export-clip --checkpoint PATH` adds real weights.")
    line = "=" * 78
    print(f"{line}\n{banner}\n{line}", flush=True)
    return "tiny"


def smic_cli(*args: str) -> dict[str, Any]:
    """Run one `smic` command with --json; show its stderr; return its JSON summary."""
    result = subprocess.run([*SMIC, *args, "--json"], capture_output=True, text=True)
    sys.stderr.write(result.stderr)
    if result.returncode not in (0, 3):
        raise SystemExit(f"smic {args[0]} failed with exit code {result.returncode}")
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    photos = sample_photos(out / "photos")
    model = choose_model()
    print(f"compressing {len(photos)} scikit-image photos with the {model!r} CLIP model\n", flush=True)
    collection = out / "photos.smic"
    subprocess.run([*SMIC, "compress", str(out / "photos"), "-o", str(collection), "--model", model,
                    "--force"], check=False)
    print(flush=True)
    subprocess.run([*SMIC, "info", str(collection)], check=True)
    decoded = smic_cli("decompress", str(collection), "--embeddings", str(out / "embeddings.npy"), "--force")

    # The check: decoded embeddings against the encoder's own output for the same files.
    E_hat = np.load(decoded["embeddings"])
    ids = json.loads(Path(decoded["ids"]).read_text())
    encoder = smic.ClipEncoder(model)
    result = encoder.encode_paths([out / "photos" / i for i in ids])
    assert result.embeddings.shape == E_hat.shape, (result.embeddings.shape, E_hat.shape)
    cosine = np.sum(E_hat * result.embeddings, axis=1)
    info = smic.open(collection).info()
    print(f"\ncheck: {len(ids)} decoded embeddings vs the encoder's own output: cosine mean "
          f"{cosine.mean():.4f}, min {cosine.min():.4f}; {info['bits_per_item']:.0f} bits per item "
          f"({info['marginal_bits_per_item']:.1f} without the dictionary), "
          f"{info.get('bits_per_pixel', float('nan')):.2e} bits per pixel")
    if not cosine.mean() > 0.8:
        raise SystemExit("decoded embeddings do not match the encoder's output")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(os.environ.get("SMIC_DEMO_DIR", "demo_out")))
