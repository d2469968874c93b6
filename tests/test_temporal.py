"""Temporal metrics: SSIM against scikit-image, flicker and warping error on synthetic sequences
with known answers, curve profiles by hand, frame readers (folder, GIF, MP4, WebM), reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import ndimage

from gencritic.errors import InputError
from gencritic.io.frames import is_sequence, load_frames
from gencritic.metrics import temporal


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture in [0, 1] (blurred noise, so optical flow has something to lock on)."""
    noise = np.random.default_rng(seed).random((h, w))
    t = ndimage.gaussian_filter(noise, 2.0)
    return (t - t.min()) / (t.max() - t.min())


def test_ssim_matches_skimage() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    a = texture(64, 80, 1)
    b = np.clip(a + 0.05 * np.random.default_rng(2).standard_normal(a.shape), 0, 1)
    ref = metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=1.0)
    assert temporal.ssim(a, b) == pytest.approx(ref, abs=1e-9)
    assert temporal.ssim(a, a) == pytest.approx(1.0)


def test_flicker_alternating_vs_smooth() -> None:
    n = 24
    smooth = np.linspace(0.2, 0.8, n)
    alternating = 0.5 + 0.1 * (-1.0) ** np.arange(n)
    assert temporal.flicker_index(smooth) == pytest.approx(0.0, abs=1e-9)
    assert temporal.flicker_index(alternating) == pytest.approx(10.0)  # 100 * amplitude, by definition
    # on real frames: a slow fade vs the same fade with alternate frames 15% brighter
    base = texture(48, 48) * 0.5
    fade = np.stack([base * (0.6 + 0.4 * t / n) for t in range(n)])
    jumps = fade * np.where(np.arange(n) % 2 == 0, 1.0, 1.15)[:, None, None]
    f_smooth = temporal.flicker_index(fade.mean(axis=(1, 2)))
    f_jumps = temporal.flicker_index(jumps.mean(axis=(1, 2)))
    assert f_jumps > 50 * max(f_smooth, 1e-3)


def test_warping_error_low_when_flow_is_right() -> None:
    pytest.importorskip("cv2")
    big = texture(96, 160, 3)
    frames = np.stack([big[16:80, 8 + 2 * t: 8 + 2 * t + 96] for t in range(8)])  # pans 2 px per frame
    warped, plain = temporal.warping_errors(frames)
    assert warped.mean() < 0.25 * plain.mean()
    assert warped.mean() < 0.02
    # unrelated frames: no flow can explain them
    rng = np.random.default_rng(0)
    noise = np.stack([texture(64, 96, int(s)) for s in rng.integers(0, 1000, 8)])
    warped_noise, _ = temporal.warping_errors(noise)
    assert warped_noise.mean() > 5 * warped.mean()


def test_curve_profile_by_hand() -> None:
    k = 0.3
    curve = np.concatenate([[0.0, 0.5], np.exp(-k * np.arange(12))])  # peak 1.0 at frame 2
    prof = temporal.curve_profile(curve, fps=24.0)
    assert prof["peak"] == 1.0 and prof["peak_frame"] == 2
    assert prof["time_to_peak"] == pytest.approx(2 / 13)
    assert prof["time_to_peak_s"] == pytest.approx(2 / 24)
    assert prof["decay_rate_per_frame"] == pytest.approx(k, rel=1e-9)
    assert prof["decay_rate_per_s"] == pytest.approx(k * 24)
    assert prof["dissipation"] == pytest.approx(np.exp(-k * 11))


def _fireball_frames(n: int = 12, size: int = 64) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size]
    frames = []
    for t in range(n):
        grow = min(1.0, (t + 1) / 4)
        fade = 1.0 if t < 4 else np.exp(-0.35 * (t - 3))
        img = np.zeros((size, size, 3))
        disc = np.hypot(xx - size / 2, yy - size / 2) < size * 0.3 * grow
        img[disc] = np.array([1.0, 0.6, 0.15]) * fade
        frames.append((img * 255).round().astype(np.uint8))
    return frames


