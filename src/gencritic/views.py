"""The hand-off between the scoring run and metrics: views, batches and shared embeddings.

A :class:`View` is one image to judge (an image item has one, a rendered mesh has eight).
Its pixels are decoded lazily: on a warm-cache re-run of a CLIP-only job no image is
decoded at all. :class:`ViewBatch` memoises embeddings per backbone for the batch and goes
through the on-disk cache, which is how metrics share work without knowing of each other.
:class:`RunContext` is what metrics may use while they set up (models, cache, run settings).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from gencritic.cache import EmbeddingCache
from gencritic.io.images import RGB, WHITE, LoadedImage
from gencritic.items import Item
from gencritic.models.clip import ClipBackbone
from gencritic.models.loader import ModelPool
from gencritic.render.settings import RenderSettings


@dataclass
class RunContext:
    """What metrics may use during setup: the shared model pool, the cache and run settings."""

    pool: ModelPool
    cache: EmbeddingCache
    default_model: str
    background: RGB = WHITE
    # how the run draws meshes (None: the defaults), for metrics that draw more, e.g. a set
    # metric's reference meshes, which must be drawn like the run's own (metrics/set_distances.py)
    render: RenderSettings | None = None
    text_cache: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    text_lock: threading.Lock = field(default_factory=threading.Lock)
    _clips: dict[str, ClipBackbone] = field(default_factory=dict)

    def clip(self, spec: str) -> ClipBackbone:
        """The run's CLIP backbone for ``spec``, shared by every metric that names it; its weights
        load on first use, so a run whose embeddings are all cached loads none
        (:mod:`gencritic.models.lazy`)."""
        if spec not in self._clips:
            from gencritic.models.lazy import lazy_clip

            self._clips[spec] = lazy_clip(self.pool, spec, self.cache)
        return self._clips[spec]


class View:
    """One image of an item. ``loader`` decodes on first access to ``image``."""

    def __init__(self, item: Item, index: int, sha256: str, loader: Callable[[], LoadedImage],
                 name: str | None = None) -> None:
        self.item = item
        self.index = index
        self.sha256 = sha256
        self.name = name or str(index)
        self._loader = loader
        self._loaded: LoadedImage | None = None
        self._lock = threading.Lock()
        self.pixels: dict[str, torch.Tensor] = {}  # preprocess_id -> tensor, filled by workers

    @property
    def loaded(self) -> LoadedImage:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._loader()
            return self._loaded

    @property
    def image(self) -> Image.Image:
        return self.loaded.rgb

    @property
    def alpha(self) -> np.ndarray | None:
        return self.loaded.alpha

    @property
    def prompt(self) -> str | None:
        return self.item.prompt


@dataclass
class ViewBatch:
    """Views of whole items (an item's views never straddle batches)."""

    views: list[View]
    ctx: RunContext
    references: dict[str, LoadedImage | None] = field(default_factory=dict)  # item_id -> reference
    _image_memo: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.views)

    @property
    def prompts(self) -> list[str | None]:
        return [v.prompt for v in self.views]

    def reference_for(self, view: View) -> LoadedImage | None:
        return self.references.get(view.item.item_id)

    # -- features ---------------------------------------------------------------------------
    def image_embeddings(self, backbone: ClipBackbone) -> torch.Tensor:
        """(N, D) unit vectors for the batch's views; cached on disk and memoised per batch."""
        ns = backbone.cache_namespace
        if ns not in self._image_memo:
            self._image_memo[ns] = encode_images_cached(
                backbone, self.ctx.cache, [v.sha256 for v in self.views],
                lambda i: pixels_for(self.views[i], backbone))
        return self._image_memo[ns]

    def text_embeddings(self, backbone: ClipBackbone, texts: Sequence[str]) -> torch.Tensor:
        return encode_texts_cached(backbone, self.ctx, texts)


def pixels_for(view: View, backbone: ClipBackbone) -> torch.Tensor:
    pid = backbone.preprocess_id
    if pid not in view.pixels:
        view.pixels[pid] = backbone.preprocess(view.image)
    return view.pixels[pid]


def encode_images_cached(backbone: ClipBackbone, cache: EmbeddingCache, shas: Sequence[str],
                         pixels: Callable[[int], torch.Tensor]) -> torch.Tensor:
    ns = backbone.cache_namespace
    keys = [EmbeddingCache.key(s, ns, "img") for s in shas]
    found = cache.get_many(keys)
    missing = [i for i, k in enumerate(keys) if k not in found]
    # identical images in one batch are encoded once
    unique: dict[str, int] = {}
    for i in missing:
        unique.setdefault(keys[i], i)
    if unique:
        order = list(unique.values())
        batch = torch.stack([pixels(i) for i in order])
        emb = backbone.encode_images(batch).numpy()
        fresh = {keys[i]: emb[j] for j, i in enumerate(order)}
        cache.put_many(fresh.items())
        found.update(fresh)
    return torch.from_numpy(np.stack([found[k] for k in keys]))


def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode_texts_cached(backbone: ClipBackbone, ctx: RunContext, texts: Sequence[str],
                        batch_size: int = 256) -> torch.Tensor:
    """Each distinct text is encoded once per backbone per process, and once ever with the disk cache."""
    ns = backbone.cache_namespace
    with ctx.text_lock:
        todo = list(dict.fromkeys(t for t in texts if (ns, t) not in ctx.text_cache))
        if todo:
            keys = {t: EmbeddingCache.key(text_sha(t), ns, "txt") for t in todo}
            found = ctx.cache.get_many(list(keys.values()))
            for t in todo:
                if keys[t] in found:
                    ctx.text_cache[(ns, t)] = found[keys[t]]
            # shortest first: a batch is padded to its longest text, so batches of similar lengths
            # waste little (measured +33-55% texts/s on 512 captions of 5-50 words, same embeddings)
            missing = sorted((t for t in todo if (ns, t) not in ctx.text_cache), key=lambda t: (len(t), t))
            for start in range(0, len(missing), batch_size):
                chunk = missing[start:start + batch_size]
                emb = backbone.encode_texts(chunk).numpy()
                for t, e in zip(chunk, emb, strict=True):
                    ctx.text_cache[(ns, t)] = e
                ctx.cache.put_many((keys[t], e) for t, e in zip(chunk, emb, strict=True))
        if not texts:
            return torch.zeros((0, 0))
        return torch.from_numpy(np.stack([ctx.text_cache[(ns, t)] for t in texts]))
