"""End-to-end CLIP image encoding speed: JPEG files in, embeddings out.

ours: smic_fast.ClipEncoder (Pillow decode with JPEG draft + numpy preprocessing on a thread
pool, overlapped with ONNX Runtime), fp32 and int8 (onnxruntime dynamic quantization).
peer: open_clip's own preprocess (torchvision on PIL) + the PyTorch eager model, same model,
same batch, files read and decoded in the loop (no overlap), torch.inference_mode.

Same machine, same run, same files. The model is a real architecture with random weights
(no hub is reachable here): speed does not depend on the weights, and the int8 cosine is
measured on the scikit-image photos.

    python bench_encoder.py [--model ViT-B-32] [--n 64] [--batch 32] [--repeat 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def make_jpegs(folder: Path, n: int) -> list[str]:
    """n camera-sized JPEGs (1024 px wide, quality 90) cut from the scikit-image photos."""
    from PIL import Image
    from smic_fast.clip_export import sample_photos

    photos, _ = sample_photos()
    paths = []
    for i in range(n):
        im = photos[i % len(photos)]
        scale = 1024 / im.width
        im = im.resize((1024, max(1, round(im.height * scale))), Image.Resampling.BICUBIC)
        if i // len(photos) % 2:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        p = folder / f"img{i:05d}.jpg"
        im.save(p, quality=90)
        paths.append(str(p))
    return paths


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--n", type=int, default=64, help="number of JPEG files")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cache", default=None, help="export cache (default: a temporary folder)")
    args = ap.parse_args()

    import torch
    from PIL import Image
    from smic_fast.clip_export import export_clip, load_open_clip_model, sample_photos
    from smic_fast.clip_onnx import ClipEncoder

    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp) / "smic"
        t0 = time.perf_counter()
        fp32 = export_clip(args.model, pretrained=None, cache=cache)
        int8 = export_clip(args.model, pretrained=None, precision="int8", cache=cache)
        print(f"export {args.model} fp32+int8: {time.perf_counter() - t0:.1f} s, "
              f"ORT vs torch max |diff| {fp32.max_abs_diff:.2e} (fp32)")
        paths = make_jpegs(Path(tmp), args.n)
        model, preprocess, _, _ = load_open_clip_model(args.model, seed=0)

        def peer() -> np.ndarray:
            out = []
            with torch.inference_mode():
                for i in range(0, len(paths), args.batch):
                    batch = torch.stack([preprocess(Image.open(p)) for p in paths[i:i + args.batch]])
                    out.append(model.encode_image(batch, normalize=True).numpy())
            return np.concatenate(out)

        encoders = {
            "smic ClipEncoder fp32 (ONNX Runtime)": ClipEncoder(fp32.path, batch_size=args.batch),
            "smic ClipEncoder fp32, no JPEG draft": ClipEncoder(fp32.path, batch_size=args.batch, draft=False),
            "smic ClipEncoder int8 (dynamic quant.)": ClipEncoder(int8.path, batch_size=args.batch),
        }
        reference = peer()  # warm-up + reference embeddings
        rows = [("open_clip preprocess + PyTorch eager fp32", best(peer, args.repeat), 1.0)]
        outputs = {}
        for name, enc in encoders.items():
            outputs[name] = enc.encode_paths(paths).embeddings  # warm-up
            rows.append((name, best(lambda e=enc: e.encode_paths(paths), args.repeat),
                         float((outputs[name] * reference).sum(1).min())))
        # int8 vs fp32 on the photos themselves (in memory, same preprocessing)
        photos, kind = sample_photos()
        e32 = encoders["smic ClipEncoder fp32 (ONNX Runtime)"].encode_images(photos)
        e8 = encoders["smic ClipEncoder int8 (dynamic quant.)"].encode_images(photos)
        int8_cos = (e32 * e8).sum(1)

    peer_time = rows[0][1]
    print(f"\n{args.model} (random weights), {args.n} JPEGs 1024 px wide, batch {args.batch}, "
          f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
          f"torch {torch.__version__} threads {torch.get_num_threads()}, best of {args.repeat}\n")
    print("| encoder | images/s | speed-up | min cosine to open_clip |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds, cos in rows:
        print(f"| {name} | {args.n / seconds:.1f} | {peer_time / seconds:.2f}x | {cos:.5f} |")
    print(f"\nint8 vs fp32 cosine on the {len(photos)} {kind} photos: min {int8_cos.min():.4f}, "
          f"mean {int8_cos.mean():.4f}")


if __name__ == "__main__":
    main()
