"""Generative decoding speed: images per second and peak memory, per generator and size.

tiny: the random tiny unCLIP / Kandinsky 2.2 pipelines of the tests (smic_fast.generate.tiny),
    saved and loaded back with Generator.from_pretrained, as users load real ones.
real: the published architectures (Stable unCLIP 2.1: UNet 320-640-1280-1280 with class
    projection 2048, SD VAE; Kandinsky 2.2 decoder: UNet 384-768-1152-1536 with image
    projection 1280, MoVQ) built from their configs with random weights in memory (no hub
    here); speed does not depend on the weights. Slow on a CPU: use --steps 1 --items 1.

Each (generator, size) runs in a fresh process, so peak memory (ru_maxrss on CPU,
torch.cuda.max_memory_allocated on a GPU) is that configuration's own. Time excludes loading
and one warm-up batch; the best of --repeat runs is kept.

    python benchmarks/bench_generate.py [--kind tiny|real] [--families unclip kandinsky]
        [--sizes 32 64] [--steps 4] [--items 8] [--batch 4] [--repeat 2] [--threads N] [--device cpu] [--dtype fp32]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from _common import parse_args


def _real_pipeline(family: str, dtype):
    import torch
    from diffusers import (AutoencoderKL, DDIMScheduler, DDPMScheduler, KandinskyV22Pipeline,
                           StableUnCLIPImg2ImgPipeline, UNet2DConditionModel, VQModel)
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer

    from smic_fast.generate.configs import GeneratorInfo

    if family == "unclip":
        unet = UNet2DConditionModel(
            sample_size=96, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280), attention_head_dim=(5, 10, 20, 20),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            class_embed_type="projection", projection_class_embeddings_input_dim=2048, cross_attention_dim=1024,
            upcast_attention=True, use_linear_projection=True)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            sample_size=768)
        pipe = StableUnCLIPImg2ImgPipeline(
            feature_extractor=None, image_encoder=None, image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=1024),
            image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"), tokenizer=None,
            text_encoder=None, unet=unet, vae=vae,
            scheduler=DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                    prediction_type="v_prediction", set_alpha_to_one=False, steps_offset=1))
        info = GeneratorInfo(Path("real-unclip"), "unclip", "StableUnCLIPImg2ImgPipeline", 1024, 768, "real-arch unCLIP")
    else:
        unet = UNet2DConditionModel(
            sample_size=64, in_channels=4, out_channels=8, layers_per_block=3, addition_embed_type="image",
            block_out_channels=(384, 768, 1152, 1536), attention_head_dim=64,
            down_block_types=("ResnetDownsampleBlock2D",) + ("SimpleCrossAttnDownBlock2D",) * 3,
            up_block_types=("SimpleCrossAttnUpBlock2D",) * 3 + ("ResnetUpsampleBlock2D",),
            mid_block_type="UNetMidBlock2DSimpleCrossAttn", encoder_hid_dim=1280, encoder_hid_dim_type="image_proj",
            cross_attention_dim=768, resnet_time_scale_shift="scale_shift", class_embed_type=None)
        movq = VQModel(block_out_channels=(128, 256, 256, 512), layers_per_block=2, latent_channels=4,
                       down_block_types=("DownEncoderBlock2D",) * 3 + ("AttnDownEncoderBlock2D",),
                       up_block_types=("AttnUpDecoderBlock2D",) + ("UpDecoderBlock2D",) * 3,
                       norm_type="spatial", num_vq_embeddings=16384, vq_embed_dim=4)
        pipe = KandinskyV22Pipeline(unet=unet, movq=movq, scheduler=DDIMScheduler(
            beta_schedule="linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, set_alpha_to_one=False,
            steps_offset=1, prediction_type="epsilon"))
        info = GeneratorInfo(Path("real-kandinsky"), "kandinsky", "KandinskyV22Pipeline", 1280, 512,
                             "real-arch Kandinsky 2.2 decoder")
    return pipe.to(dtype=dtype), info


def _load(kind: str, family: str, device: str, dtype: str, folder: Path):
    from smic_fast.generate import Generator
    from smic_fast.generate.pipelines import _embedding_probe, _pick_dtype
    from smic_fast.generate.tiny import build_tiny_generator

    if kind == "tiny":
        build_tiny_generator(family, folder / family, dim=32)
        return Generator.from_pretrained(folder / family, device=device, dtype=dtype)
    import torch

    torch_dtype = _pick_dtype(torch, dtype, device)
    pipe, info = _real_pipeline(family, torch_dtype)
    prompt = None
    if family == "unclip":
        pipe.image_encoder = _embedding_probe(torch).to(torch_dtype)
        prompt = torch.zeros(1, 1, 1024, dtype=torch_dtype)
    pipe.to(device)
    return Generator(pipe, info, device, torch_dtype, device, prompt)


def run_one(args) -> dict:
    import torch

    warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        gen = _load(args.kind, args.family, args.device, args.dtype, Path(tmp))
        load_s = time.perf_counter() - started
        E = np.random.default_rng(0).standard_normal((args.items, gen.dim)).astype(np.float32)
        options = dict(steps=args.steps, guidance=args.guidance, size=args.size, batch_size=args.batch)
        list(gen.images(E[:args.batch], seed=99, **options))  # warm-up
        if gen.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        seconds = float("inf")
        for _ in range(args.repeat):  # best of `repeat`: the least disturbed by a shared machine
            started = time.perf_counter()
            images = list(gen.images(E, seed=0, **options))
            if gen.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = min(seconds, time.perf_counter() - started)
    assert len(images) == args.items and images[0].size == (args.size, args.size)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB -> MiB (Linux)
    result = {"kind": args.kind, "family": args.family, "size": args.size, "device": gen.device,
              "dtype": str(gen.dtype).replace("torch.", ""), "steps": args.steps, "guidance": args.guidance,
              "batch": args.batch, "items": args.items, "threads": torch.get_num_threads(), "load_s": round(load_s, 2),
              "images_per_s": args.items / seconds, "s_per_image": seconds / args.items,
              "peak_rss_mib": round(peak_rss)}
    if gen.device.startswith("cuda"):
        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("tiny", "real"), default="tiny")
    parser.add_argument("--families", nargs="+", choices=("unclip", "kandinsky"), default=["unclip", "kandinsky"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--guidance", type=float, default=None, help="default: the family's (guided)")
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2, help="timed runs; the best is reported")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--one", nargs=2, metavar=("FAMILY", "SIZE"), help=argparse.SUPPRESS)
    args = parse_args(parser, None, quick={
        "families": ["unclip"], "sizes": [32], "steps": 1, "items": 2, "batch": 2, "repeat": 1, "threads": 1})
    if args.one:
        args.family, args.size = args.one[0], int(args.one[1])
        print(json.dumps(run_one(args)))
        return
    import torch

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({args.threads or torch.get_num_threads()} threads), device {args.device}, {args.kind} generators, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| generator | size | dtype | steps | guidance | batch | images/s | s/image | peak RSS MiB | peak GPU MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for family in args.families:
        for size in args.sizes:
            cmd = [sys.executable, __file__, "--one", family, str(size), "--kind", args.kind,
                   "--steps", str(args.steps), "--items", str(args.items), "--batch", str(args.batch), "--repeat", str(args.repeat), "--threads", str(args.threads),
                   "--device", args.device, "--dtype", args.dtype]
            if args.guidance is not None:
                cmd += ["--guidance", str(args.guidance)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                print(f"| {family} | {size} | failed: {done.stderr.strip().splitlines()[-1:]} |")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            from smic_fast.generate.pipelines import DEFAULTS

            guidance = r["guidance"] if r["guidance"] is not None else DEFAULTS[family][1]
            print(f"| {args.kind} {family} | {size} | {r['dtype']} | {r['steps']} | {guidance:g} | {r['batch']} | "
                  f"{r['images_per_s']:.2f} | {r['s_per_image']:.3f} | {r['peak_rss_mib']} | "
                  f"{r.get('peak_gpu_mib', '-')} |", flush=True)


if __name__ == "__main__":
    main()
