"""Preference scores on tiny models in the real formats, against the authors' formulas on raw model calls.

PickScore is a transformers CLIPModel (tested with the tiny HF CLIP), HPSv2 an open_clip model
with a training checkpoint ``{"state_dict": {"module.…": …}}`` (tested with a tiny open_clip
architecture). Absent weights must surface as unavailable, never as numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

try:  # tests/ may or may not be a package in this tree
    from tests.conftest import make_image
except ImportError:  # pragma: no cover
    from conftest import make_image  # type: ignore[no-redef]
from gencritic.errors import InputError, ModelUnavailableError
from gencritic.items import Item
from gencritic.metrics.registry import create_metric
from gencritic.models.loader import ModelPool
from gencritic.scoring import score
from tests.conftest import hf_features
from tests.metric_harness import Case, check_metric

OPENAI_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073])[:, None, None]
OPENAI_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711])[:, None, None]


def _items(tmp_path: Path) -> list[Item]:
    wide = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 48, 3), dtype=np.uint8))
    wide.save(tmp_path / "wide.png")
    return [
        Item("red", "image", make_image(tmp_path / "red.png", (220, 20, 20)), prompt="a red square"),
        Item("blue", "image", make_image(tmp_path / "blue.png", (20, 40, 220)), prompt="a blue square on yellow"),
        Item("wide", "image", tmp_path / "wide.png", prompt="noise in a wide frame"),
    ]


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


@torch.no_grad()
def test_pickscore_is_logit_scale_times_cosine(tiny_clip_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoProcessor, CLIPModel

    items = _items(tmp_path)
    cases = [Case(i.path, prompt=i.prompt) for i in items]

    # the authors' example: processor for both, get_*_features, normalise, logit_scale.exp() * text @ image
    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    processor = AutoProcessor.from_pretrained(tiny_clip_dir)
    expected = []
    for case in cases:
        image_inputs = processor(images=[Image.open(case.image).convert("RGB")], return_tensors="pt")
        text_inputs = processor(text=[case.prompt], padding=True, truncation=True, max_length=77, return_tensors="pt")
        image_embs = _unit(hf_features(model.get_image_features(**image_inputs)))
        text_embs = _unit(hf_features(model.get_text_features(**text_inputs)))
        expected.append(float(model.logit_scale.exp() * (text_embs @ image_embs.T)[0, 0]))
    spec = f"pickscore:model={tiny_clip_dir};processor={tiny_clip_dir}"
    check_metric(spec, cases, {"pickscore": expected}, atol=1e-4)  # also its range and determinism
    run = score(items, metrics=spec, cache_dir=None, pool=ModelPool("cpu"), progress=False, device="cpu")
    assert run.summary["metrics"]["pickscore"]["settings"] == {"processor": str(tiny_clip_dir)}


def test_pickscore_without_weights_is_unavailable(tiny_clip_dir: Path, tmp_path: Path) -> None:
    items = _items(tmp_path)[:1]
    run = score(items, metrics=f"clip,pickscore:model={tmp_path / 'absent'}", model=str(tiny_clip_dir),
                cache_dir=None, progress=False, device="cpu")
    reason = run.summary["unavailable_metrics"]["pickscore"]
    assert "PickScore" in reason and "GENCRITIC_PICKSCORE_MODEL" in reason
    assert "pickscore" not in run.rows[0] and run.rows[0]["success"]
    with pytest.raises(InputError, match="unknown option"):
        score(items, metrics="pickscore:modle=x", cache_dir=None, progress=False, device="cpu")


def test_pickscore_default_offline_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.delenv("GENCRITIC_PICKSCORE_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    items = _items(tmp_path)[:1]
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match=r"PickScore.*yuvalkirstain/PickScore_v1.*GENCRITIC_PICKSCORE_MODEL"):
        score(items, metrics="pickscore", cache_dir=None, progress=False, device="cpu")
    assert time.perf_counter() - start < 5, "an offline miss must not wait for network retries"


@pytest.fixture(scope="module")
def hps_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, torch.nn.Module, Path]:
    """A tiny open_clip model saved the way HPSv2's trainer saves: {'state_dict': {'module.' + key: ...}}."""
    import open_clip

    try:
        from tests.conftest import build_tiny_open_clip
    except ImportError:  # pragma: no cover
        from conftest import build_tiny_open_clip  # type: ignore[no-redef]

    tmp = tmp_path_factory.mktemp("hps")
    name, plain = build_tiny_open_clip(tmp, name="gencritic-tiny-hps", seed=5)
    model = open_clip.create_model(name, pretrained=None)
    model.load_state_dict(torch.load(plain, weights_only=True))
    ckpt = tmp / "HPS_tiny_compressed.pt"
    torch.save({"epoch": 1, "name": "tiny", "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
               ckpt)
    return name, model.eval(), ckpt


def _hps_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """HPSv2's eval preprocessing written with plain torch: longest side to `size`, zero pad, normalise."""
    x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
    h, w = x.shape[1:]
    s = size / max(h, w)
    nh, nw = round(h * s), round(w * s)
    x = torch.nn.functional.interpolate(x[None], size=(nh, nw), mode="bicubic", antialias=True,
                                        align_corners=False)[0]
    ph, pw = size - nh, size - nw
    x = torch.nn.functional.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=0.0)
    return (x - OPENAI_MEAN) / OPENAI_STD


