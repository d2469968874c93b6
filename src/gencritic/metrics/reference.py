"""Reference-based metrics: how close is a generated view to a reference image.

Pairing: each item's ``reference`` (a manifest ``reference`` column, or ``--reference-dir``
matched by file stem). The pipeline loads it and fails the item, with a reason, when missing.

Size rule: the reference is resized to the generated view's size with PIL bicubic (PIL
antialiases when shrinking); the generated pixels are never resampled, so the score describes
the image the user made. Both images are composited on the run's background.

Masks: when the generated view or the reference has transparency, the object mask is the
union (max) of the two alpha channels (the reference's resized like its pixels). Outside the
mask the reference takes the generated image's pixels (``ref' = m*ref + (1-m)*gen``) so that
windows and receptive fields straddling the silhouette see one background; then ``ssim``,
``ms_ssim`` and ``psnr`` weight their per-pixel maps / squared error by the mask, and ``lpips``
weights each layer's spatial average by the mask pooled to that layer's grid. ``clip_i2i`` and ``dino``
compare global embeddings and cannot honour a mask (their inputs are composited images). Pass
``mask=none`` to any pixel metric to compare whole frames.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from PIL import Image
from pydantic import BeforeValidator, Field

from gencritic.metrics.base import ClipModelOptions, Metric, MetricInfo, MetricOptions, MetricResult
from gencritic.metrics.registry import register
from gencritic.models.defaults import DEFAULT_CLIP_MODEL, DEFAULT_DINO_MODEL

if TYPE_CHECKING:  # the metadata below is read without torch (`gencritic metrics`); compute imports it
    import torch

    from gencritic.io.images import LoadedImage
    from gencritic.views import RunContext, View, ViewBatch

LPIPS_MEMO_BYTES = 128 * 2**20  # reference features kept in memory by the lpips metric (mask=none)
NO_REFERENCE = "no reference image for this item (add a 'reference' column or use --reference-dir)"


def resize_reference(ref: LoadedImage, size: tuple[int, int]) -> tuple[Image.Image, np.ndarray | None]:
    """The documented size rule: reference -> generated size, bicubic; its alpha resized alike."""
    rgb, alpha = ref.rgb, ref.alpha
    if rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
        if alpha is not None:
            a = Image.fromarray(alpha.astype(np.float32), mode="F").resize(size, Image.Resampling.BICUBIC)
            alpha = np.clip(np.asarray(a, dtype=np.float32), 0.0, 1.0)
    return rgb, alpha


def object_mask(view_alpha: np.ndarray | None, ref_alpha: np.ndarray | None) -> np.ndarray | None:
    """Union of the two alpha channels (None when neither image has transparency)."""
    if view_alpha is None and ref_alpha is None:
        return None
    if view_alpha is None:
        return ref_alpha
    if ref_alpha is None:
        return view_alpha
    return np.maximum(view_alpha, ref_alpha)


def to_tensor(img: Image.Image, dtype: torch.dtype | None = None) -> torch.Tensor:
    """RGB PIL -> (1, 3, H, W) in [0, 1] (float64 unless ``dtype`` says otherwise)."""
    import torch

    arr = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).to(dtype or torch.float64)


def aligned_pair(view: View, ref: LoadedImage, use_mask: bool, dtype: torch.dtype | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(generated, reference, mask) tensors of identical size (float64 unless ``dtype`` says
    otherwise), following the module's rules."""
    import torch

    dtype = dtype or torch.float64
    img = view.image
    ref_rgb, ref_alpha = resize_reference(ref, img.size)
    mask = object_mask(view.alpha, ref_alpha) if use_mask else None
    m = None
    if mask is not None:
        if float(mask.sum()) <= 0.0:
            raise ValueError("the object mask is empty (fully transparent images): nothing to compare")
        m = torch.from_numpy(mask.astype(np.float64)).view(1, 1, *mask.shape).to(dtype)
    x, y = to_tensor(img, dtype), to_tensor(ref_rgb, dtype)
    if m is not None:
        # Outside the object both images show the generated pixels, so SSIM windows and LPIPS
        # receptive fields that straddle the silhouette do not score the background.
        y = m * y + (1 - m) * x
    return x, y, m


def _mask_value(value: object) -> object:
    """``mask=`` is case-blind; anything but auto/none is refused with the two choices."""
    text = str(value).strip().lower()
    if text not in ("auto", "none"):
        raise ValueError(f"mask={text!r} is not an option; use mask=auto (honour alpha) or mask=none")
    return text


MaskOption = Annotated[Literal["auto", "none"], BeforeValidator(_mask_value)]
MASK_HELP = "auto: weight the comparison by the union of both images' alpha; none: compare whole frames"


