"""SSIM and MS-SSIM against torchmetrics on seeded pairs: the gaps docs/metrics_image.md quotes.

Ours follows Wang et al. and scikit-image (tested equal to 1e-10 in test_reference.py): the SSIM
map is averaged over the valid region, where the 11x11 window stays inside the image.
torchmetrics pads with reflection and averages over the full frame, and in MS-SSIM it uses that
full-frame SSIM at the last scale (11x11 to 16x16 pixels there, so mostly border). The gap is a
property of the input, not a constant: it grows for small images and for pairs of low
similarity, where a term can cross zero and be clamped on one side only. These pairs are fixed
(seeded) and span both; the test prints the figures and checks that the docs quote them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gencritic.metrics._iqa import ssim as S

SIZES = ((176, 176), (256, 256))  # 176: the smallest MS-SSIM input (11 pixels at the 5th scale)
SMOOTHNESS = (4, 8, 16)  # pixels per random control point of the bicubic-upsampled images
NOISE = 0.1
# max |ours - torchmetrics| over the pairs below (torchmetrics in float32, as images usually are)
# (measured 0.00792 / 0.0143 / 0.000173 / 0.0197)
BOUND = {("ssim", "noisy copies"): 0.0082, ("ssim", "unrelated pairs"): 0.0147,
         ("ms_ssim", "noisy copies"): 2e-4, ("ms_ssim", "unrelated pairs"): 0.0205}
DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics_image.md"


def _smooth(h: int, w: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.random((h // cells + 2, w // cells + 2, 3))
    img = Image.fromarray((base * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float64) / 255.0


def _pairs(kind: str) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for seed, ((h, w), cells) in enumerate((size, cells) for size in SIZES for cells in SMOOTHNESS):
        rng = np.random.default_rng(seed)
        a = _smooth(h, w, cells, rng)
        b = np.clip(a + rng.normal(0, NOISE, a.shape), 0, 1) if kind == "noisy copies" else _smooth(h, w, cells, rng)
        out.append((a, b))
    return out


def measured_gaps() -> dict[tuple[str, str], float]:
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm_ms_ssim
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    gaps: dict[tuple[str, str], float] = {}
    for kind in ("noisy copies", "unrelated pairs"):
        d_ssim, d_ms = [], []
        for a, b in _pairs(kind):
            x, y = (torch.from_numpy(v).permute(2, 0, 1)[None] for v in (a, b))
            d_ssim.append(abs(float(S.ssim(x, y)[0]) - float(tm_ssim(x.float(), y.float(), data_range=1.0))))
            d_ms.append(abs(float(S.ms_ssim(x, y)[0]) - float(tm_ms_ssim(x.float(), y.float(), data_range=1.0))))
        gaps[("ssim", kind)], gaps[("ms_ssim", kind)] = max(d_ssim), max(d_ms)
    return gaps


def test_gaps_to_torchmetrics_are_bounded_and_quoted_by_the_docs() -> None:
    gaps = measured_gaps()
    report = "; ".join(f"{m} {k} {v:#.2g}" for (m, k), v in gaps.items())
    print(report)
    for key, bound in BOUND.items():
        assert gaps[key] <= bound, report
    assert gaps[("ssim", "unrelated pairs")] > 5e-3  # not the "~1e-3" once documented
    text = " ".join(DOCS.read_text().split())
    quoted = re.search(r"measured by `tests/test_torchmetrics_gaps.py`: (.*?) \(largest", text)
    assert quoted is not None, "docs/metrics_image.md must quote the measured gaps"
    assert quoted.group(1) == report, f"docs say {quoted.group(1)!r}, measured {report!r}"
