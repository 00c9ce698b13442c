"""smic_fast.distributed on one local Ray cluster (2 CPUs, shared by the whole module) with the
tiny CLIP model: a distributed run decodes to exactly the single-process run's embeddings and
`smic merge` of its shards is byte for byte the single-process file (same dictionary), for
photo folders, webdataset tars and clip-retrieval folders; a killed actor, an interrupted run
and bad images change nothing else. Every test has a timeout (pytest-timeout)."""
from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("pyarrow")
pytest.importorskip("pytest_timeout")
pytest.importorskip("skimage")

import smic_fast as smic  # noqa: E402
from smic_fast import distributed  # noqa: E402
from smic_fast.cli import main  # noqa: E402
from smic_fast.store.manifest import find_manifest, merge  # noqa: E402

pytestmark = pytest.mark.timeout(90)

PHOTO_NAMES = ("astronaut.png", "chelsea.png", "coffee.png", "camera.png", "rocket.jpg", "moon.png")
COPIES = 32  # 192 photos and a broken one: 4 shards of 64 (the last of 1)
SHARD = 64


def skimage_photo(name: str) -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / name


@pytest.fixture(scope="module")
def cluster(tiny_clip_home):
    """One local cluster for the module: 2 CPUs, no dashboard, no usage reporting; the tiny
    model's cache in SMIC_HOME before the workers start (they inherit it)."""
    saved = {k: os.environ.get(k) for k in ("SMIC_HOME", "RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE")}
    os.environ.update(SMIC_HOME=str(tiny_clip_home), RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024)
    yield
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """192 copies of the scikit-image photos in two folders, plus one truncated JPEG."""
    folder = tmp_path_factory.mktemp("dist") / "photos"
    for i in range(COPIES * len(PHOTO_NAMES)):
        name = PHOTO_NAMES[i % len(PHOTO_NAMES)]
        target = folder / ("b" if i % 2 else "a") / f"{i:04d}_{name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(skimage_photo(name), target)
    (folder / "a" / "0007_broken.jpg").write_bytes(skimage_photo("rocket.jpg").read_bytes()[:3000])
    return folder


@pytest.fixture(scope="module")
def shared(photos, tmp_path_factory, cluster) -> tuple[Path, Path]:
    """(the shared dictionary, the single-process file coded with it) for the photos."""
    root = tmp_path_factory.mktemp("single")
    encoder = smic.ClipEncoder("tiny")
    sample = encoder.encode_paths(sorted(str(p) for p in photos.rglob("*.png"))[:60]).embeddings
    dictionary = root / "shared.smicd"
    smic.Dictionary.fit(sample, n_atoms=16).save(dictionary)
    single = root / "single.smic"
    assert main(["compress", str(photos), "-o", str(single), "--model", "tiny", "--dictionary", str(dictionary),
                 "-q", "--json"]) == 3  # written, one input skipped
    return dictionary, single


def run(photos, out, dictionary, **kwargs):
    return distributed.compress([str(photos)], out, model="tiny", dictionary=dictionary, shard_size=SHARD, **kwargs)


def assert_same_as_single(out: Path, single: Path, dictionary: Path, tmp_path: Path) -> None:
    """The sharded result decodes to the single-process embeddings exactly, and merges to its bytes."""
    one = smic.open(single, dictionary=dictionary)
    many = smic.open(out)  # OUT.smic while only OUT.smic.d exists
    assert many.ids == one.ids
    np.testing.assert_array_equal(many.embeddings(), one.embeddings())
    merged = merge(out, tmp_path / "merged.smic")
    assert merged.read_bytes() == single.read_bytes()


