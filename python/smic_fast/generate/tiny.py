"""Tiny random-weight generators, for tests and benchmarks that must run offline in seconds.

They are real diffusers pipelines (the classes users load) built from small component configs,
as diffusers' own fast tests build them, and saved with ``save_pretrained``: loading them goes
through the same :meth:`Generator.from_pretrained` path as the real models. Their pictures are
noise; what they test is the plumbing (shapes, seeds, files, errors). Needs ``[generate]``.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["build_tiny_generator"]


def _tiny_text(folder: Path):
    """A CLIP tokenizer over a 54-token vocabulary (no merges) and a 1-layer text encoder of
    width 32: enough for the empty prompt the unCLIP path encodes once at load time."""
    import json

    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for i, c in enumerate("abcdefghijklmnopqrstuvwxyz"):
        vocab[c], vocab[c + "</w>"] = 2 + 2 * i, 3 + 2 * i
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=8)
    encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=8, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    return tokenizer, encoder


def _tiny_unclip(dim: int, sample_size: int | None, text: tuple | None = None):
    from diffusers import (AutoencoderKL, DDIMScheduler, DDPMScheduler, StableUnCLIPImg2ImgPipeline,
                           UNet2DConditionModel)
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    unet = UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64), attention_head_dim=(2, 4), class_embed_type="projection",
        projection_class_embeddings_input_dim=2 * dim, cross_attention_dim=32, layers_per_block=1,
        upcast_attention=True, use_linear_projection=True)
    vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        latent_channels=4)
    # The image encoder is part of the pipeline class; smic never runs it (it passes image_embeds).
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=dim, num_hidden_layers=1, num_attention_heads=2, image_size=32,
        intermediate_size=37, patch_size=8))
    return StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32), image_encoder=image_encoder,
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=dim),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=text[0] if text else None, text_encoder=text[1] if text else None, unet=unet,
        scheduler=DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                prediction_type="v_prediction", set_alpha_to_one=False, steps_offset=1),
        vae=vae)


def _tiny_kandinsky(dim: int, sample_size: int | None):
    from diffusers import DDIMScheduler, KandinskyV22Pipeline, UNet2DConditionModel, VQModel

    unet = UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=8, addition_embed_type="image",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", block_out_channels=(32, 64), layers_per_block=1,
        encoder_hid_dim=dim, encoder_hid_dim_type="image_proj", cross_attention_dim=32, attention_head_dim=4,
        resnet_time_scale_shift="scale_shift", class_embed_type=None)
    movq = VQModel(block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
                   in_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8, norm_type="spatial",
                   num_vq_embeddings=12, out_channels=3,
                   up_block_types=["AttnUpDecoderBlock2D", "UpDecoderBlock2D"], vq_embed_dim=4)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.00085, beta_end=0.012,
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                              prediction_type="epsilon", thresholding=False)
    return KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq)


def build_tiny_generator(family: str, folder: str | os.PathLike, *, dim: int = 32, seed: int = 0,
                         sample_size: int | None = 16, text_encoder: bool = False) -> Path:
    """Save a tiny random ``unclip`` or ``kandinsky`` pipeline conditioned on `dim`-dimensional
    image embeddings to `folder` (safetensors); returns the folder. `sample_size` is the latent
    side: the default image side is 2 x that; None builds the UNet without one, as diffusers
    does by default (its config then says ``"sample_size": null``). `text_encoder` (unclip):
    include a tiny tokenizer and text encoder, as the real Stable unCLIP folders have (otherwise the prompt is zeros)."""
    import tempfile

    import torch

    if family not in ("unclip", "kandinsky"):
        raise ValueError(f"family must be 'unclip' or 'kandinsky', got {family!r}")
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        if family == "unclip":
            pipeline = _tiny_unclip(dim, sample_size, _tiny_text(Path(tmp)) if text_encoder else None)
        else:
            pipeline = _tiny_kandinsky(dim, sample_size)
        pipeline.save_pretrained(folder, safe_serialization=True)
    return Path(folder)
