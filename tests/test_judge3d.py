"""Pairwise 3D judging and its ratings (issue 21).

Ratings: the Bradley–Terry fit equals a scipy optimisation of the same likelihood, recovers known
strengths from synthetic matches, and its bootstrap resamples whole prompts. Judging: a fake
OpenAI-compatible judge that prefers the redder object ranks three generators (folders of views and
rendered meshes) in the known order from both seat orders; a tiny random Qwen2-VL runs the same
command locally and gives byte-identical leaderboards twice.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from scipy.optimize import minimize

from tests.fake_openai import FakeOpenAI, Reply
from tests.vlm_fixtures import build_tiny_qwen2_vl

# -- ratings ------------------------------------------------------------------------------------


def synthetic_matches(strengths: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pairs of winner, loser), prompt ids: random pairs, outcome drawn from σ(β_i − β_j)."""
    rng = np.random.default_rng(seed)
    k = len(strengths)
    i = rng.integers(0, k, n)
    j = (i + rng.integers(1, k, n)) % k
    i_wins = rng.random(n) < 1.0 / (1.0 + np.exp(-(strengths[i] - strengths[j])))
    pairs = np.stack([np.where(i_wins, i, j), np.where(i_wins, j, i)], axis=1)
    return pairs, rng.integers(0, 40, n)


def scipy_bt(k: int, pairs: np.ndarray, l2: float) -> np.ndarray:
    """The reference: the penalised Bradley–Terry negative log-likelihood minimised by scipy (BFGS)."""
    def nll(beta: np.ndarray) -> float:
        z = beta[pairs[:, 0]] - beta[pairs[:, 1]]
        return float(np.logaddexp(0.0, -z).sum() + 0.5 * l2 * beta @ beta)

    def grad(beta: np.ndarray) -> np.ndarray:
        z = beta[pairs[:, 0]] - beta[pairs[:, 1]]
        w = 1.0 / (1.0 + np.exp(z))
        g = l2 * beta
        np.subtract.at(g, pairs[:, 0], w)
        np.add.at(g, pairs[:, 1], w)
        return g

    return np.asarray(minimize(nll, np.zeros(k), jac=grad, method="BFGS", options={"gtol": 1e-12, "maxiter": 10000}).x)


def _matches(pairs: np.ndarray, groups: np.ndarray) -> list[Any]:
    from gencritic.judges.ratings import Match

    return [Match(int(w), int(lo), f"p{g}") for (w, lo), g in zip(pairs, groups, strict=True)]


def test_bradley_terry_equals_scipy_and_recovers_known_strengths() -> None:
    from gencritic.judges.ratings import DEFAULT_L2, bradley_terry, elo

    truth = np.array([-1.0, -0.3, 0.4, 0.9])
    pairs, groups = synthetic_matches(truth, 6000, seed=1)
    ours = bradley_terry(4, _matches(pairs, groups))
    assert np.abs(ours - scipy_bt(4, pairs, DEFAULT_L2)).max() < 1e-6
    assert abs(ours.sum()) < 1e-9  # the penalty centres the strengths
    assert np.abs(ours - (truth - truth.mean())).max() < 0.1
    # the unpenalised maximum-likelihood fit (scipy, strengths fixed at β_0 = 0) is reached as l2 -> 0
    free = minimize(lambda b: float(np.logaddexp(0.0, -(np.r_[0.0, b][pairs[:, 0]] - np.r_[0.0, b][pairs[:, 1]])).sum()),
                    np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    mle = np.r_[0.0, free] - np.r_[0.0, free].mean()
    assert np.abs(bradley_terry(4, _matches(pairs, groups), l2=1e-9) - mle).max() < 1e-4
    # Elo scale: 400 points apart = 10:1 odds
    a, b = elo(np.array([math.log(10.0), 0.0]))
    assert a - b == pytest.approx(400.0) and b == pytest.approx(1000.0)


def test_bootstrap_resamples_whole_prompts_and_is_seeded() -> None:
    from gencritic.judges.ratings import Match, bootstrap_strengths, rate

    # prompt A: player 0 wins 10 times; prompt B: player 1 wins 10 times. Resampling prompts can only
    # give three data sets (AA, AB, BB), so three distinct strengths; resampling matches would give many.
    matches = [Match(0, 1, "A")] * 10 + [Match(1, 0, "B")] * 10
    boots = bootstrap_strengths(2, matches, n_boot=200, seed=3)
    assert len(np.unique(np.round(boots[:, 0], 9))) == 3
    assert np.array_equal(boots, bootstrap_strengths(2, matches, n_boot=200, seed=3))
    board = rate(["x", "y"], matches, n_boot=200, seed=3)
    assert board[0].elo == pytest.approx(1000.0) and board[0].wins == 10 and board[0].matches == 20
    assert board[0].elo_ci is not None and board[0].elo_ci[0] < 1000.0 < board[0].elo_ci[1]
    tie = rate(["x", "y"], [Match(0, 1, "A", tie=True)], n_boot=0)
    assert tie[0].elo == pytest.approx(1000.0) and tie[0].ties == 1 and tie[0].elo_ci is None


# -- judging ------------------------------------------------------------------------------------


def redness(half: np.ndarray) -> float:
    """Mean R − B over coloured pixels (white background and the grey gap excluded)."""
    px = half.reshape(-1, 3).astype(float)
    coloured = (np.abs(px[:, 0] - px[:, 1]) > 12) | (np.abs(px[:, 1] - px[:, 2]) > 12)
    return float((px[coloured, 0] - px[coloured, 2]).mean()) if coloured.any() else -1e9


def redder_side(body: dict[str, Any]) -> Reply:
    """The fake judge: decodes the picture it was sent and prefers the redder half."""
    url = next(c["image_url"]["url"] for c in body["messages"][0]["content"] if c["type"] == "image_url")
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))
    mid = img.shape[1] // 2
    left_wins = redness(img[:, :mid]) > redness(img[:, mid:])
    return Reply("1" if left_wins else "2", [("1", -0.1), ("2", -2.4)] if left_wins else [("2", -0.1), ("1", -2.4)])