class PixelOptions(MetricOptions):
    mask: MaskOption = Field("auto", description=MASK_HELP)


class LpipsOptions(MetricOptions):
    net: str = Field("alex", description="backbone: alex, vgg or squeeze")
    weights: str | None = Field(None, description="the backbone's torchvision weights file; default: "
                                                  "$GENCRITIC_LPIPS_<NET>_WEIGHTS, then torchvision's cache")
    mask: MaskOption = Field("auto", description=MASK_HELP)


class DinoOptions(MetricOptions):
    model: str | None = Field(None, description="DINOv2 model (Hugging Face id or save_pretrained folder); "
                                                f"default: {DEFAULT_DINO_MODEL}, never the run's CLIP --model")


def _mask_option(metric: Metric) -> bool:
    return metric.options.get("mask", "auto").strip().lower() == "auto"  # validated by the schema


def per_view(batch: ViewBatch, fn: Callable[[View, LoadedImage], float]) -> tuple[np.ndarray, list[str | None]]:
    """Apply ``fn`` to each (view, reference); a missing reference or a ValueError fails that view."""
    values = np.full(len(batch), np.nan)
    errors: list[str | None] = [None] * len(batch)
    for i, view in enumerate(batch.views):
        ref = batch.reference_for(view)
        if ref is None:
            errors[i] = NO_REFERENCE
            continue
        try:
            values[i] = fn(view, ref)
        except ValueError as exc:
            errors[i] = str(exc)
    return values, errors


class _PixelMetric(Metric):
    """Shared shell of the pure pixel metrics (no model to load)."""

    options_schema = PixelOptions

    def model_id(self) -> str | None:
        return None

    def setup(self, ctx: RunContext) -> None:
        self.use_mask = _mask_option(self)

    def score_pair(self, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor | None) -> float:
        raise NotImplementedError

    def compute(self, batch: ViewBatch) -> MetricResult:
        def one(view: View, ref: LoadedImage) -> float:
            x, y, m = aligned_pair(view, ref, self.use_mask)
            return self.score_pair(x, y, m)

        values, errors = per_view(batch, one)
        return MetricResult(values={self.info.columns[0]: values}, errors=errors)


_PIXEL_NOTE = (" Reference resized to the generated size (bicubic); alpha (union of both images) weights "
               "the comparison unless mask=none.")


@register
class SSIM(_PixelMetric):
    info = MetricInfo(
        name="ssim", family="reference", inputs=("image", "reference"), columns=("ssim",), range=(-1.0, 1.0),
        higher_is_better=True, default_model=None, needs_pixels=True,
        description=("Structural similarity: 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, data range 1, "
                     "RGB channels averaged, valid region only (equals scikit-image with gaussian_weights=True, "
                     "use_sample_covariance=False)." + _PIXEL_NOTE),
        reference="Wang et al., Image Quality Assessment: From Error Visibility to Structural Similarity, IEEE TIP 2004",
    )

    def score_pair(self, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor | None) -> float:
        from gencritic.metrics._iqa import ssim as ssim_math

        return float(ssim_math.ssim(x, y, m)[0])


@register
class MSSSIM(_PixelMetric):
    info = MetricInfo(
        name="ms_ssim", family="reference", inputs=("image", "reference"), columns=("ms_ssim",), range=(0.0, 1.0),
        higher_is_better=True, default_model=None, needs_pixels=True,
        description=("Multi-scale SSIM: 5 scales, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average "
                     "pooling, per-scale terms clamped at 0; needs images of at least 176x176." + _PIXEL_NOTE),
        reference="Wang, Simoncelli, Bovik, Multiscale Structural Similarity for Image Quality Assessment, "
                  "Asilomar 2003",
    )

    def score_pair(self, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor | None) -> float:
        from gencritic.metrics._iqa import ssim as ssim_math

        return float(ssim_math.ms_ssim(x, y, m)[0])


@register
class PSNR(_PixelMetric):
    info = MetricInfo(
        name="psnr", family="reference", inputs=("image", "reference"), columns=("psnr",),
        range=(0.0, float("inf")), higher_is_better=True, default_model=None, needs_pixels=True,
        description=("Peak signal-to-noise ratio in dB on 8-bit RGB scaled to [0, 1] (data range 1): "
                     "10*log10(1/MSE); identical images give +inf." + _PIXEL_NOTE),
        reference="Standard definition; see e.g. Huynh-Thu & Ghanbari, Scope of validity of PSNR, Electronics Letters 2008",
    )

    def score_pair(self, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor | None) -> float:
        from gencritic.metrics._iqa import ssim as ssim_math

        return float(ssim_math.psnr(x, y, m)[0])


