"""Load a diffusers generator and turn CLIP image embeddings into pictures.

:class:`Generator` wraps diffusers' own pipelines (no diffusion code here):

* Stable unCLIP (``StableUnCLIPImg2ImgPipeline``) is called with ``image_embeds=`` and
  ``prompt_embeds`` of the empty prompt, computed once at load time with the folder's text
  encoder (then freed) or zeros when the folder has none, so no tokenizer runs per image. The
  pipeline's own CLIP image encoder is never run (smic brings the embedding): it is not loaded.
* Kandinsky 2.2 (``KandinskyV22Pipeline``, the decoder) is called with ``image_embeds=`` and
  ``negative_image_embeds`` (zeros unless given); its prior is not needed.

Every item gets its own CPU ``torch.Generator`` seeded from the base seed and its id
(:mod:`.seeds`), and diffusers draws each item's noise from its own generator, so an item's
picture does not depend on the batch it was generated in. Needs ``[generate]``
(torch, diffusers, transformers; accelerate for CPU offload on small GPUs).
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .configs import (GeneratorError, GeneratorInfo, check_compatibility, read_generator_info,
                      resolve_generator)
from .seeds import item_seeds

__all__ = ["DEFAULTS", "Generator"]

log = logging.getLogger("smic_fast.generate")

# (steps, guidance) per family: diffusers' documented defaults for unCLIP, the usual 50 steps
# (of 100 by default) for the Kandinsky 2.2 decoder.
DEFAULTS: dict[str, tuple[int, float]] = {"unclip": (20, 10.0), "kandinsky": (50, 4.0)}
# Without a text encoder the empty prompt is zeros: every token is the same (zero) key and
# value, so cross-attention gives the same result for any length; one token is cheapest.
_PROMPT_TOKENS = 1


def import_torch():
    """torch, once torch, diffusers and transformers (diffusers' pipelines need it) import;
    else MissingExtraError naming the [generate] extra."""
    from .._extras import require

    require("generate", "generating images")
    import torch

    return torch


def _pick_device(torch, device: str) -> str:
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if not isinstance(device, str) or not device:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this torch sees no CUDA GPU")
    return device


def _pick_dtype(torch, dtype: Any, device: str):
    names = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp32": torch.float32, "float32": torch.float32}
    if dtype == "auto":
        return torch.float16 if device.startswith(("cuda", "mps")) else torch.float32
    if isinstance(dtype, str):
        if dtype not in names:
            raise ValueError(f"dtype must be 'auto' or one of {sorted(names)}, got {dtype!r}")
        return names[dtype]
    if dtype in set(names.values()):
        return dtype
    raise ValueError(f"dtype must be 'auto', a name such as 'fp16', or a torch float dtype, got {dtype!r}")


@contextlib.contextmanager
def _quiet_diffusers():
    """diffusers/transformers log type notes and progress while loading; keep stderr for ours."""
    from diffusers.utils import logging as dlog

    level = dlog.get_verbosity()
    bars_were_on = dlog.is_progress_bar_enabled()
    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    try:
        yield
    finally:
        dlog.set_verbosity(level)
        if bars_were_on:
            dlog.enable_progress_bar()


def _embedding_probe(torch):
    """Stands in for unCLIP's CLIP image encoder, which smic never runs (it passes image_embeds):
    the pipeline only reads the dtype of its first parameter. Saves loading ~0.6-2.5 GB."""

    class ImageEncoderNotLoaded(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dtype_probe = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

        @property
        def dtype(self):
            return self.dtype_probe.dtype

        @property
        def device(self):
            return self.dtype_probe.device

        def forward(self, *args, **kwargs):  # pragma: no cover - never called with image_embeds
            raise RuntimeError("smic passes image embeddings; the unCLIP image encoder was not loaded")

    return ImageEncoderNotLoaded()


def _dtype_kwarg(torch_dtype) -> dict:
    """diffusers renamed ``torch_dtype`` to ``dtype`` (and warns about the old name)."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401 - present since the rename
    except ImportError:
        return {"torch_dtype": torch_dtype}
    return {"dtype": torch_dtype}


def _model_bytes(pipeline) -> int:
    import torch

    total = 0
    for component in pipeline.components.values():
        if isinstance(component, torch.nn.Module):
            total += sum(p.numel() * p.element_size() for p in component.parameters())
    return total


class Generator:
    """A diffusers pipeline conditioned on CLIP image embeddings, ready to generate.

    Build it with :meth:`from_pretrained`. ``info`` describes the folder (family, dimension),
    ``device``/``dtype`` where it runs, ``placement`` how ("device", "device+attention-slicing",
    "model-offload", "cpu"), ``notes`` what the compatibility check could not verify.
    """

    def __init__(self, pipeline, info: GeneratorInfo, device: str, dtype, placement: str,
                 prompt_embeds=None, notes: Sequence[str] = ()) -> None:
        self.pipeline = pipeline
        self.info = info
        self.device = device
        self.dtype = dtype
        self.placement = placement
        self.notes = list(notes)
        self._prompt_embeds = prompt_embeds
        self.negative_embedding: np.ndarray | None = None  # Kandinsky: zeros unless set
        pipeline.set_progress_bar_config(disable=True)

    @property
    def family(self) -> str:
        return self.info.family

    @property
    def dim(self) -> int:
        return self.info.dim

    def __repr__(self) -> str:
        return (f"Generator({str(self.info.name)!r}, family={self.family!r}, dim={self.dim}, "
                f"device={self.device!r}, dtype={str(self.dtype).replace('torch.', '')}, placement={self.placement!r})")

    # ------------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str = "auto", dtype: Any = "auto", *,
                        model: str | None = None, dim: int | None = None, allow_download: bool = False,
                        offload: str = "auto") -> Generator:
        """Load a generator from a local folder (works offline) or a hub id in the HF cache.

        Args:
            name_or_path: a saved diffusers pipeline folder, or a hub id (found in the Hugging
                Face cache; downloaded only with ``allow_download=True``).
            device: "auto" (CUDA, else MPS, else CPU), "cpu", "cuda", "cuda:N", "mps".
            dtype: "auto" (fp16 on a GPU, fp32 on CPU), "fp16", "bf16", "fp32" or a torch dtype.
            model, dim: the collection's CLIP model and dimension; when given, a generator that
                does not go with them is refused (:class:`GeneratorMismatchError`) before any
                weights are read.
            offload: on a GPU, "auto" moves everything to the GPU when it fits, adds attention
                slicing when memory is tight and uses accelerate's model CPU offload when it
                does not fit; "none" always moves everything; "model" always offloads.

        Raises:
            ModelNotFoundError: folder, config or weights file absent (named).
            GeneratorError: a broken folder (unreadable config, corrupt weights).
            GeneratorMismatchError: the collection's model does not go with this generator.
        """
        if offload not in ("auto", "none", "model"):
            raise ValueError(f"offload must be 'auto', 'none' or 'model', got {offload!r}")
        folder = resolve_generator(name_or_path, allow_download=allow_download)
        info = read_generator_info(folder, name=os.fspath(name_or_path))
        notes = check_compatibility(model, int(dim), info) if dim is not None else []
        torch = import_torch()
        device = _pick_device(torch, device)
        torch_dtype = _pick_dtype(torch, dtype, device)
        pipeline, prompt_embeds = cls._load(torch, info, torch_dtype)
        placement = cls._place(torch, pipeline, device, offload)
        if prompt_embeds is not None:
            prompt_embeds = prompt_embeds.to(device="cpu", dtype=torch_dtype)
        log.info("generator %s: %s on %s (%s, %s)", info.name, info.title, device, torch_dtype, placement)
        return cls(pipeline, info, device, torch_dtype, placement, prompt_embeds, notes)

    @staticmethod
    def _load(torch, info: GeneratorInfo, torch_dtype):
        import diffusers

        pipeline_cls = getattr(diffusers, info.pipeline_class)
        overrides: dict[str, Any] = {}
        has_text = False
        if info.family == "unclip":
            overrides.update(image_encoder=None, feature_extractor=None)
            has_text = all((info.path / c).is_dir() for c in ("tokenizer", "text_encoder"))
            if not has_text:
                overrides.update(tokenizer=None, text_encoder=None)
        with _quiet_diffusers():
            try:
                pipeline = pipeline_cls.from_pretrained(info.path, local_files_only=True, **_dtype_kwarg(torch_dtype),
                                                        **overrides)
            except Exception as error:  # OSError, ValueError, safetensors' SafetensorError (an Exception), ...
                raise GeneratorError(f"generator {info.path} could not be loaded: "
                                     f"{type(error).__name__}: {error}") from error
        pipeline.set_progress_bar_config(disable=True)
        prompt_embeds = None
        if info.family == "unclip":
            pipeline.image_encoder = _embedding_probe(torch).to(torch_dtype)
            if has_text:
                with torch.no_grad():
                    prompt_embeds, _ = pipeline.encode_prompt("", "cpu", 1, False)
                pipeline.register_modules(text_encoder=None, tokenizer=None)  # used once: free it
            else:
                width = int(pipeline.unet.config.cross_attention_dim)
                prompt_embeds = torch.zeros(1, _PROMPT_TOKENS, width, dtype=torch_dtype)
                log.info("generator %s has no text encoder: the empty prompt is zeros", info.path)
        return pipeline, prompt_embeds

    @staticmethod
    def _place(torch, pipeline, device: str, offload: str) -> str:
        if not device.startswith("cuda"):
            pipeline.to(device)
            return device
        need = _model_bytes(pipeline)
        index = torch.device(device).index
        free, _ = torch.cuda.mem_get_info(index if index is not None else torch.cuda.current_device())
        if offload == "model" or (offload == "auto" and need > 0.8 * free):
            try:
                pipeline.enable_model_cpu_offload(device=device)
            except ImportError as error:
                raise ImportError(f"the generator ({need / 2**30:.1f} GiB) does not fit in the GPU's free "
                                  f"{free / 2**30:.1f} GiB and CPU offload needs accelerate ({error}); "
                                  "pip install accelerate") from error
            pipeline.enable_attention_slicing()
            return "model-offload"
        pipeline.to(device)
        if offload == "auto" and need > 0.5 * free:
            pipeline.enable_attention_slicing()
            return "device+attention-slicing"
        return "device"

    def embedding_norm(self) -> float | None:
        """The typical length of the raw CLIP embeddings this generator was trained on, where
        its weights tell: Stable unCLIP's image normalizer holds their per-dimension mean and
        std, so E|x|^2 = |mean|^2 + |std|^2. None for Kandinsky (its decoder keeps no such stats)."""
        if self.family != "unclip":
            return None
        normalizer = self.pipeline.image_normalizer
        mean = normalizer.mean.detach().float().cpu().numpy()
        std = normalizer.std.detach().float().cpu().numpy()
        return float(np.sqrt(np.sum(mean.astype(np.float64) ** 2) + np.sum(std.astype(np.float64) ** 2)))

    # ------------------------------------------------------------------------ generating
    def _check_size(self, size: int | tuple[int, int] | None) -> tuple[int, int]:
        if size is None:
            return self.info.default_size, self.info.default_size
        width, height = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        if self.family == "unclip":
            multiple = 8
        else:
            factor = 2 ** (len(self.pipeline.movq.config.block_out_channels) - 1)
            multiple = factor * factor
        for side in (width, height):
            if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side <= 0 or side % multiple:
                raise ValueError(f"size must be a positive multiple of {multiple} for {self.info.title}, got {size!r}")
        return int(width), int(height)

    def settings(self, steps: int | None = None, guidance: float | None = None,
                 size: int | tuple[int, int] | None = None) -> tuple[int, float, tuple[int, int]]:
        """Steps, guidance and (width, height) as they will be used (family defaults for None);
        ValueError for values the pipeline cannot take."""
        default_steps, default_guidance = DEFAULTS[self.family]
        steps = default_steps if steps is None else steps
        guidance = default_guidance if guidance is None else guidance
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not np.isfinite(guidance) \
                or guidance < 0:
            raise ValueError(f"guidance must be a finite number >= 0, got {guidance!r}")
        return int(steps), float(guidance), self._check_size(size)

    def _check_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        E = np.asarray(embeddings, dtype=np.float32)
        if E.ndim == 1:
            E = E[None]
        if E.ndim != 2 or E.shape[1] != self.dim:
            raise ValueError(f"embeddings must have shape (N, {self.dim}) for {self.info.describe()}, got {E.shape}")
        if not np.isfinite(E).all():
            raise ValueError("embeddings contain NaN or infinity")
        return E

    def generate(self, embeddings: np.ndarray, seeds: Sequence[int], *, steps: int | None = None,
                 guidance: float | None = None, size: int | tuple[int, int] | None = None,
                 norm: float | None = None, negative: np.ndarray | None = None):
        """One batch: (n, dim) embeddings and n seeds -> n PIL images (one model call).

        `norm`: scale each row to this length first (collections store unit vectors; the
        generators were trained on raw CLIP embeddings, whose mean length the header keeps).
        `negative` (Kandinsky): the negative image embedding, (dim,); default
        ``self.negative_embedding``, else zeros.
        """
        torch = import_torch()
        E = self._check_embeddings(embeddings)
        if len(seeds) != len(E):
            raise ValueError(f"{len(seeds)} seeds for {len(E)} embeddings")
        if len(E) == 0:
            return []
        steps, guidance, (width, height) = self.settings(steps, guidance, size)
        if norm is not None:
            lengths = np.linalg.norm(E, axis=1, keepdims=True)
            E = E / np.maximum(lengths, np.finfo(np.float32).tiny) * np.float32(norm)
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        # On the execution device: unCLIP noises image_embeds where they are (and moves its
        # normalizer there). The noise itself comes from the CPU generators either way.
        device = self.pipeline._execution_device
        embeds = torch.from_numpy(E).to(device=device, dtype=self.dtype)
        common = dict(num_inference_steps=int(steps), guidance_scale=float(guidance), height=height, width=width,
                      generator=generators, output_type="pil")
        with torch.inference_mode():
            if self.family == "unclip":
                prompt = self._prompt_embeds.repeat(len(E), 1, 1)
                out = self.pipeline(image_embeds=embeds, prompt_embeds=prompt, negative_prompt_embeds=prompt,
                                    noise_level=0, **common)
            else:
                vector = self.negative_embedding if negative is None else negative
                if vector is None:
                    negative_embeds = torch.zeros_like(embeds)
                else:
                    vector = np.asarray(vector, np.float32).reshape(-1)
                    if vector.shape != (self.dim,) or not np.isfinite(vector).all():
                        raise ValueError(f"the negative embedding must be {self.dim} finite numbers")
                    negative_embeds = torch.from_numpy(np.tile(vector, (len(E), 1))).to(device=device, dtype=self.dtype)
                out = self.pipeline(image_embeds=embeds, negative_image_embeds=negative_embeds, **common)
        return list(out.images)

    def images(self, embeddings: np.ndarray, *, seed: int = 0, ids: Sequence[str] | None = None,
               steps: int | None = None, guidance: float | None = None, size: int | tuple[int, int] | None = None,
               batch_size: int = 4, norm: float | None = None) -> Iterator:
        """Yield one PIL image per embedding row, generated `batch_size` at a time.

        Item i's noise comes from the seed derived from `seed` and ``ids[i]`` (default: its
        position as a string, as in a collection with default ids), so it does not depend on
        the batch size or on which other items are generated with it.
        """
        E = self._check_embeddings(embeddings)
        ids = [str(i) for i in range(len(E))] if ids is None else [str(i) for i in ids]
        if len(ids) != len(E):
            raise ValueError(f"{len(ids)} ids for {len(E)} embeddings")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        seeds = item_seeds(seed, ids)
        for start in range(0, len(E), batch_size):
            stop = start + batch_size
            yield from self.generate(E[start:stop], seeds[start:stop], steps=steps, guidance=guidance,
                                     size=size, norm=norm)

