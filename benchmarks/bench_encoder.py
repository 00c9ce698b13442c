"""End-to-end CLIP image encoding speed: JPEG files in, embeddings out, side by side in one run.

ours: smic_fast.ClipEncoder (Pillow decode with JPEG draft + numpy preprocessing on a thread
pool, overlapped with ONNX Runtime), fp32 and int8 (onnxruntime dynamic quantization), both
exported with attention and GELU as ONNX Runtime's fused operators (smic_fast.encode.clip_fusion);
the model-alone table also times the plain exports (``fuse=False``) to show what fusion buys.
peer: open_clip's own preprocess (torchvision on PIL) + the PyTorch eager model, same model,
same batch, files read and decoded in the loop (no overlap), torch.inference_mode, torch's
default thread count.

Same machine, same run, same files; the configurations take turns within each round and the
median of the rounds is reported, so load from other work hits all of them alike. Also printed,
to explain the end-to-end ratios: the model alone (same batch tensor) in both runtimes, the
CPU's measured matrix-multiply speed (in the same rounds) against the model's FLOPs (the
ceiling for any fp32 runtime), and decode + preprocess time per image on one thread.

The model is a real architecture with random weights (no hub is reachable here): speed does
not depend on the weights, and the int8 cosine is measured on the scikit-image photos.

    python bench_encoder.py [--model ViT-B-32] [--n 64] [--batch 32] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from _common import parse_args


def make_jpegs(folder: Path, n: int) -> list[str]:
    """n camera-sized JPEGs (1024 px wide, quality 90) cut from the scikit-image photos."""
    from PIL import Image
    from smic_fast.encode.clip_export import sample_photos

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


def rounds(fns: dict, n_rounds: int) -> dict[str, float]:
    """Median seconds of each function; every round runs all of them in turn."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(n_rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


SGEMM_SHAPE = (1600, 768, 3072)  # tokens of 32 ViT-B-32 images x width x MLP width


