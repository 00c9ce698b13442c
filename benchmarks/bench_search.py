"""Search in the compressed domain against FAISS, pruning side by side: queries per second,
recall@10 against exact search on the original embeddings, and, for every nprobe, the speed-up
over the method's own exhaustive scan and the fraction of that scan's top-10 it returns, for

* smic: Collection.search on the stored codes, exhaustive and with nprobe over a k-means
  partition of --lists lists (smic_fast.query.search; the default partition), and over the earlier
  largest-atom partition (one list per atom; --lead-atom);
* FAISS IndexIVFPQ with as many lists (IVF<lists>,PQ<M>, nbits 8, 8 M >= the smic marginal bits
  per item, M dividing d): its own exhaustive scan is nprobe = lists; IndexPQ for the exhaustive
  head to head; IndexIVFFlat (float32 vectors, --ivf-flat) as the pruning reference;
* FAISS IndexHNSWFlat on the decoded embeddings (--hnsw; the speed ceiling at these recalls) and
  IndexFlatIP on them (decode, then index: today's route).

Data: clustered synthetic CLIP-like unit embeddings (each item mixes 1-4 of --concepts concepts
with Zipf-like popularity, plus noise; benchmarks/_common.clustered, vectorised). Queries are
new draws from the same distribution. The dictionary is learned on --train items and shared
(the file pays no dictionary bits, as for a large collection), items are coded with it.

    cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../.venv/bin/python bench_search.py
    (issue 32's set: --n 200000 --d 512 --concepts 2000 --noise 0.5 --atoms 1024 --lists 1024)
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import smic_fast as smic
from smic_fast.query.search import index_info, search_index

from _common import parse_args

K_RESULTS = 10


def clustered(rng: np.random.Generator, n: int, d: int, concepts: np.ndarray, noise: float,
              block: int = 100_000) -> np.ndarray:
    """Unit rows mixing 1-4 concepts (Zipf-like popularity) plus isotropic noise."""
    n_concepts = len(concepts)
    popularity = 1.0 / np.arange(1, n_concepts + 1) ** 0.8
    popularity /= popularity.sum()
    out = np.empty((n, d), np.float32)
    for start in range(0, n, block):
        m = min(block, n - start)
        counts = np.minimum(rng.geometric(0.5, m), 4)
        picked = rng.choice(n_concepts, size=(m, 4), p=popularity)
        weights = rng.uniform(0.3, 1.0, (m, 4)) * (np.arange(4)[None, :] < counts[:, None])
        x = np.einsum("mk,mkd->md", weights.astype(np.float32), concepts[picked])
        x += (noise / math.sqrt(d)) * rng.standard_normal((m, d), dtype=np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def exact_top(queries: np.ndarray, base: np.ndarray, k: int, block: int = 200_000) -> np.ndarray:
    """Exact inner-product top-k (positions) of unit queries over unit base rows, by blocks."""
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_ids = np.zeros((len(queries), k), np.int64)
    for start in range(0, len(base), block):
        scores = queries @ base[start:start + block].T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
        merged_ids = np.concatenate([best_ids, top + start], axis=1)
        order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(merged_scores, order, 1)
        best_ids = np.take_along_axis(merged_ids, order, 1)
    return best_ids


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / truth.shape[1] for f, t in zip(found.tolist(), truth.tolist())]))


def timed(fn, repeat: int):
    """(best seconds, result of the last call)."""
    best, out = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def _machine() -> str:
    try:
        from _common import machine
        return machine()
    except ImportError:  # threadpoolctl ([bench] extra) absent
        return f"{os.cpu_count()} cores"


def faiss_bytes(index) -> int:
    import faiss
    return int(faiss.serialize_index(index).size)


def overlap(found: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of the reference top-k (a method's own exhaustive scan) that `found` returns."""
    return recall(found, reference)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="items (default: 200,000)")
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--concepts", type=int, default=2000)
    parser.add_argument("--noise", type=float, default=0.5, help="noise length relative to a unit concept mix")
    parser.add_argument("--atoms", type=int, default=1024, help="dictionary atoms K")
    parser.add_argument("--lists", type=int, default=1024, help="IVF lists, smic's k-means and FAISS's alike")
    parser.add_argument("--train", type=int, default=50_000, help="items the dictionary, PQ and IVF learn from")
    parser.add_argument("--iterations", type=int, default=5, help="K-SVD iterations")
    parser.add_argument("--quality", default="medium")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs of each search")
    parser.add_argument("--lead-atom", action="store_true", help="also the earlier largest-atom partition")
    parser.add_argument("--ivf-flat", action="store_true", help="also IndexIVFFlat (N x d x 4 bytes)")
    parser.add_argument("--hnsw", action="store_true", help="also IndexHNSWFlat on the decoded embeddings")
    parser.add_argument("--hnsw-ef", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--skip-flat", action="store_true", help="skip IndexFlatIP (needs 2 x N x d x 4 bytes)")
    parser.add_argument("--json", default=None, metavar="OUT.json", help="also write the rows here")
    args = parse_args(parser, argv, quick={
        "n": 5000, "d": 64, "queries": 50, "concepts": 50, "atoms": 128, "lists": 32, "train": 2000,
        "iterations": 2, "nprobe": [4], "repeat": 1, "threads": 1})
    import faiss
    faiss.omp_set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    concepts = rng.standard_normal((args.concepts, args.d)).astype(np.float32)
    concepts /= np.linalg.norm(concepts, axis=1, keepdims=True)
    t0 = time.perf_counter()
    E = clustered(rng, args.n, args.d, concepts, args.noise)
    Q = clustered(rng, args.queries, args.d, concepts, args.noise)
    train = clustered(rng, args.train, args.d, concepts, args.noise)
    truth = exact_top(Q, E, K_RESULTS)
    print(f"# search, N={args.n:,}, d={args.d}, {args.concepts} concepts, noise {args.noise}, {args.queries} queries, "
          f"k={K_RESULTS}, {args.threads} threads; data and exact top-{K_RESULTS} in {time.perf_counter() - t0:.0f} s; "
          f"{_machine()}; load average {os.getloadavg()[0]:.1f}")
    rows: list[dict] = []

    def report(method: str, seconds: float, found: np.ndarray, bytes_per_item: float, bits: float | None,
               **extra) -> dict:
        row = {"method": method, "qps": args.queries / seconds, "recall_at_10": recall(found, truth),
               "ram_bytes_per_item": bytes_per_item, "code_bits_per_item": bits, **extra}
        rows.append(row)
        print(f"{method:<30} {row['qps']:>9,.0f} q/s  recall@10 {row['recall_at_10']:.3f}  "
              f"RAM {bytes_per_item:>7.1f} B/item" + (f"  code {bits:.1f} bits/item" if bits else "")
              + "".join(f"  {k} {v}" for k, v in extra.items()), flush=True)
        return row

    def pruned(method: str, seconds: float, found: np.ndarray, full_s: float, full: np.ndarray, ram: float,
               bits: float | None, **extra) -> None:
        speedup, kept = full_s / seconds, overlap(found, full)
        report(method, seconds, found, ram, bits, speedup=round(speedup, 1), top10_of_exhaustive=round(kept, 3),
               **extra)

    # ---- smic
    t0 = time.perf_counter()
    dictionary = smic.Dictionary.fit(train, n_atoms=args.atoms, quality=args.quality, n_iter=args.iterations)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    info = smic.compress(E, folder / "c.smic", dictionary=dictionary)
    code_s = time.perf_counter() - t0
    col = smic.open(folder / "c.smic", dictionary=dictionary)
    bits = info["marginal_bits_per_item"]
    print(f"# smic: K={args.atoms}, dictionary learned on {args.train:,} items in {fit_s:.0f} s, coded in "
          f"{code_s:.0f} s, {bits:.1f} bits/item on disk (marginal), cosine mean {info['cosine_mean']:.3f}")
    # ---- FAISS IndexPQ / IndexIVFPQ at the smic bits (nbits 8, M | d, 8 M >= bits)
    m = next(m for m in range(max(1, math.ceil(bits / 8)), args.d + 1) if args.d % m == 0)
    pq = faiss.IndexPQ(args.d, m, 8, faiss.METRIC_INNER_PRODUCT)
    t0 = time.perf_counter()
    pq.train(train)
    pq.add(E)
    pq_build = time.perf_counter() - t0
    quantizer = faiss.IndexFlatIP(args.d)
    ivf = faiss.IndexIVFPQ(quantizer, args.d, args.lists, m, 8, faiss.METRIC_INNER_PRODUCT)
    t0 = time.perf_counter()
    ivf.train(train)
    ivf.add(E)
    ivf_build = time.perf_counter() - t0
    ivf_ram = faiss_bytes(ivf) / args.n
    ivf_sizes = np.array([ivf.invlists.list_size(l) for l in range(args.lists)])
    print(f"# faiss IVF{args.lists},PQ{m}: trained and filled in {ivf_build:.0f} s, largest list {ivf_sizes.max():,} "
          f"items; IndexPQ M={m} in {pq_build:.0f} s", flush=True)

    def ivf_search(nprobe: int) -> np.ndarray:
        ivf.nprobe = nprobe
        return ivf.search(Q, K_RESULTS)[1]

    def alternately(*fns):
        """Best seconds of each function and its last result, the functions timed turn by turn
        (a shared machine's load drifts between rows; alternating spreads it over all)."""
        best, out = [math.inf] * len(fns), [None] * len(fns)
        for _ in range(args.repeat):
            for j, fn in enumerate(fns):
                seconds, out[j] = timed(fn, 1)
                best[j] = min(best[j], seconds)
        return list(zip(best, out))

    partitions = [("kmeans", {"n_lists": args.lists})] + ([("lead_atom", {})] if args.lead_atom else [])
    for name, extra in partitions:
        col.__dict__.pop("_search_index_cache", None)  # build afresh, timed
        t0 = time.perf_counter()
        index = search_index(col, partition=name, **extra)
        build_s = time.perf_counter() - t0
        memory = index_info(col)
        sizes = np.array(index.list_sizes[:-1])
        ram = memory["index_bytes_per_item"] + col._core.file_bytes / args.n  # the index + the file the reader holds
        print(f"# smic {name}: {memory['lists']} lists (largest {sizes.max():,} items), built in {build_s:.1f} s; "
              f"{memory['index_bytes_per_item']:.1f} B/item ({memory['terms_per_item']} terms) + the file "
              f"{col._core.file_bytes / args.n:.1f} B/item; IVF-PQ {ivf_ram:.1f} B/item", flush=True)

        def smic_search(nprobe: int | None = None):
            return col.search(Q, K_RESULTS, nprobe=nprobe, n_threads=args.threads, partition=name, **extra).positions

        with_ivf = name == "kmeans"
        timings = alternately(smic_search, *([lambda: ivf_search(args.lists)] if with_ivf else []))
        full_s, full = timings[0]
        report(f"smic {name} exhaustive", full_s, full, ram, bits, build_s=round(build_s, 1))
        if with_ivf:
            ivf_full_s, ivf_full = timings[1]
            report(f"faiss IVF{args.lists},PQ{m} exhaustive", ivf_full_s, ivf_full, ivf_ram, 8.0 * m,
                   build_s=round(ivf_build, 1))
        for nprobe in args.nprobe:
            timings = alternately(lambda: smic_search(nprobe), *([lambda: ivf_search(nprobe)] if with_ivf else []))
            pruned(f"smic {name} nprobe={nprobe}", *timings[0], full_s, full, ram, bits)
            if with_ivf:
                pruned(f"faiss IVF{args.lists},PQ{m} nprobe={nprobe}", *timings[1], ivf_full_s, ivf_full, ivf_ram,
                       8.0 * m)
                print(f"{'':<30} smic {timings[1][0] / timings[0][0]:.2f}x IVF-PQ's q/s at nprobe={nprobe}", flush=True)
    del ivf, quantizer
    gc.collect()
    # The two exhaustive scans head to head, alternately.
    (smic_best, _), (pq_best, (_, found)) = alternately(
        lambda: col.search(Q, K_RESULTS, n_threads=args.threads, n_lists=args.lists), lambda: pq.search(Q, K_RESULTS))
    report(f"faiss IndexPQ M={m}x8", pq_best, found, faiss_bytes(pq) / args.n, 8.0 * m, build_s=round(pq_build, 1))
    print(f"# head to head, alternately: smic exhaustive {args.queries / smic_best:,.0f} q/s, IndexPQ "
          f"{args.queries / pq_best:,.0f} q/s: smic {pq_best / smic_best:.2f}x", flush=True)
    rows.append({"method": "head to head", "smic_qps": args.queries / smic_best, "pq_qps": args.queries / pq_best})
    del pq
    if args.ivf_flat:
        quantizer = faiss.IndexFlatIP(args.d)
        flat_ivf = faiss.IndexIVFFlat(quantizer, args.d, args.lists, faiss.METRIC_INNER_PRODUCT)
        t0 = time.perf_counter()
        flat_ivf.train(train)
        flat_ivf.add(E)
        flat_build = time.perf_counter() - t0
        flat_ram = faiss_bytes(flat_ivf) / args.n
        flat_ivf.nprobe = args.lists
        full_s, (_, full) = timed(lambda: flat_ivf.search(Q, K_RESULTS), 1)
        report(f"faiss IVF{args.lists},Flat exhaustive", full_s, full, flat_ram, 32.0 * args.d,
               build_s=round(flat_build, 1))
        for nprobe in args.nprobe:
            flat_ivf.nprobe = nprobe
            seconds, (_, found) = timed(lambda: flat_ivf.search(Q, K_RESULTS), args.repeat)
            pruned(f"faiss IVF{args.lists},Flat nprobe={nprobe}", seconds, found, full_s, full, flat_ram, 32.0 * args.d)
        del flat_ivf, quantizer
        gc.collect()

    # ---- FAISS on the decoded embeddings: HNSW (the speed ceiling), flat (decode, then index)
    if args.hnsw or not args.skip_flat:
        del E
        gc.collect()
        t0 = time.perf_counter()
        decoded = col.embeddings()
        decode_s = time.perf_counter() - t0
        if args.hnsw:
            hnsw = faiss.IndexHNSWFlat(args.d, 32, faiss.METRIC_INNER_PRODUCT)
            t0 = time.perf_counter()
            hnsw.add(decoded)
            hnsw_build = time.perf_counter() - t0
            for ef in args.hnsw_ef:
                hnsw.hnsw.efSearch = ef
                seconds, (_, found) = timed(lambda: hnsw.search(Q, K_RESULTS), args.repeat)
                report(f"faiss HNSW32,Flat decoded ef={ef}", seconds, found, faiss_bytes(hnsw) / args.n,
                       32.0 * args.d, build_s=round(hnsw_build, 1))
            del hnsw
        if not args.skip_flat:
            flat = faiss.IndexFlatIP(args.d)
            flat.add(decoded)
            seconds, (_, found) = timed(lambda: flat.search(Q, K_RESULTS), 1)
            report("faiss IndexFlatIP decoded", seconds, found, faiss_bytes(flat) / args.n, 32.0 * args.d,
                   decode_s=round(decode_s, 1))
            del flat
        del decoded
        gc.collect()
    print(f"# load average at the end {os.getloadavg()[0]:.1f} (other work on this machine slows every row alike)")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
