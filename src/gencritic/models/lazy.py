"""A CLIP backbone that loads on first use, so a run whose embeddings are all cached loads none.

Why: a re-run into a new output folder with every image and prompt embedding in the cache used
to load the model anyway (seconds, and the import of transformers) only to learn its cache
namespace, its context length and how many tokens each prompt has. Those are facts about the
model, not work: the first load records them in the embedding cache's ``facts`` table, keyed by
the model spec, the device and dtype it runs with, and the size and modification time of the
model's local files (or the Hugging Face cache's revision of a hub id). A later run with the
same key answers them from there and loads the weights only when something is not cached.

When there is no record (a first run, changed files, no cache), the model is loaded at once,
as before: an unavailable model is still one clear error before any work.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from gencritic.cache import EmbeddingCache
from gencritic.errors import ModelUnavailableError
from gencritic.models.clip import ClipBackbone
from gencritic.models.device import dtype_name, resolve_device, resolve_dtype

IDENTITY_VERSION = 1


def _stat(path: Path) -> list[Any]:
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]


def source_fingerprint(spec: str) -> list[Any]:
    """What identifies the files behind a model spec without reading them: sizes and modification
    times of a local folder's files (or a checkpoint and the small files beside it), or the
    revision the Hugging Face cache holds for a hub id; [] when nothing local is known."""
    body = spec.removeprefix("hf:")
    path = Path(body).expanduser()
    try:
        if path.is_dir():
            return [_stat(p) for p in sorted(path.iterdir()) if p.is_file()]
        if path.is_file():
            side = [p for p in sorted(path.parent.iterdir()) if p.suffix in (".json", ".txt") and p.is_file()]
            return [_stat(path), *(_stat(p) for p in side)]
    except OSError:
        return []
    if body.count("/") == 1 and not body.startswith(("/", ".", "~")):
        hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" /
                                                                          "huggingface")) / "hub")
        ref = hub / ("models--" + body.replace("/", "--")) / "refs" / "main"
        try:
            return ["hub", ref.read_text().strip()]
        except OSError:
            return []
    return []


def identity_key(spec: str, device: str, dtype: str) -> str:
    """The facts key of a backbone as a run would load it."""
    dev = resolve_device(device)
    compute, int8 = resolve_dtype(dtype, dev)
    blob = json.dumps([IDENTITY_VERSION, spec.strip(), dev.type, dtype_name(compute, int8),
                       source_fingerprint(spec.strip())], default=str)
    return "clip-identity|" + hashlib.sha256(blob.encode()).hexdigest()


def identity_of(backbone: ClipBackbone) -> dict[str, Any]:
    """The facts a run needs of a loaded backbone besides its weights."""
    return {"model_id": backbone.model_id, "context_length": backbone.context_length,
            "cache_namespace": backbone.cache_namespace, "preprocess_id": backbone.preprocess_id,
            "precision": backbone.precision, "logit_scale": backbone.logit_scale,
            "embedding_dim": backbone.embedding_dim}


def _token_key(text: str, namespace: str) -> str:
    return "ntok|" + hashlib.sha256(f"{namespace}\0{text}".encode()).hexdigest()


class LazyClipBackbone(ClipBackbone):
    """Stands in for the backbone ``load()`` gives: the same cache namespace and answers, the
    weights loaded on first encode (or anything else not recorded). Encode counts and every
    other attribute are the loaded backbone's."""

    def __init__(self, load: Callable[[], ClipBackbone], key: str, facts: EmbeddingCache) -> None:
        # not ClipBackbone.__init__: this object never encodes; the loaded backbone does
        self._load = load
        self._facts = facts
        self._backbone: ClipBackbone | None = None
        found = facts.get_facts([key]).get(key)
        identity = json.loads(found) if found else None
        if identity is None:
            identity = identity_of(self.loaded)
            facts.put_facts([(key, json.dumps(identity))])
        self._identity = identity
        self.model_id = str(identity["model_id"])
        self.context_length = int(identity["context_length"])

    @property
    def loaded(self) -> ClipBackbone:
        """The real backbone (loaded now if it was not)."""
        if self._backbone is None:
            backbone = self._load()
            recorded = getattr(self, "_identity", None)
            if recorded is not None and backbone.cache_namespace != recorded["cache_namespace"]:
                raise ModelUnavailableError(
                    f"model '{backbone.model_id}' is not the one recorded for it (cache namespace "
                    f"{backbone.cache_namespace}, recorded {recorded['cache_namespace']}): its files changed during "
                    f"the run; run the same command again")
            self._backbone = backbone
        return self._backbone

    @property
    def is_loaded(self) -> bool:
        return self._backbone is not None

    def __getattr__(self, name: str) -> Any:  # anything not recorded is the loaded backbone's
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.loaded, name)

    # -- recorded ---------------------------------------------------------------------------
    @property
    def preprocess_config(self) -> dict[str, Any]:
        return self.loaded.preprocess_config

    @property
    def preprocess_id(self) -> str:  # type: ignore[override]
        return str(self._identity["preprocess_id"])

    @property
    def precision(self) -> str:
        return str(self._identity["precision"])

    @property
    def cache_namespace(self) -> str:
        return str(self._identity["cache_namespace"])

    @property
    def logit_scale(self) -> float:
        return float(self._identity["logit_scale"])

    @property
    def embedding_dim(self) -> int | None:
        dim = self._identity.get("embedding_dim")
        return None if dim is None else int(dim)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        keys = [_token_key(t, self.cache_namespace) for t in texts]
        found = self._facts.get_facts(keys)
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            counts = self.loaded.token_counts([texts[i] for i in missing])
            fresh = {keys[i]: str(c) for i, c in zip(missing, counts, strict=True)}
            self._facts.put_facts(fresh.items())
            found.update(fresh)
        return [int(found[k]) for k in keys]

    # -- work: the loaded backbone's ----------------------------------------------------------
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.loaded.preprocess(image)

    def _encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.loaded._encode_pixels(pixels)

    def _encode_tokens(self, texts: Sequence[str]) -> torch.Tensor:
        return self.loaded._encode_tokens(texts)

    def count_tokens(self, text: str) -> int:
        return self.token_counts([text])[0]

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.loaded.encode_images(pixels)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.loaded.encode_texts(texts)


def lazy_clip(pool: Any, spec: str, facts: EmbeddingCache) -> ClipBackbone:
    """``pool.clip(spec)``, loaded on first use when ``facts`` (a run's embedding cache) knows it;
    the loaded backbone itself when there is no cache to keep facts in."""
    if facts.path is None:
        return pool.clip(spec)  # type: ignore[no-any-return]
    key = identity_key(spec, pool.device, pool.dtype)
    return LazyClipBackbone(lambda: pool.clip(spec), key, facts)
