"""Range coder: round trips, rate against entropy, a pinned bitstream, argument checks and
robustness against corrupt data."""
from __future__ import annotations

import numpy as np
import pytest

from smic_fast import _core
from smic_fast.coding import range_coder as rc


def entropy_bits(symbols: np.ndarray, alphabet: int) -> float:
    counts = np.bincount(symbols, minlength=alphabet)
    nz = counts[counts > 0]
    return float(-(nz * np.log2(nz / symbols.size)).sum())


def zipf_symbols(n: int, alphabet: int, seed: int, exponent: float = 1.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, alphabet + 1) ** exponent
    return rng.choice(alphabet, size=n, p=p / p.sum()).astype(np.int32)


def round_trip(symbols: np.ndarray, model) -> bytes:
    data = rc.encode(symbols, model)
    out = rc.decode(data, model, symbols.size)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, symbols)
    return data


# ---- round trips ---------------------------------------------------------------------------

@pytest.mark.parametrize("alphabet", [2, 256, 4096, 65536])
def test_round_trip_static(alphabet: int) -> None:
    symbols = zipf_symbols(20_000, alphabet, seed=alphabet)
    round_trip(symbols, rc.frequencies_of(symbols, alphabet))
    if alphabet <= 1 << 16:
        round_trip(symbols, rc.frequencies_of(symbols, alphabet, total_bits=16))
    round_trip(symbols, rc.frequencies_of(symbols, alphabet, total_bits=31))
    # A table unrelated to the data (uniform, non-power-of-two total) still round-trips.
    round_trip(symbols, np.full(alphabet, 3, dtype=np.uint32))


@pytest.mark.parametrize("alphabet", [2, 256, 4096, 65536])
def test_round_trip_adaptive(alphabet: int) -> None:
    symbols = zipf_symbols(20_000, alphabet, seed=alphabet + 1)
    round_trip(symbols, rc.Adaptive(alphabet, limit=max(1 << 16, 4 * alphabet)))
    round_trip(symbols, rc.Adaptive(alphabet, increment=1, limit=2 * alphabet + 2))
    round_trip(symbols, rc.Adaptive(alphabet, increment=1 << 20, limit=1 << 31))


def test_round_trip_empty() -> None:
    empty = np.zeros(0, dtype=np.int32)
    for model in (np.array([1, 2, 3], dtype=np.uint32), rc.Adaptive(3)):
        data = round_trip(empty, model)
        assert len(data) == 8  # only the flushed state
    assert rc.decode(rc.encode([], rc.Adaptive(2)), rc.Adaptive(2), 0).shape == (0,)


def test_single_symbol_alphabet() -> None:
    symbols = np.zeros(1000, dtype=np.int32)
    data = round_trip(symbols, np.array([5], dtype=np.uint32))
    assert len(data) == 8  # a certain symbol costs nothing
    round_trip(symbols, rc.Adaptive(1, limit=2 ** 16))


def test_extreme_tables_round_trip() -> None:
    rng = np.random.default_rng(7)
    # One symbol takes almost all of 2^31; the rest have frequency 1 (long carry runs).
    freqs = np.ones(65536, dtype=np.uint32)
    freqs[0] = (1 << 31) - 65535
    symbols = np.where(rng.random(50_000) < 0.999, 0, rng.integers(1, 65536, 50_000)).astype(np.int32)
    round_trip(symbols, freqs)
    # Rare symbols only: every symbol costs ~31 bits.
    rare = rng.integers(1, 65536, 2000).astype(np.int32)
    data = round_trip(rare, freqs)
    assert len(data) * 8 == pytest.approx(2000 * 31, rel=0.01, abs=64)


def test_symbols_any_integer_dtype() -> None:
    base = np.array([0, 3, 1, 2, 2], dtype=np.int32)
    freqs = np.array([1, 2, 3, 4], dtype=np.uint32)
    expected = rc.encode(base, freqs)
    for dtype in (np.int8, np.uint8, np.int16, np.uint16, np.uint32, np.int64, np.uint64):
        assert rc.encode(base.astype(dtype), freqs) == expected
    assert rc.encode(list(base), freqs) == expected
    assert rc.encode(base[::-1][::-1].copy(), freqs) == expected
    strided = np.repeat(base, 2)[::2]
    assert rc.encode(strided, freqs) == expected
    assert np.array_equal(rc.decode(bytearray(expected), freqs, 5), base)
    assert np.array_equal(rc.decode(memoryview(expected), freqs, 5), base)


