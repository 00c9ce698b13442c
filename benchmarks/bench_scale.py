"""Peak memory and time of compress and decode at N = 10k, 100k, 1M (d = 768) from a
memory-mapped .npy, with a collection's own dictionary (learned on a sample) and with a shared
one; and, at 100k, what learning on the sample costs in rate and cosine against learning on
every item (issue 19).

Each measurement runs in a fresh subprocess, from the point where the input is mapped and the
dictionary loaded, two ways: the peak RSS (VmHWM, restarted there through
/proc/self/clear_refs) minus the RSS then minus the mapped input's pages resident at the end;
and the peak anonymous RSS (RssAnon, sampled every 2 ms: memory that is not file pages) minus
its value then. The first misses a peak that comes before the input's pages are all resident
(learning on a sample at 1M), the second one shorter than 2 ms; extra bytes per item = the
larger / N.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_scale.py \\
        --folder /tmp/smic-scale            # needs ~3.2 GB there for N = 1M (kept for reruns)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from _common import QUICK_FOLDER, parse_args

CHILD = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    import smic_fast as smic
    from smic_fast.cli import main as cli

    def status_kb(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    def mapped_kb(path):  # resident pages of the mappings of `path`
        total, inside = 0, False
        for line in open("/proc/self/smaps"):
            head = line.split()
            if len(head) >= 5 and "-" in head[0] and ":" in head[3]:
                inside = len(head) >= 6 and head[5] == path
            elif inside and head[0] == "Rss:":
                total += int(head[1])
        return total

    import threading
    peak_anon = [0]
    def sample_anon(stop):  # the anonymous RSS (not file pages) every 2 ms; the core releases the GIL
        while not stop.wait(0.002):
            peak_anon[0] = max(peak_anon[0], status_kb("RssAnon"))

    task, npy, n, dictionary, out, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], json.loads(sys.argv[6])
    E = np.load(npy, mmap_mode="r")[:n]
    D = smic.Dictionary.load(dictionary) if dictionary != "-" else None
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) restarts from here
    base, base_anon = status_kb("VmRSS"), status_kb("RssAnon")
    stop = threading.Event()
    sampler = threading.Thread(target=sample_anon, args=(stop,), daemon=True)
    sampler.start()
    start = time.perf_counter()
    result = {}
    if task == "compress":
        info = smic.compress(E, out, dictionary=D, **extra)
        result = {k: info[k] for k in ("bits_per_item", "marginal_bits_per_item", "cosine_mean", "cosine_p5",
                                       "n_atoms", "file_bytes")}
    elif task == "decompress":
        code = cli(["decompress", out, "--embeddings", out + ".npy", "--force", "--quiet"]
                   + (["--dictionary", dictionary] if D is not None else []))
        assert code == 0
    elif task == "iter_batches":
        col = smic.open(out, dictionary=D)
        for ids, batch in col.iter_batches(4096):
            pass
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    peak = status_kb("VmHWM")
    resident_input = mapped_kb(os.path.realpath(npy)) if task == "compress" else 0
    result.update(seconds=seconds, extra_bytes=(peak - base - resident_input) * 1024,
                  anon_bytes=(max(peak_anon[0], status_kb("RssAnon")) - base_anon) * 1024,
                  input_resident_bytes=resident_input * 1024)
    print(json.dumps(result))
""")


def generate(path: Path, n: int, d: int, seed: int = 0, block: int = 50_000) -> None:
    """n clustered unit 'CLIP-like' rows (each mixes 1-4 of 2048 Zipf-popular concepts plus noise),
    written block by block through a memory map (never all in memory)."""
    concepts = np.random.default_rng(1234).standard_normal((2048, d))  # one population for every file
    concepts /= np.linalg.norm(concepts, axis=1, keepdims=True)
    popularity = 1.0 / np.arange(1, 2049) ** 0.8
    popularity /= popularity.sum()
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, block):
        m = min(block, n - start)
        picked = rng.choice(2048, size=(m, 4), p=popularity)
        weights = rng.uniform(0.3, 1.0, (m, 4)) * (np.arange(4) < np.minimum(rng.geometric(0.5, m), 4)[:, None])
        x = np.einsum("mk,mkd->md", weights, concepts[picked]) + 0.15 * rng.standard_normal((m, d)) / np.sqrt(d)
        out[start:start + m] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    out.flush()
    del out
    os.replace(tmp, path)


