"""DINOv2 features for Fréchet / kernel distances, by dgm-eval's protocol (Stein et al., NeurIPS 2023).

Why not :mod:`gencritic.models.dino`: that encoder serves a cosine similarity, so it L2-normalises
and preprocesses with the checkpoint's own processor (resize the short side to 256, centre crop
224). Distances between feature *distributions* are computed on the raw features as dgm-eval
does (the feature extractor TRELLIS names for its FD_dinov2 / KD_dinov2 columns):

* model: ViT-L/14 (``dinov2_vitl14``; ``facebook/dinov2-large`` in transformers), any other
  DINOv2 by hub id or ``save_pretrained`` folder;
* resize: the whole image to 224×224 with PIL's bicubic filter on the 8-bit image (dgm-eval's
  default; torchvision's ``Resize`` on a PIL image calls PIL), no crop;
* scaling: to [0, 1], then ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225);
* feature: the CLS token after the final layer norm (the torch-hub model's output,
  ``pooler_output`` in transformers), **not** normalised.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from PIL import Image

from gencritic.errors import ModelUnavailableError
from gencritic.io.resize import bicubic_resize
from gencritic.models.device import resolve_device
from gencritic.models.loader import hub_offline

DGM_EVAL_DINOV2 = "facebook/dinov2-large"
DINO_SIZE = 224
ENCODE_CHUNK = 32
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DinoFeatures:
    """A loaded DINOv2 and dgm-eval's preprocessing; thread-safe encode. Duck-types the
    backbone interface of :func:`gencritic.views.encode_images_cached`."""

    def __init__(self, model: torch.nn.Module, model_id: str, device: torch.device) -> None:
        self.model = model.eval().to(device)
        self.model_id = model_id
        self.device = device
        self.lock = threading.Lock()
        self.preprocess_id = "dgm-eval-dinov2-224"
        self.reference_memo: dict[str, np.ndarray] = {}  # reference set key -> features (metrics/set_distances.py)
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        self.dim = int(getattr(getattr(model, "config", None), "hidden_size", 0))

    @property
    def cache_namespace(self) -> str:
        return f"dinov2-cls-raw|{self.model_id}|bicubic224|imagenet-norm|fp32|{self.device.type}"

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL RGB -> (3, 224, 224) float32, ImageNet-normalised."""
        rgb = bicubic_resize(image.convert("RGB"), (DINO_SIZE, DINO_SIZE))
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255.0
        return (x - self._mean) / self._std

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, 224, 224) preprocessed -> (N, D) CLS features after the final norm, float32 on the CPU."""
        out = []
        with self.lock:
            for chunk in pixels.split(ENCODE_CHUNK):  # bounds the activations' memory, not the numbers
                out.append(self.model(pixel_values=chunk.to(self.device, torch.float32)).pooler_output.float().cpu())
        return torch.cat(out) if out else torch.zeros((0, self.dim))


def load_dino_features(spec: str = DGM_EVAL_DINOV2, device: str | torch.device = "auto") -> DinoFeatures:
    """A DINOv2 by hub id or local folder (only the model: preprocessing is fixed above)."""
    from transformers import Dinov2Model

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    try:
        model = Dinov2Model.from_pretrained(spec, local_files_only=hub_offline())
    except (OSError, ValueError) as exc:
        reason = " ".join(str(exc).split("\n")[0].split())[:200]
        raise ModelUnavailableError(
            f"cannot load DINOv2 model '{spec}': {reason}. Pass model=/path/to/folder (saved with save_pretrained) "
            f"or place '{spec}' in the Hugging Face cache (HF_HOME) from a machine with internet access.") from None
    return DinoFeatures(model, spec, dev)
