"""The aesthetic head decides its CLIP backbone (issue 16, item 9).

``aesthetic`` used to load ViT-L/14 whatever head it was given. Now, without ``model=``, the head's
input width decides (768 -> ViT-L/14; 512 -> ViT-B/32 or B/16 as LAION's file name says; else
refused), and an explicit ``model=`` that contradicts the head is refused with one line.

The OpenAI hub ids are served from the model pool by tiny random CLIPs of the right embedding
width (two different 512-d ones, so running a B/16 head on the B/32 stand-in changes the numbers),
and every score is checked against the head applied by hand to that backbone's embeddings.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from gencritic.errors import GencriticError, InputError
from gencritic.models.clip import ClipBackbone
from gencritic.models.loader import ModelPool, load_clip
from gencritic.scoring import ScoreRun, score
from tests.conftest import hf_features, make_image, shared_data

B32, B16, L14 = "openai/clip-vit-base-patch32", "openai/clip-vit-base-patch16", "openai/clip-vit-large-patch14"


def _clip(tiny_clip_dir: Path, folder: Path, dim: int, seed: int) -> Path:
    """The tiny test CLIP re-initialised with embedding width ``dim``."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig.from_pretrained(tiny_clip_dir)
    config.projection_dim = dim
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(folder)
    for f in tiny_clip_dir.iterdir():
        if f.is_file() and f.name not in ("config.json", "model.safetensors", "pytorch_model.bin"):
            shutil.copy(f, folder / f.name)
    return folder


