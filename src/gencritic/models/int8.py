"""CPU fast mode: dynamic int8 Linear layers, built once per load with no wasted work.

Same arithmetic as ``torch.ao.quantization.quantize_dynamic`` with its default qconfig
(weights per-tensor symmetric qint8 from min/max, activations quantised per call with
``reduce_range``), checked against it in the tests. Why not call ``quantize_dynamic``: it
deep-copies the model and packs every weight three times (two of them a zero placeholder),
which cost ~0.8 s per ViT-B/32 load, a sixth of a 96-image run.

torch 2.14 deprecates quantised tensor creation (the whole eager ``torch.ao`` path, on its
way to torchao, whose int8 CPU kernels need ``torch.compile`` to be fast). The warning is
silenced where we create the packed weight; when the ops go, this module is the one place
to port, and the bit-identity test says whether the port kept the arithmetic.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TypeGuard

import torch

_QMIN, _QMAX = -128, 127


class Int8DynamicLinear(torch.nn.Module):
    """A frozen ``nn.Linear`` with int8 weights; activations are quantised on the fly (fbgemm).

    ``weight`` is an empty float32 buffer: model code reads ``layer.weight.dtype`` to decide what
    dtype to feed a layer (open_clip's ``get_cast_dtype`` on ``mlp.c_fc``, transformers' patch
    embedding), and float32 is the right answer for these layers.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, weight_scale: float = 1.0,
                 bias_scale: float = 1.0) -> None:
        """``weight`` (out, in) and ``bias`` as a Linear holds them. ``weight_scale``/``bias_scale``
        > 0 make this the int8 form of ``W * weight_scale`` and ``b * bias_scale`` without
        computing the product: per-tensor symmetric quantisation of a scaled tensor has the same
        integers, with the scale multiplied."""
        super().__init__()
        if weight_scale <= 0:
            raise ValueError("weight_scale must be positive")
        weight = weight.detach().float()
        bias = None if bias is None else bias.detach().float() * bias_scale
        amax = float(torch.maximum(-weight.min(), weight.max()).clamp_min(0.0))
        scale = max(amax / ((_QMAX - _QMIN) / 2), torch.finfo(torch.float32).eps)
        self.out_features, self.in_features = weight.shape
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*quantized tensor creation.*deprecated", category=UserWarning)
            qweight = torch.quantize_per_tensor(weight, scale, 0, torch.qint8)
            if weight_scale != 1.0:
                qweight = torch._make_per_tensor_quantized_tensor(qweight.int_repr(), scale * weight_scale, 0)
            self._packed = torch.ops.quantized.linear_prepack(qweight, bias)
        self.register_buffer("weight", torch.empty(0), persistent=False)

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, weight_scale: float = 1.0,
                    bias_scale: float = 1.0) -> Int8DynamicLinear:
        return cls(linear.weight, linear.bias, weight_scale, bias_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x.float(), self._packed, reduce_range=True)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, dtype=qint8"


def quantise_linears(model: torch.nn.Module, only: Sequence[str] | None = None) -> torch.nn.Module:
    """Replace, in place, every ``nn.Linear`` in ``model`` (or in its submodules named by ``only``)
    with :class:`Int8DynamicLinear`; returns ``model`` (a bare Linear comes back converted).

    Exact type only, as ``quantize_dynamic``'s mapping: subclasses such as
    ``nn.MultiheadAttention``'s ``out_proj`` are read as raw weights by their owner's functional
    forward, so they must stay float modules.
    """
    if type(model) is torch.nn.Linear:
        return Int8DynamicLinear.from_linear(model)
    for path in only if only is not None else [""]:
        root = model.get_submodule(path)
        if type(root) is torch.nn.Linear:
            _set_submodule(model, path, Int8DynamicLinear.from_linear(root))
            continue
        for parent in list(root.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is torch.nn.Linear:
                    setattr(parent, name, Int8DynamicLinear.from_linear(child))
    return model


def _set_submodule(model: torch.nn.Module, path: str, module: torch.nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent), name, module)


class Int8PatchEmbedding(torch.nn.Module):
    """A ViT patch embedding (``Conv2d`` with kernel == stride, no padding) as an int8 Linear.

    Such a convolution is a matrix product over non-overlapping patches; as a dynamic int8
    Linear it is ~2x faster than the fp32 convolution, which was ~8% of an int8 ViT-B/32
    forward. ``weight`` is an empty float32 buffer, as on :class:`Int8DynamicLinear`.
    """

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        super().__init__()
        out_channels, _, k, _ = conv.weight.shape
        self.patch, self.out_channels = k, out_channels
        # (out, in, k, k) flattens in the (channel, row, column) order the patches are laid out in
        self.linear = Int8DynamicLinear(conv.weight.reshape(out_channels, -1), conv.bias)
        self.register_buffer("weight", torch.empty(0), persistent=False)

    @staticmethod
    def applies_to(module: torch.nn.Module) -> TypeGuard[torch.nn.Conv2d]:
        return (isinstance(module, torch.nn.Conv2d) and module.kernel_size[0] == module.kernel_size[1]
                and tuple(module.stride) == tuple(module.kernel_size) and tuple(module.padding) == (0, 0)
                and tuple(module.dilation) == (1, 1) and module.groups == 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        k = self.patch
        h, w = height // k, width // k
        x = x[:, :, : h * k, : w * k]  # what the strided convolution ignores
        patches = x.reshape(b, c, h, k, w, k).permute(0, 2, 4, 1, 3, 5).reshape(b * h * w, c * k * k)
        return self.linear(patches).reshape(b, h, w, self.out_channels).permute(0, 3, 1, 2)


def quantise_patch_embedding(model: torch.nn.Module, path: str) -> bool:
    """Swap the convolution at ``path`` for :class:`Int8PatchEmbedding` when it is a plain
    patchify convolution; returns whether it did."""
    conv = model.get_submodule(path)
    if not Int8PatchEmbedding.applies_to(conv):
        return False
    _set_submodule(model, path, Int8PatchEmbedding(conv))
    return True
