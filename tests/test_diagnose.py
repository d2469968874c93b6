"""Diagnostics: colour maths against skimage / published values, analysers moving the right way on
synthetic images, profiles, rules -> exact suggestions, determinism, CLI and CLIP probes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gencritic.diagnose import color, shape
from gencritic.diagnose.analysers import ImageContext, measure
from gencritic.diagnose.api import diagnose
from gencritic.diagnose.profiles import list_profiles, load_profile
from gencritic.diagnose.rules import component_score, suggest, verdict
from gencritic.errors import InputError, ModelUnavailableError
from tests.conftest import hf_features

SIZE = 128


def fireball(smoke: bool = True, fire_rgb: tuple[float, float, float] = (1.0, 0.62, 0.15), size: int = SIZE,
             grey: float = 0.45, core: bool = True) -> np.ndarray:
    """A disc of flame (darker towards its rim, with a white-hot core) on black, under a grey
    smoke shell (uint8)."""
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(xx - size / 2, yy - size * 0.55)
    img = np.zeros((size, size, 3))
    if smoke:
        shell = (r < 0.36 * size) & (yy < size * 0.6)
        img[shell] = grey * (0.7 + 0.3 * r[shell] / (0.36 * size))[:, None]
    disc = r < 0.24 * size
    img[disc] = np.array(fire_rgb) * (1.0 - 0.4 * r[disc] / (0.24 * size))[:, None]
    if core:
        img[r < 0.08 * size] = [1.0, 0.93, 0.75]
    return (img * 255).round().astype(np.uint8)


def save(arr: np.ndarray, path: Path) -> Path:
    Image.fromarray(arr).save(path)
    return path


def product(size: int = SIZE, level: float = 1.0) -> np.ndarray:
    """A grey-blue box on a white background, scaled by ``level`` (a dimmer exposure)."""
    img = np.ones((size, size, 3))
    q = size // 4
    img[q:3 * q, q:3 * q] = [0.35, 0.45, 0.6]
    img[q:3 * q, q:q + 6] = [0.15, 0.2, 0.3]  # a shaded side for some contrast
    return (np.clip(img * level, 0, 1) * 255).round().astype(np.uint8)


# --- colour maths --------------------------------------------------------------------------


def test_mccamy_reproduces_published_points() -> None:
    # D65 white point is 6504 K; CIE illuminant A (xy 0.44757, 0.40745) is 2856 K.
    assert color.mccamy_cct(np.array([0.31271, 0.32902])) == pytest.approx(6504, abs=5)
    assert color.mccamy_cct(np.array([0.44757, 0.40745])) == pytest.approx(2856, abs=5)
    white = np.ones((4, 4, 3))
    assert color.mean_cct(white)[0] == pytest.approx(6504, abs=5)


def test_cct_published_duv_and_monotone_for_flame_colours() -> None:
    # nearest-locus CCT reproduces illuminant A and D65; D65 sits Duv = +0.0032 above the locus
    assert float(color.locus_cct(np.array([0.44757, 0.40745]))) == pytest.approx(2856, abs=10)
    assert float(color.locus_cct(np.array([0.31271, 0.32902]))) == pytest.approx(6504, abs=20)
    assert float(color.duv(np.array([0.31271, 0.32902]))) == pytest.approx(0.0032, abs=3e-4)
    # white-yellow -> orange -> deep red: CCT must never rise (McCamy alone turns back up below ~1700 K)
    t = np.linspace(0, 1, 60)[:, None]
    ramp = (1 - t) * np.array([1.0, 0.9, 0.7]) + t * np.array([0.7, 0.08, 0.02])
    kelvin = [color.cct(color.xy_chromaticity(color.srgb_to_linear(c)))[0] for c in ramp]
    assert np.all(np.diff(kelvin) <= 1e-6)
    assert kelvin[0] > 3500 and kelvin[-1] < 1800
    assert color.mccamy_cct(color.xy_chromaticity(color.srgb_to_linear(ramp[-1]))) > kelvin[-1] + 300


def test_xy_and_hsv_match_skimage() -> None:
    skcolor = pytest.importorskip("skimage.color")
    rng = np.random.default_rng(3)
    rgb = rng.random((16, 16, 3))
    xyz = skcolor.rgb2xyz(rgb)
    xy_ref = xyz[..., :2] / xyz.sum(-1, keepdims=True)
    np.testing.assert_allclose(color.xy_chromaticity(color.srgb_to_linear(rgb)), xy_ref, atol=1e-4)
    h, s, v = color.rgb_to_hsv(rgb)
    hsv_ref = skcolor.rgb2hsv(rgb)
    np.testing.assert_allclose(s, hsv_ref[..., 1], atol=1e-9)
    np.testing.assert_allclose(v, hsv_ref[..., 2], atol=1e-9)
    dh = np.abs(h / 360.0 - hsv_ref[..., 0])
    np.testing.assert_allclose(np.minimum(dh, 1 - dh), 0, atol=1e-9)


def test_cct_blue_end_reads_hottest() -> None:
    # McCamy's n has a pole at y = 0.1858: past it a deep blue read as a 2000 K deep red, and
    # bluish-white just before it as millions of kelvin. Blues now read the locus' 25000 K end.
    deep_blue = color.xy_chromaticity(color.srgb_to_linear(np.array([0.35, 0.55, 1.0])))
    assert deep_blue[1] < 0.1858
    assert color.cct(deep_blue) == (25000.0, "planckian-locus")
    assert color.cct(color.xy_chromaticity(color.srgb_to_linear(np.array([0.6, 0.7, 1.0])))) == (25000.0, "blue-limit")
    t = np.linspace(0, 1, 80)[:, None]
    ramp = (1 - t) * np.array([1.0, 1.0, 1.0]) + t * np.array([0.1, 0.2, 1.0])  # white -> deep blue
    kelvin = [color.cct(color.xy_chromaticity(color.srgb_to_linear(c)))[0] for c in ramp]
    assert np.all(np.diff(kelvin) >= -1e-6)
    assert kelvin[0] == pytest.approx(6504, abs=5) and kelvin[-1] == 25000.0


def test_orange_tint_reads_warmer() -> None:
    rng = np.random.default_rng(0)
    scene = np.clip(0.5 + 0.2 * rng.standard_normal((64, 64, 3)), 0, 1)
    tinted = np.clip(scene * np.array([1.0, 0.78, 0.5]), 0, 1)
    ctx_a = ImageContext.build((scene * 255).astype(np.uint8))
    ctx_b = ImageContext.build((tinted * 255).astype(np.uint8))
    a = measure(ctx_a, "color_temperature", {"region": "image"}).value
    b = measure(ctx_b, "color_temperature", {"region": "image"}).value
    assert a is not None and b is not None
    assert b < a - 1500  # orange tint -> much lower kelvin


# --- analysers -----------------------------------------------------------------------------


def test_dimmer_copy_is_too_low_under_profile(tmp_path: Path) -> None:
    bright = diagnose(save(product(), tmp_path / "ok.png"), profile="product-shot")
    dim = diagnose(save(product(level=0.45), tmp_path / "dim.png"), profile="product-shot")
    assert bright["diagnostics"]["brightness"]["verdict"] == "good"
    assert dim["diagnostics"]["brightness"]["verdict"] == "too_low"
    assert dim["diagnostics"]["brightness"]["value"] < bright["diagnostics"]["brightness"]["value"]
    assert dim["suggested_parameters"]["light_power"]["change"] == "+30%"
    assert dim["overall"] < bright["overall"]


def test_grey_smoke_raises_smoke_ratio() -> None:
    clean = ImageContext.build(fireball(smoke=False))
    smoky = ImageContext.build(fireball(smoke=True))
    a, b = measure(clean, "smoke_ratio").value, measure(smoky, "smoke_ratio").value
    assert a is not None and b is not None
    assert a == pytest.approx(0.0, abs=1e-9)
    assert b > 0.3
    # the segmentation agrees with the geometry: flame pixels are the inner disc
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    disc = np.hypot(xx - SIZE / 2, yy - SIZE * 0.55) < 0.24 * SIZE
    assert (smoky.masks.emissive == disc).mean() > 0.99


def test_shape_descriptors_on_known_shapes() -> None:
    rect = np.zeros((100, 100), bool)
    rect[20:80, 40:70] = True
    d = shape.describe(rect)
    assert d["aspect"] == pytest.approx(2.0)
    assert d["solidity"] == pytest.approx(1.0)
    assert d["mushroom_index"] == pytest.approx(1.0)
    assert d["coverage"] == pytest.approx(0.18)
    # a mushroom: a wide cap on a thin stem
    mush = np.zeros((100, 100), bool)
    mush[10:35, 15:85] = True
    mush[35:90, 45:55] = True
    assert shape.mushroom_index(mush) == pytest.approx(7.0)
    # an L shape: area 0.75 of its hull-free bbox; hull cuts the empty corner in half
    ell = np.zeros((40, 40), bool)
    ell[0:40, 0:20] = True
    ell[20:40, 20:40] = True
    assert shape.solidity(ell) == pytest.approx(1200 / 1400)


def test_solidity_close_to_skimage_for_large_shapes() -> None:
    measure_mod = pytest.importorskip("skimage.measure")
    yy, xx = np.mgrid[0:200, 0:200]
    blob = (np.hypot(xx - 100, yy - 100) < 70) & ~((xx > 100) & (np.abs(yy - 100) < 25))
    ref = measure_mod.regionprops(blob.astype(int))[0].solidity
    assert shape.solidity(blob) == pytest.approx(ref, rel=0.03)


def test_alpha_defines_coverage(tmp_path: Path) -> None:
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[16:48, 8:40, 3] = 255
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = diagnose(path, profile="product-shot")
    cov = out["diagnostics"]["coverage"]
    assert cov["value"] == pytest.approx(32 * 32 / 64**2)
    assert cov["details"]["mask_source"] == "alpha"
    assert cov["details"]["bbox"] == [8 / 64, 16 / 64, 40 / 64, 48 / 64]


# --- rules, profiles, the whole call ------------------------------------------------------


def test_verdicts_and_scores_by_hand() -> None:
    prof = load_profile("explosion")
    target = prof.check("brightness").target  # type: ignore[union-attr]
    assert (target.low, target.high, target.tolerance) == (0.4, 0.8, 0.15)
    assert verdict(0.3, target) == "too_low" and verdict(0.9, target) == "too_high" and verdict(0.5, target) == "good"
    assert component_score(0.5, target) == 1.0
    assert component_score(0.4 - 0.15, target) == pytest.approx(0.5)
    assert component_score(0.4 - 0.30, target) == pytest.approx(0.25)
    assert component_score(None, target) == 0.0


CRAFTED = """
name: crafted
description: test profile
background: black
pass_threshold: 8
required: [smoke_ratio]
diagnostics:
  brightness: {region: foreground, target: [0.2, 0.95], weight: 1}
  color_temperature: {region: emissive, target: [2500, 4000], weight: 2, tolerance: 500}
  smoke_ratio: {target: [0.3, 0.7], weight: 2, tolerance: 0.2}
