"""A tiny CLIP-layout model built with the ``onnx`` package alone (test support, not shipped).

The CLI, encoder and search tests need an image tower and a text tower to run, but nothing in
them depends on what the towers compute beyond their interface. Exporting open_clip's tiny
random model needs torch and open_clip (the ``[export]`` extra), which the installed wheel's
test environment and the lean install do not have; this module writes, with ``onnx.helper``
and seeded numpy weights (nothing committed), a cache in the ``$SMIC_HOME`` layout that
:class:`smic_fast.ClipEncoder`, :class:`smic_fast.encode.text_tower.TextEncoder` and the ``smic``
commands load unchanged, exactly where and with the metadata that ``smic export-clip`` and
``smic export-text`` write for the ``tiny`` pairing (``tests/data/tiny.json``)::

    <home>/clip/tiny--random-seed0--opset18--fp32/model.onnx                   image tower
    <home>/clip/tiny--random-seed0--opset18--fp32/text.onnx                    text tower
    <home>/clip/tiny--random-seed0--opset18--fp32/bpe_simple_vocab_16e6.txt.gz  tokenizer merges

The graphs are not ViTs, only the same interface, deterministic and input-sensitive:

* image: ``image`` (batch, 3, S, S) float32 -> patchify + linear (a Conv with stride = patch)
  -> tanh -> mean over patches -> projection -> ``embedding`` (batch, d) float32;
* text: ``text_tokens`` (batch, context) int64 -> token + position embeddings -> tanh -> mean
  over the non-padding tokens -> projection -> ``text_embedding`` (batch, d) float32.

The merges file is synthetic (the real one ships with open_clip): CLIP's format and merge
count, so :class:`smic_fast.encode.clip_tokenizer.ClipTokenizer` reads it, with merges of lower-case
letters and digits first; tokenization differs from open_clip's, which only the oracle tests
compare (they use the torch export).

As a script: ``python tests/tiny_onnx.py HOME [--photos DIR]`` writes the cache (and, with
``--photos``, a few small PNG photos) for smoke tests of an install without torch or onnx.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import string
import sys
from pathlib import Path

import numpy as np

CONFIG = Path(__file__).parent / "data" / "tiny.json"
OPSET = 18
IR_VERSION = 10  # what torch.onnx writes for opset 18
EXPORTER = "tests/tiny_onnx.py (onnx.helper, not a ViT)"
_N_MERGES = 49152 - 256 - 2  # CLIP's merge count (ClipTokenizer refuses any other)


def tiny_config() -> dict:
    """The ``tiny`` architecture's open_clip config (``tests/data/tiny.json``)."""
    return json.loads(CONFIG.read_text(encoding="utf-8"))


