"""The transform-coded refinement layer (format version 4, smic_fast.coding.transform): the bits it
saves against the one-table residual on items it was not learned on, what a reader decodes,
the same bytes on every writing path, the dictionary that carries it, and damaged inputs."""
from __future__ import annotations

import json

import numpy as np
import pytest

import smic_fast as smic
from smic_fast import _core
from smic_fast.coding.transform import aimed_residuals, learn_transform

from test_fuzz_files import _mutate, damaged_collections_raised


def correlated(rng: np.random.Generator, n: int, d: int = 48, concepts: int = 24) -> np.ndarray:
    """Items = a few concepts + noise whose spread decays along a hidden rotation (as real
    embeddings' residuals do): most of the residual lies in a few directions."""
    centres = rng.standard_normal((concepts, d))
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spread = 0.35 * np.exp(-np.arange(d) / 6.0)
    noise = (rng.standard_normal((n, d)) * spread) @ rotation.T
    x = centres[rng.integers(0, concepts, n)] + noise * np.linalg.norm(centres, axis=1).mean()
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def split():
    e = correlated(np.random.default_rng(5), 3000)
    return e[:2400], e[2400:]


@pytest.fixture(scope="module")
def dictionaries(split):
    """The atoms alone and with the default transform (dependent quantisation)."""
    train, _ = split
    plain = smic.Dictionary.fit(train, n_atoms=32, n_nonzero=2, n_iter=3, seed=0)
    return plain, learn_transform(plain, train, n_classes=4)


@pytest.fixture(scope="module")
def greedy_dictionary(split, dictionaries):
    """The same atoms with a greedy-quantiser transform (what every transform before dependent
    quantisation was)."""
    return learn_transform(dictionaries[0], split[0], n_classes=4, quantiser="greedy")


def _coded(dictionary, items, path, step, **kw):
    info = smic.compress(items, path, dictionary=dictionary, residual_step=step, **kw)
    decoded = smic.open(path, dictionary=dictionary).embeddings()
    cosine = float(np.mean(np.sum(decoded.astype(np.float64) * items, axis=1)))
    return info, decoded, cosine


def _bits_at(points, level):
    points = sorted(points, key=lambda p: p[1])
    for (b0, c0), (b1, c1) in zip(points, points[1:]):
        if c0 <= level <= c1:
            return b0 + (b1 - b0) * (level - c0) / (c1 - c0)
    raise AssertionError(f"no points around cosine {level}: {points}")


def test_held_out_items_cost_fewer_bits_than_the_one_table_residual(tmp_path, split, dictionaries):
    _, test = split
    plain, transformed = dictionaries
    curves = {}
    for name, d in (("scalar", plain), ("transform", transformed)):
        points = []
        for step in (0.4, 0.2, 0.1, 0.05, 0.025, 0.0125):
            info, _, cosine = _coded(d, test, tmp_path / f"{name}.smic", step)
            points.append((info["marginal_bits_per_item"], cosine))
        curves[name] = points
    for level in (0.97, 0.99):
        assert _bits_at(curves["transform"], level) < 0.8 * _bits_at(curves["scalar"], level)


def test_reader_decodes_what_the_encoder_measured(tmp_path, split, dictionaries):
    _, test = split
    _, transformed = dictionaries
    info, decoded, cosine = _coded(transformed, test, tmp_path / "t.smic", 0.05, chunk_size=64)
    assert info["format_version"] == 4 and info["residual_step"] == 0.05 and info["residual_coding"] == "transform"
    assert cosine == pytest.approx(info["cosine_mean"], abs=1e-6)
    col = smic.open(tmp_path / "t.smic", dictionary=transformed)
    assert col.header["residual_coding"] == "transform"
    for position in (0, 63, 64, 599, 317):  # one item alone, across chunk borders
        np.testing.assert_array_equal(col[position], decoded[position])
    # the atoms' part is the plain dictionary's: the layer only adds RESD sections
    plain_info = smic.compress(test, tmp_path / "p.smic", dictionary=transformed, chunk_size=64)
    assert plain_info["section_bytes"]["items"] == info["section_bytes"]["items"]
    assert plain_info["format_version"] in (1, 3) and plain_info["section_bytes"]["residual"] == 0
    assert plain_info["residual_coding"] is None
    one_table = smic.compress(test, tmp_path / "s.smic", dictionary=dictionaries[0], residual_step=0.05)
    assert one_table["residual_coding"] == "table" and one_table["format_version"] == 2


