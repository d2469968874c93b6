"""``gencritic compare3d``'s render-based columns: PSNR, SSIM, LPIPS, CLIP and DINO similarity per view.

The numbers are checked against independent computations on the views the run wrote out
(scikit-image, the lpips package with the same backbone weights, the raw transformers models),
and against what must hold: a mesh against itself is identical in every view.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from tests.test_geometry import box, export, gencritic, read_rows
from tests.test_reference import _hf_image_embedding, _random_backbone, _upstream_lpips, tiny_dino_dir  # noqa: F401

APPEARANCE = ("psnr", "ssim", "lpips", "clip_i2i", "dino")


@pytest.fixture(scope="module")
def lpips_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lpips") / "alex.pth"
    _random_backbone("alex", path, seed=1)
    return path


@pytest.fixture()
def models(tiny_clip_dir: Path, tiny_dino_dir: Path, lpips_weights: Path) -> list[str]:  # noqa: F811
    """The options that point compare3d at the tiny random models (real ones cannot be downloaded)."""
    return ["--model", str(tiny_clip_dir), "--device", "cpu", "--dtype", "fp32", "--no-cache",
            "--appearance-metrics", f"psnr,ssim,lpips:weights={lpips_weights},clip_i2i,dino:model={tiny_dino_dir}"]


def coloured_box(extents: tuple[float, float, float], path: Path, colour: tuple[int, int, int]) -> Path:
    mesh = trimesh.creation.box(extents=extents)
    mesh.visual.face_colors = [*colour, 255]
    mesh.export(path)
    return path


def run(argv: list[str], out: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = gencritic(["compare3d", *argv, "--out", str(out), "-q", "--resolution", "64", "--rig", "orbit4"],
                          monkeypatch, capsys)
    assert code == 0, err


def view_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "views.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_values_equal_independent_computations_on_the_written_views(
        tmp_path: Path, models: list[str], tiny_clip_dir: Path, tiny_dino_dir: Path,  # noqa: F811
        lpips_weights: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    from transformers import AutoImageProcessor, Dinov2Model

    from gencritic.models.lpips_nets import _features

    gen = coloured_box((1.0, 0.7, 0.5), tmp_path / "gen.ply", (200, 40, 40))
    ref = coloured_box((1.0, 0.6, 0.4), tmp_path / "ref.ply", (180, 60, 40))
    out = tmp_path / "out"
    run([str(gen), str(ref), "--appearance-only", *models], out, monkeypatch, capsys)
    views = view_rows(out)
    assert [v["view"] for v in views] == ["0", "1", "2", "3"] and [v["yaw_deg"] for v in views] == [
        "0.0", "90.0", "180.0", "270.0"] and {v["pitch_deg"] for v in views} == {"30.0"}

    feats = _features("alex")
    feats.load_state_dict({k.removeprefix("features."): v for k, v in torch.load(lpips_weights).items()})
    upstream = _upstream_lpips("alex", feats)
    dino = Dinov2Model.from_pretrained(tiny_dino_dir).eval()
    dino_proc = AutoImageProcessor.from_pretrained(tiny_dino_dir)

    def dino_emb(image: Image.Image) -> torch.Tensor:
        with torch.no_grad():
            e = dino(**dino_proc(images=image, return_tensors="pt")).pooler_output[0]
        return e / e.norm()

    for v in views:
        g = Image.open(out / v["generated_image"]).convert("RGB")
        r = Image.open(out / v["reference_image"]).convert("RGB")
        assert g.size == r.size == (64, 64)
        a, b = np.asarray(g, dtype=np.float64) / 255, np.asarray(r, dtype=np.float64) / 255
        assert float(v["psnr"]) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-9)
        assert float(v["ssim"]) == pytest.approx(structural_similarity(
            a, b, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0),
            abs=1e-9)
        x, y = (torch.from_numpy(t).permute(2, 0, 1)[None].float() * 2 - 1 for t in (a, b))
        with torch.no_grad():
            assert float(v["lpips"]) == pytest.approx(float(upstream(x, y)), abs=1e-5)
        clip = float(_hf_image_embedding(tiny_clip_dir, g) @ _hf_image_embedding(tiny_clip_dir, r))
        assert float(v["clip_i2i"]) == pytest.approx(clip, abs=1e-5)
        assert float(v["dino"]) == pytest.approx(float(dino_emb(g) @ dino_emb(r)), abs=1e-5)
    row = read_rows(out)["gen"]
    for metric in APPEARANCE:  # the row is the mean over views
        assert float(row[metric]) == pytest.approx(np.mean([float(v[metric]) for v in views]), abs=1e-12)
    assert row["appearance_views"] == "4" and "chamfer_l1" not in row


def test_written_views_are_the_render_of_the_same_rig(tmp_path: Path, models: list[str],
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Both sides are what ``render_asset`` draws with the command's settings, pixel for pixel."""
    from gencritic.render.api import render_asset
    from gencritic.render.compose import composite

    gen = coloured_box((1.0, 0.7, 0.5), tmp_path / "gen.ply", (200, 40, 40))
    ref = coloured_box((1.0, 0.6, 0.4), tmp_path / "ref.ply", (40, 60, 180))
    out = tmp_path / "out"
    run([str(gen), str(ref), "--appearance-only", "--background", "black", *models], out, monkeypatch, capsys)
    views = view_rows(out)
    for side, path in (("generated_image", gen), ("reference_image", ref)):
        rendered = render_asset(path, {"rig": "orbit4", "resolution": 64, "background": "black", "cache": False})
        for i, v in enumerate(views):
            expected = composite(rendered.premultiplied[i], (0, 0, 0))[0]
            assert np.array_equal(np.asarray(Image.open(out / v[side]).convert("RGB")), expected)