@pytest.fixture(scope="module")
def stand_ins(tiny_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stand_ins")
    return {B32: _clip(tiny_clip_dir, root / "b32", 512, 1), B16: _clip(tiny_clip_dir, root / "b16", 512, 2),
            L14: _clip(tiny_clip_dir, root / "l14", 768, 3)}


class _Pool(ModelPool):
    """A pool whose OpenAI ids are the tiny stand-ins (nothing is downloaded); it records which
    CLIPs the metric asked for."""

    def __init__(self, stand_ins: dict[str, Path]) -> None:
        super().__init__("cpu", "fp32")
        self.asked: list[str] = []
        for hub_id, folder in stand_ins.items():
            self.get(("clip", hub_id), lambda f=folder: load_clip(str(f), "cpu", "fp32"))

    def clip(self, spec: str = B32) -> ClipBackbone:
        self.asked.append(spec)
        return super().clip(spec)


def _pool(stand_ins: dict[str, Path]) -> _Pool:
    return _Pool(stand_ins)


def _score(folder: Path, spec: str, pool: ModelPool) -> ScoreRun | str:
    """The run, or the one line it was refused with (so a refusal fails an assertion, not the test run)."""
    try:
        return score(folder, metrics=[spec], cache_dir=None, pool=pool, progress=False, device="cpu")
    except GencriticError as exc:
        return f"{type(exc).__name__}: {exc}"


def _embeddings(model_dir: Path, paths: list[Path]) -> torch.Tensor:
    from transformers import CLIPImageProcessor, CLIPModel

    model = CLIPModel.from_pretrained(model_dir).eval()
    proc = CLIPImageProcessor.from_pretrained(model_dir)
    images = [Image.open(p).convert("RGB") for p in paths]
    with torch.no_grad():
        e = hf_features(model.get_image_features(**proc(images=images, return_tensors="pt")))
    return e / e.norm(dim=-1, keepdim=True)


def _images(folder: Path) -> list[Path]:
    return [make_image(folder / f"q{i}.png", c, size=40) for i, c in enumerate([(220, 20, 20), (20, 200, 40)])]


def _linear_head(path: Path, width: int, seed: int = 5) -> torch.nn.Linear:
    torch.manual_seed(seed)
    head = torch.nn.Linear(width, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(head.state_dict(), path)
    return head


@pytest.mark.parametrize(("file_name", "width", "expected"), [
    ("sa_0_4_vit_b_32_linear.pth", 512, B32),
    ("sa_0_4_vit_b_16_linear.pth", 512, B16),
    ("sa_0_4_vit_l_14_linear.pth", 768, L14),
    ("my-own-head.pth", 768, L14),  # 768 wide: only ViT-L/14 fits, whatever the name
])
def test_the_head_decides_the_backbone(tmp_path: Path, stand_ins: dict[str, Path], file_name: str, width: int,
                                       expected: str) -> None:
    paths = _images(tmp_path / "imgs")
    head = _linear_head(tmp_path / "heads" / file_name, width)
    pool = _pool(stand_ins)
    run = _score(tmp_path / "imgs", f"aesthetic:head={tmp_path / 'heads' / file_name}", pool)
    assert isinstance(run, ScoreRun), run
    assert pool.asked == [expected]
    assert all(r["success"] for r in run.rows), [r["error"] for r in run.rows]
    assert run.summary["metrics"]["aesthetic"]["model"] == expected
    with torch.no_grad():
        want = head(_embeddings(stand_ins[expected], paths))[:, 0].tolist()
    assert [r["aesthetic"] for r in run.rows] == pytest.approx(want, abs=1e-5)


def test_an_ambiguous_or_unknown_width_is_one_line_before_any_backbone_loads(
        tmp_path: Path, stand_ins: dict[str, Path]) -> None:
    _images(tmp_path / "imgs")
    for name, width, expected in (("head512.pth", 512, f"model={B32} (or model={B16})"),
                                  ("head640.pth", 640, "add model=<the CLIP it was trained on>")):
        _linear_head(tmp_path / name, width)
        pool = _pool(stand_ins)
        message = _score(tmp_path / "imgs", f"aesthetic:head={tmp_path / name}", pool)
        assert isinstance(message, str) and message.startswith("InputError: "), message
        assert expected in message and f"{width}-d" in message and "\n" not in message, message
        assert pool.asked == [], pool.asked  # refused before any backbone is loaded


def test_an_explicit_model_that_contradicts_the_head_is_refused(tmp_path: Path, stand_ins: dict[str, Path]) -> None:
    paths = _images(tmp_path / "imgs")
    b16_head = tmp_path / "sa_0_4_vit_b_16_linear.pth"
    _linear_head(b16_head, 512)
    # same width, another architecture: the silent wrong number
    message = _score(tmp_path / "imgs", f"aesthetic:head={b16_head};model={B32}", _pool(stand_ins))
    assert isinstance(message, str) and f"trained on {B16}" in message and "\n" not in message, message
    with pytest.raises(InputError, match=r"expects 512-d CLIP embeddings but model .* gives 768-d"):
        score(tmp_path / "imgs", metrics=[f"aesthetic:head={b16_head};model={stand_ins[L14]}"], cache_dir=None,
              pool=_pool(stand_ins), progress=False, device="cpu")
    # An explicit model of the right width that the name does not contradict is the user's to choose.
    head = _linear_head(tmp_path / "mine.pth", 512)
    run = score(tmp_path / "imgs", metrics=[f"aesthetic:head={tmp_path / 'mine.pth'};model={stand_ins[B16]}"],
                cache_dir=None, pool=_pool(stand_ins), progress=False, device="cpu")
    with torch.no_grad():
        want = head(_embeddings(stand_ins[B16], paths))[:, 0].tolist()
    assert [r["aesthetic"] for r in run.rows] == pytest.approx(want, abs=1e-5)


@pytest.mark.shared_data
def test_published_laion_heads_pick_their_own_backbones(tmp_path: Path, stand_ins: dict[str, Path]) -> None:
    """The real v1 heads (B/32, B/16, L/14) and the v2 MLP, with no model= given."""
    v1 = shared_data("laion-aesthetic-linear-heads")
    v2 = shared_data("laion-improved-aesthetic-l14") / "sac+logos+ava1-l14-linearMSE.pth"
    paths = _images(tmp_path / "imgs")
    cases = [(v1 / "sa_0_4_vit_b_32_linear.pth", B32), (v1 / "sa_0_4_vit_b_16_linear.pth", B16),
             (v1 / "sa_0_4_vit_l_14_linear.pth", L14), (v2, L14)]
    for head_path, expected in cases:
        run = _score(tmp_path / "imgs", f"aesthetic:head={head_path}", _pool(stand_ins))
        assert isinstance(run, ScoreRun), run
        assert run.summary["metrics"]["aesthetic"]["model"] == expected, head_path.name
        state = torch.load(head_path, map_location="cpu", weights_only=True)
        emb = _embeddings(stand_ins[expected], paths).double()
        if "weight" in state:
            want = (emb @ state["weight"].double().T + state["bias"].double())[:, 0]
        else:
            h = emb
            for i in sorted({int(k.split(".")[1]) for k in state}):
                h = h @ state[f"layers.{i}.weight"].double().T + state[f"layers.{i}.bias"].double()
            want = h[:, 0]
        assert [r["aesthetic"] for r in run.rows] == pytest.approx(want.tolist(), abs=1e-5), head_path.name
