"""The `smic` command line through its real console script (subprocesses), on the tiny CLIP
model (built with onnx alone: runs without torch) and the scikit-image photos: every command, --json checked against smic.open, exit codes,
bad inputs, existing and unwritable outputs, Ctrl-C, append then info then decompress."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("skimage")

import smic_fast as smic  # noqa: E402

SMIC = shutil.which("smic", path=sysconfig.get_path("scripts")) or "smic"
PHOTO_NAMES = ("astronaut.png", "chelsea.png", "coffee.png", "camera.png", "rocket.jpg", "moon.png")


@pytest.fixture(scope="module")
def env(tiny_clip_home) -> dict[str, str]:
    """Environment of the subprocesses: SMIC_HOME holds the tiny model's towers."""
    return {**os.environ, "SMIC_HOME": str(tiny_clip_home)}


def skimage_photo(name: str) -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / name


@pytest.fixture
def photos(tmp_path) -> Path:
    """A folder of good photos, one of them in a subfolder."""
    folder = tmp_path / "photos"
    (folder / "cats").mkdir(parents=True)
    for name in PHOTO_NAMES:
        target = folder / ("cats" if name == "chelsea.png" else "") / name
        shutil.copy(skimage_photo(name), target)
    (folder / ".hidden.png").write_bytes(b"not looked at")
    return folder


