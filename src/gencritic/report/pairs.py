"""The report of a ``gencritic compare3d`` folder: each pair's generated and reference views side by side.

A compare3d folder is not a scoring run (rows are pairs, keyed by ``pair_id``; the compared
views are files under ``views/`` named in ``views.csv``), so it gets its own page, built from the
same template and stylesheet: a summary of every numeric column (from ``summary.json``), the
failures with their reasons, then one section per pair with its numbers and, per view, the
generated and the reference picture next to each other with that view's values. Pictures are
embedded thumbnails (or relative links with ``embed=False``); numbers come from the files.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gencritic.io.fsnames import CSV_ERRORS

PAIR_CSS = """
.pair .views { display: flex; flex-wrap: wrap; gap: 10px; }
.pair .view { border: 1px solid var(--line); border-radius: 6px; padding: 6px; margin: 0; }
.pair .side { display: inline-block; text-align: center; margin: 0 2px; }
.pair .side span { display: block; font-size: 11px; color: var(--muted); }
.pair figcaption { font-size: 12px; }
.pair table td, .pair table th { padding: 2px 8px; }
"""
# the numbers shown per pair and per view, when present, in this order
PAIR_COLUMNS = ("chamfer_l1", "chamfer_l2sq", "fscore", "normal_consistency", "volume_iou", "psnr", "ssim", "ms_ssim",
                "lpips", "clip_i2i", "dino")


def _asset(name: str) -> str:
    return resources.files("gencritic.report").joinpath(name).read_text(encoding="utf-8")


def is_compare3d_folder(folder: Path) -> bool:
    """Whether ``folder`` was written by ``compare3d`` (its summary says so)."""
    summary = folder / "summary.json"
    if not summary.is_file():
        return False
    try:
        return json.loads(summary.read_text(encoding="utf-8")).get("command") == "compare3d"
    except (OSError, json.JSONDecodeError):
        return False


def _read(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8", errors=CSV_ERRORS) as fh:
        return [dict(r) for r in csv.DictReader(fh)]


def _fmt(text: str | None) -> str:
    if text is None or text == "":
        return "–"
    try:
        value = float(text)
    except ValueError:
        return escape(text)
    if math.isnan(value):
        return "–"
    return escape(f"{value:.4f}" if math.isfinite(value) else str(value))


def _picture(path: Path, html_dir: Path, embed: bool, size: int) -> str | None:
    from gencritic.report.thumbs import encode_thumbnail

    try:
        if embed:
            return encode_thumbnail(path, size)
        if not path.is_file():
            return None
        return quote(os.fsencode(Path(os.path.relpath(path, html_dir)).as_posix()))
    except OSError:
        return None


def _pair_section(index: int, row: dict[str, str], views: list[dict[str, str]], folder: Path, html_dir: Path,
                  embed: bool, size: int) -> str:
    pair_id = row.get("pair_id", "")
    shown = [c for c in PAIR_COLUMNS if c in row]
    head = "".join(f"<th>{escape(c)}</th>" for c in shown)
    cells = "".join(f"<td class='num'>{_fmt(row.get(c))}</td>" for c in shown)
    status = ("" if row.get("success") == "true"
              else f"<p class='error'>failed: {escape(row.get('error') or 'no reason recorded')}</p>")
    figures = []
    for v in views:
        sides = []
        for key, label in (("generated_image", "generated"), ("reference_image", "reference")):
            src = _picture(folder / v[key], html_dir, embed, size) if v.get(key) else None
            alt = f"{label} view {v.get('view_name', v.get('view', ''))} of {pair_id}"
            sides.append(f'<span class="side {label}"><img class="{label}" src="{escape(src)}" alt="{escape(alt)}">'
                         f"<span>{label}</span></span>" if src else
                         f'<span class="side {label} muted">no {label} picture</span>')
        values = ", ".join(f"{escape(c)} {_fmt(v.get(c))}" for c in PAIR_COLUMNS if c in v)
        where = f"yaw {_fmt(v.get('yaw_deg'))}°, pitch {_fmt(v.get('pitch_deg'))}°" if v.get("yaw_deg") else ""
        figures.append(f'<figure class="view" data-view="{escape(v.get("view", ""))}">{"".join(sides)}'
                       f"<figcaption>view {escape(v.get('view_name', ''))} {where}<br>{values}</figcaption></figure>")
    pictures = f'<div class="views">{"".join(figures)}</div>' if figures else "<p class='muted'>no views</p>"
    return (f'<section class="pair" id="pair-{index}" data-pair-id="{escape(pair_id)}"><h2>{escape(pair_id)}</h2>'
            f"<p class='muted'>{escape(row.get('generated', ''))} vs {escape(row.get('reference', ''))}</p>{status}"
            f"<table class='pair-metrics'><thead><tr>{head}</tr></thead><tbody><tr>{cells}</tr></tbody></table>"
            f"{pictures}</section>")


def _summary_table(summary: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td class='num'>{s.get('count', '–')}</td>"
        + "".join(f"<td class='num'>{_fmt(None if s.get(k) is None else str(s.get(k)))}</td>"
                  for k in ("mean", "std", "median", "min", "max")) + "</tr>"
        for name, s in summary.get("metrics", {}).items() if isinstance(s, dict))
    head = "<tr><th>column</th><th>n</th><th>mean</th><th>std</th><th>median</th><th>min</th><th>max</th></tr>"
    return f'<table id="metric-summary"><thead>{head}</thead><tbody>{rows}</tbody></table>'


def render_pairs_html(folder: Path, html_dir: Path, embed: bool = True, thumb_size: int = 160,
                      title: str | None = None) -> tuple[str, int, int]:
    """(page, pairs, pictures) for the compare3d folder ``folder``."""
    import gencritic

    rows = _read(folder / "results.csv")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    by_pair: dict[str, list[dict[str, str]]] = {}
    for v in _read(folder / "views.csv"):
        by_pair.setdefault(v.get("pair_id", ""), []).append(v)
    failed = [r for r in rows if r.get("success") != "true"]
    title = title or f"gencritic compare3d: {folder.resolve().name}"
    cards = [("pairs", str(len(rows))), ("compared", str(len(rows) - len(failed))), ("failed", str(len(failed))),
             ("wall time", f"{summary.get('wall_time_s', 0):.1f} s")]
    card_html = '<div class="cards">' + "".join(
        f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
        for k, v in cards) + "</div>"
    failures = ("<ul id='failures'>" + "".join(
        f"<li><b>{escape(r.get('pair_id', ''))}</b>: {escape(r.get('error') or 'no reason recorded')}</li>"
        for r in failed) + "</ul>") if failed else "<p class='muted'>No pair failed.</p>"
    sections = [f'<section id="summary"><h2>Summary</h2>{card_html}<h3>Columns</h3>{_summary_table(summary)}</section>',
                f'<section id="failed"><h2>Failures</h2>{failures}</section>']
    sections += [_pair_section(i, r, by_pair.get(r.get("pair_id", ""), []), folder, html_dir, embed, thumb_size)
                 for i, r in enumerate(rows)]
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"<header><h1>{escape(title)}</h1><div class='meta'>{escape(str(folder))} · generated {generated} "
              f"· gencritic {escape(gencritic.__version__)}</div><nav><a href='#summary'>Summary</a>"
              f"<a href='#failed'>Failures</a></nav></header>")
    page = _asset("template.html")
    for key, value in (("{{CSS}}", _asset("report.css") + PAIR_CSS), ("{{JS}}", ""), ("{{TITLE}}", escape(title)),
                       ("{{VERSION}}", escape(gencritic.__version__)), ("{{DATA}}", "{}"),
                       ("{{BODY}}", header + "<main>" + "".join(sections) + "</main>")):
        page = page.replace(key, value)
    pictures = page.count('<img class="generated"') + page.count('<img class="reference"')
    return page, len(rows), pictures


def pairs_markdown(folder: Path) -> str:
    """The summary table as Markdown (for a paper draft or a PR)."""
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    lines = [f"# gencritic compare3d: {folder.resolve().name}", "",
             f"- pairs: {summary.get('pairs')}, compared: {summary.get('successes')}", "",
             "| column | n | mean | median |", "|---|---:|---:|---:|"]
    for name, s in summary.get("metrics", {}).items():
        if isinstance(s, dict):
            lines.append(f"| {name} | {s.get('count')} | {s.get('mean')} | {s.get('median')} |")
    return "\n".join(lines) + "\n"