def test_every_writing_path_gives_the_same_levels(tmp_path, split, dictionaries):
    """One batch, the streaming writer, in-place appends of one item, and a repack: the same
    levels for every item (each item's code depends on nothing but itself)."""
    _, test = split
    _, d = dictionaries
    items = test[:130]
    whole = _core.write_collection(str(tmp_path / "a.smic"), items, d._core, None, None, "m", 16, 0.03, "w",
                                   False, 0, None)
    streamed = _core.write_collection_streaming(str(tmp_path / "b.smic"), [items[:50], items[50:]], d._core,
                                                None, None, "m", 16, 0.03, "w", False, 0, None, 32)
    assert (tmp_path / "a.smic").read_bytes() == (tmp_path / "b.smic").read_bytes()
    np.testing.assert_array_equal(whole, streamed)
    one = tmp_path / "c.smic"
    smic.compress(items[:1], one, dictionary=d, residual_step=0.03, chunk_size=16)
    col = smic.open(one, dictionary=d)
    for i in range(1, 40):
        col.append(items[i:i + 1])
    col.append(items[40:])
    expected = smic.open(tmp_path / "a.smic", dictionary=d).embeddings()
    np.testing.assert_array_equal(smic.open(one, dictionary=d).embeddings(), expected)
    smic.open(one, dictionary=d).repack()
    repacked = smic.open(one, dictionary=d)
    assert repacked.info()["format_version"] == 4
    np.testing.assert_array_equal(repacked.embeddings(), expected)
    # replacing an item re-packs its batch from the decoded levels: the others are unchanged
    repacked.append(items[7:8], ids=["5"], replace=True)
    again = smic.open(one, dictionary=d)
    keep = [i for i in range(len(items)) if i != 5]
    np.testing.assert_array_equal(again.embeddings()[:len(keep)], expected[keep])


@pytest.mark.parametrize("step", [0.03, 0.008])
def test_single_items_decode_to_what_the_collection_holds(tmp_path, split, dictionaries, step):
    """Dictionary.encode(x, residual_step) codes the layer's levels after the item's symbols:
    decoding them at the same step gives exactly the collection's embedding of the item, in
    fewer bytes than the atoms' code plus a separate stream would take."""
    _, test = split
    _, d = dictionaries
    items = test[:60]
    smic.compress(items, tmp_path / "c.smic", dictionary=d, residual_step=step, chunk_size=1)
    collection = smic.open(tmp_path / "c.smic", dictionary=d)
    expected = collection.embeddings()
    refined = [d.encode(x, residual_step=step) for x in items]
    decoded = np.stack([d.decode(b, residual_step=step) for b in refined])
    np.testing.assert_array_equal(decoded, expected)
    # the refinement is real: plain single items decode to the atoms only, further from the input
    plain = [d.encode(x) for x in items]
    atoms_only = np.stack([d.decode(b) for b in plain])
    assert np.mean(np.sum(atoms_only * items, axis=1)) < np.mean(np.sum(decoded * items, axis=1)) - 0.01
    # one stream: the atoms' bytes and the levels' bytes coded apart, less one flush (8 bytes),
    # give or take the coder's rounding
    t = d._core.transform
    symbols = d.items_symbols(items)
    classes = d._core.classes(symbols.counts, symbols.first, symbols.rest_index, symbols.rest_level)
    levels = t.levels(items, d.reconstruct(symbols), classes, step)
    apart = [len(p) + len(t.encode(levels[i:i + 1], classes[i:i + 1], step)) for i, p in enumerate(plain)]
    assert np.mean(apart) - 9 <= np.mean([len(b) for b in refined]) <= np.mean(apart) - 6
    assert d._core.encode_bound_at(step) >= max(len(b) for b in refined)


def test_single_item_refinement_errors(split, dictionaries):
    _, test = split
    plain, d = dictionaries
    x = test[0]
    with pytest.raises(ValueError, match="transform"):
        plain.encode(x, residual_step=0.03)
    with pytest.raises(ValueError, match="transform"):
        plain.decode(plain.encode(x), residual_step=0.03)
    for bad in (0.0, -0.1, 2.0, float("nan")):
        with pytest.raises(ValueError):
            d.encode(x, residual_step=bad)
    data = d.encode(x, residual_step=0.03)
    with pytest.raises(smic.DecodeError):  # the levels are left over for a plain decode
        d.decode(data)
    rng = np.random.default_rng(0)
    damaged = 0
    for _ in range(400):  # damaged bytes raise DecodeError or decode to some unit vector
        mutated = _mutate(rng, data)
        try:
            e = d.decode(mutated, residual_step=0.03)
        except smic.DecodeError:
            damaged += 1
            continue
        assert np.isfinite(e).all() and abs(np.linalg.norm(e) - 1) < 1e-4
    assert damaged > 100


