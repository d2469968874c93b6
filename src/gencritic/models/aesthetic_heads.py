"""Small regression heads that run on CLIP image embeddings (LAION aesthetic predictors).

Two published formats are recognised from the state-dict keys alone:

* **v1 linear** (LAION-AI/aesthetic-predictor ``sa_0_4_vit_*_linear.pth``): ``weight`` (1, D), ``bias`` (1,);
* **v2 MLP** (christophschuhmann/improved-aesthetic-predictor ``sac+logos+ava1-l14-linearMSE.pth``):
  ``layers.{0,2,4,6,7}.{weight,bias}``: Linear 768-1024-128-64-16-1 with dropouts (identity at
  inference) and no activations.

Both take the L2-normalised image embedding of the CLIP model they were trained on. A head whose
input size does not match the backbone's embedding size is refused, because feeding it the wrong
model's embeddings yields a number with no meaning.

Which backbone, when the user names none (:func:`backbone_for_head`): the head decides, by its
input width. 768 is OpenAI ViT-L/14 (the v2 MLP and the v1 L/14 head). 512 is ambiguous: the v1
ViT-B/32 and ViT-B/16 heads are both 512-d and nothing in their weights tells them apart, so the
file name decides, as LAION names them (``vit_b_32``/``b32``/``patch32``, ``vit_b_16``/...); a
512-d head whose name says neither is refused with the two choices rather than guessed. Any other
width needs ``model=``. An explicit ``model=`` is refused when its width differs from the head's,
or when it is one of these OpenAI models and the head's file name names another.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from gencritic.errors import InputError, ModelUnavailableError

HEAD_ENV = "GENCRITIC_AESTHETIC_HEAD"
VIT_L14 = "openai/clip-vit-large-patch14"
VIT_B32 = "openai/clip-vit-base-patch32"
VIT_B16 = "openai/clip-vit-base-patch16"
# Input width -> the OpenAI CLIPs whose image embeddings have it (LAION trained its heads on these).
HEAD_BACKBONES: dict[int, tuple[str, ...]] = {768: (VIT_L14,), 512: (VIT_B32, VIT_B16)}
# What LAION's file names say: sa_0_4_vit_b_32_linear.pth, sa_0_4_vit_l_14_linear.pth, sac+logos+ava1-l14-...
_NAME_HINTS = (
    (re.compile(r"(?<![a-z0-9])(?:vit[-_]?)?b[-_/]?32(?![0-9])|patch32"), VIT_B32),
    (re.compile(r"(?<![a-z0-9])(?:vit[-_]?)?b[-_/]?16(?![0-9])|patch16"), VIT_B16),
    (re.compile(r"(?<![a-z0-9])(?:vit[-_]?)?l[-_/]?14(?![0-9])|patch14"), VIT_L14),
)


@dataclass
class EmbeddingHead:
    """A chain of affine layers (no activations, as in both LAION heads)."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]  # (weight (out, in), bias (out,)) in order
    kind: str
    path: str

    @property
    def in_dim(self) -> int:
        return int(self.layers[0][0].shape[1])

    @torch.inference_mode()
    def __call__(self, emb: torch.Tensor) -> torch.Tensor:
        """(N, D) unit embeddings -> (N,) scores, in float64 for stable reporting."""
        h = emb.double()
        for w, b in self.layers:
            h = h @ w.double().T + b.double()
        return h[:, 0]

    def check_dim(self, dim: int, model_id: str) -> None:
        if dim != self.in_dim:
            raise InputError(
                f"aesthetic head {self.path} expects {self.in_dim}-d CLIP embeddings but model '{model_id}' gives "
                f"{dim}-d: use the head trained for that model (v1 B/32 or B/16 heads are 512-d, L/14 heads 768-d) "
                f"or set aesthetic:model=<matching CLIP>")


def named_backbone(path: str | Path) -> str | None:
    """The OpenAI CLIP a head's file name names (LAION's naming), or None."""
    name = Path(path).name.lower()
    return next((model for pattern, model in _NAME_HINTS if pattern.search(name)), None)


