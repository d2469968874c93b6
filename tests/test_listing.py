"""One folder listing for every entry point: frames in natural order (the same flicker from
``score``, ``temporal``, ``diagnose``, report, the service and MCP), one bad entry a failed row
naming it, and file names that are not UTF-8 surviving the journal, CSV and JSON."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from gencritic.cli.main import app
from gencritic.errors import InputError
from tests.conftest import make_image

N_FRAMES = 13
ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The console script as users run it (exit codes, and printing to a real pipe)."""
    return subprocess.run([sys.executable, "-m", "gencritic.cli.main", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def _strict_json(text: str) -> Any:
    """json.loads that refuses NaN/Infinity, as strict parsers (JavaScript, jq) do."""
    def refuse(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def _hand_flicker(levels: list[int]) -> float:
    """Flicker of uniform grey frames by hand: mean luma m = level/255 (Rec.709 weights sum to 1),
    100 * RMS(second difference of m) / 4."""
    m = np.asarray(levels, dtype=np.float64) / 255.0
    d2 = m[2:] - 2 * m[1:-1] + m[:-2]
    return float(100.0 * np.sqrt(np.mean((d2 / 4.0) ** 2)))


def _write_frames(folder: Path, names: list[str], levels: list[int]) -> None:
    """Uniform grey frames, written in a shuffled order (directory order must not matter)."""
    folder.mkdir(parents=True)
    order = list(range(len(names)))
    random.Random(7).shuffle(order)
    for i in order:
        Image.fromarray(np.full((24, 24, 3), levels[i], np.uint8)).save(folder / names[i])


# Names in the order the frames were made, for each way people name frames.
SCHEMES = {
    "plain": [f"f{i}.png" for i in range(N_FRAMES)],  # lexicographic: f0 f1 f10 f11 f12 f2 ...
    "zero_padded": [f"frame_{i:04d}.png" for i in range(N_FRAMES)],
    "mixed_padding": [f"f{i:0{1 + i % 3}d}.png" for i in range(N_FRAMES)],  # f0 f01 f002 f3 f04 ...
    "mixed_case": [f"{'Ff'[i % 2]}rame{i}.PNG" if i % 3 == 0 else f"{'fF'[i % 2]}rame{i}.png"
                   for i in range(N_FRAMES)],
    "numbers_inside": [f"shot2_take{i}_cam10.png" for i in range(N_FRAMES)],
}


def test_natural_key_orders_names_as_people_number_them() -> None:
    from gencritic.io.listing import natural_key

    # superscript digits and non-UTF-8 names (lone surrogates) sort without raising
    expected = ["a3", "A10", "b2", "caf\udce9", "f", "f1", "f002", "f10", "shot2_take2_cam2", "shot2_take2_cam10",
                "shot2_take10_cam2", "x²"]
    assert sorted(expected[::-1], key=natural_key) == expected
    assert sorted(["f01", "f1", "F1"], key=natural_key) == ["F1", "f01", "f1"]  # ties: the name, total order


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_frame_order_is_the_same_in_score_temporal_diagnose_and_report(scheme: str, tmp_path: Path) -> None:
    """A sequence whose frames vary (seeded), named as people name frames: every entry point reads
    the frames in the order they were numbered, so each gives the hand-computed flicker."""
    from gencritic.diagnose.api import diagnose
    from gencritic.diagnose.temporal_report import temporal_analysis
    from gencritic.report.data import load_results
    from gencritic.report.thumbs import media_for
    from gencritic.scoring import ScoreOptions, score

    names = SCHEMES[scheme]
    levels = [int(v) for v in np.random.default_rng(3).integers(20, 235, N_FRAMES)]
    seq = tmp_path / "clips" / "seq"
    _write_frames(seq, names, levels)
    expected = _hand_flicker(levels)
    key_name = names[int(np.argmax(levels))]

    run = score(tmp_path / "clips", out=tmp_path / "out", options=ScoreOptions(
        metrics=["flicker"], cache_dir=None, progress=False, device="cpu"))
    assert run.rows[0]["flicker_index"] == pytest.approx(expected, rel=1e-9)
    views = [v["view"] for v in run.view_rows if v["metric"] == "flicker_index"]
    assert views == [Path(n).stem for n in names]

    summary, rows = temporal_analysis(seq, flow=False)
    assert summary["flicker_index"] == pytest.approx(expected, rel=1e-6)
    assert [r["name"] for r in rows] == names

    result = diagnose(seq)
    assert result["sequence"]["summary"]["flicker_index"] == pytest.approx(expected, rel=1e-6)
    assert result["sequence"]["key_frame_name"] == key_name

    data = load_results(tmp_path / "out")
    pictures = media_for(data, data.rows[0], None, None, False, {})
    assert [p.name for p in pictures] == names


def test_ramp_f0_to_f12_score_and_temporal_agree(tmp_path: Path) -> None:
    """The issue's case: a smooth ramp f0..f12 gave flicker 6.82 from `score` and 0.0 from `temporal`."""
    levels = [30 + 15 * i for i in range(N_FRAMES)]
    _write_frames(tmp_path / "clips" / "ramp", [f"f{i}.png" for i in range(N_FRAMES)], levels)
    runner = CliRunner()
    res = runner.invoke(app, ["score", str(tmp_path / "clips"), "--metrics", "flicker,temporal_ssim",
                              "--out", str(tmp_path / "out"), "--no-cache", "-q", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "out" / "results.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    res = runner.invoke(app, ["temporal", str(tmp_path / "clips" / "ramp"), "--out", str(tmp_path / "t"),
                              "--no-flow"])
    assert res.exit_code == 0, res.output
    temporal = json.loads(res.stdout)
    assert _hand_flicker(levels) == pytest.approx(0.0, abs=1e-12)
    assert float(row["flicker_index"]) == pytest.approx(0.0, abs=1e-9)
    assert temporal["flicker_index"] == pytest.approx(float(row["flicker_index"]), abs=1e-9)
    assert temporal["temporal_ssim"] == pytest.approx(float(row["temporal_ssim"]), abs=1e-6)


def test_service_and_mcp_read_frames_in_natural_order(tiny_clip_dir: Path, tmp_path: Path) -> None:
    """The HTTP service (/v1/score/asset, /v1/diagnose) and the MCP tool over the same folder."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from gencritic.serve.http import create_app
    from gencritic.serve.service import ScoringService, ServiceConfig

    names = SCHEMES["plain"]
    levels = [int(v) for v in np.random.default_rng(5).integers(20, 235, N_FRAMES)]
    _write_frames(tmp_path / "seq", names, levels)
    expected = _hand_flicker(levels)
    svc = ScoringService(ServiceConfig(model=str(tiny_clip_dir), device="cpu", dtype="fp32", roots=[tmp_path]))
    try:
        client = TestClient(create_app(svc), client=("127.0.0.1", 50000))
        resp = client.post("/v1/score/asset", json={"path": "seq", "prompt": "a fire", "metrics": "flicker"})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["scores"]["flicker_index"] == pytest.approx(expected, rel=1e-9)
        assert [v["view"] for v in body["views"]] == [Path(n).stem for n in names]
        resp = client.post("/v1/diagnose", data={"path": "seq"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["sequence"]["summary"]["flicker_index"] == pytest.approx(expected, rel=1e-6)

        pytest.importorskip("mcp")
        from gencritic.serve.mcp_server import build_mcp

        mcp = build_mcp(svc)
        result = asyncio.run(mcp.call_tool("evaluate_asset", {"path": "seq", "prompt": "a fire",
                                                              "metrics": "flicker"}))
        assert not result.is_error, result.content
        tool_body = json.loads(result.content[0].text)
        assert tool_body["scores"]["flicker_index"] == pytest.approx(expected, rel=1e-9)

        # frames named with bytes that are not UTF-8: answered (names as \xNN text), not a 500
        odd = [os.fsdecode(b"f%d-\xe9.png" % i) for i in range(4)]
        _write_frames(tmp_path / "odd", odd, levels[:4])
        resp = client.post("/v1/score/asset", json={"path": "odd", "prompt": "a fire", "metrics": "flicker"})
        assert resp.status_code == 200, resp.text
        assert [v["view"] for v in resp.json()["views"]] == [f"f{i}-\\xe9" for i in range(4)]
        assert resp.json()["scores"]["flicker_index"] == pytest.approx(_hand_flicker(levels[:4]), rel=1e-9)
        resp = client.post("/v1/diagnose", data={"path": "odd"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["sequence"]["key_frame_name"] == f"f{int(np.argmax(levels[:4]))}-\\xe9.png"
        result = asyncio.run(mcp.call_tool("diagnose", {"path": "odd"}))
        assert not result.is_error, result.content
    finally:
        svc.close()


# -- one bad entry is one failed row ------------------------------------------------------------


def _png(path: Path, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(path)
    return path.read_bytes()


def _awkward_folder(root: Path) -> dict[str, bytes]:
    """Good images (two with non-UTF-8 names) beside a symlink loop, a broken link, a FIFO named
    like an image, and a sub-folder whose link leads back up. Returns good name -> bytes."""
    root.mkdir()
    good = {name: _png(root / name, i) for i, name in enumerate(["a.png", "b.png", "c.png"])}
    for raw in (b"caf\xe9.png", b"\xff\xfe-latin1-\xe0.png"):
        path = Path(os.fsdecode(os.fsencode(root) + b"/" + raw))
        path.write_bytes(good["a.png"])
        good[path.name] = good["a.png"]
    os.symlink("loop.png", root / "loop.png")
    os.symlink("nowhere.png", root / "broken.png")
    os.mkfifo(root / "pipe.png")
    (root / "nested").mkdir()
    _png(root / "nested" / "inner.png", 9)
    (root / "nested" / "notes.md").write_text("not a views folder: it holds a note")
    os.symlink("..", root / "nested" / "up")
    good["nested/inner.png"] = (root / "nested" / "inner.png").read_bytes()
    return good


def test_bad_entries_become_failed_rows_and_odd_names_round_trip(tiny_clip_dir: Path, tmp_path: Path) -> None:
    good = _awkward_folder(tmp_path / "in")
    out = tmp_path / "out"
    args = ["score", str(tmp_path / "in"), "--prompt", "a picture", "--model", str(tiny_clip_dir), "--out", str(out),
            "--no-cache", "-q", "--device", "cpu", "--dtype", "fp32", "--format", "jsonl"]
    res = _cli(*args)
    assert res.returncode == 0, res.stderr

    # results.csv: the names as their bytes (surrogateescape), every entry a row
    with open(out / "results.csv", newline="", encoding="utf-8", errors="surrogateescape") as fh:
        rows = {r["item_id"]: r for r in csv.DictReader(fh)}
    failed = {"loop.png": "symbolic link loop", "broken.png": "broken symbolic link", "pipe.png": "a FIFO",
              "nested/up": "symbolic link loop"}
    assert set(rows) == set(good) | set(failed)
    for name, reason in failed.items():
        assert rows[name]["success"] == "false" and reason in rows[name]["error"] and name in rows[name]["error"]
    for name in good:
        assert rows[name]["success"] == "true", (name, rows[name]["error"])
        assert (tmp_path / "in" / name).read_bytes() == good[name]  # the name read back opens the file
    assert {os.fsencode(n) for n in good} >= {b"caf\xe9.png", b"\xff\xfe-latin1-\xe0.png"}
    # same bytes, same score: the odd names were scored like the file they copy
    assert float(rows["caf\udce9.png"]["clip_score"]) == pytest.approx(float(rows["a.png"]["clip_score"]), abs=1e-7)

    # journal and results.jsonl: valid UTF-8 JSON whose strings are the same names
    journal = (out / ".gencritic" / "journal.jsonl").read_bytes().decode("utf-8")
    assert {_strict_json(line)["item"]["item_id"] for line in journal.splitlines()} == set(rows)
    jsonl = (out / "results.jsonl").read_bytes().decode("utf-8")
    assert {json.loads(line)["item_id"] for line in jsonl.splitlines()} == set(rows)
    _strict_json((out / "summary.json").read_text(encoding="utf-8"))

    # a second run resumes every item: the journal's names match the folder's names exactly
    res = _cli(*args)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "summary.json").read_text())["resumed_items"] == len(rows)


def test_unlistable_subfolder_is_a_failed_row(tiny_clip_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A sub-folder that cannot be listed (EACCES; simulated, since tests may run as root)."""
    import gencritic

    make_image(tmp_path / "in" / "ok.png")
    make_image(tmp_path / "in" / "locked" / "x.png")
    real_scandir, real_listdir = os.scandir, os.listdir

    def refuse(real: Any) -> Any:
        def listing(path: Any = ".") -> Any:
            if Path(path).name == "locked":
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)
        return listing

    monkeypatch.setattr(os, "scandir", refuse(real_scandir))
    monkeypatch.setattr(os, "listdir", refuse(real_listdir))
    run = gencritic.score(tmp_path / "in", prompt="red", model=str(tiny_clip_dir), cache_dir=None, progress=False,
                          device="cpu")
    by_id = {r["item_id"]: r for r in run.rows}
    assert by_id["ok.png"]["success"] is True
    assert by_id["locked"]["success"] is False and "Permission denied" in by_id["locked"]["error"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_subfolder_for_real(tiny_clip_dir: Path, tmp_path: Path) -> None:
    import gencritic

    make_image(tmp_path / "in" / "ok.png")
    make_image(tmp_path / "in" / "locked" / "x.png")
    (tmp_path / "in" / "locked").chmod(0)
    try:
        run = gencritic.score(tmp_path / "in", prompt="red", model=str(tiny_clip_dir), cache_dir=None,
                              progress=False, device="cpu")
    finally:
        (tmp_path / "in" / "locked").chmod(0o755)
    by_id = {r["item_id"]: r for r in run.rows}
    assert by_id["ok.png"]["success"] is True and by_id["locked"]["success"] is False


def test_a_bad_frame_is_named_not_dropped(tmp_path: Path) -> None:
    """A frame that cannot be read: `temporal` refuses naming it (exit 2), `score` fails that
    sequence's row naming it; leaving it out would change every temporal number silently."""
    levels = [40 + 10 * i for i in range(6)]
    _write_frames(tmp_path / "clips" / "seq", [f"f{i}.png" for i in range(6)], levels)
    (tmp_path / "clips" / "seq" / "f3.png").unlink()
    os.symlink("gone.png", tmp_path / "clips" / "seq" / "f3.png")
    _write_frames(tmp_path / "clips" / "other", [f"f{i}.png" for i in range(6)], levels)
    runner = CliRunner()
    res = runner.invoke(app, ["temporal", str(tmp_path / "clips" / "seq"), "--out", str(tmp_path / "t"), "--no-flow"])
    assert isinstance(res.exception, InputError)  # the console script prints it as one line, exit 2
    assert "f3.png: broken symbolic link" in str(res.exception)
    res = runner.invoke(app, ["score", str(tmp_path / "clips"), "--metrics", "flicker", "--out", str(tmp_path / "o"),
                              "--no-cache", "-q", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "o" / "results.csv", newline="") as fh:
        rows = {r["item_id"]: r for r in csv.DictReader(fh)}
    assert rows["seq"]["success"] == "false" and "f3.png: broken symbolic link" in rows["seq"]["error"]
    assert float(rows["other"]["flicker_index"]) == pytest.approx(_hand_flicker(levels), abs=1e-9)


def test_odd_frame_names_survive_temporal_and_diagnose_outputs(tmp_path: Path) -> None:
    levels = [40, 80, 60, 120, 90]
    seq = tmp_path / "seq"
    raw_names = [b"f%d-\xe9.png" % i for i in range(len(levels))]
    _write_frames(seq, [os.fsdecode(n) for n in raw_names], levels)
    runner = CliRunner()
    res = runner.invoke(app, ["temporal", str(seq), "--out", str(tmp_path / "t"), "--no-flow"])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "t" / "curves.csv", newline="", encoding="utf-8", errors="surrogateescape") as fh:
        assert [os.fsencode(r["name"]) for r in csv.DictReader(fh)] == raw_names
    res = runner.invoke(app, ["diagnose", str(seq), "--out", str(tmp_path / "d.json")])
    assert res.exit_code == 0, res.output
    body = _strict_json((tmp_path / "d.json").read_bytes().decode("utf-8"))
    assert os.fsencode(body["sequence"]["key_frame_name"]) == raw_names[int(np.argmax(levels))]


def test_walk_and_list_never_raise(tmp_path: Path) -> None:
    from gencritic.io.listing import list_folder, walk_files

    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "f10.png").write_bytes(b"x")
    (tmp_path / "d" / "f9.png").write_bytes(b"x")
    (tmp_path / "d" / ".hidden.png").write_bytes(b"x")
    (tmp_path / "d" / "sub" / "g.png").write_bytes(b"x")
    os.symlink("..", tmp_path / "d" / "sub" / "back")
    os.symlink("loop", tmp_path / "d" / "loop")
    listing = list_folder(tmp_path / "d", {".png"}, folders=True)
    assert [p.name for p in listing.files] == ["f9.png", "f10.png"]
    assert [p.name for p in listing.folders] == ["sub"]
    assert [b.path.name for b in listing.bad] == ["loop"]  # no suffix: could have been a folder
    walked = walk_files(tmp_path / "d", {".png"})
    assert [p.relative_to(tmp_path / "d").as_posix() for p in walked.files] == ["f9.png", "f10.png", "sub/g.png"]
    assert sorted(b.describe(tmp_path / "d") for b in walked.bad)[1].startswith("sub/back: symbolic link loop")


def test_render_reports_an_unreadable_asset_and_draws_the_others(tmp_path: Path) -> None:
    from tests.report_helpers import CUBE_OBJ

    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "cube.obj").write_text(CUBE_OBJ)
    os.symlink("gone.glb", tmp_path / "assets" / "broken.glb")
    res = CliRunner().invoke(app, ["render", str(tmp_path / "assets"), "--out", str(tmp_path / "views"),
                                   "--resolution", "32", "--rig", "orbit4", "--no-cache"])
    assert res.exit_code == 1  # an asset failed: reported, and the command says so
    assert "rendered 1/2 assets" in res.output
    assert "broken.glb: error:" in res.output and "broken symbolic link" in res.output
    assert len(list((tmp_path / "views" / "cube").glob("*.png"))) == 4


def test_unreadable_prompt_file_fails_its_item_only(tiny_clip_dir: Path, tmp_path: Path) -> None:
    """A sidecar prompt that is not UTF-8 raised UnicodeDecodeError while listing: every item lost."""
    import gencritic

    make_image(tmp_path / "in" / "a.png")
    make_image(tmp_path / "in" / "b.png")
    (tmp_path / "in" / "a.txt").write_bytes(b"caf\xe9 au lait")
    (tmp_path / "in" / "b.txt").write_text("a red square")
    run = gencritic.score(tmp_path / "in", model=str(tiny_clip_dir), cache_dir=None, progress=False, device="cpu")
    by_id = {r["item_id"]: r for r in run.rows}
    assert by_id["b.png"]["success"] is True
    assert by_id["a.png"]["success"] is False and "a.txt cannot be read" in by_id["a.png"]["error"]