def test_the_dictionary_carries_the_transform(tmp_path, dictionaries):
    plain, transformed = dictionaries
    assert plain.transform is None and transformed.transform is not None
    assert "transform=4 classes" in repr(transformed) and "transform" not in repr(plain)
    assert transformed.hash != plain.hash
    transformed.save(tmp_path / "t.smicd")
    loaded = smic.Dictionary.load(tmp_path / "t.smicd")
    assert loaded.hash == transformed.hash
    assert loaded._core.transform.to_bytes() == transformed._core.transform.to_bytes()
    assert (tmp_path / "t.smicd").read_bytes()[8:10] == b"\x02\x00"  # .smicd version 2
    plain.save(tmp_path / "p.smicd")
    assert (tmp_path / "p.smicd").read_bytes()[8:10] == b"\x01\x00"  # unchanged without one
    t = transformed._core.transform
    assert t.rank == t.dim - 1 and t.n_classes == 4
    basis = t.basis.astype(np.float64)
    for c in range(t.n_classes):  # orthonormal axes, up to their float16 storage
        np.testing.assert_allclose(basis[c] @ basis[c].T, np.eye(t.rank), atol=5e-3)


def test_a_collection_needs_the_dictionary_with_its_transform(tmp_path, split, dictionaries):
    _, test = split
    plain, transformed = dictionaries
    smic.compress(test[:50], tmp_path / "t.smic", dictionary=transformed, residual_step=0.05)
    with pytest.raises(smic.DictionaryMismatchError):
        smic.open(tmp_path / "t.smic", dictionary=plain)


def test_ideal_bits_match_the_coded_bytes(tmp_path, split, dictionaries):
    _, test = split
    _, d = dictionaries
    t = d._core.transform
    symbols = d.items_symbols(test)
    decoded = d.reconstruct(symbols)
    classes = d._core.classes(symbols.counts, symbols.first, symbols.rest_index, symbols.rest_level)
    levels = t.levels(test, decoded, classes, 0.02)
    bits = t.bits(levels, classes, 0.02)
    counts, gains = t.count_contexts(levels, classes, 0.02)
    # every coded coefficient once (axes whose spread is below step / 16 are not coded)
    assert 0.5 * len(test) * t.rank < counts.sum() <= len(test) * t.rank and gains.sum() == len(test)
    # one chunk: its bytes are the ideal code length plus the coder's flush (at most 8 bytes)
    info = smic.compress(test, tmp_path / "one.smic", dictionary=d, residual_step=0.02, chunk_size=len(test))
    chunk_bytes = info["section_bytes"]["residual"] - 16 - (8 + 4 + 16) - 8 * 2
    assert bits.sum() <= 8 * chunk_bytes <= 1.002 * bits.sum() + 64
    refined = t.refine(decoded, levels, classes, 0.02)
    file_rows = smic.open(tmp_path / "one.smic", dictionary=d).embeddings()
    np.testing.assert_allclose(refined, file_rows, atol=1e-5)


def test_large_levels_escape_and_decode(tmp_path, split, dictionaries):
    """A tiny step makes levels far beyond the escape symbol (18): they round-trip."""
    _, test = split
    _, d = dictionaries
    info, decoded, cosine = _coded(d, test[:40], tmp_path / "fine.smic", 1e-4)
    assert cosine > 0.99999
    t = d._core.transform
    symbols = d.items_symbols(test[:40])
    classes = d._core.classes(symbols.counts, symbols.first, symbols.rest_index, symbols.rest_level)
    levels = t.levels(test[:40], d.reconstruct(symbols), classes, 1e-4)
    assert np.abs(levels[:, :-1]).max() > 100 * _core.TRANSFORM_ESCAPE


