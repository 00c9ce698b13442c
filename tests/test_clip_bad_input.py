"""Bad input: every kind of broken or unusual image file is converted or reported (path and
reason) and skipped, and the rest of the collection is still encoded."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smic_fast.encode.images import ImageLoadError, Preprocess, load_image, to_rgb


def _photo(size=(96, 64)) -> Image.Image:
    yy, xx = np.mgrid[0:size[1], 0:size[0]]
    rgb = np.stack([xx * 255 // size[0], yy * 255 // size[1], (xx * yy) % 256], -1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def _reason(path) -> str:
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert info.value.path == os.fspath(path)
    assert str(path) in str(info.value)
    return info.value.reason


# -- refused ----------------------------------------------------------------------------------
def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    assert "empty" in _reason(p)


def test_text_file(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture\n" * 20)
    assert "not an image" in _reason(p)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    _photo((256, 256)).save(buf, "JPEG", quality=90)
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert "truncated" in _reason(p)


def test_corrupt_png(tmp_path):
    buf = io.BytesIO()
    _photo().save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[60:120] = b"\x00" * 60  # inside the IDAT stream
    p = tmp_path / "corrupt.png"
    p.write_bytes(bytes(data))
    assert "corrupt" in _reason(p)


def test_missing_file_directory_and_dangling_link(tmp_path):
    assert "not found" in _reason(tmp_path / "nope.jpg")
    (tmp_path / "folder.jpg").mkdir()
    assert "directory" in _reason(tmp_path / "folder.jpg")
    link = tmp_path / "dangling.jpg"
    link.symlink_to(tmp_path / "gone.jpg")
    assert "dangling" in _reason(link)


def test_decompression_bomb(tmp_path, monkeypatch):
    p = tmp_path / "bomb.png"
    Image.new("L", (200, 200)).save(p)  # 40,000 pixels: over twice the limit set below
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    assert "decompression bomb" in _reason(p)


# -- converted --------------------------------------------------------------------------------
def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    _photo().convert("CMYK").save(p, quality=95)
    with Image.open(p) as im:
        assert im.mode == "CMYK"
    out = load_image(p)
    assert out.mode == "RGB" and out.size == (96, 64)
    diff = np.abs(np.asarray(out, np.int16) - np.asarray(_photo(), np.int16))
    assert diff.mean() < 6


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    p = tmp_path / "deep.png"
    values = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    Image.fromarray(values).save(p)
    with Image.open(p) as im:
        assert im.mode.startswith("I")
    out = np.asarray(load_image(p))
    assert out.shape == (48, 64, 3)
    np.testing.assert_allclose(out[..., 0], np.rint(values / 257.0), atol=1)
    assert out.max() == 255 and out.min() == 0 and 100 < out.mean() < 155  # not all white


def test_palette_png_with_transparency(tmp_path):
    p = tmp_path / "palette.png"
    im = Image.new("P", (40, 30), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (0, 0, 20, 30))  # left half red, right half index 0 = transparent black
    im.info["transparency"] = 0
    im.save(p, transparency=0)
    out = np.asarray(load_image(p))
    assert tuple(out[10, 5]) == (255, 0, 0)
    assert tuple(out[10, 35]) == (255, 255, 255)  # transparent -> white, not black


def test_rgba_and_la(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 1] = 200
    rgba[:, :10, 3] = 255  # left opaque green, right fully transparent
    p = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(p)
    out = np.asarray(load_image(p))
    assert tuple(out[0, 0]) == (0, 200, 0) and tuple(out[0, 15]) == (255, 255, 255)
    la = Image.fromarray(np.stack([np.full((8, 8), 50, np.uint8), np.full((8, 8), 255, np.uint8)], -1), "LA")
    assert tuple(np.asarray(to_rgb(la))[0, 0]) == (50, 50, 50)


def test_greyscale_and_1_bit(tmp_path):
    p = tmp_path / "grey.png"
    Image.new("L", (10, 10), 77).save(p)
    assert tuple(np.asarray(load_image(p))[0, 0]) == (77, 77, 77)
    q = tmp_path / "bits.png"
    Image.new("1", (10, 10), 1).save(q)
    assert tuple(np.asarray(load_image(q))[0, 0]) == (255, 255, 255)


def test_exif_rotation_is_applied(tmp_path):
    photo = _photo((96, 64))
    p = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    photo.save(p, quality=95, exif=exif)
    upright = photo.transpose(Image.Transpose.ROTATE_270)  # what a viewer shows
    reference = tmp_path / "upright.jpg"
    upright.save(reference, quality=95)
    out = load_image(p)
    assert out.size == (64, 96)
    diff = np.abs(np.asarray(out, np.int16) - np.asarray(load_image(reference), np.int16))
    assert diff.mean() < 4
    unrotated = np.asarray(photo.rotate(90, expand=True), np.int16)  # the wrong way round
    assert np.abs(np.asarray(out, np.int16) - unrotated).mean() > 20


def test_animated_gif_gives_first_frame(tmp_path):
    p = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(p, save_all=True, append_images=frames[1:])
    assert tuple(np.asarray(load_image(p))[0, 0]) == (255, 0, 0)


def test_preprocess_accepts_any_mode():
    pre = Preprocess(image_size=32)
    for mode in ("L", "RGBA", "CMYK", "P", "I;16", "F", "1"):
        im = _photo().convert("L").convert(mode) if mode in ("I;16", "F") else _photo().convert(mode)
        out = pre(im)
        assert out.shape == (3, 32, 32) and out.dtype == np.float32 and np.isfinite(out).all()


# -- the collection goes on ---------------------------------------------------------------------
def test_encoder_skips_and_reports_and_encodes_the_rest(tmp_path, monkeypatch, tiny_clip_home):
    pytest.importorskip("onnxruntime")
    from smic_fast.encode.clip_onnx import ClipEncoder

    good = []
    for i in range(5):
        p = tmp_path / f"good{i}.jpg"
        _photo((90 + 7 * i, 70)).save(p)
        good.append(str(p))
    bad = {
        "empty.jpg": b"",
        "text.png": b"hello, world\n",
        "cut.jpg": Path(good[0]).read_bytes()[:200],
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "dir.jpg").mkdir()
    order = [good[0], str(tmp_path / "empty.jpg"), good[1], str(tmp_path / "text.png"),
             str(tmp_path / "cut.jpg"), good[2], str(tmp_path / "dir.jpg"),
             str(tmp_path / "missing.jpg"), good[3], good[4]]
    encoder = ClipEncoder("tiny", cache=tiny_clip_home, batch_size=2)
    out = encoder.encode_paths(order)
    assert out.paths == good and out.embeddings.shape == (5, 32)
    assert [s.path for s in out.skipped] == [p for p in order if p not in good]
    reasons = {Path(s.path).name: s.reason for s in out.skipped}
    assert "empty" in reasons["empty.jpg"] and "not an image" in reasons["text.png"]
    assert "truncated" in reasons["cut.jpg"] and "directory" in reasons["dir.jpg"]
    assert "not found" in reasons["missing.jpg"]
    alone = encoder.encode_paths(good)
    np.testing.assert_allclose(out.embeddings, alone.embeddings, atol=1e-6)