def sgemm():
    """(callable, its FLOPs): four ViT-sized fp32 matrix products in torch (the CPU's fp32 speed)."""
    import torch

    m, k, n = SGEMM_SHAPE
    a, b = torch.randn(m, k), torch.randn(k, n)

    def run():
        with torch.inference_mode():
            for _ in range(4):
                a @ b
    return run, 4 * 2 * m * k * n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ViT-B-32", help="an open_clip architecture, or 'tiny' (tests/data/tiny.json)")
    ap.add_argument("--n", type=int, default=64, help="number of JPEG files")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    ap.add_argument("--cache", default=None, help="export cache (default: a temporary folder)")
    ap.add_argument("--no-plain", action="store_true", help="skip the plain (unfused) exports")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="PyTorch's intra-op threads (default: its own, 2 here; 1 to check that it is slower)")
    args = parse_args(ap, None, quick={"model": "tiny", "n": 8, "batch": 4, "rounds": 1, "no_plain": True})

    import torch
    from PIL import Image
    from torch.utils.flop_counter import FlopCounterMode

    from smic_fast.encode.clip_export import export_clip, load_open_clip_model, sample_photos
    from smic_fast.encode.clip_onnx import ClipEncoder, runtime_info
    from smic_fast.encode.images import load_image

    warnings.filterwarnings("ignore")
    if args.model == "tiny":  # the tests' small CLIP layout: the whole path in seconds
        from smic_fast.encode.clip_models import register_model_config

        register_model_config(Path(__file__).resolve().parents[1] / "tests" / "data" / "tiny.json")
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp) / "smic"
        t0 = time.perf_counter()
        fp32 = export_clip(args.model, pretrained=None, cache=cache)
        int8 = export_clip(args.model, pretrained=None, precision="int8", cache=cache)
        plain = {}
        if not args.no_plain:
            folder = cache / "plain"  # outside the cache layout: export_clip does not reuse it
            for precision in ("fp32", "int8"):
                path = folder / f"{args.model}-{precision}.onnx"
                if not path.is_file():
                    export_clip(args.model, pretrained=None, precision=precision, output=path, fuse=False)
                plain[precision] = str(path)
        print(f"export {args.model} fp32+int8: {time.perf_counter() - t0:.1f} s, "
              f"ORT vs torch max |diff| {fp32.max_abs_diff:.2e} (fp32), fused operators: {fp32.fused}")
        paths = make_jpegs(Path(tmp), args.n)
        model, preprocess, _, _ = load_open_clip_model(args.model, seed=0)

        def peer() -> np.ndarray:
            out = []
            with torch.inference_mode():
                for i in range(0, len(paths), args.batch):
                    batch = torch.stack([preprocess(Image.open(p)) for p in paths[i:i + args.batch]])
                    out.append(model.encode_image(batch, normalize=True).numpy())
            return np.concatenate(out)

        ours32 = ClipEncoder(fp32.path, batch_size=args.batch)
        ours8 = ClipEncoder(int8.path, batch_size=args.batch)
        reference = peer()  # warm-up + reference embeddings
        e2e = {"open_clip preprocess + PyTorch eager fp32": peer,
               "smic ClipEncoder fp32 (ONNX Runtime)": lambda: ours32.encode_paths(paths),
               "smic ClipEncoder int8 (dynamic quant., per channel)": lambda: ours8.encode_paths(paths)}
        cosines = {name: 1.0 for name in e2e}
        for name, enc in ((list(e2e)[1], ours32), (list(e2e)[2], ours8)):
            cosines[name] = float((enc.encode_paths(paths).embeddings * reference).sum(1).min())  # + warm-up
        e2e_times = rounds(e2e, args.rounds)

        # The model alone, same preprocessed batch (no files, no preprocessing).
        x = torch.stack([preprocess(Image.open(p)) for p in paths[:args.batch]])
        x_np = x.numpy()

        def torch_model():
            with torch.inference_mode():
                model.visual(x)

        product, product_flop = sgemm()
        model_only = {"PyTorch eager fp32": torch_model,
                      "ONNX Runtime fp32": lambda: ours32.session.run(None, {ours32._input: x_np}),
                      "ONNX Runtime int8": lambda: ours8.session.run(None, {ours8._input: x_np})}
        for precision, path in plain.items():
            session = ClipEncoder(path, batch_size=args.batch).session
            model_only[f"ONNX Runtime {precision}, plain export (no fusion)"] = (
                lambda s=session: s.run(None, {"image": x_np}))
        model_only["fp32 matrix product"] = product
        for fn in model_only.values():
            fn()
        model_times = rounds(model_only, args.rounds)
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model.visual(x[:1])
        gflop_per_image = counter.get_total_flops() / 1e9
        gflops = product_flop / model_times.pop("fp32 matrix product") / 1e9

        # Decoding + preprocessing, one thread, per image.
        pre = ours32.preprocess
        sub = paths[:16]
        per_image = {
            "ours: decode (JPEG draft) + preprocess": lambda: [pre(load_image(p, draft=pre.draft_size()))
                                                               for p in sub],
            "ours: decode + preprocess, no draft": lambda: [pre(load_image(p)) for p in sub],
            "open_clip: Image.open + preprocess": lambda: [preprocess(Image.open(p)) for p in sub],
        }
        with torch.inference_mode():
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                prep_times = rounds(per_image, args.rounds)
            finally:
                torch.set_num_threads(threads)

        photos, kind = sample_photos()
        int8_cos = (ours32.encode_images(photos) * ours8.encode_images(photos)).sum(1)
    load_after = os.getloadavg()

    info = runtime_info()
    print(f"\n{args.model} (random weights), {args.n} JPEGs 1024 px wide, batch {args.batch}, "
          f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), torch {torch.__version__} "
          f"threads {torch.get_num_threads()}, onnxruntime {info['onnxruntime']} ({ours32.provider}), "
          f"median of {args.rounds} rounds, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    print("| end to end (files in) | images/s | speed-up | min cosine to open_clip |")
    print("| --- | ---: | ---: | ---: |")
    peer_time = e2e_times[list(e2e)[0]]
    for name, seconds in e2e_times.items():
        print(f"| {name} | {args.n / seconds:.1f} | {peer_time / seconds:.2f}x | {cosines[name]:.5f} |")

    print(f"\n| model alone (batch {args.batch} tensor) | images/s | vs PyTorch |")
    print("| --- | ---: | ---: |")
    torch_time = model_times["PyTorch eager fp32"]
    for name, seconds in model_times.items():
        print(f"| {name} | {args.batch / seconds:.1f} | {torch_time / seconds:.2f}x |")
    ceiling = gflops / gflop_per_image
    print(f"\nfp32 ceiling: the model is {gflop_per_image:.2f} GFLOP per image; a ViT-sized fp32 matrix "
          f"product ({'x'.join(map(str, SGEMM_SHAPE))}) runs at {gflops:.0f} GFLOP/s here (torch, "
          f"{torch.get_num_threads()} threads, timed in the same rounds as the models), "
          f"so no fp32 runtime can pass ~{ceiling:.1f} images/s = "
          f"{ceiling / (args.batch / torch_time):.2f}x PyTorch's model speed.")

    print("\n| decode + preprocess, 1 thread | ms per image |")
    print("| --- | ---: |")
    for name, seconds in prep_times.items():
        print(f"| {name} | {seconds / len(sub) * 1e3:.1f} |")
    print(f"\nint8 vs fp32 cosine on the {len(photos)} {kind} photos: min {int8_cos.min():.4f}, "
          f"mean {int8_cos.mean():.4f}")


if __name__ == "__main__":
    main()