def test_streams_are_independent_of_call_history() -> None:
    symbols = zipf_symbols(5000, 300, seed=3)
    model = rc.Adaptive(300)
    assert rc.encode(symbols, model) == rc.encode(symbols, model)


# ---- rate ------------------------------------------------------------------------------------

@pytest.mark.parametrize("alphabet", [256, 4096])
def test_static_rate_near_entropy(alphabet: int) -> None:
    symbols = zipf_symbols(1_000_000, alphabet, seed=11)
    counts = np.bincount(symbols, minlength=alphabet)
    assert (counts > 0).all()  # so the exact-count table is the empirical distribution
    h = entropy_bits(symbols, alphabet)
    data = rc.encode(symbols, rc.frequencies_from_counts(counts))
    assert len(data) * 8 <= h * 1.001 + 64
    # Rescaled to 2^24 the table still codes within 0.1% of entropy.
    data24 = rc.encode(symbols, rc.frequencies_from_counts(counts, total_bits=24))
    assert len(data24) * 8 <= h * 1.001 + 64


def test_geometric_rate_near_entropy() -> None:
    rng = np.random.default_rng(5)
    symbols = np.minimum(rng.geometric(0.2, 1_000_000) - 1, 255).astype(np.int32)
    freqs = rc.frequencies_of(symbols, 256)
    h = entropy_bits(symbols, 256)
    # Unseen symbols get frequency 1 out of ~1e6: a negligible cost.
    assert len(rc.encode(symbols, freqs)) * 8 <= h * 1.001 + 64


def test_adaptive_rate_on_stationary_source() -> None:
    symbols = zipf_symbols(300_000, 256, seed=13)
    h = entropy_bits(symbols, 256)
    # With a limit of 2^18 the model remembers ~10^4 symbols: estimation noise stays < 1%.
    data = rc.encode(symbols, rc.Adaptive(256, limit=1 << 18))
    assert len(data) * 8 <= h * 1.01
    # The default (limit 2^16, faster to adapt) pays a little more on a stationary source.
    assert len(rc.encode(symbols, rc.Adaptive(256))) * 8 <= h * 1.02


# ---- pinned format ----------------------------------------------------------------------------

GOLDEN_SYMBOLS = np.array([0, 1, 2, 3, 2, 1, 0, 0, 0, 3, 3, 1, 2, 0, 1, 1], dtype=np.int32)
GOLDEN_FREQS = np.array([5, 4, 3, 4], dtype=np.uint32)  # total 16: power-of-two path
GOLDEN_FREQS_ODD = np.array([5, 4, 3, 7], dtype=np.uint32)  # total 19: division path
GOLDEN_STATIC = bytes.fromhex("27a564eb00efbfe37f2442")
GOLDEN_STATIC_ODD = bytes.fromhex("1a495f71cabec07d42d8bb00")
GOLDEN_ADAPTIVE = bytes.fromhex("3b62652bb9cf28519bbaf1c543")


def test_golden_bitstreams() -> None:
    """The exact bytes are the format: a change here breaks every stored file."""
    assert rc.encode(GOLDEN_SYMBOLS, GOLDEN_FREQS) == GOLDEN_STATIC
    assert rc.encode(GOLDEN_SYMBOLS, GOLDEN_FREQS_ODD) == GOLDEN_STATIC_ODD
    assert rc.encode(GOLDEN_SYMBOLS, rc.Adaptive(4, increment=24, limit=128)) == GOLDEN_ADAPTIVE
    np.testing.assert_array_equal(rc.decode(GOLDEN_STATIC, GOLDEN_FREQS, 16), GOLDEN_SYMBOLS)
    np.testing.assert_array_equal(rc.decode(GOLDEN_STATIC_ODD, GOLDEN_FREQS_ODD, 16),
                                  GOLDEN_SYMBOLS)
    np.testing.assert_array_equal(
        rc.decode(GOLDEN_ADAPTIVE, rc.Adaptive(4, increment=24, limit=128), 16), GOLDEN_SYMBOLS)


