"""Set metrics over folders of images: the edge around :mod:`gencritic.metrics.sets`.

Embeds every image with a CLIP backbone from the shared model pool (its own PIL preprocessing:
the clean, antialiased resize documented in docs/diagnostics.md), then reports diversity,
approach clusters (seeded k-means, members per cluster), and against a reference set:
FID, KID and each image's novelty (mean cosine distance to its k nearest reference images).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gencritic.diagnose.api import _clean
from gencritic.errors import InputError, ItemError
from gencritic.io.images import load_image
from gencritic.io.listing import FolderError, list_folder
from gencritic.items import IMAGE_EXTENSIONS
from gencritic.metrics import sets

if TYPE_CHECKING:
    from gencritic.models import ModelPool


def list_images(folder: str | Path) -> list[Path]:
    p = Path(folder).expanduser()
    if not p.is_dir():
        raise InputError(f"image folder not found: {p}")
    try:  # the one listing (io/listing.py): natural order, and no entry silently left out of the set
        listing = list_folder(p, IMAGE_EXTENSIONS)
    except FolderError as exc:
        raise InputError(str(exc)) from None
    if listing.bad:
        raise InputError(f"{p} has images that cannot be read: {listing.bad_summary()}; fix or remove them")
    files = listing.files
    if len(files) < 2:
        raise InputError(f"{p} holds {len(files)} image(s); set metrics need at least 2")
    return files


def embed_images(backbone: Any, files: list[Path], batch_size: int = 32) -> np.ndarray:
    """(N, D) unit CLIP embeddings; an unreadable file is an InputError naming it."""
    import torch

    out = []
    for start in range(0, len(files), batch_size):
        pixels = []
        for f in files[start:start + batch_size]:
            try:
                pixels.append(backbone.preprocess(load_image(f).rgb))
            except ItemError as exc:
                raise InputError(f"cannot read {f}: {exc}; remove it from the set") from None
        out.append(backbone.encode_images(torch.stack(pixels)).numpy().astype(np.float64))
    return np.concatenate(out)


def set_report(images: str | Path, model: str, reference_set: str | Path | None = None, clusters: int | None = None,
               k: int = 3, seed: int = 0, pool: ModelPool | None = None, kid_subset: int = 100) -> dict[str, Any]:
    """Diversity, clusters and (with ``reference_set``) FID / KID / novelty of a folder of images."""
    files = list_images(images)
    ref_files = list_images(reference_set) if reference_set is not None else None
    if clusters is not None and not 1 <= clusters <= len(files):
        raise InputError(f"--clusters must be between 1 and the number of images ({len(files)})")
    from gencritic.models import ModelPool

    backbone = (pool or ModelPool()).clip(model)
    emb = embed_images(backbone, files)
    out: dict[str, Any] = {"images": str(Path(images)), "n": len(files), "model": backbone.model_id,
                           "features": "CLIP image embeddings (unit vectors), backbone preprocessing",
                           "diversity": sets.diversity(emb)}
    if clusters is not None:
        labels, _, inertia = sets.kmeans(emb, clusters, seed=seed)
        out["clusters"] = {"k": clusters, "seed": seed, "inertia": inertia,
                           "members": {str(c): [files[i].name for i in np.flatnonzero(labels == c)]
                                       for c in range(clusters)}}
    if ref_files is not None:
        ref = embed_images(backbone, ref_files)
        n_small = min(len(files), len(ref_files))
        out["reference_set"] = {"path": str(Path(str(reference_set))), "n": len(ref_files)}
        out["fid"] = sets.fid(emb, ref)
        kid_mean, kid_std = sets.kid(emb, ref, subsets=100, subset_size=kid_subset, seed=seed)
        out["kid"] = {"mean": kid_mean, "std": kid_std, "subset_size": min(kid_subset, n_small), "seed": seed}
        if n_small < emb.shape[1]:
            out["fid_note"] = (f"FID from {n_small} samples in {emb.shape[1]} dimensions is strongly biased; "
                               f"compare only sets of equal size, or prefer KID")
        nov = sets.novelty(emb, ref, k=k)
        out["novelty"] = {"k": min(k, len(ref_files)), "mean": float(nov.mean()),
                          "per_image": {f.name: float(v) for f, v in zip(files, nov, strict=True)}}
    return _clean(out)  # type: ignore[no-any-return]
