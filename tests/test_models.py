"""The model layer: every spec users pass loads through one loader, and the cosine gencritic
reports equals the one computed independently with raw model calls and with torchmetrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gencritic
from gencritic.errors import InputError, ModelUnavailableError
from gencritic.models.loader import load_clip
from tests.conftest import hf_features, make_image

PROMPTS = ["a red square", "a green square on a pink field", "a blue box", "yellow", "purple thing", "orange"]
COLORS = [(220, 20, 20), (20, 200, 40), (20, 40, 220), (230, 220, 30), (140, 30, 160), (240, 140, 20)]


@pytest.fixture()
def manifest(tmp_path: Path) -> Path:
    rows = ["image,prompt"]
    for i, (color, prompt) in enumerate(zip(COLORS, PROMPTS, strict=True)):
        make_image(tmp_path / f"img{i}.png", color, size=40 + 8 * i)
        rows.append(f"img{i}.png,{prompt}")
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def raw_hf_cosines(model_dir: Path, images: list[Image.Image], texts: list[str]) -> np.ndarray:
    """Independent computation with plain transformers calls (no gencritic code)."""
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(model_dir).eval()
    processor = CLIPProcessor.from_pretrained(model_dir)
    with torch.no_grad():
        inputs = processor(text=texts, images=images, return_tensors="pt", padding=True)
        out = model(**inputs)
        img = out.image_embeds / out.image_embeds.norm(dim=-1, keepdim=True)
        txt = out.text_embeds / out.text_embeds.norm(dim=-1, keepdim=True)
    return (img * txt).sum(-1).double().numpy()


def test_hf_path_scores_equal_raw_model_cosine(tiny_clip_dir: Path, manifest: Path, tmp_path: Path) -> None:
    run = gencritic.score(manifest, out=tmp_path / "out", model=str(tiny_clip_dir), device="cpu",
                          cache_dir=None, progress=False)
    images = [Image.open(manifest.parent / f"img{i}.png").convert("RGB") for i in range(len(PROMPTS))]
    expected = raw_hf_cosines(tiny_clip_dir, images, PROMPTS)
    got = np.array([r["clip_score"] for r in run.rows])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose([r["clip_score_x100"] for r in run.rows], 100 * expected, atol=1e-3)
    assert all(r["success"] for r in run.rows)
    assert run.summary["mean"] == pytest.approx(float(expected.mean()), abs=1e-5)


def test_matches_torchmetrics_clipscore(tiny_clip_dir: Path, manifest: Path) -> None:
    from torchmetrics.functional.multimodal.clip_score import _clip_score_update
    from torchmetrics.multimodal.clip_score import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    processor = CLIPProcessor.from_pretrained(tiny_clip_dir)
    run = gencritic.score(manifest, model=str(tiny_clip_dir), device="cpu", cache_dir=None, progress=False,
                          metrics=["clip", "clip_torchmetrics"])
    tensors = [torch.from_numpy(np.array(Image.open(manifest.parent / f"img{i}.png").convert("RGB"))).permute(2, 0, 1)
               for i in range(len(PROMPTS))]
    with torch.no_grad():
        raw, _ = _clip_score_update(tensors, PROMPTS, model, processor)  # 100*cos, unclamped, per pair
    np.testing.assert_allclose([r["clip_score_x100"] for r in run.rows], raw.double().numpy(), atol=1e-3)
    for i, row in enumerate(run.rows):  # the public class, one pair at a time: max(100*cos, 0)
        metric = CLIPScore(model_name_or_path=lambda: (model, processor))
        metric.update(tensors[i], PROMPTS[i])
        assert row["clip_torchmetrics"] == pytest.approx(float(metric.compute()), abs=1e-3)


def test_named_variants_are_functions_of_one_cosine(tiny_clip_dir: Path, manifest: Path) -> None:
    run = gencritic.score(manifest, model=str(tiny_clip_dir), device="cpu", cache_dir=None, progress=False,
                          metrics="clip,clip_torchmetrics,clipscore_hessel")
    for r in run.rows:
        cos = r["clip_score"]
        assert r["clip_torchmetrics"] == pytest.approx(100 * max(cos, 0.0), abs=1e-9)
        assert r["clipscore_hessel"] == pytest.approx(2.5 * max(cos, 0.0), abs=1e-9)


def test_open_clip_config_path_matches_raw_open_clip(tiny_open_clip: tuple[str, Path], tmp_path: Path) -> None:
    import open_clip

    name, ckpt = tiny_open_clip
    backbone = load_clip(f"open_clip:{name}@{ckpt}", device="cpu")
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(ckpt))
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)
    img = Image.open(make_image(tmp_path / "a.png", (10, 200, 90))).convert("RGB")
    with torch.no_grad():
        ref_i = model.encode_image(preprocess(img)[None])
        ref_t = model.encode_text(tokenizer(["a green thing"]))
    ref = torch.nn.functional.cosine_similarity(ref_i, ref_t).item()
    ours = (backbone.encode_images(backbone.preprocess(img)[None]) * backbone.encode_texts(["a green thing"])).sum().item()
    assert ours == pytest.approx(ref, abs=1e-5)
    assert backbone.context_length == 77


def test_openai_format_checkpoint_infers_long_context(tmp_path: Path) -> None:
    """Long-CLIP-style: an OpenAI-format state dict with 248 positions gives a 248-token model."""
    from tests.conftest import build_tiny_open_clip

    _, ckpt = build_tiny_open_clip(tmp_path, name="gencritic-tiny-long", context_length=248)
    backbone = load_clip(str(ckpt), device="cpu")
    assert backbone.context_length == 248
    long_text = " ".join(["word"] * 150)
    assert backbone.truncation_report(long_text) == 0
    short = load_clip(str(build_tiny_open_clip(tmp_path / "s", name="gencritic-tiny-short")[1]), device="cpu")
    assert short.truncation_report(long_text) == 150 + 2 - 77


def test_safetensors_hf_weights_file(tiny_clip_dir: Path) -> None:
    backbone = load_clip(str(tiny_clip_dir / "model.safetensors"), device="cpu")
    ref = load_clip(str(tiny_clip_dir), device="cpu")
    t = ["a cat"]
    assert torch.allclose(backbone.encode_texts(t), ref.encode_texts(t), atol=1e-6)


def test_unknown_model_offline_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelUnavailableError) as err:
        load_clip("nobody/clip-that-does-not-exist", device="cpu")
    msg = str(err.value)
    assert "nobody/clip-that-does-not-exist" in msg and "HF_HUB_OFFLINE=1" in msg and "save_pretrained" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("spec", ["./missing-folder", "/nope/model.safetensors"])
def test_missing_paths_fail_clearly(spec: str) -> None:
    with pytest.raises(ModelUnavailableError, match="no such file"):
        load_clip(spec, device="cpu")


def test_open_clip_name_without_tag_asks_for_one() -> None:
    with pytest.raises(InputError, match="pretrained tag"):
        load_clip("ViT-B-32", device="cpu")


def test_device_and_dtype_validation() -> None:
    from gencritic.models.device import resolve_device, resolve_dtype

    assert resolve_device("cpu").type == "cpu"
    assert resolve_dtype("auto", torch.device("cpu")) == (torch.float32, False)
    assert resolve_dtype("int8", torch.device("cpu")) == (torch.float32, True)
    with pytest.raises(InputError):
        resolve_dtype("fp8", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA"):
            resolve_device("cuda")


def test_int8_fast_mode_is_close_to_fp32(tiny_clip_dir: Path, manifest: Path) -> None:
    fp32 = gencritic.score(manifest, model=str(tiny_clip_dir), device="cpu", cache_dir=None, progress=False)
    int8 = gencritic.score(manifest, model=str(tiny_clip_dir), device="cpu", dtype="int8", cache_dir=None,
                           progress=False)
    diff = np.abs(np.array([r["clip_score"] for r in fp32.rows]) - np.array([r["clip_score"] for r in int8.rows]))
    assert diff.max() < 0.05  # tiny random nets quantise worse than real ones; the benchmark measures ViT-B/32
    assert int8.summary["settings"]["dtype"] == "int8"


@pytest.mark.parametrize("size", [(256, 256), (512, 300), (300, 512), (225, 1000), (40, 33)])
def test_fast_preprocessing_is_identical_to_hf_processor(tiny_clip_dir: Path, size: tuple[int, int]) -> None:
    from transformers import CLIPImageProcessor

    from gencritic.models.clip import _standard_clip_preprocess, _tensor_backend

    for processor in (CLIPImageProcessor.from_pretrained(tiny_clip_dir),
                      CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})):
        img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        ours = _standard_clip_preprocess(img, processor)
        ref = processor(images=img, return_tensors="pt")["pixel_values"][0]
        if _tensor_backend(processor):  # transformers 5: torchvision's resize, which only HF reproduces
            assert ours is None
        elif ours is not None:  # None means "defer to HF" (images smaller than the crop)
            assert torch.equal(ours, ref)
        else:
            assert min(size) < processor.crop_size["height"]


def test_int8_linear_is_bit_identical_to_torch_quantize_dynamic() -> None:
    import copy
    import warnings

    from torch.ao.quantization import quantize_dynamic

    from gencritic.models.int8 import quantise_linears

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 32, bias=False))
    x = torch.randn(5, 7, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)(x)
    assert torch.equal(quantise_linears(copy.deepcopy(model))(x), expected)


def test_int8_quantises_the_image_tower_only(tiny_clip_dir: Path) -> None:
    from gencritic.models.int8 import Int8DynamicLinear

    model = load_clip(str(tiny_clip_dir), device="cpu", dtype="int8").model
    vision = [m for m in model.vision_model.modules() if isinstance(m, Int8DynamicLinear)]
    text_int8 = [m for m in model.text_model.modules() if isinstance(m, Int8DynamicLinear)]
    assert vision and isinstance(model.visual_projection, Int8DynamicLinear)
    assert not text_int8 and isinstance(model.text_projection, torch.nn.Linear)


def test_quick_gelu_rewrites_are_equivalent_and_installed(tiny_clip_dir: Path,
                                                         tiny_open_clip: tuple[str, Path]) -> None:
    from transformers import CLIPModel
    from transformers.activations import QuickGELUActivation

    from gencritic.models.activations import InplaceQuickGELU

    x = torch.randn(4, 50, 3072)
    with torch.inference_mode():
        assert torch.equal(InplaceQuickGELU()(x), QuickGELUActivation()(x))
    grad_x = x.clone().requires_grad_()
    InplaceQuickGELU()(grad_x).sum().backward()  # the autograd path must still work
    assert grad_x.grad is not None

    # fp32: bit-identical to the transformers model (with the same class-token-only last layer:
    # that one is compared with the untouched model, to float rounding, in test_cls_only.py)
    from gencritic.models.cls_only import skip_unread_tokens

    pixels = torch.randn(3, 3, 32, 32)
    ours = load_clip(str(tiny_clip_dir), device="cpu").model
    raw = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    assert skip_unread_tokens(raw.vision_model)
    with torch.inference_mode():
        assert torch.equal(hf_features(ours.get_image_features(pixel_values=pixels)), hf_features(raw.get_image_features(pixel_values=pixels)))
    name, ckpt = tiny_open_clip
    for spec in (str(tiny_clip_dir), f"open_clip:{name}@{ckpt}"):
        names = {type(m).__name__ for m in load_clip(spec, device="cpu").model.modules()}
        assert "InplaceQuickGELU" in names and not names & {"QuickGELUActivation", "QuickGELU", "InplaceSiLU"}
    # int8: the image tower's MLPs are folded into SiLU, the fp32 text tower keeps QuickGELU
    int8 = load_clip(str(tiny_clip_dir), device="cpu", dtype="int8").model
    assert {type(m).__name__ for m in int8.vision_model.modules()} >= {"InplaceSiLU"}
    assert "InplaceSiLU" not in {type(m).__name__ for m in int8.text_model.modules()}


def test_int8_quick_gelu_fold_equals_quantising_the_folded_float_mlp() -> None:
    import copy
    import warnings

    from torch.ao.quantization import quantize_dynamic
    from transformers.activations import QuickGELUActivation

    from gencritic.models.activations import QUICK_GELU_ALPHA, speed_up_quick_gelu
    from gencritic.models.int8 import Int8DynamicLinear

    class Mlp(torch.nn.Module):  # transformers' CLIPMLP layout
        def __init__(self) -> None:
            super().__init__()
            self.activation_fn = QuickGELUActivation()
            self.fc1, self.fc2 = torch.nn.Linear(32, 128), torch.nn.Linear(128, 32)

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            return self.fc2(self.activation_fn(self.fc1(h)))

    torch.manual_seed(0)
    mlp, h = Mlp().eval(), torch.randn(6, 5, 32)
    ours = copy.deepcopy(mlp)
    assert speed_up_quick_gelu(ours, make_linear=Int8DynamicLinear.from_linear)["folded"] == 1
    folded = copy.deepcopy(mlp)  # the fold done in float, then torch's own quantisation
    with torch.no_grad():
        folded.fc1.weight.mul_(QUICK_GELU_ALPHA)
        folded.fc1.bias.mul_(QUICK_GELU_ALPHA)
        folded.fc2.weight.div_(QUICK_GELU_ALPHA)
    folded.activation_fn = torch.nn.SiLU()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = quantize_dynamic(folded, {torch.nn.Linear}, dtype=torch.qint8)
    with torch.inference_mode():
        got, expected, exact = ours(h), reference(h), mlp(h)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert (got - exact).abs().max() < 0.05 * exact.abs().max()  # and it is still the MLP


def test_real_clip_weights_rank_an_obvious_case(tmp_path: Path) -> None:
    """With real CLIP weights present (HF cache, or GENCRITIC_TEST_CLIP_MODEL naming a local copy),
    a red square must score higher with "a red square" than with "a blue circle"."""
    import os

    from gencritic.models.loader import DEFAULT_CLIP_MODEL

    spec = os.environ.get("GENCRITIC_TEST_CLIP_MODEL", DEFAULT_CLIP_MODEL)
    try:
        load_clip(spec, device="cpu")
    except ModelUnavailableError as exc:
        pytest.skip(f"real CLIP weights unavailable: {str(exc).splitlines()[0][:160]}")
    arr = np.full((224, 224, 3), 255, np.uint8)
    arr[56:168, 56:168] = (220, 20, 20)
    Image.fromarray(arr).save(tmp_path / "red.png")
    rows = [gencritic.score(tmp_path / "red.png", prompt=p, model=spec, device="cpu", cache_dir=None,
                            progress=False).rows[0] for p in ("a red square", "a blue circle")]
    assert rows[0]["clip_score"] > rows[1]["clip_score"], rows


def test_int8_patch_embedding_is_the_convolution_as_an_int8_product(tiny_open_clip: tuple[str, Path]) -> None:
    from gencritic.models.int8 import Int8DynamicLinear, Int8PatchEmbedding

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 24, kernel_size=8, stride=8, bias=True)
    x = torch.randn(2, 3, 35, 33)  # not a multiple of 8: the convolution ignores the remainder
    ours = Int8PatchEmbedding(conv)(x)
    # independent route: torch's unfold (channel, row, column order) into the same int8 Linear
    linear = torch.nn.Linear(3 * 64, 24)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.reshape(24, -1))
        linear.bias.copy_(conv.bias)
    cols = torch.nn.functional.unfold(x, kernel_size=8, stride=8).transpose(1, 2)  # (B, L, C*k*k)
    expected = Int8DynamicLinear.from_linear(linear)(cols.reshape(-1, 3 * 64)).reshape(2, 4, 4, 24).permute(0, 3, 1, 2)
    assert torch.equal(ours, expected)
    with torch.no_grad():
        fp32 = conv(x)
    assert (ours - fp32).abs().max() < 0.02 * fp32.abs().max()
    assert not Int8PatchEmbedding.applies_to(torch.nn.Conv2d(3, 8, kernel_size=3, padding=1))

    name, ckpt = tiny_open_clip
    spec = f"open_clip:{name}@{ckpt}"
    int8, fp32_bb = load_clip(spec, device="cpu", dtype="int8"), load_clip(spec, device="cpu")
    assert isinstance(int8.model.visual.conv1, Int8PatchEmbedding)
    pixels = torch.randn(2, 3, 32, 32)
    assert (int8.encode_images(pixels) * fp32_bb.encode_images(pixels)).sum(-1).min() > 0.95
