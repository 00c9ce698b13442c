"""Export open_clip's transformer blocks as ONNX Runtime's fused operators (needs torch, onnx,
onnxscript: the ``[export]`` extra).

torch's ONNX exporter writes ``nn.MultiheadAttention`` as ~25 small nodes per block (Reshape,
Transpose, Squeeze, Gather, Mul, MatMul, Softmax ...) and the erf GELU as five element-wise
nodes; ONNX Runtime's graph optimizer fuses neither on that layout (nor does its transformer
optimizer, whose patterns were written for other exporters). So the export names the fused
operators itself: while :func:`fused_for_export` is active, each self-attention of an
open_clip ``ResidualAttentionBlock`` calls the custom torch op ``smic::qkv_attention`` and each
GELU / QuickGELU calls ``smic::gelu`` / ``smic::quick_gelu``; :func:`translation_table` tells the
exporter to write them as ``com.microsoft`` ``Attention`` (packed QKV weight and bias),
``Gelu`` and ``QuickGelu``. Dynamic int8 quantization then turns ``Attention`` into
``QAttention``, as onnxruntime does for BERT. Measured on a random ViT-B-32, batch 32, on
the 2-core CPU here: see BENCHMARKS.md ("CLIP image encoder").

Only what the fused operators compute exactly is swapped: self-attention with one packed
in-projection, bias, batch-first layout and no mask (open_clip's image towers); anything
else (cross-attention, masks, timm towers, custom blocks) is left to the plain export. The
custom ops have real torch implementations, so the patched model still runs in PyTorch, and
the export check compares ONNX Runtime with the *unpatched* model.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is an optional dependency (the [export] extra)
    import torch

__all__ = ["fused_for_export", "translation_table"]

_MS_DOMAIN = "com.microsoft"
_ops_ready = False


def _register_torch_ops() -> None:
    """Define the smic:: torch ops (once per process)."""
    global _ops_ready
    if _ops_ready:
        return
    import torch
    import torch.nn.functional as F

    # Schemas are spelled out: this module's postponed annotations cannot be read by torch.
    @torch.library.custom_op("smic::qkv_attention", mutates_args=(),
                             schema="(Tensor x, Tensor weight, Tensor bias, int num_heads) -> Tensor")
    def qkv_attention(x, weight, bias, num_heads):
        """Multi-head self-attention before the output projection, as ``com.microsoft``
        ``Attention`` computes it: x (N, L, D) @ weight (D, 3D) + bias -> Q, K, V -> softmax
        attention with scale 1/sqrt(D/heads) -> (N, L, D)."""
        n, length = x.shape[0], x.shape[1]
        width = weight.shape[1] // 3
        qkv = torch.addmm(bias, x.reshape(n * length, -1), weight)
        q, k, v = qkv.view(n, length, 3, num_heads, width // num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, length, width)

    @qkv_attention.register_fake
    def _(x, weight, bias, num_heads):
        return x.new_empty(x.shape[0], x.shape[1], weight.shape[1] // 3)

    @torch.library.custom_op("smic::gelu", mutates_args=(), schema="(Tensor x) -> Tensor")
    def gelu(x):
        return F.gelu(x)

    @gelu.register_fake
    def _(x):
        return torch.empty_like(x)

    @torch.library.custom_op("smic::quick_gelu", mutates_args=(), schema="(Tensor x) -> Tensor")
    def quick_gelu(x):
        return x * torch.sigmoid(1.702 * x)

    @quick_gelu.register_fake
    def _(x):
        return torch.empty_like(x)

    _ops_ready = True


def _contrib_ops() -> dict[str, Any]:
    """onnxscript ops for the three contrib ops, each with a minimal schema of its own.

    onnxscript (which the exporter traces the translations with) refuses an op without a
    schema, and onnx does not ship onnxruntime's contrib schemas. The schemas are handed to
    the ops directly, never registered with onnx: a registered ``Gelu`` or ``Attention`` in
    a second domain breaks ``onnx.reference`` for the whole process."""
    import onnx
    from onnxscript import values

    P = onnx.defs.OpSchema.FormalParameter
    A = onnx.defs.OpSchema.Attribute
    floats = [("T", ["tensor(float)", "tensor(float16)"], "float tensors")]
    specs = {
        "Attention": ([P("input", "T"), P("weights", "T"), P("bias", "T")],
                      [A("num_heads", onnx.defs.OpSchema.AttrType.INT, "number of attention heads")]),
        "Gelu": ([P("X", "T")], []),
        "QuickGelu": ([P("X", "T")], [A("alpha", onnx.defs.OpSchema.AttrType.FLOAT, "sigmoid slope")]),
    }
    opset = values.Opset(_MS_DOMAIN, 1)
    ops = {}
    for name, (inputs, attributes) in specs.items():
        schema = onnx.defs.OpSchema(
            name, _MS_DOMAIN, 1, doc=f"onnxruntime contrib op {name} (minimal schema, smic_fast)",
            inputs=inputs, outputs=[P("Y", "T")], type_constraints=floats, attributes=attributes)
        ops[name] = values.Op(opset, name, schema)
    return ops


def translation_table() -> dict[Any, Callable[..., Any]]:
    """``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``: the smic::
    ops written as ``com.microsoft`` Attention / Gelu / QuickGelu."""
    _register_torch_ops()
    import torch

    ms = _contrib_ops()

    def attention(x, weight, bias, num_heads: int):
        return ms["Attention"](x, weight, bias, num_heads=num_heads)

    def gelu(x):
        return ms["Gelu"](x)

    def quick_gelu(x):
        return ms["QuickGelu"](x, alpha=1.702)

    return {torch.ops.smic.qkv_attention.default: attention,
            torch.ops.smic.gelu.default: gelu,
            torch.ops.smic.quick_gelu.default: quick_gelu}


def _fused_attention_class():
    import torch
    from torch import nn

    class FusedSelfAttention(nn.Module):
        """Stands in for an ``nn.MultiheadAttention`` during export: self-attention through
        ``smic::qkv_attention`` (weights shared, the in-projection held transposed), any
        other call (cross-attention, a mask, attention weights) through the original."""

        def __init__(self, mha: nn.MultiheadAttention) -> None:
            super().__init__()
            self.original = [mha]  # a list: not a submodule, so not exported twice
            self.num_heads = mha.num_heads
            self.qkv_weight = nn.Parameter(mha.in_proj_weight.detach().t().contiguous(), requires_grad=False)
            self.qkv_bias = nn.Parameter(mha.in_proj_bias.detach(), requires_grad=False)
            self.out_proj = mha.out_proj

        def forward(self, query, key, value, need_weights: bool = True, attn_mask=None, **kwargs):
            if key is not query or value is not query or attn_mask is not None or need_weights or kwargs:
                return self.original[0](query, key, value, need_weights=need_weights, attn_mask=attn_mask, **kwargs)
            out = torch.ops.smic.qkv_attention(query, self.qkv_weight, self.qkv_bias, self.num_heads)
            return self.out_proj(out), None

    return FusedSelfAttention


def _activation_class(op_name: str):
    import torch
    from torch import nn

    op = getattr(torch.ops.smic, op_name)

    class FusedActivation(nn.Module):
        def forward(self, x):
            return op(x)

    FusedActivation.__name__ = f"Fused_{op_name}"
    return FusedActivation


def _can_fuse_attention(block) -> bool:
    from torch import nn

    mha = getattr(block, "attn", None)
    return (isinstance(mha, nn.MultiheadAttention) and mha.batch_first and mha._qkv_same_embed_dim
            and mha.in_proj_bias is not None and mha.bias_k is None and not mha.add_zero_attn
            and mha.embed_dim % mha.num_heads == 0 and not hasattr(block, "ln_1_kv"))


@contextlib.contextmanager
def fused_for_export(visual: torch.nn.Module) -> Iterator[dict[str, int]]:
    """Swap the fusable modules of an open_clip image tower for smic:: custom ops, and put
    the originals back on exit. Yields the counts ``{"attention": n, "gelu": n,
    "quick_gelu": n}`` (all 0 for towers with nothing to fuse)."""
    _register_torch_ops()
    from open_clip.transformer import QuickGELU, ResidualAttentionBlock
    from torch import nn

    attention_cls = _fused_attention_class()
    activations = {"gelu": _activation_class("gelu"), "quick_gelu": _activation_class("quick_gelu")}
    swapped: list[tuple[Any, str, Any]] = []
    counts = {"attention": 0, "gelu": 0, "quick_gelu": 0}
    try:
        for module in list(visual.modules()):
            if isinstance(module, ResidualAttentionBlock) and _can_fuse_attention(module):
                swapped.append((module, "attn", module.attn))
                module.attn = attention_cls(module.attn)
                counts["attention"] += 1
            for name, child in list(module.named_children()):
                kind = None
                if isinstance(child, nn.GELU) and child.approximate == "none":
                    kind = "gelu"
                elif isinstance(child, QuickGELU):
                    kind = "quick_gelu"
                if kind is not None:
                    swapped.append((module, name, child))
                    setattr(module, name, activations[kind]())
                    counts[kind] += 1
        yield counts
    finally:
        for module, name, original in reversed(swapped):
            setattr(module, name, original)