def test_a_mesh_against_itself_is_identical_in_every_view(tmp_path: Path, models: list[str],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    asset = coloured_box((1.0, 0.6, 0.4), tmp_path / "a.ply", (30, 160, 90))
    out = tmp_path / "out"
    run([str(asset), str(asset), "--samples", "2000", *models], out, monkeypatch, capsys)
    row = read_rows(out)["a"]
    assert row["success"] == "true" and float(row["chamfer_l1"]) == 0.0  # geometry and appearance in one row
    assert float(row["psnr"]) == math.inf
    assert float(row["ssim"]) == pytest.approx(1.0, abs=1e-12)
    assert float(row["lpips"]) == 0.0
    assert float(row["clip_i2i"]) == pytest.approx(1.0, abs=1e-6)
    assert float(row["dino"]) == pytest.approx(1.0, abs=1e-6)
    assert all(float(v["psnr"]) == math.inf for v in view_rows(out))


def test_the_generated_asset_is_drawn_in_the_pose_align_search_found(tmp_path: Path, models: list[str],
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A copy turned by 90 degrees about the up axis: in canonical frames its views differ; drawn
    after the alignment --align search finds, they match the reference's."""
    ref = box((0, 0, 0), (1.0, 0.6, 0.3))
    export(ref.vertices, ref.faces, tmp_path / "ref.ply")
    turned = ref.vertices @ np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], dtype=float).T + [0.2, 0.0, 0.1]
    export(turned, ref.faces, tmp_path / "gen.ply")
    common = [str(tmp_path / "gen.ply"), str(tmp_path / "ref.ply"), "--samples", "5000", *models]
    run([*common, "--align", "none"], tmp_path / "none", monkeypatch, capsys)
    run([*common, "--align", "search"], tmp_path / "search", monkeypatch, capsys)
    plain, aligned = read_rows(tmp_path / "none")["gen"], read_rows(tmp_path / "search")["gen"]
    assert aligned["align_axis_rotation"] != "" and float(aligned["chamfer_l1"]) < 1e-3
    assert float(plain["ssim"]) < 0.9 < 0.99 < float(aligned["ssim"])
    assert float(aligned["psnr"]) > float(plain["psnr"]) + 10
    run([*common, "--align", "search", "--appearance-only"], tmp_path / "alone", monkeypatch, capsys)
    alone = read_rows(tmp_path / "alone")["gen"]  # the alignment measured for the appearance alone: the same pose
    assert "chamfer_l1" not in alone and float(alone["ssim"]) == float(aligned["ssim"])


