"""Bits per item of the atom indices with order-0 tables and with context models, at equal
cosine (the same symbols coded differently), on the clustered benchmark collection.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_index_model.py

For each N a collection is compressed with its own dictionary (K from N, quality "medium") and
order-0 index coding; its symbols are then written again with the remaining-atoms model
(format version 3) and the file sizes compared: marginal = the items section, total = the file
(the model's only bytes are 28 bytes of header; its tables derive from the index table). The
co-occurrence model it was measured against (each other atom coded with a table of the item's
first atom, mixed with the index table, for the first atoms where that pays for its table) is
estimated from ideal code lengths plus the zlib size of its tables: it was not built. So are
(lines starting with "#") the count given the first atom and the first atom given the count.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

import smic_fast as smic
from smic_fast import _core
from _common import clustered, machine, parse_args


def varints(values) -> bytes:
    out = bytearray()
    for v in values:
        v = int(v)
        while True:
            byte, v = v & 0x7F, v >> 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                break
    return bytes(out)


def rest_symbols(counts, first, rest):
    """(context atom, symbol, lower bound) of every other atom, in coding order."""
    ctx, sym, low = [], [], []
    for j in range(rest.shape[1]):
        m = counts > j + 1
        ctx.append(first[m] // 2)
        sym.append(rest[m, j])
        low.append(rest[m, j - 1] + 1 if j else np.zeros(m.sum(), np.int64))
    return np.concatenate(ctx), np.concatenate(sym), np.concatenate(low)


def conditional_bits(table, rows, sym, low):
    tail = np.cumsum(table[:, ::-1], axis=1)[:, ::-1]
    return np.log2(tail[rows, low]) - np.log2(table[rows, sym])


def first_atom_context(counts, first, rest, k: int) -> tuple[float, float, int]:
    """(order-0 bits, co-occurrence bits + table bits, contexts) of the other atoms, in total."""
    ctx, sym, low = rest_symbols(counts, first, rest)
    order0 = np.maximum(np.bincount(sym, minlength=k), 1).astype(float)
    base = conditional_bits(order0[None, :], np.zeros(len(sym), int), sym, low)
    pair = np.zeros((k, k))
    np.add.at(pair, (ctx, sym), 1)
    mixed = np.vstack([pair + order0[None, :] / order0.sum(), order0[None, :]])  # alpha = 1
    bits = conditional_bits(mixed, ctx, sym, low)
    gain = np.bincount(ctx, weights=base - bits, minlength=k)
    tables, used = bytearray(), np.zeros(k, bool)
    for a in range(k):
        nz = np.nonzero(pair[a])[0]
        entry = varints([a, len(nz)]) + varints(np.diff(np.concatenate([[-1], nz])) - 1) + varints(pair[a][nz])
        if nz.size and gain[a] > 8 * len(entry):
            used[a] = True
            tables += entry
    rows = np.where(used[ctx], ctx, k)
    return base.sum(), conditional_bits(mixed, rows, sym, low).sum() + 8 * len(zlib.compress(bytes(tables), 9)), int(used.sum())


def conditioned_tables(x: np.ndarray, ctx: np.ndarray, size: int) -> tuple[float, float]:
    """(order-0 bits, bits with one table per context + those tables' zlib bytes) of symbols x
    (alphabet `size`) given contexts ctx; in-sample ideal code lengths (zeros cost nothing)."""
    def bits(v):
        c = np.bincount(v, minlength=size).astype(float)
        c = c[c > 0]
        return -(c * np.log2(c / c.sum())).sum()
    tables, total = bytearray(), 0.0
    for value in np.unique(ctx):
        sel = x[ctx == value]
        total += bits(sel)
        tables += varints(np.bincount(sel, minlength=size))
    return bits(x), total + 8 * len(zlib.compress(bytes(tables), 9))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--quality", default="medium")
    args = parse_args(parser, argv, quick={"sizes": [2000], "d": 128})
    folder = Path(tempfile.mkdtemp())
    print(f"# index models, clustered d={args.d}, quality={args.quality}; {machine()}")
    print("| N | K | cos | order-0 marginal | remaining marginal | gain | order-0 total | remaining total "
          "| index bits: order-0 | co-occurrence + tables (est.) | contexts | time s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        e = clustered(np.random.default_rng(0), n, args.d)
        start = time.perf_counter()
        info = smic.compress(e, folder / "order0.smic", quality=args.quality, index_model="order0")
        col = smic.open(folder / "order0.smic")
        s = col._symbols()[0]
        codes = tuple(np.ascontiguousarray(getattr(s, f), dtype=np.int32)
                      for f in ("counts", "first", "rest_index", "rest_level"))
        cos = _core.write_collection(str(folder / "remaining.smic"), e, col.dictionary._core, codes=codes,
                                     index_model="remaining", writer=col.header["writer"])
        other = smic.open(folder / "remaining.smic").info()
        assert other["format_version"] == 3
        secs = time.perf_counter() - start
        again = smic.open(folder / "remaining.smic")._symbols()[0]
        assert all(np.array_equal(getattr(again, f), getattr(s, f)) for f in ("counts", "rest_index"))
        order0_bits, context_bits, contexts = first_atom_context(s.counts, s.first, s.rest_index, info["n_atoms"])
        used = s.counts > 0
        k2 = 2 * info["n_atoms"]
        count0, count_ctx = conditioned_tables(s.counts[used], s.first[used] // 2, int(s.counts.max()) + 1)
        first0, first_ctx = conditioned_tables(s.first[used], s.counts[used], k2)
        print(f"#   N={n}: count given the first atom {count0 / n:.3f} -> {count_ctx / n:.3f} bits/item; "
              f"first atom given the count {first0 / n:.3f} -> {first_ctx / n:.3f} (tables included)")
        m0, m1 = info["marginal_bits_per_item"], other["marginal_bits_per_item"]
        t0, t1 = info["bits_per_item"], other["bits_per_item"]
        print(f"| {n} | {info['n_atoms']} | {float(np.mean(cos)):.4f} | {m0:.3f} | {m1:.3f} | "
              f"{m0 - m1:+.3f} ({(m0 - m1) / m0:.1%}) | {t0:.2f} | {t1:.2f} | {order0_bits / n:.3f} | "
              f"{context_bits / n:.3f} | {contexts} | {secs:.0f} |", flush=True)


if __name__ == "__main__":
    main()
