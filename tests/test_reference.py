"""Reference-based metrics against independent references on identical inputs.

SSIM/PSNR vs scikit-image, MS-SSIM vs torchmetrics, LPIPS vs the ``lpips`` package with the same
(random) backbone weights, clip_i2i and dino vs the raw transformers models, and the pipeline
end to end with a reference column, a reference folder and a missing reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gencritic.errors import InputError, ModelUnavailableError
from gencritic.metrics._iqa import ssim as S
from tests.conftest import hf_features
from tests.metric_harness import Case, check_metric


def _smooth_pair(h: int, w: int, seed: int = 0, noise: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random image and a noisy copy, float64 in [0, 1], HWC."""
    rng = np.random.default_rng(seed)
    base = rng.random((h // 8 + 2, w // 8 + 2, 3))
    img = np.asarray(Image.fromarray((base * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC),
                     dtype=np.float64) / 255.0
    other = np.clip(img + rng.normal(0, noise, img.shape), 0, 1)
    return img, other


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0)


# -- SSIM / PSNR / MS-SSIM maths ------------------------------------------------------------------


@pytest.mark.parametrize(("h", "w", "noise"), [(11, 11, 0.1), (40, 57, 0.05), (96, 64, 0.3)])
def test_ssim_equals_scikit_image_gaussian_ssim(h: int, w: int, noise: float) -> None:
    from skimage.metrics import structural_similarity

    a, b = _smooth_pair(h, w, seed=h, noise=noise)
    ref = structural_similarity(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=1.0)
    assert float(S.ssim(_t(a), _t(b))[0]) == pytest.approx(ref, abs=1e-10)


def test_masked_ssim_is_the_mask_weighted_mean_of_scikit_image_map() -> None:
    from skimage.metrics import structural_similarity

    a, b = _smooth_pair(48, 48, seed=3)
    _, smap = structural_similarity(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=1.0, full=True)
    mask = np.zeros((48, 48))
    mask[10:40, 5:30] = 1.0
    mask[20:25, 30:45] = 0.5
    crop = (slice(5, -5), slice(5, -5))
    m = mask[crop][..., None]
    expected = float((smap[crop] * m).sum() / (m.sum() * 3))
    got = float(S.ssim(_t(a), _t(b), torch.from_numpy(mask)[None, None])[0])
    assert got == pytest.approx(expected, abs=1e-10)
    ones = torch.ones(1, 1, 48, 48, dtype=torch.float64)
    assert float(S.ssim(_t(a), _t(b), ones)[0]) == pytest.approx(float(S.ssim(_t(a), _t(b))[0]), abs=1e-12)


def test_psnr_equals_scikit_image_and_masked_psnr_uses_only_object_pixels() -> None:
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _smooth_pair(30, 41, seed=5)
    assert float(S.psnr(_t(a), _t(b))[0]) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-9)
    mask = np.zeros((30, 41), dtype=bool)
    mask[5:20, 10:30] = True
    expected = 10 * np.log10(1.0 / ((a[mask] - b[mask]) ** 2).mean())
    got = float(S.psnr(_t(a), _t(b), torch.from_numpy(mask.astype(np.float64))[None, None])[0])
    assert got == pytest.approx(expected, abs=1e-9)
    assert float(S.psnr(_t(a), _t(a))[0]) == float("inf")


def test_ms_ssim_matches_torchmetrics() -> None:
    """torchmetrics averages the last-scale SSIM over a reflect-padded full frame while Wang's
    definition (and ours) uses the valid region: equal contrast terms, last scale within 2e-3."""
    from skimage.metrics import structural_similarity
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm_ms_ssim
    from torchmetrics.functional.image.ssim import _ssim_update

    a, b = _smooth_pair(192, 176, seed=7, noise=0.05)
    x, y = _t(a), _t(b)
    ours = float(S.ms_ssim(x, y)[0])
    assert ours == pytest.approx(float(tm_ms_ssim(x, y, data_range=1.0)), abs=2e-3)
    # exact: contrast terms from torchmetrics (valid crop), last scale SSIM from scikit-image
    terms = []
    xs, ys = x, y
    for level in range(5):
        if level < 4:
            _, cs = _ssim_update(xs, ys, data_range=1.0, return_contrast_sensitivity=True)
            terms.append(float(cs[0]))
            xs, ys = torch.nn.functional.avg_pool2d(xs, 2), torch.nn.functional.avg_pool2d(ys, 2)
        else:
            terms.append(structural_similarity(xs[0].permute(1, 2, 0).numpy(), ys[0].permute(1, 2, 0).numpy(),
                                               channel_axis=2, gaussian_weights=True, sigma=1.5,
                                               use_sample_covariance=False, data_range=1.0))
    expected = float(np.prod(np.maximum(terms, 0) ** np.array(S.MS_WEIGHTS)))
    assert ours == pytest.approx(expected, abs=1e-9)


def test_torch_path_used_on_accelerators_equals_the_numpy_cpu_path() -> None:
    """ssim()/ms_ssim() run NumPy on CPU and torch elsewhere; feed the torch path CPU tensors."""
    a, b = _smooth_pair(170, 180, seed=11)
    x, y = _t(a), _t(b)
    mask = torch.rand(1, 1, 170, 180, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    smap_t, cs_t = S.ssim_maps(x, y)
    smap_n, cs_n = S.ssim_maps(x.numpy(), y.numpy())
    assert np.allclose(smap_t.numpy(), smap_n, atol=1e-12) and np.allclose(cs_t.numpy(), cs_n, atol=1e-12)
    assert float(S._weighted_mean(smap_t, mask)[0]) == pytest.approx(float(S.ssim(x, y, mask)[0]), abs=1e-12)
    assert np.allclose(S._pool2(x).numpy(), S._pool2(x.numpy()), atol=1e-15)


def test_ms_ssim_refuses_small_images_with_the_size_it_needs() -> None:
    a, b = _smooth_pair(100, 100)
    with pytest.raises(ValueError, match="176x176"):
        S.ms_ssim(_t(a), _t(b))
    a, b = _smooth_pair(175, 190)  # 175 -> 87 -> 43 -> 21 -> 10: no 11x11 window at the last scale
    with pytest.raises(ValueError, match="5-scale MS-SSIM needs images of at least 176x176 pixels"):
        S.ms_ssim(_t(a), _t(b))
    a, b = _smooth_pair(176, 176)
    assert 0.0 < float(S.ms_ssim(_t(a), _t(b))[0]) <= 1.0


# -- LPIPS ----------------------------------------------------------------------------------------


def _random_backbone(net: str, path, seed: int = 0):  # type: ignore[no-untyped-def]
    """Random torchvision features saved the way torchvision's checkpoints name them."""
    from gencritic.models.lpips_nets import _features

    torch.manual_seed(seed)
    feats = _features(net)
    torch.save({f"features.{k}": v for k, v in feats.state_dict().items()}, path)
    return feats


def _upstream_lpips(net: str, feats, monkeypatch=None):  # type: ignore[no-untyped-def]
    import lpips

    if net == "vgg" and monkeypatch is not None:  # skip building VGG16's unused 120M-parameter classifier
        from types import SimpleNamespace

        from torchvision.models.vgg import cfgs, make_layers

        monkeypatch.setattr(lpips.pretrained_networks.tv, "vgg16",
                            lambda **kw: SimpleNamespace(features=make_layers(cfgs["D"])))
    ref = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    for name, block in ref.net.named_children():
        if name.startswith("slice"):
            for idx, module in block.named_children():
                module.load_state_dict(feats[int(idx)].state_dict())
    return ref.eval()


@pytest.mark.parametrize("net", ["alex", "squeeze", "vgg"])
def test_lpips_equals_lpips_package_with_the_same_backbone_weights(net: str, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from gencritic.models.lpips_nets import load_lpips

    weights = tmp_path / f"{net}.pth"
    feats = _random_backbone(net, weights, seed=1)
    ours = load_lpips(net, weights=str(weights))
    ref = _upstream_lpips(net, feats, monkeypatch)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 64, 72, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(2, 3, 64, 72, generator=g)).clamp(-1, 1)
    with torch.no_grad():
        expected = ref(x, y).flatten()
    got = ours(x, y)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0), (got, expected)
    assert torch.allclose(ours(y, x), got, atol=1e-6)  # symmetric
    assert float(ours(x, x).abs().max()) == 0.0
    assert torch.allclose(ours(x, y, torch.ones(2, 1, 64, 72)), got, atol=1e-6)  # all-ones mask = no mask


def test_lpips_without_backbone_weights_says_how_to_provide_them(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from gencritic.models.lpips_nets import load_lpips

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("GENCRITIC_LPIPS_ALEX_WEIGHTS", raising=False)
    with pytest.raises(ModelUnavailableError, match=r"alexnet-owt-7be5be79\.pth.*GENCRITIC_LPIPS_ALEX_WEIGHTS"):
        load_lpips("alex")
    with pytest.raises(ModelUnavailableError, match="not found"):
        load_lpips("alex", weights=str(tmp_path / "nope.pth"))
    with pytest.raises(InputError, match="net=alex"):
        load_lpips("resnet")


def test_lpips_finds_weights_in_torch_hub_cache(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from gencritic.models.lpips_nets import NETS, load_lpips

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    _random_backbone("squeeze", ckpt / NETS["squeeze"].file)
    net = load_lpips("squeeze")
    x = torch.zeros(1, 3, 32, 32)
    assert float(net(x, x)[0]) == 0.0


# -- pipeline end to end --------------------------------------------------------------------------


def _hf_image_embedding(model_dir, image: Image.Image) -> torch.Tensor:  # type: ignore[no-untyped-def]
    from transformers import CLIPImageProcessor, CLIPModel

    model = CLIPModel.from_pretrained(model_dir).eval()
    proc = CLIPImageProcessor.from_pretrained(model_dir)
    with torch.no_grad():
        e = hf_features(model.get_image_features(**proc(images=image, return_tensors="pt")))
    return (e / e.norm(dim=-1, keepdim=True))[0]


def _make_pair_images(folder, n: int = 3):  # type: ignore[no-untyped-def]
    from tests.conftest import make_image

    gen, ref = folder / "gen", folder / "ref"
    colors = [(220, 20, 20), (20, 200, 40), (20, 40, 220)]
    for i in range(n):
        make_image(gen / f"img{i}.png", colors[i], size=48)
        make_image(ref / f"img{i}.png", colors[(i + 1) % n] if i == 0 else colors[i], size=40 + 8 * i)
    return gen, ref


def test_pipeline_reference_column_scores_equal_independent_computations(tmp_path, tiny_clip_dir) -> None:  # type: ignore[no-untyped-def]
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from gencritic.models.loader import ModelPool
    from gencritic.scoring import score

    gen, ref = _make_pair_images(tmp_path)
    manifest = tmp_path / "m.csv"
    manifest.write_text("image,prompt,reference\n" + "".join(
        f"gen/img{i}.png,a square,ref/img{i}.png\n" for i in range(3)) + "gen/img1.png,a square,\n")
    pool = ModelPool("cpu")
    run = score(manifest, metrics=["clip", "ssim", "psnr", "clip_i2i"], model=str(tiny_clip_dir),
                cache_dir=tmp_path / "cache", progress=False, pool=pool, device="cpu")
    rows = run.rows
    assert [r["success"] for r in rows] == [True, True, True, False]
    assert "needs a reference image" in rows[3]["error"] and "--reference-dir" in rows[3]["error"]
    for i in range(3):
        g = Image.open(gen / f"img{i}.png").convert("RGB")
        r = Image.open(ref / f"img{i}.png").convert("RGB")
        r_resized = r.resize(g.size, Image.Resampling.BICUBIC)  # the documented size rule
        a = np.asarray(g, dtype=np.float64) / 255
        b = np.asarray(r_resized, dtype=np.float64) / 255
        assert rows[i]["ssim"] == pytest.approx(structural_similarity(
            a, b, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0),
            abs=1e-9)
        assert rows[i]["psnr"] == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-9)
        cos = float(_hf_image_embedding(tiny_clip_dir, g) @ _hf_image_embedding(tiny_clip_dir, r))
        assert rows[i]["clip_i2i"] == pytest.approx(cos, abs=1e-5)
    # generated views are encoded once and shared by clip and clip_i2i; references are cached too
    bb = pool.clip(str(tiny_clip_dir))
    first = bb.image_encode_count
    assert first == 3 + 3  # 3 distinct generated images + 3 references
    again = score(manifest, metrics=["clip", "clip_i2i"], model=str(tiny_clip_dir), cache_dir=tmp_path / "cache",
                  progress=False, pool=pool, device="cpu")
    assert bb.image_encode_count == first  # warm cache: nothing re-encoded
    assert [r["clip_i2i"] for r in again.rows[:3]] == pytest.approx([r["clip_i2i"] for r in rows[:3]], abs=1e-7)


def test_reference_dir_pairs_by_file_stem(tmp_path, tiny_clip_dir) -> None:  # type: ignore[no-untyped-def]
    from gencritic.io.manifest import collect_items, pair_references
    from gencritic.scoring import score

    gen, ref = _make_pair_images(tmp_path)
    (ref / "img2.png").rename(ref / "img2.jpg.tmp")
    Image.open(ref / "img2.jpg.tmp").convert("RGB").save(ref / "img2.jpg")
    (ref / "img2.jpg.tmp").unlink()
    (gen / "extra.png").write_bytes((gen / "img0.png").read_bytes())
    items = pair_references(collect_items(gen), ref)
    assert {i.path.name: (i.reference.name if i.reference else None) for i in items} == {
        "extra.png": None, "img0.png": "img0.png", "img1.png": "img1.png", "img2.png": "img2.jpg"}
    run = score(gen, metrics=["ssim"], cache_dir=None, progress=False, reference_dir=ref)
    by = {r["item_id"]: r for r in run.rows}
    assert by["img1.png"]["success"] and not by["extra.png"]["success"]
    assert "needs a reference image" in by["extra.png"]["error"]
    Image.open(ref / "img0.png").save(ref / "img0.bmp")
    with pytest.raises(InputError, match="two images for 'img0'"):
        pair_references(items, ref)


def test_alpha_masks_restrict_pixel_metrics_to_the_object(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Same object, different backgrounds: masked PSNR is inf, unmasked finite; mask=none opts out."""
    from gencritic.scoring import score

    obj = np.zeros((40, 40, 4), dtype=np.uint8)
    obj[10:30, 10:30] = (200, 40, 40, 255)
    Image.fromarray(obj, "RGBA").save(tmp_path / "gen.png")
    photo = np.full((40, 40, 3), 30, dtype=np.uint8)
    photo[10:30, 10:30] = (200, 40, 40)
    Image.fromarray(photo).save(tmp_path / "ref.png")
    (tmp_path / "m.csv").write_text("image,reference\ngen.png,ref.png\n")
    masked = score(tmp_path / "m.csv", metrics=["psnr", "ssim"], cache_dir=None, progress=False).rows[0]
    whole = score(tmp_path / "m.csv", metrics=["psnr:mask=none"], cache_dir=None, progress=False).rows[0]
    assert masked["psnr"] == float("inf")
    assert np.isfinite(whole["psnr"]) and whole["psnr"] < 20
    assert masked["ssim"] == pytest.approx(1.0, abs=1e-12)  # background never enters a window
    with pytest.raises(InputError, match="mask=auto"):
        score(tmp_path / "m.csv", metrics=["psnr:mask=maybe"], cache_dir=None, progress=False)


def test_lpips_metric_in_a_run_equals_lpips_package(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Three same-size pairs go through the net as one batch; each equals the lpips package (and
    the metric keeps its range, direction and determinism: tests/metric_harness.py)."""
    feats = _random_backbone("alex", tmp_path / "alex.pth", seed=4)
    ref_net = _upstream_lpips("alex", feats)
    gen, ref = _make_pair_images(tmp_path)
    cases = [Case(gen / f"img{i}.png", reference=ref / f"img{i}.png") for i in range(3)]

    def upstream(cases: Sequence[Case]) -> dict[str, list[float]]:
        out = []
        for case in cases:
            g = Image.open(case.image).convert("RGB")
            r = Image.open(case.reference).convert("RGB").resize(g.size, Image.Resampling.BICUBIC)  # type: ignore[arg-type]
            x = torch.from_numpy(np.asarray(g, dtype=np.float32) / 255).permute(2, 0, 1)[None]
            y = torch.from_numpy(np.asarray(r, dtype=np.float32) / 255).permute(2, 0, 1)[None]
            with torch.no_grad():
                out.append(float(ref_net(x, y, normalize=True)))
        return {"lpips": out}

    # img1 and its reference are the same picture: better (lower) than img0 and its other colour
    rows = check_metric(f"lpips:net=alex;weights={tmp_path / 'alex.pth'}", cases, upstream, atol=1e-5,
                        better=[(1, 0)])
    assert rows[0]["model"] == "lpips-v0.1-alex"
    assert rows[1]["lpips"] == 0.0  # img1 and its reference are the same picture


# -- DINOv2 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dino_dir(tmp_path_factory):  # type: ignore[no-untyped-def]
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    folder = tmp_path_factory.mktemp("tiny_dino")
    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          image_size=32, patch_size=8)
    Dinov2Model(config).eval().save_pretrained(folder)
    BitImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}, do_center_crop=True,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


def test_dino_metric_equals_raw_dinov2_cls_cosine(tmp_path, tiny_dino_dir) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoImageProcessor, Dinov2Model

    gen, ref = _make_pair_images(tmp_path)
    cases = [Case(gen / f"img{i}.png", reference=ref / f"img{i}.png") for i in range(3)]
    model = Dinov2Model.from_pretrained(tiny_dino_dir).eval()
    proc = AutoImageProcessor.from_pretrained(tiny_dino_dir)

    def emb(path):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            out = model(**proc(images=Image.open(path).convert("RGB"), return_tensors="pt"))
        cls = out.last_hidden_state[0, 0]  # CLS token after the final layer norm
        return cls / cls.norm()

    expected = {"dino": [float(emb(c.image) @ emb(c.reference)) for c in cases]}
    # img1's reference is the same picture: more similar (higher) than img0's other colour
    rows = check_metric(f"dino:model={tiny_dino_dir}", cases, expected, atol=1e-5, better=[(1, 0)],
                        cache_dir=tmp_path / "c")
    assert rows[0]["model"] == str(tiny_dino_dir)


def test_dino_unavailable_names_the_fix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gencritic.models.dino import load_dino

    empty = tmp_path / "not_a_model"
    empty.mkdir()
    with pytest.raises(ModelUnavailableError, match=r"cannot load DINOv2 model .*not_a_model.*dino:model=/path/to/folder"):
        load_dino(str(empty), "cpu")


def test_cli_reference_dir_flag(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import csv

    from typer.testing import CliRunner

    from gencritic.cli.main import app

    gen, ref = _make_pair_images(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["score", str(gen), "--out", str(out), "--metrics", "ssim,psnr",
                                      "--reference-dir", str(ref), "--no-cache", "--quiet"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 3 and all(r["success"].lower() == "true" for r in rows)
    assert all(-1 <= float(r["ssim"]) <= 1 for r in rows)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), h=st.integers(11, 30), w=st.integers(11, 30))
def test_ssim_psnr_properties(seed: int, h: int, w: int) -> None:
    """Symmetric, SSIM <= 1 with equality for identical images, PSNR finite unless identical."""
    rng = np.random.default_rng(seed)
    a, b = _t(rng.random((h, w, 3))), _t(rng.random((h, w, 3)))
    s_ab, s_ba = float(S.ssim(a, b)[0]), float(S.ssim(b, a)[0])
    assert s_ab == pytest.approx(s_ba, abs=1e-12) and -1 <= s_ab <= 1
    assert float(S.ssim(a, a)[0]) == pytest.approx(1.0, abs=1e-12)
    assert float(S.psnr(a, b)[0]) == pytest.approx(float(S.psnr(b, a)[0]), abs=1e-12)
    assert np.isfinite(float(S.psnr(a, b)[0]))
