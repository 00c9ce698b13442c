"""The remaining-atoms index model (format version 3): which files use it, and that every way of
writing, appending, repacking and reading a collection keeps to the collection's model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import smic_fast as smic
from smic_fast import _core
from smic_fast.coding.dictionary import normalize_embeddings
from format_helpers import FORMAT_VERSION, Section, read_sections, write_sections

MAGIC = b"\x89SMIC\r\n\x1a"
GOLDEN = Path(__file__).resolve().parent / "golden"


def planted(seed: int, n: int, dim: int = 24, k: int = 12) -> np.ndarray:
    """Items of 2-4 atoms of a hidden dictionary: most codes use 3 or 4 atoms."""
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((k, dim))
    support = np.argsort(rng.random((n, k)), axis=1)[:, :4]
    weights = rng.uniform(0.4, 1.0, (n, 4)) * (rng.random((n, 4)) < 0.8)
    x = np.einsum("nk,nkd->nd", weights, atoms[support]) + 0.05 * rng.standard_normal((n, dim))
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def dictionary():
    return smic.Dictionary.fit(planted(0, 1500), n_atoms=16, n_nonzero=4, n_iter=3, rd_lambda=0.0)


def symbols_of(col) -> dict[str, np.ndarray]:
    out = {}
    for field in ("counts", "first", "rest_index", "rest_level"):
        out[field] = np.concatenate([getattr(s, field) for s in col._symbols()])
    return out


def test_auto_uses_the_model_where_it_pays_and_decodes_the_same_symbols(dictionary, tmp_path):
    e = planted(1, 1500)
    infos = {m: smic.compress(e, tmp_path / f"{m}.smic", dictionary=dictionary, index_model=m)
             for m in ("order0", "remaining", "auto")}
    assert infos["order0"]["format_version"] == 1 and infos["order0"]["index_model"] == "order0"
    assert infos["remaining"]["format_version"] == 3 and infos["remaining"]["index_model"] == "remaining"
    # Same symbols, so the same cosines; fewer bytes, and auto takes the smaller file.
    assert infos["remaining"]["cosine_mean"] == infos["order0"]["cosine_mean"]
    assert infos["remaining"]["file_bytes"] + 100 < infos["order0"]["file_bytes"]
    assert (tmp_path / "auto.smic").read_bytes() == (tmp_path / "remaining.smic").read_bytes()
    cols = {m: smic.open(tmp_path / f"{m}.smic", dictionary=dictionary) for m in ("order0", "remaining")}
    a, b = symbols_of(cols["order0"]), symbols_of(cols["remaining"])
    for field in a:
        np.testing.assert_array_equal(a[field], b[field])
    assert (a["counts"] >= 3).mean() > 0.3
    np.testing.assert_array_equal(cols["order0"].embeddings(), cols["remaining"].embeddings())
    # Search reads the codes through the collection: the same answers from either file.
    found = [cols[m].search(e[:5], 3) for m in ("order0", "remaining")]
    np.testing.assert_array_equal(found[0].positions, found[1].positions)
    np.testing.assert_array_equal(found[0].scores, found[1].scores)
    assert "index_model" not in cols["order0"].header and cols["remaining"].header["index_model"] == "remaining"


def test_auto_keeps_version_1_where_the_model_does_not_pay_for_its_header(dictionary, tmp_path):
    # One item cannot save the 28 bytes of the header field: the file is what version 1 writes.
    e = planted(2, 1)
    info = smic.compress(e, tmp_path / "auto.smic", dictionary=dictionary)
    smic.compress(e, tmp_path / "order0.smic", dictionary=dictionary, index_model="order0")
    assert info["format_version"] == 1 and info["index_model"] == "order0"
    assert (tmp_path / "auto.smic").read_bytes() == (tmp_path / "order0.smic").read_bytes()


def test_streaming_and_in_memory_writers_choose_and_write_the_same(dictionary, tmp_path):
    e = planted(3, 700)
    unit, _ = normalize_embeddings(e)
    codes = tuple(np.ascontiguousarray(a, dtype=np.int32) for a in dictionary._core.choose(unit, 1)[0])
    for model in ("auto", "remaining"):
        whole, streamed = tmp_path / f"whole_{model}.smic", tmp_path / f"streamed_{model}.smic"
        _core.write_collection(str(whole), e, dictionary._core, chunk_size=32, index_model=model)
        _core.write_collection_streaming(str(streamed), [e[:300], e[300:]], dictionary._core,
                                         chunk_size=32, batch_items=64, index_model=model)
        assert whole.read_bytes() == streamed.read_bytes()
        assert smic.open(whole, dictionary=dictionary).info()["format_version"] == 3
        given = tmp_path / f"given_{model}.smic"
        _core.write_collection_streaming(str(given), [e], dictionary._core, chunk_size=32,
                                         codes=codes, batch_items=64, index_model=model)
        assert given.read_bytes() == whole.read_bytes()


def test_appends_and_repack_keep_the_collections_model(dictionary, tmp_path):
    e, extra = planted(4, 600), planted(5, 90)
    path = tmp_path / "c.smic"
    smic.compress(e, path, dictionary=dictionary, index_model="remaining", chunk_size=64,
                  ids=[f"a{i}" for i in range(len(e))])
    col = smic.open(path, dictionary=dictionary)
    col.append(extra[:40], ids=[f"b{i}" for i in range(40)])                    # in place
    col = smic.open(path, dictionary=dictionary)
    col.append(extra[40:], ids=["a3"] + [f"c{i}" for i in range(49)], replace=True)  # rewrites
    col = smic.open(path, dictionary=dictionary)
    assert col.info()["format_version"] == 3 and col.info()["index_model"] == "remaining"
    assert len(col) == 600 + 90 - 1
    # Every batch holds the symbols the dictionary chooses for its items.
    reference = tmp_path / "reference.smic"
    smic.compress(extra, reference, dictionary=dictionary, index_model="order0")
    ref = smic.open(reference, dictionary=dictionary)
    np.testing.assert_array_equal(col["b0"], ref[0])
    np.testing.assert_array_equal(col["a3"], ref[40])
    np.testing.assert_array_equal(col["c48"], ref[89])
    before = col.embeddings()
    smic.open(path, dictionary=dictionary).repack()
    packed = smic.open(path, dictionary=dictionary)
    assert packed._batch_sizes() == [len(col)] and packed.info()["format_version"] == 3
    np.testing.assert_array_equal(packed.embeddings(), before)
    # A repacked version-1 file stays version 1: the model is the collection's, not the writer's.
    smic.compress(e, tmp_path / "v1.smic", dictionary=dictionary, index_model="order0")
    v1 = smic.open(tmp_path / "v1.smic", dictionary=dictionary)
    v1.append(extra, ids=[f"x{i}" for i in range(len(extra))])
    smic.open(tmp_path / "v1.smic", dictionary=dictionary).repack()
    assert smic.open(tmp_path / "v1.smic", dictionary=dictionary).info()["format_version"] == 1


def test_single_items_decode_through_checkpoints(dictionary, tmp_path):
    e = planted(6, 300)
    path = tmp_path / "c.smic"
    smic.compress(e, path, dictionary=dictionary, index_model="remaining", chunk_size=100)
    whole = smic.open(path, dictionary=dictionary).embeddings()
    col = smic.open(path, dictionary=dictionary)
    for i in [99, 17, 16, 15, 0, 250, 299, 200, 33]:
        np.testing.assert_array_equal(col[i], whole[i])


def test_bad_requests_and_headers_are_refused(dictionary, tmp_path):
    e = planted(7, 50)
    with pytest.raises(ValueError, match="index_model must be one of"):
        smic.compress(e, tmp_path / "x.smic", dictionary=dictionary, index_model="order1")
    paper = smic.Dictionary.fit(e, n_atoms=8, n_nonzero=2, n_iter=2, layout="paper")
    with pytest.raises(ValueError, match="smic layout"):
        smic.compress(e, tmp_path / "p.smic", dictionary=paper, index_model="remaining")
    assert smic.compress(e, tmp_path / "p.smic", dictionary=paper)["index_model"] == "order0"

    path = tmp_path / "c.smic"
    smic.compress(e, path, dictionary=dictionary, index_model="remaining")
    sections = read_sections(path, MAGIC)
    head = json.loads(sections[0].payload)

    def with_head(changes: dict, version: int) -> Path:
        out = tmp_path / f"bad_{version}_{len(changes)}.smic"
        new_head = {**head, **changes}
        payload = json.dumps(dict(sorted(new_head.items()))).encode()
        write_sections(out, MAGIC, [Section(b"HEAD", payload), *sections[1:]], version=version)
        return out

    assert smic.open(with_head({}, 3), dictionary=dictionary).info()["index_model"] == "remaining"
    with pytest.raises(smic.FormatError, match="needs format version 3"):
        smic.open(with_head({}, 1), dictionary=dictionary)
    with pytest.raises(smic.FormatError, match="unknown index_model"):
        smic.open(with_head({"index_model": "co-occurrence"}, 3), dictionary=dictionary)
    with pytest.raises(smic.FormatError, match="newer"):
        write = _core.encode_container(MAGIC, 3, [(s.tag, s.payload) for s in sections])
        bumped = bytearray(write)
        bumped[8] = FORMAT_VERSION + 1  # a version this library does not know yet
        (tmp_path / "next.smic").write_bytes(bytes(bumped))
        smic.open(tmp_path / "next.smic", dictionary=dictionary)


def test_info_cli_names_the_model(capsys):
    from smic_fast.cli import main

    assert main(["info", str(GOLDEN / "remaining.smic"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["index_model"] == "remaining" and info["format_version"] == 3
    assert main(["info", str(GOLDEN / "own_float16.smic")]) == 0
    assert "order0" in capsys.readouterr().out


def test_item_models_with_remaining_tables_code_what_item_bits_prices(dictionary):
    unit, _ = normalize_embeddings(planted(8, 400))
    codes = dictionary._core.choose(unit, 1)[0]
    order0 = dictionary._core.models
    remaining = order0.derive_remaining()
    assert (order0.index_model, remaining.index_model) == ("order0", "remaining")
    sizes = {}
    for models in (order0, remaining):
        data, offsets = models.encode(*codes, chunk_size=50)
        back = models.decode(data, offsets, 400, 50)
        np.testing.assert_array_equal(back[0], codes[0])
        np.testing.assert_array_equal(back[2], codes[2])
        # Ideal code lengths: each of the 8 chunks costs them plus its 56 to 64 flushed bits.
        extra = 8 * len(data) - models.item_bits(*codes).sum()
        assert 8 * 56 - 1 <= extra <= 8 * 64 + 4, extra
        sizes[models.index_model] = len(data)
    assert sizes["remaining"] < sizes["order0"]
