"""``gencritic toys4k --generated``: TRELLIS' Toys4k columns (CLIP, FD/KD on Inception and DINOv2)
of generated assets against renders of the dataset's own assets.

Expected numbers are computed independently: views rendered here, Inception features through
clean-fid's own resize and its port of the network, DINOv2 features by dgm-eval's transform in
torchvision and transformers, KD by torchmetrics' formula.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from typer.testing import CliRunner

from gencritic.cli.main import app
from gencritic.errors import InputError
from gencritic.metrics import sets
from gencritic.render.api import render_asset
from tests.test_render import coloured_sphere, textured_cube
from tests.test_set_distances import (  # noqa: F401  (fixtures)
    clean_fid_reference_inception,
    inception_weights,
    reference_pool3,
    tiny_dinov2,
)
from tests.test_toys4k import reference_clip_score

pytest.importorskip("cleanfid")

RES = 64
RIG = "orbit2"  # two views per asset keep the Inception work small; the protocol's rig is toys4k8
SHA = {k: k * 64 for k in "abc"}


@pytest.fixture()
def dataset(tmp_path: Path) -> tuple[Path, Path, Path]:
    """metadata (3 rows), the dataset's assets (rows a, b; c's is missing) and generated assets (a, b; c's missing)."""
    root = tmp_path / "toys4k"
    (root / "cube" / "cube_000").mkdir(parents=True)
    textured_cube().export(root / "cube" / "cube_000" / "mesh.obj")
    (root / "ball" / "ball_001").mkdir(parents=True)
    coloured_sphere().export(root / "ball" / "ball_001" / "ball_001.glb")
    generated = tmp_path / "generated"
    generated.mkdir()
    # a poor cube and a poor ball: other shapes and colours than the dataset's, so the sets differ
    green = trimesh.creation.box(extents=(1.0, 0.3, 0.6))
    green.visual.vertex_colors = np.tile([30, 200, 60, 255], (len(green.vertices), 1)).astype(np.uint8)
    green.export(generated / f"{SHA['a']}.glb")
    coloured_sphere(radius=0.3, subdivisions=2).export(generated / f"{SHA['b']}.glb")
    metadata = tmp_path / "metadata.csv"
    with metadata.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sha256", "file_identifier", "aesthetic_score", "captions"])
        w.writerow([SHA["a"], "cube/cube_000/cube_000.blend", 5.0, json.dumps(["a toy cube"])])
        w.writerow([SHA["b"], "ball/ball_001/ball_001.blend", 4.0, json.dumps(["a red and blue ball"])])
        w.writerow([SHA["c"], "cat/cat_000/cat_000.blend", 6.0, json.dumps(["a cat"])])
    return metadata, root, generated


def views(path: Path) -> list[np.ndarray]:
    return [np.asarray(v.image.rgb) for v in render_asset(path, {"rig": RIG, "resolution": RES, "cache": False}).views
            if v.image is not None]


def test_toys4k_generated_gives_trellis_columns_equal_to_independent_computations(
        dataset: tuple[Path, Path, Path], tiny_clip_dir: Path, inception_weights: Path,  # noqa: F811
        tiny_dinov2: Path, tmp_path: Path) -> None:  # noqa: F811
    from cleanfid.fid import fid_from_feats
    from cleanfid.resize import build_resizer
    from PIL import Image
    from torchmetrics.image.kid import poly_mmd
    from torchvision import transforms
    from transformers import Dinov2Model

    metadata, root, generated = dataset
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [
        "toys4k", str(metadata), "--root", str(root), "--generated", str(generated), "--out", str(out),
        "--model", str(tiny_clip_dir), "--device", "cpu", "--resolution", str(RES), "--rig", RIG,
        "--inception", str(inception_weights), "--dinov2", str(tiny_dinov2), "--cache-dir", str(tmp_path / "cache"),
        "-q"])
    assert res.exit_code == 0, res.output
    assert "2/3 assets scored" in res.output and "TRELLIS columns vs 2 reference assets: CLIP = " in res.output
    summary = json.loads((out / "toys4k_summary.json").read_text())
    table = summary["table"]
    assert list(table) == ["CLIP", "FD_incep", "KD_incep", "FD_dinov2", "KD_dinov2"]
    assert summary["table_errors"] == {}
    assert summary["reference_assets"] == 2 and list(summary["reference_missing"]) == [SHA["c"]]
    rows = {r["sha256"]: r for r in csv.DictReader((out / "toys4k_results.csv").open())}
    assert "not found under" in rows[SHA["c"]]["error"] and str(generated) in rows[SHA["c"]]["error"]

    # CLIP: the generated assets against the captions, x100
    gen_a, gen_b = generated / f"{SHA['a']}.glb", generated / f"{SHA['b']}.glb"
    ref_a, ref_b = root / "cube" / "cube_000" / "mesh.obj", root / "ball" / "ball_001" / "ball_001.glb"
    clip = [reference_clip_score(tiny_clip_dir, gen_a, "a toy cube", {"resolution": RES, "rig": RIG}),
            reference_clip_score(tiny_clip_dir, gen_b, "a red and blue ball", {"resolution": RES, "rig": RIG})]
    assert table["CLIP"] == pytest.approx(100 * float(np.mean(clip)), abs=2e-3)

    gen_views = views(gen_a) + views(gen_b)
    ref_views = views(ref_a) + views(ref_b)
    assert len(gen_views) == len(ref_views) == 4  # equal sets: KD's subsets hold them whole

    net = clean_fid_reference_inception(inception_weights)
    resize = build_resizer("clean")

    def inception(images: list[np.ndarray]) -> np.ndarray:
        x = torch.stack([torch.from_numpy(resize(im).transpose(2, 0, 1).copy()) for im in images])
        return reference_pool3(net, (x - 128) / 128).double().numpy()

    fi_g, fi_r = inception(gen_views), inception(ref_views)
    assert table["FD_incep"] == pytest.approx(sets.fid(fi_g, fi_r), rel=1e-4)
    assert table["KD_incep"] == pytest.approx(float(poly_mmd(torch.from_numpy(fi_g), torch.from_numpy(fi_r))),
                                              rel=1e-3, abs=1e-9)

    model = Dinov2Model.from_pretrained(tiny_dinov2).eval()
    tf = transforms.Compose([transforms.Resize((224, 224), transforms.InterpolationMode.BICUBIC), transforms.ToTensor(),
                             transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])

    def dino(images: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            x = torch.stack([tf(Image.fromarray(im)) for im in images])
            return model(pixel_values=x).last_hidden_state[:, 0].double().numpy()

    fd_g, fd_r = dino(gen_views), dino(ref_views)
    assert table["FD_dinov2"] == pytest.approx(fid_from_feats(fd_g, fd_r), rel=1e-4)
    assert table["KD_dinov2"] == pytest.approx(float(poly_mmd(torch.from_numpy(fd_g), torch.from_numpy(fd_r))),
                                               rel=1e-3, abs=1e-9)
    assert table["FD_incep"] > 0 and table["FD_dinov2"] > 0
    manifest = list(csv.DictReader((out / "reference_assets.csv").open()))
    assert [Path(r["path"]) for r in manifest] == [ref_a.resolve(), ref_b.resolve()]


def test_toys4k_generated_refuses_bad_combinations_in_one_line(dataset: tuple[Path, Path, Path],
                                                              tmp_path: Path) -> None:
    metadata, root, generated = dataset
    base = ["toys4k", str(metadata), "--root", str(root), "--out", str(tmp_path / "o"), "--no-cache", "-q"]
    # run-level input errors are one InputError line (the console script prints it and exits 2)
    res = CliRunner().invoke(app, [*base, "--generated", str(tmp_path / "nowhere")])
    assert isinstance(res.exception, InputError) and "--generated" in str(res.exception)
    assert "is not a folder" in str(res.exception) and "\n" not in str(res.exception)
    res = CliRunner().invoke(app, [*base, "--generated", str(generated), "--caption", "mean"])
    assert isinstance(res.exception, InputError) and "--caption mean" in str(res.exception)
    res = CliRunner().invoke(app, [*base, "--lighting", "sunset"])
    assert isinstance(res.exception, InputError) and "lighting" in str(res.exception)
    assert not (tmp_path / "o" / "scoring").exists()  # nothing was scored


def test_toys4k_lighting_reaches_the_renders(dataset: tuple[Path, Path, Path], tiny_clip_dir: Path,
                                             tmp_path: Path) -> None:
    """--lighting is a toys4k option like score's: flat lighting draws other pixels, so other scores."""
    metadata, root, _ = dataset
    scores = {}
    for lighting in ("default", "flat"):
        out = tmp_path / lighting
        res = CliRunner().invoke(app, ["toys4k", str(metadata), "--root", str(root), "--out", str(out),
                                       "--model", str(tiny_clip_dir), "--device", "cpu", "--resolution", str(RES),
                                       "--rig", RIG, "--no-cache", "-q", "--max-assets", "1", "--lighting", lighting])
        assert res.exit_code == 0, res.output
        scores[lighting] = json.loads((out / "toys4k_summary.json").read_text())["mean_clip_score"]
        settings = json.loads((out / "scoring" / "summary.json").read_text())["settings"]
        assert ("flat" in json.dumps(settings)) == (lighting == "flat")
    assert scores["default"] != pytest.approx(scores["flat"], abs=1e-6)
