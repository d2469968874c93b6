"""Set metrics against independent computations: FID via eigenvalues and the 1-D closed form,
KID against an explicit double loop, diversity/novelty by hand, seeded k-means on known blobs."""

from __future__ import annotations

import numpy as np
import pytest

from gencritic.metrics import sets
from tests.conftest import hf_features


def test_fid_matches_eigenvalue_formula_and_1d_closed_form() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((200, 5)) @ rng.standard_normal((5, 5))
    b = rng.standard_normal((150, 5)) @ rng.standard_normal((5, 5)) + 0.5
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((ΣaΣb)^½) = Σ sqrt(eigenvalues of ΣaΣb), which are real and non-negative
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvals(ca @ cb).real, 0, None)).sum()
    ref = ((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr_sqrt
    assert sets.fid(a, b) == pytest.approx(ref, rel=1e-8)
    # one dimension: (m1 - m2)² + (s1 - s2)²
    x, y = rng.normal(1.0, 2.0, (300, 1)), rng.normal(-0.5, 0.7, (250, 1))
    closed = (x.mean() - y.mean()) ** 2 + (x.std(ddof=1) - y.std(ddof=1)) ** 2
    assert sets.fid(x, y) == pytest.approx(closed, rel=1e-9)
    assert sets.fid(a, a) == pytest.approx(0.0, abs=1e-6)


def test_kid_matches_explicit_loop() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((12, 4)), rng.standard_normal((10, 4)) + 0.3

    def k(u: np.ndarray, v: np.ndarray) -> float:
        return float((u @ v / 4 + 1) ** 3)

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    assert sets.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)
    # subsets as large as both sets are permutations of them, and MMD² ignores order
    mean, std = sets.kid(x[:10], y, subsets=5, subset_size=100, seed=0)
    assert mean == pytest.approx(sets.mmd2_unbiased(x[:10], y), rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)
    assert sets.kid(x, y, subsets=5, seed=3) == sets.kid(x, y, subsets=5, seed=3)  # seeded


def test_kid_near_zero_for_same_distribution_and_positive_for_shift() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((200, 8)), rng.standard_normal((200, 8))
    same, _ = sets.kid(a, b, subsets=20, subset_size=100)
    shifted, _ = sets.kid(a, b + 1.0, subsets=20, subset_size=100)
    assert abs(same) < 0.05 and shifted > 10 * abs(same)


def test_diversity_and_novelty_by_hand() -> None:
    e = np.eye(3)
    assert sets.diversity(e) == pytest.approx(1.0)  # orthogonal: cosine distance 1
    assert sets.diversity(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-12)
    pair = np.array([[1.0, 0.0], [np.cos(0.5), np.sin(0.5)]])
    assert sets.diversity(pair) == pytest.approx(1 - np.cos(0.5))
    archive = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    nov = sets.novelty(np.array([[1.0, 0.0], [1.0, 1.0]]), archive, k=2)
    assert nov[0] == pytest.approx((0 + 1) / 2)
    assert nov[1] == pytest.approx(1 - np.cos(np.pi / 4))
    assert np.isnan(sets.novelty(np.ones((1, 2)), np.zeros((0, 2)))[0])


def test_kmeans_recovers_blobs_and_is_seeded() -> None:
    rng = np.random.default_rng(4)
    centres = np.array([[0, 0], [10, 0], [0, 10]], float)
    truth = np.repeat(np.arange(3), 30)
    x = centres[truth] + rng.standard_normal((90, 2))
    perm = rng.permutation(90)
    labels, _centres, inertia = sets.kmeans(x[perm], 3, seed=0)
    # same partition as the truth (up to renaming)
    t = truth[perm]
    for lab in range(3):
        assert len(set(t[labels == lab])) == 1
    again = sets.kmeans(x[perm], 3, seed=0)
    np.testing.assert_array_equal(labels, again[0])
    assert inertia == again[2]
    best = sets.best_per_cluster(labels, scores=np.arange(90, dtype=float))
    assert set(best) == {0, 1, 2}
    for lab, idx in best.items():
        assert idx == np.flatnonzero(labels == lab).max()
    with pytest.raises(ValueError):
        sets.kmeans(x, 0)


def test_set_report_matches_independent_embeddings_and_cli(tmp_path, tiny_clip_dir) -> None:  # type: ignore[no-untyped-def]
    import json

    import torch
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPModel
    from typer.testing import CliRunner

    from gencritic.cli.main import app
    from gencritic.diagnose.sets_report import set_report
    from tests.conftest import make_image

    new, ref = tmp_path / "new", tmp_path / "ref"
    for i, c in enumerate([(220, 20, 20), (200, 40, 30), (20, 40, 220), (30, 60, 200)]):
        make_image(new / f"n{i}.png", c, size=40)
    for i, c in enumerate([(220, 20, 20), (20, 200, 40), (230, 220, 30)]):
        make_image(ref / f"r{i}.png", c, size=40)
    out = set_report(new, str(tiny_clip_dir), reference_set=ref, clusters=2, k=2)
    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    proc = CLIPImageProcessor.from_pretrained(tiny_clip_dir)

    def embed(folder):  # type: ignore[no-untyped-def]
        imgs = [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.png"))]
        with torch.no_grad():
            e = hf_features(model.get_image_features(pixel_values=proc(images=imgs, return_tensors="pt")["pixel_values"]))
        return (e / e.norm(dim=-1, keepdim=True)).double().numpy()

    a, b = embed(new), embed(ref)
    assert out["diversity"] == pytest.approx(sets.diversity(a), abs=1e-5)
    assert out["fid"] == pytest.approx(sets.fid(a, b), rel=1e-3, abs=1e-5)
    assert out["novelty"]["per_image"]["n0.png"] == pytest.approx(sets.novelty(a[:1], b, k=2)[0], abs=1e-5)
    assert "fid_note" in out  # 3 samples in 16 dimensions
    members = out["clusters"]["members"]
    assert sorted(len(v) for v in members.values()) == [2, 2]
    assert {frozenset(v) for v in members.values()} == {frozenset({"n0.png", "n1.png"}), frozenset({"n2.png", "n3.png"})}
    res = CliRunner().invoke(app, ["sets", str(new), "--model", str(tiny_clip_dir), "--clusters", "2"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["diversity"] == pytest.approx(out["diversity"])
