"""``gencritic correlate``: validate's statistics on a CSV of scores someone already has.

Checked against scipy (PLCC, SRCC, KRCC to 1e-9; the logistic-mapped PLCC/RMSE against an
independent ``scipy.optimize.curve_fit`` of the VQEG curve) and against ``validate``'s own
numbers on the same data (validate's scores.csv fed back in: every statistic and bound equal)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as st
from scipy.optimize import curve_fit
from typer.testing import CliRunner

from gencritic.agreement.bootstrap import STATS
from gencritic.agreement.correlate import CorrelateOptions, correlate
from gencritic.agreement.validate import ValidateOptions, validate
from gencritic.cli.main import app
from gencritic.errors import InputError
from gencritic.jsonio import loads_strict
from gencritic.scoring import ScoreOptions
from tests.test_train import synthetic_rated_set


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _data(tmp_path: Path, n_groups: int = 20, per: int = 4) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=n_groups * per)
    y = 3 / (1 + np.exp(-1.5 * x)) + rng.normal(0, 0.3, x.size)
    rows = [{"item": i, "prompt": f"p{i // per}", "pred": float(x[i]), "mos": float(y[i])} for i in range(x.size)]
    return _write(tmp_path / "scores.csv", rows), x, y


def _vqeg(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    return (b1 - b2) / (1 + np.exp(-(x - b3) / abs(b4))) + b2


def test_correlate_equals_scipy(tmp_path: Path) -> None:
    path, x, y = _data(tmp_path)
    res = CliRunner().invoke(app, ["correlate", str(path), "--pred", "pred", "--mos", "mos", "--json",
                                   str(tmp_path / "c.json"), "--bootstrap", "300"])
    assert res.exit_code == 0, res.output
    assert "pred vs mos: n=80" in res.output and "srcc" in res.output
    row = loads_strict((tmp_path / "c.json").read_text())["rows"][0]
    assert row["plcc"] == pytest.approx(st.pearsonr(x, y).statistic, abs=1e-9)
    assert row["srcc"] == pytest.approx(st.spearmanr(x, y).statistic, abs=1e-9)
    assert row["krcc"] == pytest.approx(st.kendalltau(x, y).statistic, abs=1e-9)
    params, _ = curve_fit(_vqeg, x, y, p0=[y.max(), y.min(), 0.0, 1.0], maxfev=20000)
    mapped = _vqeg(x, *params)
    assert row["plcc_logistic"] == pytest.approx(st.pearsonr(mapped, y).statistic, abs=1e-6)
    assert row["rmse"] == pytest.approx(math.sqrt(np.mean((mapped - y) ** 2)), abs=1e-6)
    assert row["resample"] == "items" and row["n_excluded"] == 0  # no --group-by: items
    for s in STATS:
        assert row[f"{s}_lo"] <= row[s] <= row[f"{s}_hi"]


def test_group_by_resamples_groups_by_default(tmp_path: Path) -> None:
    path, _, _ = _data(tmp_path)
    grouped = correlate(path, CorrelateOptions(pred=["pred"], mos=["mos"], group_by="prompt", bootstrap=400))
    items = correlate(path, CorrelateOptions(pred=["pred"], mos=["mos"], group_by="prompt", resample="items",
                                             bootstrap=400))
    g, i = grouped.rows[0], items.rows[0]
    assert g["resample"] == "groups" and g["n_groups"] == 20 and i["resample"] == "items"
    assert g["srcc"] == i["srcc"]  # same point estimate, other intervals
    assert (g["srcc_lo"], g["srcc_hi"]) != (i["srcc_lo"], i["srcc_hi"])
    assert grouped.provenance["resampling"]["mos"]["unit"] == "groups"


def test_correlate_equals_validate_on_the_same_data(tiny_clip_dir: Path, tmp_path: Path) -> None:
    rated = synthetic_rated_set(tmp_path / "rated", n_prompts=6, per_prompt=5)
    opts = ValidateOptions(scoring=ScoreOptions(metrics=["clip"], model=str(tiny_clip_dir),
                                                cache_dir=tmp_path / "cache", progress=False), bootstrap=300, seed=4)
    report = validate(rated, tmp_path / "val", opts)
    res = CliRunner().invoke(app, ["correlate", str(tmp_path / "val" / "scores.csv"), "--pred",
                                   "clip_score", "--mos", "mos_size,mos_noise", "--group-by", "prompt",
                                   "--bootstrap", "300", "--seed", "4", "--json", str(tmp_path / "c.json")])
    assert res.exit_code == 0, res.output
    doc = loads_strict((tmp_path / "c.json").read_text())
    assert len(doc["rows"]) == len(report.rows) == 2
    assert all(math.isfinite(r["srcc"]) and math.isfinite(r["srcc_lo"]) for r in doc["rows"])
    for mine, theirs in zip(doc["rows"], report.rows, strict=True):
        assert (mine["rating"], mine["column"]) == (theirs["rating"], theirs["column"])
        assert mine["resample"] == theirs["resample"] == "groups" and mine["n_groups"] == theirs["n_groups"] == 6
        for key in ["n", *[c for s in STATS for c in (s, f"{s}_lo", f"{s}_hi")]]:
            a, b = mine[key], theirs[key]
            assert (a is None and (b is None or math.isnan(b))) or a == pytest.approx(b, abs=1e-12), key


def test_correlate_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    path, _, _ = _data(tmp_path)
    with pytest.raises(InputError, match=r"no column 'quality'; its columns are item, prompt, pred, mos"):
        correlate(path, CorrelateOptions(pred=["pred"], mos=["quality"]))
    rows = list(csv.DictReader(path.open()))
    rows[6]["pred"] = "n/a"
    bad = _write(tmp_path / "bad.csv", rows)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"bad.csv, line 8: column 'pred' holds 'n/a', not a finite number"):
        correlate(bad, CorrelateOptions(pred=["pred"], mos=["mos"]))
    rows[6]["pred"] = ""  # an empty cell leaves its row out, counted
    holey = _write(tmp_path / "holey.csv", rows)  # type: ignore[arg-type]
    got = correlate(holey, CorrelateOptions(pred=["pred"], mos=["mos"], bootstrap=0)).rows[0]
    assert got["n"] == 79 and got["n_excluded"] == 1
    with pytest.raises(InputError, match="--resample groups: cannot resample groups"):
        correlate(path, CorrelateOptions(pred=["pred"], mos=["mos"], resample="groups"))
    res = CliRunner().invoke(app, ["correlate", str(tmp_path / "none.csv"), "--pred", "a", "--mos", "b"])
    assert isinstance(res.exception, InputError) and "no such file" in str(res.exception)
