"""The shared metric harness (tests/metric_harness.py) fails where it should: a value off the
reference, outside the declared range, ranked against the declared direction, or not the same
twice. PSNR against scikit-image is the metric under test."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_image
from tests.metric_harness import Case, check_metric


@pytest.fixture()
def cases(tmp_path: Path) -> list[Case]:
    ref = make_image(tmp_path / "ref.png", (200, 40, 40), size=32)
    rng = np.random.default_rng(0)
    base = np.asarray(Image.open(ref).convert("RGB"), dtype=np.int16)
    out = []
    for k, noise in enumerate((2, 20)):  # a little noise, then more: the first is the better copy
        noisy = np.clip(base + rng.integers(-noise, noise + 1, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(tmp_path / f"gen{k}.png")
        out.append(Case(tmp_path / f"gen{k}.png", reference=ref))
    return out


def scikit_psnr(cases: Sequence[Case]) -> dict[str, list[float]]:
    from skimage.metrics import peak_signal_noise_ratio

    def rgb(path: Path | None) -> np.ndarray:
        assert path is not None
        return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255

    return {"psnr": [peak_signal_noise_ratio(rgb(c.reference), rgb(c.image), data_range=1.0) for c in cases]}


def test_a_correct_metric_passes(cases: list[Case]) -> None:
    rows = check_metric("psnr", cases, scikit_psnr, atol=1e-9, better=[(0, 1)])
    assert rows[0]["psnr"] > rows[1]["psnr"]


def test_each_check_fails_where_it_should(cases: list[Case], monkeypatch: pytest.MonkeyPatch) -> None:
    from gencritic.metrics.reference import PSNR

    with pytest.raises(AssertionError, match="against the reference"):
        check_metric("psnr", cases, {"psnr": [v + 1e-3 for v in scikit_psnr(cases)["psnr"]]}, atol=1e-9)
    with pytest.raises(AssertionError, match="should be better"):
        check_metric("psnr", cases, scikit_psnr, atol=1e-9, better=[(1, 0)])
    with monkeypatch.context() as m:
        m.setattr(PSNR, "info", dataclasses.replace(PSNR.info, range=(0.0, 10.0)))
        with pytest.raises(AssertionError, match="outside its declared range"):
            check_metric("psnr", cases, scikit_psnr, atol=1e-9)
    real = PSNR.compute
    rng = np.random.default_rng()

    def jittery(self, batch):  # type: ignore[no-untyped-def]
        result = real(self, batch)
        result.values["psnr"] = result.values["psnr"] + rng.uniform(0, 1e-12, len(batch))
        return result

    monkeypatch.setattr(PSNR, "compute", jittery)
    with pytest.raises(AssertionError, match="differs between two identical runs"):
        check_metric("psnr", cases, scikit_psnr, atol=1e-9)