def test_transform_arguments_are_checked(split, dictionaries):
    train, _ = split
    plain, transformed = dictionaries
    with pytest.raises(ValueError, match="rank"):
        learn_transform(plain, train, rank=train.shape[1])
    with pytest.raises(ValueError, match="n_classes"):
        learn_transform(plain, train, n_classes=plain.n_atoms + 1)
    with pytest.raises(ValueError, match="shrinkage"):
        learn_transform(plain, train, shrinkage=-1.0)
    with pytest.raises(ValueError, match="rdo"):
        learn_transform(plain, train, rdo=float("nan"))
    with pytest.raises(ValueError, match="48 columns"):
        learn_transform(plain, train[:, :10])
    with pytest.raises(TypeError):
        learn_transform(plain._core, train)
    t = transformed._core.transform
    assert t.quantiser == "dependent"
    args = dict(atom_class=t.atom_class, mean=t.mean, basis=t.basis, scale=t.scale, rounding=0.4, bias=0.05,
                counts=t.counts, gain_counts=t.gain_counts, rdo=t.rdo, quantiser=t.quantiser)
    _core.TransformModel(**args)
    with pytest.raises(ValueError, match="counts must hold 2280"):  # greedy tables are half the size
        _core.TransformModel(**{**args, "quantiser": "greedy"})
    for change, message in ((dict(rounding=1.0), "rounding"), (dict(bias=-0.1), "bias"),
                            (dict(atom_class=t.atom_class + 10), "atom_class"),
                            (dict(scale=(t.scale * 0 + 300).astype(np.int16)), "scale"),
                            (dict(counts=t.counts[:5]), "counts"),
                            (dict(basis=np.ascontiguousarray(t.basis[:, :, :-1])), "mean must be")):
        with pytest.raises(ValueError, match=message):
            _core.TransformModel(**{**args, **change})
    with pytest.raises(ValueError, match="the transform is for"):
        smic.Dictionary.fit(train, n_atoms=16, n_nonzero=2, n_iter=1)._core.with_transform(t)


def test_damaged_transform_sections_raise_format_error(tmp_path, split, dictionaries):
    _, test = split
    _, d = dictionaries
    payload = d._core.transform.to_bytes()
    assert _core.TransformModel.from_bytes(payload, "dependent").to_bytes() == payload
    with pytest.raises(smic.FormatError, match="trailing"):  # read as greedy, its tables are too long
        _core.TransformModel.from_bytes(payload)
    with pytest.raises(ValueError, match="quantiser must be"):
        _core.TransformModel.from_bytes(payload, "viterbi")
    for cut in (0, 10, 40, len(payload) // 2, len(payload) - 1):
        with pytest.raises(smic.FormatError):
            _core.TransformModel.from_bytes(payload[:cut], "dependent")
    with pytest.raises(smic.FormatError, match="trailing"):
        _core.TransformModel.from_bytes(payload + b"\x00", "dependent")
    rng = np.random.default_rng(3)
    raised = 0
    for _ in range(300):
        try:
            _core.TransformModel.from_bytes(_mutate(rng, payload), "dependent")
        except smic.FormatError:
            raised += 1
    assert raised > 0
    # whole collections with an embedded transform dictionary: decode or FormatError, never worse
    path = tmp_path / "t.smic"
    smic.compress(test[:60], path, n_atoms=16, n_nonzero=2, n_iter=1, chunk_size=16)
    own = smic.open(path).dictionary
    _core.write_collection(str(path), test[:60], learn_transform(own, test, n_classes=2)._core, None, None, "m",
                           16, 0.05, "w", True, 0, None)  # the dictionary, with its transform, embedded
    assert smic.open(path).info()["format_version"] == 4
    assert damaged_collections_raised(path.read_bytes(), tmp_path / "m.smic", rng, 1500) > 500


def test_cli_fits_a_dictionary_with_a_transform_and_compresses_with_it(tmp_path, split, capsys):
    from smic_fast.cli import main

    train, test = split
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "test.npy", test)
    d = tmp_path / "d.smicd"
    assert main(["dictionary", "fit", str(tmp_path / "train.npy"), "-o", str(d), "--atoms", "32", "--sparsity", "2",
                 "--iterations", "2", "--transform", "--transform-classes", "3", "--json", "--quiet"]) == 0
    fitted = json.loads(capsys.readouterr().out)
    assert fitted["transform"] == {"classes": 3, "rank": train.shape[1] - 1, "quantiser": "dependent"}
    assert smic.Dictionary.load(d)._core.transform.n_classes == 3
    greedy = tmp_path / "g.smicd"  # for fleets with readers that predate dependent quantisation
    assert main(["dictionary", "fit", str(tmp_path / "train.npy"), "-o", str(greedy), "--atoms", "32",
                 "--sparsity", "2", "--iterations", "2", "--transform", "--transform-quantiser", "greedy",
                 "--quiet"]) == 0
    assert smic.Dictionary.load(greedy)._core.transform.quantiser == "greedy"
    assert main(["dictionary", "info", str(greedy)]) == 0
    assert "greedy quantiser" in capsys.readouterr().out
    out = tmp_path / "c.smic"
    assert main(["compress", str(tmp_path / "test.npy"), "-o", str(out), "--dictionary", str(d),
                 "--residual-step", "0.05", "--quiet"]) == 0
    assert smic.open(out, dictionary=d).info()["format_version"] == 4
    # --transform-classes alone is a usage error, and nothing is written
    for flag in (["--transform-classes", "3"], ["--transform-quantiser", "greedy"]):
        assert main(["dictionary", "fit", str(tmp_path / "train.npy"), "-o", str(tmp_path / "x.smicd"), *flag,
                     "--quiet"]) == 2
        assert not (tmp_path / "x.smicd").exists()


