"""Generative decoding: CLIP image embeddings (a .smic collection) back to pictures with diffusers.

    from smic_fast.generate import Generator, write_images
    gen = Generator.from_pretrained("stabilityai/stable-diffusion-2-1-unclip")   # or a local folder
    for image in gen.images(E, seed=0, steps=20, size=768): ...
    report = write_images(smic_fast.open("photos.smic"), "out/", check=True)      # one PNG per item

Modules: :mod:`.configs` (what a generator folder holds and whether it goes with a collection,
from JSON only), :mod:`.pipelines` (:class:`Generator`), :mod:`.seeds` (per-item seeds),
:mod:`.writer` (:func:`write_images`), :mod:`.tiny` (random tiny generators for tests).
torch and diffusers are imported only when a generator is loaded.
"""
from __future__ import annotations

from .configs import (GeneratorError, GeneratorInfo, GeneratorMismatchError, check_compatibility,
                      default_generator, read_generator_info, resolve_generator)
from .pipelines import Generator
from .seeds import item_seed
from .writer import ImagesReport, ItemFailure, image_names, write_images

__all__ = [
    "Generator",
    "GeneratorError",
    "GeneratorInfo",
    "GeneratorMismatchError",
    "ImagesReport",
    "ItemFailure",
    "check_compatibility",
    "default_generator",
    "image_names",
    "item_seed",
    "read_generator_info",
    "resolve_generator",
    "write_images",
]
