"""The VLM layer and VQAScore with tiny random vision-language models (issue 21).

The models are built from transformers configs with a tokenizer made here, saved with
``save_pretrained`` and loaded through ``load_vlm`` / ``vqascore:model=FOLDER``, the path users
take. VQAScore must equal a direct computation with the same model: the softmax over the
vocabulary of the logits at the first answer position, read at the "Yes" token (t2v_metrics).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gencritic.errors import InputError, ModelUnavailableError
from gencritic.items import Item
from gencritic.metrics.registry import create_metric
from gencritic.models.loader import ModelPool
from gencritic.scoring import score
from tests.vlm_fixtures import build_tiny_llava, build_tiny_qwen2_vl

# t2v_metrics' default question (its vqa_model/llava/gpt4v modules); the metric's default must be this text
DEFAULT_QUESTION = 'Does this figure show "{}"? Please answer yes or no.'
PROMPTS = ["a red square", "a green circle on a blue square with a yellow photo", "blue"]


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny_qwen2_vl"))


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny_llava"))


def _picture(path: Path, seed: int, size: tuple[int, int]) -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    arr[size[1] // 4: 3 * size[1] // 4, size[0] // 4: 3 * size[0] // 4] = (200, 30, 30)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def direct_yes_probability(folder: Path, image: Image.Image, question: str) -> float:
    """t2v_metrics' readout, written out with transformers alone: one (image, question), no padding,
    the model's chat template, softmax of the last position's logits, P(first token of 'Yes')."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True).eval()
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[image.convert("RGB")], return_tensors="pt")
    with torch.inference_mode():
        logits = model(**inputs).logits[0, -1].float()
    yes = processor.tokenizer.encode("Yes", add_special_tokens=False)[0]
    return float(torch.softmax(logits, dim=-1)[yes])


@pytest.mark.parametrize("family", ["qwen2_vl", "llava"])
def test_vqascore_equals_the_direct_yes_probability_for_images_and_views(
        family: str, tiny_qwen: Path, tiny_llava: Path, tmp_path: Path) -> None:
    folder = tiny_qwen if family == "qwen2_vl" else tiny_llava
    sizes = [(64, 64), (96, 64), (80, 112)]  # different sizes: different image token counts on Qwen2-VL
    items = [Item(f"img{k}", "image", _picture(tmp_path / f"img{k}.png", k, sizes[k]), prompt=PROMPTS[k])
             for k in range(3)]
    views = tmp_path / "asset"
    for k in range(3):  # a pre-rendered 3D asset: its score is the mean over its views
        _picture(views / f"{k:03d}.png", 10 + k, (64, 64))
    items.append(Item("asset", "views", views, prompt="a red square on a blue circle"))
    run = score(items, metrics=f"vqascore:model={folder};batch_size=4", cache_dir=None, progress=False,
                device="cpu", batch_size=8)
    assert all(r["success"] for r in run.rows), [r["error"] for r in run.rows]
    for item, row in zip(items, run.rows, strict=True):
        files = [item.path] if item.kind == "image" else sorted(item.path.glob("*.png"))
        direct = np.mean([direct_yes_probability(folder, Image.open(f), DEFAULT_QUESTION.format(item.prompt))
                          for f in files])
        assert row["vqascore"] == pytest.approx(direct, abs=1e-5), item.item_id
        assert 0.0 < row["vqascore"] < 1.0 and row["model"] == str(folder)
    assert run.rows[-1]["num_views_scored"] == 3


def test_batched_and_one_by_one_answers_agree_and_follow_the_template(tiny_qwen: Path, tmp_path: Path) -> None:
    from gencritic.models.vlm import HFVisionLanguageModel, load_vlm
    from gencritic.models.vlm_cache import VLMClient, image_sha256

    vlm = load_vlm(str(tiny_qwen), device="cpu")
    assert isinstance(vlm, HFVisionLanguageModel)
    images = [Image.open(_picture(tmp_path / f"{k}.png", k, (64 + 16 * k, 64))) for k in range(5)]
    prompts = [DEFAULT_QUESTION.format(p) for p in [*PROMPTS, "a", "the yellow circle"]]
    batched = VLMClient(vlm, None, batch_size=5).first_token_logprobs(
        images, [image_sha256(im) for im in images], prompts, ["Yes", "No"])
    single = [VLMClient(vlm, None, batch_size=1).first_token_logprobs([im], [image_sha256(im)], [p], ["Yes", "No"])[0]
              for im, p in zip(images, prompts, strict=True)]
    for b, s in zip(batched, single, strict=True):
        assert b.error is None and s.error is None
        assert np.allclose(b.value, s.value, atol=1e-5, rtol=0)
    assert vlm.chat_text("Q?").count("<|image_pad|>") == 1 and "Q?" in vlm.chat_text("Q?")


