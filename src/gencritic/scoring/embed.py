"""Embeddings of items, through the same prepared views and cache the metrics use.

Why one function: training a head on CLIP features and scoring with that head must see the
same vectors, so both go through :mod:`gencritic.prepare` (the same decoding and hashing) and
:func:`gencritic.views.encode_images_cached` / :func:`~gencritic.views.encode_texts_cached` (the
same cache keys, the same batching of prompts). A head trained here reads, at scoring time,
exactly the vectors it learned from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gencritic.cache import EmbeddingCache
from gencritic.errors import InputError
from gencritic.io.images import RGB, WHITE
from gencritic.items import Item
from gencritic.models.clip import ClipBackbone
from gencritic.models.loader import ModelPool
from gencritic.prepare import prepare_item
from gencritic.views import RunContext, View, encode_images_cached, encode_texts_cached, pixels_for

if TYPE_CHECKING:
    from gencritic.models.imagereward_backbone import FusionBackbone


@dataclass
class Embeddings:
    """Per item: its image embedding and its prompt's (NaN rows where there is none), and why an
    item has no image embedding (None where it has)."""

    image: np.ndarray  # float32 (N, D)
    text: np.ndarray | None  # float32 (N, D), or None when texts were not asked for
    errors: list[str | None]


def _encode_views(backbone: ClipBackbone, cache: EmbeddingCache, views: list[View]) -> list[np.ndarray | str]:
    """Each view's embedding, or why it has none: a batch that fails is retried one view at a
    time, so one bad image does not cost the others."""
    def pixels(j: int) -> torch.Tensor:
        return pixels_for(views[j], backbone)

    try:
        return list(encode_images_cached(backbone, cache, [v.sha256 for v in views], pixels).numpy())
    except Exception:
        out: list[np.ndarray | str] = []
        for j, v in enumerate(views):
            def one(_k: int, j: int = j) -> torch.Tensor:
                return pixels(j)

            try:
                out.append(encode_images_cached(backbone, cache, [v.sha256], one).numpy()[0])
            except Exception as exc:
                out.append(f"cannot embed image: {exc}")
        return out


def embed(items: Sequence[Item], backbone: ClipBackbone, cache_dir: Path | None = None, batch_size: int = 32,
          with_text: bool = True, background: RGB = WHITE) -> Embeddings:
    """Image (and prompt) embeddings of image items, cached in ``cache_dir`` (None: not cached).
    An item that cannot be read or embedded has a NaN row and its reason in ``errors``."""
    kinds = {i.kind for i in items} - {"image"}
    if kinds:
        raise InputError(f"embed takes image items; these include {', '.join(sorted(kinds))} items")
    cache = EmbeddingCache.in_dir(cache_dir)
    ctx = RunContext(pool=ModelPool(), cache=cache, default_model=backbone.model_id, background=background)
    rows: list[np.ndarray | None] = [None] * len(items)
    errors: list[str | None] = [None] * len(items)
    try:
        for start in range(0, len(items), batch_size):
            views, owners = [], []
            for i in range(start, min(start + batch_size, len(items))):
                prepared = prepare_item(items[i], background, decode=False)
                if prepared.error is not None:
                    errors[i] = prepared.error
                    continue
                views.append(prepared.views[0])
                owners.append(i)
            if views:
                for i, got in zip(owners, _encode_views(backbone, cache, views), strict=True):
                    if isinstance(got, str):
                        errors[i] = got
                    else:
                        rows[i] = got
        dim = next((r.shape[0] for r in rows if r is not None), 0)
        image = np.stack([r if r is not None else np.full(dim, np.nan, np.float32) for r in rows]).astype(np.float32)
        text = None
        if with_text:
            prompts = [i.prompt or "" for i in items]
            valid = [k for k, p in enumerate(prompts) if p.strip()]
            text = np.full((len(items), dim), np.nan, np.float32)
            if valid:
                text[valid] = encode_texts_cached(backbone, ctx, [prompts[k] for k in valid]).numpy()
    finally:
        cache.close()
    return Embeddings(image=image, text=text, errors=errors)


def embed_fusion(items: Sequence[Item], backbone: FusionBackbone, cache_dir: Path | None = None,
                 batch_size: int = 32, background: RGB = WHITE) -> Embeddings:
    """ImageReward fusion features of image items with their prompts (``image`` holds them;
    ``text`` is None: the prompt is already inside), cached by content in ``cache_dir``.

    Items are decoded and hashed by :func:`gencritic.prepare.prepare_item`, as for CLIP features,
    and the ``learned`` metric reads the same cache keys at scoring time."""
    from gencritic.models.imagereward_backbone import fusion_features

    kinds = {i.kind for i in items} - {"image"}
    if kinds:
        raise InputError(f"embed takes image items; these include {', '.join(sorted(kinds))} items")
    cache = EmbeddingCache.in_dir(cache_dir)
    errors: list[str | None] = [None] * len(items)
    image = np.full((len(items), backbone.dim), np.nan, np.float32)
    try:
        views, owners = [], []
        for i, item in enumerate(items):
            if not (item.prompt and item.prompt.strip()):
                errors[i] = "no prompt (the ImageReward backbone reads the image with its prompt)"
                continue
            prepared = prepare_item(item, background, decode=False)
            if prepared.error is not None:
                errors[i] = prepared.error
                continue
            views.append(prepared.views[0])
            owners.append(i)
        got = fusion_features(backbone, cache, [v.sha256 for v in views], [str(v.prompt) for v in views],
                              lambda j: views[j].image, batch_size)
        for i, g in zip(owners, got, strict=True):
            if isinstance(g, str):
                errors[i] = g
            else:
                image[i] = g
    finally:
        cache.close()
    return Embeddings(image=image, text=None, errors=errors)