@torch.no_grad()
def test_hpsv2_is_the_cosine_of_the_hps_model(hps_ckpt: tuple[str, torch.nn.Module, Path], tmp_path: Path) -> None:
    import open_clip

    name, model, ckpt = hps_ckpt
    items = _items(tmp_path)
    pool = ModelPool("cpu")
    run = score(items, metrics=f"hpsv2:model={ckpt};arch={name}", cache_dir=None, pool=pool, progress=False,
                device="cpu")
    assert all(r["success"] for r in run.rows), [r["error"] for r in run.rows]

    tokenizer = open_clip.get_tokenizer(name)
    for item, row in zip(items, run.rows, strict=True):
        image = _hps_pixels(Image.open(item.path), 32)[None]
        image_features = model.encode_image(image, normalize=True)
        text_features = model.encode_text(tokenizer([item.prompt]), normalize=True)
        expected = float(torch.diagonal(image_features @ text_features.T)[0])
        assert row["hpsv2"] == pytest.approx(expected, abs=1e-5)
        assert row["hpsv2_x100"] == pytest.approx(100 * expected, abs=1e-3)
    assert run.summary["metrics"]["hpsv2"]["model"] == str(ckpt)


def test_hpsv2_without_weights_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENCRITIC_HPSV2_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    items = _items(tmp_path)[:1]
    with pytest.raises(ModelUnavailableError, match=r"HPS v2\.1.*GENCRITIC_HPSV2_MODEL.*HPS_v2\.1_compressed\.pt"):
        score(items, metrics="hpsv2", cache_dir=None, progress=False, device="cpu")
    with pytest.raises(ModelUnavailableError, match=r"HPS_v2_compressed\.pt"):
        score(items, metrics="hpsv2:version=v2.0", cache_dir=None, progress=False, device="cpu")
    with pytest.raises(InputError, match="version"):
        create_metric("hpsv2:version=v3")


def test_hpsv2_checkpoint_for_another_architecture_is_refused(hps_ckpt: tuple[str, torch.nn.Module, Path],
                                                              tmp_path: Path) -> None:
    import json

    import open_clip

    _, _, ckpt = hps_ckpt
    cfg = {"embed_dim": 8, "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "patch_size": 16, "head_width": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1}}
    (tmp_path / "gencritic-tiny-other.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "gencritic-tiny-other.json")
    items = _items(tmp_path)[:1]
    with pytest.raises(ModelUnavailableError, match="does not fit open_clip gencritic-tiny-other"):
        score(items, metrics=f"hpsv2:model={ckpt};arch=gencritic-tiny-other", cache_dir=None, progress=False,
              device="cpu")
