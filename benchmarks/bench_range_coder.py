"""Range coder vs constriction on i.i.d. categorical data.

For each (symbol count, alphabet) this draws symbols from a Zipf-like distribution and counts
them once; every timed encode and decode then builds its coder's static model from those counts
inside the timed call, the same way for both coders (ours: frequencies_from_counts with
total_bits=24, or the counts unscaled, then the table the coder builds from it; constriction:
Categorical(counts, perfect=False), 24-bit fixed point). It reports encode / decode throughput
(Msymbols/s, best of --repeat runs) and bits over the empirical entropy, counted from the
bytes each coder outputs. Ratios are ours / constriction (throughput: > 1 is faster; size:
< 1 is smaller). Run: python benchmarks/bench_range_coder.py [--sizes 1e6 1e7] [--repeat 3]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from smic_fast.coding import range_coder as rc

from _common import cpu_model, parse_args, skip


def best_time(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def make_data(n: int, alphabet: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, alphabet + 1) ** 1.1
    return rng.choice(alphabet, size=n, p=p / p.sum()).astype(np.int32)


def run_case(symbols: np.ndarray, alphabet: int, repeat: int) -> list[dict]:
    import constriction

    n = symbols.size
    counts = np.bincount(symbols, minlength=alphabet)
    nz = counts[counts > 0]
    entropy_bits = float(-(nz * np.log2(nz / n)).sum())
    rows = []

    def ours(total_bits):
        def model():  # built in every timed call, as constriction's is
            return rc.frequencies_from_counts(counts, total_bits)
        te, data = best_time(lambda: rc.encode(symbols, model()), repeat)
        td, out = best_time(lambda: rc.decode(data, model(), n), repeat)
        assert np.array_equal(out, symbols)
        return te, td, len(data) * 8

    def con_model():
        return constriction.stream.model.Categorical(counts.astype(np.float64), perfect=False)

    def con_range():
        def enc():
            e = constriction.stream.queue.RangeEncoder()
            e.encode(symbols, con_model())
            return e.get_compressed()
        te, comp = best_time(enc, repeat)
        td, out = best_time(
            lambda: constriction.stream.queue.RangeDecoder(comp).decode(con_model(), n), repeat)
        assert np.array_equal(out, symbols)
        return te, td, comp.nbytes * 8

    def con_ans():
        def enc():
            c = constriction.stream.stack.AnsCoder()
            c.encode_reverse(symbols, con_model())
            return c.get_compressed()
        te, comp = best_time(enc, repeat)
        td, out = best_time(
            lambda: constriction.stream.stack.AnsCoder(comp).decode(con_model(), n), repeat)
        assert np.array_equal(out, symbols)
        return te, td, comp.nbytes * 8

    results = {
        "smic range (2^24 table)": ours(24),
        "smic range (exact counts)": ours(None),
        "constriction range": con_range(),
        "constriction ANS": con_ans(),
    }
    ref = results["constriction range"]
    for name, (te, td, bits) in results.items():
        rows.append(dict(
            n=n, alphabet=alphabet, coder=name, enc=n / te / 1e6, dec=n / td / 1e6,
            over=100.0 * (bits / entropy_bits - 1.0),
            r_enc=ref[0] / te, r_dec=ref[1] / td, r_size=bits / ref[2]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument("--alphabets", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--repeat", type=int, default=3)
    args = parse_args(parser, argv, quick={"sizes": [1e5], "alphabets": [256], "repeat": 1})
    try:
        import constriction
    except ImportError:
        skip("bench_range_coder.py", "constriction is not installed (pip install 'smic-fast[bench]')")
    from importlib.metadata import version
    print(f"{cpu_model()}; constriction {version('constriction')}; "
          f"best of {args.repeat}; ratios vs constriction range coder")
    header = (f"| {'symbols':>8} | {'alphabet':>8} | {'coder':<26} | {'enc Msym/s':>10} | "
              f"{'dec Msym/s':>10} | {'over H %':>8} | {'enc x':>6} | {'dec x':>6} | {'size x':>7} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for size in args.sizes:
        for alphabet in args.alphabets:
            symbols = make_data(int(size), alphabet, seed=alphabet)
            for r in run_case(symbols, alphabet, args.repeat):
                print(f"| {r['n']:>8.0e} | {r['alphabet']:>8} | {r['coder']:<26} | "
                      f"{r['enc']:>10.1f} | {r['dec']:>10.1f} | {r['over']:>8.4f} | "
                      f"{r['r_enc']:>6.2f} | {r['r_dec']:>6.2f} | {r['r_size']:>7.5f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