@register
class LPIPS(Metric):
    options_schema = LpipsOptions
    info = MetricInfo(
        name="lpips", family="reference", inputs=("image", "reference"), columns=("lpips",), range=(0.0, float("inf")),
        higher_is_better=False, default_model="alex", needs_pixels=True, optional_weights=True,
        description=("Learned perceptual distance: ImageNet backbone (net=alex|vgg|squeeze) with the lpips "
                     "package's calibrated v0.1 linear heads, at the generated image's resolution, inputs in [-1, 1]. "
                     "Backbone weights from weights=PATH, $GENCRITIC_LPIPS_<NET>_WEIGHTS or torchvision's cache; "
                     "reported unavailable otherwise. Masked spatial average when alpha is present." + _PIXEL_NOTE),
        reference="Zhang et al., The Unreasonable Effectiveness of Deep Features as a Perceptual Metric, CVPR 2018",
    )

    def model_id(self) -> str | None:
        from gencritic.models.lpips_nets import canonical_net

        return f"lpips-v0.1-{canonical_net(self.options.get('net', 'alex'))}"

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in sorted(self.options.items()) if k != "weights"}

    def setup(self, ctx: RunContext) -> None:
        from gencritic.models.device import resolve_device
        from gencritic.models.lpips_nets import canonical_net, load_lpips

        self.use_mask = _mask_option(self)
        net = canonical_net(self.options.get("net", "alex"))
        weights = self.options.get("weights")
        device = resolve_device(ctx.pool.device)
        self.net = ctx.pool.get(("lpips", f"{net}|{weights or ''}|{device}"), lambda: load_lpips(net, weights, device))
        self._ref_memo: OrderedDict[str, list[torch.Tensor]] = OrderedDict()
        self.device = next(self.net.parameters()).device

    def compute(self, batch: ViewBatch) -> MetricResult:
        """Pairs of equal size (e.g. all views of a mesh) go through the network as one batch."""
        import torch

        values = np.full(len(batch), np.nan)
        errors: list[str | None] = [None] * len(batch)
        groups: dict[tuple[int, ...], list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, str]]] = {}
        for i, view in enumerate(batch.views):
            ref = batch.reference_for(view)
            if ref is None:
                errors[i] = NO_REFERENCE
                continue
            try:
                x, y, m = aligned_pair(view, ref, self.use_mask, torch.float32)
            except ValueError as exc:
                errors[i] = str(exc)
                continue
            mask = torch.ones_like(x[:, :1]) if m is None else m  # an all-ones mask is exactly no mask
            key = f"{reference_key(ref, batch)}|{tuple(x.shape[1:])}"  # the reference as the network sees it
            groups.setdefault(tuple(x.shape), []).append((i, x, y, mask, key))
        dev = self.device
        for members in groups.values():
            idx = [k for k, *_ in members]
            x = torch.cat([t[1] for t in members]).to(dev)
            y = torch.cat([t[2] for t in members]).to(dev)
            if not self.use_mask:  # whole frames: a reference's features do not depend on the view
                keys = [t[4] for t in members]
                values[idx] = self.net.distance(self.net.features(x * 2 - 1), self._reference_features(keys, y)
                                                ).double().cpu().numpy()
                continue
            m = torch.cat([t[3] for t in members]).to(dev)
            values[idx] = self.net(x * 2 - 1, y * 2 - 1, m).double().cpu().numpy()
        return MetricResult(values={"lpips": values}, errors=errors)

    def _reference_features(self, keys: list[str], y: torch.Tensor) -> list[torch.Tensor]:
        """Backbone features of the references ``y`` (rows keyed by content), each computed once while
        it stays in a small in-memory store: compare3d compares several generated assets with one
        reference, view by view. Only unmasked references (with a mask they borrow the view's pixels)."""
        import torch

        memo = self._ref_memo
        rows: dict[str, list[torch.Tensor]] = {k: memo[k] for k in keys if k in memo}
        missing = list({k: i for i, k in reversed(list(enumerate(keys))) if k not in rows}.values())  # once per key
        if missing:
            fresh = self.net.features(y[missing] * 2 - 1)
            for j, i in enumerate(missing):
                rows[keys[i]] = [f[j:j + 1].clone() for f in fresh]
        out = [torch.cat([rows[k][layer] for k in keys]) for layer in range(len(rows[keys[0]]))]
        for k in keys:  # most recent last; the oldest go first when the store is full
            size = sum(r.numel() * r.element_size() for r in rows[k])
            if size <= LPIPS_MEMO_BYTES // 8:  # VGG at a high resolution is not kept
                memo[k] = rows[k]
                memo.move_to_end(k)
        while memo and sum(r.numel() * r.element_size() for v in memo.values() for r in v) > LPIPS_MEMO_BYTES:
            memo.popitem(last=False)
        return out


