"""The last layer of a CLIP image tower, computed for the class token only.

Why: a CLIP image embedding is the projection of the class token's output of the last layer.
The other tokens' outputs of that layer are computed and thrown away: ViT-B/32 spends 49/50 of
its last layer's query, output projection and MLP (about 7% of the whole tower) on them. Here
the keys and values still come from every token, so the class token sees exactly what it saw
before; only the rows nobody reads are skipped. The result equals the full layer's class row
to float32 rounding (``tests/test_cls_only.py`` compares it with the unmodified model).

Changed only where the embedding is the class token: transformers' ``CLIPModel`` image tower,
and open_clip ``VisionTransformer`` towers with ``pool_type='tok'`` and no attentional pooler
(not mean-pooled towers, not CoCa), and only when the last layer has the standard shape.
A call with masks or asking for attention weights runs the original layer.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(q kᵀ · scale) v for (B, H, 1, d) queries, written out rather than through
    ``scaled_dot_product_attention``: for a single query, torch's CPU kernel splits the keys
    across threads, so its result depended on the thread count (by 1e-7, but a stream must give
    the same bits as torch's threads). Here every row is one thread's work, whatever the count."""
    return torch.softmax((query @ key.transpose(-1, -2)) * scale, dim=-1) @ value


class ClassTokenLastLayer(torch.nn.Module):
    """Wraps a transformers ``CLIPEncoderLayer``; returns a 1-token sequence (the class token).

    In the layer's own calling convention, which changed in transformers 5: 4.x layers take
    ``(hidden, attention_mask, causal_attention_mask, output_attentions)`` and return a tuple,
    5.x layers take ``(hidden, attention_mask, **kwargs)`` and return the tensor itself.
    """

    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.returns_tuple = "causal_attention_mask" in inspect.signature(layer.forward).parameters

    @staticmethod
    def applies_to(layer: torch.nn.Module) -> bool:
        attn = getattr(layer, "self_attn", None)
        return (all(hasattr(layer, n) for n in ("layer_norm1", "layer_norm2", "mlp")) and attn is not None
                and all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "out_proj", "num_heads",
                                                   "head_dim", "scale")))

    def forward(self, hidden_states: torch.Tensor, attention_mask: Any = None, causal_attention_mask: Any = None,
                output_attentions: bool | None = False, **kwargs: Any) -> tuple[torch.Tensor, ...] | torch.Tensor:
        if attention_mask is not None or causal_attention_mask is not None or output_attentions or kwargs:
            if self.returns_tuple:
                return self.layer(hidden_states, attention_mask, causal_attention_mask,  # type: ignore[no-any-return]
                                  output_attentions=output_attentions, **kwargs)
            return self.layer(hidden_states, attention_mask, **kwargs)  # type: ignore[no-any-return]
        layer: Any = self.layer
        attn: Any = layer.self_attn
        batch, tokens, width = hidden_states.shape
        heads, head_dim = int(attn.num_heads), int(attn.head_dim)
        normed = layer.layer_norm1(hidden_states)
        query = attn.q_proj(normed[:, :1]).view(batch, 1, heads, head_dim).transpose(1, 2)
        key = attn.k_proj(normed).view(batch, tokens, heads, head_dim).transpose(1, 2)
        value = attn.v_proj(normed).view(batch, tokens, heads, head_dim).transpose(1, 2)
        attended = attend(query, key, value, float(attn.scale))
        attended = attn.out_proj(attended.transpose(1, 2).reshape(batch, 1, width))
        cls = hidden_states[:, :1] + attended
        out = cls + layer.mlp(layer.layer_norm2(cls))
        return (out,) if self.returns_tuple else out


def skip_unread_tokens(vision_model: torch.nn.Module) -> bool:
    """Make a transformers CLIP vision tower compute its last layer for the class token only.

    Returns whether it did. The tower's ``last_hidden_state`` then has one token; its pooled
    output (what ``get_image_features`` projects) is unchanged.
    """
    return _wrap_last(getattr(getattr(vision_model, "encoder", None), "layers", None), ClassTokenLastLayer)


class ClassTokenLastBlock(torch.nn.Module):
    """Wraps an open_clip ``ResidualAttentionBlock`` (self-attention, pre-norm); returns the
    class token only, as a 1-token sequence in the block's own layout (batch-first or not)."""

    def __init__(self, block: torch.nn.Module) -> None:
        super().__init__()
        self.block = block

    @staticmethod
    def applies_to(block: torch.nn.Module) -> bool:
        return (all(hasattr(block, n) for n in ("ln_1", "ln_2", "mlp", "ls_1", "ls_2"))
                and isinstance(getattr(block, "attn", None), torch.nn.MultiheadAttention)
                and getattr(block.attn, "in_proj_weight", None) is not None  # one packed q/k/v projection
                and not hasattr(block, "ln_1_kv"))  # a cross-attention block attends to something else

    def forward(self, q_x: torch.Tensor, k_x: Any = None, v_x: Any = None, attn_mask: Any = None) -> torch.Tensor:
        block: Any = self.block
        if k_x is not None or v_x is not None or attn_mask is not None:
            return block(q_x, k_x, v_x, attn_mask=attn_mask)  # type: ignore[no-any-return]
        attn = block.attn
        tokens = q_x if attn.batch_first else q_x.transpose(0, 1)  # (batch, tokens, width) from here
        batch, count, width = tokens.shape
        heads = int(attn.num_heads)
        head_dim = width // heads
        normed = block.ln_1(tokens)
        weight, bias = attn.in_proj_weight, attn.in_proj_bias

        def project(x: torch.Tensor, part: int, length: int) -> torch.Tensor:
            rows = slice(part * width, (part + 1) * width)
            out = F.linear(x, weight[rows], None if bias is None else bias[rows])
            return out.view(batch, length, heads, head_dim).transpose(1, 2)

        attended = attend(project(normed[:, :1], 0, 1), project(normed, 1, count), project(normed, 2, count),
                          head_dim ** -0.5)
        x = tokens[:, :1] + block.ls_1(attn.out_proj(attended.transpose(1, 2).reshape(batch, 1, width)))
        x = x + block.ls_2(block.mlp(block.ln_2(x)))
        return x if attn.batch_first else x.transpose(0, 1)  # type: ignore[no-any-return]


def skip_unread_tokens_open_clip(visual: torch.nn.Module) -> bool:
    """The same for an open_clip ``VisionTransformer`` whose embedding is its class token."""
    if getattr(visual, "pool_type", None) != "tok" or getattr(visual, "attn_pool", None) is not None:
        return False
    return _wrap_last(getattr(getattr(visual, "transformer", None), "resblocks", None), ClassTokenLastBlock)


def _wrap_last(layers: Any, wrapper: type[ClassTokenLastLayer] | type[ClassTokenLastBlock]) -> bool:
    """Wrap the last of ``layers`` (once: calling again finds it wrapped) when it has the shape."""
    if not isinstance(layers, torch.nn.ModuleList) or not len(layers):
        return False
    last = layers[-1]
    if isinstance(last, wrapper):
        return True
    if not wrapper.applies_to(last):
        return False
    layers[-1] = wrapper(last)
    return True
