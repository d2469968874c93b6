"""Inception-v3 pool3 features by clean-fid's protocol (Parmar et al., CVPR 2022), for FD / KD.

Why a module of its own: Fréchet and kernel distances computed with Inception are only
comparable across papers when three things match, and each differs between popular tools:

* **the network**: the TensorFlow Inception of 2015-12-05 (``inception-2015-12-05.tgz``) that
  the original FID code used, not torchvision's ImageNet Inception. It differs from torchvision's
  in four pooling layers: the pool branch of the 35×35, 17×17 and first 8×8 blocks averages
  *without* the zero padding (``count_include_pad=False``), and that of the last 8×8 block takes
  a max instead of an average; its classifier has 1008 classes. The features are the 2048
  averages of the last block ("pool3").
* **the resize** to 299×299: clean-fid's ``clean`` mode resizes each channel separately as a
  32-bit float image with PIL's bicubic filter (antialiased when shrinking), clips to [0, 255]
  and does *not* round back to 8 bits (:func:`clean_resize`). A tensor resize without
  antialiasing (``legacy_pytorch``) or TensorFlow's resize inside the graph
  (``legacy_tensorflow``) gives other numbers.
* **the input scaling**: ``(x - 128) / 128`` on values in [0, 255], as clean-fid applies before
  the TF-ported graph (pytorch-fid's ``2x - 1`` on [0, 1] is ``(x - 127.5) / 127.5``).

Weights, by local path (nothing is downloaded; ``$GENCRITIC_INCEPTION_WEIGHTS`` names the default):

* ``pt_inception-2015-12-05-6726825d.pth``: the TF weights ported to a PyTorch state dict, as
  pytorch-fid distributes it (torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``
  carries the same sha256 prefix and is tried too); loaded strictly into
  :func:`build_fid_inception`, so a file of other keys is refused, not half-loaded.
* ``inception-2015-12-05.pt``: NVIDIA's TorchScript export (StyleGAN2-ADA's metrics), the file
  clean-fid downloads; its ``layers`` module is called on the scaled 299×299 input, as clean-fid
  does in ``clean`` mode.

Both are looked for, when no path is given, in ``$TORCH_HOME/hub/checkpoints`` (where
pytorch-fid, torch-fidelity and torchmetrics keep them) and in ``/tmp`` (clean-fid's folder).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gencritic.errors import ModelUnavailableError
from gencritic.models.device import resolve_device

INCEPTION_SIZE = 299
FEATURE_DIM = 2048
ENCODE_CHUNK = 32  # images per forward pass: bounds the activations' memory, not the numbers
STATE_DICT_NAME = "pt_inception-2015-12-05-6726825d.pth"
TORCHSCRIPT_NAME = "inception-2015-12-05.pt"
WEIGHTS_ENV = "GENCRITIC_INCEPTION_WEIGHTS"
DEFAULT_INCEPTION = "inception-2015-12-05"  # the name a metric records; resolved by :func:`find_weights`


def clean_resize(rgb: np.ndarray, size: int = INCEPTION_SIZE) -> np.ndarray:
    """clean-fid's ``clean`` resize: (H, W, 3) uint8 -> (size, size, 3) float32 in [0, 255].

    Each channel becomes a 32-bit float PIL image (mode ``F``), is resized with the bicubic
    filter and clipped to [0, 255]; nothing is rounded, so no quantisation step is added."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"clean_resize takes an (H, W, 3) RGB array, got shape {arr.shape}")
    channels = [
        np.asarray(Image.fromarray(arr[:, :, c].astype(np.float32), mode="F")
                   .resize((size, size), resample=Image.Resampling.BICUBIC)).clip(0, 255)
        for c in range(3)
    ]
    return np.stack(channels, axis=2).astype(np.float32)


def _pool_fixed(base: type[nn.Module], pool: Callable[[torch.Tensor], torch.Tensor]) -> type[nn.Module]:
    """``base`` (a torchvision Inception block) whose pool branch pools with ``pool``.

    torchvision's blocks return their branches from ``_forward`` with the pool branch last; only
    that branch differs in the TF graph, so it is recomputed from the block's input."""

    class Fixed(base):  # type: ignore[misc, valid-type]
        def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            outputs = list(super()._forward(x))
            outputs[-1] = self.branch_pool(pool(x))
            return outputs

    Fixed.__name__ = f"TF{base.__name__}"
    return Fixed


