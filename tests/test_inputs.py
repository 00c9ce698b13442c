"""The inputs of smic compress beside photos and .npy (webdataset tars, clip-retrieval folders),
without Ray, and the manifest reader's refusals: each bad input is a clear error or a reported
skip, never a crash or a partial output."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

import smic_fast as smic
from smic_fast.cli import main
from smic_fast.sources.inputs import classify, expand_braces, find_embedding_parts, scan_tar
from smic_fast.store.manifest import Manifest, item_norms, open_sharded, pairwise_sum


def test_brace_patterns():
    assert expand_braces("s/{00008..00011}.tar") == ["s/00008.tar", "s/00009.tar", "s/00010.tar", "s/00011.tar"]
    assert expand_braces("{a,b}/{1..2}.tar") == ["a/1.tar", "a/2.tar", "b/1.tar", "b/2.tar"]
    assert expand_braces("plain.tar") == ["plain.tar"]
    with pytest.raises(ValueError, match="empty brace range"):
        expand_braces("{3..1}.tar")


def test_kinds_are_not_mixed(tmp_path):
    assert classify(["x/{0..3}.tar"]) == "webdataset"
    assert classify(["a.jpg", "folder"]) == "photos"
    with pytest.raises(ValueError, match="one kind per call"):
        classify(["a.tar", "b.jpg"])


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_tar_scan_finds_samples_and_damage(tmp_path):
    good = tar_bytes([("a/k1.jpg", b"x" * 600), ("a/k1.json", b"{}"), ("k2.txt", b"caption only"),
                      ("k3.seg.png", b"y" * 10)])
    (tmp_path / "good.tar").write_bytes(good)
    scan = scan_tar(str(tmp_path / "good.tar"))
    assert scan.error is None and scan.samples == [("a/k1", "a/k1.jpg")] and scan.without_image == ["k2", "k3"]
    (tmp_path / "cut.tar").write_bytes(good[:700])  # inside the first member's data
    assert "truncated tar" in scan_tar(str(tmp_path / "cut.tar")).error
    (tmp_path / "junk.tar").write_bytes(b"\x00\x01 not a tar" * 100)
    junk = scan_tar(str(tmp_path / "junk.tar"))
    assert junk.error is not None and junk.samples == []


def clip_folder(root: Path, rows=(30, 20), dtype=np.float16, ids=None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    (root / "img_emb").mkdir(parents=True)
    (root / "metadata").mkdir()
    for n, count in enumerate(rows):
        np.save(root / "img_emb" / f"img_emb_{n}.npy", rng.standard_normal((count, 16)).astype(dtype))
        names = ids[n] if ids else [f"{n}/{i}.jpg" for i in range(count)]
        pq.write_table(pa.table({"image_path": names}), root / "metadata" / f"metadata_{n}.parquet")
    return root


def test_clip_retrieval_folder_in_one_process(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    folder = clip_folder(tmp_path / "clip")
    assert [p.number for p in find_embedding_parts(folder)] == [0, 1]
    out = tmp_path / "c.smic"
    assert main(["compress", str(folder), "-o", str(out), "--atoms", "8", "-q", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    col = smic.open(out)
    assert summary["items"] == 50 and col.ids[30] == "1/0.jpg" and col.dim == 16


@pytest.mark.parametrize("damage, message", [
    ("rows", "has 20 rows for 19 embeddings"),
    ("parquet", "cannot read its image_path column"),
    ("npy", "not a readable .npy array"),
    ("metadata", "has no metadata file"),
])
def test_bad_clip_retrieval_parts_are_named(tmp_path, capsys, damage, message):
    pytest.importorskip("pyarrow")
    folder = clip_folder(tmp_path / "clip")
    part = folder / "img_emb" / "img_emb_1.npy"
    if damage == "rows":
        np.save(part, np.ones((19, 16), np.float16))
    elif damage == "parquet":
        (folder / "metadata" / "metadata_1.parquet").write_bytes(b"PAR1 broken")
    elif damage == "npy":
        part.write_bytes(part.read_bytes()[:100])
    else:
        (folder / "metadata" / "metadata_1.parquet").unlink()
    out = tmp_path / "c.smic"
    assert main(["compress", str(folder), "-o", str(out), "-q"]) == 1
    assert message in capsys.readouterr().err and not out.exists()


def test_tars_in_one_process(tmp_path, tiny_clip_home, monkeypatch, capsys):
    pytest.importorskip("skimage")
    import skimage

    monkeypatch.setenv("SMIC_HOME", str(tiny_clip_home))
    data = Path(skimage.__file__).parent / "data"
    members = [(f"s{i}.png", (data / name).read_bytes()) for i, name in enumerate(["astronaut.png", "coffee.png"])]
    (tmp_path / "0.tar").write_bytes(tar_bytes(members + [("s2.jpg", b"\xff\xd8 not a jpeg")]))
    (tmp_path / "1.tar").write_bytes(tar_bytes([("t0.png", (data / "camera.png").read_bytes())])[:1000])
    out = tmp_path / "t.smic"
    assert main(["compress", str(tmp_path / "{0..1}.tar"), "-o", str(out), "--model", "tiny", "--atoms", "2",
                 "--json", "-q"]) == 3
    summary = json.loads(capsys.readouterr().out)
    assert smic.open(out).ids == ["s0", "s1"]
    reasons = {s["path"]: s["reason"] for s in summary["skipped"]}
    assert any("s2.jpg" in p for p in reasons) and "truncated tar" in reasons[str(tmp_path / "1.tar")]


def test_norms_are_the_cores(rng, tmp_path):
    """The merge's mean norm is summed as the core sums it: equal to a written file's header."""
    for n in (5, 130, 1000):
        E = (rng.standard_normal((n, 77)) * rng.uniform(0.1, 9, (n, 1))).astype(np.float32)
        smic.compress(E, tmp_path / "n.smic", n_atoms=4)
        header = smic.open(tmp_path / "n.smic").header
        assert float(pairwise_sum(item_norms(E))) / n == header["mean_norm"]


def test_bad_manifests_are_refused(tmp_path):
    folder = tmp_path / "x.smic.d"
    folder.mkdir()
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(smic.FormatError, match="not a readable smic manifest"):
        smic.open(folder)
    (folder / "manifest.json").write_text(json.dumps({"format": "smic-manifest", "version": 99}))
    with pytest.raises(smic.FormatError, match="manifest version 99"):
        open_sharded(tmp_path / "x.smic")
    (folder / "manifest.json").write_text(json.dumps({"format": "smic-manifest", "version": 1, "shards": [{}]}))
    with pytest.raises(smic.FormatError, match="damaged manifest"):
        Manifest.load(folder / "manifest.json")
    assert main(["info", str(folder)]) == 1


def test_equal_dtype_objects_are_accepted(rng, tmp_path):
    """Arrays from Arrow (Ray Data batches) carry a float32 descriptor equal to numpy's but not
    the same object; the core used to refuse them ("must have dtype float32, got float32")."""
    E = rng.standard_normal((40, 8)).astype(np.float32)
    other = E.astype(np.dtype("<f4").newbyteorder("="))
    assert other.dtype is not np.dtype(np.float32) and other.dtype == np.float32
    smic.compress(E, tmp_path / "a.smic", n_atoms=4)
    smic.compress(other, tmp_path / "b.smic", n_atoms=4)
    assert (tmp_path / "a.smic").read_bytes() == (tmp_path / "b.smic").read_bytes()
    with pytest.raises(ValueError, match="got dtype >f4"):  # byte-swapped rows are still refused
        smic.compress(E.astype(">f4"), tmp_path / "c.smic", n_atoms=4)