def views_folder(folder: Path, colour: tuple[int, int, int], n: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        arr = np.full((96, 96, 3), 255, np.uint8)
        s = 20 + 3 * k
        arr[s:96 - s, 30:66] = np.clip(np.array(colour) + rng.integers(-8, 8, 3), 0, 255)
        Image.fromarray(arr).save(folder / f"{k:03d}.png")
    return folder


def box_mesh(path: Path, colour: tuple[int, int, int]) -> Path:
    import trimesh

    mesh = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    mesh.visual.face_colors = [*colour, 255]
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(path)
    return path


@pytest.fixture()
def generators(tmp_path: Path) -> tuple[Path, Path, Path]:
    red, blue, meshes = tmp_path / "redgen", tmp_path / "bluegen", tmp_path / "meshgen"
    for k, pid in enumerate(("p1", "p2", "p3")):
        views_folder(red / pid, (220, 30, 30), seed=k)
        views_folder(blue / pid, (30, 40, 220), seed=10 + k)
    (red / "p1.txt").write_text("a red toy car")
    (blue / "p2" / "prompt.txt").write_text("a small chair")  # p3 has no prompt anywhere
    box_mesh(meshes / "p1.glb", (170, 90, 80))
    box_mesh(meshes / "p2.glb", (170, 90, 80))
    return red, blue, meshes


@pytest.fixture()
def judge_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeOpenAI]:
    monkeypatch.delenv("GENCRITIC_VLM_API_KEY", raising=False)
    monkeypatch.setenv("GENCRITIC_CACHE_DIR", str(tmp_path / "cache"))
    fake = FakeOpenAI(api_key=None, reply=redder_side).start()
    yield fake
    fake.stop()


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    from gencritic.cli.main import main

    monkeypatch.setattr(sys, "argv", ["gencritic", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code if isinstance(exc.value.code, int) else 1


def test_judge3d_ranks_generators_from_both_orders(generators: tuple[Path, Path, Path], judge_server: FakeOpenAI,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("moderngl")
    red, blue, meshes = generators
    out = tmp_path / "board"
    code = run_cli(["judge3d", str(red), str(blue), str(meshes), "--out", str(out), "--vlm",
                    f"{judge_server.url}#judge", "--criteria", "alignment,geometry", "--bootstrap", "200", "--quiet",
                    "--device", "cpu"], monkeypatch)
    assert code == 0, capsys.readouterr().err
    board = json.loads((out / "leaderboard.json").read_text())
    # p1, p2: 3 generators -> 3 pairs; p3: red and blue only. x 2 criteria x 2 orders
    assert board["matches"]["total"] == (3 + 3 + 1) * 2 * 2
    with open(out / "matches.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    failed = [r for r in rows if r["error"]]
    assert {(r["prompt_id"], r["criterion"]) for r in failed} == {("p3", "alignment")}
    assert all("no prompt text for 'p3'" in r["error"] for r in failed)
    assert board["matches"]["failed"] == 2 and board["matches"]["position_consistency"] == 1.0
    for criterion in ("alignment", "geometry", "overall"):
        assert [r["generator"] for r in board["ratings"][criterion]] == ["redgen", "meshgen", "bluegen"], criterion
    top = board["ratings"]["overall"][0]
    assert top["losses"] == 0 and top["elo_ci_low"] <= top["elo"] <= top["elo_ci_high"]
    # both seat orders were asked, and the question carries the prompt and the criterion
    prompts = [FakeOpenAI.prompt_of(p["body"]) for p in judge_server.posts()]
    assert sum('"a red toy car"' in p for p in prompts) == 3 * 2 * 2
    assert any("Which object matches the description better?" in p for p in prompts)
    seats = {(r["prompt_id"], r["criterion"], r["left"], r["right"]) for r in rows}
    assert ("p1", "geometry", "redgen", "bluegen") in seats and ("p1", "geometry", "bluegen", "redgen") in seats
    html = (out / "leaderboard.html").read_text()
    assert "redgen" in html and "Content-Security-Policy" in html and "NaN" not in html
    assert (out / "leaderboard.csv").read_text().splitlines()[0].startswith("criterion,rank,generator,elo")
    # a second run is answered from the answer cache
    sent = len(judge_server.posts())
    assert run_cli(["judge3d", str(red), str(blue), str(meshes), "--out", str(tmp_path / "again"), "--vlm",
                    f"{judge_server.url}#judge", "--criteria", "alignment,geometry", "--bootstrap", "200", "--quiet",
                    "--device", "cpu"], monkeypatch) == 0
    assert len(judge_server.posts()) == sent
    assert (tmp_path / "again" / "leaderboard.json").read_bytes() == (out / "leaderboard.json").read_bytes()


def test_judge3d_with_a_local_vlm_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    model = build_tiny_qwen2_vl(tmp_path / "tiny_qwen", max_pixels=28 * 28 * 64)
    gens = [tmp_path / "a", tmp_path / "b"]
    for g, colour in zip(gens, [(220, 30, 30), (30, 40, 220)], strict=True):
        for k, pid in enumerate(("x", "y")):
            views_folder(g / pid, colour, n=4, seed=k)
            (g / f"{pid}.txt").write_text(f"a toy number {k}")
    outs = []
    for n in range(2):
        out = tmp_path / f"board{n}"
        assert run_cli(["judge3d", *map(str, gens), "--out", str(out), "--vlm", str(model), "--no-cache", "--quiet",
                        "--device", "cpu", "--tile", "32", "--bootstrap", "50"], monkeypatch) == 0
        outs.append(out)
    capsys.readouterr()
    for name in ("leaderboard.json", "leaderboard.csv", "matches.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    board = json.loads((outs[0] / "leaderboard.json").read_text())
    assert board["matches"] == {**board["matches"], "total": 2 * 3 * 2, "failed": 0}
    with open(outs[0] / "matches.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            p_left, p_right = float(row["p_left"]), float(row["p_right"])
            assert 0 < p_left < 1 and 0 < p_right < 1
            assert row["winner"] == (row["left"] if p_left > p_right else row["right"])


def test_judge3d_refuses_bad_input_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    a = views_folder(tmp_path / "a" / "p1", (200, 0, 0)).parent
    b = views_folder(tmp_path / "b" / "p2", (0, 0, 200)).parent
    for argv, message in (([str(a)], "at least two generator folders"),
                          ([str(a), str(b)], "no prompt id is answered by two generators"),
                          ([str(a), str(tmp_path / "nope")], "generator folder not found"),
                          ([str(a), str(a), "--names", "x,x"], "generator names must be unique"),
                          ([str(a), str(b), "--criteria", "beauty"], "unknown criterion beauty")):
        code = run_cli(["judge3d", *argv, "--out", str(tmp_path / "o"), "--vlm", "http://127.0.0.1:9/v1#x"],
                       monkeypatch)
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and message in lines[0], (argv, lines)