def backbone_for_head(head: EmbeddingHead, explicit: str | None) -> str:
    """The CLIP to run under ``head``: ``explicit`` when given and consistent with the head's
    name, else the one its input width (and, for 512-d, its file name) decides; one InputError
    line otherwise. The width of an explicit model is checked once it is loaded (check_dim)."""
    width = head.in_dim
    named = named_backbone(head.path)
    candidates = HEAD_BACKBONES.get(width, ())
    if named not in candidates:  # a name that contradicts the width says nothing
        named = None
    if explicit:
        known = {m for models in HEAD_BACKBONES.values() for m in models}
        if named and explicit in known and explicit != named:
            raise InputError(f"aesthetic head {head.path} was trained on {named} (its file name says so) but "
                             f"model={explicit}: drop model= or give the head trained for {explicit}")
        return explicit
    if named:
        return named
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise InputError(f"aesthetic head {head.path} takes {width}-d embeddings, which {' and '.join(candidates)} "
                         f"both give, and its file name does not say which: add model={candidates[0]} (or "
                         f"model={candidates[1]}) to the aesthetic spec")
    raise InputError(f"aesthetic head {head.path} takes {width}-d embeddings, which no default CLIP gives (768-d: "
                     f"ViT-L/14, 512-d: ViT-B/32 or B/16): add model=<the CLIP it was trained on> to the aesthetic spec")


def parse_head(state: dict[str, torch.Tensor], path: str) -> EmbeddingHead:
    """Recognise a v1 linear or v2 MLP state dict; anything else is refused with its keys."""
    if set(state) == {"weight", "bias"}:
        w, b = state["weight"], state["bias"]
        if w.ndim != 2 or w.shape[0] != 1:
            raise ModelUnavailableError(f"aesthetic head {path}: weight has shape {tuple(w.shape)}, expected (1, D)")
        return EmbeddingHead([(w.float(), b.float().reshape(1))], "linear-v1", path)
    idx = sorted({int(m.group(1)) for k in state if (m := re.fullmatch(r"layers\.(\d+)\.weight", k))})
    if idx and all(f"layers.{i}.bias" in state for i in idx):
        layers = [(state[f"layers.{i}.weight"].float(), state[f"layers.{i}.bias"].float()) for i in idx]
        for (w1, _), (w2, _) in itertools.pairwise(layers):
            if w1.shape[0] != w2.shape[1]:
                raise ModelUnavailableError(f"aesthetic head {path}: layer sizes do not chain")
        if layers[-1][0].shape[0] != 1:
            raise ModelUnavailableError(f"aesthetic head {path}: last layer has {layers[-1][0].shape[0]} outputs, expected 1")
        return EmbeddingHead(layers, "mlp-v2", path)
    keys = ", ".join(sorted(state)[:6])
    raise ModelUnavailableError(f"aesthetic head {path} is neither a LAION v1 linear head (weight, bias) nor a v2 MLP "
                                f"(layers.N.weight/bias); its keys: {keys}")


def resolve_head_path(option: str | None) -> Path:
    """The head file from the metric option, else ``$GENCRITIC_AESTHETIC_HEAD``; never guessed."""
    value = option or os.environ.get(HEAD_ENV)
    if not value:
        raise ModelUnavailableError(
            "aesthetic needs a LAION head file: pass aesthetic:head=/path/sac+logos+ava1-l14-linearMSE.pth (v2, ViT-L/14) "
            f"or a v1 sa_0_4_vit_*_linear.pth, or set {HEAD_ENV}")
    path = Path(value).expanduser()
    if not path.is_file():
        raise ModelUnavailableError(f"aesthetic head file not found: {path} (aesthetic:head=... or {HEAD_ENV})")
    return path


def load_head(path: Path) -> EmbeddingHead:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, pickle with code, wrong format
        raise ModelUnavailableError(f"cannot read aesthetic head {path}: {str(exc).splitlines()[0]}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelUnavailableError(f"aesthetic head {path} is not a state dict")
    return parse_head({str(k): v for k, v in state.items()}, str(path))