def smic_run(env, *args, expect: int | None = 0, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([SMIC, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)
    if expect is not None:
        assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
    return result


def as_json(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout)  # stdout holds the JSON object and nothing else


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_compress_json_matches_the_file(env, photos, tmp_path):
    out = tmp_path / "photos.smic"
    summary = as_json(smic_run(env, "compress", photos, "-o", out, "--model", "tiny", "--json", "--atoms", "4"))
    col = smic.open(out)
    info = col.info()
    expected_ids = sorted(["cats/chelsea.png", *(n for n in PHOTO_NAMES if n != "chelsea.png")])
    assert col.ids == expected_ids and summary["items"] == len(PHOTO_NAMES)
    assert summary["skipped"] == []
    for key in ("file_bytes", "bits_per_item", "marginal_bits_per_item", "bits_per_pixel", "n_atoms"):
        assert summary[key] == pytest.approx(info[key]), key
    assert info["n_atoms"] == 4 and info["model"] == "tiny" and summary["file_bytes"] == out.stat().st_size
    # pixel counts come from the images: astronaut is 512 x 512
    assert 0 < info["bits_per_pixel"] < info["bits_per_item"] / (303 * 384)
    # the cosine it reports is the cosine of the file's embeddings to the encoder's output
    encoder = smic.ClipEncoder("tiny", cache=env["SMIC_HOME"])
    direct = encoder.encode_paths([photos / i for i in col.ids]).embeddings
    cosine = np.sum(col.embeddings() * direct, axis=1)
    assert cosine.mean() == pytest.approx(summary["cosine_mean"], abs=1e-4)
    assert np.percentile(cosine, 5) == pytest.approx(summary["cosine_p5"], abs=1e-4)
    assert set(summary["seconds"]) >= {"encode images", "total"} and summary["images_per_second"] > 0


def test_compress_quality_low_lands_at_the_low_end(env, photos, tmp_path):
    """--quality low: one atom per item from a small dictionary learned for it, a few bits."""
    out = tmp_path / "low.smic"
    summary = as_json(smic_run(env, "compress", photos, "-o", out, "--model", "tiny", "--json",
                               "--quality", "low", "--learn", "rate"))
    info = smic.open(out).info()
    assert info["n_nonzero"] == 1 and info["n_atoms"] <= 128 and summary["items"] == len(PHOTO_NAMES)
    assert "invalid choice" in smic_run(env, "compress", photos, "-o", out, "--learn", "x", expect=2).stderr
    # six photos cost their chunk's flush; the rate shows on a collection (embeddings, no photos)
    from problems import clustered_collection

    np.save(tmp_path / "e.npy", clustered_collection(np.random.default_rng(0), 3000, 64, 60))
    summary = as_json(smic_run(env, "compress", tmp_path / "e.npy", "-o", tmp_path / "e.smic", "--json",
                               "--quality", "low", "--iterations", "4"))
    assert summary["marginal_bits_per_item"] <= 8.0 and summary["cosine_mean"] > 0.6


def test_table_summary_and_python_m(env, photos, tmp_path):
    result = subprocess.run([sys.executable, "-m", "smic_fast", "compress", str(photos), "-o",
                             str(tmp_path / "a.smic"), "--model", "tiny"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for words in ("items written", "bits per item", "bits per pixel", "cosine mean", "images per second"):
        assert words in result.stdout
    assert "\r" not in result.stderr  # no progress bar when stderr is not a terminal


def test_bad_inputs_are_skipped_and_listed(env, photos, tmp_path):
    (photos / "broken.jpg").write_bytes(skimage_photo("rocket.jpg").read_bytes()[:2000])
    (photos / "notes.txt").write_text("a text file, not a photo")
    (photos / "empty.jpg").write_bytes(b"")
    out = tmp_path / "photos.smic"
    summary = as_json(smic_run(env, "compress", photos, "-o", out, "--model", "tiny", "--json", expect=3))
    reasons = {Path(s["path"]).name: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {"broken.jpg", "notes.txt", "empty.jpg"}
    assert "truncated" in reasons["broken.jpg"] and "not an image" in reasons["notes.txt"]
    assert "empty" in reasons["empty.jpg"]
    assert len(smic.open(out)) == len(PHOTO_NAMES) == summary["items"]


def test_nothing_readable_fails_and_writes_nothing(env, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (folder / "b.png").write_bytes(b"")
    result = smic_run(env, "compress", folder, "-o", tmp_path / "out.smic", "--model", "tiny", expect=1)
    assert "none of the 2 input files could be read" in result.stderr
    assert not (tmp_path / "out.smic").exists()


def test_existing_output_needs_force(env, photos, tmp_path):
    out = tmp_path / "photos.smic"
    out.write_bytes(b"precious")
    result = smic_run(env, "compress", photos, "-o", out, "--model", "tiny", expect=2)
    assert "--force" in result.stderr and out.read_bytes() == b"precious"
    smic_run(env, "compress", photos, "-o", out, "--model", "tiny", "--force")
    assert len(smic.open(out)) == len(PHOTO_NAMES)


@pytest.mark.parametrize("where", ["missing-folder", "parent-is-a-file", "proc"])
def test_unwritable_output_fails_and_writes_nothing(env, photos, tmp_path, where):
    if where == "proc" and not Path("/proc/self").exists():
        pytest.skip("needs Linux /proc")
    target = {"missing-folder": tmp_path / "nope" / "out.smic",
              "parent-is-a-file": tmp_path / "file.txt" / "out.smic",
              "proc": Path("/proc/smic-test-out.smic")}[where]
    (tmp_path / "file.txt").write_text("x")
    result = smic_run(env, "compress", photos, "-o", target, "--model", "tiny", expect=1)
    assert "smic compress:" in result.stderr and "Traceback" not in result.stderr
    assert not target.exists()


def test_usage_errors(env, photos, tmp_path):
    out = tmp_path / "x.smic"
    assert smic_run(env, "compress", photos, "-o", out, "--atoms", "0", expect=2).returncode == 2
    assert "does not exist" in smic_run(env, "compress", tmp_path / "nowhere", "-o", out, expect=2).stderr
    assert smic_run(env, "compress", photos, expect=2).returncode == 2  # no -o
    assert smic_run(env, "decompress", tmp_path / "x.smic", expect=2).returncode == 2  # nothing to write
    assert not out.exists()


def test_missing_model_names_the_fix(env, photos, tmp_path):
    result = smic_run(env, "compress", photos, "-o", tmp_path / "x.smic", "--model", "ViT-B-16", expect=1)
    assert "smic export-clip" in result.stderr and "Traceback" not in result.stderr
    # --int8 looks for the int8 export (none in an empty cache) and says how to make it
    empty = {**env, "SMIC_HOME": str(tmp_path / "empty-home")}
    result = smic_run(empty, "compress", photos, "-o", tmp_path / "x.smic", "--model", "tiny", "--int8", expect=1)
    assert "smic export-clip --model tiny --precision int8" in result.stderr and not (tmp_path / "x.smic").exists()


def test_ctrl_c_leaves_no_partial_file(env, tmp_path):
    from PIL import Image

    folder = tmp_path / "many"
    folder.mkdir()
    # Large smooth pictures: small files, but each takes milliseconds to decode and resize, so
    # encoding lasts many seconds (tiny pictures encoded in ~2 s, sometimes before the signal).
    gradient = np.linspace(0, 255, 1600, dtype=np.float32)
    pixels = np.stack([np.add.outer(gradient, gradient) / 2, np.tile(gradient, (1600, 1)),
                       np.tile(gradient[:, None], (1, 1600))], axis=-1).astype(np.uint8)
    Image.fromarray(pixels).save(folder / "0.png")
    for i in range(1, 1000):  # interrupted soon after the start
        shutil.copy(folder / "0.png", folder / f"{i}.png")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    process = subprocess.Popen([SMIC, "-v", "compress", str(folder), "-o", str(out_dir / "x.smic"), "--model",
                                "tiny"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               # A shell's background job (`make test &`, nohup) ignores SIGINT, and Python
                               # keeps an inherited SIG_IGN: give the child the default, as a terminal would.
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    line = ""
    while "ClipEncoder" not in line and time.monotonic() < deadline:  # the model is loaded: encoding starts
        line = process.stderr.readline()
    time.sleep(0.3)
    assert process.poll() is None, "compress finished before the signal: the test needs a longer workload"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and leftovers(out_dir) == []


def test_append_info_decompress(env, photos, tmp_path):
    out = tmp_path / "photos.smic"
    smic_run(env, "compress", photos, "-o", out, "--model", "tiny", "--atoms", "4")
    before = smic.open(out).embeddings()
    more = tmp_path / "more"
    more.mkdir()
    for name in ("coins.png", "horse.png"):
        shutil.copy(skimage_photo(name), more / name)
    added = as_json(smic_run(env, "append", out, more, "--json"))  # model from the file's header
    assert added["items_added"] == 2 and added["items"] == len(PHOTO_NAMES) + 2
    col = smic.open(out)
    assert col.ids[-2:] == ["coins.png", "horse.png"]
    np.testing.assert_array_equal(col.embeddings()[:len(before)], before)  # earlier items untouched

    info = as_json(smic_run(env, "info", out, "--json"))
    assert info["items"] == len(col) and info["file_bytes"] == out.stat().st_size
    assert info["bits_per_item"] == pytest.approx(col.info()["bits_per_item"])
    assert "items" in smic_run(env, "info", out).stdout

    npy = tmp_path / "emb.npy"
    summary = as_json(smic_run(env, "decompress", out, "--embeddings", npy, "--json"))
    np.testing.assert_array_equal(np.load(npy), col.embeddings())
    assert json.loads(Path(summary["ids"]).read_text()) == col.ids
    assert Path(summary["ids"]) == tmp_path / "emb.ids.json"
    smic_run(env, "decompress", out, "--embeddings", npy, expect=2)  # exists: --force
    one = as_json(smic_run(env, "decompress", out, "--embeddings", npy, "--ids", "coins.png", "--force", "--json"))
    assert one["items"] == 1
    np.testing.assert_array_equal(np.load(npy)[0], col["coins.png"])


def test_residual_step_refines_and_append_keeps_it(env, photos, tmp_path):
    plain = as_json(smic_run(env, "compress", photos, "-o", tmp_path / "a.smic", "--model", "tiny", "--atoms", "4",
                             "--json"))
    out = tmp_path / "r.smic"
    refined = as_json(smic_run(env, "compress", photos, "-o", out, "--model", "tiny", "--atoms", "4",
                               "--residual-step", "0.01", "--json"))
    assert refined["residual_step"] == 0.01 and plain["residual_step"] is None
    assert refined["cosine_mean"] > max(plain["cosine_mean"], 0.999)
    assert refined["marginal_bits_per_item"] > plain["marginal_bits_per_item"]
    info = as_json(smic_run(env, "info", out, "--json"))
    assert info["format_version"] == 2 and info["residual_step"] == 0.01
    assert "residual step" in smic_run(env, "info", out).stdout
    more = tmp_path / "more"
    more.mkdir()
    shutil.copy(skimage_photo("horse.png"), more / "horse.png")
    added = as_json(smic_run(env, "append", out, more, "--json"))
    assert added["cosine_mean"] > 0.999  # the appended item is refined with the same step
    for bad in ("0", "2", "1e-6", "x"):
        result = smic_run(env, "compress", photos, "-o", tmp_path / "bad.smic", "--residual-step", bad, expect=2)
        assert "--residual-step" in result.stderr
    assert not (tmp_path / "bad.smic").exists()


def test_append_same_id_needs_replace(env, photos, tmp_path):
    out = tmp_path / "photos.smic"
    smic_run(env, "compress", photos, "-o", out, "--model", "tiny", "--atoms", "4")
    col = smic.open(out)
    before = dict(zip(col.ids, col.embeddings()))
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(skimage_photo("horse.png"), again / "coffee.png")  # same id, another picture
    result = smic_run(env, "append", out, again, expect=2)
    assert "coffee.png" in result.stderr and "--replace" in result.stderr
    assert smic.open(out).ids == col.ids
    summary = as_json(smic_run(env, "append", out, again, "--replace", "--json"))
    assert summary["items_replaced"] == 1 and summary["items"] == len(col)
    after = smic.open(out)
    assert sorted(after.ids) == sorted(col.ids)
    for item_id, embedding in before.items():
        if item_id == "coffee.png":
            assert float(after[item_id] @ embedding) < 0.9999
        else:
            np.testing.assert_array_equal(after[item_id], embedding)


def test_dictionary_fit_info_and_shared_compress(env, photos, tmp_path, rng):
    E = rng.standard_normal((300, 32)).astype(np.float32)
    np.save(tmp_path / "E.npy", E)
    d_path = tmp_path / "d.smicd"
    fit = as_json(smic_run(env, "dictionary", "fit", tmp_path / "E.npy", "-o", d_path, "--atoms", "16", "--json"))
    assert fit["n_atoms"] == 16 and fit["trained_on"] == 300 and fit["dim"] == 32
    info = as_json(smic_run(env, "dictionary", "info", d_path, "--json"))
    assert info["hash"] == smic.Dictionary.load(d_path).hash == fit["hash"]

    out = tmp_path / "shared.smic"
    summary = as_json(smic_run(env, "compress", photos, "-o", out, "--model", "tiny", "--dictionary", d_path,
                               "--json"))
    assert summary["shared_dictionary"] is True
    assert "dictionary" in smic_run(env, "info", out, expect=1).stderr  # needs it
    shared = as_json(smic_run(env, "info", out, "--dictionary", d_path, "--json"))
    assert shared["shared_dictionary"] and shared["items"] == len(PHOTO_NAMES)

    from_photos = as_json(smic_run(env, "dictionary", "fit", photos, "-o", tmp_path / "p.smicd", "--model",
                                   "tiny", "--atoms", "4", "--json"))
    assert from_photos["n_atoms"] == 4 and from_photos["trained_on"] == len(PHOTO_NAMES)


@pytest.mark.parametrize("content", [b"", b"\x93NUMPY garbage", b"plain text"])
def test_dictionary_fit_bad_npy(env, tmp_path, content):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(content)
    result = smic_run(env, "dictionary", "fit", bad, "-o", tmp_path / "d.smicd", expect=1)
    assert "bad.npy" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "d.smicd").exists()


@pytest.mark.parametrize("damage", ["truncate", "flip", "text"])
def test_commands_refuse_damaged_collections(env, photos, tmp_path, damage):
    out = tmp_path / "photos.smic"
    smic_run(env, "compress", photos, "-o", out, "--model", "tiny")
    data = bytearray(out.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0x55
    else:
        data = bytearray(b"hello, I am not a collection\n")
    out.write_bytes(bytes(data))
    for args in (("info", out), ("decompress", out, "--embeddings", tmp_path / "e.npy"), ("append", out, photos)):
        result = smic_run(env, *args, expect=1)
        assert "Traceback" not in result.stderr and str(out) in result.stderr
    assert out.read_bytes() == bytes(data) and not (tmp_path / "e.npy").exists()


def test_doctor_and_version(env):
    report = as_json(smic_run(env, "doctor", "--json"))
    assert "CPUExecutionProvider" in report["onnxruntime"]["providers"]
    assert any(name.startswith("tiny--") for name in report["exported_models"])
    assert report["smic_fast"] == smic.__version__
    assert smic_run(env, "--version").stdout.strip() == f"smic-fast {smic.__version__}"
    help_text = smic_run(env, "compress", "--help").stdout
    assert "exit codes" in help_text and "--quality" in help_text
