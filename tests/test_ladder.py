"""Graded prompt ladders: the pure maths on embeddings, its invariants, and one end-to-end run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

try:  # tests/ may or may not be a package in this tree
    from tests.conftest import make_image
except ImportError:  # pragma: no cover
    from conftest import make_image  # type: ignore[no-redef]
from gencritic.errors import InputError
from gencritic.items import Item
from gencritic.metrics.ladder import ladder_scores, parse_ladder
from gencritic.metrics.registry import create_metric
from gencritic.models.loader import ModelPool
from gencritic.scoring import score


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_hand_computed_three_rungs() -> None:
    # one image, three rungs with cosines 0.1, 0.2, 0.3, temperature 10
    rungs = np.eye(3)
    img = np.array([[0.1, 0.2, 0.3]])
    img_unit = img / np.linalg.norm(img)
    s = ladder_scores(img_unit, rungs, logit_scale=10.0 * np.linalg.norm(img))
    e = np.exp([1.0, 2.0, 3.0])
    p = e / e.sum()
    assert s.expected[0] == pytest.approx((p[1] * 1 + p[2] * 2) / 2, abs=1e-12)
    np.testing.assert_allclose(s.probs[0], p, atol=1e-12)
    assert s.best[0] == 2


def test_monotone_on_a_synthetic_ladder() -> None:
    """Rungs spaced along an arc; images walking the same arc must climb the ladder monotonically."""
    k, n, d = 5, 40, 8
    rng = np.random.default_rng(0)
    a, b = np.linalg.qr(rng.normal(size=(d, 2)))[0].T  # two orthonormal directions
    angle = np.linspace(0, np.pi / 2, k)
    rungs = np.cos(angle)[:, None] * a + np.sin(angle)[:, None] * b
    t = np.linspace(0, np.pi / 2, n)
    images = np.cos(t)[:, None] * a + np.sin(t)[:, None] * b
    s = ladder_scores(images, rungs, logit_scale=100.0)
    assert np.all(np.diff(s.expected) > 0), "expected rung must rise strictly along the arc"
    assert s.expected[0] < 0.05 and s.expected[-1] > 0.95
    assert np.all(np.diff(s.best) >= 0) and s.best[0] == 0 and s.best[-1] == k - 1
    # the continuous score keeps moving where the arg-max rung is flat
    flat = np.where(np.diff(s.best) == 0)[0]
    assert flat.size and np.all(np.diff(s.expected)[flat] > 0)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4).flatmap(lambda n: st.integers(2, 6).flatmap(lambda k: st.tuples(
        arrays(np.float64, (n, 6), elements=st.floats(-1, 1)),
        arrays(np.float64, (k, 6), elements=st.floats(-1, 1)),
        st.floats(0.1, 200.0),
    ))),
)
def test_range_and_reversal(data: tuple[np.ndarray, np.ndarray, float]) -> None:
    img, rungs, scale = data
    if np.any(np.linalg.norm(img, axis=1) < 1e-3) or np.any(np.linalg.norm(rungs, axis=1) < 1e-3):
        return
    img, rungs = _unit(img), _unit(rungs)
    fwd = ladder_scores(img, rungs, scale)
    rev = ladder_scores(img, rungs[::-1], scale)
    assert np.all((fwd.expected >= 0) & (fwd.expected <= 1))
    np.testing.assert_allclose(rev.expected, 1.0 - fwd.expected, atol=1e-9)
    np.testing.assert_allclose(fwd.probs.sum(axis=1), 1.0, atol=1e-9)
    assert np.all((fwd.best >= 0) & (fwd.best <= rungs.shape[0] - 1))


def test_bad_ladders_are_refused_before_work() -> None:
    assert parse_ladder(" low | high ") == ["low", "high"]
    for bad in ("only one", "a||b", "a|b|a"):
        with pytest.raises(InputError):
            parse_ladder(bad)
    with pytest.raises(InputError, match="prompts="):
        create_metric("ladder")
    with pytest.raises(InputError, match="scale"):
        create_metric("ladder:prompts=a|b;scale=-1")
    with pytest.raises(InputError, match="unknown option"):
        create_metric("ladder:prompts=a|b;temperature=3")


def test_bad_ladder_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        create_metric(f"ladder:prompts_file={tmp_path / 'absent.txt'}")
    one = tmp_path / "one.txt"
    one.write_text("# a comment\nonly rung\n\n")
    with pytest.raises(InputError, match="1 rung"):
        create_metric(f"ladder:prompts_file={one}")
    with pytest.raises(InputError, match="not both"):
        create_metric(f"ladder:prompts=a|b;prompts_file={one}")


@torch.no_grad()
@pytest.mark.parametrize("source", ["spec", "file"])
def test_end_to_end_against_raw_transformers(tiny_clip_dir: Path, tmp_path: Path, source: str) -> None:
    """The rungs from a --metrics spec, or from a file where they may hold ``, ; |``."""
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

    if source == "spec":
        rungs = ["faint smoke", "some smoke", "thick smoke", "a dramatic fireball"]
        spec = "ladder:prompts=" + "|".join(rungs)
    else:
        rungs = ["faint smoke, barely there", "some smoke; grey", "thick smoke | billowing", "a dramatic fireball"]
        path = tmp_path / "rungs.txt"
        path.write_text("# bottom first\n" + "\n".join(rungs) + "\n\n", encoding="utf-8")
        spec = f"ladder:prompts_file={path}"
    items = [Item(f"i{k}", "image", make_image(tmp_path / f"{k}.png", c))
             for k, c in enumerate([(220, 20, 20), (20, 200, 40), (20, 40, 220)])]
    run = score(items, metrics=[spec], model=str(tiny_clip_dir), cache_dir=None,
                pool=ModelPool("cpu"), progress=False, device="cpu")
    assert all(r["success"] for r in run.rows), [r["error"] for r in run.rows]

    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    tok = CLIPTokenizerFast.from_pretrained(tiny_clip_dir)
    proc = CLIPImageProcessor.from_pretrained(tiny_clip_dir)
    pixels = proc(images=[Image.open(i.path).convert("RGB") for i in items], return_tensors="pt")["pixel_values"]
    out = model(pixel_values=pixels, **tok(rungs, padding=True, return_tensors="pt"))
    p = out.logits_per_image.softmax(dim=-1).double().numpy()  # logit_scale * cos, softmax over rungs
    expected = p @ (np.arange(len(rungs)) / (len(rungs) - 1))
    np.testing.assert_allclose([r["ladder_rung"] for r in run.rows], expected, atol=1e-5)
    np.testing.assert_array_equal([r["ladder_best"] for r in run.rows], out.logits_per_image.argmax(-1).numpy())


def test_editing_the_rungs_file_is_a_settings_change(tiny_clip_dir: Path, tmp_path: Path) -> None:
    """A resumed run must not keep rows scored against the file's old rungs."""
    path = tmp_path / "rungs.txt"
    path.write_text("low, dim\nhigh, bright\n")
    items = [Item("i0", "image", make_image(tmp_path / "0.png", (200, 20, 20)))]
    spec = [f"ladder:prompts_file={path}"]
    kwargs = {"model": str(tiny_clip_dir), "cache_dir": None, "pool": ModelPool("cpu"), "progress": False,
              "device": "cpu"}
    score(items, tmp_path / "out", metrics=spec, **kwargs)
    score(items, tmp_path / "out", metrics=spec, **kwargs)  # unchanged file: resumes
    path.write_text("low, dim\nmiddle\nhigh, bright\n")
    with pytest.raises(InputError, match="other settings"):
        score(items, tmp_path / "out", metrics=spec, **kwargs)
