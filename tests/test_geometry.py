"""Geometry between a generated and a reference asset (``gencritic compare3d --geometry-only``):
numbers equal independent computations, and behave as they must on real meshes."""

from __future__ import annotations

import csv
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from tests.conftest import shared_data
from tests.geometry_refs import (
    grid_centres,
    normalised_triangles,
    reference_metrics,
    trimesh_samples,
    winding_numbers,
)

METRICS = ("chamfer_l1", "chamfer_l2sq", "dist_gen_to_ref", "dist_ref_to_gen", "fscore", "precision", "recall",
           "normal_consistency")


def gencritic(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
              ) -> tuple[int, list[str]]:
    """Run the console script in-process: (exit status, non-empty stderr lines)."""
    from gencritic.cli.main import main

    monkeypatch.setattr(sys, "argv", ["gencritic", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    code = exc.value.code if isinstance(exc.value.code, int) else (0 if exc.value.code is None else 1)
    return code, [line for line in err.splitlines() if line.strip()]


def read_rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "results.csv", newline="") as fh:
        return {row["pair_id"]: row for row in csv.DictReader(fh)}


def compare(argv: list[str], out: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, str]]:
    code, err = gencritic(["compare3d", *argv, "--out", str(out), "--geometry-only", "-q"], monkeypatch, capsys)
    assert code == 0, err
    return read_rows(out)


def export(vertices: np.ndarray, faces: np.ndarray, path: Path) -> Path:
    trimesh.Trimesh(vertices, faces, process=False).export(path)
    return path


def box(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=np.subtract(hi, lo))
    mesh.apply_translation(np.add(lo, hi) / 2)
    return mesh


# -- equal to independent computations ----------------------------------------------------------------


