"""Plots as inline SVG strings: histograms and metric-vs-human scatter plots.

Why hand-written SVG and not matplotlib: the report must be one file that opens offline in
any browser, stays small, and scales when zoomed; an SVG string is all that takes, and these
functions are pure (numbers in, text out), so tests read their output directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

W, H = 320, 180
PAD_L, PAD_R, PAD_T, PAD_B = 42, 10, 22, 30


@dataclass(frozen=True)
class Histogram:
    edges: list[float]
    counts: list[int]


def histogram(values: Sequence[float], bins: int = 20) -> Histogram:
    """Equal-width bins over [min, max]; a constant column gets one bin (no division by zero)."""
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return Histogram([], [])
    lo, hi = min(vals), max(vals)
    if hi == lo:
        return Histogram([lo, hi], [len(vals)])
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in vals:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    return Histogram([lo + i * width for i in range(bins + 1)], counts)


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def _frame(title: str, body: list[str], x_label: str, y_label: str) -> str:
    return (f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
            f'role="img" aria-label="{escape(title)}">'
            f'<text x="{W / 2}" y="14" text-anchor="middle" class="plot-title">{escape(title)}</text>'
            f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" class="axis"/>'
            f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" class="axis"/>'
            + "".join(body)
            + f'<text x="{(PAD_L + W - PAD_R) / 2}" y="{H - 4}" text-anchor="middle" class="axis-label">'
              f'{escape(x_label)}</text>'
            f'<text x="10" y="{(PAD_T + H - PAD_B) / 2}" text-anchor="middle" class="axis-label" '
            f'transform="rotate(-90 10 {(PAD_T + H - PAD_B) / 2})">{escape(y_label)}</text></svg>')


def histogram_svg(values: Sequence[float], title: str, bins: int = 20) -> str:
    """One metric's distribution; every bar carries its range and count as a tooltip."""
    hist = histogram(values, bins)
    if not hist.counts:
        return f'<p class="empty">{escape(title)}: no values</p>'
    top = max(hist.counts)
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    bar_w = plot_w / len(hist.counts)
    body = []
    for i, c in enumerate(hist.counts):
        h = plot_h * c / top
        x = PAD_L + i * bar_w
        lo, hi = hist.edges[i], hist.edges[i + 1]
        body.append(f'<rect class="bar" x="{x:.2f}" y="{H - PAD_B - h:.2f}" width="{max(bar_w - 1, 1):.2f}" '
                    f'height="{h:.2f}"><title>[{_fmt(lo)}, {_fmt(hi)}]: {c}</title></rect>')
    lo, hi = hist.edges[0], hist.edges[-1]
    body.append(f'<text x="{PAD_L}" y="{H - PAD_B + 12}" class="tick">{_fmt(lo)}</text>')
    body.append(f'<text x="{W - PAD_R}" y="{H - PAD_B + 12}" text-anchor="end" class="tick">{_fmt(hi)}</text>')
    body.append(f'<text x="{PAD_L - 4}" y="{PAD_T + 8}" text-anchor="end" class="tick">{top}</text>')
    return _frame(title, body, title, "count")


def scatter_svg(xs: Sequence[float], ys: Sequence[float], x_label: str, y_label: str, title: str,
                labels: Sequence[str] | None = None) -> str:
    """Metric (x) against human rating (y), one dot per item with its id as tooltip."""
    pairs = [(x, y, (labels[i] if labels else "")) for i, (x, y) in enumerate(zip(xs, ys, strict=True))
             if not (math.isnan(x) or math.isnan(y))]
    if not pairs:
        return f'<p class="empty">{escape(title)}: no pairs</p>'
    x_lo, x_hi = min(p[0] for p in pairs), max(p[0] for p in pairs)
    y_lo, y_hi = min(p[1] for p in pairs), max(p[1] for p in pairs)
    x_span, y_span = (x_hi - x_lo) or 1.0, (y_hi - y_lo) or 1.0
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    body = []
    for x, y, lab in pairs:
        cx = PAD_L + 4 + (plot_w - 8) * (x - x_lo) / x_span
        cy = H - PAD_B - 4 - (plot_h - 8) * (y - y_lo) / y_span
        body.append(f'<circle class="dot" cx="{cx:.2f}" cy="{cy:.2f}" r="3"><title>{escape(lab)} '
                    f'({_fmt(x)}, {_fmt(y)})</title></circle>')
    body.append(f'<text x="{PAD_L}" y="{H - PAD_B + 12}" class="tick">{_fmt(x_lo)}</text>')
    body.append(f'<text x="{W - PAD_R}" y="{H - PAD_B + 12}" text-anchor="end" class="tick">{_fmt(x_hi)}</text>')
    body.append(f'<text x="{PAD_L - 4}" y="{H - PAD_B}" text-anchor="end" class="tick">{_fmt(y_lo)}</text>')
    body.append(f'<text x="{PAD_L - 4}" y="{PAD_T + 8}" text-anchor="end" class="tick">{_fmt(y_hi)}</text>')
    return _frame(title, body, x_label, y_label)


def correlations(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float | int | None]:
    """Spearman (SRCC), Pearson (PLCC) and Kendall (KRCC) over complete pairs, via scipy.

    None where undefined (fewer than 3 pairs or a constant side), never a made-up 0.
    """
    from scipy import stats

    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if not (math.isnan(x) or math.isnan(y))]
    out: dict[str, float | int | None] = {"n": len(pairs), "srcc": None, "plcc": None, "krcc": None}
    if len(pairs) < 3:
        return out
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(set(a)) < 2 or len(set(b)) < 2:
        return out
    out["srcc"] = float(stats.spearmanr(a, b).statistic)
    out["plcc"] = float(stats.pearsonr(a, b).statistic)
    out["krcc"] = float(stats.kendalltau(a, b).statistic)
    return out