def test_frame_folder_natural_order_and_gif(tmp_path: Path) -> None:
    frames = _fireball_frames()
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"frame_{i}.png")  # frame_10 must come after frame_9
    seq = load_frames(folder)
    assert seq.names[:3] == ["frame_0.png", "frame_1.png", "frame_2.png"] and seq.names[-1] == "frame_11.png"
    np.testing.assert_array_equal(seq.frames, np.stack(frames))
    gif = tmp_path / "fx.gif"
    Image.fromarray(frames[0]).save(gif, save_all=True, append_images=[Image.fromarray(f) for f in frames[1:]],
                                    duration=40, loop=0)
    assert is_sequence(gif) and is_sequence(folder)
    g = load_frames(gif)
    assert len(g) == len(frames) and g.fps == pytest.approx(25.0)
    assert np.abs(g.frames.astype(int) - np.stack(frames)).mean() < 8  # palette quantisation only
    with pytest.raises(InputError, match="input not found"):
        load_frames(tmp_path / "nope")


@pytest.mark.parametrize(("suffix", "fourcc"), [(".mp4", "mp4v"), (".webm", "VP80")])
def test_video_round_trip(tmp_path: Path, suffix: str, fourcc: str) -> None:
    cv2 = pytest.importorskip("cv2")
    frames = _fireball_frames(size=64)
    path = tmp_path / f"fx{suffix}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 24.0, (64, 64))
    if not writer.isOpened():
        pytest.skip(f"this OpenCV build cannot write {fourcc}")
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    seq = load_frames(path)
    assert len(seq) == len(frames) and seq.fps == pytest.approx(24.0)
    brightness = temporal.luma_stack(seq.frames).mean(axis=(1, 2))
    truth = temporal.luma_stack(np.stack(frames)).mean(axis=(1, 2))
    assert int(np.argmax(brightness)) == int(np.argmax(truth))
    assert np.abs(brightness - truth).max() < 0.03


def test_diagnose_sequence_uses_key_frame_and_temporal_checks(tmp_path: Path) -> None:
    from gencritic.diagnose.api import diagnose

    frames = _fireball_frames()
    gif = tmp_path / "fx.gif"
    Image.fromarray(frames[0]).save(gif, save_all=True, append_images=[Image.fromarray(f) for f in frames[1:]],
                                    duration=40, loop=0)
    out = diagnose(gif, profile="explosion")
    assert out["kind"] == "frames"
    assert out["sequence"]["frames"] == 12 and out["sequence"]["key_frame"] == 3
    d = out["diagnostics"]
    for name in ("flicker_index", "temporal_ssim", "warping_error", "time_to_peak", "dissipation"):
        assert name in d and d[name]["verdict"] in ("too_low", "good", "too_high"), name
    assert d["time_to_peak"]["value"] == pytest.approx(3 / 11)
    assert d["dissipation"]["value"] < 0.1
    assert "flicker_index" not in out["skipped"]


