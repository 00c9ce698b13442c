"""Demo: compress a synthetic collection of CLIP-like embeddings into one .smic file.

SMIC on embeddings (images and CLIP come with later releases): learn a dictionary over the
collection, code each embedding with a few atoms, range-code everything into one file, open
it again and check the reconstruction. Then the same with a dictionary shared by several
collections, which then pay no dictionary bits.

    .venv/bin/python examples/synthetic_collection.py [--items 10000] [--dim 768] [--out demo_out]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import smic_fast as smic
from smic_fast.evaluation.synthetic import clustered


def show(title: str, info: dict[str, Any], seconds: float) -> None:
    print(f"\n{title}")
    print(f"  items               {info['items']}  (K = {info['n_atoms']} atoms, "
          f"{'shared' if info['shared_dictionary'] else 'own'} dictionary)")
    print(f"  file                {info['file_bytes']:,} bytes")
    print(f"  bits per item       {info['bits_per_item']:.1f} total, "
          f"{info['marginal_bits_per_item']:.2f} marginal (items only); dictionary share "
          f"{info['dictionary_share']:.0%}")
    if "bits_per_pixel" in info:
        print(f"  bits per pixel      {info['bits_per_pixel']:.2e} (512x512 images)")
    print(f"  cosine similarity   mean {info['cosine_mean']:.4f}, 5th percentile {info['cosine_p5']:.4f}")
    print(f"  time                {seconds:.1f} s ({info['items'] / seconds:,.0f} items/s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10000, help="embeddings in the collection")
    parser.add_argument("--dim", type=int, default=768, help="embedding dimension (ViT-L-14: 768)")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for the files")
    args = parser.parse_args(argv)
    args.out.mkdir(exist_ok=True)
    # Unit vectors that each mix 1-4 Zipf-popular "concepts" (like the subjects of a photo
    # archive) plus noise: the generator the tests and benchmarks use too.
    e = clustered(np.random.default_rng(0), args.items, args.dim, n_concepts=256)
    print(f"smic-fast {smic.__version__}: {args.items} synthetic embeddings of dimension {args.dim} "
          f"(raw float32: {32 * args.dim} bits per item)")

    start = time.perf_counter()
    info = smic.compress(
        e, args.out / "collection.smic", pixels=[512 * 512] * args.items,
        progress=lambda i, err: print(f"  K-SVD iteration {i + 1}: mean squared residual {err:.4f}",
                                      file=sys.stderr))
    show("Own dictionary (learned on the collection):", info, time.perf_counter() - start)

    col = smic.open(args.out / "collection.smic")
    decoded = col.embeddings()
    cosine = np.sum(decoded * e, axis=1)
    assert np.isclose(cosine.mean(), info["cosine_mean"], atol=1e-5), "decoded file disagrees"
    print(f"  reopened: {len(col)} items decode to the reported mean cosine {cosine.mean():.4f}")

    start = time.perf_counter()
    train, rest = e[: args.items // 2], e[args.items // 2 :]
    shared = smic.Dictionary.fit(train, n_atoms=512)
    shared.save(args.out / "shared.smicd")
    day = np.array_split(rest, 5)
    for i, part in enumerate(day):
        info = smic.compress(part, args.out / f"day{i}.smic", dictionary=shared)
    show(f"Shared dictionary (learned once on {len(train)} items), last of {len(day)} small "
         f"collections:", info, time.perf_counter() - start)
    one = shared.encode(rest[0])
    print(f"\nOne new item coded alone: {len(one)} bytes "
          f"(cosine {float(shared.decode(one) @ rest[0]):.4f}; a lone stream carries 8 bytes of flush)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