def test_each_evaluator_fails_on_its_own_and_the_run_goes_on(tmp_path: Path, models: list[str],
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    coloured_box((1, 1, 1), ref / "cloud.ply", (90, 90, 200))
    np.savez(gen / "cloud.npz", points=np.random.default_rng(0).random((500, 3)))  # renders; has no surface
    coloured_box((1, 1, 1), ref / "broken.ply", (90, 90, 200))
    (gen / "broken.obj").write_text("v 0 0 0\nf 1 2 3\n")  # neither loads nor renders
    coloured_box((1, 1, 1), ref / "fine.ply", (90, 90, 200))
    coloured_box((1, 0.9, 1), gen / "fine.ply", (90, 90, 200))
    out = tmp_path / "out"
    run([str(gen), str(ref), "--samples", "2000", *models], out, monkeypatch, capsys)
    rows = read_rows(out)
    assert rows["fine"]["success"] == "true" and float(rows["fine"]["ssim"]) > 0.5
    cloud = rows["cloud"]
    assert cloud["success"] == "false" and cloud["error"].startswith("geometry: ") and "appearance" not in cloud["error"]
    assert 0 < float(cloud["ssim"]) < 1 and cloud["chamfer_l1"] in ("", "nan")  # the views were compared
    broken = rows["broken"]
    assert broken["success"] == "false" and "geometry: " in broken["error"] and "appearance: " in broken["error"]
    assert broken["psnr"] in ("", "nan")
    assert {v["pair_id"] for v in view_rows(out)} == {"cloud", "fine"}


def test_bad_appearance_options_are_one_line_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    a = coloured_box((1, 1, 1), tmp_path / "a.ply", (90, 90, 200))
    for extra, expected in ((["--appearance-metrics", "psnr,clipscore"], "'clipscore' is not an appearance metric"),
                            (["--appearance-metrics", "psnr,lpips:nett=vgg"], "nett"),
                            (["--geometry-only", "--appearance-only"], "exclude each other"),
                            (["--rig", "orbitx"], "orbitx")):
        code, err = gencritic(["compare3d", str(a), str(a), "--out", str(tmp_path / "o"), *extra], monkeypatch, capsys)
        assert code == 2 and len(err) == 1 and expected in err[0], (extra, err)
        assert not (tmp_path / "o" / "results.csv").exists()


def test_a_rerun_resumes_with_the_same_bytes_and_other_render_settings_are_refused(
        tmp_path: Path, models: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    for name, extents in (("a", (1, 0.5, 0.5)), ("b", (0.5, 1, 0.5))):
        coloured_box(extents, gen / f"{name}.ply", (200, 40, 40))
        coloured_box((1, 1, 0.5), ref / f"{name}.ply", (200, 40, 40))
    out = tmp_path / "out"
    argv = [str(gen), str(ref), "--samples", "2000", *models]
    run(argv, out, monkeypatch, capsys)
    first = {name: (out / name).read_bytes() for name in ("results.csv", "views.csv")}
    (gen / "a.ply").write_text("not a mesh any more")  # a finished pair is not compared again
    run(argv, out, monkeypatch, capsys)
    assert {name: (out / name).read_bytes() for name in first} == first
    code, err = gencritic(["compare3d", *argv, "--out", str(out), "--resolution", "32", "--rig", "orbit4"],
                          monkeypatch, capsys)
    assert code == 2 and len(err) == 1 and "other settings" in err[0]


class _StrictHtml:
    """Parses a page and fails on any unclosed or mismatched element; collects the <img>s of each pair."""

    VOID: ClassVar[set[str]] = {"meta", "img", "br", "input", "link", "hr", "source", "col", "wbr"}

    def __init__(self, page: str) -> None:
        from html.parser import HTMLParser

        self.stack: list[str] = []
        self.pairs: dict[str, list[dict[str, str]]] = {}
        self.current: str | None = None
        outer = self

        class Parser(HTMLParser):
            def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
                a = {k: v or "" for k, v in attrs}
                if tag == "section" and "pair" in a.get("class", "").split():
                    outer.current = a["data-pair-id"]
                    outer.pairs[outer.current] = []
                if tag == "img" and outer.current is not None:
                    outer.pairs[outer.current].append(a)
                if tag not in outer.VOID:
                    outer.stack.append(tag)

            def handle_endtag(self, tag: str) -> None:
                assert outer.stack and outer.stack[-1] == tag, f"</{tag}> closes <{outer.stack[-1:]}>"
                outer.stack.pop()
                if tag == "section":
                    outer.current = None

        parser = Parser(convert_charrefs=True)
        parser.feed(page)
        parser.close()
        assert not self.stack, f"unclosed elements: {self.stack}"


def test_the_report_shows_each_pair_side_by_side(tmp_path: Path, models: list[str], monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import base64
    import io

    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    coloured_box((1, 0.5, 0.5), gen / "red.ply", (220, 20, 20))
    coloured_box((1, 0.5, 0.5), ref / "red.ply", (220, 20, 20))
    coloured_box((0.5, 1, 0.5), gen / "blue.ply", (20, 20, 220))
    coloured_box((1, 1, 0.5), ref / "blue.ply", (20, 220, 20))
    (gen / "bad.obj").write_text("v 0 0 0\nf 1 2 3\n")
    coloured_box((1, 1, 0.5), ref / "bad.ply", (20, 220, 20))
    out = tmp_path / "out"
    run([str(gen), str(ref), "--samples", "2000", *models], out, monkeypatch, capsys)
    code, err = gencritic(["report", str(out), "--out", str(tmp_path / "report.html")], monkeypatch, capsys)
    assert code == 0, err
    page = (tmp_path / "report.html").read_text()
    parsed = _StrictHtml(page)
    assert list(parsed.pairs) == ["bad", "blue", "red"]
    assert parsed.pairs["bad"] == [] and "bad" in page.split('id="failed"')[1].split("</section>")[0]
    rows = read_rows(out)
    for pair in ("blue", "red"):
        images = parsed.pairs[pair]
        assert [i["class"] for i in images] == ["generated", "reference"] * 4  # side by side, every view
        # each picture is the view the run compared: its dominant colour is the asset's
        decoded = [Image.open(io.BytesIO(base64.b64decode(i["src"].split(",", 1)[1]))).convert("RGB") for i in images]
        centre = [np.asarray(d)[d.height // 2, d.width // 2] for d in decoded]
        want = {"red": [(220, 20, 20)] * 2, "blue": [(20, 20, 220), (20, 220, 20)]}[pair]
        for k, c in enumerate(centre):
            assert int(np.argmax(c)) == int(np.argmax(want[k % 2])), (pair, k, c)
        section = page.split(f'data-pair-id="{pair}"')[1].split("</section>")[0]
        assert f"{float(rows[pair]['psnr']):.4f}" in section or rows[pair]["psnr"] == "inf"
        assert f"{float(rows[pair]['chamfer_l1']):.4f}" in section


def test_lpips_reuses_a_shared_reference_s_features_with_the_same_values(lpips_weights: Path) -> None:
    """Whole-frame LPIPS keeps a reference's backbone features: several generated views compared
    with one reference run the backbone on it once, and the values are the package's."""
    from gencritic.cache import EmbeddingCache
    from gencritic.io.images import LoadedImage
    from gencritic.items import Item
    from gencritic.metrics.registry import create_metric
    from gencritic.models.loader import ModelPool
    from gencritic.models.lpips_nets import _features
    from gencritic.views import RunContext, View, ViewBatch

    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)) for _ in range(4)]
    reference = LoadedImage(pictures[0], "ref-sha", None)
    metric = create_metric(f"lpips:weights={lpips_weights};mask=none")
    ctx = RunContext(pool=ModelPool("cpu", "fp32"), cache=EmbeddingCache(None), default_model="unused")
    metric.setup(ctx)
    calls: list[int] = []
    net = metric.net  # type: ignore[attr-defined]
    original = net.features
    net.features = lambda x: calls.append(x.shape[0]) or original(x)

    def batch(images: list[Image.Image]) -> ViewBatch:
        items = [Item(item_id=f"v{i}", kind="image", path=Path(f"v{i}.png")) for i in range(len(images))]
        views = [View(it, 0, f"sha{i}", (lambda im=im: LoadedImage(im, "x", None))) for i, (it, im)
                 in enumerate(zip(items, images, strict=True))]
        return ViewBatch(views, ctx, {it.item_id: reference for it in items})

    first = metric.compute(batch(pictures[1:3])).values["lpips"]
    second = metric.compute(batch(pictures[2:4])).values["lpips"]
    assert calls == [2, 1, 2]  # views, the reference once, views; the reference again: from memory
    feats = _features("alex")
    feats.load_state_dict({k.removeprefix("features."): v for k, v in torch.load(lpips_weights).items()})
    upstream = _upstream_lpips("alex", feats)

    def package(image: Image.Image) -> float:
        x, y = (torch.from_numpy(np.asarray(p, dtype=np.float32) / 255).permute(2, 0, 1)[None] * 2 - 1
                for p in (image, pictures[0]))
        with torch.no_grad():
            return float(upstream(x, y))

    assert first == pytest.approx([package(p) for p in pictures[1:3]], abs=1e-5)
    assert second == pytest.approx([package(p) for p in pictures[2:4]], abs=1e-5)
    assert second[0] == pytest.approx(first[1], abs=1e-6)
