"""Temporal report of a frame sequence: summary JSON, per-frame curves CSV and a PNG plot.

The edge around :func:`gencritic.metrics.temporal.analyse_sequence`: it reads frames,
computes the per-frame foreground coverage with the profile's segmentation (the "size" of
the effect) and the regions the measures are repeated on (the foreground, plus any region
the profile's temporal checks name), and writes files people open. Plotting uses matplotlib's Agg backend
(``pip install gencritic[report]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gencritic.atomic import atomic_write_text
from gencritic.diagnose.api import _clean
from gencritic.diagnose.profiles import DEFAULT_PROFILE, load_profile
from gencritic.diagnose.segmentation import sequence_regions
from gencritic.errors import InputError
from gencritic.io.fsnames import CSV_ERRORS
from gencritic.io.images import parse_background
from gencritic.io.tables import rows_to_csv
from gencritic.jsonio import write_json

CURVE_COLUMNS = ("frame", "name", "time_s", "brightness", "coverage", "flicker", "ssim_to_next", "warp_error",
                 "unwarped_error", "lpips_to_next", "foreground_brightness", "foreground_flicker",
                 "foreground_ssim_to_next", "foreground_warp_error")


def _load_lpips_net(lpips: str, weights: str | None, unavailable: dict[str, str]) -> Any:
    from gencritic.errors import ModelUnavailableError
    from gencritic.models.lpips_nets import load_lpips

    try:
        return load_lpips(lpips, weights, "cpu")
    except ModelUnavailableError as exc:
        unavailable["temporal_lpips"] = str(exc)
        return None


def temporal_analysis(input: str | Path, profile: str = DEFAULT_PROFILE, flow: bool = True,
                      max_frames: int | None = None, lpips: str | None = None,
                      lpips_weights: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary, per-frame rows) for a sequence; deterministic. ``lpips`` names an LPIPS net
    (alex, vgg, squeeze); when its weights are missing that is reported, not faked."""
    from gencritic.io.frames import is_sequence, load_frames
    from gencritic.metrics.temporal import analyse_sequence

    prof = load_profile(profile)
    path = Path(input).expanduser()
    if not path.exists():
        raise InputError(f"input not found: {path}; give a folder of frames, a GIF/WebP or an MP4/WebM")
    if not is_sequence(path):
        raise InputError(f"{path} is a single image; temporal metrics need a folder of frames, a GIF or a video")
    seq = load_frames(path, parse_background(prof.background), max_frames)
    wanted = sorted({"foreground", *prof.temporal_regions().values()} - {"image"})
    coverage, masks = sequence_regions(seq.frames, seq.alphas, prof.segmentation, wanted)
    lpips_unavailable: dict[str, str] = {}
    net = _load_lpips_net(lpips, lpips_weights, lpips_unavailable) if lpips else None
    analysis = analyse_sequence(seq.frames, seq.fps, {"coverage": coverage}, flow=flow, lpips_net=net,
                                regions=masks)
    analysis["unavailable"].update(lpips_unavailable)
    curves = analysis["curves"]
    rows = []
    for t in range(len(seq)):
        row: dict[str, Any] = {"frame": t, "name": seq.names[t], "time_s": None if not seq.fps else t / seq.fps}
        for col in CURVE_COLUMNS[3:]:
            value = curves.get(col)
            row[col] = None if value is None or not np.isfinite(value[t]) else float(value[t])
        rows.append(row)
    summary = {"input": str(path), **analysis["summary"], "unavailable": analysis["unavailable"]}
    return _clean(summary), rows


def plot_curves(rows: list[dict[str, Any]], title: str, path: Path) -> None:
    """Three stacked panels: brightness + coverage, flicker, consecutive SSIM / warping error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def col(name: str) -> np.ndarray:
        return np.array([np.nan if r[name] is None else r[name] for r in rows], dtype=float)

    use_time = rows and rows[0]["time_s"] is not None
    x = col("time_s") if use_time else col("frame")
    fig, axes = plt.subplots(3, 1, figsize=(8, 7.5), sharex=True)
    axes[0].plot(x, col("brightness"), label="mean luma (brightness)", color="tab:orange")
    axes[0].plot(x, col("foreground_brightness"), label="mean luma over the effect's pixels", color="tab:orange",
                 linestyle="--")
    axes[0].plot(x, col("coverage"), label="foreground coverage (size)", color="tab:grey")
    axes[0].set_ylabel("fraction")
    axes[0].legend(loc="best", fontsize=8)
    axes[0].set_title(title, fontsize=10)
    axes[1].plot(x, col("flicker"), color="tab:red", marker=".", label="|Δ² mean luma| / 4 (flicker), whole frame")
    axes[1].plot(x, col("foreground_flicker"), color="tab:red", linestyle="--", label="flicker over the effect's pixels")
    axes[1].set_ylabel("% luma")
    axes[1].legend(loc="best", fontsize=8)
    axes[2].plot(x, col("ssim_to_next"), color="tab:blue", label="SSIM(t, t+1)")
    axes[2].set_ylabel("SSIM")
    ax2 = axes[2].twinx()
    ax2.plot(x, col("warp_error"), color="tab:green", label="warping error (flow)")
    ax2.plot(x, col("unwarped_error"), color="tab:green", linestyle=":", label="error without warping")
    if any(r["lpips_to_next"] is not None for r in rows):
        ax2.plot(x, col("lpips_to_next"), color="tab:purple", label="LPIPS(t, t+1)")
    ax2.set_ylabel("mean |Δ luma|")
    lines = axes[2].get_lines() + ax2.get_lines()
    axes[2].legend(lines, [str(ln.get_label()) for ln in lines], loc="best", fontsize=8)
    axes[2].set_xlabel("time (s)" if use_time else "frame")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def temporal_report(input: str | Path, out_dir: str | Path, profile: str = DEFAULT_PROFILE, flow: bool = True,
                    plot: bool = True, max_frames: int | None = None, lpips: str | None = None,
                    lpips_weights: str | None = None) -> dict[str, Any]:
    """Write ``temporal.json``, ``curves.csv`` and ``curves.png`` into ``out_dir``; return the summary."""
    summary, rows = temporal_analysis(input, profile, flow, max_frames, lpips, lpips_weights)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "curves.csv", rows_to_csv(rows, CURVE_COLUMNS), errors=CSV_ERRORS)  # io/fsnames.py
    files = {"curves_csv": str(out / "curves.csv"), "summary_json": str(out / "temporal.json")}
    if plot:
        plot_curves(rows, f"temporal curves: {Path(summary['input']).name}", out / "curves.png")
        files["curves_png"] = str(out / "curves.png")
    summary["files"] = files
    write_json(out / "temporal.json", summary)
    return summary