def reference_encode(symbols, freqs=None, adaptive=None) -> bytes:
    """The format written from its definition with Python integers: `low` never wraps (no
    carry logic), and the output is low's bytes after the final 8-byte flush."""
    low, rng, shifts = 0, 2 ** 64 - 1, 0
    f = None if adaptive is None else [1] * adaptive.alphabet_size
    for s in symbols:
        table = freqs.tolist() if f is None else f
        total, start = sum(table), sum(table[:s])
        r = rng // total
        low += r * start
        rng = r * table[s]
        while rng < 2 ** 56:
            low, rng, shifts = low << 8, rng << 8, shifts + 1
        if f is not None:
            f[s] += adaptive.increment
            if sum(f) > adaptive.limit:
                f = [(x + 1) // 2 for x in f]
    return low.to_bytes(shifts + 8, "big")


def test_matches_reference_encoder() -> None:
    rng = np.random.default_rng(4)
    for trial in range(30):
        alphabet = int(rng.integers(1, 40))
        symbols = rng.integers(0, alphabet, int(rng.integers(0, 300))).astype(np.int32)
        freqs = rng.integers(1, 2 ** int(rng.integers(1, 27)), alphabet).astype(np.uint32)
        assert rc.encode(symbols, freqs) == reference_encode(symbols, freqs)
        model = rc.Adaptive(alphabet, increment=int(rng.integers(1, 40)), limit=4 * alphabet + 160)
        assert rc.encode(symbols, model) == reference_encode(symbols, adaptive=model)
    assert GOLDEN_STATIC == reference_encode(GOLDEN_SYMBOLS, GOLDEN_FREQS)
    assert GOLDEN_STATIC_ODD == reference_encode(GOLDEN_SYMBOLS, GOLDEN_FREQS_ODD)
    assert GOLDEN_ADAPTIVE == reference_encode(
        GOLDEN_SYMBOLS, adaptive=rc.Adaptive(4, increment=24, limit=128))


def test_carry_propagation_bitstream() -> None:
    """Symbols at the top of the range push carries through runs of 0xFF bytes."""
    freqs = np.array([1, (1 << 31) - 2, 1], dtype=np.uint32)
    rng = np.random.default_rng(1)
    for _ in range(20):
        symbols = rng.choice(3, size=300, p=[0.3, 0.4, 0.3]).astype(np.int32)
        data = round_trip(symbols, freqs)
        assert data == reference_encode(symbols, freqs)


# ---- frequency tables ---------------------------------------------------------------------------

def test_frequencies_from_counts_exact() -> None:
    counts = np.array([0, 5, 0, 7], dtype=np.int64)
    freqs = rc.frequencies_from_counts(counts)
    assert freqs.dtype == np.uint32
    np.testing.assert_array_equal(freqs, [1, 5, 1, 7])


@pytest.mark.parametrize("bits, alphabet", [
    (b, a) for b in (8, 12, 16, 24, 31) for a in (2, 256, 4096) if a <= 1 << b])
def test_frequencies_from_counts_rescaled(bits: int, alphabet: int) -> None:
    rng = np.random.default_rng(bits * 100 + alphabet)
    counts = rng.zipf(1.3, alphabet).astype(np.uint64) * rng.integers(0, 3, alphabet).astype(np.uint64)
    counts[0] += 1
    freqs = rc.frequencies_from_counts(counts, total_bits=bits)
    assert freqs.dtype == np.uint32 and freqs.shape == (alphabet,)
    assert int(freqs.sum(dtype=np.uint64)) == 1 << bits
    assert (freqs >= 1).all()
    # Near-optimal: no +1/-1 move between two symbols lowers the code length by more than 1%
    # of the move's size (for this separable concave objective, no improving move means the
    # optimum), and the loss over the counts' entropy (KL divergence) is small.
    p = counts / counts.sum()
    q = freqs / float(1 << bits)
    nz = p > 0
    kl = float((p[nz] * np.log2(p[nz] / q[nz])).sum())
    if alphabet * 64 <= 1 << bits:
        assert kl < 0.01
    c = counts.astype(np.float64)
    f = freqs.astype(np.float64)
    gain = np.where(c > 0, c * np.log2((f + 1) / f), 0.0)
    cost = np.where(f > 1, c * np.log2(f / np.maximum(f - 1, 1)), np.inf)
    assert gain.max() <= cost.min() * 1.01 + 1e-9 or gain.max() - cost.min() < 1e-6 * c.sum()


def test_frequencies_from_counts_deterministic_and_ties() -> None:
    counts = np.ones(10, dtype=np.uint64)
    freqs = rc.frequencies_from_counts(counts, total_bits=4)  # 16 over 10 equal counts
    np.testing.assert_array_equal(freqs, [2, 2, 2, 2, 2, 2, 1, 1, 1, 1])
    np.testing.assert_array_equal(rc.frequencies_from_counts(np.zeros(3, np.uint8), 2), [2, 1, 1])


def test_frequencies_from_counts_large_sum_rescaled() -> None:
    counts = np.array([2 ** 62, 2 ** 40, 1, 0], dtype=np.uint64)
    freqs = rc.frequencies_from_counts(counts)  # sum past 2^31: rescaled to exactly 2^31
    assert int(freqs.sum(dtype=np.uint64)) == 1 << 31 and (freqs >= 1).all()
    assert abs(int(freqs[1]) - 2.0 ** 71 / (2 ** 62 + 2 ** 40)) <= 2


def test_frequencies_of() -> None:
    symbols = np.array([1, 1, 2, 1], dtype=np.uint8)
    np.testing.assert_array_equal(rc.frequencies_of(symbols, 4), [1, 3, 1, 1])
    assert int(rc.frequencies_of(symbols, 4, total_bits=10).sum()) == 1024
    with pytest.raises(ValueError, match=r"symbols\[2\]"):
        rc.frequencies_of(np.array([0, 1, 4]), 4)


# ---- argument checks ------------------------------------------------------------------------------

FREQS = np.array([1, 2, 3], dtype=np.uint32)


@pytest.mark.parametrize("symbols, message", [
    (np.array([0, 1, 3, 0]), r"symbols\[2\] = 3 is outside \[0, 3\)"),
    (np.array([0, -1], dtype=np.int32), r"symbols\[1\] = -1 is outside"),
    (np.array([0, 1, 2, 7], dtype=np.int32), r"symbols\[3\] = 7 is outside"),
    (np.array([0, 2 ** 40]), r"symbols\[1\]"),
    (np.array([0.0, 1.0]), r"symbols must have an integer dtype"),
    (np.array([[0, 1]]), r"symbols must be 1-dimensional"),
    (np.array([True, False]), r"symbols must have an integer dtype"),
])
def test_encode_bad_symbols(symbols, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rc.encode(symbols, FREQS)
    if symbols.dtype.kind in "iu" and symbols.ndim == 1:
        with pytest.raises(ValueError, match=r"symbols\["):
            rc.encode(symbols, rc.Adaptive(3))


@pytest.mark.parametrize("freqs, message", [
    (np.array([1, 0, 3], dtype=np.uint32), r"freqs\[1\] is 0"),
    (np.array([1, 2, 3], dtype=np.int64), r"freqs must be a uint32"),
    (np.array([[1, 2, 3]], dtype=np.uint32), r"freqs must be 1-dimensional"),
    (np.array([], dtype=np.uint32), r"freqs must not be empty"),
    (np.array([2 ** 31, 1], dtype=np.uint32), r"sum to more than 2\^31"),
    (np.array([2 ** 32 - 1, 2 ** 32 - 1], dtype=np.uint32), r"sum to more than 2\^31"),
    ([1, 2, 3], r"freqs must be a uint32"),
])
def test_bad_freqs(freqs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rc.encode(np.array([0], dtype=np.int32), freqs)
    with pytest.raises(ValueError, match=message):
        rc.decode(bytes(8), freqs, 0)


def test_freqs_sum_exactly_max_is_accepted() -> None:
    round_trip(np.array([0, 1, 1], dtype=np.int32), np.array([2 ** 30, 2 ** 30], dtype=np.uint32))


@pytest.mark.parametrize("kwargs, message", [
    (dict(alphabet_size=0), "alphabet_size must be >= 1"),
    (dict(alphabet_size=40000), r"alphabet_size must be <= limit // 2"),
    (dict(alphabet_size=4, increment=0), "increment must be >= 1"),
    (dict(alphabet_size=4, increment=20000), r"increment must be <= limit // 4"),
    (dict(alphabet_size=4, limit=1), "limit must be >= 2"),
    (dict(alphabet_size=4, limit=2 ** 31 + 1), r"limit must be <= 2\*\*31"),
    (dict(alphabet_size=2.5), "alphabet_size must be an integer"),
    (dict(alphabet_size=4, increment=True), "increment must be an integer"),
])
def test_bad_adaptive(kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rc.Adaptive(**kwargs)


def test_bad_count_and_data() -> None:
    data = rc.encode(np.array([0, 1], dtype=np.int32), FREQS)
    with pytest.raises(ValueError, match="count must be >= 0"):
        rc.decode(data, FREQS, -1)
    with pytest.raises(ValueError, match="count must be an integer"):
        rc.decode(data, FREQS, 2.0)
    with pytest.raises(ValueError, match="data must be bytes-like"):
        rc.decode("abc", FREQS, 2)


@pytest.mark.parametrize("counts, bits, message", [
    (np.array([1, -2, 3]), None, r"counts\[1\] = -2 is negative"),
    (np.array([1.0, 2.0]), None, "counts must have an integer dtype"),
    (np.array([[1, 2]]), None, "counts must be 1-dimensional"),
    (np.array([], dtype=np.int64), None, "counts must not be empty"),
    (np.array([1, 2, 3]), 1, "leaves no room for 3 symbols"),
    (np.array([1, 2]), 32, r"total_bits must be in \[0, 31\]"),
    (np.array([1, 2]), -1, "total_bits must be >= 0"),
    (np.array([2 ** 63, 2 ** 63], dtype=np.uint64), None, "counts sum past 2\\^64"),
])
def test_bad_counts(counts, bits, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rc.frequencies_from_counts(counts, bits)


def test_core_is_strict() -> None:
    """The _core functions take exact dtypes and layouts only, and check them."""
    s32 = np.array([0, 1], dtype=np.int32)
    with pytest.raises(ValueError, match="symbols must have dtype int32"):
        _core.range_encode_static(s32.astype(np.int64), FREQS)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.range_encode_static(np.array([0, 0, 1, 1], dtype=np.int32)[::2], FREQS)
    with pytest.raises(ValueError, match="freqs must have dtype uint32"):
        _core.range_encode_static(s32, FREQS.astype(np.int32))
    with pytest.raises(ValueError, match="count must be >= 0"):
        _core.range_decode_static(bytes(8), FREQS, -1)
    with pytest.raises(ValueError, match="alphabet_size must be in"):
        _core.range_encode_adaptive(s32, 0, 24, 65536)
    with pytest.raises(ValueError, match="increment must be in"):
        _core.range_decode_adaptive(bytes(8), 0, 4, 0, 65536)
    with pytest.raises(ValueError, match="limit must be in"):
        _core.range_encode_adaptive(s32, 4, 24, 2 ** 31 + 2)
    with pytest.raises(ValueError, match="counts must have dtype uint64"):
        _core.frequencies_from_counts(np.array([1, 2], dtype=np.int64), -1)
    with pytest.raises(ValueError, match="total_bits must be in"):
        _core.frequencies_from_counts(np.array([1, 2], dtype=np.uint64), 40)


# ---- corrupt data --------------------------------------------------------------------------------

def test_decode_error_is_value_error() -> None:
    assert issubclass(rc.DecodeError, ValueError)
    assert rc.DecodeError is _core.DecodeError


def test_truncated_and_extended_raise() -> None:
    symbols = zipf_symbols(2000, 256, seed=2)
    for model in (rc.frequencies_of(symbols, 256), rc.Adaptive(256)):
        data = rc.encode(symbols, model)
        for cut in (0, 1, 7, len(data) // 2, len(data) - 1):
            with pytest.raises(rc.DecodeError):
                rc.decode(data[:cut], model, symbols.size)
        with pytest.raises(rc.DecodeError, match="unread byte"):
            rc.decode(data + b"\x00", model, symbols.size)
        with pytest.raises(rc.DecodeError):
            rc.decode(data, model, symbols.size + 1000)
    with pytest.raises(rc.DecodeError):
        rc.decode(b"", FREQS, 0)
    with pytest.raises(rc.DecodeError):
        rc.decode(bytes(7), FREQS, 0)


def test_random_corruptions_never_crash() -> None:
    """10,000 random byte flips, truncations and extensions: each decodes or raises
    DecodeError, never crashes or hangs."""
    rng = np.random.default_rng(2024)
    n = 300
    symbols = zipf_symbols(n, 64, seed=9)
    models = [rc.frequencies_of(symbols, 64), rc.frequencies_of(symbols, 64, total_bits=31),
              rc.Adaptive(64)]
    coded = [rc.encode(symbols, m) for m in models]
    outcomes = {"decoded": 0, "error": 0}
    for trial in range(10_000):
        k = trial % len(models)
        buf = bytearray(coded[k])
        kind = rng.integers(3)
        if kind == 0:
            for _ in range(int(rng.integers(1, 4))):
                buf[int(rng.integers(len(buf)))] ^= int(rng.integers(1, 256))
        elif kind == 1:
            del buf[int(rng.integers(len(buf))):]
        else:
            buf += rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        count = n if rng.random() < 0.8 else int(rng.integers(0, 2 * n))
        try:
            out = rc.decode(bytes(buf), models[k], count)
        except rc.DecodeError:
            outcomes["error"] += 1
        else:
            assert out.shape == (count,) and out.min(initial=0) >= 0 and out.max(initial=0) < 64
            outcomes["decoded"] += 1
    assert outcomes["error"] > 9000  # nearly every corruption is detected