def test_photos_exact_and_bad_image_reported(photos, shared, tmp_path):
    dictionary, single = shared
    out = tmp_path / "photos.smic"
    summary = run(photos, out, dictionary, workers=2)
    assert summary["workers"] == 2 and summary["cpus_per_actor"] < 1  # room left for read tasks
    assert summary["items"] == COPIES * len(PHOTO_NAMES) and summary["shards"] == 4
    assert [s["id"] for s in summary["skipped"]] == ["a/0007_broken.jpg"]
    assert summary["skipped"][0]["reason"].startswith("truncated or corrupt image")
    errors = [json.loads(line) for line in (tmp_path / "photos.smic.d" / "errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in errors] == ["a/0007_broken.jpg"] and "truncated" in errors[0]["reason"]
    assert_same_as_single(out, single, dictionary, tmp_path)
    # every CLI command reads the folder as one collection; smic merge writes the same bytes
    assert main(["info", str(out.with_name("photos.smic.d")), "--json"]) == 0
    assert main(["merge", str(out.with_name("photos.smic.d")), "-o", str(tmp_path / "cli.smic"), "-q"]) == 0
    assert (tmp_path / "cli.smic").read_bytes() == single.read_bytes()
    with pytest.raises(ValueError, match="read-only"):
        smic.open(out).append(np.ones((1, 32), np.float32))


def test_killed_actor_costs_a_retry(photos, shared, tmp_path):
    dictionary, single = shared
    marker = tmp_path / "killed"
    out = tmp_path / "killed.smic"
    summary = run(photos, out, dictionary, workers=1, _fault=str(marker))
    assert marker.read_text() == "killed"  # an actor did die (os._exit) mid-run
    assert summary["items"] == COPIES * len(PHOTO_NAMES)
    assert_same_as_single(out, single, dictionary, tmp_path)


def test_interrupted_run_resumes_to_the_same_bytes(photos, shared, tmp_path):
    dictionary, single = shared
    out = tmp_path / "resumed.smic"
    folder = tmp_path / "resumed.smic.d"
    with pytest.raises(KeyboardInterrupt):
        run(photos, out, dictionary, _stop_after=2)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert not manifest["complete"] and len(manifest["shards"]) == 2
    with pytest.raises(smic.FormatError, match="incomplete run"):
        smic.open(folder)
    kept = {s["file"]: (folder / s["file"]).stat().st_mtime_ns for s in manifest["shards"]}
    # a shard written but never listed is redone; which two shards finished first depends on
    # the scheduler (the one-item last shard can beat the others), so take one not listed
    unlisted = sorted({f"part-{i:05d}.smic" for i in range(4)} - set(kept))[0]
    (folder / unlisted).write_bytes(b"half a shard")
    summary = run(photos, out, dictionary)
    assert summary["shards_resumed"] == 2
    assert {f: (folder / f).stat().st_mtime_ns for f in kept} == kept  # not rewritten
    assert_same_as_single(out, single, dictionary, tmp_path)
    # another plan in the same folder is refused, not mixed in
    with pytest.raises(FileExistsError, match="other inputs or options"):
        distributed.compress([str(photos)], out, model="tiny", dictionary=dictionary, shard_size=SHARD + 1)


def test_damaged_shard_is_refused(photos, shared, tmp_path):
    dictionary, _ = shared
    out = tmp_path / "damaged.smic"
    run(photos, out, dictionary)
    part = tmp_path / "damaged.smic.d" / "part-00001.smic"
    data = bytearray(part.read_bytes())
    data[-3] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(smic.FormatError, match="part-00001.smic does not match the manifest"):
        smic.open(out)
    assert main(["info", str(out)]) == 1


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    import io

    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_webdataset_tars_match_single_process(shared, tmp_path):
    dictionary, _ = shared
    shards = tmp_path / "shards"
    shards.mkdir()
    for t in range(3):
        members = []
        for j in range(12):
            name = PHOTO_NAMES[(t + j) % len(PHOTO_NAMES)]
            key = f"{t:05d}{j:04d}"
            members += [(f"{key}.{name.split('.')[1]}", skimage_photo(name).read_bytes()),
                        (f"{key}.json", b'{"caption": "x"}')]
        if t == 1:
            members[2] = (members[2][0], b"\x89PNG\r\n\x1a\n broken")  # one corrupt image
        write_tar(shards / f"{t:05d}.tar", members)
    whole = (shards / "00002.tar").read_bytes()
    (shards / "00003.tar").write_bytes(whole[:len(whole) // 2])  # truncated
    pattern = str(shards / "{00000..00003}.tar")
    single = tmp_path / "single.smic"
    assert main(["compress", pattern, "-o", str(single), "--model", "tiny", "--dictionary", str(dictionary),
                 "-q"]) == 3
    out = tmp_path / "tars.smic"
    summary = distributed.compress([pattern], out, model="tiny", dictionary=dictionary)
    assert summary["items"] == 35 and summary["shards"] == 4
    reasons = {s["id"] or s["path"]: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {"000010001", str(shards / "00003.tar")}
    assert "truncated tar" in reasons[str(shards / "00003.tar")]
    assert merge(out, tmp_path / "merged.smic").read_bytes() == single.read_bytes()
    np.testing.assert_array_equal(smic.open(out).embeddings(), smic.open(single, dictionary=dictionary).embeddings())


def test_clip_retrieval_folder_with_a_learned_dictionary(tmp_path, cluster):
    """No encoding: the parts are coded as they are (float16), the dictionary learned on the same
    sample as in one process, so even the learned dictionary is the single-process one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    folder = tmp_path / "clip"
    (folder / "img_emb").mkdir(parents=True)
    (folder / "metadata").mkdir()
    for n, rows in enumerate((700, 500)):
        np.save(folder / "img_emb" / f"img_emb_{n}.npy", rng.standard_normal((rows, 48)).astype(np.float16))
        paths = [f"s3://bucket/{n}/{i:06d}.jpg" for i in range(rows)]
        pq.write_table(pa.table({"image_path": paths, "caption": ["c"] * rows}),
                       folder / "metadata" / f"metadata_{n}.parquet")
    single = tmp_path / "single.smic"
    assert main(["compress", str(folder), "-o", str(single), "--atoms", "32", "--sample", "900", "-q"]) == 0
    out = tmp_path / "clip.smic"
    summary = distributed.compress([str(folder)], out, model="none", n_atoms=32, sample_size=900)
    assert summary["items"] == 1200 and summary["shards"] == 2
    one, many = smic.open(single), smic.open(out)
    assert many.dictionary.hash == one.dictionary.hash  # the same dictionary learned
    assert many.ids == one.ids and many.ids[700] == "s3://bucket/1/000000.jpg"
    np.testing.assert_array_equal(many.embeddings(), one.embeddings())
    merged = merge(out, tmp_path / "merged.smic", embed_dictionary=True)
    assert smic.open(merged).ids == one.ids
    np.testing.assert_array_equal(smic.open(merged).embeddings(), one.embeddings())
    assert find_manifest(folder) is None
    np.save(folder / "img_emb" / "img_emb_1.npy", np.ones((499, 48), np.float16))  # a row short
    with pytest.raises(ValueError, match="has 500 rows for 499 embeddings"):
        distributed.compress([str(folder)], tmp_path / "bad.smic", n_atoms=32)
    assert not (tmp_path / "bad.smic.d").exists()


def test_cli_learns_the_single_process_dictionary(photos, tmp_path, cluster, capsys):
    """`smic compress --ray` learning its own dictionary (its sample encoded on the cluster
    first): the dictionary and the decoded embeddings are the single-process run's."""
    single = tmp_path / "single.smic"
    args = [str(photos), "--glob", "*astronaut*", "--model", "tiny", "--atoms", "8", "-q", "--json"]
    assert main(["compress", *args, "-o", str(single)]) == 0
    capsys.readouterr()
    out = tmp_path / "learned.smic"
    assert main(["compress", *args, "-o", str(out), "--ray", "--shard-size", "10"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["items"] == 32 and summary["shards"] == 4 and summary["skipped"] == []
    one, many = smic.open(single), smic.open(out)
    assert many.dictionary.hash == one.dictionary.hash and many.ids == one.ids
    np.testing.assert_array_equal(many.embeddings(), one.embeddings())
    assert main(["compress", *args, "-o", str(out), "--ray", "--shard-size", "11"]) == 2  # another plan
    assert "other inputs or options" in capsys.readouterr().err