def test_a_collection_learns_and_carries_its_own_transform(tmp_path, split, capsys):
    """compress(transform=True) learns the layer with the dictionary learned on the collection
    and embeds it: the file opens without a .smicd, its items decode to what the encoder
    measured, and an append codes with the same transform."""
    from smic_fast.cli import main

    train, test = split
    path = tmp_path / "own.smic"
    info = smic.compress(train[:1500], path, n_atoms=32, n_nonzero=2, n_iter=2, residual_step=0.05, transform=True)
    collection = smic.open(path)
    assert info["format_version"] == 4 and not collection.shared_dictionary
    assert collection.dictionary.transform is not None
    table = smic.compress(train[:1500], tmp_path / "table.smic", n_atoms=32, n_nonzero=2, n_iter=2,
                          residual_step=0.05)
    assert table["format_version"] < 4
    decoded = collection.embeddings()
    assert abs(float(np.mean(np.sum(decoded * train[:1500], axis=1))) - info["cosine_mean"]) < 1e-6
    collection.append(test[:10])
    again = smic.open(path)
    expected = collection.dictionary.decode(collection.dictionary.encode(test[3], residual_step=0.05),
                                            residual_step=0.05)
    np.testing.assert_array_equal(again.embeddings()[1503], expected)
    for bad in ({"transform": True}, {"transform": True, "residual_step": 0.05, "dictionary": collection.dictionary}):
        with pytest.raises(ValueError, match="transform"):
            smic.compress(test, tmp_path / "bad.smic", **bad)
    assert not (tmp_path / "bad.smic").exists()
    # the CLI: --transform learns it; without --residual-step it is a usage error
    np.save(tmp_path / "train.npy", train[:1500])
    out = tmp_path / "cli.smic"
    assert main(["compress", str(tmp_path / "train.npy"), "-o", str(out), "--atoms", "32", "--sparsity", "2",
                 "--iterations", "2", "--residual-step", "0.05", "--transform", "--quiet"]) == 0
    assert smic.open(out).info()["residual_coding"] == "transform"
    assert main(["compress", str(tmp_path / "train.npy"), "-o", str(tmp_path / "x.smic"), "--transform",
                 "--quiet"]) == 2
    assert not (tmp_path / "x.smic").exists()


