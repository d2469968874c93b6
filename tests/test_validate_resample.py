"""``validate`` resamples whole prompts when images share them, and every output says so.

The data: 30 prompts x 6 images (tiny random CLIP), with a rating that follows the metric only
at the prompt level, so a prompt's images move together in both. The expected intervals are
computed here from scores.csv with today's building blocks: the item bootstrap
(``resample_counts``) and a plain prompt bootstrap written out in the test.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as st

from gencritic.agreement.bootstrap import agreement, resample_counts
from gencritic.agreement.validate import ValidateOptions, validate
from gencritic.scoring import ScoreOptions
from tests.test_train import synthetic_rated_set

N_BOOT = 400


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def grouped_set(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> Path:
    """Ratings = the prompt's mean clip_score + a little noise: agreement only between prompts."""
    from gencritic.scoring import score

    folder = tmp_path_factory.mktemp("grouped")
    manifest = synthetic_rated_set(folder, n_prompts=30, per_prompt=6, seed=5)
    rows = _read(manifest)
    scored = score(manifest, metrics=["clip"], model=str(tiny_clip_dir), cache_dir=folder / "cache", progress=False)
    clip = {r["item_id"]: r["clip_score"] for r in scored.rows}
    by_prompt: dict[str, list[float]] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt"], []).append(clip[r["image"]])
    spread = np.std([clip[r["image"]] for r in rows])
    rng = np.random.default_rng(0)
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "prompt", "style", "batch", "mos_prompt"])
        for k, r in enumerate(rows):
            w.writerow([r["image"], r["prompt"], f"style{k % 3}", "b1",
                        float(np.mean(by_prompt[r["prompt"]]) + 0.2 * spread * rng.normal())])
    return manifest


def _opts(tiny_clip_dir: Path, cache: Path, **kw: object) -> ValidateOptions:
    base: dict[str, object] = {"metrics": ["clip"], "model": str(tiny_clip_dir), "cache_dir": cache,
                               "progress": False, "bootstrap": N_BOOT, "plots": False}
    base.update(kw)
    return _split_options(base)


def _plain_prompt_bootstrap_width(x: np.ndarray, y: np.ndarray, prompts: list[str]) -> float:
    names = sorted(set(prompts))
    members = [np.flatnonzero(np.array(prompts) == p) for p in names]
    rng = np.random.default_rng(123)
    r = []
    for _ in range(N_BOOT):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(names), len(names))])
        r.append(st.spearmanr(x[idx], y[idx]).statistic)
    lo, hi = np.quantile(r, [0.025, 0.975])
    return float(hi - lo)


def test_validate_resamples_prompts_by_default_and_says_so(grouped_set: Path, tiny_clip_dir: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "val"
    report = validate(grouped_set, out, _opts(tiny_clip_dir, tmp_path / "c"))
    scores = _read(out / "scores.csv")
    x = np.array([float(s["clip_score"]) for s in scores])
    y = np.array([float(s["mos_prompt"]) for s in scores])
    prompts = [s["prompt"] for s in scores]
    (row,) = _read(out / "correlations.csv")
    width = float(row["srcc_hi"]) - float(row["srcc_lo"])
    items = agreement(x, y, resample_counts(len(x), N_BOOT, 0))
    item_width = items.hi["srcc"] - items.lo["srcc"]
    plain = _plain_prompt_bootstrap_width(x, y, prompts)
    # the item bootstrap treats 6 images of a prompt as 6 independent data points: far too narrow
    assert width > 1.5 * item_width, (width, item_width, plain)
    assert 0.8 * plain <= width <= 1.2 * plain, (width, plain)
    # every output names the unit
    assert row["resample"] == "groups" and row["n_groups"] == "30"
    doc = json.loads((out / "correlations.json").read_text())
    assert doc["rows"][0]["resample"] == "groups"
    assert doc["provenance"]["resample"] == "auto" and doc["provenance"]["group_by"] == "prompt"
    assert doc["provenance"]["resampling"]["mos_prompt"]["unit"] == "groups"
    assert "- mos_prompt: 30 `prompt` groups, whole" in (out / "report.md").read_text()
    assert report.rows[0]["n_groups"] == 30


def test_item_resampling_stays_available_by_name(grouped_set: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    """``resample="items"`` is exactly the item bootstrap of published tables, and says so."""
    out = tmp_path / "val"
    validate(grouped_set, out, _opts(tiny_clip_dir, tmp_path / "c", resample="items"))
    scores = _read(out / "scores.csv")
    x = np.array([float(s["clip_score"]) for s in scores])
    y = np.array([float(s["mos_prompt"]) for s in scores])
    expected = agreement(x, y, resample_counts(len(x), N_BOOT, 0))
    (row,) = _read(out / "correlations.csv")
    assert float(row["srcc_lo"]) == pytest.approx(expected.lo["srcc"], abs=1e-12)
    assert float(row["srcc_hi"]) == pytest.approx(expected.hi["srcc"], abs=1e-12)
    assert row["resample"] == "items"
    md = (out / "report.md").read_text()
    assert "- mos_prompt: items, one by one (as asked; items of one group are treated as independent" in md


def test_group_by_any_column_and_bad_choices_fail_with_one_line(grouped_set: Path, tiny_clip_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from gencritic.cli.main import main

    def run(*extra: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", [
            "gencritic", "validate", str(grouped_set), "--metrics", "clip", "--out", str(tmp_path / "o"),
            "--bootstrap", "50", "--model", str(tiny_clip_dir), "--cache-dir", str(tmp_path / "c"), "--no-plots",
            "--quiet", *extra])
        with pytest.raises(SystemExit) as exc:
            main()
        captured = capsys.readouterr()
        return int(exc.value.code or 0), captured.out, captured.err

    code, out, err = run("--group-by", "style")
    assert code == 0, err
    assert "mos_prompt: intervals resample 3 style groups" in out
    assert _read(tmp_path / "o" / "correlations.csv")[0]["n_groups"] == "3"
    code, out, err = run("--resample", "items")
    assert code == 0 and "mos_prompt: intervals resample items (as asked" in out
    for extra, message in (
            (("--group-by", "styel"), "--group-by styel: no such column; columns are batch, image, mos_prompt, "
                                      "prompt, style"),
            (("--resample", "prompts"), "--resample 'prompts': use one of auto, groups, items"),
            (("--resample", "groups", "--group-by", "batch"),  # one value for every image
             "--resample groups: cannot resample groups: the items form 1 group(s)")):
        code, out, err = run(*extra)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and message in lines[0], (extra, err)


def _split_options(given: dict[str, object]) -> ValidateOptions:
    """Scoring options go into the embedded ScoreOptions, the rest are validation's own."""
    scoring = set(ScoreOptions.__dataclass_fields__)
    return ValidateOptions(scoring=ScoreOptions(**{k: v for k, v in given.items() if k in scoring}),  # type: ignore[arg-type]
                           **{k: v for k, v in given.items() if k not in scoring})  # type: ignore[arg-type]