def test_metrics_equal_ckdtree_on_trimesh_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The samples are trimesh's sample_surface with the seed; every number equals cKDTree's on them."""
    sphere = trimesh.creation.icosphere(3)
    bumpy = trimesh.Trimesh(sphere.vertices * (1 + 0.1 * np.sin(5 * sphere.vertices[:, :1])), sphere.faces)
    gen = export(bumpy.vertices, bumpy.faces, tmp_path / "gen.ply")
    ref = tmp_path / "ref.obj"
    box((0, 0, 0), (1.0, 0.7, 0.9)).export(ref)
    rows = compare([str(gen), str(ref), "--samples", "20000", "--seed", "7", "--fscore-tau", "0.05"],
                   tmp_path / "out", monkeypatch, capsys)
    row = rows["gen"]
    expected = reference_metrics(trimesh_samples(*normalised_triangles(gen), 20000, 7),
                                 trimesh_samples(*normalised_triangles(ref), 20000, 7), 0.05)
    for name in METRICS:
        assert float(row[name]) == pytest.approx(expected[name], abs=1e-6, rel=0), name
    assert float(row["chamfer_l1"]) > 0.01  # a real difference, not two empty sets


def test_metrics_equal_brute_force_on_small_meshes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "gen").mkdir()
    (tmp_path / "ref").mkdir()
    gen = export(*_tetra(0.0), tmp_path / "gen" / "a.ply")
    ref = export(*_tetra(0.3), tmp_path / "ref" / "a.ply")
    rows = compare([str(tmp_path / "gen"), str(tmp_path / "ref"), "--samples", "400", "--fscore-tau", "0.02"],
                   tmp_path / "out", monkeypatch, capsys)
    expected = reference_metrics(trimesh_samples(*normalised_triangles(gen), 400, 0),
                                 trimesh_samples(*normalised_triangles(ref), 400, 0), 0.02, brute=True)
    for name in METRICS:
        assert float(rows["a"][name]) == pytest.approx(expected[name], abs=1e-6, rel=0), name


def _tetra(twist: float) -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    v[3] += [twist, twist / 2, 0]
    return v, np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def test_volume_iou_equals_winding_number_occupancy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """IoU over the documented grid equals the one from generalised winding numbers at its centres."""
    a = trimesh.creation.icosphere(2)
    b = trimesh.creation.capsule(height=1.2, radius=0.5, count=[12, 12])
    gen = export(a.vertices * [1.0, 0.6, 0.8], a.faces, tmp_path / "gen.ply")
    ref = export(b.vertices, b.faces, tmp_path / "ref.ply")
    row = compare([str(gen), str(ref), "--samples", "1000", "--iou-resolution", "20"], tmp_path / "out",
                  monkeypatch, capsys)["gen"]
    gv, gf = normalised_triangles(gen)
    rv, rf = normalised_triangles(ref)
    centres = grid_centres([gv, rv], 20).reshape(-1, 3)
    inside_g = winding_numbers(centres, gv, gf) > 0.5
    inside_r = winding_numbers(centres, rv, rf) > 0.5
    expected = (inside_g & inside_r).sum() / (inside_g | inside_r).sum()
    assert float(row["volume_iou"]) == pytest.approx(expected, abs=1e-12)
    assert 0.3 < expected < 0.95


def test_volume_iou_is_exact_where_rays_graze_shared_edges() -> None:
    """Boxes whose faces fall on cell boundaries: the IoU is the analytic 1/3 although every ray
    of a row runs through the boxes' shared edges and vertices (the tie rule counts them once)."""
    from gencritic.geometry.iou import grid_around, occupancy, volume_iou

    a, b = box((0, 0, 0), (2, 1, 1)), box((1, 0, 0), (3, 1, 1))
    assert volume_iou(a.vertices, a.faces, b.vertices, b.faces, 30)[0] == pytest.approx(1 / 3, abs=1e-15)
    # an octahedron with its vertices on ray rows: the filled cells are exactly those strictly inside
    octa = trimesh.Trimesh(
        [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
        [[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    grid = grid_around([octa.vertices], 9)
    centres = grid.origin + (np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), -1) + 0.5) * grid.step
    l1 = np.abs(centres).sum(axis=-1)
    assert np.all(occupancy(octa.vertices, octa.faces, grid)[l1 < 1 - 1e-9])
    assert not np.any(occupancy(octa.vertices, octa.faces, grid)[l1 > 1 + 1e-9])


def test_volume_iou_of_an_open_mesh_is_nan_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    closed = box((0, 0, 0), (1, 1, 1))
    opened = trimesh.Trimesh(closed.vertices, closed.faces[1:], process=False)
    export(opened.vertices, opened.faces, tmp_path / "gen.ply")
    export(closed.vertices, closed.faces, tmp_path / "ref.ply")
    row = compare([str(tmp_path / "gen.ply"), str(tmp_path / "ref.ply"), "--samples", "2000"], tmp_path / "out",
                  monkeypatch, capsys)["gen"]
    assert row["success"] == "true" and row["volume_iou"] == ""
    assert row["volume_iou_note"] == "generated not watertight (3 boundary edges)"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["metrics"]["volume_iou"] == {"count": 0, "mean": None, "std": None, "median": None, "min": None,
                                                "max": None}


# -- behaviour on real meshes -------------------------------------------------------------------------

REAL = ("bunny.ply", "Duck.glb", "fandisk.obj", "rabbit.obj", "featuretype.ply")  # no symmetry to confuse a pose
WATERTIGHT = {"Duck.glb", "fandisk.obj", "rabbit.obj", "featuretype.ply"}


@pytest.mark.shared_data
def test_a_real_mesh_against_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    folder = shared_data("meshes-small")
    manifest = tmp_path / "pairs.csv"
    manifest.write_text("generated,reference\n" + "".join(f"{folder / n},{folder / n}\n" for n in REAL))
    rows = compare([str(manifest), "--samples", "20000"], tmp_path / "out", monkeypatch, capsys)
    for name in REAL:
        row = rows[str(folder / name)]
        assert float(row["chamfer_l1"]) == 0.0 and float(row["chamfer_l2sq"]) == 0.0, name
        assert float(row["fscore"]) == 1.0 and float(row["normal_consistency"]) == pytest.approx(1.0, abs=1e-12)
        if name in WATERTIGHT:
            assert float(row["volume_iou"]) == 1.0, name
        else:
            assert row["volume_iou"] == "" and "not watertight" in row["volume_iou_note"]


def _rotated_copy(path: Path, out: Path, rotation: np.ndarray, shift: np.ndarray, noise: float = 0.0,
                  seed: int = 0) -> Path:
    """The asset's triangles (as gencritic loads them) moved rigidly, optionally with vertex noise."""
    vertices, faces = normalised_triangles(path)
    moved = vertices @ rotation.T + shift
    if noise:
        moved = moved + np.random.default_rng(seed).normal(scale=noise, size=moved.shape)
    return export(moved, faces, out)


ARBITRARY = Rotation.from_euler("xyz", [37.0, -21.0, 118.0], degrees=True).as_matrix()


@pytest.mark.shared_data
def test_search_alignment_recovers_an_arbitrary_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = shared_data("meshes-small")
    assert not any(np.allclose(ARBITRARY, r) for r in _axis_rotations())
    lines = ["generated,reference"]
    for name in REAL:
        copy = _rotated_copy(folder / name, tmp_path / f"{Path(name).stem}_rot.ply", ARBITRARY, np.array([0.04, -0.03, 0.02]))
        lines.append(f"{copy},{folder / name}")
    manifest = tmp_path / "pairs.csv"
    manifest.write_text("\n".join(lines) + "\n")
    common = [str(manifest), "--samples", "20000", "--fscore-tau", "0.01"]
    searched = compare([*common, "--align", "search"], tmp_path / "search", monkeypatch, capsys)
    unaligned = compare(common, tmp_path / "none", monkeypatch, capsys)
    for name in REAL:
        key = str(tmp_path / f"{Path(name).stem}_rot.ply")
        row = searched[key]
        assert float(row["chamfer_l1"]) < 1e-3 and float(row["chamfer_l2sq"]) < 1e-6, name
        assert float(row["fscore"]) > 0.999, name
        if name in WATERTIGHT:
            assert float(row["volume_iou"]) > 0.999, name
        matrix = np.array(json.loads(row["align_matrix"]))
        # the transform written is the one that undoes the rotation (up to the normalisations' scale)
        rotation = matrix[:3, :3] / float(row["align_scale"])
        assert np.allclose(rotation @ ARBITRARY, np.eye(3), atol=1e-6), name
        assert float(unaligned[key]["chamfer_l1"]) > 0.02  # without alignment the copy is far off


def _axis_rotations() -> list[np.ndarray]:
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            m[range(3), perm] = signs
            if np.linalg.det(m) > 0:
                out.append(m)
    return out


@pytest.mark.shared_data
def test_distances_grow_with_vertex_noise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = shared_data("meshes-small")
    levels = (0.001, 0.003, 0.01, 0.03)
    for name in ("bunny.ply", "Duck.glb"):
        lines = ["generated,reference,noise"]
        for level in levels:
            copy = _rotated_copy(folder / name, tmp_path / f"{Path(name).stem}_{level}.ply", np.eye(3), np.zeros(3),
                                 noise=level, seed=1)
            lines.append(f"{copy},{folder / name},{level}")
        manifest = tmp_path / f"{name}.csv"
        manifest.write_text("\n".join(lines) + "\n")
        rows = list(compare([str(manifest), "--samples", "20000", "--fscore-tau", "0.01"], tmp_path / name,
                            monkeypatch, capsys).values())
        assert [float(r["noise"]) for r in rows] == list(levels)
        for metric in ("chamfer_l1", "chamfer_l2sq", "dist_gen_to_ref", "dist_ref_to_gen"):
            values = [float(r[metric]) for r in rows]
            assert all(a < b for a, b in itertools.pairwise(values)), (name, metric, values)
        fscores = [float(r["fscore"]) for r in rows]
        assert all(a > b for a, b in itertools.pairwise(fscores)), (name, fscores)
        consistency = [float(r["normal_consistency"]) for r in rows]
        assert all(a > b for a, b in itertools.pairwise(consistency)), (name, consistency)


# -- units ---------------------------------------------------------------------------------------------


def test_samples_are_trimesh_sample_surface_bit_for_bit() -> None:
    from gencritic.geometry.sampling import sample_points

    mesh = trimesh.creation.torus(0.5, 0.2)
    points, faces = sample_points(np.asarray(mesh.vertices), np.asarray(mesh.faces), 5000, 11)
    expected, expected_faces = trimesh.sample.sample_surface(trimesh.Trimesh(mesh.vertices, mesh.faces,
                                                                             process=False), 5000, seed=11)
    assert np.array_equal(points, expected) and np.array_equal(faces, expected_faces)


def test_the_24_axis_rotations_and_umeyama() -> None:
    from gencritic.geometry.align import AXIS_ROTATIONS, umeyama

    assert len(AXIS_ROTATIONS) == 24 and np.allclose(AXIS_ROTATIONS[0], np.eye(3))
    assert len({tuple(r.astype(int).ravel()) for r in AXIS_ROTATIONS}) == 24
    assert all(np.isclose(np.linalg.det(r), 1) for r in AXIS_ROTATIONS)
    src = np.random.default_rng(0).normal(size=(50, 3))
    dst = 1.7 * src @ ARBITRARY.T + [0.3, -1, 2]
    t = umeyama(src, dst)
    assert np.allclose(t.rotation, ARBITRARY) and t.scale == pytest.approx(1.7) and np.allclose(t.apply(src), dst)


def test_bad_options_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    a = export(*_tetra(0.0), tmp_path / "a.ply")
    for extra, needle in ((["--fscore-tau", "0"], "--fscore-tau"), (["--align", "icp"], "--align"),
                          (["--samples", "0"], "--samples"), (["--iou-resolution", "4"], "--iou-resolution")):
        code, err = gencritic(["compare3d", str(a), str(a), "--out", str(tmp_path / "o"), "--geometry-only", *extra],
                              monkeypatch, capsys)
        assert code == 2 and len(err) == 1 and needle in err[0], (extra, err)
    # without --geometry-only the render-based columns need models: where one cannot load (here a
    # model folder that does not exist, so the test does not depend on what the machine has cached)
    # the run stops before any pair, its last line naming the way out
    code, err = gencritic(["compare3d", str(a), str(a), "--out", str(tmp_path / "o"),
                           "--model", str(tmp_path / "no-such-clip")], monkeypatch, capsys)
    assert code == 2 and "--geometry-only" in err[-1] and not (tmp_path / "o" / "results.csv").exists()