def _weights(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def image_tower(seed: int = 0):
    """The image tower as an ``onnx.ModelProto`` (no smic metadata yet)."""
    from onnx import TensorProto, helper, numpy_helper

    cfg = tiny_config()
    vision, dim = cfg["vision_cfg"], int(cfg["embed_dim"])
    size, patch, width = int(vision["image_size"]), int(vision["patch_size"]), int(vision["width"])
    rng = np.random.default_rng([seed, 1])
    inits = [
        numpy_helper.from_array(_weights(rng, (width, 3, patch, patch), 3 * patch * patch), "patch_embed.weight"),
        numpy_helper.from_array(_weights(rng, (width,), 100), "patch_embed.bias"),
        numpy_helper.from_array(_weights(rng, (width, dim), width), "proj"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "patch_axes"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "patch_embed.weight", "patch_embed.bias"], ["patches"],
                         kernel_shape=[patch, patch], strides=[patch, patch]),
        helper.make_node("Tanh", ["patches"], ["features"]),
        helper.make_node("ReduceMean", ["features", "patch_axes"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "proj"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_image_tower",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])], inits)
    return _model(graph)


def text_tower(seed: int = 0):
    """The text tower as an ``onnx.ModelProto`` (no smic metadata yet)."""
    from onnx import TensorProto, helper, numpy_helper

    cfg = tiny_config()
    text, dim = cfg["text_cfg"], int(cfg["embed_dim"])
    context, vocab, width = int(text["context_length"]), int(text["vocab_size"]), int(text["width"])
    rng = np.random.default_rng([seed, 2])
    inits = [
        numpy_helper.from_array(_weights(rng, (vocab, width), 1), "token_embedding"),
        numpy_helper.from_array(_weights(rng, (context, width), 1), "positional_embedding"),
        numpy_helper.from_array(_weights(rng, (width, dim), width), "text_projection"),
        numpy_helper.from_array(np.array(0, np.int64), "pad_id"),
        numpy_helper.from_array(np.array([1], np.int64), "token_axis"),
        numpy_helper.from_array(np.array([-1], np.int64), "last_axis"),
    ]
    nodes = [
        helper.make_node("Gather", ["token_embedding", "text_tokens"], ["tokens"]),
        helper.make_node("Add", ["tokens", "positional_embedding"], ["placed"]),
        helper.make_node("Tanh", ["placed"], ["features"]),
        # Mean over the tokens that are not padding (id 0): start, the text, end.
        helper.make_node("Greater", ["text_tokens", "pad_id"], ["is_token"]),
        helper.make_node("Cast", ["is_token"], ["mask_2d"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_2d", "last_axis"], ["mask"]),
        helper.make_node("Mul", ["features", "mask"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "token_axis"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask", "token_axis"], ["count"], keepdims=0),
        helper.make_node("Div", ["summed", "count"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "text_projection"], ["text_embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_text_tower",
        [helper.make_tensor_value_info("text_tokens", TensorProto.INT64, ["batch", context])],
        [helper.make_tensor_value_info("text_embedding", TensorProto.FLOAT, ["batch", dim])], inits)
    return _model(graph)


def _model(graph):
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="smic-fast tests/tiny_onnx.py")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def merges_text() -> str:
    """A CLIP-format BPE merges file: a version line, then the merges ``a b`` one a line.

    Letter and digit pairs come first (so words become a few tokens, as with CLIP's merges),
    then pairs of two-character pieces that never occur (filler to CLIP's merge count)."""
    alphabet = string.ascii_lowercase + string.digits
    merges = [f"{a} {b}" for a in alphabet for b in alphabet]
    merges += [f"{a} {b}</w>" for a in alphabet for b in alphabet]
    filler = (f"{a}{b} {c}{d}" for a in alphabet for b in alphabet for c in alphabet for d in string.ascii_uppercase)
    merges += [next(filler) for _ in range(_N_MERGES - len(merges))]
    return "#version: 0.2 (synthetic, tests/tiny_onnx.py)\n" + "\n".join(merges) + "\n"


def write_tiny_home(home: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny model's image tower, text tower and tokenizer merges into the cache
    `home` (``$SMIC_HOME`` layout) where the exporters would put them; returns the folder.

    Files are written to a temporary name and renamed, so a reader never sees half a file;
    an existing folder is rewritten (same seed: same bytes)."""
    import onnx

    from smic_fast.encode.clip_export import write_metadata
    from smic_fast.encode.clip_models import export_dir
    from smic_fast.encode.clip_tokenizer import VOCAB_FILE
    from smic_fast.encode.images import Preprocess
    from smic_fast.encode.text_tower import TEXT_FILE

    cfg = tiny_config()
    dim, image_size = str(int(cfg["embed_dim"])), int(cfg["vision_cfg"]["image_size"])
    folder = export_dir("tiny", f"random-seed{seed}", OPSET, "fp32", home)
    folder.mkdir(parents=True, exist_ok=True)
    common = {"arch": "tiny", "pretrained": "", "weights": f"random (seed {seed})", "opset": str(OPSET)}
    # The keys export_clip writes (fp32, standard ONNX as with --no-fuse, no PyTorch check) ...
    image_meta = {**common, "precision": "fp32", "preprocess": Preprocess(image_size=image_size).to_json(),
                  "dim": dim, "exporter": EXPORTER, "fuse": "0", "fused": "none"}
    # ... and export_text_tower's. Its "dim" is "0" for open_clip's CLIP class (it reads an
    # embed_dim attribute that class lacks), so TextEncoder takes d from the output's shape:
    # written the same here, that path is the one tested.
    text_meta = {**common, "tower": "text", "context_length": str(int(cfg["text_cfg"]["context_length"])),
                 "vocab": VOCAB_FILE, "dim": "0"}
    for name, model, meta in (("model.onnx", image_tower(seed), image_meta), (TEXT_FILE, text_tower(seed), text_meta)):
        part = folder / f".{name}.part"
        onnx.save(model, str(part))
        write_metadata(part, meta)
        os.replace(part, folder / name)
    part = folder / f".{VOCAB_FILE}.part"
    with gzip.GzipFile(part, "wb", mtime=0) as stream:  # mtime 0: the same bytes every time
        stream.write(merges_text().encode("utf-8"))
    os.replace(part, folder / VOCAB_FILE)
    return folder


def write_photos(folder: str | os.PathLike, count: int = 6, seed: int = 0) -> list[Path]:
    """`count` small PNG photos (smooth gradients plus noise, different sizes) in `folder`."""
    from PIL import Image

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        h, w = 60 + 11 * i, 90 - 5 * i
        yy, xx = np.mgrid[0:h, 0:w]
        phase = rng.uniform(0, 2 * np.pi, 3)
        rgb = np.stack([127 + 100 * np.sin(xx / (4 + i) + phase[c] + yy / (7 + c)) for c in range(3)], -1)
        rgb = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
        paths.append(out / f"photo{i}.png")
        Image.fromarray(rgb, "RGB").save(paths[-1])
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("home", help="the cache folder to write ($SMIC_HOME layout)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", metavar="DIR", help="also write a few small PNG photos here")
    parser.add_argument("--count", type=int, default=6, help="how many photos (default 6)")
    args = parser.parse_args(argv)
    print(write_tiny_home(args.home, seed=args.seed))
    if args.photos:
        print(f"{len(write_photos(args.photos, args.count, args.seed))} photos in {args.photos}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
