"""How long do validate's statistics take for 3,000 items with 1,000 bootstrap resamples?

gencritic: the vectorised, exact weighted bootstrap (:mod:`gencritic.agreement.bootstrap`) over
every rating × metric, as ``gencritic validate`` runs it (``correlation_table``: point values,
logistic fit, 1,000-resample intervals for PLCC, mapped PLCC, SRCC, KRCC, RMSE, pairwise
accuracy, and paired comparisons of the metrics).
Peer: the obvious script — copy each resample and call scipy's pearsonr / spearmanr /
kendalltau on it — timed on a few resamples and scaled to 1,000 (it would take minutes).

Human ratings are AGIQA-3K's real quality and alignment MOS when ../shared/data is present
(2,982 items, with its real tie structure); otherwise 3,000 synthetic ratings. The metric
values are synthetic (MOS + noise at three levels): timing does not depend on them.

``--e2e`` also times ``validate`` end to end on 3,000 small images with the embedding cache
warm (a tiny random CLIP, as no weights can be downloaded here): what a re-run costs.

    python benchmarks/bench_validate.py [--boot 1000] [--metrics 3] [--e2e]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
AGIQA = ROOT.parent / "shared" / "data" / "agiqa-3k" / "data.csv"


def human_ratings(n: int) -> tuple[dict[str, np.ndarray], str]:
    if AGIQA.exists():
        from gencritic.datasets.human import read_agiqa3k_rows

        rows = read_agiqa3k_rows(AGIQA)
        return ({"mos_quality": np.array([r["mos_quality"] for r in rows]),
                 "mos_align": np.array([r["mos_align"] for r in rows])}, f"AGIQA-3K real MOS ({len(rows)} items)")
    rng = np.random.default_rng(0)
    return ({"mos_quality": np.round(rng.uniform(1, 5, n), 2), "mos_align": np.round(rng.uniform(1, 5, n), 2)},
            f"synthetic ratings ({n} items)")


def bench_statistics(n_boot: int, n_metrics: int) -> tuple[float, float]:
    from gencritic.agreement.validate import MetricColumn, correlation_table

    ratings, label = human_ratings(3000)
    n = next(iter(ratings.values())).size
    rng = np.random.default_rng(1)
    base = ratings["mos_quality"]
    rows = []
    noise = [rng.normal(0, s, n) for s in np.linspace(0.3, 2.0, n_metrics)]
    for i in range(n):
        row = {r: float(v[i]) for r, v in ratings.items()}
        row.update({f"metric{j}": float(base[i] + noise[j][i]) for j in range(n_metrics)})
        row["success"] = True
        rows.append(row)
    cols = [MetricColumn(f"metric{j}", f"metric{j}", True, None) for j in range(n_metrics)]
    correlation_table(rows[:50], list(ratings), cols, 10, seed=0)  # warm imports/BLAS outside the timing
    t0, c0 = time.perf_counter(), time.process_time()
    table, comps, _, _, _ = correlation_table(rows, list(ratings), cols, n_boot, seed=0)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"data: {label}; {len(ratings)} ratings x {n_metrics} metrics = {len(table)} rows, "
          f"{len(comps)} paired comparisons, {n_boot} resamples")
    load = f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    print(f"gencritic statistics (all rows, all intervals): {elapsed:.2f} s wall, {cpu:.2f} s CPU{load}")
    r0 = table[0]
    print(f"  e.g. {r0['rating']} x {r0['column']}: SRCC {r0['srcc']:.3f} [{r0['srcc_lo']:.3f}, {r0['srcc_hi']:.3f}] "
          f"KRCC {r0['krcc']:.3f} [{r0['krcc_lo']:.3f}, {r0['krcc_hi']:.3f}]")
    return elapsed, cpu


def bench_scipy_peer(n_boot: int, n_metrics: int, sample: int = 10) -> tuple[float, float]:
    import scipy.stats as st

    ratings, _ = human_ratings(3000)
    y = ratings["mos_quality"]
    n = y.size
    x = y + np.random.default_rng(1).normal(0, 0.5, n)
    rng = np.random.default_rng(0)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(sample):
        idx = rng.integers(0, n, n)
        st.pearsonr(x[idx], y[idx])
        st.spearmanr(x[idx], y[idx])
        st.kendalltau(x[idx], y[idx])
    scale = n_boot * len(ratings) * n_metrics / sample
    total, cpu = (time.perf_counter() - t0) * scale, (time.process_time() - c0) * scale
    print(f"scipy loop (PLCC+SRCC+KRCC only, {sample} resamples timed, scaled): {total:.2f} s wall, {cpu:.2f} s CPU "
          f"for the same {len(ratings) * n_metrics} rows x {n_boot} resamples")
    return total, cpu


def bench_end_to_end(n_items: int = 3000) -> None:
    sys.path.insert(0, str(ROOT))
    from PIL import Image

    from gencritic.agreement.validate import ValidateOptions, validate
    from tests.conftest import build_tiny_hf_clip

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clip = build_tiny_hf_clip(d / "clip")
        rng = np.random.default_rng(0)
        lines = ["image,prompt,mos"]
        for i in range(n_items):
            arr = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(arr).save(d / f"{i}.png")
            lines.append(f"{i}.png,prompt {i % 300},{rng.uniform(1, 5):.3f}")
        (d / "ratings.csv").write_text("\n".join(lines) + "\n")
        opts = ValidateOptions(metrics=["clip"], model=str(clip), cache_dir=d / "cache", progress=False,
                               bootstrap=1000, plots=True)
        t0 = time.perf_counter()
        validate(d / "ratings.csv", None, opts)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        validate(d / "ratings.csv", d / "out", opts)
        warm = time.perf_counter() - t0
        print(f"validate end to end, {n_items} images, clip, 1000 resamples: cold cache {cold:.1f} s, "
              f"warm cache {warm:.1f} s (incl. writing tables and plots)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--metrics", type=int, default=3)
    ap.add_argument("--e2e", action="store_true", help="also time validate end to end with a warm cache")
    args = ap.parse_args()
    ours, ours_cpu = bench_statistics(args.boot, args.metrics)
    peer, peer_cpu = bench_scipy_peer(args.boot, args.metrics)
    print(f"ratio scipy-loop / gencritic: {peer / ours:.1f}x wall, {peer_cpu / ours_cpu:.1f}x CPU "
          f"(target for gencritic: < 10 s)")
    if args.e2e:
        bench_end_to_end()


if __name__ == "__main__":
    main()
