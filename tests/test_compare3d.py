"""``gencritic compare3d``: pairing, failed rows, resume, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from tests.test_geometry import box, compare, export, gencritic


@pytest.fixture()
def two_folders(tmp_path: Path) -> tuple[Path, Path]:
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    (gen / "toys").mkdir(parents=True)
    (ref / "toys").mkdir(parents=True)
    sphere = trimesh.creation.icosphere(2)
    export(sphere.vertices, sphere.faces, gen / "ball.ply")
    box((0, 0, 0), (1, 1, 1)).export(ref / "ball.obj")  # same name, other format: paired
    box((0, 0, 0), (1, 2, 1)).export(gen / "toys" / "brick.glb")
    box((0, 0, 0), (1, 2, 1.1)).export(ref / "toys" / "brick.stl")
    (gen / "broken.obj").write_text("v 0 0 0\nf 1 2 3\n")
    box((0, 0, 0), (1, 1, 1)).export(ref / "broken.obj")
    np.savez(gen / "cloud.npz", points=np.random.default_rng(0).random((100, 3)))
    box((0, 0, 0), (1, 1, 1)).export(ref / "cloud.ply")
    box((0, 0, 0), (1, 1, 1)).export(ref / "never_made.ply")
    (gen / "ghost.glb").symlink_to(tmp_path / "nowhere.glb")  # a broken link: its own failed row
    box((0, 0, 0), (1, 1, 1)).export(ref / "ghost.ply")
    return gen, ref


def test_folders_pair_by_name_and_every_failure_is_its_own_row(two_folders: tuple[Path, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    gen, ref = two_folders
    rows = compare([str(gen), str(ref), "--samples", "2000"], tmp_path / "out", monkeypatch, capsys)
    assert list(rows) == ["ball", "broken", "cloud", "ghost", "never_made", "toys/brick"]
    assert rows["ghost"]["success"] == "false" and rows["ghost"]["error"].startswith("generated ghost.glb: ")
    assert rows["ball"]["success"] == "true" and rows["ball"]["reference"].endswith("ball.obj")
    assert rows["toys/brick"]["success"] == "true" and float(rows["toys/brick"]["volume_iou"]) > 0.8
    assert rows["broken"]["success"] == "false" and rows["broken"]["error"].startswith("geometry: ")
    assert rows["cloud"]["success"] == "false" and "no triangles" in rows["cloud"]["error"]
    assert rows["never_made"]["success"] == "false" and "no generated asset" in rows["never_made"]["error"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(),
                         parse_constant=lambda token: pytest.fail(f"non-strict JSON token {token}"))
    assert summary["pairs"] == 6 and summary["successes"] == 2
    assert summary["metrics"]["chamfer_l1"]["count"] == 2
    assert summary["settings"]["geometry"]["fscore_tau"] == 0.1 and summary["settings"]["geometry"]["align"] == "none"


def test_a_rerun_resumes_and_writes_the_same_bytes(two_folders: tuple[Path, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    gen, ref = two_folders
    out = tmp_path / "out"
    compare([str(gen), str(ref), "--samples", "2000"], out, monkeypatch, capsys)
    first = (out / "results.csv").read_bytes()
    journal = (out / ".gencritic" / "journal.jsonl").read_text().splitlines()
    (gen / "ball.ply").write_text("not a mesh any more")  # a finished pair is not measured again
    compare([str(gen), str(ref), "--samples", "2000"], out, monkeypatch, capsys)
    assert (out / "results.csv").read_bytes() == first
    assert (out / ".gencritic" / "journal.jsonl").read_text().splitlines() == journal
    code, err = gencritic(["compare3d", str(gen), str(ref), "--out", str(out), "--geometry-only", "--samples", "3000"],
                          monkeypatch, capsys)
    assert code == 2 and len(err) == 1 and "other settings" in err[0]


def test_manifest_pairs_carry_their_columns_and_bad_manifests_are_one_line(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    box((0, 0, 0), (1, 1, 1)).export(tmp_path / "a.ply")
    box((0, 0, 0), (1, 1, 2)).export(tmp_path / "b.ply")
    manifest = tmp_path / "pairs.csv"
    manifest.write_text("generated,reference,method\na.ply,b.ply,ours\na.ply,a.ply,ours\n")
    rows = compare([str(manifest), "--samples", "2000"], tmp_path / "out", monkeypatch, capsys)
    assert list(rows) == ["a.ply", "a.ply#1"]
    assert rows["a.ply"]["method"] == "ours" and float(rows["a.ply#1"]["chamfer_l1"]) == 0.0
    assert float(rows["a.ply"]["chamfer_l1"]) > 0
    bad = tmp_path / "bad.csv"
    bad.write_text("mesh,target\na.ply,b.ply\n")
    code, err = gencritic(["compare3d", str(bad), "--out", str(tmp_path / "o2"), "--geometry-only"], monkeypatch, capsys)
    assert code == 2 and len(err) == 1 and "'generated' and 'reference'" in err[0] and "mesh, target" in err[0]
    code, err = gencritic(["compare3d", str(manifest), str(tmp_path / "a.ply"), "--out", str(tmp_path / "o3"),
                           "--geometry-only"], monkeypatch, capsys)
    assert code == 2 and len(err) == 1 and "manifest" in err[0]


def test_two_assets_of_one_name_in_a_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    box((0, 0, 0), (1, 1, 1)).export(gen / "a.ply")
    box((0, 0, 0), (1, 1, 1)).export(gen / "a.obj")
    box((0, 0, 0), (1, 1, 1)).export(ref / "a.ply")
    code, err = gencritic(["compare3d", str(gen), str(ref), "--out", str(tmp_path / "o"), "--geometry-only"],
                          monkeypatch, capsys)
    assert code == 2 and len(err) == 1 and "two assets named 'a'" in err[0]