def test_temporal_report_files_and_cli(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from typer.testing import CliRunner

    from gencritic.cli.main import app
    from gencritic.diagnose.temporal_report import temporal_report

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(_fireball_frames()):
        Image.fromarray(f).save(folder / f"f{i:03d}.png")
    summary = temporal_report(folder, tmp_path / "out")
    csv_lines = (tmp_path / "out" / "curves.csv").read_text().splitlines()
    assert csv_lines[0].startswith("frame,name,time_s,brightness,coverage")
    assert len(csv_lines) == 13
    assert (tmp_path / "out" / "curves.png").stat().st_size > 10_000
    assert summary["brightness_profile"]["peak_frame"] == 3
    assert csv_lines[0].endswith("foreground_brightness,foreground_flicker,foreground_ssim_to_next,foreground_warp_error")
    fg = summary["regions"]["foreground"]
    assert fg["brightness_profile"]["peak_frame"] == 3 and 0 < fg["fraction"] < 1
    assert fg["flicker_index"] == pytest.approx(summary["flicker_index"] / fg["fraction"], rel=1e-3)  # black outside
    res = CliRunner().invoke(app, ["temporal", str(folder), "--out", str(tmp_path / "cli"), "--no-flow"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["flicker_index"] == pytest.approx(summary["flicker_index"])
    assert "warping_error" in data["unavailable"]
    img = tmp_path / "single.png"
    Image.fromarray(_fireball_frames()[0]).save(img)
    with pytest.raises(InputError, match="single image"):
        temporal_report(img, tmp_path / "x")


def test_registered_temporal_metrics_score_frame_folders(tmp_path: Path) -> None:
    import csv

    from typer.testing import CliRunner

    from gencritic.cli.main import app

    root = tmp_path / "seqs"
    frames = _fireball_frames()
    for name, sub in (("whole", frames), ("short", frames[:2])):
        (root / name).mkdir(parents=True)
        for i, f in enumerate(sub):
            Image.fromarray(f).save(root / name / f"f{i:02d}.png")
    res = CliRunner().invoke(app, ["score", str(root), "--metrics", "flicker,temporal_ssim", "--out",
                                   str(tmp_path / "out"), "--no-cache", "-q"])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "out" / "results.csv", newline="") as fh:
        rows = {r["item_id"]: r for r in csv.DictReader(fh)}
    luma = temporal.luma_stack(np.stack(frames))
    assert float(rows["whole"]["flicker_index"]) == pytest.approx(temporal.flicker_index(luma.mean(axis=(1, 2))))
    assert float(rows["whole"]["temporal_ssim"]) == pytest.approx(temporal.consecutive_ssim(luma).mean())
    assert rows["short"]["success"] == "false" and "at least 3 frames" in rows["short"]["error"]


def test_temporal_lpips_with_weights_and_unavailable_without(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("lpips")
    from gencritic.diagnose.temporal_report import temporal_analysis
    from gencritic.models.lpips_nets import _features, load_lpips

    folder = tmp_path / "frames"
    folder.mkdir()
    frames = _fireball_frames(n=6)
    frames[3] = frames[2].copy()  # a held frame: LPIPS(2, 3) must be exactly 0
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"f{i}.png")
    torch.manual_seed(0)
    weights = tmp_path / "alex.pth"
    torch.save({f"features.{k}": v for k, v in _features("alex").state_dict().items()}, weights)
    summary, rows = temporal_analysis(folder, flow=False, lpips="alex", lpips_weights=str(weights))
    lp = [r["lpips_to_next"] for r in rows]
    assert lp[2] == 0.0 and lp[-1] is None
    net = load_lpips("alex", str(weights))
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert lp[0] == pytest.approx(float(net(x[0:1], x[1:2])[0]), abs=1e-6)
    assert summary["temporal_lpips"] == pytest.approx(np.mean(lp[:-1]), abs=1e-6)
    summary, _ = temporal_analysis(folder, flow=False, lpips="alex", lpips_weights=str(tmp_path / "missing.pth"))
    assert "temporal_lpips" not in summary and "not found" in summary["unavailable"]["temporal_lpips"]


# --- regional temporal measures (issue 16, item 8) ----------------------------------------


def _dim_fire_frames(strobe: float = 0.0, n: int = 16, size: int = 96) -> list[np.ndarray]:
    """A dark, slightly noisy scene with a small dim emitter (7 % of the frame, never bright or
    saturated enough to count as emissive) that brightens over 4 frames and then fades. With
    ``strobe`` the frames before and after every bright one are dimmed by that fraction: frames
    0, 2, 4... flash down, the peak (frame 3) stays, so the key frame is the same."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.full((size, size, 3), 0.04) + 0.008 * rng.standard_normal((size, size, 1))
    r = np.hypot(xx - size / 2, yy - size * 0.55)
    disc = r < 0.15 * size
    frames = []
    for t in range(n):
        envelope = min(1.0, (t + 1) / 4) if t < 4 else float(np.exp(-0.12 * (t - 3)))
        level = envelope * (1.0 - strobe * ((t + 1) % 2))
        img = base.copy()
        img[disc] += np.array([0.9, 0.45, 0.12]) * 0.55 * level * (1 - 0.4 * r[disc] / (0.15 * size))[:, None]
        frames.append((np.clip(img, 0, 1) * 255).round().astype(np.uint8))
    return frames


def _write_frames(frames: list[np.ndarray], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"f{i:03d}.png")
    return folder


def test_dim_emitter_strobe_fails_explosion_flicker_rule(tmp_path: Path) -> None:
    from gencritic.diagnose.api import diagnose

    smooth = diagnose(_write_frames(_dim_fire_frames(0.0), tmp_path / "smooth"), profile="explosion")
    strobe = diagnose(_write_frames(_dim_fire_frames(0.6), tmp_path / "strobe"), profile="explosion")
    assert strobe["segmentation"]["emissive_fraction"] == 0.0  # a dim emitter: no flame pixels at all
    flick = strobe["diagnostics"]["flicker_index"]
    assert flick["verdict"] == "too_high", flick
    assert strobe["overall"] < smooth["overall"] - 0.5
    # the whole frame dilutes a 60 % strobe of a small emitter to well under the limit of 2 ...
    assert flick["details"]["whole_frame"] < 0.5
    # ... over the pixels the effect occupies it is what it is
    assert flick["details"]["region"] == "foreground"
    assert 0.05 < flick["details"]["region_fraction"] < 0.15
    assert flick["value"] > 3.0
    assert strobe["suggested_parameters"]["render_samples"]["change"] == "+100%"
    assert "flicker_index too_high" in strobe["suggested_parameters"]["render_samples"]["because"]
    assert smooth["diagnostics"]["flicker_index"]["verdict"] == "good"
    assert smooth["sequence"]["key_frame"] == strobe["sequence"]["key_frame"] == 3
    # a profile that asks for the whole frame still gets it
    prof = yaml.safe_load(Path(strobe["profile"]["path"]).read_text())
    prof["diagnostics"]["flicker_index"]["region"] = "image"
    whole = tmp_path / "whole.yaml"
    whole.write_text(yaml.safe_dump(prof))
    out = diagnose(tmp_path / "strobe", profile=str(whole))
    assert out["diagnostics"]["flicker_index"]["value"] == pytest.approx(flick["details"]["whole_frame"])
    assert out["diagnostics"]["flicker_index"]["verdict"] == "good"
    # a region with nothing in it is unmeasurable, with the reason, not a zero
    prof["diagnostics"]["flicker_index"]["region"] = "emissive"
    whole.write_text(yaml.safe_dump(prof))
    out = diagnose(tmp_path / "strobe", profile=str(whole))
    assert out["diagnostics"]["flicker_index"]["verdict"] == "unmeasurable"
    assert "emissive region is empty in every frame" in out["diagnostics"]["flicker_index"]["reason"]


def test_regional_measures_by_hand() -> None:
    skmetrics = pytest.importorskip("skimage.metrics")
    n, size, amp = 10, 48, 0.1
    tex = texture(size, size, 5) * 0.3
    region = np.zeros((size, size), bool)
    region[10:22, 14:30] = True  # 192 px, 1/12 of the frame
    luma = np.stack([tex.copy() for _ in range(n)])
    for t in range(n):
        luma[t][region] += 0.4 + amp * (-1.0) ** t
    frames = (np.repeat(luma[..., None], 3, axis=-1) * 255).round().astype(np.uint8)
    out = temporal.analyse_sequence(frames, flow=False, regions={"foreground": region,
                                                                "emissive": np.zeros_like(region)})
    part = out["summary"]["regions"]["foreground"]
    assert part["fraction"] == pytest.approx(region.mean())
    q = temporal.luma_stack(frames)
    m = np.array([q[t][region].sum() / region.sum() for t in range(n)])  # mean over the region, by hand
    d2 = m[2:] - 2 * m[1:-1] + m[:-2]
    assert part["flicker_index"] == pytest.approx(100 * np.sqrt(np.mean(d2**2)) / 4, rel=1e-9)
    assert part["flicker_index"] == pytest.approx(100 * amp, rel=0.02)  # alternating +-a reads 100a
    assert out["summary"]["flicker_index"] == pytest.approx(100 * amp * region.mean(), rel=0.02)
    # regional SSIM: scikit-image's SSIM map (same conventions), averaged over the region's pixels
    ref = []
    for t in range(n - 1):
        _, smap = skmetrics.structural_similarity(q[t], q[t + 1], gaussian_weights=True, sigma=1.5,
                                                  use_sample_covariance=False, data_range=1.0, full=True)
        ref.append(smap[region].mean())
    assert part["temporal_ssim"] == pytest.approx(np.mean(ref), abs=1e-9)
    assert out["summary"]["temporal_ssim"] > part["temporal_ssim"]  # the static rest of the frame dilutes it
    assert out["curves"]["foreground_flicker"][1] == pytest.approx(100 * abs(d2[0]) / 4)
    empty = out["summary"]["regions"]["emissive"]
    assert "flicker_index" not in empty and "empty in every frame" in empty["reason"]


def test_regional_warping_error_over_the_region() -> None:
    pytest.importorskip("cv2")
    big = texture(96, 160, 3)
    luma = np.stack([big[16:80, 8 + 2 * t: 8 + 2 * t + 96] for t in range(6)])
    region = np.zeros(luma.shape[1:], bool)
    region[20:44, 30:70] = True
    whole = temporal.warping_errors(luma)
    both = temporal.warping_errors_by_region(luma, {"image": None, "r": region})
    np.testing.assert_array_equal(both["image"][0], whole[0])
    plain_by_hand = [np.abs(luma[t + 1] - luma[t])[region].mean() for t in range(5)]
    np.testing.assert_allclose(both["r"][1], plain_by_hand, rtol=1e-12)
    assert both["r"][0].mean() < 0.25 * both["r"][1].mean()  # coherent motion inside the region too


# --- VBench temporal flickering -------------------------------------------------------------


def test_vbench_temporal_flickering_by_hand() -> None:
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, size=(5, 12, 9, 3), dtype=np.uint8)
    maes = [np.abs(frames[t + 1].astype(np.int64) - frames[t].astype(np.int64)).sum() / frames[t].size
            for t in range(4)]
    assert temporal.vbench_temporal_flickering(frames) == pytest.approx((255 - np.mean(maes)) / 255, abs=1e-12)
    static = np.repeat(frames[:1], 4, axis=0)
    assert temporal.vbench_temporal_flickering(static) == 1.0
    flashing = np.zeros((6, 4, 4, 3), np.uint8)
    flashing[1::2] = 51
    assert temporal.vbench_temporal_flickering(flashing) == pytest.approx(0.8)  # (255 - 51) / 255
    assert np.isnan(temporal.vbench_temporal_flickering(frames[:1]))


def test_vbench_flickering_on_a_video_as_vbench_reads_it(tmp_path: Path) -> None:
    """VBench decodes with OpenCV (BGR, full size, every frame) and averages float32 absdiffs:
    the temporal summary of the same file must give its number."""
    cv2 = pytest.importorskip("cv2")
    from gencritic.diagnose.temporal_report import temporal_analysis

    path = tmp_path / "fx.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, (64, 64))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write mp4v")
    for f in _fireball_frames(size=64):
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    cap, bgr = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        bgr.append(frame)
    cap.release()
    maes = [np.mean(cv2.absdiff(np.float32(bgr[t]), np.float32(bgr[t + 1]))) for t in range(len(bgr) - 1)]
    summary, _ = temporal_analysis(path, flow=False)
    assert summary["temporal_flickering"] == pytest.approx((255.0 - float(np.mean(maes))) / 255.0, abs=1e-6)


def test_registered_vbench_metric_scores_folders(tmp_path: Path) -> None:
    import csv

    from typer.testing import CliRunner

    from gencritic.cli.main import app
    from gencritic.metrics.registry import all_metrics

    info = all_metrics()["temporal_flickering"].info
    assert info.higher_is_better and info.range == (0.0, 1.0) and info.columns == ("temporal_flickering",)
    root = tmp_path / "seqs"
    frames = _fireball_frames()
    for name, sub in (("whole", frames), ("two", frames[:2]), ("one", frames[:1])):
        (root / name).mkdir(parents=True)
        for i, f in enumerate(sub):
            Image.fromarray(f).save(root / name / f"f{i:02d}.png")
    res = CliRunner().invoke(app, ["score", str(root), "--metrics", "temporal_flickering,flicker", "--out",
                                   str(tmp_path / "out"), "--no-cache", "-q"])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "out" / "results.csv", newline="") as fh:
        rows = {r["item_id"]: r for r in csv.DictReader(fh)}
    stack = np.stack(frames).astype(np.int64)
    by_hand = (255 - np.mean([np.abs(stack[t + 1] - stack[t]).mean() for t in range(len(frames) - 1)])) / 255
    assert float(rows["whole"]["temporal_flickering"]) == pytest.approx(by_hand, abs=1e-9)
    two = np.abs(stack[1] - stack[0]).mean()
    assert float(rows["two"]["temporal_flickering"]) == pytest.approx((255 - two) / 255, abs=1e-9)
    assert rows["one"]["success"] == "false" and "at least 2 frames" in rows["one"]["error"]
