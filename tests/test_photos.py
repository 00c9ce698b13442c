"""Which files a command takes and the ids they get (smic_fast.sources.photos)."""
from __future__ import annotations

import pytest
from PIL import Image

from smic_fast.sources.photos import find_photos, pixel_count


def make_tree(root):
    for rel in ("b.jpg", "a/z.png", "a/y.txt", ".hidden.jpg", ".cache/c.jpg", "a/b/c.jpg"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_folder_walk_sorted_ids_skip_hidden(tmp_path):
    make_tree(tmp_path)
    found = find_photos([tmp_path])
    assert [p.id for p in found] == ["a/b/c.jpg", "a/y.txt", "a/z.png", "b.jpg"]
    assert all((tmp_path / p.id).samefile(p.path) for p in found)


def test_glob_filters_folders_not_named_files(tmp_path):
    make_tree(tmp_path)
    found = find_photos([tmp_path / "a", tmp_path / "b.jpg"], glob="*.jpg")
    assert [p.id for p in found] == ["a/b/c.jpg", "b.jpg"]  # root: the common parent
    assert [p.id for p in find_photos([tmp_path / "a/y.txt"], glob="*.jpg")] == ["y.txt"]


def test_same_file_twice_listed_once_and_missing_input(tmp_path):
    make_tree(tmp_path)
    assert len(find_photos([tmp_path / "b.jpg", tmp_path / "b.jpg"])) == 1
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_photos([tmp_path / "nowhere"])
    with pytest.raises(ValueError):
        find_photos([])


def test_pixel_count_reads_the_header(tmp_path):
    Image.new("RGB", (30, 20)).save(tmp_path / "x.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n")
    assert pixel_count(tmp_path / "x.png") == 600
    assert pixel_count(tmp_path / "bad.png") is None
    assert pixel_count(tmp_path / "missing.png") is None


def test_find_exported_reads_arch_slash_tag_labels(tmp_path):
    from smic_fast.encode.clip_onnx import find_exported

    folder = tmp_path / "clip" / "ViT-B-32--openai--opset18--fp32"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"x")
    assert find_exported("ViT-B-32/openai", cache=tmp_path) == folder / "model.onnx"
    assert find_exported("ViT-B-32", cache=tmp_path) == folder / "model.onnx"
    with pytest.raises(FileNotFoundError, match="smic export-clip"):
        find_exported("ViT-B-32/laion2b", cache=tmp_path)