rules:
  - when: color_temperature too_low
    suggest: {flame_max_temp: "+20%"}
    why: too red
  - when: color_temperature too_high
    suggest: {flame_max_temp: "-15%"}
  - when: smoke_ratio too_low
    suggest: {flame_smoke: "+50%", flame_vorticity: "+10%"}
  - when: smoke_ratio too_high
    suggest: {flame_smoke: "-30%"}
  - when: brightness too_low
    suggest: {emission_strength: "+30%"}
"""


def test_crafted_failing_case_gets_exactly_the_rules_suggestions(tmp_path: Path) -> None:
    prof_path = tmp_path / "crafted.yaml"
    prof_path.write_text(CRAFTED)
    # deep red flame (CCT ~1750 K < 2500) and no smoke at all; brightness is fine
    img = save(fireball(smoke=False, fire_rgb=(0.86, 0.24, 0.05), core=False), tmp_path / "bad.png")
    out = diagnose(img, profile=str(prof_path))
    d = out["diagnostics"]
    assert d["color_temperature"]["verdict"] == "too_low"
    assert d["smoke_ratio"]["verdict"] == "too_low"
    assert d["brightness"]["verdict"] == "good"
    assert {k: v["change"] for k, v in out["suggested_parameters"].items()} == {
        "flame_max_temp": "+20%", "flame_smoke": "+50%", "flame_vorticity": "+10%"}
    assert "too red" in out["suggested_parameters"]["flame_max_temp"]["because"]
    assert out["passed"] is False
    assert any("required check smoke_ratio" in r for r in out["failed_because"])
    # overall is the weighted mean of component scores, by hand
    expected = 10 * sum(d[n]["weight"] * d[n]["score"] for n in d) / sum(d[n]["weight"] for n in d)
    assert out["overall"] == pytest.approx(expected, abs=1e-5)
    # deterministic, and valid strict JSON
    again = diagnose(img, profile=str(prof_path))
    assert json.dumps(out, sort_keys=True, allow_nan=False) == json.dumps(again, sort_keys=True, allow_nan=False)


def test_shipped_profile_suggestions_follow_its_rules(tmp_path: Path) -> None:
    img = save(fireball(smoke=False, fire_rgb=(0.86, 0.24, 0.05), core=False), tmp_path / "bad.png")
    out = diagnose(img, profile="explosion")
    rules = yaml.safe_load(Path(out["profile"]["path"]).read_text())["rules"]
    verdicts = {n: d["verdict"] for n, d in out["diagnostics"].items()}
    implied: dict[str, str] = {}
    for rule in rules:
        name, v = rule["when"].split()
        if verdicts.get(name) == v:
            for param, change in rule["suggest"].items():
                implied.setdefault(param, change)
    assert {k: v["change"] for k, v in out["suggested_parameters"].items()} == implied
    assert implied["flame_max_temp"] == "+20%" and implied["flame_smoke"] == "+50%"


def test_good_fireball_passes_explosion_profile(tmp_path: Path) -> None:
    out = diagnose(save(fireball(), tmp_path / "good.png"), profile="explosion")
    assert out["passed"], out["failed_because"]
    assert out["suggested_parameters"] == {}
    assert out["overall"] > 9
    assert "clip" in out["unavailable"]  # no model given: said, not faked
    assert "intensity" in out["skipped"] and "flicker_index" in out["skipped"]


def test_unmeasurable_region_scores_zero_and_is_reported(tmp_path: Path) -> None:
    black = save(np.zeros((32, 32, 3), np.uint8), tmp_path / "black.png")
    out = diagnose(black, profile="explosion")
    assert out["diagnostics"]["color_temperature"]["verdict"] == "unmeasurable"
    assert out["diagnostics"]["color_temperature"]["value"] is None
    assert out["diagnostics"]["color_temperature"]["score"] == 0
    assert out["suggested_parameters"]["fuel_amount"]["change"] == "+50%"
    assert not out["passed"]


def dim_fire(fire_rgb: tuple[float, float, float], smoke: bool = True, size: int = SIZE) -> np.ndarray:
    """A dim fire under a grey smoke shell on a near-black scene: the flame never reaches the
    emissive thresholds (V < 0.55), so there are no flame pixels, only its colour."""
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(xx - size / 2, yy - size * 0.55)
    img = np.full((size, size, 3), 0.03)
    if smoke:
        shell = (r < 0.36 * size) & (yy < size * 0.6)
        img[shell] = 0.3 * (0.7 + 0.3 * r[shell] / (0.36 * size))[:, None]
    disc = r < 0.24 * size
    if fire_rgb != (0.0, 0.0, 0.0):
        img[disc] = np.array(fire_rgb) * 0.5 * (1.0 - 0.4 * r[disc] / (0.24 * size))[:, None]
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def test_dim_cool_fire_gets_raise_flame_max_temp_from_its_foreground(tmp_path: Path) -> None:
    # a cool (low-temperature, dull red) fire too dim to have flame pixels
    out = diagnose(save(dim_fire((0.9, 0.3, 0.08)), tmp_path / "cool.png"), profile="explosion")
    assert out["segmentation"]["emissive_fraction"] == 0.0
    ct = out["diagnostics"]["color_temperature"]
    assert ct["verdict"] == "too_low" and ct["value"] < 2000
    assert out["suggested_parameters"]["flame_max_temp"]["change"] == "+20%"
    assert "color_temperature too_low" in out["suggested_parameters"]["flame_max_temp"]["because"]
    assert ct["details"]["region"] == "foreground" and ct["details"]["fallback_from"] == "emissive"
    assert "foreground" in ct["details"]["note"]
    assert out["diagnostics"]["emissive_hue"]["details"]["fallback_from"] == "emissive"
    # the measurement is the colour of the non-smoke foreground, by hand: mean linear RGB -> xy -> CCT
    ctx = ImageContext.build(dim_fire((0.9, 0.3, 0.08)))
    glow = ctx.masks.foreground & ~ctx.masks.smoke
    xy = color.xy_chromaticity(color.srgb_to_linear(ctx.rgb[glow]).mean(axis=0))
    assert ct["value"] == pytest.approx(color.cct(xy)[0], abs=1e-3)
    # the other way: a dim bluish fire reads too hot, and the rule lowers the flame temperature
    blue = diagnose(save(dim_fire((0.35, 0.55, 1.0)), tmp_path / "blue.png"), profile="explosion")
    assert blue["diagnostics"]["color_temperature"]["verdict"] == "too_high"
    assert blue["suggested_parameters"]["flame_max_temp"]["change"] == "-15%"
    # smoke alone has no fire colour: still unmeasurable, and said why
    smoke_only = diagnose(save(dim_fire((0.0, 0.0, 0.0)), tmp_path / "smoke.png"), profile="explosion")
    st = smoke_only["diagnostics"]["color_temperature"]
    assert st["verdict"] == "unmeasurable" and "grey smoke" in st["reason"]


def test_reference_values_reported(tmp_path: Path) -> None:
    a = save(product(), tmp_path / "a.png")
    b = save(product(level=0.5), tmp_path / "b.png")
    out = diagnose(b, profile="product-shot", reference=a)
    br = out["diagnostics"]["brightness"]
    assert br["reference_value"] > br["value"]


def test_profiles_listed_and_errors_are_one_line(tmp_path: Path) -> None:
    names = [p["name"] for p in list_profiles()]
    assert names == ["campfire", "explosion", "product-shot"]
    img = save(product(), tmp_path / "x.png")
    with pytest.raises(InputError, match="shipped profiles: campfire, explosion, product-shot"):
        diagnose(img, profile="nonsense")
    with pytest.raises(InputError, match="input not found"):
        diagnose(tmp_path / "missing.png")
    bad = tmp_path / "bad.yaml"
    bad.write_text("diagnostics:\n  brightness: {target: [0.9, 0.1]}\n")
    with pytest.raises(InputError, match="above high"):
        diagnose(img, profile=str(bad))
    bad.write_text("diagnostics:\n  sparkle: {target: [0, 1]}\n")
    with pytest.raises(InputError, match="unknown diagnostic 'sparkle'"):
        diagnose(img, profile=str(bad))
    for exc_info in (pytest.raises(InputError),):
        with exc_info as e:
            load_profile(str(bad))
        assert "\n" not in str(e.value)


# --- CLIP probes and scores ---------------------------------------------------------------


def test_clip_score_and_probe_match_independent_computation(tmp_path: Path, tiny_clip_dir: Path) -> None:
    import torch
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

    img_path = save(fireball(), tmp_path / "f.png")
    prompt = "a fiery explosion"
    out = diagnose(img_path, profile="explosion", prompt=prompt, model=str(tiny_clip_dir))
    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    tok = CLIPTokenizerFast.from_pretrained(tiny_clip_dir)
    proc = CLIPImageProcessor.from_pretrained(tiny_clip_dir)
    with torch.no_grad():
        pix = proc(images=Image.open(img_path).convert("RGB"), return_tensors="pt")["pixel_values"]
        ie = hf_features(model.get_image_features(pixel_values=pix))
        ladder = load_profile("explosion").check("intensity").options["ladder"]  # type: ignore[union-attr]
        t = tok([prompt, *ladder], padding=True, return_tensors="pt")
        te = hf_features(model.get_text_features(**t))
    ie = ie / ie.norm(dim=-1, keepdim=True)
    te = te / te.norm(dim=-1, keepdim=True)
    cos = (te @ ie[0]).double().numpy()
    assert out["scores"]["clip_score"]["value"] == pytest.approx(cos[0], abs=1e-5)
    logits = model.logit_scale.exp().item() * cos[1:]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    expected = float((p * np.arange(len(p))).sum() / (len(p) - 1))
    assert out["diagnostics"]["intensity"]["value"] == pytest.approx(expected, abs=1e-5)
    assert "clip" not in out["unavailable"]


def test_explicit_missing_model_raises_profile_model_is_reported(tmp_path: Path) -> None:
    img = save(fireball(), tmp_path / "f.png")
    with pytest.raises(ModelUnavailableError):
        diagnose(img, model=str(tmp_path / "no_such_model"))
    prof = tmp_path / "p.yaml"
    prof.write_text(f"model: {tmp_path / 'no_such_model'}\ndiagnostics:\n  brightness: {{target: [0.1, 0.9]}}\n"
                    "probes:\n  hot: {{ladder: [cold, hot], target: [0.5, 1]}}\n".replace("{{", "{").replace("}}", "}"))
    out = diagnose(img, profile=str(prof))
    assert "cannot load model" in out["unavailable"]["clip"]
    assert "hot" in out["skipped"] and "hot" not in out["diagnostics"]


# --- CLI ----------------------------------------------------------------------------------


def test_cli_diagnose_prints_json_and_writes_out(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gencritic.cli.main import app

    img = save(product(level=0.45), tmp_path / "dim.png")
    runner = CliRunner()
    res = runner.invoke(app, ["diagnose", str(img), "--profile", "product-shot"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["diagnostics"]["brightness"]["verdict"] == "too_low"
    out = tmp_path / "d.json"
    res = runner.invoke(app, ["diagnose", str(img), "--profile", "product-shot", "--out", str(out)])
    assert res.exit_code == 0
    assert json.loads(out.read_text()) == data
    res = runner.invoke(app, ["profiles", "--json"])
    assert [p["name"] for p in json.loads(res.stdout)] == ["campfire", "explosion", "product-shot"]


def test_loop_archive_reports_improvement(tmp_path: Path) -> None:
    from gencritic.diagnose.archive import diagnose_loop

    archive = tmp_path / "loop.sqlite"
    first = diagnose_loop(save(product(level=0.45), tmp_path / "i1.png"), archive, profile="product-shot")
    second = diagnose_loop(save(product(), tmp_path / "i2.png"), archive, profile="product-shot")
    assert first["loop"]["first"] and first["loop"]["iteration"] == 1
    assert second["loop"]["iteration"] == 2 and second["loop"]["previous_iteration"] == 1
    assert second["loop"]["improvement"] == pytest.approx(second["overall"] - first["overall"])
    assert second["loop"]["improvement"] > 0
    assert "brightness" in second["loop"]["resolved"]
    assert second["loop"]["is_best"]


def test_loop_novelty_with_model(tmp_path: Path, tiny_clip_dir: Path) -> None:
    from gencritic.diagnose.archive import diagnose_loop

    archive = tmp_path / "loop.sqlite"
    a = save(fireball(), tmp_path / "a.png")
    first = diagnose_loop(a, archive, model=str(tiny_clip_dir))
    same = diagnose_loop(a, archive, model=str(tiny_clip_dir))
    other = diagnose_loop(save(product(), tmp_path / "b.png"), archive, model=str(tiny_clip_dir))
    assert first["loop"]["novelty"] is None
    assert same["loop"]["novelty"] == pytest.approx(0.0, abs=1e-6)
    assert other["loop"]["novelty"] > same["loop"]["novelty"]


def test_rules_first_suggestion_wins_and_later_ones_are_kept() -> None:
    from gencritic.diagnose.profiles import Rule

    rules = [Rule("a", "too_low", {"p": "+20%"}, "first"), Rule("b", "too_high", {"p": "-10%", "q": 3}, "second"),
             Rule("c", "too_low", {"r": "+1"}, "not firing")]
    out = suggest({"a": "too_low", "b": "too_high", "c": "good"}, rules)
    assert out["p"]["change"] == "+20%"
    assert out["p"]["also"] == [{"change": "-10%", "because": "b too_high: second"}]
    assert out["q"]["change"] == 3 and "r" not in out


@pytest.mark.shared_data
def test_real_photos_tint_and_dim_move_the_right_way(tmp_path: Path) -> None:
    from tests.conftest import shared_data

    photos = sorted((shared_data("avt-ai-images") / "images" / "own").glob("*.png"))
    if not photos:
        pytest.skip("no photos in avt-ai-images/images/own")
    for photo in photos:
        rgb = np.asarray(Image.open(photo).convert("RGB").resize((256, 256)), dtype=np.float64) / 255
        orig = save((rgb * 255).round().astype(np.uint8), tmp_path / "orig.png")
        warm = save((np.clip(rgb * [1.0, 0.8, 0.55], 0, 1) * 255).round().astype(np.uint8), tmp_path / "warm.png")
        dim = save((rgb * 0.5 * 255).round().astype(np.uint8), tmp_path / "dim.png")
        base = diagnose(orig, profile="product-shot")
        if base["diagnostics"]["color_temperature"]["value"] < 2500:
            continue  # already red-lit (p18): nothing warmer left to read on the locus
        assert diagnose(warm, profile="product-shot")["diagnostics"]["color_temperature"]["value"] < \
            base["diagnostics"]["color_temperature"]["value"] - 500
        dimmed = diagnose(dim, profile="product-shot")["diagnostics"]["brightness"]
        assert dimmed["value"] == pytest.approx(0.5 * base["diagnostics"]["brightness"]["value"], rel=0.02)
        assert diagnose(orig, profile="product-shot") == base


def test_best_per_approach_keeps_one_per_cluster(tmp_path: Path, tiny_clip_dir: Path) -> None:
    from gencritic.diagnose.archive import best_per_approach, diagnose_loop

    archive = tmp_path / "loop.sqlite"
    entries = []
    for k, level in enumerate((1.0, 0.8, 0.6)):  # product shots: one approach at three exposures
        entries.append(diagnose_loop(save(product(level=level), tmp_path / f"p{k}.png"), archive,
                                     profile="product-shot", model=str(tiny_clip_dir)))
    for k, smoke in enumerate((True, False)):  # fireballs: another approach
        entries.append(diagnose_loop(save(fireball(smoke=smoke), tmp_path / f"f{k}.png"), archive,
                                     profile="product-shot", model=str(tiny_clip_dir)))
    best = best_per_approach(archive, k=2)
    assert len(best) == 2 and sum(b["size"] for b in best) == 5
    by_input = {Path(b["input"]).name[0]: b for b in best}
    assert set(by_input) == {"p", "f"}  # one representative per approach
    overall = {Path(e["input"]).name: e["overall"] for e in entries}
    assert by_input["p"]["overall"] == max(v for n, v in overall.items() if n.startswith("p"))
    with pytest.raises(InputError):
        best_per_approach(archive, k=9)


def test_cli_profiles_show_and_unknown_profile_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gencritic.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["profiles", "--show", "campfire"])
    assert res.exit_code == 0 and yaml.safe_load(res.stdout)["name"] == "campfire"
    res = runner.invoke(app, ["profiles"])
    assert res.exit_code == 0 and "explosion" in res.stdout
    img = save(product(), tmp_path / "x.png")
    res = runner.invoke(app, ["diagnose", str(img), "--profile", "nope"])
    assert isinstance(res.exception, InputError) and "shipped profiles" in str(res.exception)


def test_registered_metrics_as_profile_scores(tmp_path: Path) -> None:
    a = product()
    noise = np.random.default_rng(0).integers(-12, 13, a.shape)
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    ref, img = save(a, tmp_path / "ref.png"), save(b, tmp_path / "img.png")
    prof = tmp_path / "p.yaml"
    prof.write_text("diagnostics:\n  brightness: {target: [0.1, 0.95]}\n"
                    "scores:\n  psnr: {target: [30, null], weight: 1, tolerance: 5}\n"
                    "  fidelity: {metric: ssim, target: [0.9, null], weight: 1}\n"
                    "  lpips: {metric: 'lpips:net=alex;weights=" + str(tmp_path / "absent.pth") + "', target: [null, 0.2]}\n")
    out = diagnose(img, profile=str(prof), reference=ref)
    mse = ((a.astype(float) - b.astype(float)) / 255) ** 2
    assert out["scores"]["psnr"]["value"] == pytest.approx(10 * np.log10(1 / mse.mean()), abs=1e-4)
    assert out["scores"]["psnr"]["verdict"] == "good"
    assert 0 < out["scores"]["fidelity"]["value"] < 1 and out["scores"]["fidelity"]["metric"] == "ssim"
    assert "lpips" in out["skipped"] and "lpips" in out["unavailable"] and "lpips" not in out["scores"]
    no_ref = diagnose(img, profile=str(prof))
    assert no_ref["skipped"]["psnr"] == "needs a reference image (--reference)"
    prof.write_text("diagnostics:\n  brightness: {target: [0.1, 0.95]}\nscores:\n  sparkle: {target: [0, 1]}\n")
    with pytest.raises(InputError, match="unknown metric 'sparkle'"):
        diagnose(img, profile=str(prof))
