"""Batch OMP and K-SVD on a CUDA GPU (smic_fast._cuda) against one cuBLAS GEMM and the CPU core.

Needs a build with the CUDA module (``pip install --no-build-isolation
--config-settings=cmake.define.SMIC_CUDA=ON .``), a CUDA device and torch with CUDA (for data
on the device and the GEMM floor). Exits with a message saying what is missing otherwise.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_cuda_omp.py

Prints markdown tables for BENCHMARKS.md:
  1. OMP, N x d signals, K atoms, k nonzeros: GPU time from torch tensors on the device to codes
     on the device, against one FP32 cuBLAS GEMM of X and D (the floor; goal: within 2x), the
     numpy path (host -> device -> host) and the CPU core (timed on --cpu-n signals, scaled).
  2. Agreement with the CPU core on --cpu-n signals (same atoms, coefficients within 1e-4).
  3. K-SVD on --ksvd-n signals: CPU core vs GPU coding, and the GPU time to reach the CPU's
     final error.
STATUS: written without a GPU; never run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import smic_fast
from _common import parse_args, planted, skip, unit_rows


def _gpu_time(fn, torch, repeat: int = 3) -> float:
    """Best wall time of fn() with the device synchronised before and after."""
    best = float("inf")
    for _ in range(repeat):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def _agreement(gpu, cpu) -> float:
    same = (gpu[0] == cpu[0]).all(axis=1) & (np.abs(gpu[1] - cpu[1]).max(axis=1) <= 1e-4)
    return float(np.mean(same))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="signals")
    parser.add_argument("--d", type=int, default=1024, help="dimension")
    parser.add_argument("--k", type=int, default=4096, help="atoms")
    parser.add_argument("--sparsity", type=int, nargs="+", default=[8])
    parser.add_argument("--cpu-n", type=int, default=20_000,
                        help="signals given to the CPU core (time scaled to --n)")
    parser.add_argument("--ksvd-n", type=int, default=200_000, help="signals for K-SVD (0: skip)")
    parser.add_argument("--ksvd-iter", type=int, default=5)
    args = parse_args(parser, argv, quick={"n": 20000, "d": 256, "k": 512, "sparsity": [4], "cpu_n": 2000, "ksvd_n": 0})

    usable, why = smic_fast.cuda_status()
    if not usable:
        skip("bench_cuda_omp.py", f"no CUDA GPU path: {why}")
    try:
        import torch
    except ImportError:
        skip("bench_cuda_omp.py", "torch is needed for data on the device and the GEMM floor (pip install torch)")
    if not torch.cuda.is_available():
        skip("bench_cuda_omp.py", "torch sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False  # FP32 floor, as our SGEMM
    name = torch.cuda.get_device_name(0)
    print(f"# GPU batch OMP, N={args.n} d={args.d} K={args.k}; {name}; "
          f"CPU: {os.cpu_count()} cores; torch {torch.__version__}")

    rng = np.random.default_rng(0)
    d_host = unit_rows(rng, args.k, args.d)
    x_gpu = torch.randn(args.n, args.d, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    x_gpu /= x_gpu.norm(dim=1, keepdim=True)
    d_gpu = torch.from_numpy(d_host).cuda()
    x_cpu_part = x_gpu[: args.cpu_n].cpu().numpy()

    gemm = _gpu_time(lambda: torch.mm(x_gpu, d_gpu.T), torch)
    print("| k | GEMM X D^T s | GPU OMP (torch in/out) s | items/s | GPU / GEMM "
          "| numpy in/out s | CPU core s (scaled) | CPU / GPU | agreement |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in args.sparsity:
        gpu = _gpu_time(lambda: smic_fast.omp(x_gpu, d_gpu, s, device="cuda"), torch)
        x_host = x_gpu.cpu().numpy() if args.n <= 2_000_000 else None
        host = (_gpu_time(lambda: smic_fast.omp(x_host, d_host, s, device="cuda"), torch, 1)
                if x_host is not None else float("nan"))
        del x_host
        start = time.perf_counter()
        cpu_codes = smic_fast.omp(x_cpu_part, d_host, s)
        cpu = (time.perf_counter() - start) * args.n / args.cpu_n
        gpu_codes = smic_fast.omp(x_cpu_part, d_host, s, device="cuda")
        agree = _agreement(gpu_codes, cpu_codes)
        print(f"| {s} | {gemm:.3f} | {gpu:.3f} | {args.n / gpu:,.0f} | {gpu / gemm:.2f} | "
              f"{host:.3f} | {cpu:.1f} | {cpu / gpu:.0f}x | {agree:.4f} |", flush=True)

    if args.ksvd_n > 0:
        s = args.sparsity[0]
        xk = planted(rng, args.ksvd_n, args.k, args.d, s)
        print(f"\n# K-SVD, N={args.ksvd_n} d={args.d} K={args.k} k={s}, {args.ksvd_iter} iterations")
        timeline: dict[str, list[tuple[float, float]]] = {"cpu": [], "cuda": []}
        for device in ("cpu", "cuda"):
            start = time.perf_counter()

            def record(iteration: int, mse: float, device: str = device, start: float = start) -> None:
                timeline[device].append((time.perf_counter() - start, mse))

            smic_fast.learn_dictionary(xk, args.k, s, n_iter=args.ksvd_iter, progress=record,
                                       device=device)
        target = timeline["cpu"][-1][1]
        reached = next((t for t, mse in timeline["cuda"] if mse <= target), float("nan"))
        print("| device | total s | final mean sq. error | time to the CPU's final error s |")
        print("|---|---|---|---|")
        for device in ("cpu", "cuda"):
            total, mse = timeline[device][-1]
            to_target = timeline["cpu"][-1][0] if device == "cpu" else reached
            print(f"| {device} | {total:.1f} | {mse:.5f} | {to_target:.1f} |")


if __name__ == "__main__":
    main()
