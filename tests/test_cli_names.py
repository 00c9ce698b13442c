"""One name per idea on the command line (docs/cli.md, "Names"): the knobs the README teaches
have flags that give what the Python keywords give; renamed flags keep their old spelling one
release, hidden from --help, with a warning; --ray no longer swallows the next word."""
from __future__ import annotations

import re

import numpy as np
import pytest

import smic_fast as smic
from smic_fast.cli import main


def clustered(rng: np.random.Generator, n: int = 600, d: int = 24) -> np.ndarray:
    centres = rng.standard_normal((10, d))
    return (centres[rng.integers(0, 10, n)] + 0.4 * rng.standard_normal((n, d))).astype(np.float32)


@pytest.fixture
def npy(tmp_path, rng):
    E = clustered(rng)
    np.save(tmp_path / "e.npy", E)
    return tmp_path / "e.npy", E


def test_readme_knobs_have_flags_equal_to_the_python_keywords(capsys, tmp_path, npy):
    path, E = npy
    flags = ["--rd-lambda", "0.002", "--chunk-size", "64", "--index-model", "order0", "--atoms", "16",
             "--atom-precision", "int8", "--iterations", "3", "-q"]
    assert main(["compress", str(path), "-o", str(tmp_path / "cli.smic"), *flags]) == 0
    smic.compress(E, tmp_path / "py.smic", n_atoms=16, rd_lambda=0.002, chunk_size=64, index_model="order0",
                  precision="int8", n_iter=3)
    assert (tmp_path / "cli.smic").read_bytes() == (tmp_path / "py.smic").read_bytes()
    info = smic.open(tmp_path / "cli.smic").info()
    assert info["index_model"] == "order0" and info["format_version"] == 1  # what version 1 wrote
    assert smic.open(tmp_path / "cli.smic")._core.chunk_size == 64


def test_paper_layout_flag(capsys, tmp_path, npy):
    path, E = npy
    assert main(["compress", str(path), "-o", str(tmp_path / "p.smic"), "--layout", "paper", "--paper-bits", "6",
                 "--atoms", "16", "--iterations", "2", "-q"]) == 0
    smic.compress(E, tmp_path / "q.smic", n_atoms=16, layout="paper", paper_bits=6, n_iter=2)
    assert (tmp_path / "p.smic").read_bytes() == (tmp_path / "q.smic").read_bytes()
    assert main(["dictionary", "fit", str(path), "-o", str(tmp_path / "d.smicd"), "--atoms", "16", "--iterations", "2",
                 "--rd-lambda", "0.01", "--atom-precision", "int8", "-q"]) == 0
    fitted = smic.Dictionary.fit(E, n_atoms=16, n_iter=2, rd_lambda=0.01, precision="int8")
    assert (tmp_path / "d.smicd").read_bytes() == fitted.to_bytes()


@pytest.mark.parametrize(("old", "new", "command"), [
    ("--precision", "--atom-precision", ["compress", "{e}", "-o", "{out}", "--atoms", "8", "--iterations", "2", "-q"]),
    ("--out", "--output", None),
])
def test_old_spellings_work_hidden_and_warn(capsys, tmp_path, npy, old, new, command):
    if command is None:  # smic eval: only the parse matters (checked through --help and a usage error)
        assert main(["eval", str(npy[0]), old, str(tmp_path / "r"), "--methods", "nope", "-q"]) == 2
        _, err = capsys.readouterr()
        assert f"{old} is now {new}" in err
    else:
        args = [a.format(e=npy[0], out=tmp_path / "o.smic") for a in command]
        assert main([*args, old, "int8"]) == 0
        _, err = capsys.readouterr()
        assert f"{old} is now {new}" in err
        assert smic.open(tmp_path / "o.smic").dictionary.precision == "int8"
    assert main([(command or ["eval"])[0], "--help"]) == 0
    out, _ = capsys.readouterr()
    flag = r"^\s+(?:-\w \S+, )?"  # an option line of --help: "  --x", or "  -o FOLDER, --x"
    assert re.search(flag + new + r"\b", out, re.M) and not re.search(flag + old + r"\b", out, re.M)  # hidden


def test_atoms_label_top_and_old_top_alias(capsys):
    from smic_fast.cli import setup_args as build_parser

    parser = build_parser()
    args = parser.parse_args(["atoms", "d.smicd", "--labels", "l.txt", "--label-top", "5"])
    assert args.top == 5 and args.model is None  # None: the collection's model, else "default"
    args = parser.parse_args(["atoms", "d.smicd", "--labels", "l.txt", "--top", "4"])
    assert args.top == 4 and "--top is now --label-top" in capsys.readouterr().err


def test_ray_is_a_switch_and_the_address_its_own_flag():
    from smic_fast.cli import setup_args as build_parser

    parser = build_parser()
    args = parser.parse_args(["compress", "-o", "x.smic", "--ray", "photos/"])
    assert args.ray is True and args.inputs == ["photos/"] and args.ray_address is None  # not swallowed
    args = parser.parse_args(["compress", "photos/", "-o", "x.smic", "--ray-address", "auto"])
    assert args.ray_address == "auto" and args.inputs == ["photos/"]


def test_download_is_one_switch_everywhere():
    from smic_fast.cli import setup_args as build_parser

    parser = build_parser()
    assert parser.parse_args(["export-clip"]).download is True
    assert parser.parse_args(["export-clip", "--no-download"]).download is False
    assert parser.parse_args(["decompress", "x.smic"]).download is False
    assert parser.parse_args(["decompress", "x.smic", "--download"]).download is True
