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

import torch

_QMIN, _QMAX = -128, 127


class Int8DynamicLinear(torch.nn.Module):
    """A frozen ``nn.Linear`` with int8 weights; activations are quantised on the fly (fbgemm)."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        bias = None if linear.bias is None else linear.bias.detach().float()
        amax = float(torch.maximum(-weight.min(), weight.max()).clamp_min(0.0))
        scale = max(amax / ((_QMAX - _QMIN) / 2), torch.finfo(torch.float32).eps)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*quantized tensor creation.*deprecated", category=UserWarning)
            qweight = torch.quantize_per_tensor(weight, scale, 0, torch.qint8)
            self._packed = torch.ops.quantized.linear_prepack(qweight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x.float(), self._packed, reduce_range=True)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, dtype=qint8"


def quantise_linears(model: torch.nn.Module, only: Sequence[str] | None = None) -> torch.nn.Module:
    """Replace, in place, every ``nn.Linear`` in ``model`` (or in its submodules named by ``only``)
    with :class:`Int8DynamicLinear`; returns ``model`` (a bare Linear comes back converted)."""
    if isinstance(model, torch.nn.Linear):
        return Int8DynamicLinear(model)
    roots = [model] if only is None else [model.get_submodule(name) for name in only]
    for root in roots:
        if isinstance(root, torch.nn.Linear):
            parent_name, _, child = next(n for n, m in model.named_modules() if m is root).rpartition(".")
            setattr(model.get_submodule(parent_name), child, Int8DynamicLinear(root))
            continue
        for parent in list(root.modules()):
            for name, child_module in list(parent.named_children()):
                if isinstance(child_module, torch.nn.Linear):
                    setattr(parent, name, Int8DynamicLinear(child_module))
    return model
