"""The report builder without a browser: what it reads, what it writes, and that it writes
nothing that would reach the network."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from scipy import stats
from typer.testing import CliRunner

from gencritic.cli.main import app
from gencritic.errors import InputError
from gencritic.report.builder import ReportOptions, build_report, markdown_summary
from gencritic.report.data import group_means, load_results
from gencritic.report.plots import correlations, histogram, histogram_svg
from tests.conftest import make_image
from tests.report_helpers import CUBE_OBJ, scored_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> Path:
    return scored_run(tmp_path_factory.mktemp("report"), tiny_clip_dir)


def test_columns_are_classified(run_dir: Path) -> None:
    data = load_results(run_dir)
    assert data.metric_columns == ["clip_score", "clip_score_x100", "clip_torchmetrics"]
    assert data.human_columns == ["mos"]
    assert "generator" in data.group_columns and "image" not in data.group_columns
    assert "warnings" in data.columns and "warnings" not in data.group_columns  # bookkeeping, not a grouping
    assert data.primary == "clip_score"
    assert data.items["asset0"]["kind"] == "views"


def test_leaderboard_means_match_results(run_dir: Path) -> None:
    data = load_results(run_dir)
    with open(run_dir / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    board = {e["group"]: e for e in group_means(data, "generator")}
    for gen in ("gen_a", "gen_b"):
        vals = [float(r["clip_score"]) for r in rows if r["generator"] == gen and r["success"] == "true"]
        assert board[gen]["clip_score"] == pytest.approx(sum(vals) / len(vals))
        assert board[gen]["n"] == sum(1 for r in rows if r["generator"] == gen)


def test_correlations_match_scipy() -> None:
    xs = [0.1, 0.4, 0.35, 0.8, 0.7, float("nan")]
    ys = [1.0, 2.0, 3.0, 4.5, 4.0, 2.0]
    c = correlations(xs, ys)
    assert c["n"] == 5
    assert c["srcc"] == pytest.approx(stats.spearmanr(xs[:5], ys[:5]).statistic)
    assert c["plcc"] == pytest.approx(stats.pearsonr(xs[:5], ys[:5]).statistic)
    assert correlations([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])["srcc"] is None  # undefined, not 0


def test_histogram_counts_every_value() -> None:
    import numpy as np

    vals = [0.0, 0.1, 0.1, 0.5, 1.0, 0.74, 0.26]
    h = histogram(vals, bins=4)
    counts, edges = np.histogram(vals, bins=4)
    assert h.counts == counts.tolist() and h.edges == pytest.approx(edges.tolist())
    assert histogram([2.0, 2.0]).counts == [2]
    svg = histogram_svg([0.0, 0.5, 1.0], "m<x>")
    assert svg.startswith("<svg") and "m&lt;x&gt;" in svg


def test_html_is_self_contained(run_dir: Path, tmp_path: Path) -> None:
    written = build_report(run_dir, tmp_path / "r.html", markdown=tmp_path / "r.md")
    html = written.html.read_text()
    assert written.items == 11 and written.thumbnails == 8 + 3 + 2  # broken.png has no picture
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    # nothing that would fetch: no external src/href, no CDN, no @import, no fetch/XHR in the script
    assert not re.search(r'(src|href)\s*=\s*["\'](https?:)?//', html)
    assert "@import" not in html and "fetch(" not in html and "XMLHttpRequest" not in html
    assert html.count("data:image/jpeg;base64,") >= 13
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)[1])
    assert len(data["rows"]) == 11 and set(data["leaderboards"]) >= {"generator"}
    assert len(data["thumbs"]["asset0"]) == 3


def test_link_mode_uses_relative_paths(run_dir: Path) -> None:
    out = run_dir.parent / "pages" / "r.html"
    build_report(run_dir, out, options=ReportOptions(embed=False))
    html = out.read_text()
    assert "../media/red.png" in html and "data:image/jpeg" not in html


def test_markdown_summary(run_dir: Path) -> None:
    md = markdown_summary(load_results(run_dir))
    assert "| clip_score | 10 |" in md
    assert "## Leaderboard by generator" in md
    assert "## Agreement with human ratings" in md and "| clip_score | mos | 10 |" in md
    assert "broken.png" in md  # failures are listed, not hidden


def test_views_folder_for_meshes(tmp_path: Path) -> None:
    """A mesh item gets its thumbnails from VIEWS/<asset>/NNN.png (as `gencritic render` writes)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("image,item_id,clip_score,success,error,model,settings_id\n"
                                     "chair.glb,chair.glb,0.25,true,,m,s\n")
    (out / "summary.json").write_text(json.dumps({"primary_metric": "clip_score",
                                                  "metrics": {"clip_score": {"higher_is_better": True}}}))
    (tmp_path / "chair.glb").write_bytes(b"glTF")
    for i in range(4):
        make_image(tmp_path / "views" / "chair" / f"{i:03d}.png", (10 * i, 100, 200))
    written = build_report(out, tmp_path / "r.html", options=ReportOptions(views_dir=tmp_path / "views",
                                                                           media_root=tmp_path))
    assert written.thumbnails == 4


def test_cli_report(run_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "rep.html"),
                                      "--group-by", "prompt"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rep.html").exists() and (tmp_path / "rep.md").exists()
    assert "11 items" in result.output
    assert '<option value="prompt">' in (tmp_path / "rep.html").read_text()  # forced leaderboard column
    bad = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "x.html"), "--group-by", "nope"])
    assert isinstance(bad.exception, InputError) and "no such column" in str(bad.exception)


def test_missing_results_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no results\.csv"):
        load_results(tmp_path)


def test_render_meshes_without_views(tmp_path: Path) -> None:
    """--render: a mesh with no views folder is rendered once and cached in the results folder."""
    import importlib.util

    if importlib.util.find_spec("gencritic.render.api") is None:
        pytest.skip("gencritic.render.api is not installed")
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "box.obj").write_text(CUBE_OBJ)
    (out / "results.csv").write_text("image,item_id,clip_score,success,error,model,settings_id\n"
                                     "box.obj,box.obj,0.25,true,,m,s\n")
    opts = ReportOptions(media_root=tmp_path, render=True, render_options={"rig": "toys4k8", "resolution": 64})
    assert build_report(out, tmp_path / "r.html", options=opts).thumbnails == 8
    cached = sorted((out / ".gencritic" / "report_views" / "box").glob("*.png"))
    assert len(cached) == 8
    assert build_report(out, tmp_path / "r2.html", options=opts).thumbnails == 8  # from the cache