def _avg_no_pad(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _max_same(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


def build_fid_inception() -> nn.Module:
    """The TF Inception-v3 graph of FID, as a torchvision ``Inception3`` with its pool branches
    fixed (module docstring); parameter names are those of the ported state dict."""
    from torchvision.models.inception import Inception3, InceptionA, InceptionC, InceptionE

    net = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    block_a = _pool_fixed(InceptionA, _avg_no_pad)
    block_c = _pool_fixed(InceptionC, _avg_no_pad)
    net.Mixed_5b = block_a(192, pool_features=32)
    net.Mixed_5c = block_a(256, pool_features=64)
    net.Mixed_5d = block_a(288, pool_features=64)
    for name, channels in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        setattr(net, name, block_c(768, channels_7x7=channels))
    net.Mixed_7b = _pool_fixed(InceptionE, _avg_no_pad)(1280)
    net.Mixed_7c = _pool_fixed(InceptionE, _max_same)(2048)
    return net


class Pool3(nn.Module):
    """Scaled (N, 3, 299, 299) input -> (N, 2048) pool3 features of a :func:`build_fid_inception` net."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                     "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(n, name)(x)
        return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def find_weights(spec: str | None) -> Path:
    """The weights file for ``spec`` (a path, or None/the default name: the environment
    variable, then the folders other tools download to), or a ModelUnavailableError saying how
    to provide it."""
    if spec and spec != DEFAULT_INCEPTION:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ModelUnavailableError(
                f"Inception weights not found: {path} (give {STATE_DICT_NAME} as pytorch-fid distributes it, or "
                f"{TORCHSCRIPT_NAME} as clean-fid does)")
        return path
    candidates: list[Path] = []
    if os.environ.get(WEIGHTS_ENV):
        candidates.append(Path(os.environ[WEIGHTS_ENV]).expanduser())
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")).expanduser()
    checkpoints = torch_home / "hub" / "checkpoints"
    candidates += [checkpoints / STATE_DICT_NAME, checkpoints / f"weights-{STATE_DICT_NAME[3:]}",
                   Path("/tmp") / TORCHSCRIPT_NAME]
    for path in candidates:
        if path.is_file():
            return path
    raise ModelUnavailableError(
        f"Inception-v3 FID weights not found (looked at: {', '.join(str(p) for p in candidates)}). Download "
        f"{STATE_DICT_NAME} (pytorch-fid's release 'fid_weights') or {TORCHSCRIPT_NAME} (StyleGAN2-ADA's metrics) "
        f"on a machine with internet access and pass model=PATH, or set ${WEIGHTS_ENV}")


def _is_torchscript(path: Path) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in zf.namelist())


class InceptionFeatures:
    """A loaded FID Inception and clean-fid's preprocessing; thread-safe encode.

    Duck-types the backbone interface of :func:`gencritic.views.encode_images_cached`
    (``cache_namespace``, ``preprocess``, ``encode_images``), so features are cached by the
    view's content hash like CLIP embeddings."""

    def __init__(self, layers: Callable[[torch.Tensor], torch.Tensor], model_id: str, weights_sha: str,
                 device: torch.device, module: nn.Module) -> None:
        self.layers = layers
        self.model_id = model_id
        self.weights_sha = weights_sha
        self.device = device
        self.module = module
        self.lock = threading.Lock()
        self.preprocess_id = "clean-fid-299"
        self.reference_memo: dict[str, np.ndarray] = {}  # reference set key -> features (metrics/set_distances.py)

    @property
    def cache_namespace(self) -> str:
        return f"inception-pool3|{self.weights_sha[:16]}|clean299|fp32|{self.device.type}"

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL RGB -> (3, 299, 299) float32 in [0, 255] (:func:`clean_resize`)."""
        rgb = np.asarray(image.convert("RGB"))
        return torch.from_numpy(clean_resize(rgb).transpose(2, 0, 1).copy())

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, 299, 299) in [0, 255] -> (N, 2048) float32 on the CPU (not normalised)."""
        out = []
        with self.lock:
            for chunk in pixels.split(ENCODE_CHUNK):  # a run's batch holds every view of 32 meshes
                x = (chunk.to(self.device, torch.float32) - 128.0) / 128.0
                out.append(self.layers(x).reshape(x.shape[0], FEATURE_DIM).float().cpu())
        return torch.cat(out) if out else torch.zeros((0, FEATURE_DIM))


def load_inception(spec: str | None = None, device: str | torch.device = "auto") -> InceptionFeatures:
    """Load the FID Inception from a state dict or TorchScript file (module docstring)."""
    from gencritic.hashing import sha256_file

    path = find_weights(spec)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    sha = sha256_file(path)
    try:
        if _is_torchscript(path):
            script = torch.jit.load(str(path), map_location=dev).eval()
            layers = getattr(script, "layers", None)
            if layers is None:
                raise ModelUnavailableError(f"{path} is a TorchScript file without the 'layers' module of "
                                            f"{TORCHSCRIPT_NAME}; give that file or {STATE_DICT_NAME}")
            return InceptionFeatures(layers, str(path), sha, dev, script)
        state: Any = torch.load(str(path), map_location="cpu", weights_only=True)
        net = build_fid_inception()
        net.load_state_dict(state)
    except ModelUnavailableError:
        raise
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ModelUnavailableError(f"cannot load Inception weights {path}: {reason} (expected {STATE_DICT_NAME} "
                                    f"or {TORCHSCRIPT_NAME})") from None
    module = Pool3(net).eval().to(dev)
    return InceptionFeatures(module, str(path), sha, dev, module)