def prepare(folder: Path, n: int, d: int, n_train: int, shared_k: int) -> tuple[Path, Path]:
    """The data files of the scale benchmarks in `folder`, generated once and reused: n rows of d
    (a larger file already there serves: its first n rows), n_train other rows, and a shared
    dictionary of shared_k atoms learned on them. Returns (embeddings .npy, shared .smicd)."""
    import smic_fast as smic

    folder.mkdir(parents=True, exist_ok=True)
    npy = folder / f"E_{n}x{d}.npy"
    larger = [p for p in sorted(folder.glob(f"E_*x{d}.npy")) if int(p.name.split("_")[1].split("x")[0]) >= n]
    if larger and not npy.exists():
        npy = larger[0]
    train = folder / f"train_{n_train}x{d}.npy"
    for path, rows, seed in ((npy, n, 0), (train, n_train, 1)):
        if not path.exists():
            start = time.perf_counter()
            generate(path, rows, d, seed)
            print(f"# generated {path} ({rows} x {d}) in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    shared = folder / f"shared_{shared_k}.smicd"
    if not shared.exists():
        smic.Dictionary.fit(np.load(train), n_atoms=shared_k).save(shared)
    return npy, shared


def child(task: str, npy: Path, n: int, dictionary: str, out: Path, **extra) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, task, str(npy), str(n), dictionary, str(out), json.dumps(extra)],
                            capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{task} N={n} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/smic-scale"))
    parser.add_argument("--shared-k", type=int, default=1024)
    parser.add_argument("--train", type=int, default=20_000, help="items the shared dictionary learns from")
    parser.add_argument("--sample-study", type=int, default=100_000,
                        help="N of the sample-vs-all comparison (0: skip it)")
    parser.add_argument("--sample-size", type=int, default=0, metavar="ROWS",
                        help="also an own-dictionary compress row learning on a sample of ROWS (0: none)")
    args = parse_args(parser, argv, quick={
        "sizes": [2000], "d": 128, "folder": QUICK_FOLDER, "shared_k": 64, "sample_study": 0, "train": 2000,
        "sample_size": 1000})
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import machine

    import smic_fast as smic
    from smic_fast.coding.dictionary import LEARN_SAMPLE

    npy, shared = prepare(args.folder, max(args.sizes), args.d, args.train, args.shared_k)
    print(f"# compress / decode at scale, d={args.d}, float32 memory-mapped input; own dictionary learned on "
          f"at most {LEARN_SAMPLE} items (K = default_n_atoms(N)), shared K={args.shared_k}; {machine()}")
    print("| N | task | dictionary | time (s) | peak RSS beyond input (MB) | peak anonymous (MB) | "
          "extra B/item (larger of the two) | bits/item | cosine |")
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in args.sizes:
        for label, dictionary in (("own", "-"), ("shared", str(shared))):
            out = args.folder / f"c_{n}_{label}.smic"
            rows = [("compress", child("compress", npy, n, dictionary, out))]
            if args.sample_size and label == "own":
                rows.append((f"compress, `sample_size={args.sample_size:_}`",
                             child("compress", npy, n, dictionary, args.folder / "sampled.smic",
                                   sample_size=args.sample_size)))
            rows += [("decompress --embeddings", child("decompress", npy, n, dictionary, out)),
                     ("iter_batches", child("iter_batches", npy, n, dictionary, out))]
            for task, r in rows:
                rate = (f"{r['bits_per_item']:.1f} | {r['cosine_mean']:.4f}" if "bits_per_item" in r else " | ")
                print(f"| {n:,} | {task} | {label} | {r['seconds']:.1f} | {r['extra_bytes'] / 2**20:.0f} | "
                      f"{r['anon_bytes'] / 2**20:.0f} | {max(r['extra_bytes'], r['anon_bytes']) / n:.0f} | {rate} |",
                      flush=True)
            (args.folder / f"c_{n}_{label}.smic.npy").unlink(missing_ok=True)
            (args.folder / "sampled.smic").unlink(missing_ok=True)
    if args.sample_study:
        n = args.sample_study
        print(f"\n# learning on a sample vs on all {n:,} items (own dictionary, K = default_n_atoms(N))")
        print("| learned on | time (s) | peak anonymous (MB) | bits/item | marginal bits/item | cosine mean | cosine p5 |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label, sample in ((f"sample of {LEARN_SAMPLE:,}", LEARN_SAMPLE), (f"all {n:,}", None)):
            r = child("compress", npy, n, "-", args.folder / "study.smic", sample_size=sample)
            print(f"| {label} | {r['seconds']:.1f} | {r['anon_bytes'] / 2**20:.0f} | {r['bits_per_item']:.2f} | "
                  f"{r['marginal_bits_per_item']:.2f} | {r['cosine_mean']:.4f} | {r['cosine_p5']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