def test_answers_are_cached_by_image_prompt_model_and_settings(tiny_qwen: Path, tmp_path: Path) -> None:
    from gencritic.models.vlm_cache import AnswerCache

    items = [Item(f"i{k}", "image", _picture(tmp_path / f"{k}.png", k, (64, 64)), prompt=PROMPTS[k])
             for k in range(3)]
    pool = ModelPool("cpu")
    spec = f"vqascore:model={tiny_qwen}"
    first = score(items, metrics=spec, cache_dir=tmp_path / "cache", pool=pool, progress=False, device="cpu")
    vlm = next(v for k, v in pool._models.items() if k[0] == "vlm")
    seen = vlm.images_seen
    assert seen == 3
    again = score(items, metrics=spec, cache_dir=tmp_path / "cache", pool=pool, progress=False, device="cpu")
    assert vlm.images_seen == seen  # every answer came from vlm_answers.sqlite
    assert [r["vqascore"] for r in again.rows] == [r["vqascore"] for r in first.rows]
    assert AnswerCache.in_dir(tmp_path / "cache").row_count() == 3
    # another question is another key: asked again, not served the old answer
    other = score(items, metrics=f"{spec};question=Is this \"{{}}\"?", cache_dir=tmp_path / "cache", pool=pool,
                  progress=False, device="cpu")
    assert vlm.images_seen == seen + 3
    assert [r["vqascore"] for r in other.rows] != [r["vqascore"] for r in first.rows]


def test_scores_are_byte_identical_twice(tiny_llava: Path, tmp_path: Path) -> None:
    items = [Item(f"i{k}", "image", _picture(tmp_path / f"{k}.png", k, (48, 48)), prompt=PROMPTS[k])
             for k in range(3)]
    outs = []
    for n in range(2):  # fresh pools, no cache: the model computes both times
        score(items, out=tmp_path / f"out{n}", metrics=f"vqascore:model={tiny_llava}", cache_dir=None,
              pool=ModelPool("cpu"), progress=False, device="cpu")
        outs.append((tmp_path / f"out{n}" / "results.csv").read_bytes())
    assert outs[0] == outs[1]


def test_unavailable_and_wrong_models_are_one_clear_error(tmp_path: Path, tiny_clip_dir: Path) -> None:
    from gencritic.models.vlm import load_vlm

    with pytest.raises(ModelUnavailableError, match="save_pretrained") as missing:
        load_vlm(str(tmp_path / "absent"), device="cpu")
    assert "\n" not in str(missing.value)
    with pytest.raises(ModelUnavailableError, match="not an image-text-to-text"):
        load_vlm(str(tiny_clip_dir), device="cpu")
    with pytest.raises(ModelUnavailableError, match="HF_HUB_OFFLINE=1 is set"):
        load_vlm("nobody/no-such-vlm", device="cpu")
    with pytest.raises(InputError, match="int8"):
        load_vlm(str(tmp_path), device="cpu", dtype="int8")
    with pytest.raises(InputError, match=r"must contain \{\} exactly once"):
        create_metric("vqascore:question=Is it there?")


def test_cli_reports_a_missing_vlm_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from gencritic.cli.main import main

    image = _picture(tmp_path / "a.png", 0, (32, 32))
    monkeypatch.setattr(sys, "argv", ["gencritic", "score", str(image), "--prompt", "a red square", "--out",
                                      str(tmp_path / "out"), "--quiet", "--no-cache", "--device", "cpu",
                                      "--metrics", f"vqascore:model={tmp_path / 'nothing'}"])
    with pytest.raises(SystemExit) as exc:
        main()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert exc.value.code == 2 and len(lines) == 1 and "cannot load vision-language model" in lines[0], lines


def test_images_are_bounded_before_the_model_sees_them(tiny_qwen: Path, tmp_path: Path) -> None:
    from gencritic.models.vlm import load_vlm
    from gencritic.models.vlm_cache import VLMClient

    vlm = load_vlm(str(tiny_qwen), device="cpu", max_side=64)
    big = Image.open(_picture(tmp_path / "big.png", 3, (256, 128)))
    small = big.resize((64, 32), Image.Resampling.BICUBIC)
    a = VLMClient(vlm).first_token_logprobs([big], ["big"], ["q"], ["Yes"])[0].value
    b = VLMClient(vlm).first_token_logprobs([small], ["small"], ["q"], ["Yes"])[0].value
    assert a == pytest.approx(b, abs=1e-6)
    assert vlm.settings()["max_side"] == 64
