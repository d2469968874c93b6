"""CLIP attribute probes: where an image sits on an ordered ladder of prompts.

A probe is a list of prompts from "least" to "most" of some attribute ("a faint wisp of
smoke" ... "a huge fiery explosion"). With CLIP's own temperature, softmax over the
image-text cosines gives a distribution over rungs; its expectation, scaled to [0, 1], is a
smooth position a loop can push up or down (argmax would jump between rungs). Pure numpy on
unit embeddings; the encoding happens in :func:`encode_texts_memo`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

_TEXT_MEMO: dict[tuple[str, str], np.ndarray] = {}
_LOCK = threading.Lock()


def ladder_position(image_emb: np.ndarray, text_embs: np.ndarray, logit_scale: float) -> tuple[float, np.ndarray]:
    """(expected rung / (K-1), rung probabilities) for unit vectors ``image_emb`` (D,) and ``text_embs`` (K, D)."""
    logits = float(logit_scale) * (np.asarray(text_embs, np.float64) @ np.asarray(image_emb, np.float64))
    p = np.exp(logits - logits.max())
    p /= p.sum()
    k = p.size
    return float((p * np.arange(k)).sum() / (k - 1)), p


def encode_texts_memo(backbone: Any, texts: Sequence[str]) -> np.ndarray:
    """Text embeddings memoised per backbone namespace for the life of the process (ladders repeat)."""
    ns = backbone.cache_namespace
    with _LOCK:
        todo = [t for t in dict.fromkeys(texts) if (ns, t) not in _TEXT_MEMO]
    if todo:
        emb = backbone.encode_texts(todo).numpy()
        with _LOCK:
            for t, e in zip(todo, emb, strict=True):
                _TEXT_MEMO[(ns, t)] = e
    return np.stack([_TEXT_MEMO[(ns, t)] for t in texts])


def encode_image(backbone: Any, rgb: np.ndarray) -> np.ndarray:
    """One unit image embedding (D,) from uint8 RGB, through the backbone's own preprocessing."""
    import torch
    from PIL import Image

    pixels = backbone.preprocess(Image.fromarray(np.asarray(rgb, dtype=np.uint8), "RGB"))
    return np.asarray(backbone.encode_images(torch.stack([pixels]))[0].numpy(), dtype=np.float64)