def reference_key(ref: LoadedImage, batch: ViewBatch) -> str:
    """Content key of a reference as the encoder sees it (file bytes + compositing background)."""
    return hashlib.sha256(f"{ref.sha256}|bg={batch.ctx.background}".encode()).hexdigest()


def _embedding_cosines(batch: ViewBatch, view_emb: Callable[[], torch.Tensor],
                       ref_emb: Callable[[list[LoadedImage]], torch.Tensor]) -> tuple[np.ndarray, list[str | None]]:
    values = np.full(len(batch), np.nan)
    errors: list[str | None] = [None] * len(batch)
    refs = [batch.reference_for(v) for v in batch.views]
    valid = [i for i, r in enumerate(refs) if r is not None]
    for i, r in enumerate(refs):
        if r is None:
            errors[i] = NO_REFERENCE
    if valid:
        v = view_emb()[valid]
        present = [r for r in refs if r is not None]
        r_emb = ref_emb(present)
        values[valid] = (v * r_emb).sum(-1).double().numpy()
    return values, errors


@register
class ClipImageImage(Metric):
    options_schema = ClipModelOptions
    info = MetricInfo(
        name="clip_i2i", family="reference", inputs=("image", "reference"), columns=("clip_i2i",), range=(-1.0, 1.0),
        higher_is_better=True, default_model=DEFAULT_CLIP_MODEL,
        description=("Cosine of L2-normalised CLIP image embeddings of the generated view and its reference "
                     "(shares the run's CLIP backbone and embedding cache; references are cached by content). "
                     "Global embedding: masks are not applied."),
        reference="Radford et al., ICML 2021; image-image CLIP similarity as used e.g. in DreamBooth (Ruiz et al., CVPR 2023)",
    )

    def setup(self, ctx: RunContext) -> None:
        self.backbone = self.clip_backbone(ctx)

    def compute(self, batch: ViewBatch) -> MetricResult:
        from gencritic.views import encode_images_cached

        bb = self.backbone

        def refs(present: list[LoadedImage]) -> torch.Tensor:
            return encode_images_cached(bb, batch.ctx.cache, [reference_key(r, batch) for r in present],
                                        lambda i: bb.preprocess(present[i].rgb))

        values, errors = _embedding_cosines(batch, lambda: batch.image_embeddings(bb), refs)
        return MetricResult(values={"clip_i2i": values}, errors=errors)


@register
class DinoSimilarity(Metric):
    options_schema = DinoOptions
    info = MetricInfo(
        name="dino", family="reference", inputs=("image", "reference"), columns=("dino",), range=(-1.0, 1.0),
        higher_is_better=True, default_model=DEFAULT_DINO_MODEL, optional_weights=True,
        description=("Cosine of L2-normalised DINOv2 CLS embeddings (after the final layer norm) of the generated "
                     "view and its reference; model=HF id or save_pretrained folder, default facebook/dinov2-small. "
                     "Embeddings cached by content. Global embedding: masks are not applied."),
        reference="Oquab et al., DINOv2: Learning Robust Visual Features without Supervision, TMLR 2024",
    )

    def model_id(self) -> str | None:
        return self.options.get("model") or self.info.default_model  # never the run's CLIP --model

    def setup(self, ctx: RunContext) -> None:
        from gencritic.models.dino import load_dino

        spec = self.model_id() or DEFAULT_DINO_MODEL
        device = ctx.pool.device
        self.encoder = ctx.pool.get(("dino", spec), lambda: load_dino(spec, device))

    def compute(self, batch: ViewBatch) -> MetricResult:
        from gencritic.views import encode_images_cached

        enc = self.encoder
        cache = batch.ctx.cache

        def encode(shas: list[str], images: list[Image.Image]) -> torch.Tensor:
            return encode_images_cached(enc, cache, shas, lambda i: enc.preprocess(images[i]))  # type: ignore[arg-type]

        def views() -> torch.Tensor:
            return encode([v.sha256 for v in batch.views], [v.image for v in batch.views])

        def refs(present: list[LoadedImage]) -> torch.Tensor:
            return encode([reference_key(r, batch) for r in present], [r.rgb for r in present])

        values, errors = _embedding_cosines(batch, views, refs)
        return MetricResult(values={"dino": values}, errors=errors)