@pytest.mark.parametrize("power_of_two", [False, True])
def test_levels_decode_to_what_was_coded_whatever_the_tables_totals(split, dictionaries, power_of_two):
    """Decoding tests a context's zero with one multiplication before dividing for the target:
    the levels must come back exactly, whether a table's total is a power of two (shift) or not
    (division), and damaged streams still raise."""
    _, test = split
    _, d = dictionaries
    t = d._core.transform
    counts = np.asarray(t.counts, dtype=np.uint64).reshape(-1, 19).copy()
    if power_of_two:  # each context sums to exactly 2^12, every count >= 1
        spare = 4096 - counts.shape[1]  # one for each symbol, the rest in proportion, remainders to the mode
        counts = 1 + (counts * spare // np.maximum(counts.sum(axis=1, keepdims=True), 1)).astype(np.uint64)
        counts[np.arange(len(counts)), counts.argmax(axis=1)] += (4096 - counts.sum(axis=1)).astype(np.uint64)
        assert (counts.sum(axis=1) == 4096).all()
    model = _core.TransformModel(atom_class=t.atom_class, mean=t.mean, basis=t.basis, scale=t.scale,
                                 rounding=0.45, bias=0.05, counts=counts, gain_counts=t.gain_counts, rdo=t.rdo,
                                 quantiser=t.quantiser)
    symbols = d.items_symbols(test)
    classes = d._core.classes(symbols.counts, symbols.first, symbols.rest_index, symbols.rest_level)
    for step in (0.1, 0.03, 0.01):
        levels = model.levels(test, d.reconstruct(symbols), classes, step)
        assert (levels[:, :-1] != 0).any() and (levels[:, :-1] == 0).mean() > 0.15
        data = model.encode(levels, classes, step)
        np.testing.assert_array_equal(model.decode(data, classes, step), levels)
        with pytest.raises(smic.DecodeError):
            model.decode(data[: len(data) // 2], classes, step)


# ---- the trellis quantiser: an encoder choice, files decode as before ---------------------------

@pytest.fixture(scope="module")
def quantisers(greedy_dictionary):
    """A greedy model and a trellis one with the very same tables (the learned transform's)."""
    t = greedy_dictionary._core.transform
    args = dict(atom_class=t.atom_class, mean=t.mean, basis=t.basis, scale=t.scale, rounding=t.rounding,
                bias=t.bias, counts=t.counts, gain_counts=t.gain_counts, rdo=t.rdo)
    return _core.TransformModel(**args, quantiser="greedy"), _core.TransformModel(**args, quantiser="trellis")


def _item_costs(t, test, decoded, classes, levels, step):
    """Squared error on the class axes + rdo * step^2 * bits, per item: what the quantisers minimise."""
    basis, mean = t.basis.astype(np.float64), t.mean.astype(np.float64)
    r = aimed_residuals(test, decoded) - mean[classes]
    y = np.einsum("ijk,ik->ij", basis[classes], r)
    q = levels[:, :t.rank].astype(np.float64)
    rec = np.sign(q) * np.maximum(np.abs(q) - t.bias, 0) * step
    return np.sum((y - rec) ** 2, axis=1) + t.rdo * step * step * t.bits(levels, classes, step)


@pytest.mark.parametrize("step", [0.1, 0.03, 0.01])
def test_the_trellis_never_costs_an_item_more_than_the_greedy_choice(split, dictionaries, quantisers, step):
    """The greedy levels are one path of the trellis (at the energy's gain): per item, the trellis's
    cost is at most theirs, and over the items strictly less."""
    _, test = split
    d = dictionaries[1]
    greedy, trellis = quantisers
    assert (greedy.quantiser, trellis.quantiser) == ("greedy", "trellis") and greedy.rdo > 0
    symbols = d.items_symbols(test)
    decoded = d.reconstruct(symbols)
    classes = d._core.classes(symbols.counts, symbols.first, symbols.rest_index, symbols.rest_level)
    old = greedy.levels(test, decoded, classes, step)
    new = trellis.levels(test, decoded, classes, step)
    assert not np.array_equal(old, new)
    old_cost = _item_costs(greedy, test, decoded.astype(np.float64), classes, old, step)
    new_cost = _item_costs(greedy, test, decoded.astype(np.float64), classes, new, step)
    assert np.all(new_cost <= old_cost * (1 + 1e-6) + 1e-12)
    assert new_cost.sum() < 0.999 * old_cost.sum()
    # the trellis's levels are ordinary levels: they code, decode and refine like any others
    data = trellis.encode(new, classes, step)
    np.testing.assert_array_equal(greedy.decode(data, classes, step), new)


def test_a_trellis_dictionary_round_trips_and_decodes_like_any_other(tmp_path, split, dictionaries,
                                                                    greedy_dictionary):
    train, test = split
    plain, default = dictionaries
    greedy = greedy_dictionary
    assert default._core.transform.quantiser == "dependent"  # the default
    assert greedy._core.transform.quantiser == "greedy"
    trellis = learn_transform(plain, train, n_classes=4, quantiser="trellis")
    assert trellis._core.transform.quantiser == "trellis" and trellis.hash != greedy.hash
    trellis.save(tmp_path / "t.smicd")
    loaded = smic.Dictionary.load(tmp_path / "t.smicd")
    assert loaded._core.transform.quantiser == "trellis" and loaded.hash == trellis.hash
    assert b"XQNT" in (tmp_path / "t.smicd").read_bytes()
    greedy.save(tmp_path / "g.smicd")  # greedy dictionaries are written as before: no new section
    assert b"XQNT" not in (tmp_path / "g.smicd").read_bytes()
    assert smic.Dictionary.load(tmp_path / "g.smicd")._core.transform.quantiser == "greedy"
    info, decoded, cosine = _coded(loaded, test, tmp_path / "t.smic", 0.05, chunk_size=64)
    assert cosine == pytest.approx(info["cosine_mean"], abs=1e-6)
    col = smic.open(tmp_path / "t.smic", dictionary=loaded)
    for position in (0, 64, 317):
        np.testing.assert_array_equal(col[position], decoded[position])
    one = loaded.encode(test[5], residual_step=0.05)  # the single-item path makes the same choice
    np.testing.assert_allclose(loaded.decode(one, residual_step=0.05), decoded[5], atol=1e-6)
    with pytest.raises(ValueError, match="quantiser"):
        learn_transform(plain, train, quantiser="viterbi")
    t = greedy._core.transform
    with pytest.raises(ValueError, match="quantiser must be 'greedy', 'trellis' or 'dependent'"):
        _core.TransformModel(t.atom_class, t.mean, t.basis, t.scale, 0.45, 0.05, t.counts, t.gain_counts, 0.15,
                             "viterbi")


# ---- dependent quantisation: two interleaved grids, chosen by the levels' parities ---------------

NEXT_STATE = np.array([[0, 2], [2, 0], [1, 3], [3, 1]])  # smic/transform.hpp's kTransformNextState


def _coefficients(t, items, decoded, classes):
    """y: the residuals on their class's axes, (n, rank) float64."""
    r = aimed_residuals(items, decoded) - t.mean.astype(np.float64)[classes]
    return np.einsum("ijk,ik->ij", t.basis.astype(np.float64)[classes], r)


def _coded_axes(t, levels, classes, step):
    """True where an axis is coded: its spread with the item's gain at least step / 16."""
    shift = _core.TransformModel.step_index(step) + levels[:, -1]
    return t.scale.astype(np.int64)[classes] + shift[:, None] + 16 >= 0


def _dependent_reconstruction(t, levels, classes, step):
    """What dependent levels mean, written from the format's description (numpy, not the C++):
    level k of quantiser Q (the state's, state >> 1) at (2|k| - Q - bias) * step / 2; the state
    moves by the parity of |k| on coded axes only."""
    coded = _coded_axes(t, levels, classes, step)
    q = levels[:, :t.rank].astype(np.int64)
    rec = np.zeros(q.shape)
    state = np.zeros(len(q), dtype=np.int64)
    for j in range(t.rank):
        a = np.abs(q[:, j])
        rec[:, j] = np.where(a == 0, 0.0, (2 * a - (state >> 1) - t.bias) * step / 2) * np.sign(q[:, j])
        state = np.where(coded[:, j], NEXT_STATE[state, a & 1], state)
    return rec


@pytest.mark.parametrize("step", [0.1, 0.03, 0.01])
def test_dependent_levels_reconstruct_as_the_format_says(split, dictionaries, step):
    _, test = split
    d = dictionaries[1]
    t = d._core.transform
    assert t.quantiser == "dependent"
    symbols = d.items_symbols(test)
    decoded = d.reconstruct(symbols)
    classes = d._core.classes(symbols.counts, symbols.first, symbols.rest_index, symbols.rest_level)
    levels = t.levels(test, decoded, classes, step)
    rec = _dependent_reconstruction(t, levels, classes, step)
    refined = decoded.astype(np.float64) + t.mean[classes] + np.einsum("ij,ijk->ik", rec, t.basis.astype(np.float64)[classes])
    refined /= np.linalg.norm(refined, axis=1, keepdims=True)
    np.testing.assert_allclose(t.refine(decoded, levels, classes, step), refined, atol=2e-6)
    # both grids are used, and non-zero levels sit on one of the two reconstructions around |y|
    # of their own grid (spacing step, shifted by the bias): within a step of it
    y = _coefficients(t, test, decoded, classes)
    coded = _coded_axes(t, levels, classes, step)[:, :t.rank]
    near = np.abs(y - rec)[coded & (levels[:, :t.rank] != 0)]
    assert near.max() <= step * (1 + t.bias / 2) + 1e-6 and np.mean(near) < 0.5 * step
    odd_reconstructions = np.round(np.abs(rec) / (step / 2) + t.bias).astype(np.int64) % 2 == 1
    assert odd_reconstructions[levels[:, :t.rank] != 0].mean() > 0.2


def _table_bits(t):
    """-log2 of each context's frequencies, as the C++ model quantises its counts."""
    counts = np.asarray(t.counts, dtype=np.uint64)
    freqs = np.stack([_core.frequencies_from_counts(np.ascontiguousarray(row)) for row in counts]).astype(np.float64)
    return -np.log2(freqs / freqs.sum(axis=1, keepdims=True))


def _level_by_level(t, y, coded, classes, gains, step):
    """Dependent levels chosen one coefficient at a time in coding order (each the cheapest of
    the two reconstructions around |y| and 0 in its state's quantiser, priced under its context):
    a valid path the Viterbi search must beat."""
    bits = _table_bits(t)
    lam = t.rdo * step * step
    n = len(y)
    levels = np.zeros((n, t.rank), dtype=np.int64)
    state = np.zeros(n, dtype=np.int64)
    previous = np.zeros(n, dtype=np.int64)
    t_index = _core.TransformModel.step_index(step)
    bucket = np.clip(t.scale.astype(np.int64)[classes] + (t_index + gains)[:, None] + 16, 0, 39)
    rows = np.arange(n)
    for j in range(t.rank):
        m = np.abs(y[:, j]) / (step / 2)
        quantiser = state >> 1
        k0 = np.where(quantiser == 0, np.floor(m / 2), np.floor((m + 1) / 2)).astype(np.int64)
        context = (bucket[:, j] * 2 + quantiser) * 3 + np.minimum(previous, 2)
        best_cost, best = np.full(n, np.inf), np.zeros(n, dtype=np.int64)
        for k in (k0, k0 + 1, np.zeros_like(k0)):
            rec = np.where(k == 0, 0.0, 2 * k - quantiser - t.bias)
            cost = (m - rec) ** 2 * (step / 2) ** 2 + lam * (bits[context, np.minimum(k, 18)] + (k > 0))
            better = cost < best_cost
            best_cost, best = np.where(better, cost, best_cost), np.where(better, k, best)
        best = np.where(coded[:, j], best, 0)
        levels[:, j] = best * np.sign(y[:, j]).astype(np.int64)
        state = np.where(coded[:, j], NEXT_STATE[state, best & 1], state)
        previous = np.where(coded[:, j], best, 0)
    del rows
    return levels


@pytest.mark.parametrize("step", [0.1, 0.03])
def test_the_dependent_search_beats_choosing_level_by_level(split, dictionaries, step):
    """Per item, squared error + rdo * step^2 * bits (under the real tables) of the Viterbi's levels
    is at most that of a level-by-level path on the same grids, and over the items less."""
    _, test = split
    d = dictionaries[1]
    t = d._core.transform
    symbols = d.items_symbols(test)
    decoded = d.reconstruct(symbols)
    classes = d._core.classes(symbols.counts, symbols.first, symbols.rest_index, symbols.rest_level)
    found = t.levels(test, decoded, classes, step)
    y = _coefficients(t, test, decoded, classes)
    coded = _coded_axes(t, found, classes, step)[:, :t.rank]
    simple = found.copy()
    simple[:, :t.rank] = _level_by_level(t, y, coded, classes, found[:, -1], step)
    assert not np.array_equal(simple, found)

    def cost(levels):
        rec = _dependent_reconstruction(t, levels, classes, step)
        return np.sum((y - rec) ** 2, axis=1) + t.rdo * step * step * t.bits(levels, classes, step)

    ours, theirs = cost(found), cost(simple)
    assert np.mean(ours <= theirs * (1 + 1e-9) + 1e-15) > 0.99
    assert ours.sum() < 0.97 * theirs.sum()
    # and both are ordinary levels: they code and decode exactly
    data = t.encode(simple, classes, step)
    np.testing.assert_array_equal(t.decode(data, classes, step), simple)


def test_dependent_quantisation_codes_held_out_items_in_fewer_bits(tmp_path, split, dictionaries, greedy_dictionary):
    """The reason it is the default: at equal cosine on items the transform never saw, fewer
    marginal bits than the greedy scalar quantiser with the same atoms and axes."""
    _, test = split
    curves = {}
    for name, d in (("greedy", greedy_dictionary), ("dependent", dictionaries[1])):
        points = []
        for step in (0.2, 0.14, 0.1, 0.07, 0.05, 0.035, 0.025, 0.018, 0.0125):
            info, _, cosine = _coded(d, test, tmp_path / f"{name}.smic", step)
            points.append((info["marginal_bits_per_item"], cosine))
        curves[name] = points
    for level in (0.99, 0.995, 0.999):
        assert _bits_at(curves["dependent"], level) < 0.97 * _bits_at(curves["greedy"], level)
