"""CLIP's text tower on ONNX Runtime, exported beside the image tower, to name things in the
embedding space (``smic atoms``): text labels -> unit text embeddings, with no torch at run time.

:func:`export_text_tower` (needs the ``[export]`` extra) builds the same open_clip model as
:func:`smic_fast.encode.clip_export.export_clip` (same weights key: pretrained tag, checkpoint digest
or random seed) and writes, in the same cache folder as the image tower's ``model.onnx``:

* ``text.onnx`` — input ``text_tokens`` (N, context_length) int64, output ``text_embedding`` (N, d)
  float32 = ``model.encode_text`` before normalisation; checked against PyTorch on labels;
* ``bpe_simple_vocab_16e6.txt.gz`` — CLIP's BPE merges copied from open_clip, read by the
  pure-Python :class:`smic_fast.encode.clip_tokenizer.ClipTokenizer` (context length in the ONNX
  metadata).

:class:`TextEncoder` loads them by model name (like :class:`smic_fast.ClipEncoder`) or from a
``text.onnx`` path. Only models with open_clip's default CLIP tokenizer are supported (a model
configured with a Hugging Face tokenizer is refused at export).
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .clip_models import ModelNotFoundError, cache_dir, export_dir, get_pairing
from .clip_tokenizer import VOCAB_FILE, ClipTokenizer

__all__ = ["TEXT_FILE", "TextEncoder", "export_text_tower", "find_text_tower"]

log = logging.getLogger("smic_fast.clip")
TEXT_FILE = "text.onnx"
_CHECK_LABELS = ("a photo of a cat", "an astronaut", "coffee", "a rocket on a launch pad", "the night sky, 2024!")


def find_text_tower(model: str, cache: str | os.PathLike | None = None) -> Path:
    """The cached ``text.onnx`` of a pairing name or open_clip architecture (highest opset)."""
    pairing = get_pairing(model)
    arch, tag = (pairing.arch, pairing.pretrained) if pairing else (model, None)
    root = cache_dir(cache) / "clip"
    pattern = f"{arch}--{tag or '*'}--opset*--fp32"
    candidates = sorted(root.glob(pattern), key=lambda p: int(p.name.split("--opset")[1].split("--")[0]))
    for folder in reversed(candidates):
        if (folder / TEXT_FILE).is_file():
            return folder / TEXT_FILE
    raise ModelNotFoundError(
        f"no exported text tower for {arch}{'/' + tag if tag else ''} under {root} (looked for "
        f"{pattern}/{TEXT_FILE}); create it with `smic export-text --model {model}` (needs the [export] "
        "extra; --checkpoint PATH for local weights), set SMIC_HOME, or pass the path of a text.onnx file")


class _TextModule:
    """torch.nn.Module wrapper: tokens -> encode_text (built lazily: torch is optional)."""

    @staticmethod
    def build(clip):
        import torch

        class TextTower(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.clip = clip

            def forward(self, tokens):
                return self.clip.encode_text(tokens)

        return TextTower().eval()


def export_text_tower(model: str = "default", pretrained: str | None = None,
                      output: str | os.PathLike | None = None, *, checkpoint: str | os.PathLike | None = None,
                      opset: int = 18, cache: str | os.PathLike | None = None, check: bool = True,
                      tolerance: float = 1e-4, force: bool = False, download: bool = True,
                      hub_cache: str | None = None, seed: int = 0) -> Path:
    """Export the text tower of an open_clip model to ONNX beside its image tower; returns the
    path of ``text.onnx``. Arguments as :func:`smic_fast.encode.clip_export.export_clip` (fp32 only);
    `output` is a ``.onnx`` path (the vocabulary file is written beside it)."""
    from .clip_export import (ExportCheckError, arch_and_tag, file_digest, write_metadata, load_open_clip_model,
                              split_weights)

    pretrained, checkpoint = split_weights(pretrained, checkpoint)
    arch, tag = arch_and_tag(model, pretrained)
    if checkpoint is not None and not os.path.isfile(checkpoint):
        raise ModelNotFoundError(f"checkpoint file {checkpoint} not found")
    weights_key = (f"ckpt-{file_digest(os.fspath(checkpoint))}" if checkpoint is not None
                   else tag or f"random-seed{seed}")
    if output is None:
        target = export_dir(arch, weights_key, opset, "fp32", cache) / TEXT_FILE
        if target.is_file() and (target.parent / VOCAB_FILE).is_file() and not force:
            log.info("reusing cached text tower %s", target)
            return target
    else:
        target = Path(output).expanduser()
        if target.suffix != ".onnx":
            raise ValueError(f"output must end in .onnx, got {target}")
    from .._extras import require

    require("export", "exporting a CLIP text tower to ONNX")  # before the model loads
    import open_clip
    import torch

    clip, _, _, label = load_open_clip_model(
        arch, tag, checkpoint=None if checkpoint is None else os.fspath(checkpoint), download=download,
        hub_cache=hub_cache, seed=seed)
    tokenizer = open_clip.get_tokenizer(arch)
    if not isinstance(tokenizer, open_clip.tokenizer.SimpleTokenizer):
        raise ValueError(f"{arch} uses {type(tokenizer).__name__}; only CLIP's BPE tokenizer is supported")
    context = int(tokenizer.context_length)
    vocab = Path(open_clip.tokenizer.default_bpe())
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".smic-text-", dir=target.parent))
    try:
        path = work / target.name
        module = _TextModule.build(clip)
        example = torch.zeros(2, context, dtype=torch.long)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (example,), input_names=["text_tokens"],
                                        output_names=["text_embedding"],
                                        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                                        opset_version=opset, dynamo=True, verbose=False)
        program.save(str(path))
        meta = {"arch": arch, "pretrained": tag or "", "weights": label, "opset": str(opset), "tower": "text",
                "context_length": str(context), "vocab": VOCAB_FILE,
                "dim": str(int(getattr(clip, "embed_dim", 0) or 0))}
        if check:
            import onnxruntime as ort

            tokens = tokenizer(list(_CHECK_LABELS))
            with torch.no_grad():
                reference = module(tokens).numpy().astype(np.float64)
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            out = session.run(None, {"text_tokens": tokens.numpy()})[0].astype(np.float64)
            diff = float(np.abs(out - reference).max())
            if not diff <= tolerance:
                raise ExportCheckError(f"text tower: ONNX Runtime differs from PyTorch by {diff:.3g} > {tolerance:g}")
            meta["check_max_abs_diff"] = repr(diff)
        write_metadata(path, meta)
        shutil.copyfile(vocab, work / VOCAB_FILE)
        os.replace(work / VOCAB_FILE, target.parent / VOCAB_FILE)
        os.replace(path, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


class TextEncoder:
    """Unit text embeddings from an exported text tower (ONNX Runtime, CPU).

    model_or_path: a pairing name / open_clip architecture whose text tower is in the cache
        (:func:`find_text_tower`), or the path of a ``text.onnx`` (the vocabulary file is
        expected beside it).
    """

    def __init__(self, model_or_path: str | os.PathLike = "default", *, cache: str | os.PathLike | None = None,
                 batch_size: int = 64) -> None:
        import onnxruntime as ort

        name = os.fspath(model_or_path)
        if name.endswith(".onnx") or os.sep in name:
            path = Path(name).expanduser()
            if not path.is_file():
                raise ModelNotFoundError(f"text tower {path} not found; create one with `smic export-text`")
        else:
            path = find_text_tower(name, cache)
        vocab = path.parent / VOCAB_FILE
        if not vocab.is_file():
            raise ModelNotFoundError(f"{vocab} is missing (the tokenizer's vocabulary, written beside {path.name} "
                                     "by `smic export-text`)")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            raise ValueError(f"{path}: not a loadable ONNX model ({error})") from error
        meta = self.session.get_modelmeta().custom_metadata_map
        inputs = self.session.get_inputs()
        if meta.get("smic.tower") != "text" or len(inputs) != 1 or len(inputs[0].shape) != 2:
            raise ValueError(f"{path} is not a smic text tower export (see `smic export-text`)")
        self.path = path
        self.context_length = int(meta.get("smic.context_length") or inputs[0].shape[1])
        self.tokenizer = ClipTokenizer(vocab, self.context_length)
        self.batch_size = batch_size
        self.dim = int(meta.get("smic.dim", 0)) or int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), d) float32 unit-norm embeddings of the texts."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        parts = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(texts[start:start + self.batch_size])
            parts.append(self.session.run(None, {"text_tokens": tokens})[0])
        out = np.concatenate(parts).astype(np.float64)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)
