"""Image loading and CLIP preprocessing in Pillow + numpy (no torch, no torchvision).

:func:`load_image` turns a path into an RGB ``PIL.Image`` or raises :class:`ImageLoadError`
with a one-line reason; :class:`Preprocess` reproduces open_clip's inference transform
(resize the shortest side with bicubic, centre crop, scale to [0, 1], normalise) so that the
ONNX image tower sees the same tensor open_clip's PyTorch pipeline would give it.

What is converted rather than refused:

- EXIF orientation is applied (a phone photo stored sideways comes out upright);
- CMYK, YCbCr, greyscale, 1-bit and LAB images become RGB;
- 16-bit and 32-bit greyscale (``I;16``, ``I``) is scaled to 8 bits, not clipped;
- alpha (RGBA, LA, palette with transparency) is composited onto white, so fully transparent
  pixels do not show whatever colour happens to be stored under them (open_clip's own
  ``convert("RGB")`` drops alpha instead; the two agree on opaque images);
- animated images give their first frame.

What is refused, with the reason: missing files and dangling links, directories, unreadable
files, empty files, files that are not images, truncated or corrupt image data, and
decompression bombs (more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` allows).
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageLoadError", "Preprocess", "decode_image", "load_image", "to_rgb"]

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

_INTERPOLATIONS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
_RESIZE_MODES = ("shortest", "squash", "longest")
_EXIF_ORIENTATION = 0x0112


class ImageLoadError(ValueError):
    """An image could not be read; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Preprocess:
    """open_clip's inference transform for one model, as data.

    ``image_size`` is the square input side; ``mean``/``std`` the per-channel normalisation;
    ``interpolation`` "bicubic" or "bilinear"; ``resize_mode`` "shortest" (resize the shortest
    side, centre crop: open_clip's default), "squash" (resize to a square, ignoring the aspect
    ratio) or "longest" (resize the longest side, pad with ``fill_color``).
    """

    image_size: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0
    _scale: np.ndarray = field(init=False, repr=False, compare=False)
    _offset: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, (int, np.integer)) \
                or self.image_size < 1:
            raise ValueError(f"image_size must be a positive integer, got {self.image_size!r}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATIONS)}, got {self.interpolation!r}")
        if self.resize_mode not in _RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {list(_RESIZE_MODES)}, got {self.resize_mode!r}")
        mean = tuple(float(m) for m in self.mean)
        std = tuple(float(s) for s in self.std)
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std must have 3 entries (std > 0), got {self.mean!r}, {self.std!r}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "image_size", int(self.image_size))
        # (x / 255 - mean) / std == x * scale + offset, one fused pass over the pixels.
        std_a = np.asarray(std, dtype=np.float32)
        object.__setattr__(self, "_scale", (1.0 / (255.0 * std_a)).astype(np.float32)[:, None, None])
        object.__setattr__(self, "_offset", (-np.asarray(mean, dtype=np.float32) / std_a)[:, None, None])

    # -- (de)serialisation: the exporter stores this in the ONNX file's metadata --------------
    @classmethod
    def from_open_clip(cls, cfg: dict[str, Any]) -> "Preprocess":
        """From open_clip's ``PreprocessCfg`` dict (``size``, ``mean``, ``std``, ...)."""
        size = cfg.get("size", 224)
        if isinstance(size, (tuple, list)):
            if len(set(size)) != 1:
                raise ValueError(f"only square CLIP inputs are supported, got size {size!r}")
            size = size[0]
        interpolation = cfg.get("interpolation") or "bicubic"
        return cls(
            image_size=int(size),
            mean=tuple(cfg.get("mean") or OPENAI_MEAN),
            std=tuple(cfg.get("std") or OPENAI_STD),
            interpolation="bilinear" if interpolation == "bilinear" else "bicubic",
            resize_mode=cfg.get("resize_mode") or "shortest",
            fill_color=int(cfg.get("fill_color") or 0),
        )

    def to_json(self) -> str:
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Preprocess":
        d = json.loads(text)
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    # -- the transform ------------------------------------------------------------------------
    def draft_size(self) -> tuple[int, int]:
        """The smallest size a JPEG may be DCT-downscaled to before :meth:`resize`.

        Twice the target side: the bicubic resize that follows still averages at least 2x2
        source pixels per output pixel, so the draft's coarse box filter barely shows
        (cosine to the full decode > 0.999 on photos, see tests)."""
        return (2 * self.image_size, 2 * self.image_size)

    def resize(self, image: Image.Image) -> Image.Image:
        """Resize + crop (or pad) an RGB image to ``image_size`` square, as open_clip does."""
        size = self.image_size
        resample = _INTERPOLATIONS[self.interpolation]
        w, h = image.size
        if self.resize_mode == "squash":
            return image.resize((size, size), resample)
        if self.resize_mode == "longest":
            scale = size / max(w, h)
            nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
            image = image.resize((nw, nh), resample)
            canvas = Image.new("RGB", (size, size), (self.fill_color,) * 3)
            canvas.paste(image, ((size - nw) // 2, (size - nh) // 2))  # open_clip's CenterCropOrPad
            return canvas
        # torchvision.transforms.Resize(int): the short side becomes `size`, the long side
        # int(size * long / short) (truncated), then CenterCrop rounds the offsets.
        if w <= h:
            nw, nh = size, int(size * h / w)
        else:
            nw, nh = int(size * w / h), size
        left = int(round((nw - size) / 2.0))
        top = int(round((nh - size) / 2.0))
        if (nw, nh) == (w, h):
            return image.crop((left, top, left + size, top + size)) if (w, h) != (size, size) else image
        # Resize straight into the crop: Pillow resamples only the box (its filter still
        # reads the pixels around it, clamped to the image, like the full resize does), so
        # this is the full resize + crop up to rounding (pixels differ by at most 1 level)
        # at 2/3 of its cost for a 3:2 photo.
        sx, sy = w / nw, h / nh
        return image.resize((size, size), resample,
                            box=(left * sx, top * sy, (left + size) * sx, (top + size) * sy))

    def to_array(self, image: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
        """(3, S, S) float32, normalised; written into `out` when given."""
        pixels = np.asarray(image, dtype=np.uint8)  # (S, S, 3)
        chw = pixels.transpose(2, 0, 1)
        if out is None:
            out = np.empty(chw.shape, dtype=np.float32)
        np.multiply(chw, self._scale, out=out, casting="unsafe")
        out += self._offset
        return out

    def __call__(self, image: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
        """An RGB (or any-mode, converted by :func:`to_rgb`) PIL image -> (3, S, S) float32."""
        if image.mode != "RGB":
            image = to_rgb(image)
        return self.to_array(self.resize(image), out)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB: alpha onto white, high bit depths scaled, CMYK/LAB converted."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    elif mode == "PA":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image).astype(np.float64)
        # 16-bit data (PNG, TIFF) arrives as I;16* or as I holding 0..65535.
        top = 65535.0 if (mode != "I" or values.max(initial=0) > 255) else 255.0
        grey = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if values.max(initial=0) <= 1.0 else 255.0
        grey = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | os.PathLike, *, draft: tuple[int, int] | None = None) -> Image.Image:
    """Open, decode and upright one image file as RGB, or raise :class:`ImageLoadError`.

    ``draft=(w, h)`` lets a JPEG be decoded at 1/2, 1/4 or 1/8 scale (Pillow's ``draft``),
    never below (w, h): much faster for large photos that are downscaled anyway.
    """
    name = os.fspath(path)
    if os.path.isdir(name):
        raise ImageLoadError(name, "is a directory, not an image file")
    if os.path.islink(name) and not os.path.exists(name):
        raise ImageLoadError(name, "dangling symbolic link (its target does not exist)")
    try:
        size = os.path.getsize(name)
    except FileNotFoundError:
        raise ImageLoadError(name, "file not found") from None
    except PermissionError:
        raise ImageLoadError(name, "permission denied") from None
    if size == 0:
        raise ImageLoadError(name, "empty file (0 bytes)")
    return _decode(name, name, draft)[0]


def decode_image(data: bytes, name: str, *, draft: tuple[int, int] | None = None) -> tuple[Image.Image, int]:
    """:func:`load_image` for an image held in memory (a file read by Ray Data, a tar member):
    the RGB image and the stored image's pixel count (width x height before any draft scaling),
    or :class:`ImageLoadError` naming `name`."""
    if len(data) == 0:
        raise ImageLoadError(name, "empty file (0 bytes)")
    return _decode(io.BytesIO(data), name, draft)


def _decode(source: str | io.BytesIO, name: str, draft: tuple[int, int] | None) -> tuple[Image.Image, int]:
    try:
        with Image.open(source) as image:
            width, height = image.size
            if draft is not None and image.format == "JPEG":
                image.draft("RGB", draft)
            image.load()
            if image.getexif().get(_EXIF_ORIENTATION, 1) not in (0, 1):
                image = ImageOps.exif_transpose(image)
            return to_rgb(image), int(width * height)
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(name, f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError:
        raise ImageLoadError(name, "not an image (format not recognised)") from None
    except PermissionError:
        raise ImageLoadError(name, "permission denied") from None
    except FileNotFoundError:
        raise ImageLoadError(name, "file not found") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated or corrupt data as OSError ("image file is truncated",
        # "broken data stream"), some plugins as SyntaxError or ValueError.
        raise ImageLoadError(name, f"truncated or corrupt image data ({exc})") from None
    except Exception as exc:  # a decoder bug must not stop a 100,000-file run
        raise ImageLoadError(name, f"cannot decode ({type(exc).__name__}: {exc})") from None
