"""The last layer of a CLIP image tower, computed for the class token only.

Why: a CLIP image embedding is the projection of the class token's output of the last layer.
The other tokens' outputs of that layer are computed and thrown away: ViT-B/32 spends 49/50 of
its last layer's query, output projection and MLP (about 7% of the whole tower) on them. Here
the keys and values still come from every token, so the class token sees exactly what it saw
before; only the rows nobody reads are skipped. The result equals the full layer's class row
to float32 rounding (``tests/test_cls_only.py`` compares it with the unmodified model).

Only the image tower of transformers' ``CLIPModel`` (whose embedding is the class token, never
a mean over tokens) is changed, and only when the layer is the standard ``CLIPEncoderLayer``
shape; anything else (masks, attention weights asked for) runs the original layer.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class ClassTokenLastLayer(torch.nn.Module):
    """Wraps a transformers ``CLIPEncoderLayer``; returns a 1-token sequence (the class token)."""

    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.layer = layer

    @staticmethod
    def applies_to(layer: torch.nn.Module) -> bool:
        attn = getattr(layer, "self_attn", None)
        return (all(hasattr(layer, n) for n in ("layer_norm1", "layer_norm2", "mlp")) and attn is not None
                and all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "out_proj", "num_heads",
                                                   "head_dim", "scale")))

    def forward(self, hidden_states: torch.Tensor, attention_mask: Any = None, causal_attention_mask: Any = None,
                output_attentions: bool | None = False, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        if attention_mask is not None or causal_attention_mask is not None or output_attentions or kwargs:
            return self.layer(hidden_states, attention_mask, causal_attention_mask,  # type: ignore[no-any-return]
                              output_attentions=output_attentions, **kwargs)
        layer: Any = self.layer
        attn: Any = layer.self_attn
        batch, tokens, width = hidden_states.shape
        heads, head_dim = int(attn.num_heads), int(attn.head_dim)
        normed = layer.layer_norm1(hidden_states)
        query = attn.q_proj(normed[:, :1]).view(batch, 1, heads, head_dim).transpose(1, 2)
        key = attn.k_proj(normed).view(batch, tokens, heads, head_dim).transpose(1, 2)
        value = attn.v_proj(normed).view(batch, tokens, heads, head_dim).transpose(1, 2)
        attended = F.scaled_dot_product_attention(query, key, value, scale=attn.scale)
        attended = attn.out_proj(attended.transpose(1, 2).reshape(batch, 1, width))
        cls = hidden_states[:, :1] + attended
        return (cls + layer.mlp(layer.layer_norm2(cls)),)


def skip_unread_tokens(vision_model: torch.nn.Module) -> bool:
    """Make a transformers CLIP vision tower compute its last layer for the class token only.

    Returns whether it did. The tower's ``last_hidden_state`` then has one token; its pooled
    output (what ``get_image_features`` projects) is unchanged.
    """
    layers = getattr(getattr(vision_model, "encoder", None), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or not len(layers):
        return False
    last = layers[-1]
    if isinstance(last, ClassTokenLastLayer) or not ClassTokenLastLayer.applies_to(last):
        return isinstance(last, ClassTokenLastLayer)
    layers[-1] = ClassTokenLastLayer(last)
    return True
