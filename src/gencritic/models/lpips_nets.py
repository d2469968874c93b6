"""LPIPS networks (Zhang et al., CVPR 2018): an ImageNet backbone plus calibrated 1x1 heads.

Two kinds of weights, two sources, both explicit:

* the **linear heads** (``lin0..lin6``, calibrated on human 2AFC judgments) ship inside the
  ``lpips`` pip package (``lpips/weights/v0.1/<net>.pth``);
* the **backbone** is torchvision's ImageNet AlexNet / VGG16 / SqueezeNet 1.1. torchvision would
  download it on first use; offline we look for the same file, in this order: the ``weights``
  metric option, ``$GENCRITIC_LPIPS_<NET>_WEIGHTS``, and torchvision's own download cache
  (``$TORCH_HOME/hub/checkpoints/<file>``). If none exists, :class:`ModelUnavailableError` says
  where to put it. A random backbone is never substituted: it would give plausible-looking but
  meaningless distances.

The forward pass reproduces ``lpips.LPIPS(version="0.1")``: scale to the backbone's input
statistics, unit-normalise each layer's channels, squared difference, 1x1 head, spatial mean,
sum over layers. The spatial mean can be weighted by a mask (object-only comparison).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gencritic.errors import InputError, ModelUnavailableError


@dataclass(frozen=True)
class NetSpec:
    builder: str  # torchvision.models function
    file: str  # torchvision's checkpoint file name (what its download cache holds)
    channels: tuple[int, ...]
    cuts: tuple[int, ...]  # feature-module indices at which each LPIPS layer is taken (exclusive ends)


NETS: dict[str, NetSpec] = {
    "alex": NetSpec("alexnet", "alexnet-owt-7be5be79.pth", (64, 192, 384, 256, 256), (2, 5, 8, 10, 12)),
    "vgg": NetSpec("vgg16", "vgg16-397923af.pth", (64, 128, 256, 512, 512), (4, 9, 16, 23, 30)),
    "squeeze": NetSpec("squeezenet1_1", "squeezenet1_1-b8a52dc0.pth", (64, 128, 256, 384, 384, 512, 512),
                       (2, 5, 8, 10, 11, 12, 13)),
}
ALIASES = {"alexnet": "alex", "vgg16": "vgg", "squeezenet": "squeeze"}

# lpips.ScalingLayer constants: map [-1, 1] inputs to ImageNet statistics.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def canonical_net(name: str) -> str:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in NETS:
        raise InputError(f"lpips net {name!r} is unknown: use net=alex, net=vgg or net=squeeze")
    return key


def backbone_candidates(net: str, weights: str | None = None) -> list[Path]:
    """Where the backbone weights are looked for, in order."""
    spec = NETS[net]
    out: list[Path] = []
    if weights:
        out.append(Path(weights).expanduser())
    env = os.environ.get(f"GENCRITIC_LPIPS_{net.upper()}_WEIGHTS")
    if env:
        out.append(Path(env).expanduser())
    out.append(Path(torch.hub.get_dir()) / "checkpoints" / spec.file)
    return out


def head_weights_path(net: str) -> Path:
    """The calibrated v0.1 heads inside the installed ``lpips`` package."""
    import importlib.util

    found = importlib.util.find_spec("lpips")
    if found is None or not found.submodule_search_locations:
        raise ModelUnavailableError(f"lpips:net={net} needs the `lpips` package for its calibrated heads: "
                                    "pip install 'gencritic[metrics]' (or pip install lpips)")
    path = Path(next(iter(found.submodule_search_locations))) / "weights" / "v0.1" / f"{net}.pth"
    if not path.is_file():
        raise ModelUnavailableError(f"lpips package has no head weights at {path}; reinstall lpips>=0.1.4")
    return path


def _features(net: str) -> nn.Sequential:
    """The backbone's convolutional part only (VGG16's 120M-parameter classifier is never built)."""
    import torchvision

    if net == "vgg":
        from torchvision.models.vgg import cfgs, make_layers

        return make_layers(cfgs["D"], batch_norm=False)
    model = getattr(torchvision.models, NETS[net].builder)(weights=None)
    return model.features  # type: ignore[no-any-return]


class LPIPSNet(nn.Module):
    """Backbone slices + heads; ``forward`` returns one distance per image pair."""

    def __init__(self, net: str, features: nn.Sequential, heads: Sequence[torch.Tensor]) -> None:
        super().__init__()
        spec = NETS[net]
        self.net_name = net
        starts = (0, *spec.cuts[:-1])
        self.slices = nn.ModuleList(nn.Sequential(*[features[i] for i in range(a, b)])
                                    for a, b in zip(starts, spec.cuts, strict=True))
        self.heads = nn.ParameterList(nn.Parameter(h.detach().clone().float(), requires_grad=False) for h in heads)
        self.shift: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    @torch.inference_mode()
    def forward(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``, ``y``: (N, 3, H, W) in [-1, 1]; ``mask``: optional (N, 1, H, W) weights in [0, 1]."""
        n = x.shape[0]
        both = self.features(torch.cat([x, y]))
        return self.distance([f[:n] for f in both], [f[n:] for f in both], mask)

    @torch.inference_mode()
    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's unit-normalised activations of (N, 3, H, W) images in [-1, 1]: what
        :meth:`distance` compares, kept apart so an image compared many times (a reference view
        shared by several generated assets) goes through the backbone once."""
        h = (x - self.shift) / self.scale
        out = []
        for block in self.slices:
            h = block(h)
            out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    @torch.inference_mode()
    def distance(self, fa: Sequence[torch.Tensor], fb: Sequence[torch.Tensor],
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        """One distance per pair of :meth:`features` rows, spatially averaged (weighted by ``mask``)."""
        total = torch.zeros(fa[0].shape[0], dtype=fa[0].dtype, device=fa[0].device)
        for a, b, head in zip(fa, fb, self.heads, strict=True):
            d = F.conv2d((a - b) ** 2, head)  # (N, 1, h, w)
            if mask is None:
                total = total + d.mean(dim=(1, 2, 3))
            else:
                m = F.adaptive_avg_pool2d(mask.to(d.dtype), (int(d.shape[-2]), int(d.shape[-1])))
                total = total + (d * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp_min(1e-12)
        return total


def build_lpips(net: str, backbone_state: dict[str, torch.Tensor], head_state: dict[str, torch.Tensor]) -> LPIPSNet:
    """Pure assembly from state dicts (torchvision model keys; lpips head keys)."""
    features = _features(net)
    feats = {k[len("features."):]: v for k, v in backbone_state.items() if k.startswith("features.")}
    if not feats:  # a bare ``features`` state dict
        feats = dict(backbone_state)
    missing, _unexpected = features.load_state_dict(feats, strict=False)
    if missing:
        raise ModelUnavailableError(f"lpips:net={net} backbone weights lack {len(missing)} tensors "
                                    f"(e.g. features.{missing[0]}): is this torchvision's {NETS[net].builder}?")
    heads = []
    for i in range(len(NETS[net].channels)):
        key = f"lin{i}.model.1.weight"
        if key not in head_state:
            raise ModelUnavailableError(f"lpips head file lacks {key}")
        heads.append(head_state[key])
    return LPIPSNet(net, features, heads)


def load_lpips(net: str = "alex", weights: str | None = None, device: str | torch.device = "cpu") -> LPIPSNet:
    """Load backbone + heads for ``net`` or raise one actionable :class:`ModelUnavailableError`."""
    net = canonical_net(net)
    candidates = backbone_candidates(net, weights)
    if weights and not candidates[0].is_file():
        raise ModelUnavailableError(f"lpips:net={net}: backbone weights file not found: {weights}")
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        spec = NETS[net]
        raise ModelUnavailableError(
            f"lpips:net={net} needs torchvision's ImageNet {spec.builder} weights ({spec.file}), not found in "
            f"{', '.join(str(p) for p in candidates)}: copy that file there (torchvision downloads it on a machine "
            f"with internet), set GENCRITIC_LPIPS_{net.upper()}_WEIGHTS, or pass lpips:net={net};weights=/path")
    try:
        backbone = torch.load(path, map_location="cpu", weights_only=True)
        heads = torch.load(head_weights_path(net), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise ModelUnavailableError(f"lpips:net={net}: cannot read weights {path}: {exc}") from None
    return build_lpips(net, backbone, heads).to(device)
