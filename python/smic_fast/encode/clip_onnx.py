"""CLIP image encoder on ONNX Runtime: image files or PIL images in, (N, d) float32 out.

Needs only numpy, Pillow and onnxruntime (no torch). The ONNX file comes from
:func:`smic_fast.encode.clip_export.export_clip` (``smic export-clip``), which stores the model's
preprocessing in the file; decoding and preprocessing run on a thread pool while the model
runs, with a bounded number of images in flight, so a collection of any size streams through
in constant memory (besides the (N, d) result).
"""
from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .clip_models import ModelNotFoundError, cache_dir, get_pairing
from .images import ImageLoadError, Preprocess, decode_image, load_image

__all__ = ["ClipEncoder", "EncodeResult", "ModelNotFoundError", "Skipped", "runtime_info"]

log = logging.getLogger("smic_fast.clip")

_PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")

# Distributions that install the same ``onnxruntime`` import package; two of them in one
# environment overwrite each other's files (which one imports depends on install order).
_ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino",
                      "onnxruntime-qnn")
_GPU_SWAP = "pip uninstall -y onnxruntime && pip install onnxruntime-gpu"


def runtime_info() -> dict:
    """What ONNX Runtime this environment has, for ``smic doctor`` and bug reports.

    Returns ``{"onnxruntime": version or None, "distributions": {name: version} of the
    installed onnxruntime packages, "providers": the providers onnxruntime lists,
    "device": onnxruntime's build device ("CPU", "GPU", ...) or None, "gpu": whether a CUDA
    or TensorRT provider is listed, "problems": [one line per problem found]}``.

    Cheap (imports onnxruntime, creates no session) and never raises. A listed provider may
    still fail to load (missing CUDA libraries): :class:`ClipEncoder` reads the provider that
    actually runs from its session (``encoder.provider``)."""
    info: dict = {"onnxruntime": None, "distributions": {}, "providers": [], "device": None,
                  "gpu": False, "problems": []}
    problems: list[str] = info["problems"]
    try:
        from importlib import metadata

        for name in _ORT_DISTRIBUTIONS:
            try:
                info["distributions"][name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                pass
    except Exception as exc:  # a broken metadata install must not stop a diagnosis
        problems.append(f"cannot read installed package versions ({type(exc).__name__}: {exc})")
    if len(info["distributions"]) > 1:
        names = " and ".join(sorted(info["distributions"]))
        problems.append(f"{names} are both installed; they share the onnxruntime package and "
                        f"overwrite each other. For CUDA keep only onnxruntime-gpu: {_GPU_SWAP} "
                        "(then `pip install --force-reinstall --no-deps onnxruntime-gpu`)")
    try:
        import onnxruntime as ort
    except Exception as exc:
        problems.append(f"onnxruntime does not import ({type(exc).__name__}: {exc}); "
                        "reinstall it: pip install --force-reinstall onnxruntime")
        return info
    try:
        info["onnxruntime"] = str(getattr(ort, "__version__", None) or "unknown")
        info["providers"] = [str(p) for p in ort.get_available_providers()]
        info["device"] = str(ort.get_device())
    except Exception as exc:
        problems.append(f"onnxruntime is broken ({type(exc).__name__}: {exc})")
    info["gpu"] = any(p in _GPU_PROVIDERS for p in info["providers"])
    return info


class Skipped(NamedTuple):
    path: str
    reason: str


class EncodeResult(NamedTuple):
    """``embeddings`` (N, d) float32, row i for ``paths[i]``; ``skipped``: files not encoded."""

    embeddings: np.ndarray
    paths: list[str]
    skipped: list[Skipped]


def resolve_providers(providers: str | Sequence[str]) -> list[str]:
    """The provider list to ask ONNX Runtime for: "auto" (CUDA where onnxruntime lists it,
    then CPU), "cpu", "cuda", "tensorrt" (TensorRT, CUDA, CPU) or an explicit list."""
    import onnxruntime as ort

    if not isinstance(providers, str):
        names = list(providers)
        if not names or not all(isinstance(p, str) for p in names):
            raise ValueError(f"providers must be a name or a non-empty list of names, got {providers!r}")
        return names
    key = providers.lower()
    if key == "auto":
        available = ort.get_available_providers()
        return [p for p in ("CUDAExecutionProvider",) if p in available] + ["CPUExecutionProvider"]
    if key == "cpu":
        return ["CPUExecutionProvider"]
    if key == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if key == "tensorrt":
        return ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ValueError(f"providers must be one of {['auto', *_PROVIDER_NAMES]} or a list of "
                     f"ONNX Runtime provider names, got {providers!r}")


def find_exported(model: str, *, fp16: bool = False, int8: bool = False,
                  cache: str | os.PathLike | None = None) -> Path:
    """The cached export of a pairing name, an open_clip architecture, or ``arch/tag`` (the
    label a collection records for a model given as an .onnx file), highest opset first;
    the fp16 or int8 export with those flags (fp32 by default)."""
    if fp16 and int8:
        raise ValueError("choose fp16 (GPU) or int8 (CPU), not both")
    pairing = get_pairing(model)
    if pairing:
        arch, tag = pairing.arch, pairing.pretrained
    else:
        arch, _, tag = model.partition("/")
        tag = tag or None
    precision = "fp16" if fp16 else "int8" if int8 else "fp32"
    root = cache_dir(cache) / "clip"
    pattern = f"{arch}--{tag or '*'}--opset*--{precision}"
    candidates = sorted(root.glob(pattern), key=lambda p: int(p.name.split("--opset")[1].split("--")[0]))
    for folder in reversed(candidates):
        if (folder / "model.onnx").is_file():
            return folder / "model.onnx"
    flag = f"--model {model}" + (f" --precision {precision}" if precision != "fp32" else "")
    raise ModelNotFoundError(
        f"no exported ONNX model for {arch}{'/' + tag if tag else ''} ({precision}) under {root} "
        f"(looked for {pattern}/model.onnx); create it with `smic export-clip {flag}` "
        "(add --checkpoint PATH for local weights), set SMIC_HOME to where it is, "
        "or pass the path of an .onnx file")


class ClipEncoder:
    """Encode images with an exported CLIP image tower on ONNX Runtime.

    model_or_onnx_path: an ``.onnx`` file, or a pairing name / open_clip architecture whose
        export is in the cache (``$SMIC_HOME``, default ~/.cache/smic).
    providers: "auto" (CUDA when it loads, else CPU), "cpu", "cuda", "tensorrt" or a list.
        The one that runs is ``self.provider`` (read back from the session, and logged).
    batch_size: images per model call.
    fp16: run a float16 model (GPU); an fp32 file is converted when loaded (needs ``onnx``).
    int8: with a model name, use its int8 export (``smic export-clip --precision int8``): on a
        CPU about 1.6x the fp32 model's speed, at a cosine of about 0.9997 to its output.
    workers: decoding threads (default: the number of cores, at most 8).
    normalize: return unit-norm embeddings (the codec's input); False gives the raw output.
    draft: let JPEGs decode at a reduced DCT scale, never below twice the model's input side.
    preprocess: override the preprocessing stored in the file (for ONNX files from elsewhere).
    """

    def __init__(self, model_or_onnx_path: str | os.PathLike = "default", providers: str | Sequence[str] = "auto",
                 batch_size: int = 32, fp16: bool = False, *, int8: bool = False, workers: int | None = None,
                 normalize: bool = True, draft: bool = True, preprocess: Preprocess | None = None,
                 intra_op_threads: int | None = None, cache: str | os.PathLike | None = None) -> None:
        import onnxruntime as ort

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
        if fp16 and int8:
            raise ValueError("choose fp16 (GPU) or int8 (CPU), not both")
        name = os.fspath(model_or_onnx_path)
        if name.endswith(".onnx") or os.sep in name or os.path.exists(name):
            path = Path(name).expanduser()
            if not path.is_file():
                raise ModelNotFoundError(
                    f"ONNX model {path} not found; create one with `smic export-clip -o {path}` "
                    "or pass a model name whose export is cached")
        else:
            path = find_exported(name, fp16=fp16, int8=int8, cache=cache)
        self.path = path
        self.batch_size = batch_size
        self.normalize = normalize
        self.draft = draft
        self.workers = workers or max(1, min(8, os.cpu_count() or 1))

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if intra_op_threads is not None:
            options.intra_op_num_threads = int(intra_op_threads)
        requested = resolve_providers(providers)
        available = set(ort.get_available_providers())
        missing = [p for p in requested if p not in available]
        if missing:
            log.warning("ClipEncoder: this onnxruntime has no %s (for CUDA replace onnxruntime by "
                        "onnxruntime-gpu: %s)", ", ".join(missing), _GPU_SWAP)
            requested = [p for p in requested if p in available] or ["CPUExecutionProvider"]
        source: str | bytes = str(path)
        if fp16 and not any(p in _GPU_PROVIDERS for p in requested):
            # onnxruntime's CPU kernels lack most float16 ops (a converted ViT even crashes
            # onnxruntime 1.32 at session creation), so fp16 is for GPUs only.
            raise ValueError("fp16=True needs a GPU provider (CUDA or TensorRT, from onnxruntime-gpu); "
                             f"available here: {sorted(available)}. On CPU use the fp32 model or the "
                             "int8 one (`smic export-clip --precision int8`)")
        if fp16:
            source = self._as_fp16(path)
        self.session = ort.InferenceSession(source, sess_options=options, providers=requested)
        self.providers = list(self.session.get_providers())
        self.provider = self.providers[0]
        if requested[0] != self.provider:
            log.warning("ClipEncoder: %s did not load; running on %s", requested[0], self.provider)
        log.info("ClipEncoder: %s on %s", path.name, self.provider)

        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = {k[5:]: v for k, v in meta.items() if k.startswith("smic.")}
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ValueError(f"{path} is not a CLIP image tower: expected one (N, 3, S, S) input, "
                             f"got {[(i.name, i.shape) for i in inputs]}")
        self._input = inputs[0].name
        if preprocess is None:
            if "preprocess" in self.metadata:
                preprocess = Preprocess.from_json(self.metadata["preprocess"])
            else:
                side = inputs[0].shape[-1]
                if not isinstance(side, int):
                    raise ValueError(f"{path} has no smic preprocessing metadata and no fixed input "
                                     "size; pass preprocess=Preprocess(image_size=...)")
                preprocess = Preprocess(image_size=side)
        self.preprocess = preprocess
        out_shape = self.session.get_outputs()[0].shape
        self.dim = int(out_shape[-1]) if isinstance(out_shape[-1], int) else int(self.metadata.get("dim", 0))

    @staticmethod
    def _as_fp16(path: Path) -> str | bytes:
        import onnxruntime as ort

        meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
        if meta.custom_metadata_map.get("smic.precision") == "fp16":
            return str(path)
        try:
            import onnx
            from onnxruntime.transformers.float16 import convert_float_to_float16
        except ImportError as exc:
            raise ImportError(
                f"fp16=True with an fp32 model converts it on load, which needs the onnx package ({exc}); "
                "install 'smic-fast[export]' or export an fp16 model with "
                "`smic export-clip --precision fp16`") from exc
        import warnings

        proto = onnx.load(str(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            half = convert_float_to_float16(proto, keep_io_types=True)
        return half.SerializeToString()

    def __repr__(self) -> str:
        return (f"ClipEncoder({str(self.path)!r}, provider={self.provider!r}, dim={self.dim}, "
                f"image_size={self.preprocess.image_size}, batch_size={self.batch_size})")

    # -- the model ----------------------------------------------------------------------------
    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self._input: batch})[0]
        out = np.asarray(out, dtype=np.float32)
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.maximum(norms, np.finfo(np.float32).tiny)
        return out

    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Preprocessed (N, 3, S, S) float32 tensors -> (N, d) embeddings."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        size = self.preprocess.image_size
        if batch.ndim != 4 or batch.shape[1:] != (3, size, size):
            raise ValueError(f"batch must have shape (N, 3, {size}, {size}), got {batch.shape}")
        parts = [self._run(batch[i:i + self.batch_size]) for i in range(0, len(batch), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    # -- in-memory images ---------------------------------------------------------------------
    def encode_images(self, images: Iterable) -> np.ndarray:
        """PIL images (any mode; used as given, no EXIF rotation) -> (N, d) float32."""
        from PIL import Image

        images = list(images)
        for i, im in enumerate(images):
            if not isinstance(im, Image.Image):
                raise ValueError(f"images[{i}] must be a PIL.Image.Image, got {type(im).__name__}")
        size = self.preprocess.image_size
        out = []
        with ThreadPoolExecutor(self.workers) as pool:
            for start in range(0, len(images), self.batch_size):
                chunk = images[start:start + self.batch_size]
                batch = np.empty((len(chunk), 3, size, size), np.float32)
                list(pool.map(lambda j: self.preprocess(chunk[j], out=batch[j]), range(len(chunk))))
                out.append(self._run(batch))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    # -- files --------------------------------------------------------------------------------
    def _load(self, path: str) -> np.ndarray | Skipped:
        try:
            draft = self.preprocess.draft_size() if self.draft else None
            return self.preprocess(load_image(path, draft=draft))
        except ImageLoadError as exc:
            return Skipped(exc.path, exc.reason)

    def iter_encode(self, paths: Iterable[str | os.PathLike], prefetch: int | None = None
                    ) -> Iterator[tuple[list[str], np.ndarray, list[Skipped]]]:
        """Stream `paths` (any iterable, read lazily) through the model, one batch at a time.

        Yields ``(paths, embeddings, skipped)`` per batch. At most `prefetch` images (default
        two batches) are decoded ahead of the model, whatever the number of files."""
        window = prefetch or 2 * self.batch_size
        size = self.preprocess.image_size
        source = iter(paths)
        pending: deque = deque()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="smic-decode") as pool:

            def refill() -> None:
                while len(pending) < window:
                    try:
                        p = os.fspath(next(source))
                    except StopIteration:
                        return
                    pending.append((p, pool.submit(self._load, p)))

            refill()
            while pending:
                names: list[str] = []
                skipped: list[Skipped] = []
                batch = np.empty((self.batch_size, 3, size, size), np.float32)
                while pending and len(names) < self.batch_size:
                    path, future = pending.popleft()
                    result = future.result()
                    if isinstance(result, Skipped):
                        log.warning("skipped %s: %s", result.path, result.reason)
                        skipped.append(result)
                    else:
                        batch[len(names)] = result
                        names.append(path)
                    refill()  # keep the decoders busy while the model runs
                embeddings = self._run(batch[:len(names)]) if names else np.zeros((0, self.dim), np.float32)
                yield names, embeddings, skipped

    def encode_blobs(self, blobs: Sequence[tuple[str, bytes]]
                     ) -> tuple[list[str], np.ndarray, list[Skipped], list[int]]:
        """Encode images held in memory as ``(name, encoded bytes)`` (files read by Ray Data,
        webdataset tar members). Returns the names encoded, their (n, d) embeddings, the
        skipped ones with their reasons, and each encoded image's pixel count."""
        draft = self.preprocess.draft_size() if self.draft else None
        size = self.preprocess.image_size

        def load(blob: tuple[str, bytes]) -> tuple[np.ndarray, int] | Skipped:
            try:
                image, pixels = decode_image(blob[1], blob[0], draft=draft)
                return self.preprocess(image), pixels
            except ImageLoadError as exc:
                return Skipped(exc.path, exc.reason)

        names: list[str] = []
        skipped: list[Skipped] = []
        pixels: list[int] = []
        parts: list[np.ndarray] = []
        with ThreadPoolExecutor(self.workers, thread_name_prefix="smic-decode") as pool:
            for start in range(0, len(blobs), self.batch_size):
                chunk = blobs[start:start + self.batch_size]
                batch = np.empty((len(chunk), 3, size, size), np.float32)
                n = 0
                for (name, _), result in zip(chunk, pool.map(load, chunk)):
                    if isinstance(result, Skipped):
                        log.warning("skipped %s: %s", result.path, result.reason)
                        skipped.append(result)
                    else:
                        batch[n], n = result[0], n + 1
                        names.append(name)
                        pixels.append(result[1])
                if n:
                    parts.append(self._run(batch[:n]))
        embeddings = np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
        return names, embeddings, skipped, pixels

    def encode_paths(self, paths: Iterable[str | os.PathLike]) -> EncodeResult:
        """Encode image files; unreadable ones are reported in ``skipped`` and left out."""
        names: list[str] = []
        skipped: list[Skipped] = []
        parts: list[np.ndarray] = []
        for batch_names, embeddings, batch_skipped in self.iter_encode(paths):
            names += batch_names
            skipped += batch_skipped
            if len(batch_names):
                parts.append(embeddings)
        embeddings = np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
        return EncodeResult(embeddings, names, skipped)
