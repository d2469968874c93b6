"""``--engine ray`` on a local 2-CPU Ray cluster: the same files, byte for byte, as the local engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gencritic.scoring import ScoreOptions, score
from tests.conftest import make_image

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")


@pytest.fixture(scope="module")
def cluster() -> object:
    """One local cluster for the module: Ray start-up is the slow part."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ray_media")
    lines = ["image,prompt,split"]
    for i in range(10):
        make_image(folder / f"img{i}.png", ((37 * i) % 256, (91 * i) % 256, (53 * i + 40) % 256))
        lines.append(f"img{i}.png,a picture number {i},{'a' if i % 2 else 'b'}")
    for k, c in enumerate([(200, 10, 10), (10, 200, 10), (10, 10, 200)]):
        make_image(folder / "asset" / f"{k:03d}.png", c)
    lines.append("asset,a small toy,a")
    lines.append("missing.png,a file that is not there,b")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.csv"


def _opts(model: Path) -> ScoreOptions:
    return ScoreOptions(model=str(model), device="cpu", dtype="fp32", cache_dir=None, progress=False, batch_size=4,
                        metrics=["clip", "clip_torchmetrics"])


@pytest.fixture(scope="module")
def runs(cluster: object, manifest: Path, tiny_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same manifest through both engines (2 actors on the 2-CPU cluster)."""
    from gencritic.engines.ray_engine import score_with_ray

    base = tmp_path_factory.mktemp("engines")
    local = score(manifest, out=base / "local", options=_opts(tiny_clip_dir))
    remote = score_with_ray(manifest, out=base / "ray", options=_opts(tiny_clip_dir), num_actors=2)
    return {"base": base, "local": local, "ray": remote}


def test_ray_matches_local_exactly(runs: dict) -> None:
    base = runs["base"]
    for name in ("results.csv", "views.csv"):
        assert (base / "ray" / name).read_bytes() == (base / "local" / name).read_bytes(), name
    assert runs["ray"].rows == runs["local"].rows
    summary = json.loads((base / "ray" / "summary.json").read_text())
    assert summary["engine"]["name"] == "ray" and summary["engine"]["actors"] == 2
    assert summary["count"] == 12 and summary["failures"] == 1  # the missing file fails its row, as locally
    assert summary["mean"] == runs["local"].summary["mean"]
    assert summary["metrics"] == runs["local"].summary["metrics"]
    assert summary["resumed_items"] == 0
    # the device, dtype and threads the actors ran with (the same as the local run's here), strict JSON
    assert summary["settings"] == runs["local"].summary["settings"]
    assert summary["settings"]["device"] == "cpu" and summary["settings"]["dtype"] == "fp32"
    json.loads((base / "ray" / "summary.json").read_text(), parse_constant=lambda c: 1 / 0)


def test_ray_run_resumes_without_work(runs: dict, manifest: Path, tiny_clip_dir: Path) -> None:
    from gencritic.engines.ray_engine import score_with_ray

    out = runs["base"] / "ray"
    before = (out / "results.csv").read_bytes()
    again = score_with_ray(manifest, out=out, options=_opts(tiny_clip_dir))
    assert again.summary["resumed_items"] == 12 and again.summary["engine"]["actors"] == 0
    assert (out / "results.csv").read_bytes() == before


def test_ray_refuses_other_settings(runs: dict, manifest: Path, tiny_clip_dir: Path) -> None:
    from gencritic.engines.ray_engine import score_with_ray
    from gencritic.errors import InputError

    other = _opts(tiny_clip_dir)
    other.metrics = ["clip"]
    with pytest.raises(InputError, match="other settings"):
        score_with_ray(manifest, out=runs["base"] / "ray", options=other)


def test_cli_engine_ray(runs: dict, manifest: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    """The CLI flag reaches the Ray engine (resuming a finished Ray run: no actor start-up)."""
    import shutil

    from typer.testing import CliRunner

    from gencritic.cli.main import app

    out = tmp_path / "cli"
    shutil.copytree(runs["base"] / "ray", out)
    args = ["score", str(manifest), "--out", str(out), "--model", str(tiny_clip_dir), "--device", "cpu",
            "--dtype", "fp32", "--no-cache", "--batch-size", "4", "--metrics", "clip,clip_torchmetrics", "--quiet"]
    result = CliRunner().invoke(app, [*args, "--engine", "ray"])
    assert result.exit_code == 0, result.output
    assert "11/12 items scored" in result.output
    assert json.loads((out / "summary.json").read_text())["engine"]["name"] == "ray"
    bad = CliRunner().invoke(app, [*args, "--engine", "spark"])
    assert bad.exit_code != 0


def test_gpus_follow_the_device() -> None:
    from gencritic.engines.ray_engine import default_gpus_per_actor
    from gencritic.errors import InputError

    assert default_gpus_per_actor("cpu", 4) == 0.0
    assert default_gpus_per_actor("auto", 0) == 0.0
    assert default_gpus_per_actor("auto", 2) == 1.0
    assert default_gpus_per_actor("cuda:0", 1) == 1.0
    with pytest.raises(InputError, match="no GPU"):
        default_gpus_per_actor("cuda", 0)


def test_ray_reads_frames_in_natural_order_and_keeps_listing_failures(cluster: object, tmp_path: Path) -> None:
    """Frames f0..f12 through the Ray engine give the hand-computed flicker (natural order, as
    `score` and `temporal` read them), and an entry the listing could not read stays a failed row."""
    import os

    import numpy as np
    from PIL import Image

    from gencritic.engines.ray_engine import score_with_ray

    levels = [int(v) for v in np.random.default_rng(11).integers(20, 235, 13)]
    (tmp_path / "in" / "seq").mkdir(parents=True)
    for i, level in enumerate(levels):
        Image.fromarray(np.full((16, 16, 3), level, np.uint8)).save(tmp_path / "in" / "seq" / f"f{i}.png")
    os.symlink("nowhere.png", tmp_path / "in" / "broken.png")
    m = np.asarray(levels, dtype=np.float64) / 255.0
    expected = 100.0 * np.sqrt(np.mean(((m[2:] - 2 * m[1:-1] + m[:-2]) / 4.0) ** 2))
    run = score_with_ray(tmp_path / "in", out=tmp_path / "out", num_actors=1,
                         options=ScoreOptions(metrics=["flicker"], device="cpu", cache_dir=None, progress=False))
    rows = {r["item_id"]: r for r in run.rows}
    assert rows["seq"]["flicker_index"] == pytest.approx(expected, rel=1e-9)
    assert rows["broken.png"]["success"] is False and "broken symbolic link" in rows["broken.png"]["error"]
