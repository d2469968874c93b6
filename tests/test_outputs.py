"""What gencritic writes, as others read it (issue 16, items 4-6).

* Strict JSON: every JSON file, line and listing parses with ``parse_constant`` refusing
  NaN/Infinity (what JavaScript's JSON.parse and jq do); missing and unbounded values are null.
  The journal keeps NaN and ±inf losslessly, so a resumed run is still byte-identical.
* Provenance: weight-free metrics name no model; summary.json names the device, dtype and
  thread count that ran, not ``auto``.
* Permissions: outputs follow the umask (0644 under 022, 0640 under 027); only the API key
  file is 0600.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gencritic
from gencritic.atomic import SECRET_MODE, atomic_write_text
from gencritic.jsonio import dumps_strict, journal_line, loads_strict, parse_journal_line, to_jsonable
from tests.conftest import ROOT, make_image


def _strict_lines(path: Path) -> list[object]:
    return [loads_strict(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_strict_json_tree(folder: Path) -> int:
    """Every .json / .jsonl file under ``folder`` (hidden state included) parses strictly; returns how many."""
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".json":
            loads_strict(path.read_text(encoding="utf-8"))
            count += 1
        elif path.suffix == ".jsonl":
            _strict_lines(path)
            count += 1
    return count


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# -- the writer itself --------------------------------------------------------------------------


def test_strict_writer_maps_missing_and_unbounded_to_null() -> None:
    data = {"nan": math.nan, "inf": math.inf, "range": (-math.inf, math.inf), "np": np.float32(0.5),
            "arr": np.array([1.0, np.nan]), "n": np.int64(3), "ok": True, "s": "NaN"}
    text = dumps_strict(data)
    assert loads_strict(text) == {"nan": None, "inf": None, "range": [None, None], "np": 0.5, "arr": [1.0, None],
                                  "n": 3, "ok": True, "s": "NaN"}
    with pytest.raises(ValueError, match="not strict JSON"):
        loads_strict('{"a": NaN}')
    with pytest.raises(ValueError):
        dumps_strict({"a": math.inf}, nonfinite="raise")
    with pytest.raises(TypeError):
        to_jsonable({"p": object()})


def test_journal_lines_are_strict_and_lossless() -> None:
    rec = {"item": {"item_id": "a"}, "values": {"psnr": math.inf, "low": -math.inf, "clip": math.nan, "x": 0.25},
           "views": [{"view": "v", "values": {"psnr": math.inf, "clip": math.nan}, "error": None}],
           "prompt_tokens_cut": None}
    line = journal_line(rec)
    loads_strict(line)
    back = parse_journal_line(line)
    assert back["values"]["psnr"] == math.inf and back["values"]["low"] == -math.inf
    assert math.isnan(back["values"]["clip"]) and back["values"]["x"] == 0.25
    assert back["views"][0]["values"]["psnr"] == math.inf and math.isnan(back["views"][0]["values"]["clip"])
    assert back["prompt_tokens_cut"] is None
    # a journal written before journals were strict still resumes
    old = parse_journal_line('{"item": {"item_id": "a"}, "values": {"p": Infinity, "c": NaN}}')
    assert old["values"]["p"] == math.inf and math.isnan(old["values"]["c"])


# -- item 4: strict JSON from every entry point -------------------------------------------------


def test_metrics_json_listing_parses_strictly() -> None:
    out = subprocess.run([sys.executable, "-m", "gencritic.cli.main", "metrics", "--json"], capture_output=True,
                         text=True, cwd=ROOT, timeout=300, check=True).stdout
    infos = {m["name"]: m for m in json.loads(out, parse_constant=lambda c: 1 / 0)}
    assert infos["aesthetic"]["range"] == [None, None]  # unbounded both ways
    assert infos["psnr"]["range"] == [0.0, None]
    assert infos["clip"]["range"] == [-1.0, 1.0]


def test_every_json_a_scoring_run_writes_is_strict(tiny_clip_dir: Path, tmp_path: Path) -> None:
    """A run with a failing item (NaN values) and unbounded ones (PSNR of identical images)."""
    folder, refs = tmp_path / "imgs", tmp_path / "refs"
    make_image(folder / "same.png", (200, 10, 10))
    make_image(refs / "same.png", (200, 10, 10))  # identical: PSNR is +inf
    make_image(folder / "other.png", (10, 200, 10))
    make_image(refs / "other.png", (10, 10, 200))
    make_image(folder / "alone.png", (10, 10, 200))  # no reference and no prompt: NaN values
    (folder / "broken.png").write_text("not an image")
    for name in ("same", "other", "broken"):
        (folder / f"{name}.txt").write_text(f"a {name} square")
    out = tmp_path / "out"
    run = gencritic.score(folder, out=out, model=str(tiny_clip_dir), cache_dir=None, progress=False,
                          metrics="clip,psnr", reference_dir=refs, formats=["csv", "jsonl"])
    rows = {r["item_id"]: r for r in run.rows}
    assert rows["same.png"]["psnr"] == math.inf and not rows["alone.png"]["success"]
    assert not rows["broken.png"]["success"]
    assert assert_strict_json_tree(out) == 4  # summary.json, results.jsonl, .gencritic/run.json, journal.jsonl
    summary = loads_strict((out / "summary.json").read_text())
    assert summary["metrics"]["psnr"]["max"] is None  # +inf is not JSON: null
    jsonl = {r["item_id"]: r for r in _strict_lines(out / "results.jsonl")}  # type: ignore[index,union-attr]
    assert jsonl["alone.png"]["clip_score"] is None and jsonl["same.png"]["psnr"] is None
    # the journal still holds the scores exactly: a run resumed from it writes the same bytes
    first = {f: (out / f).read_bytes() for f in ("results.csv", "views.csv")}
    assert b",inf," in first["results.csv"]
    for f in first:
        (out / f).unlink()
    again = gencritic.score(folder, out=out, model=str(tiny_clip_dir), cache_dir=None, progress=False,
                            metrics="clip,psnr", reference_dir=refs, formats=["csv", "jsonl"])
    assert again.summary["resumed_items"] == 4
    assert {f: (out / f).read_bytes() for f in first} == first


def test_http_error_bodies_are_strict_json() -> None:
    """A 422 carries the failed row: its NaN scores are null (Starlette's own response refused them with a 500)."""
    pytest.importorskip("fastapi")
    from gencritic.serve.http import ItemFailed, _handler

    failed = ItemFailed({"error": "no prompt", "success": False, "scores": {"clip_score": math.nan, "psnr": math.inf}})
    response = asyncio.run(_handler(None, failed))  # type: ignore[arg-type]
    assert response.status_code == 422
    body = loads_strict(bytes(response.body))
    assert body["result"]["scores"] == {"clip_score": None, "psnr": None}


def test_diagnose_temporal_and_report_json_are_strict(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gencritic.cli.main import app

    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"f{i}.png")
    runner = CliRunner()
    res = runner.invoke(app, ["temporal", str(folder), "--out", str(tmp_path / "temporal"), "--no-flow"])
    assert res.exit_code == 0, res.output
    loads_strict(res.stdout)
    assert assert_strict_json_tree(tmp_path / "temporal") == 1
    img = make_image(tmp_path / "red.png")
    res = runner.invoke(app, ["diagnose", str(img), "--profile", "product-shot", "--out", str(tmp_path / "d.json")])
    assert res.exit_code == 0, res.output
    loads_strict((tmp_path / "d.json").read_text())
    res = runner.invoke(app, ["profiles", "--json"])
    assert res.exit_code == 0, res.output
    loads_strict(res.stdout)


# -- item 5: provenance -------------------------------------------------------------------------


def test_weight_free_metrics_name_no_model(tiny_clip_dir: Path, tmp_path: Path) -> None:
    from gencritic.metrics.registry import create_metric

    for name in ("flicker", "temporal_ssim", "warping_error", "ssim", "psnr", "ms_ssim"):
        assert create_metric(name, str(tiny_clip_dir)).model_id() is None, name
    assert create_metric("clip", str(tiny_clip_dir)).model_id() == str(tiny_clip_dir)  # the run's --model

    root = tmp_path / "seq"
    root.mkdir()
    for i in range(4):
        make_image(root / f"f{i}.png", (60 * i, 40, 40))
    out = tmp_path / "out"
    run = gencritic.score([gencritic.items.Item("seq", "views", root, "a red square", None, {})], out=out,
                          model=str(tiny_clip_dir), cache_dir=None, progress=False, metrics="clip,flicker")
    assert run.rows[0]["success"], run.rows[0]["error"]
    assert run.rows[0]["model"] == str(tiny_clip_dir)  # the only model the row's numbers came from
    with open(out / "views.csv", newline="") as fh:
        models = {(r["metric"], r["model"]) for r in csv.DictReader(fh)}
    assert {m for metric, m in models if metric.startswith("flicker")} == {""}
    assert {m for metric, m in models if metric.startswith("clip")} == {str(tiny_clip_dir)}
    summary = loads_strict((out / "summary.json").read_text())
    assert summary["metrics"]["flicker_index"]["model"] is None
    assert summary["metrics"]["clip_score"]["model"] == str(tiny_clip_dir)

    only = gencritic.score([gencritic.items.Item("seq", "views", root, None, None, {})], model=str(tiny_clip_dir),
                           cache_dir=None, progress=False, metrics="flicker,temporal_ssim")
    assert only.rows[0]["success"] and only.rows[0]["model"] == ""


def test_summary_records_the_device_dtype_and_threads_that_ran(tiny_clip_dir: Path, tmp_path: Path) -> None:
    make_image(tmp_path / "a.png")
    run = gencritic.score(tmp_path / "a.png", prompt="a red square", out=tmp_path / "out", model=str(tiny_clip_dir),
                          cache_dir=None, progress=False)  # device and dtype: auto
    settings = loads_strict((tmp_path / "out" / "summary.json").read_text())["settings"]
    expected = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    assert settings["device"] == expected and settings["device"] != "auto"
    assert settings["dtype"] == ("fp16" if expected.startswith("cuda") else "fp32")
    assert settings["torch_threads"] == torch.get_num_threads()
    assert settings["requested"] == {"device": "auto", "dtype": "auto"}
    assert run.summary["settings"] == settings


# -- item 6: permissions follow the umask -------------------------------------------------------


@pytest.mark.parametrize("umask,expected", [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_follow_the_umask(umask: int, expected: int, tiny_clip_dir: Path, tmp_path: Path) -> None:
    from gencritic.remote.keys import store_key
    from gencritic.report.builder import build_report

    make_image(tmp_path / "imgs" / "a.png")
    old = os.umask(umask)
    try:
        out = tmp_path / "out"
        gencritic.score(tmp_path / "imgs", prompt="a red square", out=out, model=str(tiny_clip_dir), cache_dir=None,
                        progress=False, formats=["csv", "jsonl", "parquet"])
        written = [out / f for f in ("results.csv", "views.csv", "summary.json", "results.jsonl", "results.parquet",
                                     ".gencritic/run.json", ".gencritic/journal.jsonl")]
        build_report(out, tmp_path / "report.html")
        written.append(tmp_path / "report.html")
        atomic_write_text(tmp_path / "plain.txt", "x")
        written.append(tmp_path / "plain.txt")
        key = store_key("sk-test", tmp_path / "cfg" / "csm_api_key")
    finally:
        os.umask(old)
    assert {str(p.relative_to(tmp_path)): oct(_mode(p)) for p in written} == \
        {str(p.relative_to(tmp_path)): oct(expected) for p in written}
    assert _mode(key) == SECRET_MODE  # the secret stays the owner's
    assert not list(tmp_path.rglob("*.tmp"))  # no temporaries left behind


def test_toys4k_files_follow_the_umask(tiny_clip_dir: Path, tmp_path: Path, umask_022: None) -> None:
    from gencritic.datasets.toys4k import Toys4kOptions, run_toys4k
    from tests.test_render import coloured_sphere

    root = tmp_path / "toys4k"
    (root / "ball" / "ball_001").mkdir(parents=True)
    coloured_sphere().export(root / "ball" / "ball_001" / "ball_001.glb")
    metadata = tmp_path / "metadata.csv"
    metadata.write_text("sha256,file_identifier,aesthetic_score,captions\n"
                        f"{'b' * 64},ball/ball_001/ball_001.blend,4.5,\"[\"\"a ball\"\"]\"\n")
    result = run_toys4k(metadata, root, tmp_path / "out", Toys4kOptions(
        model=str(tiny_clip_dir), device="cpu", resolution=32, cache_dir=None, progress=False))
    assert result.results_csv is not None and result.summary_json is not None
    for path in (result.results_csv, result.summary_json, tmp_path / "out" / "scoring" / "results.csv"):
        assert _mode(path) == 0o644, path
    loads_strict(result.summary_json.read_text())


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    from gencritic.atomic import atomic_open

    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half")
        raise RuntimeError("disk on fire")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]
